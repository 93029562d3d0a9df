// Mutation evidence: for each property, the kernel variants and device bugs that break it. The test
// suite (test/harness/mutation.spec.ts) runs each entry from a fixed seed through the real harness and
// checks the property fails, the shrunk case is small, and the fixed kernel (or the model without its
// bug) passes the same seed; `npm run bench -- mutation` measures time to first failure and shrunk size
// over 20 random seeds per entry; docs/properties.md has the table.
import { runSuite, RunConfig, RunSummary } from './runner';
import { SUITES } from './suites';
import type { Case } from './run_case';
import { opCount } from './shrink_ops';

export interface Mutation {
  /** kernel variant with the bug (device entries: the default kernel) */
  variant: string;
  /** the property it breaks */
  property: string;
  suite: string;
  /** device-model bug switches (device:<model> suites) */
  bugs?: string[];
  /** check only these properties (another one fails first otherwise) */
  only?: boolean;
  /** the same search without the bug: must pass */
  fixed: string;
  /** what the bug is, for the docs table */
  why: string;
  /** a seed the CI test uses */
  seed: number;
  /** cases the CI test allows the search */
  runs: number;
}

export const KERNEL_MUTATIONS: Mutation[] = [
  {
    variant: 'v5.12',
    property: 'no-longterm-pin-in-movable',
    suite: 'longterm-pin',
    only: true,
    fixed: 'v6.12',
    seed: 1,
    runs: 600,
    why: 'before the series: long-term pins stay in ZONE_MOVABLE',
  },
  {
    variant: 'v5.12',
    property: 'movable-offlinable',
    suite: 'longterm-pin',
    only: true,
    fixed: 'v6.12',
    seed: 7,
    runs: 600,
    why: 'a pin left in ZONE_MOVABLE keeps its block from going offline',
  },
  {
    variant: 'series-v1',
    property: 'no-longterm-pin-in-movable',
    suite: 'longterm-pin',
    only: true,
    fixed: 'v5.13',
    seed: 1,
    runs: 600,
    why: 'the series as posted: R4, an isolation failure with nothing listed counts as success and the page is pinned in place',
  },
  {
    variant: 'v5.13+R1+R5',
    property: 'no-livelock',
    suite: 'longterm-pin',
    only: true,
    fixed: 'v5.13+R1',
    seed: 1,
    runs: 600,
    why: 'R1 (targets keep __GFP_MOVABLE) needs R5 (scope only on the slow path) to land a target in ZONE_MOVABLE',
  },
  {
    variant: 'v5.13+R5',
    property: 'no-livelock',
    suite: 'longterm-pin',
    only: true,
    fixed: 'v5.13',
    seed: 1,
    runs: 600,
    why: "R5 alone: a THP's target gets GFP_TRANSHUGE (__GFP_MOVABLE) and the scope misses the fast path: back into ZONE_MOVABLE",
  },
  {
    variant: 'v5.13+R3',
    property: 'no-longterm-pin-in-movable',
    suite: 'longterm-pin-4',
    only: true,
    fixed: 'v5.13',
    seed: 1,
    runs: 1000,
    why: 'a page another holder pins cannot migrate; R3 pins it in place anyway',
  },
  {
    variant: 'v5.13+R4',
    property: 'no-longterm-pin-in-movable',
    suite: 'longterm-pin',
    only: true,
    fixed: 'v5.13',
    seed: 1,
    runs: 1000,
    why: 'an isolation failure (a per-CPU LRU batch) counted as success',
  },
  {
    variant: 'v5.13+R6',
    property: 'no-livelock',
    suite: 'longterm-pin',
    only: true,
    fixed: 'v5.13',
    seed: 1,
    runs: 600,
    why: 'ZERO_PAGE in ZONE_MOVABLE (KASLR) treated as unpinnable: it can never be isolated',
  },
  {
    variant: 'v5.13',
    property: 'dma-integrity',
    suite: 'longterm-pin',
    only: true,
    fixed: 'v6.12',
    seed: 1,
    runs: 1000,
    why: 'a R/O long-term pin of the zero page goes stale at the first write (COW) until 84209e87c696 (v6.1)',
  },
  {
    variant: 'v6.1',
    property: 'movable-offlinable',
    suite: 'longterm-pin',
    only: true,
    fixed: 'v6.1+-R10',
    seed: 1,
    runs: 600,
    why: 'R10: folios isolated and never put back',
  },
  {
    variant: 'v6.1',
    property: 'no-livelock',
    suite: 'longterm-pin',
    only: true,
    fixed: 'v6.1+-R10',
    seed: 7,
    runs: 600,
    why: 'R10: a leaked isolation makes every later pin of that page retry forever',
  },
  {
    variant: 'v6.1',
    property: 'lru-isolation-balanced',
    suite: 'longterm-pin',
    only: true,
    fixed: 'v6.1+-R10',
    seed: 3,
    runs: 600,
    why: 'R10: a folio isolated and never put back stays off the LRU while mapped',
  },
  {
    variant: 'v6.12+R9',
    property: 'errno-contract',
    suite: 'longterm-pin',
    only: true,
    fixed: 'v6.12',
    seed: 1,
    runs: 600,
    why: 'returns the pages requested, not the pages pinned',
  },
  {
    variant: 'v6.12+R12',
    property: 'no-longterm-pin-in-movable',
    suite: 'longterm-pin',
    only: true,
    fixed: 'v6.12',
    seed: 1,
    runs: 1000,
    why: 'an empty migration list counted as success',
  },
  {
    variant: 'v6.12+R14',
    property: 'errno-contract',
    suite: 'longterm-pin',
    only: true,
    fixed: 'v6.12',
    seed: 1,
    runs: 600,
    why: 'the pofs allocation fails: -ENOMEM with the pins still held',
  },
  {
    variant: 'v5.13+-R8+R2',
    property: 'no-longterm-pin-in-movable',
    suite: 'longterm-pin-split-cma',
    only: true,
    fixed: 'v5.13+-R8',
    seed: 1,
    runs: 600,
    why: 'R2: collect steps over the rest of a THP whose PMD was split and hole refilled, missing the small Movable pages',
  },
  {
    variant: 'v5.12',
    property: 'movable-offlinable',
    suite: 'longterm-pin-split-cma',
    only: true,
    fixed: 'v6.12',
    seed: 1,
    runs: 600,
    why: 'with the cma agent in the quiescence barrier: a pin held in ZONE_MOVABLE keeps its block from going offline',
  },
  {
    variant: 'series-v1',
    property: 'no-longterm-pin-in-movable',
    suite: 'longterm-pin-split-cma',
    only: true,
    fixed: 'v5.13+-R8',
    seed: 1,
    runs: 600,
    why: 'R8: is_migrate_movable(pageblock) is false for a CMA pageblock cma_alloc() holds MIGRATE_ISOLATE, so the page is pinned there',
  },
  {
    variant: 'v6.12+R8',
    property: 'no-longterm-pin-in-movable',
    suite: 'longterm-pin-split-cma',
    only: true,
    fixed: 'v6.12',
    seed: 9,
    runs: 1000,
    why: 'R8: a CMA pageblock held MIGRATE_ISOLATE by cma_alloc() counts as pinnable',
  },
  {
    variant: 'v6.12+R20',
    property: 'kernel-bug',
    suite: 'longterm-pin-hwpoison',
    only: true,
    fixed: 'v6.12',
    seed: 1,
    runs: 400,
    why: 'R20: offlining leaves a poisoned page mapped (no TTU_HWPOISON), and a PTE maps a frame of the offline block',
  },
  {
    variant: 'v6.12+R15',
    property: 'errno-contract',
    suite: 'longterm-pin',
    only: true,
    fixed: 'v6.12',
    seed: 2,
    runs: 600,
    why: 'R15: a slow-path long-term pin of a THP in ZONE_MOVABLE/CMA fails -EFAULT instead of migrating it',
  },
  {
    variant: 'v6.12+R16',
    property: 'no-livelock',
    suite: 'longterm-pin-thp-pcp',
    only: true,
    fixed: 'v6.12',
    seed: 4,
    runs: 600,
    why: "R16: one per-CPU THP list, so a migrated CMA THP's freed source becomes the next pin target: into CMA every round",
  },
  {
    variant: 'v6.12+R17',
    property: 'no-longterm-pin-in-movable',
    suite: 'longterm-pin-move',
    only: true,
    fixed: 'v6.12',
    seed: 8,
    runs: 700,
    why: "R17: folio_is_longterm_pinnable() without the device-coherent test: GUP-fast pins a device's coherent memory in place",
  },
  {
    variant: 'v6.12+R14',
    property: 'pins-balance',
    suite: 'longterm-pin',
    only: true,
    fixed: 'v6.12',
    seed: 1,
    runs: 600,
    why: 'the same leak seen at teardown',
  },
  {
    variant: 'v6.12+R14c',
    property: 'kernel-bug',
    suite: 'longterm-pin',
    only: true,
    fixed: 'v6.12',
    seed: 4,
    runs: 600,
    why: "R14c (R14's part c): a seeded migration failure sends the cleared entries to unpin_user_pages(): an oops",
  },
  {
    variant: 'v6.12+R22',
    property: 'layout-sound',
    suite: 'boot',
    fixed: 'v6.12',
    seed: 1,
    runs: 400,
    why: "R22: a node too small for its share of kernelcore keeps a zone_movable_pfn at or past its end (find_zone_movable_pfns_for_nodes() without out2's check)",
  },
];

