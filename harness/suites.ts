// Property suites for `pinlab run`: a suite is a machine generator, one program generator per actor,
// and the properties checked. Every generated case is plain JSON (harness/run_case.ts Case) built only
// from records, arrays, integers and constants, so fast-check shrinks all of it - fewer ops, smaller
// ranges, shorter schedules (a shorter or all-zero schedule means fewer preemptions) and fewer faults -
// even for a case it did not generate itself (a free run's schedule, a regression file).
//
// Properties (docs/harness.md):
//   no-longterm-pin-in-movable  a long-term pin never holds a frame in ZONE_MOVABLE or a CMA pageblock,
//                               nor one in a pageblock isolated since before the pin began (checked by the
//                               actor after every op)
//   dma-integrity               a DMA through a pin lands in a pinned, allocated frame the process still maps
//   pins-balance                after teardown and exit: NR_FOLL_PIN_ACQUIRED == RELEASED, every refcount,
//                               _pincount and _mapcount back to its value before the run
//   allocator-sound             the free lists and per-CPU lists account every frame exactly once
//   movable-offlinable          with every pin released, each ZONE_MOVABLE block goes offline (on a copy)
//   deadlock, hang, kernel-bug, kernel-panic, actor-threw, worker-exit, property-threw: the run itself broke
import type * as fcType from 'fast-check';
import type { Memmap } from '../mm/memmap';
import type { Case, Layout } from './run_case';
import type { ActorOp, FaultPlan } from './types';
import { DEVICE_MODELS } from '../devices/index';
import { own } from '../mm/own';
import { linkProgram, type ActorModel, type GenShape } from '../devices/device';
import { actorModel, actorKind, deviceModelOf } from './actors';
import { pinner, pinnerOps } from './agents/pinner';
import { cmaOpsAlloc, CMA_ALLOC_OP_KINDS } from './agents/cma';
import {
  userOpsRefault,
  userOpsRefaultSoftOffline,
  userOpsHugetlbMove,
  userOpsHwpoison,
  USER_OP_KINDS,
  USER_MOVE_OP_KINDS,
} from './agents/user';
import { PROMISES } from '../properties/index';
import { deadlock, hang } from '../properties/run_failures';
import { kernelBug } from '../properties/kernel_bug';
import { bootCaseArb } from './boot_cmdlines';

export interface SuiteOptions {
  variant: string;
  /** replaces the suite's command lines (--cmdline) */
  cmdline?: string;
  /** the geometry of cmdline's machine (--geometry; default mini) */
  geometry?: string;
  /**
   * machines: 'random' (the default: generated kernelcore/movablecore splits, CMA, THP, hugetlb, hot-plugged blocks,
   * KASLR) or 'fixed' (MINI_LAYOUTS)
   */
  machines?: 'random' | 'fixed';
  /** swarm testing: each case enables a random subset of each actor's operation kinds (default on) */
  swarm?: boolean;
  /** device-model bug switches, given to every device actor of the case (Case.bugs) */
  bugs?: string[];
}

export interface Suite {
  name: string;
  summary: string;
  /** actor names in order ("<kind>-<n>") */
  actors: string[];
  properties: readonly string[];
  arbitrary(fc: typeof fcType, o: SuiteOptions): fcType.Arbitrary<Case>;
  /** cases per `pinlab run` unless --runs says otherwise */
  runs: number;
  /** the suite's own end-of-run checks: property -> errors */
  checks?: Record<string, (m: Memmap) => string[]>;
  /** not listed in --help (the harness's self-tests) */
  hidden?: boolean;
  /** the campaign runs it on its first machine shape only (random machines), to stay about a minute */
  campaignFirstShapeOnly?: boolean;
}

/** What every suite checks: the kernel's promises, and the run failures the campaign reports per property. */
export const CORE_PROPERTIES: readonly string[] = [...PROMISES, deadlock.name, hang.name, kernelBug.name];

