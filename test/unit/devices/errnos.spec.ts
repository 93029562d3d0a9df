// The errno-contract property, device side: every op of every registered device model returns a success,
// -ESRCH, or one of the errnos its DeviceModel.errnos declares for that op (its kernel function's). Random
// programs run in-thread against a mini machine, with RLIMIT_MEMLOCK / CAP_IPC_LOCK drawn per program and,
// per op, a fatal signal at the op's first preemption point and the seeded fault points (migration target
// allocation, isolation, LRU batches) failing. Removing any errno the property saw makes it fail. Every test
// here iterates over DEVICE_MODELS, so a model is checked as soon as it is registered; the named cases are extras.
import * as fc from 'fast-check';
import { DEVICE_MODELS, errnoAllowed } from '../../../devices/index';
import { linkProgram, type DeviceModel, type DeviceOp, type GenShape } from '../../../devices/device';
import { rig, Rig, fill, expectReleased, PAGE } from './helpers';
import { current, setCurrent, newTask, setYieldHook, setFaultHook } from '../../../mm/sched';
import { PROT_READ } from '../../../mm/mmap';
import { errname, EEXIST, E2BIG, EPERM, ENOENT, ENXIO, ENOMEM, EINTR, ESRCH, EINVAL } from '../../../mm/errno';

const MODELS = Object.values(DEVICE_MODELS);
const SHAPE: GenShape = {
  maps: [
    { name: 'a', pages: 8 },
    { name: 'b', pages: 4 },
    { name: 'ro', pages: 4 },
  ],
  maxPages: 4,
};
const RIG_MAPS = { a: 8, b: 4, ro: { nrPages: 4, prot: PROT_READ } };
const NUM_RUNS = 100;
const SEED = 20250607;

interface Step {
  op: DeviceOp;
  kill: boolean;
  fail: boolean;
}
interface Program {
  rlimit: number | undefined;
  cap: boolean;
  steps: Step[];
}

