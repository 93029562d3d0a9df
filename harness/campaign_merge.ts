// `pinlab merge`: campaign documents of shards (--shard i/n --json FILE) combined into one, judged as a
// whole (judgeCampaign()): every shard of the plan present, the same kernel, seed and case counts,
// no suite run twice. Bad documents are CaseErrors: one line, exit code 2.
import { CAMPAIGN_SCHEMA, judgeCampaign, type CampaignDoc, type CampaignItem } from './campaign';
import { z } from 'zod';
import { CaseError } from './run_case';
import { zodLine } from './input';

const count = z.number().int().nonnegative();
const coverage = z.object({
  properties: z.record(z.object({ cases: count, seen: count, checked: count, ms: z.number().nonnegative() })),
  events: z.record(z.object({ total: count, cases: count })),
  corpus: z.record(z.object({ total: count, cases: count })),
});
const failure = z
  .object({ property: z.string(), message: z.string(), replay: z.string(), seed: z.number().int(), path: z.string() })
  .passthrough(); // and the shrunk case, as a regression file has it
const item = z.object({
  index: count,
  suite: z.string(),
  shape: z.string(),
  cmdline: z.string().nullable(),
  geometry: z.string().nullable().default(null),
  seed: z.number().int(),
  runs: count,
  properties: z.array(z.string()),
  status: z.enum(['done', 'cut', 'not run']),
  why: z.enum(['interrupted', 'time cap', 'fail fast']).optional(),
  cases: count,
  steps: count,
  seconds: z.number().nonnegative(),
  digest: z.string().nullable(),
  failures: z.array(failure),
  coverage,
});

/** The campaign document (CAMPAIGN_SCHEMA) as `pinlab merge` accepts it; docs/campaign.md describes it. */
export const campaignDocSchema = z
  .object({
    schema: z.literal(CAMPAIGN_SCHEMA),
    kernel: z.string(),
    seed: z.number().int(),
    runs: count.nullable(),
    plan: count,
    shards: z.array(z.number().int().positive()),
    shardCount: z.number().int().positive(),
    jobs: z.number().int().positive(),
    interrupted: z.boolean(),
    seconds: z.number().nonnegative(),
    items: z.array(item),
    verdict: z.enum(['pass', 'fail', 'incomplete', 'interrupted']),
    reasons: z.array(z.string()),
    properties: z.array(z.object({ property: z.string() }).passthrough()),
    events: coverage.shape.events,
    corpus: coverage.shape.corpus,
  })
  .strict();

/** Parse one document; throws a one-line CaseError naming the file and what is wrong. */
export function parseCampaignDoc(file: string, text: string): CampaignDoc {
  let d: unknown;
  try {
    d = JSON.parse(text);
  } catch (e) {
    throw new CaseError(`${file}: not JSON (${(e as Error).message})`);
  }
  if (!d || typeof d !== 'object' || Array.isArray(d) || (d as { schema?: unknown }).schema !== CAMPAIGN_SCHEMA)
    throw new CaseError(`${file}: not a campaign document (schema "${CAMPAIGN_SCHEMA}": pinlab campaign --json FILE)`);
  const r = campaignDocSchema.safeParse(d);
  if (!r.success) throw new CaseError(`${file}: ${zodLine(r.error, d)}`);
  return d as CampaignDoc;
}

/** Combine shard documents: the same campaign, each suite run once. */
export function mergeCampaignDocs(
  docs: { file: string; doc: CampaignDoc }[],
  o: { allowUnexercised?: boolean } = {},
): CampaignDoc {
  const first = docs[0]!;
  const items = new Map<number, CampaignItem>();
  for (const { file, doc } of docs) {
    for (const k of ['kernel', 'seed', 'runs', 'plan', 'shardCount'] as const) {
      if (doc[k] !== first.doc[k])
        throw new CaseError(
          `${file}: ${k} ${JSON.stringify(doc[k])}, but ${first.file} has ${JSON.stringify(first.doc[k])}: not shards of one campaign`,
        );
    }
    for (const x of doc.items) {
      if (items.has(x.index))
        throw new CaseError(`${file}: suite run ${x.index} (${x.suite} on ${x.shape}) is in two documents`);
      items.set(x.index, x);
    }
  }
  const merged: CampaignDoc = {
    ...first.doc,
    shards: [...new Set(docs.flatMap((d) => d.doc.shards))].sort((a, b) => a - b),
    jobs: Math.max(...docs.map((d) => d.doc.jobs)),
    interrupted: docs.some((d) => d.doc.interrupted),
    seconds: Math.max(...docs.map((d) => d.doc.seconds)), // shards run side by side: the longest
    items: [...items.values()].sort((a, b) => a.index - b.index),
  };
  return judgeCampaign(merged, o);
}