/** Miniature machines: Normal 128 frames with a 32-frame CMA area at pfn 64, ZONE_MOVABLE 128 frames (4 blocks). */
export const MINI_LAYOUTS: Layout[] = [
  {
    cmdline: 'mem=1M movablecore=512K cma=128K@256K sysctl.vm.min_free_kbytes=16',
    geometry: 'mini',
    maps: [
      { name: 'buf', pages: 24 },
      { name: 'ring', pages: 8 },
    ],
  },
  {
    cmdline: 'mem=1M movablecore=512K cma=128K@256K sysctl.vm.min_free_kbytes=16 transparent_hugepage=always',
    geometry: 'mini',
    maps: [
      { name: 'buf', pages: 24 },
      { name: 'ring', pages: 8 },
    ],
  },
];

/**
 * Random miniature machines (mini geometry: 1 MiB, 256 frames, 32-frame memory blocks, THP and hugetlb
 * order 3): where ZONE_MOVABLE starts (kernelcore= or movablecore=, or none), a CMA area in the kernel
 * zone or none, THP always or never, a hugetlb pool (HVO on some: hvo()), 256K of hot-plugged memory onlined to
 * ZONE_MOVABLE, and where the kernel image and ZERO_PAGE sit (physical KASLR: kernel_pfn=192 puts them
 * in ZONE_MOVABLE when it reaches that far). The kernel zones keep >= 384K: min_free_kbytes' 128K
 * floor plus the process's 32 pages and page tables, or every case ends in an OOM panic.
 */
/**
 * HVO (hugetlb_free_vmemmap=on: frees of hugetlb folios leaving the pool deferred to a kworker, R19) on
 * a quarter of the machines, those with a pool and THP not always: derived from choices already drawn,
 * so the generator's random stream, and every other machine, stay as they were.
 */
function hvo(x: { hugetlb: string; thp: string }): string {
  return x.hugetlb && !x.thp ? 'hugetlb_free_vmemmap=on' : '';
}

/** machineArb()'s pool added to a machine drawn without one, with HVO by the same rule as hvo(). */
function withPool(cmdline: string): string {
  return /transparent_hugepage=always/.test(cmdline) ? 'hugepages=2' : 'hugepages=2 hugetlb_free_vmemmap=on';
}

export function machineArb(fc: typeof fcType): fcType.Arbitrary<Layout> {
  return fc
    .record({
      split: fc.constantFrom(
        'movablecore=512K',
        'movablecore=256K',
        'kernelcore=384K',
        'kernelcore=640K',
        'movablecore=128K',
        '',
      ),
      cma: fc.constantFrom('cma=128K@256K', '', 'cma=64K@192K', 'cma=128K'), // the last at the top of memory: in ZONE_MOVABLE
      thp: fc.constantFrom('', 'transparent_hugepage=always'),
      hugetlb: fc.constantFrom('', 'hugepages=2'),
      hotplug: fc.constantFrom('', 'pinlab.hotplug=256K memhp_default_state=online_movable'),
      kaslr: fc.constantFrom('', ',kernel_pfn=192'),
    })
    .map((x) => ({
      cmdline: [
        'mem=1M',
        x.split,
        x.cma,
        'sysctl.vm.min_free_kbytes=16',
        x.thp,
        x.hugetlb,
        hvo(x),
        x.hotplug,
        numaOf(x),
      ]
        .filter(Boolean)
        .join(' '),
      geometry: `mini${x.kaslr}`,
      maps: MINI_LAYOUTS[0]!.maps,
    }));
}

/**
 * Two NUMA nodes (numa=fake=2: kernelcore spread over both, each with its own zones; CPUs alternate
 * between them) on one machine in 16: derived from draws above (cma=64K@192K, no THP, no KASLR) rather
 * than a draw of its own, so the cases the campaign drew before stay the same cases.
 */
function numaOf(x: { cma: string; thp: string; kaslr: string }): string {
  return x.cma === 'cma=64K@192K' && x.thp === '' && x.kaslr === '' ? 'numa=fake=2' : '';
}

