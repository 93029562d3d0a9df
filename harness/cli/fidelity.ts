// pinlab fidelity (npm run fidelity): every shipped scenario the kernel can run, on each real kernel with
// --diff, written as one markdown table of where the model and the kernel agree (docs/fidelity.md).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadScenario, ScenarioError } from '../scenario';
import { compileScenario } from '../kernel_compile';
import { checkKernelSpec, prepare, SetupError } from '../kernel_setup';
import { Command, Io, parse, noPositionals, UsageError } from './command';
import { intFlag } from './flags';
import { kernel as kernelCmd } from './kernel';

const FIDELITY_HELP = `usage: pinlab fidelity [--kernel K[,K...]] [--out FILE] [--jobs N] [--timeout S]

Run every shipped scenario (scenarios/ and its folders) that a real kernel can run on each kernel
(default debian:6.12,debian:6.1) with pinlab kernel --diff, and write where the model and the kernel
agree as markdown (default docs/fidelity.md): per scenario and kernel, the steps whose comparable facts
agree and every fact that differs, the counters and memory blocks that differ, and the scenarios the
kernel cannot run, with why. Needs what pinlab kernel needs (QEMU, the kernel packages).
Exit code 0 when the file was written, 2 for bad input or a missing tool.
`;

/** One scenario on one kernel, as the table shows it. */
export interface FidelityRow {
  file: string;
  kernel: string;
  release: string;
  variant: string;
  agree: number;
  total: number;
  /** "step 4 pin: zones: model Movable 1, kernel Normal 1", counters and blocks too */
  differs: string[];
  /** the run broke (no report): why */
  error?: string;
}

export interface DiffDoc {
  file: string;
  kernel: string;
  release?: string;
  variant?: string;
  error?: string;
  model_error?: string;
  diff?: {
    agree: number;
    total: number;
    steps: { step: number; op: string; differs: Record<string, [string, string]> }[];
    counters: { name: string; model: number | null; kernel: number | null; compared: boolean }[];
    blocks: { block: string; model: string; kernel: string }[];
  };
}

/** A `pinlab kernel --diff --json` document as a row. */
export function fidelityRow(d: DiffDoc): FidelityRow {
  const row: FidelityRow = {
    file: d.file,
    kernel: d.kernel,
    release: d.release ?? '?',
    variant: d.variant ?? '?',
    agree: 0,
    total: 0,
    differs: [],
  };
  if (!d.diff) return { ...row, error: d.error ?? d.model_error ?? 'no report' };
  row.agree = d.diff.agree;
  row.total = d.diff.total;
  for (const s of d.diff.steps) {
    for (const [fact, [model, kern]] of Object.entries(s.differs))
      row.differs.push(`step ${s.step} ${s.op}: ${fact}: model ${model}, kernel ${kern}`);
  }
  for (const c of d.diff.counters) {
    if (c.compared && c.model !== c.kernel) row.differs.push(`counter ${c.name}: model ${c.model}, kernel ${c.kernel}`);
  }
  for (const b of d.diff.blocks) row.differs.push(`${b.block}: model ${b.model}, kernel ${b.kernel}`);
  if (d.error) row.error = d.error;
  return row;
}

const cell = (s: string): string => s.replace(/\|/g, '\\|');

/** docs/fidelity.md: the summary table, each row's differences, and what was refused. */
export function fidelityMarkdown(rows: FidelityRow[], refused: { file: string; why: string }[]): string {
  const kernels = [...new Set(rows.map((r) => `${r.kernel} (${r.release}, model ${r.variant})`))];
  const out = [
    '# Fidelity: the model against real kernels',
    '',
    'Written by `npm run fidelity` (`pinlab fidelity`): every shipped scenario a real kernel can run, run on',
    `each kernel under QEMU and on the model variant for its release, compared fact by fact (\`pinlab kernel`,
    '--diff`, docs/real-kernel.md says what is compared). Kernels: ' + kernels.join('; ') + '.',
    '',
    '| scenario | kernel | steps agreeing | facts differing |',
    '|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| \`${r.file}\` | ${r.kernel} | ${r.error ? `run failed: ${cell(r.error)}` : `${r.agree}/${r.total}`} | ${r.differs.length} |`,
    ),
    '',
  ];
  const agree = rows.filter((r) => !r.error && !r.differs.length).length;
  out.push(`${agree} of ${rows.length} runs agree on every compared fact.`, '');
  for (const r of rows.filter((x) => x.differs.length)) {
    out.push(`## \`${r.file}\` on ${r.kernel}`, '', ...r.differs.map((d) => `- ${d}`), '');
  }
  if (refused.length) {
    out.push('## Not run on a real kernel', '', '| scenario | why |', '|---|---|');
    out.push(...refused.map((x) => `| \`${x.file}\` | ${cell(x.why)} |`), '');
  }
  return out.join('\n');
}

