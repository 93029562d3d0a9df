// File-backed mappings (mm/filemap.ts, mm/mmap.ts fileInodeCreate, the file fault paths of mm/memory.ts)
// and what GUP makes of them (mm/gup.c): writable_file_mapping_allowed() in the slow path and
// gup_fast_folio_allowed() in the fast one (v6.5+), R/O long-term unsharing of a private file mapping's
// page-cache folio, and the long-term migration of page-cache folios out of ZONE_MOVABLE.
import { boot } from '../../helpers';
import {
  bprmMmInit,
  doMmap,
  doMunmap,
  doMprotect,
  exitMmap,
  fileInodeCreate,
  fileInodePut,
  PROT_READ,
  PROT_WRITE,
} from '../../../mm/mmap';
import { getUser, putUser, followPte, findVma, pfnOf } from '../../../mm/memory';
import {
  pinUserPages,
  pinUserPagesFast,
  unpinUserPages,
  newPinReport,
  FOLL_WRITE,
  FOLL_LONGTERM,
} from '../../../mm/gup';
import { Memmap, PG_anon, PG_dirty, PG_swapbacked, PG_lru, MM_RSS_ANON, MM_RSS_FILE } from '../../../mm/memmap';
import { ZONE_MOVABLE } from '../../../mm/mmzone';
import { EFAULT } from '../../../mm/errno';
import { lruAddDrainAll } from '../../../mm/swap';
import { setCurrent, newTask, current } from '../../../mm/sched';
import { setVariant, parseVariant } from '../../../mm/variants';
import { AS_SHMEM, AS_WRITEBACK, vmaNeedsDirtyTracking, vmaIsFileNotShmem } from '../../../mm/filemap';
import { mmBase } from '../../../mm/mm_types';

const CMD = 'mem=1M movablecore=512K sysctl.vm.min_free_kbytes=16';
const RW = PROT_READ | PROT_WRITE;
const LT = FOLL_WRITE | FOLL_LONGTERM;

let m: Memmap;
let mm: number;
const saved = current();
afterEach(() => {
  setCurrent(saved);
  setVariant(parseVariant('v6.12'));
});
function setup(variant = 'v6.12'): void {
  setVariant(parseVariant(variant));
  m = boot(CMD, 'mini');
  mm = bprmMmInit(m);
  setCurrent(newTask(100, 'pinner', 0, mm));
}
function mapFile(kind: number, shared: boolean, nr = 4): number {
  const inode = fileInodeCreate(m, nr, kind);
  expect(inode).toBeGreaterThanOrEqual(0);
  const vpn = doMmap(m, mm, { nrPages: nr, prot: RW, shared, inode });
  fileInodePut(m, inode); // close(fd): the VMA keeps the file
  expect(vpn).toBeGreaterThan(0);
  return vpn;
}
function touchAll(vpn: number, nr: number, base = 10): void {
  for (let i = 0; i < nr; i++) expect(putUser(m, mm, vpn + i, base + i)).toBeGreaterThanOrEqual(0);
}
const rss = (member: number): number => m.mms[mmBase(mm) + member]!;

describe('file mappings', () => {
  it('a shared mapping of a writeback file maps read-only until the first write, which dirties the folio', () => {
    setup();
    const vpn = mapFile(AS_WRITEBACK, true);
    expect(vmaNeedsDirtyTracking(m, findVma(m, mm, vpn))).toBe(true);
    expect(getUser(m, mm, vpn)).toBe(0);
    const pfn = pfnOf(m, mm, vpn);
    expect(followPte(m, mm, vpn)!.write).toBe(false);
    expect(m.flags[pfn]! & (PG_anon | PG_swapbacked | PG_dirty)).toBe(0); // a file LRU folio, clean
    expect(putUser(m, mm, vpn, 7)).toBeGreaterThanOrEqual(0);
    expect(pfnOf(m, mm, vpn)).toBe(pfn); // written in place, not copied
    expect(followPte(m, mm, vpn)!.write).toBe(true);
    expect(m.flags[pfn]! & PG_dirty).toBe(PG_dirty);
    expect(rss(MM_RSS_FILE)).toBe(1);
  });

  it('a shmem (memfd, tmpfs) mapping needs no dirty tracking; its folios are swap-backed', () => {
    setup();
    const vpn = mapFile(AS_SHMEM, true);
    expect(vmaNeedsDirtyTracking(m, findVma(m, mm, vpn))).toBe(false);
    expect(vmaIsFileNotShmem(m, findVma(m, mm, vpn))).toBe(false);
    touchAll(vpn, 1);
    expect(m.flags[pfnOf(m, mm, vpn)]! & PG_swapbacked).toBe(PG_swapbacked);
  });

  it('MAP_PRIVATE of a file: reads map the page cache, a write copies it into an anonymous page (COW)', () => {
    setup();
    const inode = fileInodeCreate(m, 2, AS_WRITEBACK);
    const shared = doMmap(m, mm, { nrPages: 2, prot: RW, shared: true, inode });
    const priv = doMmap(m, mm, { nrPages: 2, prot: RW, inode });
    fileInodePut(m, inode);
    expect(putUser(m, mm, shared, 5)).toBeGreaterThanOrEqual(0);
    expect(getUser(m, mm, priv)).toBe(5); // the same page-cache folio
    const cache = pfnOf(m, mm, shared);
    expect(pfnOf(m, mm, priv)).toBe(cache);
    expect(putUser(m, mm, priv, 6)).toBeGreaterThanOrEqual(0);
    expect(pfnOf(m, mm, priv)).not.toBe(cache);
    expect(m.flags[pfnOf(m, mm, priv)]! & PG_anon).toBe(PG_anon);
    expect(getUser(m, mm, shared)).toBe(5); // the file is unchanged
    expect(putUser(m, mm, priv + 1, 9)).toBeGreaterThanOrEqual(0); // a write fault with nothing mapped: do_cow_fault()
    expect(getUser(m, mm, shared + 1)).toBe(0);
    expect(rss(MM_RSS_ANON)).toBe(2);
    expect(rss(MM_RSS_FILE)).toBe(2);
    exitMmap(m, mm);
  });

  it('munmap drops the mapping; the inode and its page cache go with the last reference', () => {
    setup();
    const vpn = mapFile(AS_WRITEBACK, true);
    touchAll(vpn, 4);
    const pfn = pfnOf(m, mm, vpn);
    lruAddDrainAll(m);
    expect(m.flags[pfn]! & PG_lru).toBe(PG_lru); // on the LRU (the file LRU: not swap-backed)
    expect(doMunmap(m, mm, vpn, 4)).toBe(0);
    expect(m.refcount[pfn]).toBe(0);
    expect(rss(MM_RSS_FILE)).toBe(0);
  });
});