function layouts(fc: typeof fcType, o: SuiteOptions): fcType.Arbitrary<Layout> {
  if (o.cmdline !== undefined)
    return fc.constant({ ...MINI_LAYOUTS[0]!, cmdline: o.cmdline, geometry: o.geometry ?? MINI_LAYOUTS[0]!.geometry });
  return o.machines === 'fixed' ? fc.constantFrom(...MINI_LAYOUTS) : machineArb(fc);
}

/**
 * Swarm testing (Groce et al., "Swarm Testing", ISSTA 2012): a case enables a random subset of an
 * actor's operation kinds, so long runs of one kind (many pins, no unpins) happen often.
 */
function swarmed(
  fc: typeof fcType,
  ops: fcType.Arbitrary<ActorOp>,
  kinds: string[],
  maxLength: number,
  on: boolean,
  keep: readonly string[] = [],
  setup?: string,
): fcType.Arbitrary<ActorOp[]> {
  // three programs in four open with the model's setup op (ActorModel.setup: the map or registration its other ops
  // use), then go on as below; the fourth starts anywhere, its ops most often meeting nothing
  if (setup !== undefined && kinds.includes(setup) && maxLength > 1) {
    const first = ops.filter((op) => op.op === setup);
    const opened = fc.tuple(first, swarmed(fc, ops, kinds, maxLength - 1, on, keep)).map(([op, rest]) => [op, ...rest]);
    return fc.oneof(
      { weight: 3, arbitrary: opened },
      { weight: 1, arbitrary: swarmed(fc, ops, kinds, maxLength, on, keep) },
    );
  }
  // size 'max': lengths up to the bound, not fast-check's default bias to short arrays (a quarter of the programs
  // empty, most of the rest one or two ops), since most bugs need three or four ops in order (map, pin, unmap, DMA)
  if (!on || kinds.length < 2) return fc.array(ops, { maxLength, size: 'max' });
  // ops of a disabled kind are dropped (not filtered away: a subset a generator never yields cannot loop)
  // half the programs draw from every kind: a bug that needs three kinds in order (map, pin, unmap) meets a subset
  // holding all three in 2 of 7 swarmed programs
  // (kinds in keep are in every subset)
  const rest = kinds.filter((k) => !keep.includes(k));
  const subset = fc.oneof(
    fc.constant(kinds),
    fc.subarray(rest, { minLength: keep.length ? 0 : 1 }).map((s) => [...keep, ...s]),
  );
  return subset.chain((enabled) => {
    const set = new Set(enabled);
    const scale = Math.min(4, Math.ceil(kinds.length / enabled.length));
    return fc
      .array(
        ops.map((op) => (set.has(op.op) ? op : null)),
        { maxLength: maxLength * scale, size: 'max' },
      )
      .map((a) => a.filter((op): op is ActorOp => op !== null).slice(0, maxLength));
  });
}

/**
 * A seeded fault plan over the fault points an actor kind meets (ActorModel.faultPoints). Half the call
 * numbers are 0 or 1: most points are met once or twice a case (one pin's target allocation), so a call
 * number drawn from 0-15 alone rarely failed a call that happened; R14c's searches took twice the cases.
 */
export function faultPlan(fc: typeof fcType, points: readonly string[]): fcType.Arbitrary<FaultPlan> {
  if (!points.length) return fc.constant({});
  const calls = fc.array(fc.oneof(fc.nat(1), fc.nat(15)), { maxLength: 2 });
  const plan = fc.record(Object.fromEntries(points.map((p) => [p, calls])), {
    requiredKeys: [],
  }) as fcType.Arbitrary<FaultPlan>;
  return fc.oneof({ weight: 2, arbitrary: fc.constant({}) }, { weight: 1, arbitrary: plan });
}

/**
 * A schedule: one choice per preemption point, 0 = the running actor goes on. Up to 96 choices (size
 * 'medium': fast-check's default size would stop at 10, so no race past a case's first few points was
 * ever tried), two in three of them 0, so a case switches at about a third of its points.
 */
