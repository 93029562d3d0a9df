// A process the OOM killer takes while one of its actors is in the kernel exits when that op returns
// (do_exit() on the way back to user space): its memory goes then, not at the end of the run, and the
// other actors of the process see -ESRCH from then on. Nothing panics while the victim is dying.
import { PoolHolder } from '../../harness/runner';
import { Case } from '../../harness/run_case';

let pool: PoolHolder;
beforeAll(() => {
  pool = new PoolHolder(3);
});
afterAll(async () => {
  await pool.destroy();
});

it('a long-term pin that needs more kernel memory than there is OOM-kills the pinning process, which exits after the op', async () => {
  const touch = Array.from({ length: 96 }, (_, k) => ({ op: 'write', map: 'buf', page: k, value: k }));
  const cs: Case = {
    layout: {
      cmdline: 'mem=1M movablecore=768K sysctl.vm.min_free_kbytes=16',
      geometry: 'mini',
      maps: [{ name: 'buf', pages: 96 }],
    },
    variant: 'v6.12',
    schedule: [],
    faults: {},
    programs: {
      'user-0': [...touch, { op: 'touch', map: 'buf', page: 0, write: false }],
      'pinner-0': [{ op: 'pin', map: 'buf', page: 0, pages: 96 }],
    },
  };
  // no preemption: user-0 writes every page (all in ZONE_MOVABLE), then the pin migrates them into a kernel zone too
  // small for them
  const r = await pool.run({ ...cs, schedule: [0] }, { mode: 'det' });
  expect(r.failures.map((f) => f.property)).toEqual([]);
  const pin = r.actors[1]!.ops[0]!;
  expect(pin.rc).toBeLessThan(0);
  expect(pin.detail).toMatch(/OOM-killed: the process exited/);
  expect(r.lines.some((l) => /pinlab_ret: pin .*OOM-killed: the process exited/.test(l.text))).toBe(true);
  // the user's read after the kill: the process is gone
  const sched = [0, ...Array(110).fill(0)];
  const order = await pool.run({ ...cs, schedule: [1, ...sched] }, { mode: 'det' }); // the pinner first, then the user
  expect(order.failures.map((f) => f.property)).toEqual([]);
  expect(order.actors[0]!.ops.every((o) => o.rc === -3)).toBe(true); // -ESRCH for every op of the dead process
});