/**
 * Device-model bugs (issue 7): one entry per bug switch of every model in devices/index.ts, each found
 * by `pinlab run --suite <suite> --bug <bug>` on the default kernel and passing without the switch
 * (test/harness/device_mutation.spec.ts; docs/adding-a-device.md says how a new model's bug gets here).
 */
export const DEVICE_MUTATIONS: Mutation[] = [
  {
    variant: 'v6.12',
    property: 'no-longterm-pin-in-movable',
    suite: 'device:vfio-type1',
    bugs: ['no-longterm'],
    only: true,
    fixed: 'v6.12',
    seed: 5,
    runs: 50,
    why: 'vaddr_get_pfns() without FOLL_LONGTERM: MAP_DMA pins stay in ZONE_MOVABLE/CMA',
  },
  {
    variant: 'v6.12',
    property: 'dma-integrity',
    suite: 'device:vfio-type1',
    bugs: ['dma-after-unmap'],
    fixed: 'v6.12',
    seed: 1,
    runs: 60,
    why: 'UNMAP_DMA without the IOTLB flush: a DMA through the stale translation writes a page no longer pinned',
  },
  {
    variant: 'v6.12',
    property: 'dma-integrity',
    suite: 'device:vfio-mdev',
    bugs: ['unmap-ignores-length'],
    fixed: 'v6.12',
    seed: 10,
    runs: 150,
    why: 'dma_unmap unpins only the first page: pins outlive UNMAP_DMA and type1 hits BUG_ON(++retries > 10)',
  },
  {
    variant: 'v6.12',
    property: 'dma-integrity',
    suite: 'device:vfio-mdev',
    bugs: ['callback-never-unpins'],
    fixed: 'v6.12',
    seed: 1,
    runs: 60,
    why: 'dma_unmap unpins nothing: UNMAP_DMA of a pinned IOVA hits BUG_ON(++retries > 10)',
  },
  {
    variant: 'v6.12',
    property: 'dma-integrity',
    suite: 'device:iommufd-access',
    bugs: ['callback-never-unpins'],
    fixed: 'v6.12',
    seed: 7,
    runs: 80,
    why: 'ops->unmap drops nothing: IOAS unmap of a pinned area WARNs after 100 tries and fails -EDEADLOCK',
  },
  {
    variant: 'v6.12',
    property: 'pins-balance',
    suite: 'device2:rdma-umem',
    bugs: ['check-then-add'],
    fixed: 'v6.12',
    seed: 2,
    runs: 120,
    why: 'the siw check-then-add: two registrations pass the RLIMIT_MEMLOCK check together and pinned_vm ends above it',
  },
  {
    variant: 'v6.12',
    property: 'dma-integrity',
    suite: 'device:rdma-umem',
    bugs: ['dereg-during-dma'],
    fixed: 'v6.12',
    seed: 3,
    runs: 80,
    why: 'dereg_mr unpins while a request is in flight: its completion DMAs into a page no longer pinned',
  },
  {
    variant: 'v6.12',
    property: 'dma-integrity',
    suite: 'device:rdma-odp',
    bugs: ['no-seq-retry'],
    fixed: 'v6.12',
    seed: 11,
    runs: 600,
    why: 'no mmu_interval_read_retry(): a pfn faulted while the range was invalidated is installed, stale',
  },
  {
    variant: 'v6.12',
    property: 'dma-integrity',
    suite: 'device:rdma-odp',
    bugs: ['invalidate-noop'],
    fixed: 'v6.12',
    seed: 6,
    runs: 50,
    why: 'the invalidate callback clears nothing: device entries outlive the zap or migration of their pages',
  },
  {
    variant: 'v6.12',
    property: 'no-longterm-pin-in-movable',
    suite: 'device:io_uring-fixed',
    bugs: ['no-longterm'],
    only: true,
    fixed: 'v6.12',
    seed: 2,
    runs: 50,
    why: 'io_pin_pages() without FOLL_LONGTERM: registered buffers stay in ZONE_MOVABLE/CMA',
  },
  {
    variant: 'v6.12',
    property: 'no-longterm-pin-in-movable',
    suite: 'device:example-pinbuf',
    bugs: ['no-longterm'],
    only: true,
    fixed: 'v6.12',
    seed: 3,
    runs: 50,
    why: 'pins without FOLL_LONGTERM: the buffer stays in ZONE_MOVABLE/CMA',
  },
];

