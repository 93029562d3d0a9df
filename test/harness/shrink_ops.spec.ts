// harness/shrink_ops.ts: ops dropped one at a time along the failing run's interleaving. The case is
// R17's: GUP-fast long-term pins a page a migrate_to_device() moved into device-coherent memory, which
// only fails when the migration runs before the pin. A padding pin runs first; removing it with the
// schedule unchanged shifts the decisions and the failure is gone, so fast-check alone cannot drop it.
import { PoolHolder } from '../../harness/runner';
import { CaseError, type Case, type CaseResult, type RunOptions } from '../../harness/run_case';
import { dropOps, pointsByOp } from '../../harness/shrink_ops';
import type { ActorOp } from '../../harness/types';

let pool: PoolHolder;
beforeAll(() => {
  pool = new PoolHolder(3);
});
afterAll(async () => {
  await pool.destroy();
});

const layout = {
  geometry: 'mini',
  cmdline: 'mem=1M movablecore=512K sysctl.vm.min_free_kbytes=16 pinlab.device_coherent=128K',
  maps: [{ name: 'buf', pages: 24 }],
};
const det: RunOptions = { mode: 'det', seed: 1 };
const pad: ActorOp = { op: 'pin', map: 'buf', page: 9, pages: 1, fast: true };
const pin: ActorOp = { op: 'pin', map: 'buf', page: 0, pages: 1, fast: true };
const migrate: ActorOp = { op: 'migrate_to_device', map: 'buf', page: 0, pages: 1 };
const mk = (pinner: ActorOp[], user: ActorOp[], schedule: number[]): Case => ({
  layout,
  variant: 'v6.12+R17',
  programs: { 'pinner-0': pinner, 'user-0': user },
  schedule,
  faults: {},
});
const fails = (r: CaseResult): boolean => r.failures.some((f) => f.property === 'no-longterm-pin-in-movable');
const run = (c: Case, o: RunOptions): Promise<CaseResult> => pool.run(c, o);

describe('dropOps()', () => {
  it('names the op each preemption point was reached in', async () => {
    const r = await run(mk([pad, pin], [migrate], [0, 0, 1]), det);
    const p = pointsByOp(r)!;
    expect(p.order.map((e, k) => `${e.actor}:${r.labels.get(e.label)}:${p.op[k]}`)).toEqual([
      '0:op:pin:0',
      '0:gup:fast-to-slow:0',
      '1:op:migrate_to_device:0',
      '1:migrate:isolate:0',
      '1:migrate:unmap:0',
      '1:migrate:freeze:0',
      '1:migrate:copy:0',
      '1:migrate:remap:0',
      '0:op:pin:1',
      '0:op:teardown:-1',
      '0:exit:-1',
      '1:op:teardown:-1',
      '1:exit:-1',
    ]);
  });

  it('drops an op whose removal shifts the schedule, keeping the interleaving of the rest', async () => {
    const padded = mk([pad, pin], [migrate], [0, 0, 1]);
    const r = await run(padded, det);
    expect(fails(r)).toBe(true);
    // the padding gone and the schedule unchanged: the migration now runs after the pin
    expect(fails(await run(mk([pin], [migrate], [0, 0, 1]), det))).toBe(false);
    const fewer = (await dropOps(run, det, padded, r, fails, () => false))!;
    expect(fewer.cs.programs).toEqual({ 'pinner-0': [pin], 'user-0': [migrate] });
    expect(fails(fewer.r)).toBe(true);
    // the reduced case is an ordinary one: its schedule alone replays the failure
    expect(fails(await run(fewer.cs, det))).toBe(true);
  });

  it('gives null when every op is needed, and stops when asked', async () => {
    const minimal = mk([pin], [migrate], [1]);
    const r = await run(minimal, det);
    expect(fails(r)).toBe(true);
    expect(await dropOps(run, det, minimal, r, fails, () => false)).toBeNull();
    const padded = mk([pad, pin], [migrate], [0, 0, 1]);
    expect(await dropOps(run, det, padded, await run(padded, det), fails, () => true)).toBeNull();
  });

  it('skips a candidate the harness refuses (bad input), and lets any other error through', async () => {
    const padded = mk([pad, pin], [migrate], [0, 0, 1]);
    const r = await run(padded, det);
    const refuse = (): Promise<CaseResult> => Promise.reject(new CaseError('refused'));
    expect(await dropOps(refuse, det, padded, r, fails, () => false)).toBeNull();
    const broken = (): Promise<CaseResult> => Promise.reject(new Error('harness bug'));
    await expect(dropOps(broken, det, padded, r, fails, () => false)).rejects.toThrow('harness bug');
  });
});
