// GUP and long-term pinning (mm/gup.c, v6.12 and the older loop forms): every errno path, the pin
// accounting of try_grab_folio()/gup_put_folio(), and what __gup_longterm_locked() leaves behind.
import { boot, usedFrames, withVariant } from '../../helpers';
import { bprmMmInit, doMmap, doMunmap, doMprotect, exitMmap, PROT_READ, PROT_WRITE } from '../../../mm/mmap';
import { getUser, putUser, followPte, findVma } from '../../../mm/memory';
import {
  pinUserPages,
  pinUserPagesRemote,
  pinUserPagesFast,
  getUserPages,
  getUserPagesFast,
  releasePages,
  unpinUserPage,
  unpinUserPages,
  unpinUserPagesDirtyLock,
  unpinUserPageRangeDirtyLock,
  isValidGupArgs,
  checkVmaFlags,
  newPinReport,
  FOLL_WRITE,
  FOLL_GET,
  FOLL_PIN,
  FOLL_LONGTERM,
  FOLL_TOUCH,
  FOLL_PCI_P2PDMA,
  FOLL_FORCE,
  GUP_LONGTERM_RETRIES_MAX,
} from '../../../mm/gup';
import { Memmap, PG_head, PG_dirty, PG_zero, PG_isolated, PG_lru, PG_buddy, PG_anon } from '../../../mm/memmap';
import { ZONE_MOVABLE, ZONE_NORMAL, MIGRATE_CMA, MIGRATE_MOVABLE } from '../../../mm/mmzone';
import { EFAULT, EINVAL, EINTR, ENOMEM, EAGAIN } from '../../../mm/errno';
import { lruAddDrainAll } from '../../../mm/swap';
import { drainAllPages, allocPages, freePages, NO_PAGE } from '../../../mm/page_alloc';
import { vmstatSnapshot } from '../../../mm/vmstat';
import { GFP_KERNEL, __GFP_NORETRY } from '../../../mm/gfp';
import { GUP_PIN_COUNTING_BIAS, folioIsLongtermPinnable } from '../../../mm/pinnable';
import { folioMaybeDmaPinned } from '../../../mm/rmap';
import { isolateFolio, putbackMovablePages } from '../../../mm/migrate';
import { setCurrent, newTask, current, Task, setFaultHook } from '../../../mm/sched';
import { setVariant, variant, KernelVariant } from '../../../mm/variants';
import { KernelPanic } from '../../../mm/oom_kill';
import { pfnOf } from '../../../mm/memory';
import { folioPincount, pincountAt } from '../../../mm/memmap';

const MINI = 'mini';
const CMD = 'mem=1M movablecore=512K sysctl.vm.min_free_kbytes=16';
/** CMA inside the kernel zone, more than half its free memory: movable allocations land in CMA first. */
const CMA_CMD = 'mem=512K cma=256K sysctl.vm.min_free_kbytes=16';
const RW = PROT_READ | PROT_WRITE;
const LT = FOLL_WRITE | FOLL_LONGTERM;
// include/linux/mm_types.h (6.12) flags pinlab does not model; gup_fast_fallback() refuses them
const FOLL_DUMP = 1 << 2;
const FOLL_SPLIT_PMD = 1 << 9;

let savedTask: Task;
let savedVariant: KernelVariant;
beforeEach(() => {
  savedTask = current();
  savedVariant = variant();
});
afterEach(() => {
  setCurrent(savedTask);
  setVariant(savedVariant);
  setFaultHook(null);
});

/** Boot, create the pinning process and make it current (the OOM killer asks current->mm). */
function machine(cmd = CMD, opts: { oomScoreAdj?: number } = {}): { m: Memmap; mm: number } {
  const m = boot(cmd, MINI);
  const mm = bprmMmInit(m, opts);
  setCurrent(newTask(100, 'pinner', 0, mm));
  return { m, mm };
}

/** An anonymous RW mapping of n pages, each written (value base + i). */
function touched(m: Memmap, mm: number, n: number, base = 500): number {
  const v = doMmap(m, mm, { nrPages: n, prot: RW });
  expect(v).toBeGreaterThanOrEqual(0);
  for (let i = 0; i < n; i++) expect(putUser(m, mm, v + i, base + i)).toBe(base + i);
  return v;
}

function pinStat(m: Memmap): { acquired: number; released: number } {
  const s = vmstatSnapshot(m);
  return { acquired: s.nr_foll_pin_acquired, released: s.nr_foll_pin_released };
}

/** Empty the LRU add batches and per-CPU free lists, so refcounts and free counts are exact. */
function settle(m: Memmap): void {
  lruAddDrainAll(m);
  drainAllPages(m);
}

/** Every frame of a mapping: in a kernel zone, not CMA, pinned (folio_maybe_dma_pinned). */
function expectLongtermPinned(m: Memmap, pages: number[], n: number): void {
  for (let i = 0; i < n; i++) {
    const p = pages[i]!;
    expect(m.pageZonenum(p)).not.toBe(ZONE_MOVABLE);
    expect(m.getPageblockMigratetype(p)).not.toBe(MIGRATE_CMA);
    if (!(m.flags[p]! & PG_zero)) expect(folioMaybeDmaPinned(m, m.compoundHead(p))).toBe(true);
  }
}

// ---------------------------------------------------------------------------------------------

