// pinlab campaign (and npm start): the default property campaign; pinlab merge: shards into one verdict.
// See harness/campaign.ts.
import { randomInt } from 'node:crypto';
import { DEFAULT_VARIANT } from '../../mm/variants';
import {
  runCampaign,
  campaignPlan,
  campaignShapeNote,
  defaultJobs,
  CAMPAIGN_SHAPES,
  CAMPAIGN_RUNS_FACTOR,
  EXIT_INCOMPLETE,
  type CampaignDoc,
} from '../campaign';
import { formatCampaign, campaignJunit, campaignJson } from '../campaign_format';
import { writeFileAtomic } from '../io';
import { mergeCampaignDocs, parseCampaignDoc } from '../campaign_merge';
import { readInput, badFileMessage } from '../input';
import { withInterrupt, signalExitCode, type Interrupt } from '../signals';
import { Command, Io, parse, noPositionals, UsageError, type Flags } from './command';
import { intFlag, kernelFlag, seedFlag, saveFlag, DEFAULT_SAVE_DIR, htmlFlag } from './flags';
import { writeCampaignReport } from '../report/index';

const OUTPUT_HELP = `  --json FILE       write the campaign as JSON (schema in docs/campaign.md), for tools and pinlab merge
  --junit FILE      write JUnit XML: a test case per suite run and property, and one per property
  --allow-unexercised  a property whose checks never saw anything is not a failure`;

const CAMPAIGN_HELP = `usage: pinlab campaign [--kernel VARIANT] [--seed N] [--runs N] [--jobs N] [--shard I/N]
                       [--time SECONDS] [--save DIR] [--json FILE] [--junit FILE] [--allow-unexercised]
                       [--no-affinity] [--fail-fast]

The default property campaign (what 'npm start' runs): a fixed plan of suite runs - every suite
(pinlab run --help lists them) on ${CAMPAIGN_SHAPES.length} machine shapes (docs/campaign.md), up to ${CAMPAIGN_RUNS_FACTOR}x each suite's
own case count - against the kernel variant, every case checked for every property. Suite run i has seed N + i,
so a seed names the same cases on any machine and with any --jobs. Ends with a table per property:
cases, cases whose checks saw something, checks, failures, the checks' time and the verdict, then the
kernel paths (/proc/vmstat events) the cases took, and the replay line of each failure, saved in --save.

options:
  --kernel V        kernel variant (default ${DEFAULT_VARIANT}); try v5.12 to watch properties fail
  --seed N          base seed (default random, printed first)
  --runs N          cases per suite run (default: ${CAMPAIGN_RUNS_FACTOR}x each suite's own)
  --jobs N          case runners in parallel (default: the CPUs, here ${defaultJobs()}); each is bound to a
                    CPU of its own (with its actor threads) when there are as many CPUs as jobs
  --no-affinity     leave the case runners unbound: the scheduler places their threads
  --shard I/N       run shard I of N (every Nth suite run); pinlab merge combines the shards' --json
  --time S          a cap: after S seconds, running suite runs stop and no more start (verdict incomplete)
  --fail-fast       stop at the first suite run that finds a failure (the others are cut or not run;
                    verdict fail): a quick yes/no, as a bisection or a mutation run wants
  --save DIR        where failures are saved (default ${DEFAULT_SAVE_DIR}/, git-ignored; 'none': nowhere).
                    Committing one to regressions/ (which npm test replays) is a deliberate step.
${OUTPUT_HELP}
  --html DIR        also write DIR/index.html (properties, suites by shape, what was reached) and a report
                    per failure (docs/report.md)
Verdicts and exit codes: pass 0 (every suite run ran to its end, every property held and every
property had something to check); fail 1 (a property failed, or one was not exercised); incomplete
${EXIT_INCOMPLETE} (planned suite runs were cut or never ran: --time); 2 bad input; 130 Ctrl-C (143
SIGTERM): the table says which suite runs were cut short or not run. A shard is never failed for a
property it did not exercise: pinlab merge judges that over the whole plan.
`;

const MERGE_HELP = `usage: pinlab merge FILE.json... [--json FILE] [--junit FILE] [--allow-unexercised]

Combines the JSON of the shards of one campaign (pinlab campaign --shard I/N --json FILE, the same
--kernel, --seed and --runs) into one table and verdict, judged as the whole plan: a missing shard
makes it incomplete, a property that no shard exercised fails it. Exit codes as pinlab campaign's.
options:
${OUTPUT_HELP}
`;