export function scheduleArb(fc: typeof fcType): fcType.Arbitrary<number[]> {
  return fc.array(fc.oneof({ weight: 2, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.nat(7) }), {
    maxLength: 96,
    size: 'medium',
  });
}

/** The shape of the process's mappings the generators draw addresses from. */
const SHAPE: GenShape = { maps: MINI_LAYOUTS[0]!.maps.map((x) => ({ name: x.name, pages: x.pages })), maxPages: 4 };

/** A suite's variation on a kind's own generator (ActorModel.arbitrary) and swarm kinds (ActorModel.opKinds). */
type Generators = Partial<
  Record<string, { ops: (fc: typeof fcType) => fcType.Arbitrary<ActorOp>; kinds: readonly string[] }>
>;

/**
 * A suite over the given actors, each kind generated by its model (or by gens, where a suite overrides it). Every
 * swarm subset holds the model's charging ops (ActorModel.charges: a device program without them only meets errno
 * paths) and the kinds keep names for it.
 */
function agentSuite(
  name: string,
  summary: string,
  actors: string[],
  runs: number,
  gens: Generators = {},
  keep: (model: ActorModel) => readonly string[] = () => [],
): Suite {
  const models = actors.map((a) => actorModel(actorKind(a))!);
  return {
    name,
    summary,
    actors,
    properties: CORE_PROPERTIES,
    runs,
    arbitrary: (fc, o) =>
      fc.record({
        layout: layouts(fc, o),
        variant: fc.constant(o.variant),
        programs: fc.record(
          Object.fromEntries(
            actors.map((a, k) => {
              const model = models[k]!;
              const gen = own(gens, model.name);
              const ops = gen ? gen.ops(fc) : (model.arbitrary(fc, SHAPE) as fcType.Arbitrary<ActorOp>);
              const kinds = [...(gen?.kinds ?? model.opKinds ?? Object.keys(model.errnos))];
              const kept = [...(model.charges ?? []), ...keep(model)].filter((k) => kinds.includes(k));
              const prog = swarmed(fc, ops, kinds, model.programLength, o.swarm !== false, kept, model.setup);
              return [a, gen ? prog : prog.map((p) => linkProgram(model, p))];
            }),
          ),
        ),
        schedule: scheduleArb(fc),
        faults: fc.record(Object.fromEntries(actors.map((a, k) => [a, faultPlan(fc, models[k]!.faultPoints)]))),
        ...(o.bugs?.length
          ? {
              bugs: fc.constant(
                Object.fromEntries(actors.filter((a) => deviceModelOf(actorKind(a))).map((a) => [a, o.bugs!])),
              ),
            }
          : {}),
      }) as unknown as fcType.Arbitrary<Case>,
  };
}

/**
 * agentSuite()'s keep for a suite built around some op kinds: by model name, the kinds every swarm subset of that
 * model's programs holds (a subset without them makes a case the suite exists for impossible).
 */
function keeping(kinds: Readonly<Record<string, readonly string[]>>): (model: ActorModel) => readonly string[] {
  return (model) => own(kinds, model.name) ?? [];
}

/**
 * The cases `pinlab run`, the campaign and replay by --path draw from a suite: its arbitrary without fast-check's
 * bias (fc.noBias), which makes a share of the cases small - short programs, numbers near their bounds - on the
 * theory that small inputs find bugs first. Here most bugs need several ops in order (map, pin, unmap), and the bias
 * cost unmap-ignores-length 530 cases to its first failure against 330 without (20 seeds); every kind's own
 * generator already names its edge values (npage 0, the MSI window) outright.
 */
export function suiteCases(fc: typeof fcType, s: Suite, o: SuiteOptions): fcType.Arbitrary<Case> {
  return fc.noBias(s.arbitrary(fc, o));
}

/** The registry: `pinlab run --suite NAME`. */
export const SUITES: Record<string, Suite> = {};