describe('is_valid_gup_args() (mm/gup.c 6.12)', () => {
  it('is_valid_gup_args(): internal flags from callers, PIN with GET, LONGTERM without PIN, no pages, LONGTERM|P2PDMA', () => {
    const pages: number[] = [];
    expect(isValidGupArgs(pages, FOLL_PIN, 0)).toBe(-EINVAL);
    expect(isValidGupArgs(pages, FOLL_TOUCH, FOLL_GET)).toBe(-EINVAL);
    expect(isValidGupArgs(pages, FOLL_GET, FOLL_PIN)).toBe(-EINVAL);
    expect(isValidGupArgs(pages, FOLL_LONGTERM, FOLL_GET)).toBe(-EINVAL);
    expect(isValidGupArgs(null, FOLL_LONGTERM, FOLL_PIN)).toBe(-EINVAL);
    expect(isValidGupArgs(null, 0, FOLL_GET)).toBe(-EINVAL);
    expect(isValidGupArgs(pages, FOLL_LONGTERM | FOLL_PCI_P2PDMA, FOLL_PIN)).toBe(-EINVAL);
    // the accepted forms come back with to_set added
    expect(isValidGupArgs(pages, FOLL_LONGTERM | FOLL_WRITE, FOLL_PIN)).toBe(FOLL_LONGTERM | FOLL_WRITE | FOLL_PIN);
    expect(isValidGupArgs(pages, FOLL_GET, FOLL_GET)).toBe(FOLL_GET);
    expect(isValidGupArgs(pages, FOLL_PCI_P2PDMA, FOLL_PIN)).toBe(FOLL_PCI_P2PDMA | FOLL_PIN);
  });

  it('pin_user_pages() / pin_user_pages_remote() return 0 on bad arguments; pin_user_pages_fast() and get_user_pages() -EINVAL', () => {
    const { m, mm } = machine();
    const v = touched(m, mm, 4);
    const before = vmstatSnapshot(m);
    const bad: [number, number[] | null][] = [
      [FOLL_GET, []],
      [FOLL_PIN, []],
      [FOLL_TOUCH, []],
      [FOLL_LONGTERM | FOLL_PCI_P2PDMA, []],
      [FOLL_LONGTERM, null],
    ];
    for (const [flags, pages] of bad) {
      const r = newPinReport();
      expect(pinUserPages(m, mm, v, 4, flags, pages as number[], r)).toBe(0);
      expect(r.outcome).toBe('error');
      expect(pinUserPagesRemote(m, mm, v, 4, flags, pages as number[])).toBe(0);
      expect(pinUserPagesFast(m, mm, v, 4, flags, pages as number[])).toBe(-EINVAL);
    }
    expect(getUserPages(m, mm, v, 4, FOLL_PIN, [])).toBe(-EINVAL);
    expect(getUserPages(m, mm, v, 4, FOLL_LONGTERM, [])).toBe(-EINVAL);
    expect(getUserPages(m, mm, v, 4, FOLL_TOUCH, [])).toBe(-EINVAL);
    const after = vmstatSnapshot(m);
    expect(after.nr_foll_pin_acquired).toBe(before.nr_foll_pin_acquired);
    expect(after.pgfault).toBe(before.pgfault);
    expect(after.pgmigrate_success).toBe(before.pgmigrate_success);
  });

  it('gup_fast_fallback(): pin_user_pages_fast() refuses flags outside its set with -EINVAL; FOLL_FORCE is in it', () => {
    const { m, mm } = machine();
    const v = touched(m, mm, 2);
    for (const f of [FOLL_DUMP, FOLL_SPLIT_PMD]) {
      expect(pinUserPagesFast(m, mm, v, 2, FOLL_WRITE | f, [])).toBe(-EINVAL);
      // the slow entry point has no such check (check_vma_flags() looks at the ones it knows)
      const pages: number[] = [];
      expect(pinUserPages(m, mm, v, 2, FOLL_WRITE | f, pages)).toBe(2);
      unpinUserPages(m, pages, 2);
    }
    const pages: number[] = [];
    expect(pinUserPagesFast(m, mm, v, 2, FOLL_WRITE | FOLL_FORCE, pages)).toBe(2);
    unpinUserPages(m, pages, 2);
    const s = pinStat(m);
    expect(s.acquired).toBe(s.released);
  });

  it('__get_user_pages(): nr_pages 0 returns 0 from every entry point and touches nothing', () => {
    const { m, mm } = machine();
    const v = touched(m, mm, 2);
    const before = vmstatSnapshot(m);
    const r = newPinReport();
    expect(pinUserPages(m, mm, v, 0, LT, [], r)).toBe(0);
    expect(pinUserPagesFast(m, mm, v, 0, LT, [])).toBe(0);
    expect(getUserPages(m, mm, v, 0, 0, [])).toBe(0);
    expect(r.migrated).toBe(0);
    expect(vmstatSnapshot(m)).toEqual(before);
  });
});

// ---------------------------------------------------------------------------------------------

describe('check_vma_flags() and __get_user_pages() errors', () => {
  it('check_vma_flags(): VM_IO | VM_PFNMAP is -EFAULT for pin, fast pin and get', () => {
    const { m, mm } = machine();
    const v = doMmap(m, mm, { nrPages: 4, prot: RW, pfnmap: true });
    expect(checkVmaFlags(m, findVma(m, mm, v), FOLL_PIN)).toBe(-EFAULT);
    expect(pinUserPages(m, mm, v, 4, LT, [])).toBe(-EFAULT);
    expect(pinUserPagesFast(m, mm, v, 4, LT, [])).toBe(-EFAULT);
    expect(getUserPages(m, mm, v, 4, 0, [])).toBe(-EFAULT);
  });

  it('check_vma_flags(): a write pin of a read-only mapping is -EFAULT without FOLL_FORCE; a read pin is fine', () => {
    const { m, mm } = machine();
    const v = doMmap(m, mm, { nrPages: 4, prot: PROT_READ });
    const r = newPinReport();
    expect(pinUserPages(m, mm, v, 4, LT, [], r)).toBe(-EFAULT);
    expect(r.outcome).toBe('error');
    expect(pinUserPagesFast(m, mm, v, 4, FOLL_WRITE, [])).toBe(-EFAULT);
    expect(getUserPages(m, mm, v, 4, FOLL_WRITE, [])).toBe(-EFAULT);
    expect(checkVmaFlags(m, findVma(m, mm, v), FOLL_WRITE | FOLL_FORCE)).toBe(0);
    const pages: number[] = [];
    expect(pinUserPages(m, mm, v, 4, FOLL_LONGTERM, pages)).toBe(4); // read faults map the zero page
    unpinUserPages(m, pages, 4);
  });

  it('check_vma_flags(): PROT_NONE is -EFAULT for reads and writes (FOLL_FORCE would pass the check)', () => {
    const { m, mm } = machine();
    const v = touched(m, mm, 4);
    expect(doMprotect(m, mm, v, 4, 0)).toBe(0);
    expect(pinUserPages(m, mm, v, 4, FOLL_LONGTERM, [])).toBe(-EFAULT);
    expect(pinUserPages(m, mm, v, 4, LT, [])).toBe(-EFAULT);
    expect(pinUserPagesFast(m, mm, v, 4, 0, [])).toBe(-EFAULT);
    expect(getUserPages(m, mm, v, 4, 0, [])).toBe(-EFAULT);
    expect(checkVmaFlags(m, findVma(m, mm, v), FOLL_FORCE)).toBe(0);
  });

  it('__get_user_pages(): an unmapped address is -EFAULT', () => {
    const { m, mm } = machine();
    const v = touched(m, mm, 4);
    expect(doMunmap(m, mm, v, 4)).toBe(0);
    const r = newPinReport();
    expect(pinUserPages(m, mm, v, 4, LT, [], r)).toBe(-EFAULT);
    expect(r.outcome).toBe('error');
    expect(pinUserPagesFast(m, mm, v, 4, LT, [])).toBe(-EFAULT);
    expect(getUserPages(m, mm, v, 4, 0, [])).toBe(-EFAULT);
    const s = pinStat(m);
    expect(s.acquired).toBe(0);
  });

  it('__get_user_pages(): a range that runs into a hole returns the count pinned so far ("i ? i : ret")', () => {
    const { m, mm } = machine();
    const v = touched(m, mm, 8);
    expect(doMunmap(m, mm, v + 5, 3)).toBe(0);
    const pages = new Array(8).fill(-1);
    const r = newPinReport();
    expect(pinUserPages(m, mm, v, 8, LT, pages, r)).toBe(5);
    expect(r.outcome).toBe('partial');
    expect(r.migrated).toBe(5);
    expectLongtermPinned(m, pages, 5);
    expect(pages.slice(5)).toEqual([-1, -1, -1]);
    // a read-only VMA after a writable one: a write pin stops at the boundary (check_vma_flags on the next VMA)
    const w = touched(m, mm, 8);
    expect(doMprotect(m, mm, w + 3, 5, PROT_READ)).toBe(0);
    const more: number[] = [];
    expect(pinUserPages(m, mm, w, 8, LT, more)).toBe(3);
    unpinUserPages(m, pages, 5);
    unpinUserPages(m, more, 3);
    const s = pinStat(m);
    expect(s.acquired).toBe(s.released);
  });

  it('R9 (pre-merge v6.1): returning the requested count for a partial pin is caught', () => {
    withVariant('v6.12+R9', () => {
      const { m, mm } = machine();
      const v = touched(m, mm, 8);
      expect(doMunmap(m, mm, v + 5, 3)).toBe(0);
      const pages = new Array(8).fill(-1);
      const rc = pinUserPages(m, mm, v, 8, LT, pages);
      expect(rc).toBe(8); // the bug
      // the check that catches it: 3 entries are not pages
      expect(pages.slice(0, rc).filter((p) => p < 0)).toHaveLength(3);
    });
  });
});

