// lru-isolation-balanced's counter check: with nothing in flight, nr_isolated_anon and nr_isolated_file
// are 0. A migration that drops a folio from its list without accounting it back (migrate_folio_done())
// leaves the count up, and too_many_isolated() would throttle reclaim on it for ever.
import { lruIsolationBalanced } from '../../properties/lru_isolation_balanced';
import { countVmEvents, vmItem } from '../../mm/vmstat';
import type { EndCheck } from '../../properties/property';
import { boot } from '../helpers';

const check = (m: EndCheck['m']): string[] => {
  const c = { m, checked: 0 } as unknown as EndCheck;
  return lruIsolationBalanced.atTeardown(c);
};

it('a leaked nr_isolated_anon or nr_isolated_file count fails it; counts back at 0 pass', () => {
  const m = boot('mem=512K movablecore=50%', 'mini');
  expect(check(m)).toEqual([]);
  for (const k of ['nr_isolated_anon', 'nr_isolated_file'] as const) {
    countVmEvents(m, vmItem(k), 2);
    expect(check(m)).toEqual([`${k} is 2 with nothing in flight: an isolation not accounted back`]);
    countVmEvents(m, vmItem(k), -2);
    expect(check(m)).toEqual([]);
  }
});
