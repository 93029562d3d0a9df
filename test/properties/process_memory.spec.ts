// Process memory under migration, offlining, fork and unmapping: what a process wrote is what it reads,
// whatever the mm core moves underneath; every frame, reference and mapping comes back at the end; an
// unpinned ZONE_MOVABLE block with room elsewhere always goes offline.
import { fc, it } from '@fast-check/jest';
import { bootFromSpec } from '../../harness/layout';
import { bprmMmInit, doMmap, exitMmap, doMadvise, PROT_READ, PROT_WRITE, MADV_DONTNEED } from '../../mm/mmap';
import { putUser } from '../../mm/memory';
import { migrateRange } from '../../mm/migrate';
import { stateStore, stateShow, blockPresent } from '../../mm/memory_hotplug';
import { lruAddDrainAll } from '../../mm/swap';
import { drainAllPages } from '../../mm/page_alloc';
import { Memmap, MB_STRIDE, MB_ZONE } from '../../mm/memmap';
import { ZONE_MOVABLE } from '../../mm/mmzone';
import { checkAllocator } from '../../properties/allocator_sound';
import { checkContent, modelMunmap, modelFork, modelExit, ProcModel } from './process_model';
import { zoneInfo, vmstatSnapshot } from '../../mm/vmstat';

type Op =
  | { op: 'mmap'; p: number; pages: number }
  | { op: 'write'; p: number; map: number; page: number; value: number }
  | { op: 'munmap'; p: number; map: number; page: number; pages: number }
  | { op: 'dontneed'; p: number; map: number }
  | { op: 'fork'; p: number }
  | { op: 'exit'; p: number }
  | { op: 'migrate'; p: number; map: number; to: 'kernel' | 'movable' }
  | { op: 'offline'; block: number }
  | { op: 'online'; block: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({ op: fc.constant('mmap' as const), p: fc.nat(1), pages: fc.integer({ min: 1, max: 24 }) }),
  },
  {
    weight: 8,
    arbitrary: fc.record({
      op: fc.constant('write' as const),
      p: fc.nat(1),
      map: fc.nat(7),
      page: fc.nat(23),
      value: fc.integer({ min: 1, max: 1 << 30 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('munmap' as const),
      p: fc.nat(1),
      map: fc.nat(7),
      page: fc.nat(23),
      pages: fc.integer({ min: 1, max: 8 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('dontneed' as const), p: fc.nat(1), map: fc.nat(7) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('fork' as const), p: fc.nat(1) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('exit' as const), p: fc.nat(1) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('migrate' as const),
      p: fc.nat(1),
      map: fc.nat(7),
      to: fc.constantFrom('kernel' as const, 'movable' as const),
    }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('offline' as const), block: fc.nat(15) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('online' as const), block: fc.nat(15) }) },
);

type Proc = ProcModel;

function usedTotal(m: Memmap): number {
  lruAddDrainAll(m);
  drainAllPages(m);
  const { census, errors } = checkAllocator(m);
  if (errors.length) throw new Error(errors.slice(0, 3).join('\n'));
  return census.used.reduce((a, b) => a + b, 0);
}

it.prop([fc.constantFrom('always', 'never'), fc.array(opArb, { minLength: 1, maxLength: 40, size: 'max' })], {
  numRuns: 100,
})('content survives migration, offline/online, fork/COW and munmap; every frame comes back', (thp, ops) => {
  const m = bootFromSpec({
    cmdline: `mem=2M movablecore=1M sysctl.vm.min_free_kbytes=16 transparent_hugepage=${thp}`,
    geometry: 'mini',
  }).m;
  const base = usedTotal(m);
  const procs: (Proc | null)[] = [null, null, null, null];
  // every case starts with one written 16-page mapping in process 0 (so the ops have something to act on)
  const p0 = { mm: bprmMmInit(m), maps: [] as { vpn: number; pages: number }[], content: new Map<number, number>() };
  const v0 = doMmap(m, p0.mm, { nrPages: 16, prot: PROT_READ | PROT_WRITE });
  p0.maps.push({ vpn: v0, pages: 16 });
  for (let i = 0; i < 16; i++) {
    putUser(m, p0.mm, v0 + i, 1 + i);
    p0.content.set(v0 + i, 1 + i);
  }
  procs[0] = p0;
  const get = (i: number): Proc => {
    let p = procs[i];
    if (!p) {
      p = { mm: bprmMmInit(m), maps: [], content: new Map() };
      procs[i] = p;
    }
    return p;
  };
  const check = (where: string) => checkContent(m, procs, where);
  ops.forEach((o, i) => {
    const where = `op ${i} ${JSON.stringify(o)}`;
    switch (o.op) {
      case 'mmap': {
        const p = get(o.p);
        const vpn = doMmap(m, p.mm, { nrPages: o.pages, prot: PROT_READ | PROT_WRITE });
        if (vpn >= 0) p.maps.push({ vpn, pages: o.pages });
        break;
      }
      case 'write': {
        const p = get(o.p);
        const map = p.maps[o.map % Math.max(1, p.maps.length)];
        if (!map) break;
        const vpn = map.vpn + (o.page % map.pages);
        const r = putUser(m, p.mm, vpn, o.value);
        if (r >= 0) p.content.set(vpn, o.value);
        break;
      }
      case 'munmap': {
        const p = get(o.p);
        const map = p.maps[o.map % Math.max(1, p.maps.length)];
        if (map) modelMunmap(m, p, map, o.page, o.pages, where);
        break;
      }
      case 'dontneed': {
        const p = get(o.p);
        const map = p.maps[o.map % Math.max(1, p.maps.length)];
        if (!map) break;
        if (doMadvise(m, p.mm, map.vpn, map.pages, MADV_DONTNEED) === 0)
          for (let v = map.vpn; v < map.vpn + map.pages; v++) p.content.delete(v);
        break;
      }
      case 'fork':
        modelFork(m, procs, get(o.p));
        break;
      case 'exit':
        modelExit(m, procs, o.p);
        break;
      case 'migrate': {
        const p = get(o.p);
        const map = p.maps[o.map % Math.max(1, p.maps.length)];
        if (map) migrateRange(m, p.mm, map.vpn, map.pages, o.to);
        break;
      }
      case 'offline': {
        const b = o.block % m.nrBlocks;
        if (!blockPresent(m, b) || stateShow(m, b) !== 'online') break;
        const movable = m.blocks[b * MB_STRIDE + MB_ZONE] === ZONE_MOVABLE;
        const used = usedInBlock(m, b);
        const rc = stateStore(m, b, 'offline', { passesMax: 30 });
        // an unpinned movable block with room elsewhere must go offline
        if (movable && rc !== 0 && roomElsewhere(m, b) > 2 * used + 16)
          throw new Error(`${where}: offline failed with ${rc} though ${used} used pages had room`);
        break;
      }
      case 'online': {
        const b = o.block % m.nrBlocks;
        if (blockPresent(m, b) && stateShow(m, b) === 'offline') stateStore(m, b, 'online_movable');
        break;
      }
    }
    check(where);
  });
  if (process.env.PINLAB_DEBUG) console.log(JSON.stringify(vmstatSnapshot(m)));
  for (let i = 0; i < procs.length; i++) if (procs[i]) exitMmap(m, procs[i]!.mm);
  const after = usedTotal(m);
  if (after !== base) throw new Error(`${after - base} frames still in use after every process exited`);
  for (let p = 0; p < m.nrFrames; p++)
    if (m.mapcount[p] !== 0) throw new Error(`pfn ${p} mapcount ${m.mapcount[p]} after exit`);
});

function usedInBlock(m: Memmap, b: number): number {
  let n = 0;
  for (let p = b * m.blockPages; p < (b + 1) * m.blockPages; p++) if (m.refcount[p]! > 0 || m.flags[p]! & (1 << 3)) n++;
  return n;
}

/** Free pages outside block b above the min watermarks, in zones a movable target may use. */
function roomElsewhere(m: Memmap, b: number): number {
  let room = 0;
  for (let z = 0; z <= ZONE_MOVABLE; z++) {
    const zi = zoneInfo(m, z);
    room += Math.max(0, zi.free - zi.min - zi.protection[ZONE_MOVABLE]!);
  }
  let inBlock = 0;
  for (let p = b * m.blockPages; p < (b + 1) * m.blockPages; p++)
    if (m.flags[p]! & (1 << 5)) inBlock += 1 << ((m.flags[p]! >>> 24) & 31);
  return room - inBlock;
}
