// The user agent's hugetlb, shared, move_pages and mprotect ops (the longterm-pin-move suite): a MAP_HUGETLB
// fault takes a folio from the pool (dequeue_hugetlb_folio()), a MAP_SHARED one a shmem page, move_pages(2)
// migrates a range where it is told to, mprotect() write-protects.
import * as fc from 'fast-check';
import { PoolHolder } from '../../harness/runner';
import { SUITES, MOVE_MEMLOCK_PAGES } from '../../harness/suites';
import { Case } from '../../harness/run_case';
import { ENOMEM, EFAULT, EBUSY, EAGAIN, EHWPOISON } from '../../mm/errno';

let pool: PoolHolder;
beforeAll(() => {
  pool = new PoolHolder(2);
});
afterAll(async () => {
  await pool.destroy();
});

const userCase = (cmdline: string, ops: Record<string, unknown>[]): Case => ({
  layout: { cmdline, geometry: 'mini', maps: [{ name: 'buf', pages: 24 }] },
  variant: 'v6.12',
  schedule: [],
  faults: {},
  programs: { 'user-0': ops as Case['programs'][string] },
});

it('faults a hugetlb page from the pool, migrates it and the small pages, and gives the huge page back', async () => {
  const writes = [0, 1, 2, 3].map((k) => ({ op: 'write', map: 'buf', page: k, value: 100 + k }));
  const cs = userCase('mem=1M movablecore=512K hugepages=2 sysctl.vm.min_free_kbytes=16', [
    ...writes,
    { op: 'move_pages', map: 'buf', page: 0, pages: 4, to: 'kernel' },
    { op: 'hugetlb', page: 2, write: true, value: 77 },
    { op: 'hugetlb', page: 2, write: false },
    { op: 'move_pages', map: 'buf', page: 0, pages: 8, to: 'any', of: 'hugetlb' },
    { op: 'hugetlb', page: 2, write: false },
    { op: 'hugetlb', unmap: true },
    { op: 'touch', map: 'buf', page: 1, write: false },
  ]);
  const r = await pool.run(cs, { mode: 'det' });
  expect(r.failures.map((f) => f.property)).toEqual([]);
  const ops = r.actors[0]!.ops;
  expect(ops.map((o) => o.rc)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  expect(ops[4]!.detail).toMatch(/to kernel: 4 migrated, 0 failed/);
  expect(ops[6]!.detail).toMatch(/: 77$/);
  expect(ops[7]!.detail).toMatch(/vpn 32 \+8 to any: 8 migrated, 0 failed/); // the hugetlb folio, all 8 pages
  expect(ops[8]!.detail).toMatch(/: 77$/); // the copy kept what was written
  expect(ops[9]!.detail).toMatch(/unmapped/);
  expect(ops[10]!.detail).toMatch(/: 101$/);
});

it('a hugetlb op on a machine without a pool fails -ENOMEM (mmap of MAP_HUGETLB)', async () => {
  const r = await pool.run(
    userCase('mem=1M movablecore=512K sysctl.vm.min_free_kbytes=16', [{ op: 'hugetlb', page: 0 }]),
    {
      mode: 'det',
    },
  );
  expect(r.failures.map((f) => f.property)).toEqual([]);
  expect(r.actors[0]!.ops[0]!.rc).toBe(-ENOMEM);
});

it('maps shared memory (MAP_LOCKED: populated, locked_vm given back at teardown), migrates it, write-protects a range', async () => {
  const cs = userCase('mem=1M movablecore=512K sysctl.vm.min_free_kbytes=16', [
    { op: 'shared', page: 1, write: true, value: 5, locked: true },
    { op: 'shared', page: 1, write: false },
    { op: 'move_pages', map: 'buf', page: 0, pages: 8, to: 'kernel', of: 'shared' },
    { op: 'shared', page: 1, write: false },
    { op: 'write', map: 'buf', page: 0, value: 9 },
    { op: 'mprotect', map: 'buf', page: 0, pages: 2, write: false },
    { op: 'write', map: 'buf', page: 0, value: 10 },
    { op: 'touch', map: 'buf', page: 0, write: false },
    { op: 'mprotect', map: 'buf', page: 0, pages: 2, write: true },
    { op: 'write', map: 'buf', page: 0, value: 11 },
    { op: 'touch', map: 'buf', page: 0, write: false },
  ]);
  const r = await pool.run(cs, { mode: 'det' });
  expect(r.failures.map((f) => f.property)).toEqual([]); // pins-balance: locked_vm back to 0
  const ops = r.actors[0]!.ops;
  expect(ops.map((o) => o.rc)).toEqual([0, 0, 0, 0, 0, 0, -EFAULT, 0, 0, 0, 0]);
  expect(ops[1]!.detail).toMatch(/: 5$/);
  expect(ops[2]!.detail).toMatch(/to kernel: 8 migrated, 0 failed/); // MAP_LOCKED populated all 8
  expect(ops[3]!.detail).toMatch(/: 5$/);
  expect(ops[7]!.detail).toMatch(/: 9$/); // the write to the read-only range did not land
  expect(ops[10]!.detail).toMatch(/: 11$/);
});

it('mlock, mlock2(MLOCK_ONFAULT) and munlock of a range and of the shared mapping; teardown munlocks the rest', async () => {
  const cs = userCase('mem=1M movablecore=512K sysctl.vm.min_free_kbytes=16', [
    { op: 'mlock', map: 'buf', page: 0, pages: 4, how: 'mlock' },
    { op: 'mlock', map: 'buf', page: 8, pages: 4, how: 'onfault' },
    { op: 'write', map: 'buf', page: 8, value: 3 },
    { op: 'shared', page: 1, write: true, value: 5 },
    { op: 'mlock', map: 'buf', page: 0, pages: 8, how: 'onfault', of: 'shared' },
    { op: 'mlock', map: 'buf', page: 2, pages: 2, how: 'munlock' },
    { op: 'mlock', map: 'buf', page: 20, pages: 4, how: 'mlock' },
  ]);
  const r = await pool.run(cs, { mode: 'det' });
  // pins-balance: locked_vm 0 after teardown; lru-isolation-balanced: folios in the mlock batch are not isolated
  expect(r.failures.map((f) => f.property)).toEqual([]);
  const ops = r.actors[0]!.ops;
  expect(ops.map((o) => o.rc)).toEqual([0, 0, 0, 0, 0, 0, 0]);
  expect(ops[0]!.detail).toBe('mlock vpn 8 +4: done');
  expect(ops[4]!.detail).toMatch(/^onfault vpn \d+ \+8: done$/); // of the shared mapping, not buf
  expect(ops[4]!.detail).not.toMatch(/^onfault vpn 8 /);
});

it("the cma agent's alloc is a whole cma_alloc() (alloc_contig_range() of a CMA block); release frees it", async () => {
  const cmd = 'mem=1M movablecore=512K cma=128K@256K sysctl.vm.min_free_kbytes=16';
  const cs: Case = {
    ...userCase(cmd, []),
    programs: {
      'cma-0': [
        { op: 'alloc', block: 0 },
        { op: 'alloc', block: 0 },
        { op: 'release', slot: 0 },
        { op: 'release', slot: 0 },
        { op: 'alloc', block: 0 },
      ],
    },
  };
  const r = await pool.run(cs, { mode: 'det' });
  expect(r.failures.map((f) => f.property)).toEqual([]); // allocator-sound: the last allocation freed at teardown
  const ops = r.actors[0]!.ops;
  expect(ops.map((o) => o.rc)).toEqual([0, -EBUSY, 0, 0, 0]);
  expect(ops[0]!.detail).toMatch(/^memory2 \(pfn 64-95\) allocated; \d+ migrated$/);
  expect(ops[1]!.detail).toBe('memory2: already allocated');
  expect(ops[2]!.detail).toBe('memory2 freed (cma_release())');
  expect(ops[3]!.detail).toBe('nothing allocated');
});

it("migrate_to_device, then the pinner's GUP-fast long-term pin: RAM on v6.12, device memory with R17 (no-longterm-pin-in-movable)", async () => {
  const cmd = 'mem=1M movablecore=512K sysctl.vm.min_free_kbytes=16 pinlab.device_coherent=128K';
  const writes = [0, 1, 2, 3].map((k) => ({ op: 'write', map: 'buf', page: k, value: 60 + k }));
  for (const variant of ['v6.12', 'v6.12+R17']) {
    const cs: Case = {
      ...userCase(cmd, [...writes, { op: 'migrate_to_device', map: 'buf', page: 0, pages: 4 }]),
      variant,
      programs: {
        'user-0': [...writes, { op: 'migrate_to_device', map: 'buf', page: 0, pages: 4 }],
        'pinner-0': [{ op: 'pin', map: 'buf', page: 0, pages: 4, fast: true, write: true }],
      },
    };
    const r = await pool.run(cs, { mode: 'det' });
    expect(r.actors[0]!.ops[4]!.detail).toBe('vpn 8 +4: 4 migrated to the device, 0 not');
    expect([...new Set(r.failures.map((f) => f.property))]).toEqual(
      variant === 'v6.12' ? [] : ['no-longterm-pin-in-movable'],
    );
  }
});

describe("the pinner's long-term pins of the user's hugetlb and shared mappings (longterm-pin-move)", () => {
  // the user maps the hugetlb mapping, writes it, unmaps it (and with remap, maps a fresh one there)
  const pinCase = (schedule: number[], pinnerOps: Record<string, unknown>[], remap: boolean): Case => {
    const cs = userCase('mem=1M movablecore=512K hugepages=2 sysctl.vm.min_free_kbytes=16', [
      { op: 'hugetlb', page: 1, write: true, value: 7 },
      { op: 'hugetlb', unmap: true },
      ...(remap ? [{ op: 'hugetlb', page: 1, write: false }] : []),
    ]);
    cs.programs['pinner-0'] = pinnerOps as Case['programs'][string];
    return { ...cs, schedule };
  };
  const pinThenDma = [
    { op: 'pin', map: 'buf', page: 1, pages: 2, fast: false, of: 'hugetlb' },
    { op: 'dma', slot: 0, page: 0, value: 9 },
  ];

  it('the pool sits in ZONE_MOVABLE: the pin migrates the hugetlb folio to a kernel zone first; DMA after a munmap and a fresh mapping lands in the pinned page', async () => {
    // the user's munmap and new mapping run between the pin and the DMA (switches at its second op and
    // at the DMA); without the scratch mapping's generation word, dma-integrity would say the process
    // no longer maps the pinned page
    const r = await pool.run(pinCase([0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], pinThenDma, true), { mode: 'det' });
    expect(r.failures.map((f) => f.property)).toEqual([]);
    expect(r.actors[0]!.ops.map((o) => o.rc)).toEqual([0, 0, 0]);
    const [pin, dma] = r.actors[1]!.ops;
    expect(pin!.detail).toMatch(
      /vpn 33 \+2: 2 pinned \(pinned, 8 migrated, 1 retries\) pfn \d+\(Normal\),\d+\(Normal\)/,
    );
    expect(r.actors[0]!.ops[1]!.seq).toBeGreaterThan(pin!.seq);
    expect(r.actors[0]!.ops[1]!.seq).toBeLessThan(dma!.seq);
    expect(dma!.detail).toMatch(/^DMA write pfn \d+ \(vpn 33\) = 9$/);
  });

  it('a munmap during the pin makes it -EFAULT, with no errno-contract failure', async () => {
    const r = await pool.run(pinCase([0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1], pinThenDma, false), { mode: 'det' });
    expect(r.failures.map((f) => f.property)).toEqual([]);
    expect(r.actors[1]!.ops[0]!.detail).toMatch(/-EFAULT \(error, 8 migrated, 1 retries\)/);
  });

  it('a pin of a scratch mapping the user never made is -EFAULT; of the shared one, migrated out of ZONE_MOVABLE', async () => {
    const cs = userCase('mem=1M movablecore=512K sysctl.vm.min_free_kbytes=16', [
      { op: 'shared', page: 3, write: true, value: 4 },
    ]);
    cs.programs['pinner-0'] = [
      { op: 'pin', map: 'buf', page: 0, pages: 1, fast: true, of: 'hugetlb' },
      { op: 'pin', map: 'buf', page: 3, pages: 1, fast: true, write: false, of: 'shared' },
    ];
    const r = await pool.run(cs, { mode: 'det' });
    expect(r.failures.map((f) => f.property)).toEqual([]);
    const ops = r.actors[1]!.ops;
    expect(ops.map((o) => o.rc)).toEqual([-EFAULT, 1]);
    expect(ops[1]!.detail).toMatch(/pin_user_pages_fast\(FOLL_LONGTERM\) vpn 43 \+1: 1 pinned .* pfn \d+\(Normal\)/);
  });
});

it("three of longterm-pin-move's random machines in four have device-coherent memory for migrate_to_device (R17)", () => {
  const cases = fc.sample(SUITES['longterm-pin-move']!.arbitrary(fc, { variant: 'v6.12' }), { numRuns: 400, seed: 7 });
  const share = cases.filter((c) => /pinlab\.device_coherent=/.test(c.layout.cmdline)).length / cases.length;
  expect(share).toBeGreaterThan(0.65);
  expect(share).toBeLessThan(0.85);
});

describe('longterm-pin-move under a small RLIMIT_MEMLOCK', () => {
  it('one case in four gets 4 or 8 pages, which mlock and MAP_LOCKED reach', () => {
    const cases = fc.sample(SUITES['longterm-pin-move']!.arbitrary(fc, { variant: 'v6.12' }), {
      numRuns: 200,
      seed: 7,
    });
    const limited = cases.filter((c) => c.layout.memlock !== undefined);
    expect(limited.length).toBeGreaterThan(20);
    expect(limited.length).toBeLessThan(100);
    expect(new Set(limited.map((c) => c.layout.memlock))).toEqual(new Set(MOVE_MEMLOCK_PAGES));
  });

  it('memory already locked is not counted twice (count_mm_mlocked_page_nr()); past the limit -ENOMEM, MAP_LOCKED -EAGAIN', async () => {
    const cs = userCase('mem=1M movablecore=512K sysctl.vm.min_free_kbytes=16', [
      { op: 'mlock', map: 'buf', page: 0, pages: 6, how: 'mlock' },
      { op: 'mlock', map: 'buf', page: 0, pages: 8, how: 'mlock' }, // 8 + 6 locked > 8, less the 6 already locked
      { op: 'mlock', map: 'buf', page: 8, pages: 1, how: 'mlock' },
      { op: 'shared', page: 0, write: true, value: 1, locked: true },
    ]);
    const r = await pool.run({ ...cs, layout: { ...cs.layout, memlock: 8 } }, { mode: 'det' });
    expect(r.failures.map((f) => f.property)).toEqual([]); // pins-balance: locked_vm back to 0
    expect(r.actors[0]!.ops.map((o) => o.rc)).toEqual([0, 0, -ENOMEM, -EAGAIN]);
  });
});

describe("longterm-pin-hwpoison's soft offline", () => {
  it('of a page memory failure left mapped (a THP a pin keeps whole): "already poisoned", 0, and the reference given back', async () => {
    const cs = userCase('mem=1M sysctl.vm.min_free_kbytes=16 transparent_hugepage=always', [
      { op: 'write', map: 'buf', page: 8, value: 3 },
      { op: 'hwpoison', map: 'buf', page: 9 },
      { op: 'soft_offline', map: 'buf', page: 9 },
    ]);
    cs.programs['pinner-0'] = [{ op: 'pin', map: 'buf', page: 8, pages: 1, fast: false }];
    // the pinner pins the THP between the user's write and its memory failure
    const r = await pool.run({ ...cs, schedule: [0, 0, 1] }, { mode: 'det' });
    // pins-balance: the reference madvise(MADV_SOFT_OFFLINE)'s get_user_pages_fast() took is dropped
    expect(r.failures.map((f) => f.property)).toEqual([]);
    expect(r.actors[0]!.ops.map((o) => o.rc)).toEqual([0, -EHWPOISON, 0]);
    expect(r.actors[1]!.ops[0]!.rc).toBe(1);
  });
});