function register(s: Suite): void {
  SUITES[s.name] = s;
}

register(
  agentSuite(
    'longterm-pin',
    'a process (user), a long-term pinner calling mm/gup.ts and the hotplug agent, on a mini machine with ZONE_MOVABLE and CMA',
    ['user-0', 'pinner-0', 'hotplug-0'],
    100,
  ),
);
register(
  agentSuite(
    'longterm-pin-4',
    'as longterm-pin with two pinners racing on the same process',
    ['user-0', 'pinner-0', 'pinner-1', 'hotplug-0'],
    100,
  ),
);

// one suite per registered device model: the device, the process and the hotplug agent
for (const model of Object.values(DEVICE_MODELS)) {
  register(
    agentSuite(
      `device:${model.name}`,
      `${model.summary} (${model.source}), with the process and the hotplug agent`,
      ['user-0', `${model.name}-0`, 'hotplug-0'],
      50,
    ),
  );
}

// two instances of one model on the same process (device2:<model>): their registrations race on the
// process's memlock counters, under a generated RLIMIT_MEMLOCK (Layout.memlock: 16K, 32K, 64K - the
// default before v5.16 - or today's 8M), so the limit is reachable on a mini machine; both instances'
// swarms keep the ops that charge (ActorModel.charges)
export const DEVICE2_MEMLOCK_PAGES = [4, 8, 16, 2048];
for (const model of Object.values(DEVICE_MODELS)) {
  const base = agentSuite(
    `device2:${model.name}`,
    `two ${model.name} instances on the same process under a generated RLIMIT_MEMLOCK, with the hotplug agent`,
    ['user-0', `${model.name}-0`, `${model.name}-1`, 'hotplug-0'],
    50,
  );
  register({
    ...base,
    campaignFirstShapeOnly: true,
    arbitrary: (fc, o) =>
      fc
        .tuple(base.arbitrary(fc, o), fc.constantFrom(...DEVICE2_MEMLOCK_PAGES))
        .map(([c, memlock]) => ({ ...c, layout: { ...c.layout, memlock } })),
  });
}

// R2 and R8 need states no op of longterm-pin makes (a THP split with its hole refilled before a pin;
// a CMA block held isolated across a pin): their ops get a suite of their own, so the other suites'
// seeds generate what they always did
/**
 * Anonymous pages fault into CMA only while free CMA exceeds half the zone's free pages (__rmqueue()'s
 * ALLOC_CMA balancing), which machineArb()'s CMA areas (a quarter of the kernel zone at most, behind
 * ZONE_MOVABLE) never reach: one case in two gets a machine whose CMA area is half of memory.
 */
export function cmaHeavyMachineArb(fc: typeof fcType): fcType.Arbitrary<Layout> {
  return fc.constantFrom('', ' transparent_hugepage=always').map((thp) => ({
    cmdline: `mem=1M cma=512K@512K sysctl.vm.min_free_kbytes=16${thp}`,
    geometry: 'mini',
    maps: MINI_LAYOUTS[0]!.maps,
  }));
}
const splitCma = agentSuite(
  'longterm-pin-split-cma',
  "as longterm-pin, with the user's refault op (MADV_DONTNEED and touch again, splitting THPs) and a cma agent holding CMA blocks isolated as cma_alloc() does",
  ['user-0', 'cma-0', 'pinner-0', 'hotplug-0'],
  100,
  { user: { ops: (fc) => userOpsRefault(fc, SHAPE), kinds: [...USER_OP_KINDS, 'refault'] } },
);
register({
  ...splitCma,
  campaignFirstShapeOnly: true,
  arbitrary: (fc, o) =>
    o.cmdline !== undefined || o.machines === 'fixed'
      ? splitCma.arbitrary(fc, o)
      : fc
          .tuple(splitCma.arbitrary(fc, o), fc.option(cmaHeavyMachineArb(fc), { freq: 2 }))
          .map(([c, heavy]) => (heavy ? { ...c, layout: heavy } : c)),
});