function arbProgram(model: DeviceModel): fc.Arbitrary<Program> {
  const step = fc.record({
    op: model.arbitrary(fc, SHAPE),
    kill: fc.oneof({ weight: 14, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
    fail: fc.oneof({ weight: 9, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
  });
  // the ops as a suite generates them: tied to each other by the model's link()
  const steps = fc.array(step, { minLength: 1, maxLength: 30, size: 'max' }).map((ss) => {
    const ops = linkProgram(
      model,
      ss.map((x) => x.op),
    );
    return ss.map((x, k) => ({ ...x, op: ops[k]! }));
  });
  return fc.record({ rlimit: fc.constantFrom(undefined, 0, 3, 12), cap: fc.boolean(), steps });
}

/** (op, rc) pairs a program produced with rc < 0, by "op rc". */
type Seen = Map<string, { op: string; rc: number; n: number }>;

/**
 * Run one program; throw on the first result errnoAllowed() refuses (the property's failure). Each op
 * runs as a fresh task: `kill` delivers SIGKILL at its first preemption point, `fail` fails every seeded
 * fault point it passes; both end with the op, as the harness's signals and faults do.
 */
function runProgram(model: DeviceModel, p: Program, seen?: Seen): void {
  const task = newTask(4242, `errnos/${model.name}`, 1);
  const prevTask = setCurrent(task);
  let kill = false;
  let fail = false;
  const atYield = (): void => {
    if (!kill) return;
    task.sigpending = true;
    task.fatalSignal = true;
    kill = false;
  };
  const prevYield = setYieldHook(atYield);
  const prevFault = setFaultHook(() => fail);
  let r: Rig | undefined;
  try {
    r = rig(model, { maps: RIG_MAPS, rlimitMemlockPages: p.rlimit, capIpcLock: p.cap, onYield: atYield });
    fill(r, 'a', 4); // some pages present (ZONE_MOVABLE): pins must migrate them
    for (const s of p.steps) {
      kill = s.kill;
      fail = s.fail;
      const res = r.run(s.op);
      kill = fail = false;
      task.sigpending = task.fatalSignal = false;
      if (!Number.isInteger(res.rc)) throw new Error(`${model.name} ${s.op.op} returned a non-integer rc ${res.rc}`);
      if (!errnoAllowed(model, s.op.op, res.rc)) {
        const declared = (model.errnos[s.op.op] ?? []).map(errname).join(', ');
        throw new Error(
          `errno-contract: ${model.name} ${s.op.op} returned ${errname(res.rc)}, not in its declaration [${declared}] (${res.detail ?? 'no detail'})`,
        );
      }
      if (res.rc < 0 && seen) {
        const k = `${s.op.op} ${res.rc}`;
        const e = seen.get(k) ?? { op: s.op.op, rc: res.rc, n: 0 };
        e.n++;
        seen.set(k, e);
      }
    }
    r.dev.teardown();
  } finally {
    setFaultHook(prevFault);
    setYieldHook(prevYield);
    setCurrent(prevTask);
  }
}

/** The model with one errno taken out of one op's declaration. */
function without(model: DeviceModel, op: string, rc: number): DeviceModel {
  return { ...model, errnos: { ...model.errnos, [op]: model.errnos[op]!.filter((e) => e !== rc) } };
}

describe('errno-contract: declarations', () => {
  it('every op name a model generates has a declaration, and every declared op is one step() accepts', () => {
    for (const model of MODELS) {
      const generated = new Set(fc.sample(model.arbitrary(fc, SHAPE), { numRuns: 2000, seed: 1 }).map((op) => op.op));
      for (const op of generated)
        expect([model.name, op, Object.prototype.hasOwnProperty.call(model.errnos, op)]).toEqual([
          model.name,
          op,
          true,
        ]);
      const r = rig(model, { maps: RIG_MAPS });
      for (const op of Object.keys(model.errnos)) {
        expect([model.name, op, r.run({ op }).detail ?? '']).not.toEqual([model.name, op, `unknown op ${op}`]);
      }
      expect(r.run({ op: 'no_such_op' }).detail).toBe('unknown op no_such_op'); // the check above can fail
      r.dev.teardown();
    }
  });

  it('declared errnos are negative kernel errnos from mm/errno.ts, each listed once', () => {
    for (const model of MODELS) {
      for (const [op, list] of Object.entries(model.errnos)) {
        for (const e of list) {
          expect([model.name, op, e < 0 && Number.isInteger(e)]).toEqual([model.name, op, true]);
          expect(errname(e)).not.toMatch(/^-E\d+$/); // a name errno.ts knows
        }
        expect(new Set(list).size).toBe(list.length);
        expect(list).not.toContain(-ESRCH); // always allowed: not declared per op
      }
    }
  });

  it('errnoAllowed: successes and -ESRCH always, declared errnos, nothing for an unknown op', () => {
    const m = DEVICE_MODELS['vfio-type1']!;
    expect(errnoAllowed(m, 'map_dma', 0)).toBe(true);
    expect(errnoAllowed(m, 'dma_read', 0x7fffffff)).toBe(true);
    expect(errnoAllowed(m, 'map_dma', -EEXIST)).toBe(true);
    expect(errnoAllowed(m, 'map_dma', -ESRCH)).toBe(true);
    expect(errnoAllowed(m, 'map_dma', -ENXIO)).toBe(false);
    expect(errnoAllowed(m, 'dma_read', -EEXIST)).toBe(false);
    expect(errnoAllowed(m, 'map_dma', NaN)).toBe(false);
    expect(errnoAllowed(m, 'no_such_op', 0)).toBe(false);
    expect(errnoAllowed(m, 'no_such_op', -EINVAL)).toBe(false);
    expect(errnoAllowed(m, 'toString', 0)).toBe(false);
  });
});

describe('errno-contract: each model produces declared errnos (deterministic ops)', () => {
  const model = (name: string): DeviceModel => DEVICE_MODELS[name]!;
  const expectDeclared = (m: DeviceModel, op: DeviceOp, rc: number, want: number): void => {
    expect(errname(rc)).toBe(errname(want));
    expect(m.errnos[op.op]).toContain(want);
    expect(errnoAllowed(m, op.op, rc)).toBe(true);
    expect(errnoAllowed(without(m, op.op, want), op.op, rc)).toBe(false);
  };

  // every registered model, nothing to add by hand: each declared op without its fields, on a fresh device
  const eachModel = MODELS.map((m) => [m.name, m] as const);
  it.each(eachModel)('%s: every op without its fields returns a declared errno', (_name, m) => {
    const errors: number[] = [];
    for (const name of Object.keys(m.errnos)) {
      const r = rig(m, { maps: RIG_MAPS, rlimitMemlockPages: 3 });
      const op = { op: name };
      const { rc } = r.run(op);
      expect([m.name, name, Number.isInteger(rc)]).toEqual([m.name, name, true]);
      if (rc < 0) {
        expectDeclared(m, op, rc, rc);
        errors.push(rc);
      }
      r.dev.teardown();
      expectReleased(r);
    }
    expect(errors.length).toBeGreaterThan(0); // the check above can fail
  });

  // named errno paths beyond a missing field; a model need not have one
  const cases: [string, (r: Rig) => [DeviceOp, number], number][] = [
    [
      'vfio-type1',
      (r) => {
        // vfio_dma_do_map(): an overlapping mapping
        r.run({ op: 'map_dma', iova: 0, vaddr: r.va('a'), size: 2 * PAGE, read: true, write: true });
        const op = { op: 'map_dma', iova: PAGE, vaddr: r.va('a', 2), size: PAGE, read: true, write: true };
        return [op, r.run(op).rc];
      },
      -EEXIST,
    ],
    [
      'vfio-mdev',
      (r) => {
        // vfio_device_container_pin_pages(): npage > VFIO_PIN_PAGES_MAX_ENTRIES
        const op = { op: 'pin_pages', iova: 0, npage: 513, write: false };
        return [op, r.run(op).rc];
      },
      -E2BIG,
    ],
    [
      'iommufd-access',
      (r) => {
        // iommufd_access_pin_pages(): check_area_prot() of a read-only area
        r.run({ op: 'ioas_map', iova: 0, vaddr: r.va('a'), length: 2 * PAGE, read: true, write: false });
        const op = { op: 'access_pin', iova: 0, length: PAGE, write: true };
        return [op, r.run(op).rc];
      },
      -EPERM,
    ],
    [
      'rdma-umem',
      (r) => {
        // uobj_perform_destroy(): no MR with that handle
        const op = { op: 'dereg_mr', mr: 7 };
        return [op, r.run(op).rc];
      },
      -ENOENT,
    ],
    [
      'rdma-odp',
      (r) => {
        const op = { op: 'dereg_mr', lkey: 0x1234 };
        return [op, r.run(op).rc];
      },
      -ENOENT,
    ],
    [
      'io_uring-fixed',
      (r) => {
        // io_sqe_buffers_unregister() with nothing registered
        const op = { op: 'unregister' };
        return [op, r.run(op).rc];
      },
      -ENXIO,
    ],
    [
      'example-pinbuf',
      (r) => {
        // ib_umem_get()'s pinned_vm over RLIMIT_MEMLOCK (3 pages)
        const op = { op: 'pin', vaddr: r.va('a'), len: 4 * PAGE };
        return [op, r.run(op).rc];
      },
      -ENOMEM,
    ],
  ];

  it('each named case is a registered model', () => {
    for (const [name] of cases) expect(Object.keys(DEVICE_MODELS)).toContain(name);
  });

  it.each(cases)('%s', (name, act, want) => {
    const m = model(name);
    const r = rig(m, { maps: RIG_MAPS, rlimitMemlockPages: 3 });
    const [op, rc] = act(r);
    expectDeclared(m, op, rc, want);
    r.dev.teardown();
    expectReleased(r);
  });

  it('a fatal signal: GUP returns -EINTR and vfio-type1 MAP_DMA passes it on (declared)', () => {
    const m = model('vfio-type1');
    const r = rig(m, { maps: RIG_MAPS });
    fill(r, 'a', 2);
    const prev = setCurrent(newTask(4243, 'errnos/sigkill', 1));
    try {
      current().fatalSignal = true;
      const op = { op: 'map_dma', iova: 0, vaddr: r.va('a'), size: 2 * PAGE, read: true, write: true };
      expectDeclared(m, op, r.run(op).rc, -EINTR);
    } finally {
      setCurrent(prev);
    }
    r.dev.teardown();
    expectReleased(r);
  });
});

describe('errno-contract: random programs (fast-check)', () => {
  const seenBy = new Map<string, Seen>();

  it.each(MODELS.map((m) => [m.name, m] as const))('%s: every result is a declared errno', (_name, model) => {
    const seen: Seen = new Map();
    seenBy.set(model.name, seen);
    fc.assert(
      fc.property(arbProgram(model), (p) => runProgram(model, p, seen)),
      { numRuns: NUM_RUNS, seed: SEED },
    );
    // the programs reach the error paths: several distinct declared errnos per model
    expect(new Set([...seen.values()].map((e) => e.rc)).size).toBeGreaterThanOrEqual(2);
  });

  it.each(MODELS.map((m) => [m.name, m] as const))(
    '%s: the property fails once any errno it saw is taken out of the declaration',
    (_name, model) => {
      let seen = seenBy.get(model.name);
      if (!seen) {
        // run alone (jest -t): collect what the property produces first
        seen = new Map();
        const s = seen;
        fc.assert(
          fc.property(arbProgram(model), (p) => runProgram(model, p, s)),
          { numRuns: NUM_RUNS, seed: SEED },
        );
      }
      expect(seen.size).toBeGreaterThan(0);
      for (const { op, rc } of seen.values()) {
        const crippled = without(model, op, rc);
        const out = fc.check(
          fc.property(arbProgram(crippled), (p) => runProgram(crippled, p)),
          { numRuns: NUM_RUNS, seed: SEED, endOnFailure: true },
        );
        expect([op, errname(rc), out.failed]).toEqual([op, errname(rc), true]);
        expect(String((out.errorInstance as Error).message)).toContain(
          `${model.name} ${op} returned ${errname(rc)}, not in its declaration`,
        );
      }
    },
  );
});
