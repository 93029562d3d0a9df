// The report as one self-contained HTML file: the data as JSON, the page's script and style inline,
// nothing fetched (docs/report.md).
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ReportData } from './data';
import { REPORT_CSS, REPORT_JS } from './client';

let d3Text: string | null = null;

/** d3's UMD bundle (node_modules/d3/dist/d3.min.js), read once, safe inside a <script> element. */
export function d3Source(): string {
  // (d3's "exports" map names the UMD file only under its "umd" condition: found beside src/index.js)
  const file = path.join(path.dirname(require.resolve('d3')), '..', 'dist', 'd3.min.js');
  d3Text ??= fs.readFileSync(file, 'utf8').replace(/<\/(script)/gi, '<\\/$1');
  return d3Text;
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** JSON inside <script>: no "</script>" or "<!--" can close or comment it. */
export function scriptJson(v: unknown): string {
  return JSON.stringify(v)
    .replace(/</g, '\\u003c')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

const LEGEND_CLASSES: [string, string][] = [
  ['free', '#ffffff'],
  ['anonymous', '#6aa84f'],
  ['THP', '#3c78d8'],
  ['hugetlb', '#8e7cc3'],
  ['kernel / other', '#e69138'],
  ['long-term pinned', '#cc0000'],
  ['offline', '#9e9e9e'],
  ['hole', '#e0e0e0'],
];
const LEGEND_MT: [string, string][] = [
  ['Unmovable', '#b45f06'],
  ['Movable', '#93c47d'],
  ['CMA', '#6fa8dc'],
  ['Isolate', '#ff00ff'],
];

const legend = (items: [string, string][]): string =>
  items.map(([n, c]) => `<span><i style="background:${c}"></i>${escapeHtml(n)}</span>`).join('');

function caseSection(d: ReportData): string {
  const e = escapeHtml;
  const programs = d.actors
    .map((a) => `${a.name.padEnd(14)} ${a.program.length ? a.program.join('\n'.padEnd(16)) : '(no ops)'}`)
    .join('\n');
  const bugs = d.variant.bugs.length
    ? d.variant.bugs.map((b) => `<li><b>${e(b.id)}</b> ${e(b.what)} <span class="small">(${e(b.commit)})</span></li>`)
    : ['<li>none</li>'];
  return `<h2>The case</h2>
<table class="kv">
<tr><td>promise</td><td>${e(d.promise)}</td></tr>
<tr><td>reference</td><td>${e(d.reference)}</td></tr>
<tr><td>kernel</td><td><b>${e(d.variant.name)}</b>: ${e(d.variant.summary)} <span class="small">(${e(d.variant.commit)})</span>
  <br>bug switches: <ul>${bugs.join('')}</ul></td></tr>
<tr><td>command line</td><td class="mono">${e(d.cmdline)} (geometry ${e(d.geometry)})</td></tr>
<tr><td>mappings</td><td class="mono">${e(d.maps.map((x) => `${x.name}[${x.pages}]`).join(' '))}</td></tr>
<tr><td>schedule</td><td class="mono">${d.schedule.length ? `[${d.schedule.join(',')}]` : '[] (no preemption)'}</td></tr>
<tr><td>faults</td><td class="mono">${e(d.faults.join('; ') || 'none')}</td></tr>
<tr><td>suite, seed, path</td><td class="mono">${e(`${d.suite}, ${d.seed ?? '-'}, "${d.path ?? ''}"`)}</td></tr>
<tr><td>trace hash</td><td class="mono">${e(d.traceHash)}${d.recordedHash ? (d.recordedHash === d.traceHash ? ' (as recorded)' : ` (recorded ${e(d.recordedHash)})`) : ''}</td></tr>
</table>
<h3>Shrunk ops</h3>
<pre>${e(programs)}</pre>`;
}

/** The page. */
export function renderReport(d: ReportData): string {
  const e = escapeHtml;
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<title>pinlab: ${e(d.title)}</title>
<style>${REPORT_CSS}</style></head>
<body>
<h1>FAIL ${e(d.property)} <span class="small">${e(d.title)}</span></h1>
<div class="msg">${e(d.message)}</div>
${d.others.length ? `<p class="small">and ${d.others.length} more: ${e(d.others.join(' | ').slice(0, 2000))}</p>` : ''}
<p>replay: <code id="replay">${e(d.replay)}</code> <button id="copy" type="button">copy</button></p>
<h2>Memory map</h2>
<div class="legend">${legend(LEGEND_CLASSES)} &nbsp; pageblocks: ${legend(LEGEND_MT)} &nbsp;
<span><i style="background:#fff;border:2.5px solid #000"></i>offending (a long-term pin in ZONE_MOVABLE, a CMA or an isolated pageblock; a block that would not go offline)</span></div>
<p>step <input id="step" type="range" min="0" max="0" value="0" style="width:420px"> <span id="mapinfo" class="small"></span></p>
<div id="map"></div>
<h2>Timeline</h2>
<p class="small">one lane per actor (scroll to zoom, drag to pan); bars are ops (green: rc &gt;= 0, red: an errno), ticks on top the scheduler's switches,
orange marks injected faults and signals, the red line where the property broke, blue ticks below the memory map's steps;
click a bar or a mark for its trace lines.</p>
<div id="timeline"></div>
<h2>Trace <button id="to-violation" type="button">go to the violation</button></h2>
${d.foldsCut ? `<p class="small">the first ${d.foldsCut} folded lines are left out</p>` : ''}
<div class="filters"><span id="f-actors"></span>
<label>event <select id="f-event"><option value="">all</option></select></label>
<label>text <input id="f-text" type="search" placeholder="filter"></label></div>
<div id="trace"><table><tbody></tbody></table></div>
${caseSection(d)}
<script type="application/json" id="pinlab-data">${scriptJson(d)}</script>
<script>${d3Source()}</script>
<script>${REPORT_JS}</script>
</body></html>
`;
}