describe('GUP on file mappings (mm/gup.c)', () => {
  it.each([
    ['GUP', false],
    ['GUP-fast', true],
  ])('%s: R/W long-term pin of a shared writeback-file mapping is -EFAULT on v6.12, pinned on v6.1', (_, fast) => {
    // v6.1 without R10 (6.1.13+): R10's leaked isolation livelocks every migrating pin
    for (const [variant, want] of [
      ['v6.12', -EFAULT],
      ['v6.1+-R10', 4],
    ] as const) {
      setup(variant);
      const vpn = mapFile(AS_WRITEBACK, true);
      touchAll(vpn, 4);
      const pages: number[] = [];
      const rc = (fast ? pinUserPagesFast : pinUserPages)(m, mm, vpn, 4, LT, pages, newPinReport());
      expect(rc).toBe(want);
      if (rc > 0) {
        for (const p of pages) expect(m.pageZonenum(p)).not.toBe(ZONE_MOVABLE); // page cache is migrated too
        unpinUserPages(m, pages, rc);
      }
    }
  });

  it('R/O long-term pins, private mappings and shmem all pin; page-cache folios leave ZONE_MOVABLE', () => {
    setup();
    for (const [kind, shared, flags] of [
      [AS_WRITEBACK, true, FOLL_LONGTERM],
      [AS_WRITEBACK, false, LT],
      [AS_SHMEM, true, LT],
    ] as const) {
      const vpn = mapFile(kind, shared);
      touchAll(vpn, 4);
      const pages: number[] = [];
      expect(pinUserPagesFast(m, mm, vpn, 4, flags, pages, newPinReport())).toBe(4);
      for (const p of pages) expect(m.pageZonenum(p)).not.toBe(ZONE_MOVABLE);
      unpinUserPages(m, pages, 4);
    }
  });

  it('a R/O long-term pin of a private file mapping unshares the page-cache folio (gup_must_unshare)', () => {
    setup();
    const vpn = mapFile(AS_WRITEBACK, false, 1);
    expect(getUser(m, mm, vpn)).toBe(0);
    const cache = pfnOf(m, mm, vpn);
    expect(doMprotect(m, mm, vpn, 1, PROT_READ)).toBe(0);
    const pages: number[] = [];
    expect(pinUserPagesFast(m, mm, vpn, 1, FOLL_LONGTERM, pages, newPinReport())).toBe(1);
    expect(pages[0]).not.toBe(cache);
    expect(m.flags[m.compoundHead(pages[0]!)]! & PG_anon).toBe(PG_anon);
    expect(pfnOf(m, mm, vpn)).toBe(pages[0]);
    unpinUserPages(m, pages, 1);
  });

  it('a short-term (not FOLL_LONGTERM) write pin of a shared writeback-file mapping is allowed', () => {
    setup();
    const vpn = mapFile(AS_WRITEBACK, true);
    touchAll(vpn, 4);
    const pages: number[] = [];
    expect(pinUserPagesFast(m, mm, vpn, 4, FOLL_WRITE, pages, newPinReport())).toBe(4);
    unpinUserPages(m, pages, 4);
  });
});