// ---------------------------------------------------------------------------------------------

describe('__gup_longterm_locked(): unpinnable folios are migrated first', () => {
  it('check_and_migrate_movable_pages(): ZONE_MOVABLE pages move to ZONE_NORMAL; content, PTEs and DMA agree', () => {
    const { m, mm } = machine();
    const v = touched(m, mm, 8);
    const old = [...Array(8).keys()].map((i) => pfnOf(m, mm, v + i));
    for (const p of old) expect(m.pageZonenum(p)).toBe(ZONE_MOVABLE);
    const pages = new Array(8).fill(-1);
    const r = newPinReport();
    expect(pinUserPages(m, mm, v, 8, LT, pages, r)).toBe(8);
    expect(r).toMatchObject({ outcome: 'pinned', retries: 1, migrated: 8, collected: 8, failures: [] });
    expectLongtermPinned(m, pages, 8);
    settle(m);
    for (let i = 0; i < 8; i++) {
      expect(m.pageZonenum(pages[i]!)).toBe(ZONE_NORMAL);
      expect(pfnOf(m, mm, v + i)).toBe(pages[i]); // the process's PTE points at the pinned frame
      expect(m.content[pages[i]!]).toBe(500 + i);
      expect(getUser(m, mm, v + i)).toBe(500 + i);
      expect(m.refcount[pages[i]!]).toBe(1 + GUP_PIN_COUNTING_BIAS); // mapping + pin
      expect(m.refcount[old[i]!]).toBe(0); // the source went back to the allocator
    }
    // DMA into the pinned frame is what the process reads, and the process's stores are what the device sees
    m.content[pages[3]!] = 0xd3a;
    expect(getUser(m, mm, v + 3)).toBe(0xd3a);
    putUser(m, mm, v + 4, 77);
    expect(m.content[pages[4]!]).toBe(77);
    // every page was pinned twice (before and after migration) and unpinned once
    expect(pinStat(m)).toEqual({ acquired: 16, released: 8 });
    unpinUserPages(m, pages, 8);
    expect(pinStat(m)).toEqual({ acquired: 16, released: 16 });
    for (let i = 0; i < 8; i++) expect(m.refcount[pages[i]!]).toBe(1);
    expect(vmstatSnapshot(m).nr_isolated_anon).toBe(0);
  });

  it('check_and_migrate_movable_pages(): CMA pages (cma=) move out of CMA pageblocks', () => {
    const { m, mm } = machine(CMA_CMD);
    const v = touched(m, mm, 8);
    const inCma = [...Array(8).keys()].filter((i) => m.getPageblockMigratetype(pfnOf(m, mm, v + i)) === MIGRATE_CMA);
    expect(inCma.length).toBeGreaterThan(0);
    const pages = new Array(8).fill(-1);
    const r = newPinReport();
    expect(pinUserPages(m, mm, v, 8, LT, pages, r)).toBe(8);
    expect(r.migrated).toBe(inCma.length);
    expectLongtermPinned(m, pages, 8);
    for (let i = 0; i < 8; i++) {
      expect(pfnOf(m, mm, v + i)).toBe(pages[i]);
      expect(getUser(m, mm, v + i)).toBe(500 + i);
    }
    unpinUserPages(m, pages, 8);
    const s = pinStat(m);
    expect(s.acquired).toBe(s.released);
  });

  it('v5.12 check_and_migrate_cma_pages(): CMA pages move, ZONE_MOVABLE pages are pinned in place (the bug the series fixed)', () => {
    withVariant('v5.12', () => {
      const { m, mm } = machine();
      const v = touched(m, mm, 4);
      const pages = new Array(4).fill(-1);
      const r = newPinReport();
      expect(pinUserPages(m, mm, v, 4, LT, pages, r)).toBe(4);
      expect(r.migrated).toBe(0);
      for (const p of pages) expect(m.pageZonenum(p)).toBe(ZONE_MOVABLE);
      unpinUserPages(m, pages, 4);
    });
    withVariant('v5.12', () => {
      const { m, mm } = machine(CMA_CMD);
      const v = touched(m, mm, 8);
      const pages = new Array(8).fill(-1);
      expect(pinUserPages(m, mm, v, 8, LT, pages)).toBe(8);
      for (const p of pages) expect(m.getPageblockMigratetype(p)).not.toBe(MIGRATE_CMA);
      unpinUserPages(m, pages, 8);
    });
  });

  it('try_grab_folio(): v6.12 does not pin the zero page (counts unchanged); v5.13 takes 1024 references per pin; v6.1+ unshares it for a R/O long-term pin', () => {
    const { m, mm } = machine();
    const v = doMmap(m, mm, { nrPages: 4, prot: RW });
    const zero = m.zeroPfn();
    const ref0 = m.refcount[zero]!;
    expect(ref0).toBeGreaterThan(0); // a reserved page: init_page_count()'s reference is never dropped
    const pages = new Array(4).fill(-1);
    // short-term read pins (O_DIRECT): do_anonymous_page maps the zero page
    expect(pinUserPages(m, mm, v, 4, 0, pages)).toBe(4);
    expect(pages).toEqual([zero, zero, zero, zero]);
    expect(folioIsLongtermPinnable(m, zero)).toBe(true);
    expect(m.refcount[zero]).toBe(ref0);
    expect(pinStat(m)).toEqual({ acquired: 0, released: 0 });
    unpinUserPages(m, pages, 4);
    expect(m.refcount[zero]).toBe(ref0);
    expect(pinStat(m)).toEqual({ acquired: 0, released: 0 });
    withVariant('v5.13', () => {
      const p2 = new Array(4).fill(-1);
      expect(pinUserPages(m, mm, v, 4, FOLL_LONGTERM, p2)).toBe(4);
      expect(p2).toEqual([zero, zero, zero, zero]);
      expect(m.refcount[zero]).toBe(ref0 + 4 * GUP_PIN_COUNTING_BIAS);
      expect(pinStat(m)).toEqual({ acquired: 4, released: 0 });
      unpinUserPages(m, p2, 4);
      expect(m.refcount[zero]).toBe(ref0);
      expect(pinStat(m)).toEqual({ acquired: 4, released: 4 });
      // the last unpin must not free ZERO_PAGE into the buddy allocator
      expect(m.flags[zero]! & PG_buddy).toBe(0);
      expect(usedFrames(m)).toBeGreaterThan(0);
      expect(getUser(m, mm, v)).toBe(0);
    });
    // R18: v6.12 with the zero page pinned as any page: the counter check catches it
    withVariant('v6.12+R18', () => {
      const p3 = new Array(4).fill(-1);
      expect(pinUserPages(m, mm, v, 4, 0, p3)).toBe(4);
      expect(m.refcount[zero]).not.toBe(ref0);
      unpinUserPages(m, p3, 4);
    });
    // gup_must_unshare() (84209e87c696, v6.1): a R/O FOLL_LONGTERM pin in a COW mapping never pins the
    // zero page: it is unshared into fresh anonymous pages, still mapped read-only, that the pin holds
    const p4 = new Array(4).fill(-1);
    expect(pinUserPages(m, mm, v, 4, FOLL_LONGTERM, p4)).toBe(4);
    expect(p4.every((p) => p !== zero && (m.flags[p]! & PG_anon) !== 0)).toBe(true);
    expect(pinStat(m).acquired - pinStat(m).released).toBe(4);
    for (let k = 0; k < 4; k++) expect(followPte(m, mm, v + k)).toMatchObject({ pfn: p4[k], write: false });
    unpinUserPages(m, p4, 4);
  });

  it('THP in ZONE_MOVABLE: pinned whole with _pincount, migrated whole when an order-3 (PMD) target exists', () => {
    const { m, mm } = machine(`${CMD} transparent_hugepage=always`);
    const v = touched(m, mm, 8);
    const src = pfnOf(m, mm, v);
    expect(m.flags[src]! & PG_head).toBeTruthy();
    expect(m.pageZonenum(src)).toBe(ZONE_MOVABLE);
    const pages = new Array(3).fill(-1);
    const r = newPinReport();
    // three pages from the middle: the whole folio is collected and migrated
    expect(pinUserPages(m, mm, v + 2, 3, LT, pages, r)).toBe(3);
    expect(r.migrated).toBe(8);
    expect(r.thpSplit).toBe(0);
    expect(vmstatSnapshot(m).thp_migration_success).toBe(1);
    const head = m.compoundHead(pages[0]!);
    expect(pages).toEqual([head + 2, head + 3, head + 4]);
    expect(m.flags[head]! & PG_head).toBeTruthy();
    expect(m.pageZonenum(head)).toBe(ZONE_NORMAL);
    expect(pfnOf(m, mm, v)).toBe(head);
    expect(folioPincount(m, head)).toBe(3);
    expect(m.refcount[head]).toBe(1 + 3); // PMD mapping + one reference per pin (no bias on large folios)
    expect(folioMaybeDmaPinned(m, head)).toBe(true);
    for (let i = 0; i < 8; i++) expect(getUser(m, mm, v + i)).toBe(500 + i);
    expect(pinStat(m)).toEqual({ acquired: 6, released: 3 });
    unpinUserPages(m, pages, 3);
    expect(folioPincount(m, head)).toBe(0);
    expect(m.refcount[head]).toBe(1);
    expect(folioMaybeDmaPinned(m, head)).toBe(false);
    expect(pinStat(m)).toEqual({ acquired: 6, released: 6 });
  });

  it('THP with no free order-3 block in the kernel zone: split by migration and pinned as small folios', () => {
    const { m, mm } = machine(`${CMD} transparent_hugepage=always`);
    const v = touched(m, mm, 8);
    const held: number[] = [];
    for (
      let p = allocPages(m, GFP_KERNEL | __GFP_NORETRY, 0);
      p !== NO_PAGE;
      p = allocPages(m, GFP_KERNEL | __GFP_NORETRY, 0)
    )
      held.push(p);
    held
      .sort((a, b) => a - b)
      .forEach((p, i) => {
        if (i % 2) freePages(m, p, 0);
      });
    drainAllPages(m);
    const pages = new Array(8).fill(-1);
    const r = newPinReport();
    expect(pinUserPages(m, mm, v, 8, LT, pages, r)).toBe(8);
    expect(r.thpSplit).toBe(1);
    expectLongtermPinned(m, pages, 8);
    settle(m);
    for (let i = 0; i < 8; i++) {
      expect(m.flags[pages[i]!]! & PG_head).toBeFalsy();
      expect(m.refcount[pages[i]!]).toBe(1 + GUP_PIN_COUNTING_BIAS);
      expect(getUser(m, mm, v + i)).toBe(500 + i);
    }
    unpinUserPages(m, pages, 8);
    const s = pinStat(m);
    expect(s.acquired).toBe(s.released);
  });

  it("alloc_migration_target(): a THP target keeps GFP_TRANSHUGE's __GFP_MOVABLE; only the PF_MEMALLOC_PIN scope in __alloc_pages() strips it, so R5 (scope on the slow path only) migrates it into ZONE_MOVABLE again", () => {
    for (const spec of ['v6.12', 'v5.13', 'v6.12+R5', 'v5.13+R5']) {
      withVariant(spec, () => {
        const { m, mm } = machine(`${CMD} transparent_hugepage=always`);
        const v = touched(m, mm, 8);
        expect(m.pageZonenum(pfnOf(m, mm, v))).toBe(ZONE_MOVABLE);
        const pages = new Array(8).fill(-1);
        const r = newPinReport();
        const rc = pinUserPages(m, mm, v, 8, LT, pages, r);
        const head = pfnOf(m, mm, v);
        expect(m.flags[head]! & PG_head).toBeTruthy(); // migrated whole each time, never split
        for (let i = 0; i < 8; i++) expect(getUser(m, mm, v + i)).toBe(500 + i);
        if (spec.endsWith('+R5')) {
          // every round's order-3 target comes from ZONE_MOVABLE on the fast path: no progress
          expect(rc).toBe(-EINTR);
          expect(r.outcome).toBe('no-progress');
          expect(r.migrated).toBe(8 * GUP_LONGTERM_RETRIES_MAX);
          expect(m.pageZonenum(head)).toBe(ZONE_MOVABLE);
          const s = pinStat(m);
          expect(s.acquired).toBe(s.released);
        } else {
          expect(rc).toBe(8);
          expect(r.migrated).toBe(8);
          expect(m.pageZonenum(head)).toBe(ZONE_NORMAL);
          unpinUserPages(m, pages, 8);
        }
      });
    }
  });

  it('series-v1 check_and_migrate_movable_pages(): is_migrate_movable(pageblock) - a page in a MOVABLE pageblock of ZONE_NORMAL is not pinnable, an isolated one is (R8)', () => {
    const { m } = machine();
    let normalMovable = -1;
    for (let p = 0; p < m.flags.length && normalMovable < 0; p++)
      if (m.pageZonenum(p) === ZONE_NORMAL && m.getPageblockMigratetype(p) === MIGRATE_MOVABLE) normalMovable = p;
    expect(normalMovable).toBeGreaterThanOrEqual(0);
    withVariant('series-v1', () => expect(folioIsLongtermPinnable(m, normalMovable)).toBe(false));
    withVariant('v5.13', () => expect(folioIsLongtermPinnable(m, normalMovable)).toBe(true));
  });

  it('R15 (v6.10): the slow path refusing an unpinnable THP (-EFAULT instead of migrating) is caught', () => {
    withVariant('v6.12+R15', () => {
      const { m, mm } = machine(`${CMD} transparent_hugepage=always`);
      const v = touched(m, mm, 8);
      expect(pinUserPages(m, mm, v, 8, LT, [])).toBe(-EFAULT);
    });
  });

  it('migrate_longterm_unpinnable_folios(): a page another holder pins (short-term FOLL_PIN) fails migration: -ENOMEM, no pins left', () => {
    const { m, mm } = machine();
    const v = touched(m, mm, 8);
    const other: number[] = [];
    expect(pinUserPages(m, mm, v + 2, 1, FOLL_WRITE, other)).toBe(1); // not FOLL_LONGTERM: stays in ZONE_MOVABLE
    expect(m.pageZonenum(other[0]!)).toBe(ZONE_MOVABLE);
    settle(m);
    const base = usedFrames(m);
    const pages = new Array(8).fill(-1);
    const r = newPinReport();
    expect(pinUserPages(m, mm, v, 8, LT, pages, r)).toBe(-ENOMEM);
    expect(r.outcome).toBe('error');
    expect(r.failures).toEqual([expect.objectContaining({ pfn: other[0], rc: -EAGAIN })]);
    // the other holder's pin is the only one left
    const s = pinStat(m);
    expect(s.acquired - s.released).toBe(1);
    expect(usedFrames(m)).toBe(base);
    for (let i = 0; i < 8; i++) {
      const p = pfnOf(m, mm, v + i);
      expect(m.refcount[p]).toBe(i === 2 ? 1 + GUP_PIN_COUNTING_BIAS : 1);
      expect(m.flags[p]! & PG_isolated).toBeFalsy();
      expect(m.flags[p]! & PG_lru).toBeTruthy();
      expect(getUser(m, mm, v + i)).toBe(500 + i);
    }
    expect(vmstatSnapshot(m).nr_isolated_anon).toBe(0);
    unpinUserPages(m, other, 1);
    expect(pinStat(m).acquired).toBe(pinStat(m).released);
    // with the holder gone the same pin succeeds
    expect(pinUserPages(m, mm, v, 8, LT, pages)).toBe(8);
    expectLongtermPinned(m, pages, 8);
    unpinUserPages(m, pages, 8);
  });

  it('get_user_pages(_fast)(): FOLL_GET references, no pins; while one is held a long-term pin of the page cannot migrate it', () => {
    const { m, mm } = machine();
    const v = touched(m, mm, 8);
    settle(m);
    const before = pinStat(m);
    const refs = (n: number): number[] => Array.from({ length: n }, (_, i) => m.refcount[pfnOf(m, mm, v + i)]!);
    const start = refs(8);
    const got = new Array(4).fill(-1);
    expect(getUserPagesFast(m, mm, v, 4, FOLL_WRITE, got)).toBe(4); // all mapped: the fast walk alone
    const slow = new Array(2).fill(-1);
    expect(getUserPages(m, mm, v + 2, 2, 0, slow)).toBe(2);
    expect(refs(8)).toEqual(start.map((r, i) => r + (i < 4 ? 1 : 0) + (i === 2 || i === 3 ? 1 : 0)));
    expect(pinStat(m)).toEqual(before); // references are not pins
    expect(got.map((p) => folioMaybeDmaPinned(m, m.compoundHead(p)))).toEqual([false, false, false, false]);
    // a long-term pin over the range: page 2's extra references keep it from migrating (-EAGAIN)
    const pages = new Array(8).fill(-1);
    const r = newPinReport();
    expect(pinUserPages(m, mm, v, 8, LT, pages, r)).toBe(-ENOMEM);
    expect(r.failures.map((f) => f.rc)).toContain(-EAGAIN);
    expect(pinStat(m).acquired - pinStat(m).released).toBe(0);
    releasePages(m, got, 4);
    releasePages(m, slow, 2);
    settle(m); // pages 4-7 migrated: their new frames sat in an LRU add batch
    expect(refs(8)).toEqual(start);
    expect(pinUserPages(m, mm, v, 8, LT, pages)).toBe(8);
    expectLongtermPinned(m, pages, 8);
    unpinUserPages(m, pages, 8);
    // FOLL_LONGTERM without FOLL_PIN, flags outside the fast set: -EINVAL, nothing taken
    expect(getUserPagesFast(m, mm, v, 1, FOLL_LONGTERM, [])).toBe(-EINVAL);
    expect(getUserPagesFast(m, mm, v, 1, FOLL_DUMP, [])).toBe(-EINVAL);
    // an unmapped page: the slow path faults it in and takes a reference
    const u = doMmap(m, mm, { nrPages: 2, prot: RW });
    const one = [-1];
    expect(getUserPagesFast(m, mm, u + 1, 1, FOLL_WRITE, one)).toBe(1);
    settle(m); // the new page's LRU add batch reference
    expect(m.refcount[one[0]!]).toBe(2); // the mapping's and ours
    releasePages(m, one, 1);
    expect(m.refcount[one[0]!]).toBe(1);
  });

  it('R3 (series v1): re-pinning in place after a failed migration is caught (a long-term pin in ZONE_MOVABLE)', () => {
    withVariant('series-v1', () => {
      const { m, mm } = machine();
      const v = touched(m, mm, 4);
      const other: number[] = [];
      expect(pinUserPages(m, mm, v + 1, 1, FOLL_WRITE, other)).toBe(1);
      const pages = new Array(4).fill(-1);
      expect(pinUserPages(m, mm, v, 4, LT, pages)).toBe(4);
      expect(m.pageZonenum(pages[1]!)).toBe(ZONE_MOVABLE); // what the fixed kernel never returns
      unpinUserPages(m, pages, 4);
      unpinUserPages(m, other, 1);
    });
  });

  it('out_of_memory(): pinning more than the kernel zones can hold OOM-kills the pinner; no pins left behind', () => {
    const { m, mm } = machine();
    const v = touched(m, mm, 96);
    const held: number[] = [];
    for (
      let p = allocPages(m, GFP_KERNEL | __GFP_NORETRY, 0);
      p !== NO_PAGE;
      p = allocPages(m, GFP_KERNEL | __GFP_NORETRY, 0)
    )
      held.push(p);
    for (const p of held.splice(0, 24)) freePages(m, p, 0);
    const pages = new Array(96).fill(-1);
    const r = newPinReport();
    const rc = pinUserPages(m, mm, v, 96, LT, pages, r);
    expect(rc).toBe(-ENOMEM);
    expect(r.outcome).toBe('killed');
    expect(current().fatalSignal).toBe(true);
    expect(current().oomKills).toHaveLength(1);
    expect(current().oomKills[0]).toMatchObject({ mm, self: true });
    expect(vmstatSnapshot(m).oom_kill).toBe(1);
    expect(r.failures.some((f) => f.rc === -ENOMEM)).toBe(true);
    const s = pinStat(m);
    expect(s.acquired).toBeGreaterThan(0);
    expect(s.acquired).toBe(s.released);
    for (let i = 0; i < 96; i++) expect(folioMaybeDmaPinned(m, m.compoundHead(pfnOf(m, mm, v + i)))).toBe(false);
  });

  it('out_of_memory(): with oom_score_adj -1000 on every process there is no victim: panic', () => {
    const { m, mm } = machine(CMD, { oomScoreAdj: -1000 });
    const bystander = bprmMmInit(m, { oomScoreAdj: -1000 });
    const b = doMmap(m, bystander, { nrPages: 8, prot: RW });
    for (let i = 0; i < 8; i++) putUser(m, bystander, b + i, i);
    const v = touched(m, mm, 96);
    for (
      let p = allocPages(m, GFP_KERNEL | __GFP_NORETRY, 0);
      p !== NO_PAGE;
      p = allocPages(m, GFP_KERNEL | __GFP_NORETRY, 0)
    );
    let panic: unknown;
    try {
      pinUserPages(m, mm, v, 96, LT, new Array(96).fill(-1));
    } catch (e) {
      panic = e;
    }
    expect(panic).toBeInstanceOf(KernelPanic);
    expect((panic as Error).message).toBe('Kernel panic - not syncing: System is deadlocked on memory');
    expect(current().oomKills).toHaveLength(0);
  });
});

