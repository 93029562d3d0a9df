// The HTML reports of the committed regressions, opened in a real browser (Debian's chromium, headless,
// driven by puppeteer-core): the offending frames are marked in the memory map, there is one lane per
// actor, the replay command is there, and the page logs no error. Screenshots go to test-output/report/
// (git-ignored). A missing browser is installed with apt-get as root, else the test fails in one line.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as puppeteer from 'puppeteer-core';
import { loadRegression, PoolHolder } from '../../harness/runner';
import { regressionSource, reportHtml } from '../../harness/report/index';
import { ensureChromium } from '../../harness/report/browser';

const ROOT = path.join(__dirname, '..', '..');
const dir = path.join(ROOT, 'regressions');
const out = path.join(ROOT, 'test-output', 'report');
const files = fs
  .readdirSync(dir)
  .filter((f) => f.endsWith('.json'))
  .sort();

let browser: puppeteer.Browser;
let pool: PoolHolder;

beforeAll(async () => {
  const exe = ensureChromium(() => undefined); // throws one line (SetupError) when it cannot
  browser = await puppeteer.launch({
    executablePath: exe,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  pool = new PoolHolder(8);
  fs.mkdirSync(out, { recursive: true });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await pool?.destroy();
});

interface Seen {
  lanes: string[];
  replay: string;
  cells: number;
  pfns: number[];
  blocks: number[];
  traceRows: number;
}

/** What the page shows (run in the page: this test's tsconfig has no DOM types). */
const SEEN = `(() => ({
  lanes: [...document.querySelectorAll('#tlsvg .lane')].map((l) => l.getAttribute('data-actor')),
  replay: document.getElementById('replay')?.textContent ?? '',
  cells: document.querySelectorAll('#mapsvg .cell').length,
  pfns: [...document.querySelectorAll('#mapsvg .cell[data-offending]')].map((c) => Number(c.getAttribute('data-pfn'))),
  blocks: [...document.querySelectorAll('#mapsvg .block[data-offending]')].map((c) => Number(c.getAttribute('data-block'))),
  traceRows: document.querySelectorAll('#trace tr').length,
}))()`;

/** What the failure's message says must be marked: a pinned pfn in ZONE_MOVABLE/CMA, or a memory block. */
function expectedMarks(property: string, message: string): { pfns: number[]; blocks: number[] } {
  const pin =
    /pfn (\d+) \(vpn \d+\) is long-term pinned in (ZONE_MOVABLE|a CMA pageblock|pageblock \d+, which was MIGRATE_ISOLATE)/.exec(
      message,
    );
  const block = /^(?:with every actor idle[^:]*, )?memory(\d+) \(ZONE_MOVABLE/.exec(message);
  return {
    pfns: property === 'no-longterm-pin-in-movable' && pin ? [Number(pin[1])] : [],
    blocks: property === 'movable-offlinable' && block ? [Number(block[1])] : [],
  };
}

it('opens every committed regression report in Chromium: marks, lanes, replay command, no errors', async () => {
  let marked = 0;
  for (const f of files) {
    const file = path.join('regressions', f);
    const reg = loadRegression(path.join(ROOT, file));
    const src = await regressionSource(file, reg, { holder: pool });
    const html = path.join(out, f.replace(/\.json$/, '.html'));
    fs.writeFileSync(html, reportHtml(src));
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(`${f}: console: ${m.text()}`);
    });
    page.on('pageerror', (e) => errors.push(`${f}: ${String(e)}`));
    await page.setViewport({ width: 1200, height: 900 });
    await page.goto(`file://${html}`, { waitUntil: 'load' });
    await page.waitForSelector('body[data-ready="1"]', { timeout: 10_000 });
    const seen = (await page.evaluate(SEEN)) as Seen;
    await page.screenshot({ path: html.replace(/\.html$/, '.png'), fullPage: true });
    await page.close();
    expect(errors).toEqual([]);
    expect({ f, lanes: seen.lanes }).toEqual({ f, lanes: Object.keys(reg.case.programs) });
    expect(seen.replay).toBe(`pinlab replay ${file}`);
    expect(seen.cells).toBeGreaterThan(0);
    // a boot suite case (no actors) has no trace: its failure is the machine at boot
    if (Object.keys(reg.case.programs).length) expect(seen.traceRows).toBeGreaterThan(0);
    const want = expectedMarks(src.failure.property, src.failure.message);
    for (const pfn of want.pfns) expect({ f, pfn, marked: seen.pfns.includes(pfn) }).toEqual({ f, pfn, marked: true });
    for (const b of want.blocks) expect({ f, b, marked: seen.blocks.includes(b) }).toEqual({ f, b, marked: true });
    marked += want.pfns.length + want.blocks.length;
    // the map marks exactly the snapshot's offending frames (a frame-by-frame mini machine)
    const snaps = src.result.snapshots ?? [];
    const failing = [...snaps].reverse().find((s) => s.seq <= src.failure.seq) ?? snaps[0];
    if (failing?.unit === 1) expect(seen.pfns.sort((a, b) => a - b)).toEqual([...failing.bad].sort((a, b) => a - b));
  }
  expect(marked).toBeGreaterThan(5); // the corpus has pins in ZONE_MOVABLE and blocks that would not go offline
}, 120_000);