// MAP_HUGETLB and MAP_SHARED mappings, move_pages(2) and mprotect(): no other suite's user makes them
// (the campaign never entered them, docs/coverage.md); a suite of their own keeps every other suite's
// cases as they were
const move = agentSuite(
  'longterm-pin-move',
  "as longterm-pin, with the user's MAP_HUGETLB (the machine always has a hugetlb pool) and MAP_SHARED mappings, which the pinner pins long-term too, move_pages(2), mprotect() and mlock() racing the pinner, and a cma agent whose cma_alloc()s migrate out of CMA",
  ['user-0', 'pinner-0', 'hotplug-0', 'cma-0'],
  100,
  {
    user: { ops: (fc) => userOpsHugetlbMove(fc, SHAPE), kinds: USER_MOVE_OP_KINDS },
    // long-term pins of the user's hugetlb and shared mappings too (a VMM's hugetlbfs- or memfd-backed
    // guest memory): hugetlb folios in ZONE_MOVABLE or CMA migrate before they are pinned
    pinner: { ops: (fc) => pinnerOps(fc, SHAPE, 1, 0, 2), kinds: pinner.opKinds! },
    // whole cma_alloc()s: alloc_contig_range() migrating the user's folios, hugetlb ones included (R19)
    cma: { ops: cmaOpsAlloc, kinds: CMA_ALLOC_OP_KINDS },
  },
  // R17's two halves: the user's migrate_to_device() and the pinner's GUP-fast pin of that page
  keeping({ user: ['migrate_to_device'], pinner: ['pin'] }),
);
register({
  ...move,
  campaignFirstShapeOnly: true,
  arbitrary: (fc, o) =>
    move
      .arbitrary(fc, o)
      .map((c) =>
        // machineArb()'s pool (hugepages=2), on every random machine
        o.cmdline !== undefined || o.machines === 'fixed' || /hugepages=/.test(c.layout.cmdline)
          ? c
          : { ...c, layout: { ...c.layout, cmdline: `${c.layout.cmdline} ${withPool(c.layout.cmdline)}` } },
      )
      .chain((c) => fileMapArb(fc).map((file) => (file ? withFileMap(c, file) : c)))
      .chain((c) => deviceArb(fc, o).map((dev) => (dev ? withDeviceMemory(c) : c)))
      .chain((c) => cmaHeavyArb(fc, o).map((heavy) => (heavy ? onCmaHeavy(c, heavy) : c)))
      // one case in four under an RLIMIT_MEMLOCK the user's mlock and MAP_LOCKED reach (8 MiB, the
      // default, is more than a mini machine): do_mlock()'s -ENOMEM, count_mm_mlocked_page_nr()
      .chain((c) =>
        fc
          .oneof(
            { weight: 3, arbitrary: fc.constant(0) },
            { weight: 1, arbitrary: fc.constantFrom(...MOVE_MEMLOCK_PAGES) },
          )
          .map((memlock) => (memlock === 0 ? c : { ...c, layout: { ...c.layout, memlock } })),
      ),
});
/** longterm-pin-move's small RLIMIT_MEMLOCKs, in pages: half the shared mapping, all of it */
export const MOVE_MEMLOCK_PAGES = [4, 8];
/**
 * One random machine in four of longterm-pin-move is cmaHeavyMachineArb()'s, the rest of its choices
 * (the pool, device memory) kept: only there do the user's faults land in CMA, so that the cma agent's
 * cma_alloc() has pages to migrate (MR_CONTIG_RANGE), hugetlb folios of the pool among them (R19).
 */