// ---------------------------------------------------------------------------------------------

describe('a pin larger than the kernel zones', () => {
  it('fails with -ENOMEM holding nothing, the process intact (migrate_pages() with 200k failures, no stack overflow)', () => {
    const m = boot('mem=2G movablecore=1536M'); // 512M kernel zones: 330k pages cannot all move there
    const mm = bprmMmInit(m);
    setCurrent(newTask(100, 'pinner', 0, mm));
    const n = 330_000;
    const v = doMmap(m, mm, { nrPages: n, prot: RW });
    for (let i = 0; i < n; i++) putUser(m, mm, v + i, i);
    const pages = new Array(n).fill(-1);
    const report = newPinReport();
    const before = pinStat(m);
    expect(pinUserPages(m, mm, v, n, FOLL_LONGTERM | FOLL_WRITE, pages, report)).toBe(-ENOMEM);
    expect(report.migrated).toBeGreaterThan(50_000);
    const after = pinStat(m);
    expect(after.acquired - before.acquired).toBe(after.released - before.released);
    for (const i of [0, 77_777, n - 1]) expect(getUser(m, mm, v + i)).toBe(i);
  }, 60_000);
});

describe('the -EAGAIN loop and fatal signals', () => {
  it(`R10 (v6.1): isolated-but-unlisted folios loop on -EAGAIN; pinlab stops after ${GUP_LONGTERM_RETRIES_MAX} rounds with -EINTR, nothing pinned`, () => {
    withVariant('v6.1', () => {
      const { m, mm } = machine();
      const v = touched(m, mm, 4);
      const pages = new Array(4).fill(-1);
      const r = newPinReport();
      expect(pinUserPages(m, mm, v, 4, LT, pages, r)).toBe(-EINTR);
      expect(r.outcome).toBe('no-progress');
      expect(r.retries).toBe(GUP_LONGTERM_RETRIES_MAX);
      expect(r.migrated).toBe(0);
      const s = pinStat(m);
      expect(s.acquired).toBe(s.released);
      expect(s.acquired).toBe(4 * GUP_LONGTERM_RETRIES_MAX);
      // the R10 damage: the folios stay isolated, off the LRU, for good
      expect(vmstatSnapshot(m).nr_isolated_anon).toBe(4);
    });
  });

  it('R1 + R5: targets keep __GFP_MOVABLE and the scope misses the fast path, so every round migrates into ZONE_MOVABLE again', () => {
    for (const spec of ['v5.13+R1+R5']) {
      withVariant(spec, () => {
        const { m, mm } = machine();
        const v = touched(m, mm, 4);
        const pages = new Array(4).fill(-1);
        const r = newPinReport();
        expect(pinUserPages(m, mm, v, 4, LT, pages, r)).toBe(-EINTR);
        expect(r).toMatchObject({
          outcome: 'no-progress',
          retries: GUP_LONGTERM_RETRIES_MAX,
          migrated: 4 * GUP_LONGTERM_RETRIES_MAX,
        });
        const s = pinStat(m);
        expect(s.acquired).toBe(s.released);
        for (let i = 0; i < 4; i++) {
          expect(m.pageZonenum(pfnOf(m, mm, v + i))).toBe(ZONE_MOVABLE);
          expect(getUser(m, mm, v + i)).toBe(500 + i);
        }
      });
    }
    // either fix alone ends the loop
    // either fix alone ends the loop; series-v1 as posted has both (its patch 2/6 is R1's fix, its 5/6
    // strips __GFP_MOVABLE in __alloc_pages_nodemask() before the fast path)
    for (const spec of ['v5.13+R1', 'v5.13+R5', 'v5.13', 'series-v1']) {
      withVariant(spec, () => {
        const { m, mm } = machine();
        const v = touched(m, mm, 4);
        const pages = new Array(4).fill(-1);
        expect(pinUserPages(m, mm, v, 4, LT, pages)).toBe(4);
        expectLongtermPinned(m, pages, 4);
      });
    }
  });

  it('v6.12: a folio never on the LRU (isolated elsewhere) livelocks until the budget: -EINTR, no-progress, nothing pinned', () => {
    const { m, mm } = machine();
    const v = touched(m, mm, 4);
    lruAddDrainAll(m);
    const p = pfnOf(m, mm, v + 1);
    expect(isolateFolio(m, p)).toBe(true);
    const r = newPinReport();
    expect(pinUserPages(m, mm, v, 4, LT, new Array(4).fill(-1), r)).toBe(-EINTR);
    expect(r.outcome).toBe('no-progress');
    expect(r.retries).toBe(GUP_LONGTERM_RETRIES_MAX);
    const s = pinStat(m);
    expect(s.acquired).toBe(s.released);
    withVariant('v5.13', () => {
      const r2 = newPinReport();
      expect(pinUserPages(m, mm, v, 4, LT, new Array(4).fill(-1), r2)).toBe(-EINTR);
      expect(r2.outcome).toBe('no-progress');
    });
    // R4 (series v1): isolation failure with an empty list counted as success - pinned in ZONE_MOVABLE
    withVariant('series-v1', () => {
      const pages = new Array(4).fill(-1);
      expect(pinUserPages(m, mm, v, 4, LT, pages)).toBe(4);
      expect(m.pageZonenum(pages[1]!)).toBe(ZONE_MOVABLE);
      unpinUserPages(m, pages, 4);
    });
    putbackMovablePages(m, [p]);
    const pages = new Array(4).fill(-1);
    expect(pinUserPages(m, mm, v, 4, LT, pages)).toBe(4);
    expectLongtermPinned(m, pages, 4);
    unpinUserPages(m, pages, 4);
  });

  it('__get_user_pages(): a pending fatal signal is -EINTR before anything is faulted or pinned', () => {
    const { m, mm } = machine();
    const v = doMmap(m, mm, { nrPages: 4, prot: RW });
    current().fatalSignal = true;
    const before = vmstatSnapshot(m);
    const r = newPinReport();
    expect(pinUserPages(m, mm, v, 4, LT, [], r)).toBe(-EINTR);
    expect(r.outcome).toBe('killed');
    expect(pinUserPagesFast(m, mm, v, 4, LT, [])).toBe(-EINTR);
    expect(getUserPages(m, mm, v, 4, 0, [])).toBe(-EINTR);
    expect(vmstatSnapshot(m)).toEqual(before);
  });

  it('R14 (v6.11): a failed pofs allocation returning -ENOMEM with the pages still pinned is caught by acquired != released', () => {
    withVariant('v6.12+R14', () => {
      const { m, mm } = machine();
      const v = touched(m, mm, 4);
      setFaultHook((point) => point === 'gup:pofs-alloc');
      expect(pinUserPages(m, mm, v, 4, LT, new Array(4).fill(-1))).toBe(-ENOMEM);
      const s = pinStat(m);
      expect(s.acquired - s.released).toBe(4); // the leak
    });
    // without the bug the fault point is not there: the pin succeeds and balances
    const { m, mm } = machine();
    const v = touched(m, mm, 4);
    setFaultHook((point) => point === 'gup:pofs-alloc');
    const pages = new Array(4).fill(-1);
    expect(pinUserPages(m, mm, v, 4, LT, pages)).toBe(4);
    unpinUserPages(m, pages, 4);
    expect(pinStat(m).acquired).toBe(pinStat(m).released);
  });
});

