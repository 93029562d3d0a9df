// Time to first failure and shrunk size per (property, breaking variant): every entry of
// harness/mutations.ts searched from 20 random seeds (printed, so any row can be rerun), median over
// the seeds. "first failure" is from the start of `pinlab run` (pool start-up included) to the first
// failing case, before shrinking; "with shrinking" is the whole run.
import { randomInt } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { KERNEL_MUTATIONS, DEVICE_MUTATIONS, runMutation, Mutation } from '../harness/mutations';
import { onCurrentCpu } from '../harness/affinity';
import { median } from './table';

type Row = Record<string, string | number>;

const SEEDS = 20;
/** cases a search may take before the seed counts as "not found" */
const RUNS_CAP = 5000;

export async function mutationRows(only?: string): Promise<Row[]> {
  const rows: Row[] = [];
  // PINLAB_BENCH_ONLY=kernel | device | a substring of "<variant> <bugs>"
  const entries: Mutation[] =
    only === 'kernel'
      ? KERNEL_MUTATIONS
      : only === 'device'
        ? DEVICE_MUTATIONS
        : [...KERNEL_MUTATIONS, ...DEVICE_MUTATIONS].filter(
            (mu) => !only || `${mu.variant} ${mu.bugs?.join(',') ?? ''}`.includes(only),
          );
  // the searches run as pinlab run does: this thread and its actor workers on one CPU (harness/affinity.ts)
  return onCurrentCpu(async () => {
    for (const [e, mu] of entries.entries()) rows.push(await entryRow(mu, e, entries.length));
    return rows;
  });
}

async function entryRow(mu: Mutation, e: number, count: number): Promise<Row> {
  const first: number[] = [];
  const firstCases: number[] = [];
  const total: number[] = [];
  const ops: number[] = [];
  const seeds: number[] = [];
  let missed = 0;
  for (let k = 0; k < SEEDS; k++) {
    const seed = randomInt(2 ** 31 - 1);
    seeds.push(seed);
    const t0 = performance.now();
    const r = await runMutation(mu, seed, RUNS_CAP, () => performance.now());
    const f = r.summary.failures[0];
    if (!f || f.property !== mu.property) {
      missed++;
      continue;
    }
    first.push(r.firstSeconds);
    firstCases.push(r.firstCases);
    total.push((performance.now() - t0) / 1000);
    ops.push(r.ops);
  }
  const row: Row = {
    property: mu.property,
    breaker: `${mu.variant}${mu.bugs?.length ? ` --bug ${mu.bugs.join(',')}` : ''}`,
    suite: mu.suite,
    found: `${SEEDS - missed}/${SEEDS}`,
    'median first failure s': +median(first).toFixed(2),
    'median cases': median(firstCases),
    'median with shrinking s': +median(total).toFixed(2),
    'median shrunk ops': median(ops),
    'max shrunk ops': ops.length ? Math.max(...ops) : NaN,
    seeds: seeds.join(' '),
    'what the bug is': mu.why,
    kind: DEVICE_MUTATIONS.includes(mu) ? 'device' : 'kernel',
  };
  process.stderr.write(
    `mutation [${e + 1}/${count}]: ${row.breaker} -> ${row.property}: found ${row.found}, first failure ${row['median first failure s']} s (${row['median cases']} cases), shrunk ${row['median shrunk ops']} ops\n`,
  );
  return row;
}

/** The markers around each generated table in docs/properties.md. */
export function tableMarkers(kind: 'kernel' | 'device'): [string, string] {
  return [
    `<!-- BEGIN npm run bench -- --write mutation: ${kind} -->`,
    `<!-- END npm run bench -- --write mutation: ${kind} -->`,
  ];
}

const s2 = (x: unknown): string => (typeof x === 'number' && Number.isFinite(x) ? `${x} s` : '—');
const n2 = (x: unknown): string => (typeof x === 'number' && Number.isFinite(x) ? String(x) : '—');

/** docs/properties.md's table of one kind, from the benchmark's rows, with how it was measured. */
export function mutationTable(rows: Row[], kind: 'kernel' | 'device', measured: string): string {
  const head =
    kind === 'kernel'
      ? '| property | broken by | what the bug is | found | median first failure | median cases | median with shrinking | median / max shrunk ops |'
      : '| property | model and bug | what the bug is | found | median first failure | median cases | median with shrinking | median / max shrunk ops |';
  const lines = [measured, '', head, '|---|---|---|---|---|---|---|---|'];
  for (const r of rows.filter((x) => x.kind === kind)) {
    const breaker =
      kind === 'kernel'
        ? `\`${r.breaker}\`${r.suite !== 'longterm-pin' ? ` (${r.suite})` : ''}`
        : `\`${String(r.breaker).replace(/^v[^ ]* --bug /, `${r.suite} --bug `)}\``;
    lines.push(
      `| \`${r.property}\` | ${breaker} | ${r['what the bug is']} | ${r.found} | ${s2(r['median first failure s'])} | ` +
        `${n2(r['median cases'])} | ${s2(r['median with shrinking s'])} | ${n2(r['median shrunk ops'])} / ${n2(r['max shrunk ops'])} |`,
    );
  }
  return lines.join('\n');
}

/** The document with the table of that kind between its markers replaced; throws when a marker is missing. */
export function replaceTable(doc: string, kind: 'kernel' | 'device', table: string): string {
  const [begin, end] = tableMarkers(kind);
  const i = doc.indexOf(begin);
  const j = doc.indexOf(end);
  if (i < 0 || j < i) throw new Error(`docs/properties.md: no '${begin}' ... '${end}'`);
  return `${doc.slice(0, i + begin.length)}\n${table}\n${doc.slice(j)}`;
}
