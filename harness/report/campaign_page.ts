// A campaign's summary page: each property's row, the suite-by-shape matrix, links to each failure's
// report (docs/report.md).
import type { CampaignResult } from '../campaign';
import { escapeHtml as e } from './html';

const CSS = `body { font: 13px/1.4 system-ui, sans-serif; margin: 0 16px 40px; }
table { border-collapse: collapse; margin: 6px 0 16px; } td, th { border: 1px solid #ccc; padding: 2px 8px; }
td.pass { background: #d9ead3; } td.FAIL, td.fail { background: #f4cccc; } td.interrupted, td.cut { background: #fff2cc; }
td.none { color: #999; }`;

function matrix(r: CampaignResult, links: Map<string, string>): string {
  const suites = [...new Set([...r.runs.map((x) => x.suite), ...r.notRun.map((x) => x.suite)])];
  const shapes = [...new Set([...r.runs.map((x) => x.shape), ...r.notRun.map((x) => x.shape)])];
  const cell = (suite: string, shape: string): string => {
    const run = r.runs.find((x) => x.suite === suite && x.shape === shape);
    if (!run) {
      const nr = r.notRun.find((x) => x.suite === suite && x.shape === shape);
      return `<td class="none">${nr ? `not run (${e(nr.why)})` : '-'}</td>`;
    }
    const s = run.summary;
    const fails = s.failures.map((f) => {
      const to = f.regression ? links.get(f.regression) : undefined;
      const label = e(f.property);
      return to && !to.startsWith('#error:')
        ? `<a href="${e(to)}">${label}</a>`
        : `${label}${to ? ` <span title="${to.slice(7)}">(no report)</span>` : ''}`;
    });
    const cls = s.failures.length ? 'fail' : run.cut ? 'cut' : 'pass';
    return `<td class="${cls}">${fails.length ? fails.join('<br>') : run.cut ? 'cut short' : 'pass'} <small>${s.cases} cases</small></td>`;
  };
  const head = `<tr><th>suite</th>${shapes.map((s) => `<th>${e(s)}</th>`).join('')}</tr>`;
  const rows = suites.map((su) => `<tr><td>${e(su)}</td>${shapes.map((sh) => cell(su, sh)).join('')}</tr>`);
  return `<table>${head}${rows.join('')}</table>`;
}

export function campaignPage(r: CampaignResult, links: Map<string, string>): string {
  const props = r.properties
    .map(
      (p) =>
        `<tr><td>${e(p.property)}</td><td class="${e(p.verdict)}">${e(p.verdict)}</td><td>${p.cases}</td><td>${p.steps}</td><td>${p.seconds.toFixed(1)}</td></tr>`,
    )
    .join('');
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>pinlab campaign: ${e(r.verdict)}</title><style>${CSS}</style></head>
<body><h1>pinlab campaign: ${e(r.verdict)}${r.interrupted ? ' (interrupted)' : ''}</h1>
<p>${r.runs.length} suite runs in ${r.seconds.toFixed(1)} s${r.skipped ? `, ${r.skipped} skipped` : ''}</p>
<h2>Properties</h2>
<table><tr><th>property</th><th>verdict</th><th>cases</th><th>steps</th><th>seconds</th></tr>${props}</table>
<h2>Suites by machine shape</h2>
${matrix(r, links)}
</body></html>
`;
}
