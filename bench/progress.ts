// Progress of `npm run bench` on stderr: a line when each benchmark starts and ends, with the time so far
// and an estimate of the time left. The estimate for a benchmark is its duration in the last run that
// recorded one (the `seconds` field of bench/out/<name>.json, else bench/results/<name>.json), else
// EXPECTED_SECONDS below.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';

/**
 * Rough wall time of each benchmark on the project's shared 2-core box (bench/README.md), used until a
 * run has recorded its own. Results files of mutation and soak are named after what they ran.
 */
export const EXPECTED_SECONDS: Record<string, number> = {
  boot: 5,
  migrate: 25,
  offline: 25,
  pin: 40,
  alloc: 40,
  sched: 60,
  devices: 40,
  mutation: 1250,
  soak: 300,
  campaign: 900,
  'mm-mutants': 3600,
};

/** Seconds under a minute ("0.4 s", "25 s"), else m:ss, or h:mm:ss past an hour. */
export function clock(seconds: number): string {
  const t = Math.max(0, seconds);
  if (t < 59.5) return `${t < 9.95 ? t.toFixed(1) : Math.round(t)} s`;
  const s = Math.round(t);
  const mm = String(Math.floor(s / 60) % 60).padStart(2, '0');
  const ss = String(s % 60).padStart(2, '0');
  return s >= 3600 ? `${Math.floor(s / 3600)}:${mm}:${ss}` : `${Math.floor(s / 60)}:${ss}`;
}

/** The duration a previous whole run recorded for benchmark `name` (its results file's `seconds`), if any. */
export function recordedSeconds(dirs: readonly string[], file: string): number | undefined {
  for (const dir of dirs) {
    try {
      const j = JSON.parse(fs.readFileSync(path.join(dir, `${file}.json`), 'utf8')) as {
        seconds?: unknown;
        only?: unknown;
      };
      if (typeof j.seconds === 'number' && j.seconds > 0 && j.only === undefined) return j.seconds;
    } catch {
      /* no such file, or not ours */
    }
  }
  return undefined;
}

export class Progress {
  private readonly t0 = performance.now();
  private readonly expected: number[];
  private started = 0;

  constructor(
    private readonly names: readonly string[],
    estimate: (name: string) => number,
    private readonly write: (line: string) => void = (l) => process.stderr.write(l + '\n'),
  ) {
    this.expected = names.map(estimate);
  }

  private elapsed(): number {
    return (performance.now() - this.t0) / 1000;
  }

  /** Seconds left: the rest of the current benchmark's estimate (at least 0) plus the ones not started. */
  private remaining(i: number, into: number): number {
    let s = Math.max(0, this.expected[i]! - into);
    for (let k = i + 1; k < this.names.length; k++) s += this.expected[k]!;
    return s;
  }

  start(i: number): void {
    this.started = this.elapsed();
    const n = this.names[i]!;
    this.write(
      `bench: [${i + 1}/${this.names.length}] ${n} started (expect ~${clock(this.expected[i]!)}); ` +
        `elapsed ${clock(this.started)}, ~${clock(this.remaining(i, 0))} left`,
    );
  }

  /** Ends benchmark i; returns its duration in seconds. */
  end(i: number): number {
    const now = this.elapsed();
    const took = now - this.started;
    const left = i + 1 < this.names.length ? this.remaining(i + 1, 0) : 0;
    this.write(
      `bench: [${i + 1}/${this.names.length}] ${this.names[i]} done in ${clock(took)}; ` +
        `elapsed ${clock(now)}, ~${clock(left)} left`,
    );
    return took;
  }
}
