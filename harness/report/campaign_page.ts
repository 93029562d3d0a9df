// A campaign's summary page: each property's row, the suite-by-shape matrix, links to each failure's
// report (docs/report.md).
import type { CampaignDoc } from '../campaign';
import { escapeHtml as e } from './html';

const CSS = `body { font: 13px/1.4 system-ui, sans-serif; margin: 0 16px 40px; }
table { border-collapse: collapse; margin: 6px 0 16px; } td, th { border: 1px solid #ccc; padding: 2px 8px; }
td.pass { background: #d9ead3; } td.FAIL, td.fail { background: #f4cccc; } td.interrupted, td.cut { background: #fff2cc; }
td.none { color: #999; }`;

function matrix(r: CampaignDoc, links: Map<string, string>): string {
  const suites = [...new Set(r.items.map((x) => x.suite))];
  const shapes = [...new Set(r.items.map((x) => x.shape))];
  const cell = (suite: string, shape: string): string => {
    const run = r.items.find((x) => x.suite === suite && x.shape === shape);
    if (!run) return '<td class="none">-</td>';
    if (run.status === 'not run') return `<td class="none">not run (${e(run.why ?? '')})</td>`;
    const fails = run.failures.map((f) => {
      const to = f.regression ? links.get(f.regression) : undefined;
      const label = e(f.property);
      return to && !to.startsWith('#error:')
        ? `<a href="${e(to)}">${label}</a>`
        : `${label}${to ? ` <span title="${to.slice(7)}">(no report)</span>` : ''}`;
    });
    const cut = run.status === 'cut';
    const cls = run.failures.length ? 'fail' : cut ? 'cut' : 'pass';
    return `<td class="${cls}">${fails.length ? fails.join('<br>') : cut ? 'cut short' : 'pass'} <small>${run.cases} cases</small></td>`;
  };
  const head = `<tr><th>suite</th>${shapes.map((s) => `<th>${e(s)}</th>`).join('')}</tr>`;
  const rows = suites.map((su) => `<tr><td>${e(su)}</td>${shapes.map((sh) => cell(su, sh)).join('')}</tr>`);
  return `<table>${head}${rows.join('')}</table>`;
}

/** "R10 915 in 398, ..." */
const counts = (c: Record<string, { total: number; cases: number }>): string =>
  Object.entries(c)
    .map(([k, v]) => `${e(k)} ${v.total} in ${v.cases}`)
    .join(', ') || 'none';

export function campaignPage(r: CampaignDoc, links: Map<string, string>): string {
  const props = r.properties
    .map(
      (p) =>
        `<tr><td>${e(p.property)}</td><td class="${e(p.verdict)}">${e(p.verdict)}</td><td>${p.cases}</td>` +
        `<td>${p.seen}</td><td>${p.checked}</td><td>${p.failures}</td><td>${(p.ms / 1000).toFixed(1)}</td></tr>`,
    )
    .join('');
  const ran = r.items.filter((x) => x.status !== 'not run').length;
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>pinlab campaign: ${e(r.verdict)}</title><style>${CSS}</style></head>
<body><h1>pinlab campaign: ${e(r.verdict)}</h1>
<p>kernel ${e(r.kernel)}, seed ${r.seed}: ${ran} of ${r.items.length} suite runs in ${r.seconds.toFixed(1)} s on ${r.jobs} jobs${
    r.reasons.length ? ` (${e(r.reasons.join('; '))})` : ''
  }</p>
<h2>Properties</h2>
<table><tr><th>property</th><th>verdict</th><th>cases</th><th>saw something</th><th>checks</th><th>failures</th><th>check time (s)</th></tr>${props}</table>
<h2>Suites by machine shape</h2>
${matrix(r, links)}
<h2>What the cases reached</h2>
<p>regression-corpus bug sites (times, cases): ${counts(r.corpus)}</p>
<p>kernel paths (times, cases): ${counts(r.events)}</p>
</body></html>
`;
}
