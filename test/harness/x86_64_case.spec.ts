// A property case on the x86_64 geometry: the machine boots with the kernel's own memory and init
// (mm/mm_init.ts kernelOwnMemory(), bootUserSpace()). The case must neither count boot's work as its own
// kernel paths nor kill init at its end, and pins-balance must hold with init's pages migrated away.
import { PoolHolder } from '../../harness/runner';
import { Case } from '../../harness/run_case';

let pool: PoolHolder;
beforeAll(() => {
  pool = new PoolHolder(3);
});
afterAll(async () => {
  await pool.destroy();
});

const layout = { cmdline: 'mem=512M movablecore=256M', geometry: 'x86_64', maps: [{ name: 'buf', pages: 8 }] };
const empty: Case = { layout, variant: 'v6.12', schedule: [], faults: {}, programs: { 'user-0': [], 'pinner-0': [] } };

it('a case that does nothing reports no kernel path and no failure: boot allocated thousands of pages, init outlives the case', async () => {
  const r = await pool.run(empty, { mode: 'det' });
  expect(r.failures).toEqual([]);
  expect(r.events).toEqual({});
});

it('a case whose offline migrates init out of its block passes pins-balance and counts only its own migrations', async () => {
  // offline every ZONE_MOVABLE block the agent knows: init's pages sit in the free fragments beside memblock's
  // reservations and in the lowest movable block, which goes offline by migrating them
  const offlines = Array.from({ length: 2 }, (_, k) => ({ op: 'offline', block: k }));
  const r = await pool.run({ ...empty, programs: { ...empty.programs, 'hotplug-0': offlines } }, { mode: 'det' });
  expect(r.failures).toEqual([]);
  expect(r.actors[2]!.ops.some((o) => o.rc === 0)).toBe(true);
  expect(r.events['migrate_reason_memory_hotplug']).toBeGreaterThan(0); // init's pages moved: the user touched none
  expect(r.events['pgfault']).toBeUndefined(); // boot's faults (init populating its memory) are not the case's
});