// ---------------------------------------------------------------------------------------------

describe('pin_user_pages_fast() (gup_fast_fallback)', () => {
  it('present, writable pages are pinned by the fast walk: no fault, no collect', () => {
    const { m, mm } = machine();
    const v = touched(m, mm, 8);
    const before = vmstatSnapshot(m);
    const pages = new Array(8).fill(-1);
    const r = newPinReport();
    expect(pinUserPagesFast(m, mm, v, 8, FOLL_WRITE, pages, r)).toBe(8);
    expect(r).toMatchObject({ outcome: 'pinned', collected: 0, drains: 0, migrated: 0 });
    expect(vmstatSnapshot(m).pgfault).toBe(before.pgfault);
    for (let i = 0; i < 8; i++) expect(pages[i]).toBe(pfnOf(m, mm, v + i));
    unpinUserPages(m, pages, 8);
  });

  it('FOLL_LONGTERM: pinnable pages go the fast way untouched; unpinnable ones fall back and migrate', () => {
    const { m, mm } = machine();
    const v = touched(m, mm, 8);
    // move the first half into ZONE_NORMAL with a long-term pin, then let go
    const first = new Array(4).fill(-1);
    expect(pinUserPages(m, mm, v, 4, LT, first)).toBe(4);
    unpinUserPages(m, first, 4);
    const before = vmstatSnapshot(m);
    const pages = new Array(8).fill(-1);
    const r = newPinReport();
    expect(pinUserPagesFast(m, mm, v, 8, LT, pages, r)).toBe(8);
    expect(pages.slice(0, 4)).toEqual(first); // not migrated again
    expect(r.collected).toBe(4);
    expect(r.migrated).toBe(4);
    expect(vmstatSnapshot(m).pgmigrate_success - before.pgmigrate_success).toBe(4);
    expectLongtermPinned(m, pages, 8);
    for (let i = 0; i < 8; i++) expect(pfnOf(m, mm, v + i)).toBe(pages[i]);
    // all eight pinnable now: the fast walk takes them all
    unpinUserPages(m, pages, 8);
    const r2 = newPinReport();
    expect(pinUserPagesFast(m, mm, v, 8, LT, pages, r2)).toBe(8);
    expect(r2).toMatchObject({ collected: 0, migrated: 0, retries: 0 });
    unpinUserPages(m, pages, 8);
    expect(pinStat(m).acquired).toBe(pinStat(m).released);
  });

  it('when the slow part fails after k > 0 fast pins, pin_user_pages_fast() returns k (the caller unpins)', () => {
    const { m, mm } = machine();
    const v = touched(m, mm, 8);
    const first = new Array(4).fill(-1);
    expect(pinUserPages(m, mm, v, 4, LT, first)).toBe(4);
    unpinUserPages(m, first, 4);
    const other: number[] = [];
    expect(pinUserPages(m, mm, v + 5, 1, FOLL_WRITE, other)).toBe(1); // makes the slow part's migration fail
    const pages = new Array(8).fill(-1);
    const r = newPinReport();
    expect(pinUserPagesFast(m, mm, v, 8, LT, pages, r)).toBe(4);
    expect(r.outcome).toBe('partial');
    expect(pages.slice(0, 4)).toEqual(first);
    for (let i = 0; i < 4; i++) expect(folioMaybeDmaPinned(m, pages[i]!)).toBe(true);
    let s = pinStat(m);
    expect(s.acquired - s.released).toBe(4 + 1);
    unpinUserPages(m, pages, 4);
    unpinUserPages(m, other, 1);
    s = pinStat(m);
    expect(s.acquired).toBe(s.released);
    // and a hole after k present pages: k as well (the slow part's -EFAULT is not reported)
    expect(doMunmap(m, mm, v + 4, 4)).toBe(0);
    expect(pinUserPagesFast(m, mm, v, 8, LT, pages)).toBe(4);
    unpinUserPages(m, pages, 4);
    // with nothing pinned by the fast walk the slow part's error comes through
    expect(pinUserPagesFast(m, mm, v + 4, 4, LT, [])).toBe(-EFAULT);
  });
});

