// pinlab report: a failure as one self-contained HTML file (harness/report/, docs/report.md).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { withInterrupt, signalExitCode } from '../signals';
import { reportInputs, regressionSource, reportHtml, writeHtml, reportName } from '../report/index';
import { Command, Io, parse, UsageError } from './command';
import { intFlag, kernelFlag, htmlFlag } from './flags';

const REPORT_HELP = `usage: pinlab report FILE.json [-o REPORT.html] [--kernel VARIANT] [--timeout MS]

Write a failure as one self-contained HTML file (no network): the memory map at the failing step and at
any step on a slider (zones, memory blocks, pageblock migratetypes, every frame coloured by what it
holds, the offending frames marked), the actors' timeline, the folded and filterable trace, the case
(shrunk ops, the property's promise, the kernel variant and its bugs, the command line) and the replay
command. FILE is a regression file (regressions/*.json), replayed deterministically, or the --json
result of pinlab run, whose saved failure is reported. docs/report.md says what each part shows.

options:
  -o, --output FILE   where to write (default: FILE's name with .html, in the current directory)
  --kernel VARIANT    replay the case under another kernel variant
  --timeout MS        time budget of the replay (default 60000)
  -h, --help          this text
`;

async function reportCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parse('report', argv, {
    output: { type: 'string', short: 'o' },
    kernel: { type: 'string' },
    timeout: { type: 'string' },
  });
  if (values.help) {
    io.out(REPORT_HELP);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError('report: give one FILE.json (see pinlab report --help)');
  const out = values.output as string | undefined;
  if (out === '') throw new UsageError('report: -o needs a file name');
  if (out !== undefined && fs.existsSync(out) && fs.statSync(out).isDirectory())
    throw new UsageError(`report: -o '${out}' is a directory`);
  if (out !== undefined) htmlFlag(path.dirname(out), '-o'); // its directory made and probed before the replay
  const kernel = kernelFlag(values.kernel);
  const timeoutMs = intFlag('timeout', values.timeout, 1);
  const inputs = reportInputs(positionals[0]!);
  return withInterrupt(async (interrupt) => {
    for (const [k, { file, reg }] of inputs.entries()) {
      const src = await regressionSource(file, reg, { kernel, timeoutMs, interrupt });
      if (interrupt.stopped) return signalExitCode(interrupt);
      const dest = out && k === 0 ? out : reportName(out ? path.dirname(out) : '.', file);
      const html = reportHtml(src);
      writeHtml(dest, html);
      io.out(
        `report: wrote ${dest} (${Math.ceil(Buffer.byteLength(html) / 1024)} KiB): ${src.failure.property} ` +
          `${src.reproduced ? 'reproduced' : 'NOT reproduced'}, ${src.result.snapshots?.length ?? 0} memory map steps\n`,
      );
    }
    return 0;
  });
}

export const report: Command = {
  name: 'report',
  summary: 'a failure as one self-contained HTML file: memory map, actors timeline, trace (docs/report.md)',
  help: () => REPORT_HELP,
  run: reportCommand,
};
