// The pinlab command line. Every verb has --help; bad input is one line on stderr and exit 2.
import { parseArgs } from 'node:util';
import { CmdlineError, DEFAULT_CMDLINE } from '../mm/cmdline';
import { bootFromSpec, layoutJson, layoutText } from './layout';
import { loadScenario, runScenario, scenarioKernels, ScenarioError } from './scenario';
import { pinFractionTable, formatPinFraction } from './pin_fraction';
import { parseVariant, VariantError, VARIANT_NAMES, BUGS, DEFAULT_VARIANT } from '../mm/variants';
import { ASYNC_VERBS as RUN_VERBS } from './cli_run';
import { cmdCampaign } from './cli_campaign';
import { cmdKernel } from './cli_kernel';

const ASYNC_VERBS: Record<string, (argv: string[], io: Io) => Promise<number>> = { ...RUN_VERBS, campaign: cmdCampaign, kernel: cmdKernel };
import { CaseError } from './run_case';
import { adoptProcessSignals, signalExitCode, ProcessSignals } from './signals';
import { own } from '../mm/own';

export class UsageError extends Error {
  constructor(msg: string) {
    super(msg);
    this.name = 'UsageError';
  }
}

export interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
}

const MAIN_HELP = `usage: pinlab <verb> [options]

Simulated Linux memory manager for long-term pinning, ZONE_MOVABLE, CMA and memory offlining.

verbs:
  layout     boot a machine from a kernel command line and show its zones, free lists and memory blocks
  scenario   run a scripted scenario file (docs/scenarios.md) and print each step's result
  variants   list the kernel variants and bug switches (--kernel v6.12+R3)
  run        run a property suite: actors in worker threads, seeded schedules and faults (docs/harness.md)
  replay     reproduce a failure from a regressions/*.json file, or from --seed and --path
  campaign   the default property campaign: every suite on several machine shapes (what npm start runs)
  pin-fraction  how much of memory can be pinned long-term for each kernelcore= share (S2)
  kernel     run scenario files on a real Linux kernel under QEMU; --diff sets the model beside it

Run 'pinlab <verb> --help' for a verb's options. With no verb, pinlab runs the main job: the default
property campaign (pinlab campaign).
`;

const LAYOUT_HELP = `usage: pinlab layout [--cmdline "..."] [--geometry G] [--json] [--pcp]

Boot a machine and print it the way the kernel shows it: the boot log's zone ranges, /proc/zoneinfo,
/proc/pagetypeinfo, and /sys/devices/system/memory/memoryN/{state,valid_zones,removable}.

options:
  --cmdline "..."   kernel command line (default: "${DEFAULT_CMDLINE}")
  --geometry G      x86_64 (default: 4K pages, pageblock_order 9, MAX_PAGE_ORDER 10, 128M blocks, 8 CPUs)
                    or mini (8-frame pageblocks, orders 0..4, 32-frame blocks, no DMA/DMA32 zones),
                    optionally followed by overrides: mini,pageblock_order=3,max_order=4,block_pages=32,cpus=4
                    and kernel_pfn=N (where the kernel image and ZERO_PAGE sit: physical KASLR)
  --json            the same as JSON (zones[], blocks[] with the kernel's field names)
  -h, --help        this text

kernel parameters honoured (kernel semantics and units: K/M/G, % where the kernel allows it):
  mem=  kernelcore=  movablecore=  cma=size[@base[-limit]]  movable_node  memhp_default_state=
  memory_hotplug.online_policy=contig-zones|auto-movable  memory_hotplug.auto_movable_ratio=
  hugepagesz=  hugepages=  default_hugepagesz=  sysctl.vm.min_free_kbytes=  min_free_kbytes=
  sysctl.vm.watermark_scale_factor=  transparent_hugepage=always|madvise|never
  pinlab.hotplug=SIZE   hot-pluggable memory that boots offline (onlined per memhp_default_state)
`;

type Flags = Record<string, string | boolean | undefined>;
type OptionSpec = Record<string, { type: 'string' | 'boolean'; short?: string }>;

