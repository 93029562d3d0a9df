// The functions of mm/ and devices/ that are not on the default variant's paths (kernel v6.12, the
// campaign's generated machines, every actor in a worker thread), each with why: `npm run coverage`
// prints its figures twice, over all the code and over the rest, and lists the functions on the paths
// that the campaign never entered (docs/coverage.md). The list is checked against every run: a listed
// function the campaign entered, or one the coverage data does not have, is reported as stale.

export interface OffPath {
  /** the .ts file, relative to the repository */
  file: string;
  /** function names as V8 reports them (a class method by its own name) */
  functions: readonly string[];
  why: string;
}

const VARIANT = 'another kernel variant (`--kernel`) takes it; the campaign runs v6.12';
const UP =
  "UP mode: the main thread alone (single-threaded commands, benchmarks); the campaign's actors run in workers, always SMP";
const FAILURE = 'raised only by a broken kernel (a bug variant, a corrupted machine) or bad input';
const COMMAND = 'another command uses it (pinlab layout, /proc and /sys files, scenarios, reports)';
const TESTS = 'a hook or accessor for tests; no mm/ path calls it';
const SMP =
  "the losing side of a race between two CPUs inside one stretch without a preemption point: the campaign's " +
  'deterministic mode runs one actor at a time there; the free-mode soak enters it (docs/coverage.md)';

export const OFF_PATH: readonly OffPath[] = [
  { file: 'mm/gup.ts', functions: ['longtermV512', 'longtermV513', 'checkAndMigrateV513'], why: VARIANT },
  { file: 'mm/memory_hotplug.ts', functions: ['hwpoisonedFolioBeforeV614'], why: VARIANT },
  { file: 'devices/io_uring_fixed.ts', functions: ['fileBacked'], why: `${VARIANT} (io_pin_pages() up to 6.4)` },
  { file: 'mm/filemap.ts', functions: ['vmaIsFileNotShmem'], why: `${VARIANT} (io_pin_pages() up to 6.4)` },
  {
    file: 'mm/atomic.ts',
    functions: [
      'smpEnabled',
      'flagsRead',
      'upAtomicFetchAdd',
      'upAtomicFetchSub',
      'upAtomicFetchOr',
      'upAtomicFetchAnd',
      'upFlagsFetchAnd',
      'upFlagsFetchOr',
      'upAtomicCmpxchg',
      'upAtomicXchg',
      'upAtomicSet',
      'upFlagsCmpxchg',
    ],
    why: UP,
  },
  { file: 'mm/debug.ts', functions: ['KernelBug', 'KernelOops', 'bug'], why: FAILURE },
  { file: 'mm/variants.ts', functions: ['VariantError'], why: FAILURE },
  { file: 'mm/page_alloc.ts', functions: ['badFlags'], why: `${FAILURE} (bad_page())` },
  { file: 'mm/vmstat.ts', functions: ['procZoneinfo', 'procPagetypeinfo'], why: COMMAND },
  { file: 'mm/memory_hotplug.ts', functions: ['validZonesShow', 'removableShow', 'blockIsEarly'], why: COMMAND },
  { file: 'mm/e820.ts', functions: ['hex', 'typeName', 'e820PrintTable'], why: COMMAND },
  { file: 'mm/errno.ts', functions: ['errnoByName'], why: `${COMMAND}: scenario files name errnos` },
  {
    file: 'mm/huge_memory.ts',
    functions: ['holdTransientRef', 'transientRefsHeld', 'dropTransientRefs'],
    why: `${COMMAND}: a scenario's transient folio references`,
  },
  { file: 'mm/own.ts', functions: ['hasOwnKey'], why: `${COMMAND}: command-line flags` },
  {
    file: 'devices/vfio_container.ts',
    functions: ['getInfo'],
    why: `${COMMAND}: VFIO_IOMMU_GET_INFO, a scenario op (a query: not generated)`,
  },
  { file: 'mm/locking.ts', functions: ['setLockTraceHook'], why: TESTS },
  { file: 'mm/memory_hotplug.ts', functions: ['registerMemoryNotifier'], why: TESTS },
  {
    file: 'mm/page_alloc.ts',
    functions: ['decayPcpHigh'],
    why: `${TESTS}: vmstat_update()'s periodic pcp->high decay is not scheduled in pinlab`,
  },
  { file: 'mm/oom_kill.ts', functions: ['setOomVictimExitHook'], why: TESTS },
  { file: 'mm/memmap.ts', functions: ['pageNid', 'memmapBytes'], why: TESTS },
  { file: 'mm/page_alloc.ts', functions: ['zonePcpCount'], why: TESTS },
  { file: 'mm/pgtable.ts', functions: ['pgtableDepositedCount'], why: TESTS },
  { file: 'mm/slab.ts', functions: ['kbufPages'], why: TESTS },
  {
    file: 'mm/mmu_notifier.ts',
    functions: ['mmuNotifierNrSubscriptions', 'mmuNotifierSeq', 'mmuIntervalNotifiers'],
    why: TESTS,
  },
  { file: 'devices/index.ts', functions: ['deviceModel', 'errnoAllowed'], why: TESTS },
  // a page table another thread installed first (__pte_alloc()); a THP split losing its freeze or its
  // unmap to a reference taken after can_split_folio() (split_huge_page_to_list_to_order())
  { file: 'mm/memory.ts', functions: ['freeUnusedTable'], why: SMP },
  { file: 'mm/huge_memory.ts', functions: ['undo'], why: SMP },
  {
    file: 'mm/mmu_notifier.ts',
    functions: ['mmuNotifierInvalidateRangeStartNonblock'],
    why:
      "the OOM reaper's (__oom_reap_task_mm()): pinlab reaps a victim with exit_mmap(), whose ranges are blockable " +
      '(docs/simplifications.md); the unit specs of mmu_notifier and rdma-odp call it',
  },
  {
    file: 'mm/slab.ts',
    functions: ['vmalloc'],
    why:
      "kvmalloc()'s fallback for more than 8 KiB when kmalloc() fails: an io_uring registration of over 510 " +
      'pages (its bvec array); generated registrations span at most 4 pages an iovec (io_uring_fixed.spec takes it)',
  },
  // tsc's emit for `export { X }` of an import: getters no code calls through (every 'get' of the file)
  {
    file: 'mm/mmap.ts',
    functions: ['get'],
    why: "tsc's re-export getters (export { MADV_HWPOISON, MADV_SOFT_OFFLINE })",
  },
];

/** The off-path function names of a file. */
export function offPathFunctions(file: string, list: readonly OffPath[] = OFF_PATH): Set<string> {
  return new Set(list.filter((o) => o.file === file).flatMap((o) => o.functions));
}
