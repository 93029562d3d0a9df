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
    // the decisions: those points, and the wait user-0 blocked in (the quiescence barrier, in no op)
    expect(p.decisions.map((d) => `${d.actor}:${d.op}`)).toEqual([
      ...['0:0', '0:0', '1:0', '1:0', '1:0', '1:0', '1:0', '1:0', '1:-1', '0:1'],
      ...['0:-1', '0:-1', '1:-1', '1:-1'],
    ]);
    expect(p.decisions.length + 1).toBe(r.decisions); // and initDeterministic()'s first
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

  it("drops ops the interleaving cannot keep (an actor ran on past its point): the failing run's decisions less the op's", async () => {
    // a case the mutation benchmark shrank to 11 ops (rdma-odp's no-seq-retry, seed 280068087): ODP
    // registration faults the ring page in while offlining migrates it; the first eight ops fail -EINVAL
    const write = (len?: number): ActorOp => ({ op: 'rdma_write', mr: 0, off: 0, ...(len ? { len } : {}), value: 1 });
    const odp: ActorOp[] = [
      ...[write(), write(), write(), write(98304), write(98304), write(98304)],
      { op: 'rdma_read', mr: 0, off: 0, len: 98304 },
      { op: 'dereg_mr', mr: 0 },
      { op: 'reg_mr', vaddr: { map: 'ring', off: 0 }, len: 32768, access: 71 },
    ];
    const cs: Case = {
      layout: {
        cmdline: 'mem=1M movablecore=512K cma=128K@256K sysctl.vm.min_free_kbytes=16',
        geometry: 'mini',
        maps: [
          { name: 'buf', pages: 24 },
          { name: 'ring', pages: 8 },
        ],
      },
      variant: 'v6.12',
      programs: {
        'user-0': [{ op: 'touch', map: 'ring', page: 0, write: true }],
        'rdma-odp-0': odp,
        'hotplug-0': [{ op: 'offline', block: 0 }],
      },
      schedule: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3],
      faults: {},
      bugs: { 'rdma-odp-0': ['no-seq-retry'] },
    };
    const stale = (r: CaseResult): boolean => r.failures.some((f) => f.property === 'dma-integrity');
    const odpDet: RunOptions = { mode: 'det', seed: 280068087 };
    const r = await run(cs, odpDet);
    expect(stale(r)).toBe(true);
    // along the interleaving, user-0's touch (no point after its op's own) runs after the offline: no race
    const p = pointsByOp(r)!;
    const without0: Case = { ...cs, programs: { ...cs.programs, 'rdma-odp-0': odp.slice(1) }, schedule: [] };
    const interleave = p.order.filter((e, k) => !(e.actor === 1 && p.op[k] === 0));
    const followed = await run(without0, { ...odpDet, interleave });
    expect(stale(await run({ ...without0, schedule: followed.scheduleTaken! }, odpDet))).toBe(false);
    const fewer = (await dropOps(run, odpDet, cs, r, stale, () => false))!;
    expect(fewer.cs.programs['rdma-odp-0']).toEqual([odp[8]]);
    expect(stale(await run(fewer.cs, odpDet))).toBe(true);
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