function cmaHeavyArb(fc: typeof fcType, o: SuiteOptions): fcType.Arbitrary<Layout | null> {
  if (o.cmdline !== undefined || o.machines === 'fixed') return fc.constant(null);
  // one in four (fc.option's freq is the other way round: 1/freq of its values are null)
  return fc.oneof({ weight: 3, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: cmaHeavyMachineArb(fc) });
}
function onCmaHeavy(c: Case, heavy: Layout): Case {
  const keep = c.layout.cmdline.match(/ (pinlab\.device_coherent=\S+)/)?.[1];
  const cmdline = `${heavy.cmdline} ${withPool(heavy.cmdline)}${keep ? ` ${keep}` : ''}`;
  return { ...c, layout: { ...c.layout, cmdline, geometry: heavy.geometry } };
}
/**
 * Three random machines in four of longterm-pin-move have a device's coherent memory (memremap_pages() of
 * MEMORY_DEVICE_COHERENT, pinlab.device_coherent=) for the user's migrate_to_device: R17's pages. Without it
 * the op does nothing; at one in two, R17's median search over seeds 1-40 took 66.5 cases, at three in four 38.5.
 */
function deviceArb(fc: typeof fcType, o: SuiteOptions): fcType.Arbitrary<boolean> {
  if (o.cmdline !== undefined || o.machines === 'fixed') return fc.constant(false);
  return fc.oneof({ weight: 1, arbitrary: fc.constant(false) }, { weight: 3, arbitrary: fc.constant(true) });
}
function withDeviceMemory(c: Case): Case {
  return { ...c, layout: { ...c.layout, cmdline: `${c.layout.cmdline} pinlab.device_coherent=128K` } };
}

// R16 needs a THP freed to a per-CPU list that keeps it: pcp->high above a THP's 8 frames, and high_max
// is an eighth of the zone over the CPUs, so a 1M mini machine needs at most 3 of them - one per actor
// plus the harness's. A suite of its own (user and pinner) keeps every other suite's cases as they were.
/** One CPU per actor on a 1M mini machine whose CMA is most of memory (movable faults take CMA), THP always. */
export const THP_PCP_LAYOUT: Layout = {
  cmdline: 'mem=1M cma=640K@384K sysctl.vm.min_free_kbytes=16 transparent_hugepage=always',
  geometry: 'mini,cpus=3',
  maps: MINI_LAYOUTS[0]!.maps,
};
const thpPcp = agentSuite(
  'longterm-pin-thp-pcp',
  'a process and a long-term pinner on a 3-CPU mini machine, CMA most of memory and THP always: migrated CMA THPs pass through the per-CPU THP lists',
  ['user-0', 'pinner-0'],
  100,
);
register({
  ...thpPcp,
  campaignFirstShapeOnly: true,
  arbitrary: (fc, o) =>
    o.cmdline !== undefined || o.machines === 'fixed'
      ? thpPcp.arbitrary(fc, o)
      : thpPcp.arbitrary(fc, o).map((c) => ({ ...c, layout: THP_PCP_LAYOUT })),
});
/**
 * At a low weight, longterm-pin-move's 'ring' is a file on a filesystem with writeback, MAP_SHARED or
 * MAP_PRIVATE (MapSpec.file): the pinner and the user then meet page-cache folios, dirty tracking and
 * 6.5's refusal of R/W long-term pins of shared file mappings (docs/selftests.md).
 */
