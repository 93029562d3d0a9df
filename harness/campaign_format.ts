// What a campaign prints and writes: the text table (per property: cases, cases whose checks saw
// something, checks, failures, the checks' own time, verdict; the kernel paths reached; what did not
// run), JUnit XML for CI systems (one test case per suite run and property), and the JSON document
// (CAMPAIGN_SCHEMA, docs/campaign.md) that `pinlab merge` reads back.
import { VM_ITEMS, PATH_ITEMS, NOT_MODELLED } from '../mm/vmstat';
import { BUGS } from '../mm/variants';
import { campaignShapeNote, CAMPAIGN_SCHEMA, type CampaignDoc, type CampaignItem } from './campaign';

const pad = (s: string | number, n: number): string => String(s).padStart(n);

export function formatCampaign(doc: CampaignDoc): string {
  const lines = [
    '',
    `${'property'.padEnd(28)} ${pad('cases', 7)} ${pad('saw', 7)} ${pad('checks', 9)} ${pad('fail', 5)} ${pad('time', 8)}   verdict`,
  ];
  for (const p of doc.properties) {
    lines.push(
      `${p.property.padEnd(28)} ${pad(p.cases, 7)} ${pad(p.seen, 7)} ${pad(p.checked, 9)} ${pad(p.failures, 5)} ` +
        `${pad((p.ms / 1000).toFixed(1), 6)} s   ${p.verdict}`,
    );
  }
  lines.push('', ...formatEvents(doc));
  const cut = doc.items.filter((x) => x.status === 'cut');
  const notRun = doc.items.filter((x) => x.status === 'not run');
  if (cut.length || notRun.length) lines.push('');
  for (const x of cut)
    lines.push(`cut short (${x.why}): ${x.suite} on ${x.shape}, after ${x.cases} of ${x.runs} cases`);
  const byShape = new Map<string, string[]>();
  for (const x of notRun) {
    const k = `(${x.why}) on ${x.shape}`;
    byShape.set(k, [...(byShape.get(k) ?? []), x.suite]);
  }
  for (const [k, names] of byShape) lines.push(`not run ${k}: ${names.join(', ')}`);
  lines.push('', summaryLine(doc));
  return lines.join('\n') + '\n';
}

/** "kernel paths: pgmigrate_success 812 in 97 cases, ...; never: oom_kill, ..." */
function formatEvents(doc: CampaignDoc): string[] {
  const hit = Object.entries(doc.events).sort((a, b) => b[1].cases - a[1].cases);
  // event counters only: the nr_* items are levels (node_stat_item), 0 again when a case ends
  const never = [...VM_ITEMS, ...PATH_ITEMS].filter(
    (k) => !doc.events[k] && (!k.startsWith('nr_') || k.startsWith('nr_foll_pin')) && !NOT_MODELLED.includes(k),
  );
  const corpus = Object.entries(doc.corpus).sort((a, b) => Number(a[0].slice(1)) - Number(b[0].slice(1)));
  const missed = BUGS.map((b) => b.id).filter((id) => !doc.corpus?.[id]);
  return [
    `regression-corpus bug sites reached (docs/regression-corpus.md; times, cases): ${corpus.map(([k, v]) => `${k} ${v.total} in ${v.cases}`).join(', ') || 'none'}`,
    `bug sites never reached: ${missed.join(', ') || 'none'}`,
    `kernel paths taken (/proc/vmstat events and pinlab's path counters: total, cases): ${hit.map(([k, v]) => `${k} ${v.total} in ${v.cases}`).join(', ') || 'none'}`,
    `kernel paths never taken: ${never.join(', ') || 'none'} (not modelled: ${NOT_MODELLED.join(', ')})`,
  ];
}