export function mutationConfig(mu: Mutation, variant: string, seed: number, runs: number, bugs = mu.bugs): RunConfig {
  return {
    suite: SUITES[mu.suite]!,
    variant,
    seed,
    runs,
    mode: 'det',
    checkDeterminism: false,
    json: true,
    regressionsDir: null,
    tty: false,
    interrupt: { stopped: false },
    io: { out: () => undefined, err: () => undefined },
    timeoutMs: 10_000,
    properties: mu.only ? [mu.property] : undefined,
    bugs,
    guided: process.env.PINLAB_GUIDED === '1',
    // every entry's suite and models are pinlab's own: the workers load no plugin, as `pinlab run` without
    // PINLAB_PLUGINS (the benchmark's plugin, loaded in its process, would cost the compiled workers their bundle)
    plugins: [],
  };
}

/** A shrunk case's size: its ops, or the boot suite's (no actors) command-line arguments. */
export function caseOps(c: Case): number {
  if (!Object.keys(c.programs).length) return c.layout.cmdline.split(/\s+/).filter(Boolean).length;
  return opCount(c);
}

export interface MutationRun {
  summary: RunSummary;
  /** cases run and seconds spent until the first failing case (before shrinking) */
  firstCases: number;
  firstSeconds: number;
  /** operations in the shrunk counterexample, or -1 when nothing failed */
  ops: number;
}

/** Search one entry from a seed; reports time to the first failure and the shrunk size. */
export async function runMutation(mu: Mutation, seed: number, runs: number, now: () => number): Promise<MutationRun> {
  const cfg = mutationConfig(mu, mu.variant, seed, runs);
  const t0 = now();
  let firstSeconds = -1;
  let firstCases = -1;
  cfg.onFirstFailure = (cases) => {
    firstSeconds = (now() - t0) / 1000;
    firstCases = cases;
  };
  const summary = await runSuite(cfg);
  const f = summary.failures[0];
  return { summary, firstCases, firstSeconds, ops: f ? caseOps(f.case) : -1 };
}
