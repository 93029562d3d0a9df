// A process as the property specs model it: its mappings and the word it last wrote at each vpn, with
// the mm calls that change it (munmap, fork, exit) and the check that every word still reads back.
import { Memmap } from '../../mm/memmap';
import { doMunmap, dupMm, exitMmap } from '../../mm/mmap';
import { getUser } from '../../mm/memory';

/** A process as the property specs model it: its mappings and the word it last wrote at each vpn. */
export interface ProcModel {
  mm: number;
  maps: { vpn: number; pages: number }[];
  content: Map<number, number>;
}

/** Every word each process wrote still reads back; throws naming the first that does not. */
export function checkContent(m: Memmap, procs: (ProcModel | null)[], where: string): void {
  for (const p of procs) {
    if (!p) continue;
    for (const [vpn, want] of p.content) {
      const got = getUser(m, p.mm, vpn);
      if (got !== want) throw new Error(`${where}: mm ${p.mm} vpn ${vpn} reads ${got}, wrote ${want}`);
    }
  }
}

/** munmap() of pages [page, page + pages) of one of p's maps (clamped to it); the model forgets them. */
export function modelMunmap(
  m: Memmap,
  p: ProcModel,
  map: { vpn: number; pages: number },
  page: number,
  pages: number,
  where: string,
): void {
  const start = map.vpn + (page % map.pages);
  const n = Math.min(pages, map.vpn + map.pages - start);
  if (doMunmap(m, p.mm, start, n) !== 0) throw new Error(`${where}: munmap failed`);
  forgetUnmapped(p, map, start, n);
}

/** fork() of p into the first free slot (none free: nothing happens); the child sees what p wrote. */
export function modelFork(m: Memmap, procs: (ProcModel | null)[], p: ProcModel): void {
  const slot = procs.findIndex((x) => x === null);
  if (slot < 0) return;
  const c = dupMm(m, p.mm);
  if (c >= 0) procs[slot] = { mm: c, maps: p.maps.map((x) => ({ ...x })), content: new Map(p.content) };
}

/** exit of the process in slot i, if any. */
export function modelExit(m: Memmap, procs: (ProcModel | null)[], i: number): void {
  const p = procs[i];
  if (p) {
    exitMmap(m, p.mm);
    procs[i] = null;
  }
}

/**
 * A process model's bookkeeping after munmap of [start, start + n) inside one of its maps: forget the pages, split the
 * map.
 */
export function forgetUnmapped(
  p: { maps: { vpn: number; pages: number }[]; content: Map<number, unknown> },
  map: { vpn: number; pages: number },
  start: number,
  n: number,
): void {
  for (let v = start; v < start + n; v++) p.content.delete(v);
  p.maps = p.maps.flatMap((mp) =>
    mp !== map
      ? [mp]
      : [
          ...(start > mp.vpn ? [{ vpn: mp.vpn, pages: start - mp.vpn }] : []),
          ...(start + n < mp.vpn + mp.pages ? [{ vpn: start + n, pages: mp.vpn + mp.pages - start - n }] : []),
        ],
  );
}
