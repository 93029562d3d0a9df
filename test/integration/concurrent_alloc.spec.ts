// The allocator under real threads: hammers on distinct CPUs allocate and free concurrently on one
// SharedArrayBuffer machine; no frame may be handed out twice and the free counts must add up.
import { ActorPool } from '../../harness/pool';
import { boot } from '../helpers';
import { drainAllPages } from '../../mm/page_alloc';
import { GFP_KERNEL, GFP_HIGHUSER_MOVABLE, GFP_USER } from '../../mm/gfp';
import { Memmap } from '../../mm/memmap';
import { checkAllocator } from '../../properties/allocator_sound';
import { loadPlugin } from '../../harness/plugins';
import { SELFTEST_PLUGIN, AllocHammerTask, AllocHammerResult } from '../plugins/selftest';

let pool: ActorPool;
beforeAll(() => {
  loadPlugin(SELFTEST_PLUGIN); // the alloc-hammer worker task
  pool = new ActorPool(3);
});
afterAll(async () => {
  await pool.destroy();
});

async function hammer(m: Memmap, n: number, ops: number, seed: number, holdMax = 64): Promise<AllocHammerResult[]> {
  const owner = new SharedArrayBuffer(m.nrFrames * 4);
  return Promise.all(
    [...Array(n).keys()].map((i) => {
      const t: AllocHammerTask = {
        machine: { sab: m.sab, shape: m.shape },
        owner,
        cpu: i + 1,
        id: i + 1,
        ops,
        seed: seed + i,
        gfps: [GFP_KERNEL, GFP_USER, GFP_HIGHUSER_MOVABLE],
        maxOrder: 4,
        holdMax,
      };
      return pool.runTask('alloc-hammer', t) as Promise<AllocHammerResult>;
    }),
  );
}

it('three threads hammering one zone never get the same frame, and every frame comes back', async () => {
  // small machine: the zones run dry often, so refills, fallback stealing and merges all race
  const m = boot('mem=2M movablecore=1M sysctl.vm.min_free_kbytes=16', 'mini');
  const before = checkAllocator(m).census;
  const results = await hammer(m, 3, 60_000, 42, 400); // each thread alone can empty the machine
  for (const r of results) {
    expect(r.doubles).toEqual([]);
    expect(r.allocs).toBeGreaterThan(1000);
    expect(r.allocs).toBe(r.frees);
  }
  expect(results.some((r) => r.failures > 0)).toBe(true); // memory did run out
  drainAllPages(m);
  const { census, errors } = checkAllocator(m);
  expect(errors).toEqual([]);
  expect(census.used).toEqual(before.used);
});

it('on an x86-64 machine with CMA, under contention for the zone lock', async () => {
  const m = boot('mem=128M movablecore=32M cma=16M');
  const before = checkAllocator(m).census;
  const results = await hammer(m, 3, 100_000, 7);
  for (const r of results) expect(r.doubles).toEqual([]);
  drainAllPages(m);
  const { census, errors } = checkAllocator(m);
  expect(errors).toEqual([]);
  expect(census.used).toEqual(before.used);
});
