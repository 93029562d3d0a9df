// Generated programs whose ops name each other (devices/common.ts linkOps(), a model's link()): a pin into a
// map made before it, an unmap of that map, a DMA through that pin, a work request on an MR registered before.
import * as fc from 'fast-check';
import { linkOps, linkedIova, type LinkRule } from '../../../devices/common';
import { linkProgram, type DeviceOp } from '../../../devices/device';
import { DEVICE_MODELS } from '../../../devices/index';
import { SUITES, suiteCases } from '../../../harness/suites';
import { PAGE } from './helpers';

const RULES: Record<string, LinkRule> = {
  pin: { from: 'map', to: (op, m) => ({ ...op, iova: linkedIova(op, Number(m.iova), Number(m.pages)) }) },
  use: { from: 'map', to: (op, _m, nth) => ({ ...op, nth }) },
};

describe('linkOps', () => {
  it('resolves ref k to the k-th most recent earlier op of the kind it follows, wrapping, and drops ref', () => {
    const prog: DeviceOp[] = [
      { op: 'map', iova: 8 * PAGE, pages: 4 },
      { op: 'map', iova: 16 * PAGE, pages: 2 },
      { op: 'pin', iova: 5 * PAGE, ref: 0 }, // the latest map, page 5 % 2 = 1
      { op: 'pin', iova: 6 * PAGE + 12, ref: 1 }, // the map before it, page 6 % 4 = 2, offset kept
      { op: 'use', ref: 2 }, // 2 % 2 = 0: the latest map again, the second of its kind
      { op: 'use', ref: 3 },
    ];
    expect(linkOps(prog, RULES)).toEqual([
      { op: 'map', iova: 8 * PAGE, pages: 4 },
      { op: 'map', iova: 16 * PAGE, pages: 2 },
      { op: 'pin', iova: 17 * PAGE },
      { op: 'pin', iova: 10 * PAGE + 12 },
      { op: 'use', nth: 1 },
      { op: 'use', nth: 0 },
    ]);
    expect(prog[2]).toEqual({ op: 'pin', iova: 5 * PAGE, ref: 0 }); // not mutated
  });

  it('an op with no earlier op to follow, or drawn without a reference, keeps what it drew', () => {
    const prog: DeviceOp[] = [
      { op: 'pin', iova: 3 * PAGE, ref: 1 },
      { op: 'map', iova: 8 * PAGE, pages: 4 },
      { op: 'pin', iova: 3 * PAGE, ref: undefined },
      { op: 'other', iova: 1, ref: 0 },
    ];
    expect(linkOps(prog, RULES)).toEqual([
      { op: 'pin', iova: 3 * PAGE },
      { op: 'map', iova: 8 * PAGE, pages: 4 },
      { op: 'pin', iova: 3 * PAGE },
      { op: 'other', iova: 1 },
    ]);
  });

  it('a pin that follows a map becomes one the map can serve, more often than the drawn addresses alone', () => {
    const model = DEVICE_MODELS['vfio-mdev']!;
    const shape = { maps: [{ name: 'buf', pages: 24 }], maxPages: 4 };
    const programs = fc.sample(fc.array(model.arbitrary(fc, shape), { maxLength: 10, size: 'max' }), {
      numRuns: 400,
      seed: 3,
    });
    // a pin whose first page lies in an earlier map of the program
    const inside = (p: DeviceOp[]): number =>
      p.filter(
        (op, k) =>
          op.op === 'pin_pages' &&
          p
            .slice(0, k)
            .some(
              (m) =>
                m.op === 'map_dma' &&
                Number(op.iova) >= Number(m.iova) &&
                Number(op.iova) < Number(m.iova) + Number(m.size),
            ),
      ).length;
    const strip = (p: DeviceOp[]): DeviceOp[] => p.map(({ ref: _r, ...op }) => op as DeviceOp);
    const drawn = programs.reduce((n, p) => n + inside(strip(p)), 0);
    const linked = programs.reduce((n, p) => n + inside(linkProgram(model, p)), 0);
    expect(linked).toBeGreaterThan(1.5 * drawn);
  });

  it("the suites' cases hold plain ops: no reference survives into a case", () => {
    for (const name of ['device:vfio-type1', 'device:vfio-mdev', 'device:iommufd-access', 'device:rdma-umem']) {
      const cases = fc.sample(suiteCases(fc, SUITES[name]!, { variant: 'v6.12' }), { numRuns: 50, seed: 9 });
      for (const cs of cases)
        for (const prog of Object.values(cs.programs)) for (const op of prog) expect(op).not.toHaveProperty('ref');
    }
  });
});

