// Coverage-guided generation (`pinlab run --guided`, the campaign, `npm run bench -- mutation`), as
// AFL and syzkaller do: a case whose run reached something no earlier case of the search reached - a
// regression-corpus bug site, a kernel path counter in a new power-of-two bucket, a property check that
// saw something - joins a corpus, and half of the later cases are a corpus case with one component
// replaced by the same component of a freshly generated case: its schedule, its fault plan, one actor's
// program, or its machine. Every component comes from the suite's own arbitrary, so a spliced case is
// one the suite could have generated; only the odds change.
//
// The corpus is built from the cases run before, so a guided search is deterministic from its seed,
// but one case cannot be regenerated from (seed, path) alone: a failure is replayed from its saved
// file (or JSON), or by running the guided search again.
import type * as fcType from 'fast-check';
import type { Case, CaseResult } from './run_case';
import { K_OP, K_RET } from './schedctl';

/** Corpus cases kept per search (the oldest interesting cases stay: they opened the paths). */
export const GUIDED_CORPUS_MAX = 256;

/** What caseFeatures() reads of a run. */
export type FeatureInput = Pick<CaseResult, 'events' | 'sites' | 'tally'> &
  Partial<Pick<CaseResult, 'ring' | 'labels' | 'names'>>;

/**
 * The features of a run, for novelty: the bug sites, kernel paths and checks it reached, and which op
 * of each actor ran while another actor was inside or after which op of its own (an op-level
 * interleaving: "pin while cma was after isolate" is how R8's race begins).
 */
export function caseFeatures(r: FeatureInput): string[] {
  const out: string[] = interleavings(r);
  for (const [k, v] of Object.entries(r.sites ?? {})) out.push(`site:${k}:${bucket(v)}`);
  for (const [k, v] of Object.entries(r.events ?? {})) out.push(`path:${k}:${bucket(v)}`);
  for (const [k, v] of Object.entries(r.tally ?? {})) if (v.checked > 0) out.push(`saw:${k}:${bucket(v.checked)}`);
  return out;
}

function interleavings(r: FeatureInput): string[] {
  if (!r.ring || !r.labels || !r.names) return [];
  const kind = r.names.map((n) => n.replace(/-\d+$/, ''));
  const state: (string | null)[] = r.names.map(() => null);
  const out = new Set<string>();
  for (const e of r.ring) {
    if (e.kind !== K_OP && e.kind !== K_RET) continue;
    const op = r.labels.get(e.label) ?? '?';
    if (e.kind === K_OP)
      state.forEach((s, b) => {
        if (b !== e.actor && s !== null) out.add(`while:${kind[e.actor]}:${op}|${kind[b]}:${s}`);
      });
    state[e.actor] = `${e.kind === K_OP ? 'in' : 'after'}:${op}`;
  }
  return [...out];
}

/** AFL's hit-count buckets, roughly: 1, 2, 3, 4-7, 8-15, ... */
function bucket(n: number): number {
  return n <= 3 ? n : 31 - Math.clz32(n) + 2;
}

/** Which component of a corpus case a fresh case replaces. */
const SPLICES = ['schedule', 'faults', 'program', 'layout'] as const;

export class GuidedCorpus {
  readonly cases: Case[] = [];
  private readonly seen = new Set<string>();
  /** cases that joined, and cases run */
  added = 0;
  runs = 0;

  /** Note a run's features; the case joins the corpus when it reached something new. */
  observe(cs: Case, r: FeatureInput): boolean {
    this.runs++;
    let fresh = false;
    for (const f of caseFeatures(r)) {
      if (this.seen.has(f)) continue;
      this.seen.add(f);
      fresh = true;
    }
    if (fresh && this.cases.length < GUIDED_CORPUS_MAX) {
      this.cases.push(cs);
      this.added++;
    }
    return fresh;
  }

  /**
   * The search's arbitrary: fresh cases, or (once the corpus has one) a corpus case with one component
   * taken from a fresh case, one in two.
   */
  arbitrary(fc: typeof fcType, base: fcType.Arbitrary<Case>): fcType.Arbitrary<Case> {
    const spliced = fc
      .tuple(fc.nat(), fc.nat(SPLICES.length - 1), fc.nat(), base)
      .map(([pick, what, actor, fresh]) =>
        this.cases.length ? splice(this.cases[pick % this.cases.length]!, fresh, SPLICES[what]!, actor) : fresh,
      );
    return fc.oneof({ arbitrary: base, weight: 1 }, { arbitrary: spliced, weight: 1 });
  }
}

/** c with one component of fresh (both cases of the same suite). */
export function splice(c: Case, fresh: Case, what: (typeof SPLICES)[number], actor: number): Case {
  switch (what) {
    case 'schedule':
      return { ...c, schedule: fresh.schedule };
    case 'faults':
      return { ...c, faults: fresh.faults };
    case 'layout':
      return { ...c, layout: fresh.layout };
    case 'program': {
      const names = Object.keys(c.programs).filter((n) => n in fresh.programs);
      if (!names.length) return c;
      const name = names[actor % names.length]!;
      return { ...c, programs: { ...c.programs, [name]: fresh.programs[name]! } };
    }
  }
}
