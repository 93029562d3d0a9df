// R14c (R14's part c): migrate_longterm_unpinnable_folios()' error path hands its entries, cleared to NULL,
// to pofs_unpin(). Fixed ("mm/gup: handle NULL pages in unpin_user_pages()", 6.12.5) unpin_user_pages()
// skips them: -ENOMEM with every pin dropped. With R14c (6.12.0-6.12.4) it takes page_folio(NULL): an oops;
// R14 alone (the 6.11 leak of part a) does not.
import { boot } from '../../helpers';
import { bprmMmInit, doMmap, PROT_READ, PROT_WRITE } from '../../../mm/mmap';
import { putUser } from '../../../mm/memory';
import { pinUserPages, unpinUserPages, FOLL_WRITE, FOLL_LONGTERM } from '../../../mm/gup';
import { ENOMEM } from '../../../mm/errno';
import { KernelOops, KernelBug } from '../../../mm/debug';
import { vmstatSnapshot } from '../../../mm/vmstat';
import { setCurrent, newTask, current } from '../../../mm/sched';
import { setVariant, parseVariant, variant } from '../../../mm/variants';

function run(spec: string): { rc: number | Error; acquired: number; released: number } {
  const prevV = setVariant(parseVariant(spec));
  const prevT = current();
  try {
    const m = boot('mem=1M numa=fake=2 movablecore=512K sysctl.vm.min_free_kbytes=16', 'mini');
    const mm = bprmMmInit(m, {});
    setCurrent(newTask(100, 'pinner', 0, mm));
    const v = doMmap(m, mm, { nrPages: 4, prot: PROT_READ | PROT_WRITE });
    for (let i = 0; i < 4; i++) putUser(m, mm, v + i, 7 + i);
    // a short-term pin of the first page: migrate_pages() cannot move it
    expect(pinUserPages(m, mm, v, 1, FOLL_WRITE, [])).toBe(1);
    let rc: number | Error;
    try {
      rc = pinUserPages(m, mm, v, 4, FOLL_WRITE | FOLL_LONGTERM, []);
    } catch (e) {
      rc = e as Error;
    }
    const s = vmstatSnapshot(m);
    return { rc, acquired: s.nr_foll_pin_acquired, released: s.nr_foll_pin_released };
  } finally {
    setVariant(prevV);
    setCurrent(prevT);
  }
}

describe('pofs_unpin() on the migration-failure path (R14c)', () => {
  it('fixed: -ENOMEM, and the cleared entries are skipped (acquired = released + the short-term pin)', () => {
    expect(run('v6.12')).toEqual({ rc: -ENOMEM, acquired: 5, released: 4 });
  });
  it('R14 alone (part a, the 6.11 leak) has the fixed error path', () => {
    expect(run('v6.12+R14')).toEqual({ rc: -ENOMEM, acquired: 5, released: 4 });
  });
  it('R14c: the NULL entries reach unpin_user_pages(): an oops (a KernelBug to the campaign)', () => {
    const r = run('v6.12+R14c');
    expect(r.rc).toBeInstanceOf(KernelOops);
    expect(r.rc).toBeInstanceOf(KernelBug);
    expect((r.rc as Error).message).toMatch(/^Oops: BUG: kernel NULL pointer dereference/);
  });
  it('unpin_user_pages() itself skips NULL entries (6.13)', () => {
    expect(variant().bugs.has('R14c')).toBe(false);
    const m = boot('mem=512K', 'mini');
    expect(() => unpinUserPages(m, [-1, -1], 2)).not.toThrow();
  });
});
