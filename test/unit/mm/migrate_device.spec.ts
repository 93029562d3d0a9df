// Device-coherent memory (R17): memremap_pages() at boot, migrate_vma_*() into it, and GUP's
// long-term pins, which must move such a page back to RAM first (mm/memremap.ts, mm/migrate_device.ts).
import { boot, withVariant } from '../../helpers';
import { bprmMmInit, doMmap, exitMmap, PROT_READ, PROT_WRITE } from '../../../mm/mmap';
import { pfnOf, putUser, getUser } from '../../../mm/memory';
import { deviceRange, folioIsDeviceCoherent, allocDeviceCoherentPage } from '../../../mm/memremap';
import { migrateVmaToDevice } from '../../../mm/migrate_device';
import {
  pinUserPages,
  pinUserPagesFast,
  unpinUserPages,
  newPinReport,
  FOLL_LONGTERM,
  FOLL_WRITE,
} from '../../../mm/gup';
import { PG_reserved, PG_lru } from '../../../mm/memmap';
import { ZONE_DEVICE, ZONE_NORMAL } from '../../../mm/mmzone';
import { EBUSY } from '../../../mm/errno';

const CMD = 'mem=1M movablecore=512K sysctl.vm.min_free_kbytes=16 pinlab.device_coherent=100K';
const RW = PROT_READ | PROT_WRITE;

function proc(cmd = CMD) {
  const m = boot(cmd, 'mini');
  const mm = bprmMmInit(m, {});
  const buf = doMmap(m, mm, { nrPages: 8, prot: RW });
  for (let k = 0; k < 4; k++) expect(putUser(m, mm, buf + k, 40 + k)).toBe(40 + k);
  return { m, mm, buf };
}

describe('memremap_pages() of MEMORY_DEVICE_COHERENT memory (pinlab.device_coherent=)', () => {
  it('adds a ZONE_DEVICE range after RAM, a memory block rounded up, every page reserved and free (refcount 0)', () => {
    const m = boot(CMD, 'mini');
    const { start, pages } = deviceRange(m);
    expect([start, pages]).toEqual([256, 32]); // 1M of RAM, then 100K rounded up to a 128K block
    expect(m.nrFrames).toBe(288);
    for (let pfn = start; pfn < start + pages; pfn++) {
      expect(m.pageZonenum(pfn)).toBe(ZONE_DEVICE);
      expect(m.flags[pfn]! & PG_reserved).toBe(PG_reserved);
      expect(m.refcount[pfn]).toBe(0);
    }
    expect(deviceRange(boot('mem=1M', 'mini')).pages).toBe(0);
  });

  it('the driver allocator hands out free pages until the device is full', () => {
    const m = boot(CMD, 'mini');
    const got = Array.from({ length: 33 }, () => allocDeviceCoherentPage(m));
    expect(got.slice(0, 32)).toEqual(Array.from({ length: 32 }, (_, k) => 256 + k));
    expect(got[32]).toBe(-1);
  });

  it('a page in use at refcount 0 (frozen by a migration) is not free: only a page given back is', () => {
    const m = boot(CMD, 'mini');
    expect(allocDeviceCoherentPage(m)).toBe(256);
    m.refcount[256] = 0; // folio_ref_freeze() during migrate_folio_move()
    expect(allocDeviceCoherentPage(m)).toBe(257);
  });
});