export function summaryLine(doc: CampaignDoc): string {
  const ran = doc.items.filter((x) => x.status !== 'not run').length;
  const cases = doc.items.reduce((n, x) => n + x.cases, 0);
  const steps = doc.items.reduce((n, x) => n + x.steps, 0);
  const shard = doc.shardCount > 1 ? `shard ${doc.shards.join(',')}/${doc.shardCount}: ` : '';
  return (
    `${shard}${ran} of ${doc.items.length} suite runs (${campaignShapeNote()}), ${cases} cases, ${steps} steps ` +
    `in ${doc.seconds.toFixed(1)} s on ${doc.jobs} job${doc.jobs === 1 ? '' : 's'}, kernel ${doc.kernel}, seed ${doc.seed}: ` +
    `${doc.verdict}${doc.reasons.length ? ` (${doc.reasons.join('; ')})` : ''}`
  );
}

const xml = (s: string): string =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);

/**
 * JUnit XML: a <testsuite> per suite run (suite on shape) with a <testcase> per property it checks, a
 * <failure> carrying the message and the replay line, <skipped> where the run was cut or never ran;
 * then a "campaign" suite with one case per property, failing when it failed or was not exercised.
 */
export function campaignJunit(doc: CampaignDoc): string {
  const out = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="pinlab campaign ${xml(doc.kernel)} seed ${doc.seed}" tests="${countTests(doc)}" ` +
      `failures="${countFailures(doc)}" time="${doc.seconds.toFixed(3)}">`,
  ];
  for (const x of doc.items) out.push(...itemSuite(x));
  out.push(
    `  <testsuite name="campaign" tests="${doc.properties.length}" failures="${doc.properties.filter(failedRow).length}">`,
  );
  for (const p of doc.properties) {
    out.push(`    <testcase classname="campaign" name="${xml(p.property)}" time="${(p.ms / 1000).toFixed(3)}">`);
    if (failedRow(p))
      out.push(
        `      <failure message="${xml(p.verdict)}">${p.failures} failures; ${p.seen} of ${p.cases} cases saw something</failure>`,
      );
    else if (p.verdict !== 'pass') out.push(`      <skipped message="${xml(p.verdict)}"/>`);
    out.push('    </testcase>');
  }
  out.push('  </testsuite>', '</testsuites>');
  return out.join('\n') + '\n';
}

const failedRow = (p: CampaignDoc['properties'][number]): boolean =>
  p.verdict === 'FAIL' || p.verdict === 'not exercised';
const countTests = (doc: CampaignDoc): number =>
  doc.items.reduce((n, x) => n + x.properties.length, 0) + doc.properties.length;
const countFailures = (doc: CampaignDoc): number =>
  doc.items.reduce((n, x) => n + new Set(x.failures.map((f) => f.property)).size, 0) +
  doc.properties.filter(failedRow).length;

function itemSuite(x: CampaignItem): string[] {
  const name = `${x.suite} on ${x.shape}`;
  const props = [...new Set([...x.properties, ...x.failures.map((f) => f.property)])];
  const failures = new Set(x.failures.map((f) => f.property)).size;
  const out = [
    `  <testsuite name="${xml(name)}" tests="${props.length}" failures="${failures}" time="${x.seconds.toFixed(3)}">`,
  ];
  for (const p of props) {
    out.push(`    <testcase classname="${xml(name)}" name="${xml(p)}">`);
    const f = x.failures.find((g) => g.property === p);
    if (f) out.push(`      <failure message="${xml(f.message)}">${xml(`${f.message}\nreplay: ${f.replay}`)}</failure>`);
    else if (x.status !== 'done') out.push(`      <skipped message="${xml(`${x.status} (${x.why})`)}"/>`);
    out.push('    </testcase>');
  }
  out.push('  </testsuite>');
  return out;
}

/** The JSON document: the campaign as run, with each failure's case (a regression file's). */
export function campaignJson(doc: CampaignDoc): string {
  return JSON.stringify({ ...doc, schema: CAMPAIGN_SCHEMA }, null, 1) + '\n';
}
