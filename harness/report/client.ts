// The report page's own script and style, inlined into each report (no network). Plain browser
// JavaScript over the embedded JSON (harness/report/data.ts): the memory map as SVG with a step
// slider, the actors' timeline, the filterable trace.

export const REPORT_CSS = `
body { font: 13px/1.4 system-ui, sans-serif; margin: 0 16px 40px; color: #222; }
h1 { font-size: 18px; margin: 12px 0 4px; } h2 { font-size: 15px; margin: 18px 0 6px; border-bottom: 1px solid #ccc; }
.msg { background: #fdecea; border-left: 4px solid #c00; padding: 6px 10px; }
pre, code, .mono { font-family: ui-monospace, monospace; font-size: 12px; }
pre { background: #f6f6f6; padding: 6px 8px; overflow-x: auto; margin: 4px 0; }
table.kv td { padding: 1px 8px 1px 0; vertical-align: top; }
.legend span { display: inline-block; margin-right: 10px; } .legend i { display: inline-block; width: 12px;
  height: 12px; margin-right: 3px; vertical-align: -2px; border: 1px solid #888; }
svg text { font: 10px ui-monospace, monospace; }
#trace { max-height: 480px; overflow-y: auto; border: 1px solid #ddd; }
#trace table { border-collapse: collapse; width: 100%; } #trace td { padding: 0 6px; white-space: pre; }
#trace tr.hl { background: #fff2a8; } #trace tr.viol { background: #fdecea; } #trace tr.mig td.t { color: #1155cc; }
#trace td.n { color: #a00; font-weight: bold; text-align: right; }
.filters label { margin-right: 8px; } .small { color: #666; font-size: 11px; }
.cell.offending { stroke: #000; stroke-width: 2.5px; }
button { font-size: 12px; }
`;