/** --shard I/N */
function shardFlag(v: Flags[string]): { index: number; count: number } | undefined {
  if (v === undefined) return undefined;
  const m = /^(\d{1,6})\/(\d{1,6})$/.exec(String(v));
  const index = Number(m?.[1]);
  const count = Number(m?.[2]);
  if (!m || count < 1 || index < 1 || index > count)
    throw new UsageError(`--shard: '${String(v)}' is not I/N with 1 <= I <= N (e.g. 2/4)`);
  return { index, count };
}

/** Writes --json and --junit, prints the table; the exit code of the verdict. */
function finish(doc: CampaignDoc, values: Flags, io: Io, interrupt: Interrupt | null): number {
  io.out(formatCampaign(doc));
  try {
    if (values.json) writeFileAtomic(String(values.json), campaignJson(doc));
    if (values.junit) writeFileAtomic(String(values.junit), campaignJunit(doc));
  } catch (e) {
    io.err(`pinlab: ${(e as Error).message}\n`);
    return 2;
  }
  if (doc.verdict === 'fail') return 1;
  if (doc.verdict === 'interrupted') return interrupt ? signalExitCode(interrupt) : 130;
  return doc.verdict === 'incomplete' ? EXIT_INCOMPLETE : 0;
}

const OUTPUT_OPTIONS = {
  json: { type: 'string' },
  junit: { type: 'string' },
  'allow-unexercised': { type: 'boolean' },
} as const;

function outputFlags(values: Flags): void {
  for (const k of ['json', 'junit'] as const) if (values[k] === '') throw new UsageError(`--${k}: give a file name`);
}

async function campaignCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parse('campaign', argv, {
    kernel: { type: 'string' },
    seed: { type: 'string' },
    runs: { type: 'string' },
    jobs: { type: 'string' },
    shard: { type: 'string' },
    time: { type: 'string' },
    save: { type: 'string' },
    regressions: { type: 'string' },
    'no-affinity': { type: 'boolean' },
    'fail-fast': { type: 'boolean' },
    ...OUTPUT_OPTIONS,
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
  const jobs = intFlag('jobs', values.jobs, 1, 256);
  const shard = shardFlag(values.shard);
  const timeSec = intFlag('time', values.time, 1, 1_000_000);
  outputFlags(values);
  const regressionsDir = saveFlag(values);
  const htmlDir = htmlFlag(values.html);
  const planned = campaignPlan({ seed, runs }).length;
  io.out(
    `# pinlab campaign --kernel ${variant} --seed ${seed}${runs ? ` --runs ${runs}` : ''}` +
      `${shard ? ` --shard ${shard.index}/${shard.count}` : ''}${timeSec ? ` --time ${timeSec}` : ''}: ` +
      `${planned} suite runs (${campaignShapeNote()})\n`,
  );
  return withInterrupt(async (interrupt) => {
    const doc = await runCampaign({
      variant,
      seed,
      runs,
      jobs,
      shard,
      timeSec,
      allowUnexercised: values['allow-unexercised'] === true,
      failFast: values['fail-fast'] === true,
      affinity: values['no-affinity'] !== true,
      regressionsDir,
      tty: process.stderr.isTTY === true,
      interrupt,
      io,
    });
    const code = finish(doc, values, io, interrupt);
    if (htmlDir) io.err(`report: wrote ${await writeCampaignReport(doc, htmlDir, interrupt)}\n`);
    return code;
  });
}

async function mergeCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parse('merge', argv, OUTPUT_OPTIONS);
  if (values.help) {
    io.out(MERGE_HELP);
    return 0;
  }
  if (!positionals.length) throw new UsageError('merge: give the JSON files of the shards (see pinlab merge --help)');
  outputFlags(values);
  const docs = positionals.map((file) => {
    let text: string;
    try {
      text = readInput(file);
    } catch (e) {
      throw new UsageError(`${file}: ${badFileMessage(e)}`);
    }
    return { file, doc: parseCampaignDoc(file, text) };
  });
  const doc = mergeCampaignDocs(docs, { allowUnexercised: values['allow-unexercised'] === true });
  io.out(
    `# pinlab merge: ${docs.length} document${docs.length === 1 ? '' : 's'}, kernel ${doc.kernel}, seed ${doc.seed}\n`,
  );
  return finish(doc, values, io, null);
}

export const campaign: Command = {
  name: 'campaign',
  summary: 'the default property campaign: every suite on several machine shapes (what npm start runs)',
  help: () => CAMPAIGN_HELP,
  run: campaignCommand,
};

export const merge: Command = {
  name: 'merge',
  summary: "combine the JSON of a campaign's shards into one table and verdict",
  help: () => MERGE_HELP,
  run: mergeCommand,
};