/** A value from the command line, quoted for a message, cut short when long. */
export function shown(v: unknown): string {
  const s = String(v);
  return `'${s.length > 60 ? `${s.slice(0, 57)}...` : s}'`;
}

/** Integer flags (--seed, --runs, --timeout, --time, --chunk, --kernelcore): decimal digits only, min..max. */
export const INT_MAX = 2 ** 31 - 1;
export function intFlag(name: string, v: string | boolean | undefined, min: number, max = INT_MAX): number | undefined {
  if (v === undefined) return undefined;
  const n = typeof v === 'string' && /^-?[0-9]+$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`--${name}: ${shown(v)} is not an integer ${min}..${max}`);
  }
  return n;
}

/** util.parseArgs, strict; any mistake becomes a one-line UsageError naming the verb. */
export function parse(verb: string, argv: string[], options: OptionSpec): { values: Flags; positionals: string[] } {
  try {
    const r = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
    return { values: r.values as Flags, positionals: r.positionals };
  } catch (e) {
    throw new UsageError(`${verb}: ${(e as Error).message.split(/\. |\n/)[0]}`);
  }
}

function cmdLayout(argv: string[], io: Io): number {
  const { values, positionals } = parse('layout', argv, {
    cmdline: { type: 'string' }, geometry: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
  });
  if (positionals.length) throw new UsageError(`layout: unexpected argument '${positionals[0]}' (quote the command line: --cmdline "...")`);
  if (values.help) { io.out(LAYOUT_HELP); return 0; }
  const { m, params } = bootFromSpec({ cmdline: (values.cmdline as string | undefined) ?? DEFAULT_CMDLINE, geometry: values.geometry as string | undefined });
  io.out(values.json ? JSON.stringify(layoutJson(m, params), null, 2) + '\n' : layoutText(m, params));
  return 0;
}

const SCENARIO_HELP = `usage: pinlab scenario FILE... [--kernel VARIANT] [--json]

Run scenario files (YAML or JSON; format in docs/scenarios.md): boot the machine, run each step on one
thread, deterministically, printing its result (errno, pages, zones), then the final zones and blocks.
A file runs once under each of its 'kernels:' (or machine.kernel, or ${DEFAULT_VARIANT}).
Exit code 0 when every step's 'expect:' held, 1 when one did not, 2 for a bad file.

options:
  --kernel V    run under this kernel variant only, e.g. v5.12 or v6.12+R3 (pinlab variants lists them)
  --json        one JSON document per file: results[], layout, vmstat
  -h, --help    this text
`;

function cmdScenario(argv: string[], io: Io): number {
  const { values, positionals } = parse('scenario', argv, { json: { type: 'boolean' }, kernel: { type: 'string' }, help: { type: 'boolean', short: 'h' } });
  if (values.help) { io.out(SCENARIO_HELP); return 0; }
  if (!positionals.length) throw new UsageError('scenario: give at least one scenario FILE (see pinlab scenario --help)');
  const kernel = values.kernel as string | undefined;
  if (kernel !== undefined) checkKernelFlag(kernel);
  let ok = true;
  const docs: unknown[] = [];
  const loaded = positionals.map((file) => ({ file, sc: loadScenario(file) })); // every file is checked before any runs
  for (const { file, sc } of loaded) {
   for (const k of scenarioKernels(sc, kernel)) {
    if (!values.json) io.out(`# ${file} [${k}]: ${sc.machine.cmdline}${sc.machine.geometry ? ` (geometry ${sc.machine.geometry})` : ''}\n`);
    const run = runScenario(file, sc, values.json ? undefined : (line) => io.out(line + '\n'), k);
    ok &&= run.ok;
    if (values.json) docs.push(run);
    else {
      io.out(`# zones: ${run.layout.zones.filter((z) => z.managed || z.present).map((z) => `${z.name} free ${z.free}/${z.managed}`).join('; ')}\n`);
      io.out(`# blocks: ${run.layout.blocks.map((b) => `memory${b.index} ${b.state} ${b.valid_zones}`).join(', ')}\n`);
      io.out(`# ${run.ok ? 'ok' : 'FAILED'}: ${run.results.filter((r) => r.ok).length}/${run.results.length} steps as expected${run.panic ? ' (ended in a kernel panic)' : ''}\n`);
    }
   }
  }
  if (values.json) io.out(JSON.stringify(docs.length === 1 ? docs[0] : docs, null, 2) + '\n');
  return ok ? 0 : 1;
}

