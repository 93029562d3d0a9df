// pinlab campaign (and npm start): the default property campaign. See harness/campaign.ts.
import { randomInt } from 'node:crypto';
import { DEFAULT_VARIANT } from '../../mm/variants';
import { runCampaign, campaignShapeNote, formatCampaign, CAMPAIGN_SHAPES } from '../campaign';
import { withInterrupt, signalExitCode } from '../signals';
import { Command, Io, parse, noPositionals } from './command';
import { intFlag, kernelFlag, seedFlag, regressionsFlag, htmlFlag } from './flags';
import { writeCampaignReport } from '../report/index';

const CAMPAIGN_HELP = `usage: pinlab campaign [--kernel VARIANT] [--seed N] [--runs N] [--time SECONDS] [--regressions DIR]

The default property campaign (what 'npm start' runs): every suite (pinlab run --help lists them: the
long-term pinner agents and one suite per device model) against the kernel variant, on ${CAMPAIGN_SHAPES.length} miniature
machine shapes, each case checked for every property during and after the run. Ends with a table per
property (cases, steps, verdict, time) and the replay line of each failure, which is also saved under
regressions/. Bounded: suite runs stop starting after --time seconds (default 60).

options:
  --kernel V        kernel variant (default ${DEFAULT_VARIANT}); try v5.12 to watch properties fail
  --seed N          base seed (default random, printed); suite run i uses N + i
  --runs N          cases per suite and machine shape (default: 10x each suite's own, 500-1000)
  --time S          time budget in seconds (default 60)
  --regressions D   where failures are saved (default regressions; 'none' to save nothing)
  --html DIR        also write DIR/index.html (properties, suites by shape) and a report per failure
Exit code 0 when every property held, 1 when one failed (also when a signal then cut the campaign
short), 2 on bad input, 130 when Ctrl-C interrupted it (143 for SIGTERM): the table then says which
suite runs were cut short or not run.
`;

async function campaignCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parse('campaign', argv, {
    kernel: { type: 'string' },
    seed: { type: 'string' },
    runs: { type: 'string' },
    time: { type: 'string' },
    regressions: { type: 'string' },
    html: { type: 'string' },
  });
  if (values.help) {
    io.out(CAMPAIGN_HELP);
    return 0;
  }
  noPositionals('campaign', positionals);
  const variant = kernelFlag(values.kernel) ?? DEFAULT_VARIANT;
  const seed = seedFlag(values.seed) ?? randomInt(2 ** 31 - 1);
  const runs = intFlag('runs', values.runs, 1);
  // the hard stop at twice the budget is a setTimeout, which takes at most 2^31-1 ms
  const timeSec = intFlag('time', values.time, 1, 1_000_000) ?? 60;
  const regressionsDir = regressionsFlag(values.regressions);
  const htmlDir = htmlFlag(values.html);
  io.out(
    `# pinlab campaign --kernel ${variant} --seed ${seed}${runs ? ` --runs ${runs}` : ''} --time ${timeSec}: ` +
      `${campaignShapeNote()}\n`,
  );
  return withInterrupt(async (interrupt) => {
    const r = await runCampaign({
      variant,
      seed,
      runs,
      timeSec,
      regressionsDir,
      tty: process.stderr.isTTY === true,
      interrupt,
      io,
    });
    io.out(formatCampaign(r, variant));
    if (htmlDir) io.err(`report: wrote ${await writeCampaignReport(r, htmlDir, interrupt)}\n`);
    if (r.verdict === 'fail') return 1;
    return r.verdict === 'interrupted' ? signalExitCode(interrupt) : 0;
  });
}

export const campaign: Command = {
  name: 'campaign',
  summary: 'the default property campaign: every suite on several machine shapes (what npm start runs)',
  help: () => CAMPAIGN_HELP,
  run: campaignCommand,
};
