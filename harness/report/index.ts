// `pinlab report`, `--html DIR` of run and replay, and the campaign's summary page: a failing case
// replayed deterministically with machine snapshots, written as one self-contained HTML file
// (docs/report.md).
import * as path from 'node:path';
import type { CaseResult, Failure } from '../run_case';
import { CaseError } from '../run_case';
import type { CampaignDoc } from '../campaign';
import { loadRegression, replayFile, mkdirs, RegressionFile, PoolHolder, RunSummary, ReplayResult } from '../runner';
import type { Interrupt } from '../signals';
import { buildReportData, ReportSource } from './data';
import { renderReport, escapeHtml } from './html';
import { campaignPage } from './campaign_page';
import { readInput } from '../input';
import { writeFileAtomic } from '../io';

export { buildReportData, renderReport };

/** The failure a report shows: the recorded property's, else the first, else a note that none recurred. */
export function reportFailure(r: CaseResult, property: string): Failure {
  const last = r.ring.length ? r.ring[r.ring.length - 1]!.seq + 1 : 0;
  return (
    r.failures.find((f) => f.property === property) ??
    r.failures[0] ?? { property, message: `${property} did not fail in this replay: every property held`, seq: last }
  );
}

/** The HTML of a source. */
export function reportHtml(src: ReportSource): string {
  return renderReport(buildReportData(src));
}

/** Write a file atomically (temporary file, then rename); one line on failure. */
export function writeHtml(file: string, html: string): void {
  const dir = path.dirname(path.resolve(file));
  try {
    mkdirs(dir);
    writeFileAtomic(file, html);
  } catch (e) {
    throw new CaseError((e as Error).message); // bad --html / -o: one line, exit 2
  }
}

interface SourceOptions {
  kernel?: string;
  timeoutMs?: number;
  holder?: PoolHolder;
  interrupt?: Interrupt;
  /** the replay command to show (default: pinlab replay FILE) */
  replay?: string;
}

/** A regression file's case replayed with snapshots, as a report source. */
export async function regressionSource(
  file: string | undefined,
  reg: RegressionFile,
  opts: SourceOptions = {},
): Promise<ReportSource> {
  const replayed = await replayFile(reg, opts.kernel, opts.timeoutMs, opts.holder, opts.interrupt, true);
  return replayedSource(file, reg, replayed, opts);
}

/** A replay's result (taken with snapshots) as a report source. */
export function replayedSource(
  file: string | undefined,
  reg: RegressionFile,
  replayed: ReplayResult,
  opts: Pick<SourceOptions, 'kernel' | 'replay'> = {},
): ReportSource {
  const cs = opts.kernel ? { ...reg.case, variant: opts.kernel } : reg.case;
  return {
    cs,
    result: replayed.result,
    failure: reportFailure(replayed.result, reg.property),
    suite: reg.suite,
    seed: reg.seed,
    path: reg.path,
    file,
    recordedHash: opts.kernel ? undefined : reg.trace_hash,
    reproduced: replayed.asRecorded,
    replay: opts.replay ?? `pinlab replay ${file}${opts.kernel ? ` --kernel ${opts.kernel}` : ''}`,
  };
}

/**
 * `pinlab run --html DIR`: each failure of a run, its shrunk case replayed deterministically with
 * snapshots, as DIR/<name>.html. Returns the files written.
 */
export async function writeRunReports(
  s: RunSummary,
  dir: string,
  opts: { timeoutMs?: number; interrupt?: Interrupt } = {},
): Promise<string[]> {
  const out: string[] = [];
  for (const f of s.failures) {
    if (opts.interrupt?.stopped) break;
    const reg: RegressionFile = {
      suite: f.suite,
      seed: f.seed,
      path: f.path,
      variant: f.variant,
      property: f.property,
      verdict: 'fail',
      trace_hash: f.trace_hash,
      properties: f.properties,
      case: f.case,
    };
    const src = await regressionSource(f.regression, reg, { ...opts, replay: f.replay });
    const name = `${f.suite}-${f.variant}-${f.property}-${f.seed}`.replace(/[^A-Za-z0-9_.+-]+/g, '_');
    const file = path.join(dir, `${name}.html`);
    writeHtml(file, reportHtml(src));
    out.push(file);
  }
  return out;
}

/**
 * What `pinlab report FILE` reads: a regression file, or a run's --json result whose failure was saved
 * as one (its `regression` field). Returns the regression files to report.
 */
export function reportInputs(file: string): { file: string; reg: RegressionFile }[] {
  let doc: unknown;
  try {
    doc = JSON.parse(readInput(file)); // bounded: a FIFO or a device is refused, not read for ever
  } catch {
    return [{ file, reg: loadRegression(file) }]; // loadRegression says what is wrong in one line
  }
  const failures = (doc as { failures?: unknown }).failures;
  if (!Array.isArray(failures)) return [{ file, reg: loadRegression(file) }];
  const saved = failures
    .map((f) => (f as { regression?: unknown }).regression)
    .filter((r): r is string => typeof r === 'string');
  if (!saved.length)
    throw new CaseError(`${file}: a run result with no saved failure (no failures[].regression to replay)`);
  return saved.map((r) => ({ file: r, reg: loadRegression(r) }));
}

/** The report file for a regression file in dir: its name with .html. */
export function reportName(dir: string, file: string): string {
  return path.join(dir, `${path.basename(file).replace(/\.json$/, '')}.html`);
}

/**
 * A campaign's summary page (index.html in dir): each property's row and the suite-by-shape matrix,
 * linking to a report for each failure saved as a regression file (replayed here, with snapshots).
 */
export async function writeCampaignReport(result: CampaignDoc, dir: string, interrupt?: Interrupt): Promise<string> {
  mkdirs(dir);
  const links = new Map<string, string>();
  for (const run of result.items) {
    for (const f of run.failures) {
      if (!f.regression || links.has(f.regression) || interrupt?.stopped) continue;
      try {
        const reg = loadRegression(f.regression);
        const out = reportName(dir, f.regression);
        writeHtml(out, reportHtml(await regressionSource(f.regression, reg, { interrupt })));
        links.set(f.regression, path.basename(out));
      } catch (e) {
        links.set(f.regression, `#error:${escapeHtml((e as Error).message)}`);
      }
    }
  }
  const index = path.join(dir, 'index.html');
  writeHtml(index, campaignPage(result, links));
  return index;
}
