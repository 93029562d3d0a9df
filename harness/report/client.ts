// The report page's own script and style, inlined into each report (no network). Browser JavaScript
// over the embedded JSON (harness/report/data.ts): the memory map as SVG with a step slider, the
// actors' timeline (d3, inlined from node_modules by html.ts: scale, axis, zoom), the filterable trace.

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
    if (counts[NC - 1]) parts.push(counts[NC - 1] + ' pinned in ZONE_MOVABLE, CMA or Isolate');
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
      (bad ? ' - OFFENDING: a long-term pin in ZONE_MOVABLE, a CMA or an isolated pageblock' : ''));
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
      s.bad.slice(0, 8).join(', ') : 'no long-term pin in ZONE_MOVABLE, CMA or Isolate at this step';
    document.getElementById('mapinfo').textContent = 'step ' + (k + 1) + '/' + D.snapshots.length + ' at ' +
      stamp(s.seq) + ': ' + s.label + (k === D.failingSnapshot ? ' (the failing step)' : '') + ' - ' + bad +
      (s.unit > 1 ? ' - one cell per ' + size(s.unit) + ' (' + s.unit + ' frames), classes stacked by count' : '');
  }

  // ---- timeline (d3: scale, axis, zoom and pan along the trace) ----
  var W = 1100, L = 130, LANE = 26;
  function drawTimeline() {
    var n = D.actors.length, bottom = (n + 1) * LANE, H = bottom + 56;
    var svg = d3.select('#timeline').append('svg').attr('id', 'tlsvg').attr('width', W).attr('height', H);
    svg.append('defs').append('clipPath').attr('id', 'tlclip').append('rect')
      .attr('x', L).attr('y', 0).attr('width', W - L - 10).attr('height', H);
    svg.append('text').attr('x', 0).attr('y', 14).text('scheduler');
    svg.selectAll('g.lane').data(D.actors).join('g').attr('class', 'lane')
      .attr('data-actor', function (a) { return a.name; })
      .each(function (a, k) {
        var g = d3.select(this);
        g.append('rect').attr('x', 0).attr('y', (k + 1) * LANE).attr('width', W).attr('height', LANE - 2)
          .attr('fill', k % 2 ? '#fafafa' : '#f0f0f0');
        g.append('text').attr('x', 2).attr('y', (k + 1) * LANE + 16).text(a.name + ' [' + String(a.cpu).padStart(3, '0') + ']');
      });
    var plot = svg.append('g').attr('clip-path', 'url(#tlclip)');
    var x0 = d3.scaleLinear().domain([0, D.maxSeq]).range([L, W - 10]), x = x0;
    var axis = svg.append('g').attr('transform', 'translate(0,' + (bottom + 2) + ')');
    var sw = plot.selectAll('line.switch').data(D.switches).join('line').attr('class', 'switch')
      .attr('y1', 2).attr('y2', 20).attr('stroke', '#555');
    sw.append('title').text(function (s) {
      return stamp(s.seq) + ': switch ' + D.actors[s.from].name + ' -> ' + D.actors[s.to].name;
    });
    var ops = plot.selectAll('rect.op').data(D.ops).join('rect').attr('class', 'op')
      .attr('y', function (o) { return (o.actor + 1) * LANE + 3; }).attr('height', LANE - 8).attr('stroke', '#444')
      .attr('data-seq', function (o) { return o.start; })
      .attr('fill', function (o) { return o.end < 0 ? '#bbb' : o.rc < 0 ? '#e06666' : '#93c47d'; })
      .on('click', function (ev, o) { showTrace(o.start); });
    ops.append('title').text(function (o) {
      return D.actors[o.actor].name + ' op ' + (o.i + 1) + ': ' + o.text + ' -> ' + o.rcText + (o.detail ? ' ' + o.detail : '');
    });
    var labels = plot.selectAll('text.oplabel').data(D.ops).join('text').attr('class', 'oplabel')
      .attr('pointer-events', 'none').attr('y', function (o) { return (o.actor + 1) * LANE + 16; });
    var marks = D.events.filter(function (e) { return e.actor >= 0; });
    var ev = plot.selectAll('path.ev').data(marks).join('path')
      .attr('class', function (e) {
        return /^(pinlab_violation|pinlab_bug)/.test(e.text) ? 'ev violation-mark' : /^sched_blocked/.test(e.text) ?
          'ev wait' : 'ev fault';
      })
      .attr('fill', function (e) { return /^(pinlab_violation|pinlab_bug)/.test(e.text) ? '#c00' :
        /^sched_blocked/.test(e.text) ? '#777' : '#f90'; })
      .on('click', function (e2, e) { showTrace(e.seq); });
    ev.append('title').text(function (e) { return stamp(e.seq) + ' ' + e.text; });
    var vline = plot.append('line').attr('class', 'violation').attr('y1', 0).attr('y2', bottom)
      .attr('stroke', '#c00').attr('stroke-width', 2);
    var vtext = svg.append('text').attr('y', bottom + 42).attr('fill', '#c00').text('property broke ' + stamp(D.violation.seq));
    var snaps = plot.selectAll('rect.snap').data(D.snapshots).join('rect').attr('class', 'snap')
      .attr('y', bottom + 30).attr('width', 3).attr('height', 8).attr('fill', '#3c78d8')
      .on('click', function (e, s) { setStep(D.snapshots.indexOf(s)); });
    snaps.append('title').text(function (s, k) { return 'memory map step ' + (k + 1) + ': ' + s.label; });
    function place() {
      sw.attr('x1', function (s) { return x(s.seq); }).attr('x2', function (s) { return x(s.seq); });
      ops.attr('x', function (o) { return x(o.start); }).attr('width', function (o) {
        return Math.max(3, (o.end < 0 ? W : x(o.end)) - x(o.start));
      });
      labels.attr('x', function (o) { return Math.max(L, x(o.start)) + 2; }).text(function (o) {
        var w = Math.min(W - 10, o.end < 0 ? W : x(o.end)) - Math.max(L, x(o.start));
        return w > 50 ? (o.text.split(' ')[0] + ' ' + o.rcText).slice(0, Math.floor(w / 6)) : '';
      });
      ev.attr('d', function (e) {
        var cx = x(e.seq), y = (e.actor + 1) * LANE;
        return /^sched_blocked/.test(e.text) ? 'M' + (cx - 2) + ' ' + (y + LANE - 7) + ' h4 v4 h-4 z' :
          'M' + (cx - 5) + ' ' + (y + 2) + ' h10 l-5 9 z';
      });
      vline.attr('x1', x(D.violation.seq)).attr('x2', x(D.violation.seq));
      vtext.attr('x', Math.max(L, Math.min(x(D.violation.seq) + 3, W - 160)));
      snaps.attr('x', function (s) { return x(s.seq) - 1; });
      axis.call(d3.axisBottom(x).ticks(10).tickFormat(function (t) { return stamp(t); }));
    }
    var zoom = d3.zoom().scaleExtent([1, Math.max(2, D.maxSeq / 4)])
      .extent([[L, 0], [W - 10, H]]).translateExtent([[L, 0], [W - 10, H]])
      .on('zoom', function (e) { x = e.transform.rescaleX(x0); place(); });
    svg.call(zoom);
    place();
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
