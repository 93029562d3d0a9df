// movable-blocks-offlinable on a copy of the machine: a ZONE_MOVABLE block of ordinary anonymous memory
// offlines; one holding a long-term pin (v5.12 pins in place) does not, and the check says why.
import { bootFromSpec } from '../harness/layout';
import { bprmMmInit, doMmap, populateRange, PROT_READ, PROT_WRITE } from '../mm/mmap';
import { pinUserPages, unpinUserPages, FOLL_LONGTERM, FOLL_WRITE } from '../mm/gup';
import { parseVariant, setVariant } from '../mm/variants';
import { setCurrent, newTask, current } from '../mm/sched';
import { movableBlocksOfflinable, formatOfflinable, blockUsedPages } from '../properties/movable_offlinable';
import { stateShow } from '../mm/memory_hotplug';

const CMD = 'mem=1M movablecore=512K sysctl.vm.min_free_kbytes=16';

function machineWithPin(kernel: string) {
  const prevV = setVariant(parseVariant(kernel));
  const prevT = setCurrent(newTask(1, 't', 0));
  try {
    const { m } = bootFromSpec({ cmdline: CMD, geometry: 'mini' });
    const mm = bprmMmInit(m);
    current().mm = mm;
    const v = doMmap(m, mm, { nrPages: 16, prot: PROT_READ | PROT_WRITE });
    expect(populateRange(m, mm, v, v + 16, true)).toBe(0);
    const pages = new Array(4).fill(-1);
    expect(pinUserPages(m, mm, v, 4, FOLL_LONGTERM | FOLL_WRITE, pages)).toBe(4);
    return { m, pages };
  } finally {
    setVariant(prevV);
    setCurrent(prevT);
  }
}

describe('movable-blocks-offlinable', () => {
  it('holds on v6.12: the pinned pages left ZONE_MOVABLE, every block offlines on the copy', () => {
    const { m } = machineWithPin('v6.12');
    expect(movableBlocksOfflinable(m)).toEqual([]);
    for (let b = 4; b < 8; b++) expect(stateShow(m, b)).toBe('online'); // the real machine is untouched
  });

  it('fails on v5.12: the block holding the long-term pins cannot go offline', () => {
    const { m, pages } = machineWithPin('v5.12');
    const f = movableBlocksOfflinable(m);
    expect(f.length).toBe(1);
    expect(blockUsedPages(m, f[0]!.block)).toBeGreaterThan(0);
    expect(formatOfflinable(f[0]!)).toMatch(
      /^memory[4-7] \(ZONE_MOVABLE, \d+ pages used, room for \d+ elsewhere\) failed to go offline: -EINTR/,
    );
    unpinUserPages(m, pages, 4);
    expect(movableBlocksOfflinable(m)).toEqual([]); // released: it can go now
  });
});
