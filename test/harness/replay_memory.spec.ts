// A replay costs about what booting the machine costs: no kept boot image of a large machine, a sparse
// snapshot of the page counts, and one copy of the machine for movable-offlinable, written only where the
// machine is not zero; machines above 4 GiB of metadata (mem=512G) work (no typed array spans them whole).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Memmap, processShape, MINI, memmapBytes } from '../../mm/memmap';
import { planBoot, shapeFor } from '../../mm/mm_init';
import { parseCmdline, parseGeometry } from '../../mm/cmdline';
import { cloneMachine } from '../../properties/copy';
import { pinBalanceErrors, snapshotPageCounts } from '../../properties/pins_balance';
import { Control } from '../../harness/schedctl';
import { ActorScheduler } from '../../harness/scheduler';
import { boot } from '../helpers';

const root = path.join(__dirname, '..', '..');
const bin = path.join(root, 'bin', 'pinlab.js');

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pinlab-mem-'));
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** A machine whose buffer exceeds 4 GiB, not booted (the buffer is zero but for what the test writes). */
function hugeMemmap(): Memmap {
  const nrFrames = 138 << 20; // ~4.4 GB of struct page, page tables and shmem slots
  return new Memmap({
    nrFrames,
    nrCpus: 2,
    maxOrder: MINI.maxOrder,
    pageblockOrder: MINI.pageblockOrder,
    blockPages: 1 << 15,
    nrVmItems: 8,
    ...processShape(nrFrames, MINI.pageblockOrder),
  });
}

describe('copies of a machine', () => {
  it('cloneMachine copies a machine above 4 GiB exactly, and a copy made into an old one drops what the old one had', () => {
    const m = hugeMemmap();
    expect(m.sab.byteLength).toBeGreaterThan(2 ** 32);
    const last = m.nrFrames - 1;
    m.flags[3] = 0x11;
    m.content[last] = 0xdeadbeef; // past 2 GiB into the buffer
    m.shmemPages[m.shmemPages.length - 1] = 42;
    expect(m.shmemPages.byteOffset + 4 * (m.shmemPages.length - 1)).toBeGreaterThan(2 ** 32);
    const c = cloneMachine(m);
    expect(c.sab).not.toBe(m.sab);
    expect([c.flags[3], c.content[last], c.shmemPages[c.shmemPages.length - 1]]).toEqual([0x11, 0xdeadbeef, 42]);
    c.refcount[7] = 5; // the copy was used (an offline attempt wrote to it)
    m.content[last] = 0; // and the machine moved on
    m.index[9] = 3;
    const again = cloneMachine(m, c.sab);
    expect(again.sab).toBe(c.sab);
    expect([again.flags[3], again.content[last], again.refcount[7], again.index[9]]).toEqual([0x11, 0, 0, 3]);
  });

  it('the scheduler sees every word of a machine above 4 GiB', () => {
    const sab = new SharedArrayBuffer(2 ** 32 + 64);
    const s = new ActorScheduler(new Control({ nrActors: 1, schedCap: 256, ringCap: 64, orderCap: 0 }), 0, sab, true);
    expect((s as unknown as { machine32: Int32Array }).machine32.length).toBe(2 ** 30 + 16);
  });

  it('the page-count snapshot of a booted machine holds only frames with a count, and still finds every change', () => {
    const m = boot('mem=4G movablecore=1G');
    const base = snapshotPageCounts(m);
    expect(base.pfns.length).toBeLessThan(m.nrFrames / 100);
    expect(pinBalanceErrors(m, 0, 0, base)).toEqual([]);
    const pfn = m.nrFrames - 3;
    m.mapcount[pfn] = 1;
    m.refcount[base.pfns[0]!]! += 1;
    expect(pinBalanceErrors(m, 0, 0, base)).toEqual([
      `pfn ${base.pfns[0]}: refcount ${m.refcount[base.pfns[0]!]}, was ${base.counts[0]}`,
      `pfn ${pfn}: _mapcount 1, was 0`,
    ]);
  });
});

/**
 * Whether a read of memory this process never wrote costs it a page. A kernel that maps the shared zero
 * page for it (do_anonymous_page() on a read fault) charges nothing; some VM kernels (6.18 under
 * Firecracker, where this project's CI ran) give every such read a fresh page.
 */
function readsCostPages(): boolean {
  const probe =
    "const rss = () => +/RssAnon:\\s+(\\d+)/.exec(require('fs').readFileSync('/proc/self/status', 'utf8'))[1];" +
    'const b = new Uint8Array(new SharedArrayBuffer(64 << 20)); const r0 = rss(); let s = 0;' +
    'for (let p = 0; p < b.length; p += 4096) s += b[p];' +
    'console.log(rss() - r0 + s);';
  const r = spawnSync(process.execPath, ['-e', probe], { encoding: 'utf8', timeout: 60_000 });
  expect(r.stdout).toMatch(/^\d+\n$/);
  return Number(r.stdout) > 32 << 10; // kB: more than half of the 64 MiB read became resident
}

/** VmHWM (/proc/self/status) of `pinlab ...args` in bytes: this process's own peak, which exec resets. */
function peakBytes(hook: string, args: string[]): number {
  const r = spawnSync(process.execPath, ['--require', hook, bin, ...args], { encoding: 'utf8', timeout: 120_000 });
  expect(r.stderr).toMatch(/^vmhwm \d+$/m);
  return Number(/^vmhwm (\d+)$/m.exec(r.stderr)![1]) * 1024;
}

const onLinux = process.platform === 'linux' ? it : it.skip; // /proc/self/status

describe('the memory a replay takes', () => {
  onLinux('a replay of a mem=32G case peaks within 2.5x what pinlab layout of the same machine takes', () => {
    const reg = JSON.parse(
      fs.readFileSync(path.join(root, 'regressions', 'longterm-pin-v5.12-no-longterm-pin-in-movable-7.json'), 'utf8'),
    );
    const cmdline = 'mem=32G movablecore=50%';
    // the v5.12 pin lands in ZONE_MOVABLE: movable-offlinable copies the machine at quiescence and at the end
    reg.case.layout = { ...reg.case.layout, cmdline };
    delete reg.case.layout.geometry;
    delete reg.trace_hash;
    const file = path.join(tmp, 'big.json');
    fs.writeFileSync(file, JSON.stringify(reg));
    // not process.resourceUsage().maxRSS: getrusage() keeps the largest of the exec'ed image's ancestors,
    // so a child of a large jest worker would report the worker's peak
    const hook = path.join(tmp, 'vmhwm.js');
    fs.writeFileSync(
      hook,
      "process.on('exit', () => { const fs = require('fs'); " +
        "fs.writeSync(2, `vmhwm ${/VmHWM:\\s+(\\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1]}\\n`); });\n",
    );
    const layout = peakBytes(hook, ['layout', '--cmdline', cmdline]);
    const replay = peakBytes(hook, ['replay', file]);
    // Where reads cost pages, the replay's reads of what boot never wrote cost what writing it would:
    // the trace digest and the end-of-run checks read every frame's counts, and the copy's test for
    // pages of zeros reads the machine and the old copy whole. Allow the machine's buffer twice for it.
    const buffer = memmapBytes(shapeFor(planBoot(parseCmdline(cmdline, parseGeometry(undefined)))));
    const budget = 2.5 * layout + (readsCostPages() ? 2 * buffer : 0);
    // it was 7x where reads are free (a kept boot image, a full snapshot and two full copies), and more here
    expect(replay).toBeLessThan(budget);
  });
});