// ---------------------------------------------------------------------------------------------

describe('try_grab_folio() / gup_put_folio() accounting and the unpin family', () => {
  it('get_user_pages(): FOLL_GET takes one reference per page and counts no pins', () => {
    const { m, mm } = machine();
    const v = touched(m, mm, 4);
    settle(m);
    const pages = new Array(4).fill(-1);
    expect(getUserPages(m, mm, v, 4, FOLL_WRITE, pages)).toBe(4);
    for (let i = 0; i < 4; i++) {
      expect(pages[i]).toBe(pfnOf(m, mm, v + i));
      expect(m.refcount[pages[i]!]).toBe(2);
      expect(folioMaybeDmaPinned(m, pages[i]!)).toBe(false);
      expect(m.pageZonenum(pages[i]!)).toBe(ZONE_MOVABLE);
    }
    expect(pinStat(m)).toEqual({ acquired: 0, released: 0 });
    releasePages(m, pages, 4);
    for (let i = 0; i < 4; i++) expect(m.refcount[pages[i]!]).toBe(1);
  });

  it('FOLL_PIN: +GUP_PIN_COUNTING_BIAS on a small folio, +1 and _pincount on a large one; NR_FOLL_PIN_* per page', () => {
    const { m, mm } = machine(`${CMD} transparent_hugepage=always`);
    const thp = touched(m, mm, 8);
    const small = doMmap(m, mm, { nrPages: 3, prot: RW });
    for (let i = 0; i < 3; i++) putUser(m, mm, small + i, i);
    settle(m);
    const sp: number[] = [];
    expect(pinUserPages(m, mm, small, 3, FOLL_WRITE, sp)).toBe(3);
    for (const p of sp) {
      expect(m.refcount[p]).toBe(1 + GUP_PIN_COUNTING_BIAS);
      expect(pincountAt(m, p)).toBe(0);
    }
    const head = pfnOf(m, mm, thp);
    const tp: number[] = [];
    expect(pinUserPagesFast(m, mm, thp, 8, FOLL_WRITE, tp)).toBe(8); // short-term: no migration
    expect(tp).toEqual([...Array(8).keys()].map((i) => head + i));
    expect(folioPincount(m, head)).toBe(8);
    expect(m.refcount[head]).toBe(1 + 8);
    expect(pinStat(m)).toEqual({ acquired: 11, released: 0 });
    unpinUserPage(m, tp[7]!); // a tail page unpins its folio
    expect(folioPincount(m, head)).toBe(7);
    expect(pinStat(m)).toEqual({ acquired: 11, released: 1 });
    unpinUserPages(m, tp, 7);
    unpinUserPages(m, sp, 3);
    expect(folioPincount(m, head)).toBe(0);
    expect(m.refcount[head]).toBe(1);
    for (const p of sp) expect(m.refcount[p]).toBe(1);
    expect(pinStat(m)).toEqual({ acquired: 11, released: 11 });
  });

  it('unpin_user_pages() skips NULL entries (6.13 "handle NULL pages", in 6.12.5)', () => {
    const { m, mm } = machine();
    const v = touched(m, mm, 4);
    settle(m);
    const pages: number[] = [];
    expect(pinUserPages(m, mm, v, 4, FOLL_WRITE, pages)).toBe(4);
    const keep = pages[1]!;
    pages[1] = -1;
    unpinUserPages(m, pages, 4);
    expect(m.refcount[keep]).toBe(1 + GUP_PIN_COUNTING_BIAS);
    expect(pinStat(m)).toEqual({ acquired: 4, released: 3 });
    unpinUserPages(m, [keep], 1);
    expect(m.refcount[keep]).toBe(1);
  });

  it('unpin_user_pages_dirty_lock(): make_dirty marks the folio dirty before unpinning; without it the flag is left alone', () => {
    const { m, mm } = machine();
    const v = touched(m, mm, 4);
    const pages: number[] = [];
    expect(pinUserPages(m, mm, v, 4, FOLL_WRITE, pages)).toBe(4);
    for (const p of pages) Atomics.and(m.flags, p, ~PG_dirty); // as if written back
    unpinUserPagesDirtyLock(m, pages.slice(0, 2), 2, true);
    unpinUserPagesDirtyLock(m, pages.slice(2), 2, false);
    expect(pages.map((p) => (m.flags[p]! & PG_dirty) !== 0)).toEqual([true, true, false, false]);
    expect(pinStat(m)).toEqual({ acquired: 4, released: 4 });
  });

  it('unpin_user_page_range_dirty_lock(): a contiguous range of a THP: head dirtied, _pincount drops by the range', () => {
    const { m, mm } = machine(`${CMD} transparent_hugepage=always`);
    const v = touched(m, mm, 8);
    const pages: number[] = [];
    expect(pinUserPages(m, mm, v, 8, LT, pages)).toBe(8);
    const head = m.compoundHead(pages[0]!);
    Atomics.and(m.flags, head, ~PG_dirty);
    unpinUserPageRangeDirtyLock(m, pages[2]!, 4, true);
    expect(m.flags[head]! & PG_dirty).toBeTruthy();
    expect(folioPincount(m, head)).toBe(4);
    unpinUserPageRangeDirtyLock(m, pages[0]!, 2, false);
    unpinUserPageRangeDirtyLock(m, pages[6]!, 2, false);
    expect(folioPincount(m, head)).toBe(0);
    expect(folioMaybeDmaPinned(m, head)).toBe(false);
    const s = pinStat(m);
    expect(s.acquired).toBe(s.released);
  });

  it('pins outlive the mapping: munmap and exit leave pinned frames allocated until unpin frees them', () => {
    const { m, mm } = machine();
    const base = usedFrames(m);
    const v = touched(m, mm, 4);
    const pages: number[] = [];
    expect(pinUserPages(m, mm, v, 4, LT, pages)).toBe(4);
    exitMmap(m, mm);
    settle(m);
    for (const p of pages) expect(m.refcount[p]).toBe(GUP_PIN_COUNTING_BIAS);
    m.content[pages[0]!] = 1; // DMA still lands somewhere owned
    unpinUserPages(m, pages, 4);
    expect(usedFrames(m)).toBe(base);
    for (const p of pages) expect(m.refcount[p]).toBe(0);
  });
});

