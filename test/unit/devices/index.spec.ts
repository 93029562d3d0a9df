import * as fc from 'fast-check';
import { linkProgram } from '../../../devices/device';
import { DEVICE_MODELS, deviceModel, resolveOp, resolveVaddr, isVaddrRef } from '../../../devices/index';
import { rig, expectReleased, PAGE } from './helpers';
import { parseCase } from '../../../harness/case_schema';

describe('devices/index.ts registry', () => {
  it('registers the models by name, each with a summary, kernel source and described bug switches', () => {
    for (const name of ['vfio-type1', 'vfio-mdev', 'iommufd-access', 'rdma-umem', 'io_uring-fixed', 'example-pinbuf']) {
      const d = deviceModel(name);
      expect(d.name).toBe(name);
      expect(d.summary.length).toBeGreaterThan(10);
      expect(d.source.length).toBeGreaterThan(5);
      for (const [bug, what] of Object.entries(d.bugs))
        expect(`${bug}: ${what}`.length).toBeGreaterThan(bug.length + 10);
    }
    expect(Object.keys(DEVICE_MODELS).length).toBeGreaterThanOrEqual(6);
  });

  it('every model declares the fields of exactly the ops it declares errnos for', () => {
    for (const model of Object.values(DEVICE_MODELS))
      expect(Object.keys(model.ops).sort()).toEqual(Object.keys(model.errnos).sort());
  });

  it("every generated op fits its model's field declarations (the regression-file schema)", () => {
    const shape = {
      maps: [
        { name: 'a', pages: 8 },
        { name: 'b', pages: 4 },
      ],
      maxPages: 4,
    };
    for (const model of Object.values(DEVICE_MODELS)) {
      const ops = linkProgram(model, fc.sample(model.arbitrary(fc, shape), { numRuns: 300, seed: 5 }));
      const cs = {
        layout: { cmdline: 'mem=1M', geometry: 'mini', maps: shape.maps },
        variant: 'v6.12',
        programs: { [`${model.name}-0`]: ops },
        schedule: [],
        faults: {},
      };
      expect(() => parseCase(cs)).not.toThrow();
    }
  });

  it('an unknown name throws, naming the known models', () => {
    expect(() => deviceModel('vfio-type2')).toThrow(
      /unknown device model 'vfio-type2' \(models: .*vfio-type1.*io_uring-fixed/,
    );
  });

  it('resolveOp replaces every VaddrRef at any depth by its byte address and leaves the rest alone', () => {
    const maps = { buf: 100, b: 7 };
    expect(isVaddrRef({ map: 'buf', off: 1 })).toBe(true);
    expect(isVaddrRef({ map: 'buf' })).toBe(false);
    expect(resolveVaddr(maps, { map: 'buf', off: 2, byte: 5 })).toBe(102 * PAGE + 5);
    const op = {
      op: 'register',
      iovecs: [
        { base: { map: 'b', off: 1 }, len: 10 },
        { base: 0, len: 0 },
      ],
      flag: true,
    };
    expect(resolveOp(op, maps)).toEqual({
      op: 'register',
      iovecs: [
        { base: 8 * PAGE, len: 10 },
        { base: 0, len: 0 },
      ],
      flag: true,
    });
    expect(op.iovecs[0]!.base).toEqual({ map: 'b', off: 1 }); // not mutated
    expect(() => resolveOp({ op: 'x', vaddr: { map: 'nope', off: 0 } }, maps)).toThrow(/no mapping named 'nope'/);
  });

  it('every model: generated ops are JSON-able, resolve against the shape, never throw, and tear down clean', () => {
    const shape = {
      maps: [
        { name: 'a', pages: 8 },
        { name: 'b', pages: 4 },
      ],
      maxPages: 4,
    };
    for (const model of Object.values(DEVICE_MODELS)) {
      if (model.name === 'rdma-odp') continue; // covered by its own spec
      const ops = fc.sample(
        fc.array(model.arbitrary(fc, shape), { maxLength: 15 }).map((p) => linkProgram(model, p)),
        { numRuns: 15, seed: 21 },
      );
      for (const seq of ops) {
        const r = rig(model, { maps: { a: 8, b: 4 } });
        for (const op of seq) {
          expect(JSON.parse(JSON.stringify(op))).toEqual(op);
          const res = r.run(op);
          expect(Number.isInteger(res.rc)).toBe(true);
          expect(res.violation).toBeUndefined();
        }
        r.dev.teardown();
        expectReleased(r);
      }
    }
  });
});