function checkKernelFlag(k: string): void {
  try { parseVariant(k); } catch (e) {
    if (e instanceof VariantError) throw new UsageError(`--kernel: ${e.message}`);
    throw e;
  }
}

const VARIANTS_HELP = `usage: pinlab variants [--json]

List the kernel variants (--kernel NAME) and the bug switches from the regression corpus that can be
added to any of them (--kernel v6.12+R3) or removed (--kernel v6.1+-R10). docs/kernel-variants.md has more.
`;

function cmdVariants(argv: string[], io: Io): number {
  const { values, positionals } = parse('variants', argv, { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } });
  if (positionals.length) throw new UsageError(`variants: unexpected argument '${positionals[0]}'`);
  if (values.help) { io.out(VARIANTS_HELP); return 0; }
  const variants = VARIANT_NAMES.map((n) => {
    const v = parseVariant(n);
    return { name: n, default: n === DEFAULT_VARIANT, commit: v.commit, summary: v.summary, bugs: [...v.bugs] };
  });
  if (values.json) { io.out(JSON.stringify({ variants, bugs: BUGS }, null, 2) + '\n'); return 0; }
  io.out('kernel variants:\n');
  for (const v of variants) {
    io.out(`  ${v.name.padEnd(10)} ${v.summary}${v.default ? ' [default]' : ''}\n  ${''.padEnd(10)} from ${v.commit}${v.bugs.length ? `; has ${v.bugs.join(' ')}` : ''}\n`);
  }
  io.out('\nbug switches (+Rn adds one, +-Rn removes one):\n');
  for (const b of BUGS) io.out(`  ${b.id.padEnd(4)} ${b.what}\n       fixed by ${b.commit}\n`);
  return 0;
}

const PIN_FRACTION_HELP = `usage: pinlab pin-fraction [--cmdline "mem=1G"] [--geometry G] [--kernel V] [--kernelcore 10,20,...]
                           [--share 0.9] [--chunk PAGES] [--json]

"Can standard systems still pin > 80% of memory?" For each kernelcore= share (appended to --cmdline), a process
maps --share of managed memory and pins it long-term in --chunk pages (default 512, a 2M MAP_DMA) until a pin
fails: once with fresh memory (GUP faults it in, inside PF_MEMALLOC_PIN: straight into the kernel zones) and
once prefaulted (the guest touched it first: it sits in ZONE_MOVABLE and must migrate, and its unpinned pages
already fill the kernel zones). Prints the pinned share of managed memory and how the pinning ended.
`;

function cmdPinFraction(argv: string[], io: Io): number {
  const { values, positionals } = parse('pin-fraction', argv, {
    cmdline: { type: 'string' }, geometry: { type: 'string' }, kernel: { type: 'string' }, kernelcore: { type: 'string' },
    share: { type: 'string' }, chunk: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
  });
  if (positionals.length) throw new UsageError(`pin-fraction: unexpected argument '${positionals[0]}'`);
  if (values.help) { io.out(PIN_FRACTION_HELP); return 0; }
  const kernel = values.kernel as string | undefined;
  if (kernel !== undefined) checkKernelFlag(kernel);
  const base = (values.cmdline as string | undefined) ?? 'mem=1G';
  if (/\b(kernelcore|movablecore)=/.test(base)) throw new UsageError('pin-fraction: --cmdline must not set kernelcore= or movablecore= (the verb varies kernelcore=)');
  const pcts = ((values.kernelcore as string | undefined) ?? '10,20,30,40,50,60,70,80,90').split(',')
    .map((x) => intFlag('kernelcore', x, 1, 99)!);
  const shareText = values.share as string | undefined;
  const decimal = shareText !== undefined && shareText !== '' && /^(0|1)?(\.[0-9]+)?$/.test(shareText);
  const share = shareText === undefined ? 0.9 : decimal ? Number(shareText) : NaN;
  if (!(share > 0 && share <= 1)) throw new UsageError(`--share: '${String(shareText)}' is not a fraction in (0, 1]`);
  const chunk = intFlag('chunk', values.chunk, 1) ?? 512;
  bootFromSpec({ cmdline: `${base} kernelcore=${pcts[0]}%`, geometry: values.geometry as string | undefined }); // validate once
  const rows = pinFractionTable(pcts, { base, geometry: values.geometry as string | undefined, kernel, share, chunk });
  if (values.json) io.out(JSON.stringify({ cmdline: base, kernel: kernel ?? DEFAULT_VARIANT, share, chunk, rows }, null, 2) + '\n');
  else io.out(`# ${base} kernelcore=N%, kernel ${kernel ?? DEFAULT_VARIANT}, mapping ${share * 100}% of managed memory, pinned in ${chunk}-page chunks\n${formatPinFraction(rows)}`);
  return 0;
}