function fileMapArb(fc: typeof fcType): fcType.Arbitrary<'shared' | 'private' | undefined> {
  return fc.oneof(
    { weight: 16, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: fc.constant('shared' as const) },
    { weight: 1, arbitrary: fc.constant('private' as const) },
  );
}
function withFileMap(c: Case, file: 'shared' | 'private'): Case {
  return { ...c, layout: { ...c.layout, maps: c.layout.maps.map((x) => (x.name === 'ring' ? { ...x, file } : x)) } };
}
// madvise(MADV_HWPOISON) while the hotplug agent offlines (R20): a suite of its own, every other suite's
// cases stay as they were
const hwpoison = agentSuite(
  'longterm-pin-hwpoison',
  "as longterm-pin, with the user's madvise(MADV_HWPOISON) of a page (memory_failure(): unmapped to a hwpoison entry, or a THP it cannot split left mapped) and now and then madvise(MADV_SOFT_OFFLINE) while blocks go offline, on random machines that always have THP",
  ['user-0', 'pinner-0', 'hotplug-0'],
  100,
  {
    user: { ops: (fc) => userOpsHwpoison(fc, SHAPE), kinds: [...USER_OP_KINDS, 'hwpoison', 'soft_offline'] },
    // more short-term pins: a THP that memory_failure() cannot split while one holds it is R20's BUG
    pinner: { ops: (fc) => pinnerOps(fc, SHAPE, 4), kinds: pinner.opKinds! },
  },
  // R20's three parts: a poison, a pin that keeps memory_failure() from splitting the THP, an offline
  keeping({ user: ['hwpoison'], pinner: ['pin'], hotplug: ['offline'] }),
);
register({
  ...hwpoison,
  campaignFirstShapeOnly: true,
  arbitrary: (fc, o) =>
    hwpoison.arbitrary(fc, o).map((c) =>
      // a THP memory failure cannot split (a short-term pin holds it) is half of R20
      o.cmdline !== undefined || o.machines === 'fixed' || /transparent_hugepage=/.test(c.layout.cmdline)
        ? c
        : { ...c, layout: { ...c.layout, cmdline: `${c.layout.cmdline} transparent_hugepage=always` } },
    ),
});

// plain FOLL_GET references (get_user_pages(_fast)(), put_page()) and soft offline (madvise(MADV_SOFT_OFFLINE))
// racing long-term pins, THP splits and offlines: no other suite makes them; a suite of its own keeps every
// other suite's cases. Two hotplug agents: one waits on the device hotplug lock (mutex_lock()) that the
// other's offline_pages() holds across its preemption points, as two writers of memoryN/state do
const get = agentSuite(
  'longterm-pin-get',
  "as longterm-pin-4, the pinners also taking plain FOLL_GET references (get_user_pages(_fast)(), as KVM's hva_to_pfn() and access_process_vm() do) held across a preemption point: extra references that make migrations, THP splits and offlines fail and retry; the user's refault splits THPs and madvise(MADV_SOFT_OFFLINE) migrates a page away and poisons it; two hotplug agents, whose offlines and onlines the device hotplug lock serializes",
  ['user-0', 'pinner-0', 'pinner-1', 'hotplug-0', 'hotplug-1'],
  100,
  {
    user: { ops: (fc) => userOpsRefaultSoftOffline(fc, SHAPE), kinds: [...USER_OP_KINDS, 'refault', 'soft_offline'] },
    pinner: { ops: (fc) => pinnerOps(fc, SHAPE, 1, 4), kinds: [...pinner.opKinds!, 'get'] },
  },
);
register({ ...get, campaignFirstShapeOnly: true });

export const DEFAULT_SUITE = 'longterm-pin';

/** Register a suite (tests add their own). */
export function registerSuite(s: Suite): () => void {
  register(s);
  return () => {
    delete SUITES[s.name];
  };
}

// generated kernel command lines, no actors: each boots a sound layout (layout-sound) or is refused in one
// line. Registered last: the campaign's suite run i has seed N + i, so the other suites keep their cases
register({
  name: 'boot',
  summary:
    'generated kernel command lines, good and bad (mini machines and x86_64 ones with memmap=): each boots a machine whose zones, nodes, blocks, CMA and hugetlb pools agree, or is refused with one line naming the parameter',
  actors: [],
  properties: CORE_PROPERTIES,
  runs: 100,
  campaignFirstShapeOnly: true,
  arbitrary: (fc, o) =>
    o.cmdline !== undefined
      ? fc.constant({
          // the user's own command line: one the kernel refuses is bad input (exit 2), as in every suite
          layout: { cmdline: o.cmdline, geometry: o.geometry ?? 'mini', maps: [] },
          variant: o.variant,
          programs: {},
          schedule: [],
          faults: {},
        })
      : bootCaseArb(fc, o.variant),
});