/** Every scenario file under root (scenarios/), sorted. */
export function scenarioFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.ya?ml$/.test(e.name)) out.push(p);
    }
  };
  walk(root);
  return out.sort();
}

async function fidelityCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parse('fidelity', argv, {
    kernel: { type: 'string' },
    out: { type: 'string' },
    jobs: { type: 'string' },
    timeout: { type: 'string' },
  });
  noPositionals('fidelity', positionals);
  if (values.help) {
    io.out(FIDELITY_HELP);
    return 0;
  }
  const kernels = String(values.kernel ?? 'debian:6.12,debian:6.1')
    .split(',')
    .filter(Boolean);
  try {
    for (const k of kernels) checkKernelSpec(k);
  } catch (e) {
    if (e instanceof SetupError) throw new UsageError(`fidelity: ${e.message}`);
    throw e;
  }
  const jobs = intFlag('jobs', values.jobs as string | undefined, 1) ?? 2;
  const timeout = intFlag('timeout', values.timeout as string | undefined, 1);
  const outFile = String(values.out ?? path.join('docs', 'fidelity.md'));
  const refused: { file: string; why: string }[] = [];
  const runnable: string[] = [];
  for (const file of scenarioFiles('scenarios')) {
    try {
      compileScenario(file, loadScenario(file));
      runnable.push(file);
    } catch (e) {
      if (!(e instanceof ScenarioError)) throw e;
      refused.push({ file, why: e.message.replace(`${file}: `, '') });
    }
  }
  // fetch each kernel and build the initramfs once, before guests run side by side
  try {
    for (const k of kernels) prepare(k, { log: (s: string) => io.err(s + '\n') });
  } catch (e) {
    if (e instanceof SetupError) {
      io.err(`pinlab: fidelity: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  const rows: FidelityRow[] = [];
  const queue = runnable.flatMap((file) => kernels.map((k) => ({ file, k })));
  const worker = async (): Promise<void> => {
    for (let j = queue.shift(); j; j = queue.shift()) {
      let text = '';
      let err = '';
      const argv2 = [j.file, '--kernel', j.k, '--diff', '--json', ...(timeout ? ['--timeout', String(timeout)] : [])];
      let code: number;
      try {
        code = await kernelCmd.run(argv2, { out: (s) => void (text += s), err: (s) => void (err += s) });
      } catch (e) {
        // refused against the kernel's own .config (cma= without CONFIG_CMA): a refusal, as compiling is
        if (!(e instanceof ScenarioError)) throw e;
        refused.push({ file: j.file, why: `${j.k}: ${e.message.replace(`${j.file}: `, '')}` });
        continue;
      }
      if (code === 2 || !text) {
        refused.push({ file: j.file, why: `${j.k}: ${err.trim().split('\n').pop() ?? 'refused'}` });
        continue;
      }
      const row = fidelityRow(JSON.parse(text) as DiffDoc);
      rows.push(row);
      io.err(`pinlab: fidelity: ${j.file} on ${j.k}: ${row.agree}/${row.total} steps agree\n`);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, jobs) }, worker));
  rows.sort((a, b) => a.file.localeCompare(b.file) || a.kernel.localeCompare(b.kernel));
  refused.sort((a, b) => a.file.localeCompare(b.file));
  fs.writeFileSync(outFile, fidelityMarkdown(rows, refused));
  io.out(`wrote ${outFile}: ${rows.length} runs, ${refused.length} refused\n`);
  return 0;
}

export const fidelity: Command = {
  name: 'fidelity',
  summary: 'run the shipped scenarios on real kernels and the model; write docs/fidelity.md',
  help: () => FIDELITY_HELP,
  run: fidelityCommand,
};