describe('a long-term pin of hugetlb pages in ZONE_MOVABLE (follow_hugetlb_page(), 6.1 to 6.4)', () => {
  // Debian's 6.1 refuses it (scenarios/kernel/hugetlb-longterm-pin.yaml): the slow path grabs with the
  // GUP-fast helper, which will not long-term pin an unpinnable folio; 6.12 migrates the folios
  it.each([
    ['v6.12', 16],
    ['v6.1', -ENOMEM],
  ])('%s: %d', (variant, rc) => {
    withVariant(variant, () => {
      const m = boot('mem=1M movablecore=512K sysctl.vm.min_free_kbytes=16 hugepages=4', 'mini');
      const mm = bprmMmInit(m);
      const h = doMmap(m, mm, { nrPages: 16, prot: PROT_READ | PROT_WRITE, hugetlb: true });
      for (let i = 0; i < 16; i++) putUser(m, mm, h + i, 100 + i);
      expect(m.pageZonenum(pfnOf(m, mm, h))).toBe(ZONE_MOVABLE);
      const pages: number[] = [];
      expect(pinUserPages(m, mm, h, 16, FOLL_WRITE | FOLL_LONGTERM, pages)).toBe(rc);
      if (rc > 0) {
        expect(m.pageZonenum(pfnOf(m, mm, h))).not.toBe(ZONE_MOVABLE);
        unpinUserPagesDirtyLock(m, pages, 16, false);
      }
      expect(getUser(m, mm, h + 9)).toBe(109);
    });
  });
});