describe('a pin that follows a map fits it (pinInside())', () => {
  const link = (model: string, prog: DeviceOp[]): DeviceOp[] => linkProgram(DEVICE_MODELS[model]!, prog);

  it('vfio-mdev: npage cut to the pages the map has left, write only where the map allows, edge counts kept', () => {
    const map: DeviceOp = { op: 'map_dma', iova: 8 * PAGE, vaddr: { map: 'buf', off: 0 }, size: 3 * PAGE, read: true };
    const ro = { ...map, write: false };
    const rw = { ...map, write: true };
    const pin = (iova: number, npage: number, write: boolean): DeviceOp => ({ op: 'pin_pages', iova, npage, write });
    // page 5 % 3 = 2: the map's last page, one left
    expect(link('vfio-mdev', [ro, { ...pin(5 * PAGE, 4, true), ref: 0 }])[1]).toEqual(pin(10 * PAGE, 1, false));
    expect(link('vfio-mdev', [rw, { ...pin(3 * PAGE, 4, true), ref: 0 }])[1]).toEqual(pin(8 * PAGE, 3, true));
    expect(link('vfio-mdev', [rw, { ...pin(1 * PAGE, 1, true), ref: 0 }])[1]).toEqual(pin(9 * PAGE, 1, true));
    // npage 0 and past VFIO_PIN_PAGES_MAX_ENTRIES are the generator's errno cases
    expect(link('vfio-mdev', [rw, { ...pin(0, 0, true), ref: 0 }])[1]).toEqual(pin(8 * PAGE, 0, true));
    expect(link('vfio-mdev', [rw, { ...pin(0, 513, true), ref: 0 }])[1]).toEqual(pin(8 * PAGE, 513, true));
    // drawn on its own: what it drew
    expect(link('vfio-mdev', [ro, pin(5 * PAGE, 4, true)])[1]).toEqual(pin(5 * PAGE, 4, true));
  });

  it("iommufd-access: the access pin's length cut to the area", () => {
    const area: DeviceOp = { op: 'ioas_map', iova: 0, vaddr: { map: 'buf', off: 0 }, length: 2 * PAGE, read: true };
    const pin = { op: 'access_pin', iova: 1 * PAGE, length: 4 * PAGE, write: true };
    expect(
      link('iommufd-access', [
        { ...area, write: true },
        { ...pin, ref: 0 },
      ])[1],
    ).toEqual({ ...pin, length: PAGE });
    expect(
      link('iommufd-access', [
        { ...area, write: false },
        { ...pin, iova: 0, ref: 0 },
      ])[1],
    ).toEqual({
      ...pin,
      iova: 0,
      length: 2 * PAGE,
      write: false,
    });
  });
});

describe('device programs open with their setup op (ActorModel.setup)', () => {
  const models = Object.values(DEVICE_MODELS).filter((m) => m.setup !== undefined);

  it('every model names one, and it is an op of its own', () => {
    expect(models.length).toBe(Object.keys(DEVICE_MODELS).length);
    for (const m of models) expect(Object.keys(m.errnos)).toContain(m.setup);
  });

  it("three programs in four start with it, against the generator's own share of that op", () => {
    const shape = { maps: [{ name: 'buf', pages: 24 }], maxPages: 4 };
    for (const m of models) {
      const actor = `${m.name}-0`;
      const cases = fc.sample(suiteCases(fc, SUITES[`device:${m.name}`]!, { variant: 'v6.12' }), {
        numRuns: 400,
        seed: 5,
      });
      const progs = cases.map((c) => c.programs[actor]!).filter((p) => p.length > 0);
      const opened = progs.filter((p) => p[0]!.op === m.setup).length / progs.length;
      const drawn = fc.sample(m.arbitrary(fc, shape), { numRuns: 400, seed: 5 });
      const own = drawn.filter((op) => op.op === m.setup).length / drawn.length;
      expect(opened).toBeGreaterThan(0.7);
      expect(opened).toBeGreaterThan(own + 0.3);
    }
  });
});

describe('swarm subsets keep the op kinds a suite exists for (ActorModel.charges, keeping())', () => {
  // the share of 4-op-or-longer vfio-mdev programs with a pin_pages (a charging op, not the setup op): swarm subsets
  // that keep it are denser in it than programs drawn from every kind; subsets that may drop it are sparser
  const share = (suite: string, actor: string, swarm: boolean, kind = 'pin_pages'): number => {
    const cases = fc.sample(suiteCases(fc, SUITES[suite]!, { variant: 'v6.12', swarm }), { numRuns: 600, seed: 7 });
    const progs = cases.map((c) => c.programs[actor]!).filter((p) => p.length >= 4);
    return progs.filter((p) => p.some((op) => op.op === kind)).length / progs.length;
  };

  it('a swarmed program pins at least as often as one drawn from every kind', () => {
    for (const [suite, actors] of [
      ['device:vfio-mdev', ['vfio-mdev-0']],
      ['device2:vfio-mdev', ['vfio-mdev-0', 'vfio-mdev-1']],
    ] as const)
      for (const actor of actors) expect(share(suite, actor, true)).toBeGreaterThan(share(suite, actor, false) + 0.03);
  });

  // ops of the kind per program: the user's hwpoison is in nearly every program either way, but denser swarmed
  const perProgram = (suite: string, actor: string, swarm: boolean, kind: string): number => {
    const cases = fc.sample(suiteCases(fc, SUITES[suite]!, { variant: 'v6.12', swarm }), { numRuns: 600, seed: 7 });
    return cases.reduce((n, c) => n + c.programs[actor]!.filter((op) => op.op === kind).length, 0) / cases.length;
  };

  it("longterm-pin-hwpoison and longterm-pin-move keep the op kinds of R20's and R17's cases the same way", () => {
    for (const [suite, actor, kind] of [
      ['longterm-pin-hwpoison', 'user-0', 'hwpoison'],
      ['longterm-pin-hwpoison', 'pinner-0', 'pin'],
      ['longterm-pin-hwpoison', 'hotplug-0', 'offline'],
      ['longterm-pin-move', 'user-0', 'migrate_to_device'],
      ['longterm-pin-move', 'pinner-0', 'pin'],
    ] as const) {
      expect(perProgram(suite, actor, true, kind)).toBeGreaterThan(1.1 * perProgram(suite, actor, false, kind));
    }
  });

  it('every model that charges a memlock counter names ops it has', () => {
    for (const model of Object.values(DEVICE_MODELS))
      for (const kind of model.charges ?? []) expect(Object.keys(model.errnos)).toContain(kind);
  });
});