export const REPORT_JS = `
(function () {
  'use strict';
  var D = JSON.parse(document.getElementById('pinlab-data').textContent);
  var NS = 'http://www.w3.org/2000/svg';
  var CLS_COLORS = ['#e0e0e0', '#9e9e9e', '#ffffff', '#6aa84f', '#3c78d8', '#8e7cc3', '#e69138', '#cc0000'];
  var MT_COLORS = { Unmovable: '#b45f06', Movable: '#93c47d', Reclaimable: '#ffd966', HighAtomic: '#999999',
    CMA: '#6fa8dc', Isolate: '#ff00ff' };
  var ZONE_COLORS = { DMA: '#f6b26b', DMA32: '#ffe599', Normal: '#b6d7a8', Movable: '#a4c2f4', Device: '#d5a6bd' };
  var NC = 9;
  function el(tag, attrs, parent, text) {
    var e = document.createElementNS(NS, tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }
  function tip(e, text) { el('title', {}, e, text); return e; }
  function h(tag, attrs, parent, text) {
    var e = document.createElement(tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }
  function size(frames) {
    var b = frames * 4096;
    if (b >= 1 << 30) return (b / (1 << 30)).toFixed(b % (1 << 30) ? 1 : 0) + 'G';
    if (b >= 1 << 20) return (b / (1 << 20)).toFixed(b % (1 << 20) ? 1 : 0) + 'M';
    return (b >> 10) + 'K';
  }
  function stamp(seq) { return (Math.max(0, Math.floor(seq + 0.5)) / 1e6).toFixed(6); }

  // ---- memory map ----
  function frames(s) { return s.unit === 1 ? s.cls.length : (s.cls.length / NC) * s.unit; }
  function zoneOf(s, pfn) {
    var name = '';
    s.zones.forEach(function (z) { if (pfn >= z.start && pfn < z.start + z.spanned) name = z.name; });
    return name;
  }
  function drawBands(svg, s, W, y) {
    var n = frames(s);
    el('text', { x: 0, y: y + 12 }, svg, 'zones');
    s.zones.forEach(function (z) {
      var x = 60 + (z.start / n) * (W - 60), w = Math.max(1, (z.spanned / n) * (W - 60));
      var r = tip(el('rect', { x: x, y: y, width: w, height: 16, fill: ZONE_COLORS[z.name] || '#ccc',
        stroke: '#555', 'class': 'zone', 'data-zone': z.name }, svg),
        'ZONE_' + z.name.toUpperCase() + ': pfn ' + z.start + '..' + (z.start + z.spanned) + ' (' + size(z.spanned) +
        ' spanned, ' + size(z.present) + ' present)');
      r.setAttribute('data-span', z.start + '-' + (z.start + z.spanned));
      el('text', { x: x + 3, y: y + 12 }, svg, z.name + ' ' + z.start + '..' + (z.start + z.spanned) + ' ' + size(z.spanned));
    });
    var bp = s.blockPages, bw = (W - 60) / s.nrBlocks;
    el('text', { x: 0, y: y + 34 }, svg, 'blocks');
    s.blocks.forEach(function (b) {
      var name = b.n > 1 ? 'memory' + b.b + '..' + (b.b + b.n - 1) : 'memory' + b.b;
      tip(el('rect', { x: 60 + b.b * bw, y: y + 22, width: Math.max(1, b.n * bw - 1), height: 16,
        fill: b.state === 'online' ? '#cfe2f3' : b.state === 'offline' ? '#9e9e9e' : '#f9cb9c',
        stroke: '#555', 'stroke-width': 0.5, 'class': 'block', 'data-block': b.b, 'data-blocks': b.n }, svg),
        name + ' pfn ' + b.b * bp + '..' + (b.b + b.n) * bp + ': ' + b.state + ', valid_zones ' + b.valid);
      if (b.n * bw > 70) el('text', { x: 62 + b.b * bw, y: y + 34 }, svg,
        (name + ' ' + b.state).slice(0, Math.floor((b.n * bw) / 6.5)));
    });
    D.badBlocks.forEach(function (i) {
      var r = tip(el('rect', { x: 60 + i * bw, y: y + 20, width: Math.max(3, bw - 1), height: 20, fill: 'none',
        stroke: '#c00', 'stroke-width': 3, 'class': 'block offending', 'data-block': i, 'data-offending': '1' }, svg),
        'memory' + i + ': named by the failure, it would not go offline');
      return r;
    });
    return y + 46;
  }
  function unitTitle(s, u, pfn, counts) {
    var t = (s.unit === 1 ? 'pfn ' + pfn : 'pfn ' + pfn + '..' + (pfn + s.unit)) + ' (' + zoneOf(s, pfn) + ')';
    var pb = s.unit === 1 ? Math.floor(pfn / s.pb) : u;
    t += ', pageblock ' + (s.unit === 1 ? pb + ' ' : '') + D.migratetypes[s.mt[s.unit === 1 ? pb : u]];
    if (s.unit === 1) return t + ': ' + D.classes[s.cls[pfn]];
    var parts = [];
    for (var c = 0; c < NC - 1; c++) if (counts[c]) parts.push(counts[c] + ' ' + D.classes[c]);
    if (counts[NC - 1]) parts.push(counts[NC - 1] + ' pinned in ZONE_MOVABLE or CMA');
    return t + ': ' + parts.join(', ');
  }
  function drawCell(g, s, u, x, y, cw, ch) {
    var pfn = u * s.unit, counts = null, bad = false;
    if (s.unit === 1) {
      el('rect', { x: x, y: y, width: cw - 1, height: ch, fill: CLS_COLORS[s.cls[u]], stroke: '#bbb',
        'stroke-width': 0.5 }, g);
      bad = s.bad.indexOf(pfn) >= 0;
    } else {
      counts = s.cls.slice(u * NC, u * NC + NC);
      var total = 0, yy = y;
      for (var c = 0; c < NC - 1; c++) total += counts[c];
      for (c = NC - 2; c >= 0; c--) {
        if (!counts[c]) continue;
        var hh = Math.max(1, (counts[c] / total) * ch);
        el('rect', { x: x, y: yy, width: cw - 1, height: hh, fill: CLS_COLORS[c] }, g);
        yy += hh;
      }
      bad = counts[NC - 1] > 0;
    }
    var mt = s.mt[s.unit === 1 ? Math.floor(pfn / s.pb) : u];
    el('rect', { x: x, y: y + ch, width: cw - 1, height: 4, fill: MT_COLORS[D.migratetypes[mt]] || '#ccc' }, g);
    el('rect', { x: x, y: y + ch + 4, width: cw - 1, height: 3, fill: ZONE_COLORS[zoneOf(s, pfn)] || '#fff' }, g);
    var cell = tip(el('rect', { x: x, y: y, width: cw - 1, height: ch + 7, fill: 'transparent',
      'class': 'cell' + (bad ? ' offending' : ''), 'data-pfn': pfn }, g), unitTitle(s, u, pfn, counts || []) +
      (bad ? ' - OFFENDING: a long-term pin in ZONE_MOVABLE or a CMA pageblock' : ''));
    if (bad) {
      cell.setAttribute('data-offending', '1');
      cell.setAttribute('stroke', '#000');
      el('line', { x1: x, y1: y, x2: x + cw - 1, y2: y + ch, stroke: '#000', 'stroke-width': 1.5 }, g);
    }
  }
  function drawMap(k) {
    var box = document.getElementById('map');
    box.textContent = '';
    var s = D.snapshots[k];
    if (!s) { box.textContent = 'no machine snapshots in this report'; return; }
    var W = 1000, n = frames(s), units = s.unit === 1 ? n : s.cls.length / NC;
    var bp = s.blockPages;
    var cols = Math.min(64, Math.max(1, s.unit >= bp ? 32 : Math.round(bp / s.unit)));
    var cw = Math.max(6, Math.min(28, Math.floor((W - 110) / cols))), ch = cw;
    var rows = Math.ceil(units / cols);
    var svg = el('svg', { width: W, height: 60 + rows * (ch + 10) + 10, id: 'mapsvg' }, box);
    var y0 = drawBands(svg, s, W, 2) + 6;
    var g = el('g', {}, svg);
    for (var r = 0; r < rows; r++) {
      var u0 = r * cols, pfn0 = u0 * s.unit, y = y0 + r * (ch + 10);
      el('text', { x: 0, y: y + ch / 2 + 4 }, g, 'pfn ' + pfn0 + (s.unit * cols === bp ? ' mem' + pfn0 / bp : ''));
      for (var c = 0; c < cols && u0 + c < units; c++) drawCell(g, s, u0 + c, 100 + c * cw, y, cw, ch);
    }
    var bad = s.bad.length ? s.bad.length + (s.bad.length >= 64 ? '+' : '') + ' offending frame(s): pfn ' +
      s.bad.slice(0, 8).join(', ') : 'no long-term pin in ZONE_MOVABLE or CMA at this step';
    document.getElementById('mapinfo').textContent = 'step ' + (k + 1) + '/' + D.snapshots.length + ' at ' +
      stamp(s.seq) + ': ' + s.label + (k === D.failingSnapshot ? ' (the failing step)' : '') + ' - ' + bad +
      (s.unit > 1 ? ' - one cell per ' + size(s.unit) + ' (' + s.unit + ' frames), classes stacked by count' : '');
  }

  // ---- timeline ----
  var W = 1100, L = 130;
  function tx(seq) { return L + (Math.max(0, seq) / D.maxSeq) * (W - L - 10); }
  function drawTimeline() {
    var box = document.getElementById('timeline'), lane = 26, n = D.actors.length;
    var svg = el('svg', { width: W, height: (n + 2) * lane + 20, id: 'tlsvg' }, box);
    el('text', { x: 0, y: 14 }, svg, 'scheduler');
    D.switches.forEach(function (s) {
      tip(el('line', { x1: tx(s.seq), y1: 2, x2: tx(s.seq), y2: 20, stroke: '#555', 'class': 'switch' }, svg),
        stamp(s.seq) + ': switch ' + D.actors[s.from].name + ' -> ' + D.actors[s.to].name);
    });
    D.actors.forEach(function (a, k) {
      var y = (k + 1) * lane;
      var g = el('g', { 'class': 'lane', 'data-actor': a.name }, svg);
      el('rect', { x: 0, y: y, width: W, height: lane - 2, fill: k % 2 ? '#fafafa' : '#f0f0f0' }, g);
      el('text', { x: 2, y: y + 16 }, g, a.name + ' [' + String(a.cpu).padStart(3, '0') + ']');
    });
    D.ops.forEach(function (o) {
      var y = (o.actor + 1) * lane + 3, x = tx(o.start), x2 = o.end < 0 ? W - 10 : tx(o.end);
      var w = Math.max(3, x2 - x);
      var r = tip(el('rect', { x: x, y: y, width: w, height: lane - 8, fill: o.end < 0 ? '#bbb' : o.rc < 0 ? '#e06666' :
        '#93c47d', stroke: '#444', 'class': 'op', 'data-seq': o.start }, svg),
        D.actors[o.actor].name + ' op ' + (o.i + 1) + ': ' + o.text + ' -> ' + o.rcText + (o.detail ? ' ' + o.detail : ''));
      r.addEventListener('click', function () { showTrace(o.start); });
      if (w > 50) el('text', { x: x + 2, y: y + 13, 'pointer-events': 'none' }, svg,
        (o.text.split(' ')[0] + ' ' + o.rcText).slice(0, Math.floor(w / 6)));
    });
    D.events.forEach(function (e) {
      if (e.actor < 0) return;
      var y = (e.actor + 1) * lane, x = tx(e.seq), f = /^(pinlab_fault|signal_generate)/.test(e.text);
      var v = /^(pinlab_violation|pinlab_bug)/.test(e.text);
      if (!f && !v) { if (/^sched_blocked/.test(e.text)) tip(el('circle', { cx: x, cy: y + lane - 5, r: 2, fill: '#777' },
        svg), stamp(e.seq) + ' ' + e.text); return; }
      var m = tip(el('path', { d: 'M' + x + ' ' + (y + 2) + ' l-5 -0 l5 9 l5 -9 z', fill: v ? '#c00' : '#f90',
        stroke: '#000', 'class': v ? 'violation-mark' : 'fault' }, svg), stamp(e.seq) + ' ' + e.text);
      m.addEventListener('click', function () { showTrace(e.seq); });
    });
    var vx = tx(D.violation.seq), bottom = (n + 1) * lane;
    el('line', { x1: vx, y1: 0, x2: vx, y2: bottom, stroke: '#c00', 'stroke-width': 2, 'class': 'violation' }, svg);
    el('text', { x: Math.min(vx + 3, W - 140), y: bottom + 12, fill: '#c00' }, svg, 'property broke ' + stamp(D.violation.seq));
    D.snapshots.forEach(function (s, k) {
      var m = tip(el('rect', { x: tx(s.seq) - 1, y: bottom + 16, width: 3, height: 8, fill: '#3c78d8', 'class': 'snap' },
        svg), 'memory map step ' + (k + 1) + ': ' + s.label);
      m.addEventListener('click', function () { setStep(k); });
    });
  }

  // ---- trace ----
  var rows = [];
  function eventOf(t) { var m = /^([a-z_]+):/.exec(t); return m ? m[1] : t.split(' ')[0]; }
  function drawTrace() {
    var tb = document.querySelector('#trace tbody'), events = {};
    D.folds.forEach(function (f, i) {
      f.t.forEach(function (t, j) {
        var tr = h('tr', { id: j ? '' : 'f' + i }, tb);
        var ev = eventOf(t);
        events[ev] = 1;
        tr.dataset.actor = String(f.a); tr.dataset.event = ev;
        if (/^mm_migrate_folio/.test(t)) tr.className = 'mig';
        if (f.s <= D.violation.seq && D.violation.seq <= f.e && /^pinlab_violation/.test(t)) tr.className = 'viol';
        var cnt = h('td', { 'class': 'n' }, tr, j === 0 && f.n > 1 ? f.n + ' x' + (f.t.length > 1 ? ' ' + f.t.length +
          ' lines' : '') : '');
        if (j === 0 && f.n > 1) cnt.title = 'repeated ' + f.n + ' times from ' + stamp(f.s) + '; the last time shown';
        h('td', {}, tr, stamp(f.q[j]));
        h('td', {}, tr, (D.actors[f.a] ? D.actors[f.a].name : '?') + ' [' + String(D.actors[f.a] ?
          D.actors[f.a].cpu : 0).padStart(3, '0') + ']');
        h('td', { 'class': 't' }, tr, t);
        rows.push({ tr: tr, f: f });
      });
    });
    var fa = document.getElementById('f-actors');
    D.actors.forEach(function (a, k) {
      var l = h('label', {}, fa);
      var c = h('input', { type: 'checkbox', 'data-actor': String(k) }, l);
      c.checked = true; c.addEventListener('change', filter);
      l.appendChild(document.createTextNode(' ' + a.name));
    });
    var fe = document.getElementById('f-event');
    Object.keys(events).sort().forEach(function (ev) { h('option', { value: ev }, fe, ev); });
    fe.addEventListener('change', filter);
    document.getElementById('f-text').addEventListener('input', filter);
  }
  function filter() {
    var on = {};
    document.querySelectorAll('#f-actors input').forEach(function (c) { on[c.dataset.actor] = c.checked; });
    var ev = document.getElementById('f-event').value, q = document.getElementById('f-text').value.toLowerCase();
    rows.forEach(function (r) {
      var ok = on[r.tr.dataset.actor] !== false && (!ev || r.tr.dataset.event === ev) &&
        (!q || r.tr.textContent.toLowerCase().indexOf(q) >= 0);
      r.tr.style.display = ok ? '' : 'none';
    });
  }
  function showTrace(seq) {
    var best = null;
    for (var i = 0; i < rows.length; i++) if (rows[i].f.e >= seq) { best = rows[i]; break; }
    if (!best && rows.length) best = rows[rows.length - 1];
    if (!best) return;
    document.querySelectorAll('#trace tr.hl').forEach(function (t) { t.classList.remove('hl'); });
    best.tr.classList.add('hl');
    best.tr.scrollIntoView({ block: 'center' });
  }
  function setStep(k) { document.getElementById('step').value = String(k); drawMap(k); }

  // ---- wiring ----
  drawTimeline();
  drawTrace();
  var step = document.getElementById('step');
  step.max = String(Math.max(0, D.snapshots.length - 1));
  step.value = String(D.failingSnapshot);
  step.addEventListener('input', function () { drawMap(Number(step.value)); });
  drawMap(D.failingSnapshot);
  document.getElementById('copy').addEventListener('click', function () {
    var t = document.getElementById('replay').textContent;
    if (navigator.clipboard) navigator.clipboard.writeText(t).catch(function () {});
  });
  document.getElementById('to-violation').addEventListener('click', function () { showTrace(D.violation.seq); });
  document.body.setAttribute('data-ready', '1');
})();
`;
