// pinlab scenario: run scripted scenario files (docs/scenarios.md) step by step on one thread.
import { DEFAULT_VARIANT } from '../../mm/variants';
import { loadScenario, runScenario, scenarioKernels, ScenarioRun } from '../scenario';
import { Command, Io, parse, UsageError } from './command';
import { kernelFlag } from './flags';

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

/** The report of one run of a scenario file under one kernel, as text. */
function report(file: string, k: string, sc: ReturnType<typeof loadScenario>, io: Io): ScenarioRun {
  io.out(`# ${file} [${k}]: ${sc.machine.cmdline}${sc.machine.geometry ? ` (geometry ${sc.machine.geometry})` : ''}\n`);
  const run = runScenario(file, sc, (line) => io.out(line + '\n'), k);
  // a NUMA machine's zones node by node ("Node 1 Normal"); one node's as before
  const zones = run.layout.nodes
    ? run.layout.nodes.flatMap((n) => n.zones.map((z) => ({ ...z, name: `Node ${n.nid} ${z.name}` })))
    : run.layout.zones;
  io.out(
    `# zones: ${zones
      .filter((z) => z.managed || z.present)
      .map((z) => `${z.name} free ${z.free}/${z.managed}`)
      .join('; ')}\n`,
  );
  io.out(`# blocks: ${run.layout.blocks.map((b) => `memory${b.index} ${b.state} ${b.valid_zones}`).join(', ')}\n`);
  const asExpected = run.results.filter((r) => r.ok).length;
  io.out(
    `# ${run.ok ? 'ok' : 'FAILED'}: ${asExpected}/${run.results.length} steps as expected${run.panic ? ' (ended in a kernel panic)' : ''}\n`,
  );
  return run;
}

export const scenario: Command = {
  name: 'scenario',
  summary: "run a scripted scenario file (docs/scenarios.md) and print each step's result",
  help: () => SCENARIO_HELP,
  sync: true,
  run(argv, io) {
    const { values, positionals } = parse('scenario', argv, { json: { type: 'boolean' }, kernel: { type: 'string' } });
    if (values.help) {
      io.out(SCENARIO_HELP);
      return 0;
    }
    if (!positionals.length)
      throw new UsageError('scenario: give at least one scenario FILE (see pinlab scenario --help)');
    const kernel = kernelFlag(values.kernel);
    let ok = true;
    const docs: ScenarioRun[] = [];
    // every file is checked before any runs
    const loaded = positionals.map((file) => ({ file, sc: loadScenario(file) }));
    for (const { file, sc } of loaded) {
      for (const k of scenarioKernels(sc, kernel)) {
        const run = values.json ? runScenario(file, sc, undefined, k) : report(file, k, sc, io);
        ok &&= run.ok;
        if (values.json) docs.push(run);
      }
    }
    if (values.json) io.out(JSON.stringify(docs.length === 1 ? docs[0] : docs, null, 2) + '\n');
    return ok ? 0 : 1;
  },
};