describe('migrate_vma_*() to the device and back', () => {
  it('moves small anonymous pages into device memory, off the LRU, contents kept; exit frees them to the driver', () => {
    const { m, mm, buf } = proc();
    expect(migrateVmaToDevice(m, mm, buf, 8)).toEqual({ migrated: 8, failed: 0 }); // 4 written, 4 holes
    expect(folioIsDeviceCoherent(m, pfnOf(m, mm, buf + 6))).toBe(true); // a hole becomes a zeroed device page
    expect(getUser(m, mm, buf + 6)).toBe(0);
    for (let k = 0; k < 4; k++) {
      const pfn = pfnOf(m, mm, buf + k);
      expect(folioIsDeviceCoherent(m, pfn)).toBe(true);
      expect(m.flags[pfn]! & (PG_lru | PG_reserved)).toBe(0);
      expect(getUser(m, mm, buf + k)).toBe(40 + k);
    }
    const dev = pfnOf(m, mm, buf);
    exitMmap(m, mm);
    expect(m.refcount[dev]).toBe(0); // free_zone_device_folio(): back to the driver, reserved again
    expect(m.flags[dev]! & PG_reserved).toBe(PG_reserved);
    expect(allocDeviceCoherentPage(m)).toBe(256);
  });

  it('a long-term pin migrates a device-coherent page to RAM first, fast or slow path (folio_is_longterm_pinnable())', () => {
    for (const fast of [true, false]) {
      const { m, mm, buf } = proc();
      migrateVmaToDevice(m, mm, buf, 4);
      const pages = new Array<number>(4).fill(-1);
      const report = newPinReport();
      const pin = fast ? pinUserPagesFast : pinUserPages;
      expect(pin(m, mm, buf, 4, FOLL_LONGTERM | FOLL_WRITE, pages, report)).toBe(4);
      expect(report.migrated).toBe(4);
      for (let k = 0; k < 4; k++) {
        expect(m.pageZonenum(pages[k]!)).toBe(ZONE_NORMAL);
        expect(pfnOf(m, mm, buf + k)).toBe(pages[k]);
        expect(getUser(m, mm, buf + k)).toBe(40 + k);
      }
      expect(m.refcount.subarray(256, 288).every((r) => r === 0)).toBe(true); // every device page freed
      unpinUserPages(m, pages, 4);
    }
  });

  it('R17: GUP-fast pins a device-coherent page in place; the slow path still migrates it', () => {
    withVariant('v6.12+R17', () => {
      const { m, mm, buf } = proc();
      migrateVmaToDevice(m, mm, buf, 4);
      const pages = new Array<number>(4).fill(-1);
      expect(pinUserPagesFast(m, mm, buf, 4, FOLL_LONGTERM | FOLL_WRITE, pages)).toBe(4);
      for (const p of pages) expect(m.pageZonenum(p)).toBe(ZONE_DEVICE);
      unpinUserPages(m, pages, 4);
      const slow = new Array<number>(4).fill(-1);
      expect(pinUserPages(m, mm, buf, 4, FOLL_LONGTERM | FOLL_WRITE, slow)).toBe(4);
      for (const p of slow) expect(m.pageZonenum(p)).toBe(ZONE_NORMAL);
      unpinUserPages(m, slow, 4);
    });
  });

  it('a device page another holder pins cannot move: the long-term pin fails with -EBUSY, pins dropped', () => {
    const { m, mm, buf } = proc();
    migrateVmaToDevice(m, mm, buf, 4);
    const held = [-1];
    expect(pinUserPages(m, mm, buf + 1, 1, FOLL_WRITE, held)).toBe(1); // a short-term pin (O_DIRECT)
    const pages = new Array<number>(4).fill(-1);
    expect(pinUserPages(m, mm, buf, 4, FOLL_LONGTERM | FOLL_WRITE, pages)).toBe(-EBUSY);
    expect(m.refcount[held[0]!]).toBe(1 + 1024); // the mapping and the short-term pin only
    unpinUserPages(m, held, 1);
  });

  it('a pinned page is not moved to the device (migrate_vma_check_page(): extra references)', () => {
    const { m, mm, buf } = proc();
    const pages = [-1];
    expect(pinUserPages(m, mm, buf, 1, FOLL_WRITE, pages)).toBe(1);
    expect(migrateVmaToDevice(m, mm, buf, 4)).toEqual({ migrated: 3, failed: 1 });
    expect(folioIsDeviceCoherent(m, pfnOf(m, mm, buf))).toBe(false);
    unpinUserPages(m, pages, 1);
  });
});