const VERBS: Record<string, (argv: string[], io: Io) => number> = {
  layout: cmdLayout,
  scenario: cmdScenario,
  variants: cmdVariants,
  'pin-fraction': cmdPinFraction,
};

/** Bad input: one line on stderr, exit code 2. */
function badInput(e: unknown): e is Error {
  return e instanceof UsageError || e instanceof CmdlineError || e instanceof ScenarioError || e instanceof CaseError
    || e instanceof VariantError;
}

/** An error's message as one line (a bad file's name or value may hold newlines). */
export function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, ' ').trim();
}

/** Runs one command; returns the exit code (0 ok, 1 a property failed or a run broke, 2 bad input). */
export function main(argv: string[], io: Io): number {
  try {
    if (argv.length === 0) return cmdLayout([], io);
    const [verb, ...rest] = argv as [string, ...string[]];
    if (verb === '--help' || verb === '-h' || verb === 'help') { io.out(MAIN_HELP); return 0; }
    const fn = own(VERBS, verb);
    if (own(ASYNC_VERBS, verb)) throw new UsageError(`${verb}: runs asynchronously (call mainAsync)`);
    if (!fn) throw new UsageError(`unknown verb '${verb}' (verbs: ${[...Object.keys(VERBS), ...Object.keys(ASYNC_VERBS)].join(', ')}; see pinlab --help)`);
    return fn(rest, io);
  } catch (e) {
    if (badInput(e)) {
      io.err(`pinlab: ${oneLine(e.message)}\n`);
      return 2;
    }
    throw e;
  }
}

/** main() for every verb, including the asynchronous ones (run, replay): resolves to the exit code. */
export async function mainAsync(argv: string[], io: Io): Promise<number> {
  // no verb: the main job, the default property campaign
  const fn = argv.length ? own(ASYNC_VERBS, argv[0]!) : cmdCampaign;
  try {
    return fn ? await fn(argv.slice(1), io) : main(argv, io);
  } catch (e) {
    if (badInput(e)) {
      io.err(`pinlab: ${oneLine(e.message)}\n`);
      return 2;
    }
    io.err(`pinlab: internal error: ${oneLine(String((e as Error)?.message ?? e))}\n`);
    return 1;
  }
}

/**
 * The process entry (bin/pinlab.js): stdout/stderr and the exit code. signals: the handlers bin/pinlab.js
 * installed before anything else (a signal that came since is in signals.interrupt).
 */
export function run(argv: string[], signals?: ProcessSignals): void {
  const io: Io = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) };
  adoptProcessSignals(signals ?? null);
  if (signals && !(argv.length === 0 || Object.hasOwn(ASYNC_VERBS, argv[0]!))) {
    // a verb that computes without yielding never sees a signal: it ends the process instead
    if (signals.interrupt.stopped) {
      io.err(`pinlab: interrupted (${signals.interrupt.signal ?? 'SIGINT'})\n`);
      process.exitCode = signalExitCode(signals.interrupt);
      return;
    }
    signals.release();
  }
  void mainAsync(argv, io).then((code) => {
    process.exitCode = code;
  });
}
