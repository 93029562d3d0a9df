// The simulated machine's memory map: struct page, pageblock flags, zones, per-CPU lists, memory blocks
// and vmstat, all as typed views over one SharedArrayBuffer (mm/mm_init.c memmap_init, mm/sparse.c).
// Any worker thread attaches to the same buffer with attachMachine() and sees the same machine.
//
// struct page is 22 bytes a frame, in six parallel arrays: flags, _refcount, _mapcount (16 bits; the
// rest are 32), mapping, index and content. As in the kernel, a free buddy page reuses mapping/index as
// its free-list links (page->buddy_list), and a large folio keeps its _pincount and _entire_mapcount in
// page[1] (struct folio overlays page[1]): here in page[1]'s mapping and index words (folioPincount(),
// pincountAt()).

import * as mmzoneNs from './mmzone';

// Numeric constants of leaf modules as module-level bindings: V8 reads an imported binding as a property
// of the other module's exports object at every use (again after every call, atomics included).
const { MAX_NR_ZONES, MIGRATE_TYPES, MIGRATE_PCPTYPES } = mmzoneNs;

/** Machine geometry. Real x86-64 values by default; miniature machines shrink every unit. */
export interface Geometry {
  /** pageblock_order: pageblock = 1 << order frames (x86-64: 9, 2 MiB) */
  pageblockOrder: number;
  /** MAX_PAGE_ORDER: buddy orders 0..maxOrder (x86-64: 10, 4 MiB) */
  maxOrder: number;
  /** memory block (sysfs memoryN) size in frames (x86-64 below 64 GiB: 32768, 128 MiB) */
  blockPages: number;
  /** end of ZONE_DMA in frames (x86-64: 16 MiB = 4096); 0 = no ZONE_DMA */
  dmaEndPfn: number;
  /** end of ZONE_DMA32 in frames (x86-64: 4 GiB); 0 = no ZONE_DMA32 */
  dma32EndPfn: number;
  /** physical start of the kernel image in frames (x86-64 CONFIG_PHYSICAL_START: 16 MiB) */
  kernelStartPfn: number;
  /**
   * frames memblock keeps for the kernel image on a geometry without an e820 map (a miniature one); on
   * x86_64 the measured Debian kernel decides (mm_init.ts KERNEL_FOOTPRINTS)
   */
  kernelImagePages: number;
  /** bytes of struct page the real kernel spends per frame (for memmap reservation): 64 */
  structPageBytes: number;
  /** number of CPUs (per-CPU lists and counters); actors run on distinct CPUs */
  nrCpus: number;
  /** hugepage_init() disables THP below this much boot memory (x86-64: 512 MiB) */
  thpMinPages: number;
}

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 4096;

export const X86_64: Geometry = {
  pageblockOrder: 9,
  maxOrder: 10,
  blockPages: 32768,
  dmaEndPfn: 4096,
  dma32EndPfn: 1 << 20,
  kernelStartPfn: 4096,
  kernelImagePages: 0, // KERNEL_FOOTPRINTS' imagePages
  structPageBytes: 64,
  nrCpus: 8,
  thpMinPages: 131072,
};

/** A miniature machine: 8-frame pageblocks, 32-frame memory blocks, orders 0..4, one kernel zone. */
export const MINI: Geometry = {
  pageblockOrder: 3,
  maxOrder: 4,
  blockPages: 32,
  dmaEndPfn: 0,
  dma32EndPfn: 0,
  kernelStartPfn: 0,
  kernelImagePages: 0,
  structPageBytes: 64,
  nrCpus: 8,
  thpMinPages: 0,
};

// ---- struct page flags (page->flags; page types folded in) ----
export const PG_locked = 1 << 0;
export const PG_lru = 1 << 1;
export const PG_head = 1 << 2;
const PG_tail = 1 << 3;
export const PG_reserved = 1 << 4;
export const PG_buddy = 1 << 5; // page type: free in the buddy allocator
export const PG_hugetlb = 1 << 6;
export const PG_anon = 1 << 7;
export const PG_swapbacked = 1 << 8;
export const PG_dirty = 1 << 9;
export const PG_isolated = 1 << 10; // isolated for migration (off the LRU on a private list)
export const PG_mlocked = 1 << 11;
export const PG_hwpoison = 1 << 12;
export const PG_offline = 1 << 13; // page type PG_offline
export const PG_pcp = 1 << 14; // on a per-CPU free list (the kernel knows this from page->pcp_list)
export const PG_movable_ops = 1 << 15; // __PageMovable: non-LRU movable (balloon, zsmalloc)
export const PG_hole = 1 << 16; // no RAM behind this pfn (memory hole / not present)
export const PG_zero = 1 << 17; // the shared zero page (is_zero_pfn)
// a surplus hugetlb folio made for migration (folio_test_hugetlb_temporary)
export const PG_hugetlb_temporary = 1 << 19;
export const PG_anon_exclusive = 1 << 18; // PageAnonExclusive: mapped by exactly one process, may be pinned
// PG_has_hwpoisoned (a large folio with a poisoned page; the kernel keeps it on the second page, pinlab on the head)
export const PG_has_hwpoisoned = 1 << 23;

const PG_ZONE_SHIFT = 20;
const PG_ZONEID_MASK = 7 << PG_ZONE_SHIFT;
// page_to_nid(): the node id sits in bits 29-30 (NODES_PGSHIFT); "the zone bits" that free and merge
// keep and compare are node and zone together, as the kernel's page_zone_id()
const PG_NID_SHIFT = 29;
const PG_NID_MASK = 3 << PG_NID_SHIFT;
const PG_ZONE_MASK = PG_ZONEID_MASK | PG_NID_MASK;
export const NO_ZONE = 7;
/** page_zone() of a frame without a zone (a zone handle of node 1 can be 7) */
export const NO_ZONE_HANDLE = -1;
const PG_ORDER_SHIFT = 24;
const PG_ORDER_MASK = 31 << PG_ORDER_SHIFT;

// ---- header slots (Int32) ----
export const H_MAGIC = 0;
const H_NR_FRAMES = 1;
const H_ZERO_PFN = 2;
export const H_HOTPLUG_LOCK = 3; // mem_hotplug_lock (sleeping lock word)
export const H_NEXT_ID = 4; // id allocator for processes, anon_vmas, ...
// sysctls and module parameters (runtime-writable in the kernel, so they live in the shared buffer)
export const H_MIN_FREE_KBYTES = 5; // vm.min_free_kbytes
export const H_USER_MIN_FREE_KBYTES = 6; // user_min_free_kbytes (-1 = not set by the user)
export const H_WATERMARK_SCALE_FACTOR = 7; // vm.watermark_scale_factor
export const H_ONLINE_POLICY = 8; // memory_hotplug.online_policy: 0 contig-zones, 1 auto-movable
export const H_AUTO_MOVABLE_RATIO = 9; // memory_hotplug.auto_movable_ratio (percent)
export const H_MOVABLE_NODE = 10; // movable_node
export const H_DEFAULT_ONLINE_TYPE = 11; // mhp_default_online_type (MMOP_*)
export const H_THP_ENABLED = 12; // transparent_hugepage: 0 never, 1 madvise, 2 always
export const H_BOOT_END_PFN = 13; // end of boot memory
export const H_ZONE_MOVABLE_PFN = 14; // zone_movable_pfn[0] (0 = none)
export const H_HOTPLUG_START_PFN = 15; // first hot-pluggable pfn
export const H_HOTPLUG_END_PFN = 16;
export const H_NR_CMA_AREAS = 17;
export const H_CMA_AREAS = 18; // [MAX_CMA_AREAS] x (base_pfn, count)
export const MAX_CMA_AREAS = 8;
export const H_HSTATES = H_CMA_AREAS + 2 * MAX_CMA_AREAS; // [HUGE_MAX_HSTATE] x HS_STRIDE
export const HUGE_MAX_HSTATE = 2;
export const HS_ORDER = 0;
export const HS_NR_HUGE_PAGES = 1;
export const HS_FREE_HUGE_PAGES = 2;
export const HS_FREE_LIST = 3; // head pfn of the free list (linked through mapping/index)
export const HS_LOCK = 4; // hugetlb_lock
export const HS_STRIDE = 5;
export const H_PTE_FREE = H_HSTATES + HUGE_MAX_HSTATE * HS_STRIDE; // free PTE table list head
export const H_PTE_LOCK = H_PTE_FREE + 1;
export const H_SHMEM_NEXT = H_PTE_FREE + 2; // bump pointer into shmemPages
export const H_ANON_VMA_NEXT = H_PTE_FREE + 3;
export const H_LRU_DISABLED = H_PTE_FREE + 4; // lru_cache_disable() depth
export const H_FORK_SEQ = H_PTE_FREE + 6; // odd while fork copies page tables (dup_mmap): see removeMigrationPtes()
export const H_MM_LIVE = H_PTE_FREE + 5; // bit per mm slot in use: where rmap walks stop (the anon_vma chain's role)
export const H_OOM_LOCK = H_PTE_FREE + 7; // oom_lock: one out_of_memory() at a time (mm/oom_kill.ts)
// hpage_freelist (mm/hugetlb.c): hugetlb folios whose free is deferred to free_hpage_work, head pfn + 1
// (0: empty), linked through mapping as the kernel's llist is
export const H_HPAGE_FREELIST = H_PTE_FREE + 8;
export const H_HUGETLB_VMEMMAP = H_PTE_FREE + 9; // hugetlb_free_vmemmap= (vmemmap_optimize_enabled)
const H_SLOTS = H_PTE_FREE + 10;
// ---- NUMA nodes (pg_data_t; Int32, the region `nodes`, last in the buffer so that no other region
// moves): [MAX_NUMNODES] x (node_start_pfn, node end pfn, zone_movable_pfn[nid]) ----
export const MAX_NUMNODES = 4;
export const ND_START = 0;
export const ND_END = 1;
export const ND_ZONE_MOVABLE_PFN = 2;
export const ND_STRIDE = 3;
const MAGIC = 0x70696e6c; // "pinl"

// ---- struct zone slots (Int32, one record per zone) ----
export const Z_LOCK = 0;
export const Z_START_PFN = 1;
export const Z_SPANNED = 2;
export const Z_PRESENT = 3;
export const Z_MANAGED = 4;
export const Z_CMA_PAGES = 5;
export const Z_NR_FREE = 6; // NR_FREE_PAGES (buddy only; pcp pages are not counted)
export const Z_NR_FREE_CMA = 7; // NR_FREE_CMA_PAGES
export const Z_WMARK_MIN = 8;
export const Z_WMARK_LOW = 9;
export const Z_WMARK_HIGH = 10;
export const Z_NR_RESERVED_HIGHATOMIC = 11;
export const Z_PRESENT_EARLY = 12; // present pages from boot memory
export const Z_LOWMEM_RESERVE = 13; // [MAX_NR_ZONES]
export const Z_NR_ISOLATE_PAGEBLOCK = Z_LOWMEM_RESERVE + MAX_NR_ZONES;
export const Z_PCP_DISABLED = Z_NR_ISOLATE_PAGEBLOCK + 1; // zone_pcp_disable() depth
export const Z_FLAGS = Z_PCP_DISABLED + 1; // zone->flags: ZONE_BELOW_HIGH
export const ZONE_BELOW_HIGH = 1;
const Z_FREE_AREA = Z_FLAGS + 1; // heads, counts, then tails, [order][migratetype]

// ---- struct per_cpu_pages slots (Int32, one record per cpu per zone) ----
export const PCP_LOCK = 0;
export const PCP_COUNT = 1;
export const PCP_HIGH = 2; // pcp->high: moves between high_min and high_max (6.7+)
export const PCP_BATCH = 3;
// lists[NR_PCP_LISTS] (pindex): order 0 per MIGRATE_PCPTYPES, then the THP (pageblock_order) lists
// (NR_PCP_THP: non-movable, movable; orders 1-3 are not cached)
export const NR_PCP_THP = 2;
export const NR_PCP_LISTS = MIGRATE_PCPTYPES + NR_PCP_THP;
export const PCP_LISTS = 4; // heads [NR_PCP_LISTS]
export const PCP_TAILS = PCP_LISTS + NR_PCP_LISTS; // tails [NR_PCP_LISTS]
export const PCP_HIGH_MIN = PCP_TAILS + NR_PCP_LISTS;
export const PCP_HIGH_MAX = PCP_HIGH_MIN + 1;
export const PCP_FREE_COUNT = PCP_HIGH_MAX + 1; // pages freed since the last allocation (halved by each)
export const PCP_ALLOC_FACTOR = PCP_FREE_COUNT + 1; // rmqueue_bulk() batch scale, halved by each free
const PCP_STRIDE = PCP_ALLOC_FACTOR + 1;
// Exported by name: memmap's own accessors (page_zonenum(), compound_head(), the free-area and per-CPU
// offsets) then read local bindings, not properties of this module's exports object, on every call.
export { PG_tail, PG_ZONE_SHIFT, PG_ZONE_MASK, PG_ORDER_SHIFT, PG_ORDER_MASK, H_ZERO_PFN, Z_FREE_AREA, PCP_STRIDE };

// ---- struct memory_block slots (Int32) ----
export const MB_STATE = 0; // MEM_ONLINE / MEM_GOING_OFFLINE / MEM_OFFLINE
export const MB_ZONE = 1; // zone index, -1 = none (offline, or spans zones)
export const MB_ONLINE_TYPE = 2; // MMOP_*
export const MB_PRESENT = 3; // 0 = no memory block device (a hole in the physical map)
export const MB_EARLY = 4; // 1 = boot memory, 0 = hot-added
export const MB_STRIDE = 5;
// include/linux/memory.h
export const MEM_ONLINE = 1 << 0;
export const MEM_GOING_OFFLINE = 1 << 1;
export const MEM_OFFLINE = 1 << 2;
export const MEM_GOING_ONLINE = 1 << 3;
export const MEM_CANCEL_ONLINE = 1 << 4;
export const MEM_CANCEL_OFFLINE = 1 << 5;

// ---- struct mm_struct slots (Int32, one record per address space; mm/mm_types.ts) ----
export const MM_USERS = 0; // mm_users; 0 = free slot
export const MM_LOCK = 1; // mmap_lock
export const MM_PTL = 2; // page_table_lock (split PTLs are not modelled)
export const MM_NR_VMAS = 3;
export const MM_LOCKED_VM = 4; // pages
export const MM_PINNED_VM = 5; // pages
export const MM_RSS_ANON = 6;
export const MM_RSS_FILE = 7;
export const MM_RSS_SHMEM = 8;
export const MM_PID = 9;
export const MM_OOM_SCORE_ADJ = 10;
export const MM_PGTABLES = 11; // PTE tables in use (nr_ptes)
export const MM_FLAGS = 12;
export const MM_RLIMIT_MEMLOCK = 13; // pages; -1 = RLIM_INFINITY
export const MM_CAP_IPC_LOCK = 14;
// user_struct->locked_vm of the process's user (io_uring, iommufd): pinlab gives each process its own user
export const MM_USER_LOCKED_VM = 15; // pages
// mm->pmd_huge_pte: the PTE tables deposited with this mm's anonymous THP PMDs (pgtable_trans_huge_deposit),
// a list linked through pteMeta[2 * t]; -1 = empty (mm/mm_types.ts)
export const MM_PMD_HUGE_PTE = 16;
export const MM_STRIDE = 17;
// ---- struct vm_area_struct slots ----
export const VMA_START = 0; // first vpn
export const VMA_END = 1; // vpn after the last
export const VMA_FLAGS = 2;
export const VMA_ANON_VMA = 3; // anon_vma root id, 0 = none yet
export const VMA_SHMEM = 4; // shmem object + 1, 0 = anonymous
export const VMA_PGOFF = 5; // file offset in pages of VMA_START
export const VMA_STRIDE = 6;
// ---- mmu interval notifier subscriptions (mm/mmu_notifier.ts): a global header, then one record per mm
// (struct mmu_notifier_subscriptions), each with MMU_NOTIFIER_SUBS_MAX subscription slots ----
export const MNG_NR_SUBS = 0; // live subscriptions machine-wide (the cheap "any notifier at all" test)
export const MNG_NEXT_ID = 1; // subscription id allocator
export const MNG_BLIND = 2; // invalidations running that found no subscriber (mmuNotifierBlindStart())
export const MNG_SLOTS = 4;
export const MN_LOCK = 0; // subscriptions->lock
export const MN_SEQ = 1; // invalidate_seq: odd while an invalidation holds the write side
export const MN_ACTIVE = 2; // active_invalidate_ranges
export const MN_HAS_ITREE = 3; // mm_has_notifiers(): set at the first insert
export const MN_PID = 4; // MM_PID of the mm the table belongs to (a reused mm slot starts afresh)
export const MN_NR_SLOTS = 5; // high-water mark of used subscription slots
export const MN_HDR = 8;
export const MNS_STATE = 0; // 0 free, 1 in the tree, 2 insert deferred, 3 remove deferred
export const MNS_START = 1; // first vpn
export const MNS_END = 2; // vpn after the last
export const MNS_SEQ = 3; // interval_sub->invalidate_seq
export const MNS_ID = 4; // machine-wide subscription id (MNG_NEXT_ID), never 0
export const MNS_OWNER = 5; // threadId of the registering thread (where its callback lives)
export const MNS_STRIDE = 6;
export const MMU_NOTIFIER_SUBS_MAX = 32;
export const MN_STRIDE = MN_HDR + MMU_NOTIFIER_SUBS_MAX * MNS_STRIDE;
// ---- shmem inode slots ----
export const SH_USERS = 0;
export const SH_SIZE = 1; // pages
export const SH_BASE = 2; // first slot in shmemPages
export const SH_FLAGS = 3; // AS_* of mm/filemap.ts: what kind of inode (shmem, or a file with writeback)
export const SH_STRIDE = 4;

/** Sizes that fix the SharedArrayBuffer's layout; passed to workers with the buffer. */
export interface MemmapShape {
  nrFrames: number;
  nrCpus: number;
  maxOrder: number;
  pageblockOrder: number;
  blockPages: number;
  nrVmItems: number;
  /** process memory (mm/mm_types.ts): address spaces, VMAs per mm, PMD entries per mm, PTE tables */
  maxMms: number;
  maxVmas: number;
  pmdOrder: number;
  vaPmds: number;
  pteTables: number;
  shmemObjects: number;
  shmemPages: number;
  lruBatch: number;
  /** NUMA nodes (numa=fake=N); absent = 1 */
  nrNodes?: number;
}

/**
 * Process-space sizes for a machine of nrFrames frames. The PTE tables can map every frame once over, plus
 * 8 tables per address space for sparse mappings and forks; each table in use also holds a frame, as
 * pte_alloc_one() takes one from the buddy allocator. Past the pool, pte_alloc() fails -ENOMEM where
 * the kernel would take another page (docs/simplifications.md).
 */
export function processShape(
  nrFrames: number,
  pmdOrder: number,
): Pick<
  MemmapShape,
  'maxMms' | 'maxVmas' | 'pmdOrder' | 'vaPmds' | 'pteTables' | 'shmemObjects' | 'shmemPages' | 'lruBatch'
> {
  const ptrs = 1 << pmdOrder;
  const maxMms = 16;
  const vaPages = Math.min(Math.max(2 * nrFrames, 64 * ptrs), 1 << 22);
  return {
    maxMms,
    maxVmas: 32,
    pmdOrder,
    vaPmds: Math.ceil(vaPages / ptrs),
    pteTables: Math.ceil(nrFrames / ptrs) + maxMms * 8,
    shmemObjects: 16,
    shmemPages: nrFrames,
    lruBatch: 31, // FOLIO_BATCH_SIZE
  };
}

interface Region {
  name: string;
  byteOffset: number;
  length: number;
  bytesPer: number;
}

function planLayout(s: MemmapShape): { regions: Record<string, Region>; byteLength: number } {
  const nrPageblocks = Math.ceil(s.nrFrames / (1 << s.pageblockOrder));
  const nrBlocks = Math.ceil(s.nrFrames / s.blockPages);
  const zoneStride = zoneStrideFor(s.maxOrder);
  const items: [string, number, number][] = [
    ['vmstat', s.nrCpus * s.nrVmItems, 8], // per-cpu counters, Float64 (exact to 2^53)
    ['header', H_SLOTS, 4],
    ['zones', (s.nrNodes ?? 1) * MAX_NR_ZONES * zoneStride, 4],
    ['pcp', s.nrCpus * (s.nrNodes ?? 1) * MAX_NR_ZONES * PCP_STRIDE, 4],
    ['blocks', nrBlocks * MB_STRIDE, 4],
    ['flags', s.nrFrames, 4],
    ['refcount', s.nrFrames, 4],
    ['mapcount', s.nrFrames, 2], // 16 bits: see mapcountFetchAdd() (mm/atomic.ts)
    ['mapping', s.nrFrames, 4],
    ['index', s.nrFrames, 4],
    ['content', s.nrFrames, 4],
    ['mms', s.maxMms * MM_STRIDE, 4],
    ['vmas', s.maxMms * s.maxVmas * VMA_STRIDE, 4],
    ['pmds', s.maxMms * s.vaPmds, 4],
    ['ptes', s.pteTables << s.pmdOrder, 4],
    ['pteMeta', s.pteTables * 2, 4],
    ['shmem', s.shmemObjects * SH_STRIDE, 4],
    ['shmemPages', s.shmemPages, 4],
    ['lru', s.nrCpus * (s.lruBatch + 2), 4],
    ['pageblock', nrPageblocks, 1],
    ['mmuNotifiers', MNG_SLOTS + s.maxMms * MN_STRIDE, 4],
    ['nodes', MAX_NUMNODES * ND_STRIDE, 4],
    ['mlock', s.nrCpus * (s.lruBatch + 2), 4], // mlock_fbatch: lock, count, entries per CPU
    ['warned', 1, 4], // a bit per mm/debug.ts MM_WARNINGS entry that fired on this machine (last: nothing moves)
    ['blockNrHwpoison', nrBlocks, 4], // memory_block->nr_hwpoison per block (after the others: nothing moves)
  ];
  const regions: Record<string, Region> = {};
  let off = 0;
  for (const [name, length, bytesPer] of items) {
    off = Math.ceil(off / 8) * 8;
    regions[name] = { name, byteOffset: off, length, bytesPer };
    off += length * bytesPer;
  }
  return { regions, byteLength: Math.ceil(off / 8) * 8 };
}

/** The bytes of a machine's SharedArrayBuffer: struct pages, page tables, shmem slots and the rest. */
export function memmapBytes(shape: MemmapShape): number {
  return planLayout(shape).byteLength;
}

function zoneStrideFor(maxOrder: number): number {
  return Z_FREE_AREA + 3 * (maxOrder + 1) * MIGRATE_TYPES;
}

/**
 * Typed views over the machine's SharedArrayBuffer. Holds no state of its own beyond the views and the
 * immutable shape, so two Memmap objects over one buffer (in two threads) are the same machine.
 */
export class Memmap {
  readonly sab: SharedArrayBuffer;
  readonly shape: MemmapShape;
  readonly nrFrames: number;
  readonly maxOrder: number;
  readonly pageblockOrder: number;
  readonly pageblockNrPages: number;
  readonly blockPages: number;
  readonly nrBlocks: number;
  readonly nrCpus: number;
  /** NUMA nodes; zone records are per node: zone handle = nid * MAX_NR_ZONES + zone index */
  readonly nrNodes: number;
  readonly nrZones: number;
  readonly zoneStride: number;
  readonly nrVmItems: number;
  readonly header: Int32Array;
  readonly zones: Int32Array;
  readonly pcp: Int32Array;
  readonly blocks: Int32Array;
  readonly flags: Uint32Array;
  readonly refcount: Int32Array;
  readonly mapcount: Int16Array;
  readonly mapping: Int32Array;
  readonly index: Int32Array;
  readonly content: Uint32Array;
  readonly pageblock: Uint8Array;
  readonly vmstat: Float64Array;
  readonly mms: Int32Array;
  readonly vmas: Int32Array;
  readonly pmds: Int32Array;
  readonly ptes: Int32Array;
  readonly pteMeta: Int32Array;
  readonly shmem: Int32Array;
  readonly shmemPages: Int32Array;
  readonly lru: Int32Array;
  readonly mmuNotifiers: Int32Array;
  /** pg_data_t per node: ND_* slots */
  readonly nodes: Int32Array;
  /** mm/debug.ts vmWarnOnOnceMm(): a bit per MM_WARNINGS entry that fired */
  readonly warned: Int32Array;
  /** memory_block->nr_hwpoison: the pages memory failure poisoned in each memory block (v6.2) */
  readonly blockNrHwpoison: Int32Array;
  readonly mlock: Int32Array;
  readonly maxMms: number;
  readonly maxVmas: number;
  readonly pmdOrder: number;
  readonly ptrsPerTable: number;
  readonly vaPmds: number;
  readonly pteTables: number;

  constructor(shape: MemmapShape, sab?: SharedArrayBuffer) {
    const { regions, byteLength } = planLayout(shape);
    this.shape = { ...shape };
    this.sab = sab ?? new SharedArrayBuffer(byteLength);
    if (this.sab.byteLength !== byteLength)
      throw new Error(`memmap: buffer is ${this.sab.byteLength} bytes, shape needs ${byteLength}`);
    if (shape.maxMms * shape.maxVmas > 0x7fff)
      throw new Error('memmap: a 16-bit _mapcount cannot count that many VMAs');
    this.nrFrames = shape.nrFrames;
    this.maxOrder = shape.maxOrder;
    this.pageblockOrder = shape.pageblockOrder;
    this.pageblockNrPages = 1 << shape.pageblockOrder;
    this.blockPages = shape.blockPages;
    this.nrBlocks = Math.ceil(shape.nrFrames / shape.blockPages);
    this.nrCpus = shape.nrCpus;
    this.nrNodes = shape.nrNodes ?? 1;
    this.nrZones = this.nrNodes * MAX_NR_ZONES;
    this.zoneStride = zoneStrideFor(shape.maxOrder);
    this.nrVmItems = shape.nrVmItems;
    const b = this.sab;
    const r = (n: string) => regions[n]!;
    this.vmstat = new Float64Array(b, r('vmstat').byteOffset, r('vmstat').length);
    this.header = new Int32Array(b, r('header').byteOffset, r('header').length);
    this.zones = new Int32Array(b, r('zones').byteOffset, r('zones').length);
    this.pcp = new Int32Array(b, r('pcp').byteOffset, r('pcp').length);
    this.blocks = new Int32Array(b, r('blocks').byteOffset, r('blocks').length);
    this.flags = new Uint32Array(b, r('flags').byteOffset, r('flags').length);
    this.refcount = new Int32Array(b, r('refcount').byteOffset, r('refcount').length);
    this.mapcount = new Int16Array(b, r('mapcount').byteOffset, r('mapcount').length);
    this.mapping = new Int32Array(b, r('mapping').byteOffset, r('mapping').length);
    this.index = new Int32Array(b, r('index').byteOffset, r('index').length);
    this.content = new Uint32Array(b, r('content').byteOffset, r('content').length);
    this.pageblock = new Uint8Array(b, r('pageblock').byteOffset, r('pageblock').length);
    this.mms = new Int32Array(b, r('mms').byteOffset, r('mms').length);
    this.vmas = new Int32Array(b, r('vmas').byteOffset, r('vmas').length);
    this.pmds = new Int32Array(b, r('pmds').byteOffset, r('pmds').length);
    this.ptes = new Int32Array(b, r('ptes').byteOffset, r('ptes').length);
    this.pteMeta = new Int32Array(b, r('pteMeta').byteOffset, r('pteMeta').length);
    this.shmem = new Int32Array(b, r('shmem').byteOffset, r('shmem').length);
    this.shmemPages = new Int32Array(b, r('shmemPages').byteOffset, r('shmemPages').length);
    this.lru = new Int32Array(b, r('lru').byteOffset, r('lru').length);
    this.mmuNotifiers = new Int32Array(b, r('mmuNotifiers').byteOffset, r('mmuNotifiers').length);
    this.nodes = new Int32Array(b, r('nodes').byteOffset, r('nodes').length);
    this.warned = new Int32Array(b, r('warned').byteOffset, r('warned').length);
    this.blockNrHwpoison = new Int32Array(b, r('blockNrHwpoison').byteOffset, r('blockNrHwpoison').length);
    this.mlock = new Int32Array(b, r('mlock').byteOffset, r('mlock').length);
    this.maxMms = shape.maxMms;
    this.maxVmas = shape.maxVmas;
    this.pmdOrder = shape.pmdOrder;
    this.ptrsPerTable = 1 << shape.pmdOrder;
    this.vaPmds = shape.vaPmds;
    this.pteTables = shape.pteTables;
    if (!sab) {
      this.header[H_MAGIC] = MAGIC;
      this.header[H_NR_FRAMES] = shape.nrFrames;
      this.header[H_ZERO_PFN] = -1;
    } else if (this.header[H_MAGIC] !== MAGIC || this.header[H_NR_FRAMES] !== shape.nrFrames) {
      throw new Error('memmap: buffer does not hold a machine of this shape');
    }
  }

  // ---- field accessors used across mm/ ----
  zoneBase(zid: number): number {
    return zid * this.zoneStride;
  }
  /** page_zonenum(); NO_ZONE for frames of offline memory. */
  pageZonenum(pfn: number): number {
    return (this.flags[pfn]! & PG_ZONEID_MASK) >>> PG_ZONE_SHIFT;
  }
  /** page_to_nid() */
  pageNid(pfn: number): number {
    return (this.flags[pfn]! & PG_NID_MASK) >>> PG_NID_SHIFT;
  }
  /**
   * page_zone(): the zone handle (nid * MAX_NR_ZONES + page_zonenum()) that indexes zone records; on one
   * node it is page_zonenum(). Frames without a zone give NO_ZONE_HANDLE.
   */
  pageZone(pfn: number): number {
    const f = this.flags[pfn]!;
    const z = (f & PG_ZONEID_MASK) >>> PG_ZONE_SHIFT;
    return z === NO_ZONE ? NO_ZONE_HANDLE : z + ((f & PG_NID_MASK) >>> PG_NID_SHIFT) * MAX_NR_ZONES;
  }
  /** buddy_order() for PG_buddy pages; folio_order() for PG_head pages. */
  pageOrder(pfn: number): number {
    return (this.flags[pfn]! & PG_ORDER_MASK) >>> PG_ORDER_SHIFT;
  }
  /** get_pfnblock_migratetype() */
  getPageblockMigratetype(pfn: number): number {
    return this.pageblock[pfn >>> this.pageblockOrder]!;
  }
  /** set_pageblock_migratetype() */
  setPageblockMigratetype(pfn: number, mt: number): void {
    this.pageblock[pfn >>> this.pageblockOrder] = mt;
  }
  /** compound_head(): folios are naturally aligned, so a tail finds its head from the order it carries. */
  compoundHead(pfn: number): number {
    const f = this.flags[pfn]!;
    if (!(f & PG_tail)) return pfn;
    const order = (f & PG_ORDER_MASK) >>> PG_ORDER_SHIFT;
    return pfn & ~((1 << order) - 1);
  }
  zeroPfn(): number {
    return this.header[H_ZERO_PFN]!;
  }
  blockIndex(pfn: number): number {
    return Math.floor(pfn / this.blockPages);
  }
}

/**
 * folio->_pincount: a large folio's exact pin count, which the kernel keeps in page[1]; here page[1]'s
 * mapping word (atomics on m.mapping at head + 1). 0 for a small folio, whose pins are in its refcount.
 */
export function folioPincount(m: Memmap, head: number): number {
  return m.flags[head]! & PG_head ? m.mapping[head + 1]! : 0;
}

/**
 * The _pincount word a frame had when every frame kept one: a large folio's _pincount at its head,
 * its _entire_mapcount at page[1] (index word), 0 anywhere else. For the pins-balance snapshot and
 * the machine digest, which compare frame by frame.
 */
export function pincountAt(m: Memmap, pfn: number): number {
  const f = m.flags[pfn]!;
  if (f & PG_head) return m.mapping[pfn + 1]!;
  if (f & PG_tail && m.flags[pfn - 1]! & PG_head) return m.index[pfn]!;
  return 0;
}

export function freeAreaHead(m: Memmap, zid: number, order: number, mt: number): number {
  return m.zoneBase(zid) + Z_FREE_AREA + order * MIGRATE_TYPES + mt;
}
export function freeAreaCount(m: Memmap, zid: number, order: number, mt: number): number {
  return m.zoneBase(zid) + Z_FREE_AREA + (m.maxOrder + 1) * MIGRATE_TYPES + order * MIGRATE_TYPES + mt;
}
/** The free list's last block (list_last_entry()): list_add_tail() and move_to_free_list() append there. */
export function freeAreaTail(m: Memmap, zid: number, order: number, mt: number): number {
  return m.zoneBase(zid) + Z_FREE_AREA + 2 * (m.maxOrder + 1) * MIGRATE_TYPES + order * MIGRATE_TYPES + mt;
}
export function pcpBase(m: Memmap, cpu: number, zid: number): number {
  // node 0's records where one node has them (a constant stride: the hot path), other nodes' after them
  if (zid < MAX_NR_ZONES) return (cpu * MAX_NR_ZONES + zid) * PCP_STRIDE;
  return (m.nrCpus * MAX_NR_ZONES + cpu * (m.nrZones - MAX_NR_ZONES) + zid - MAX_NR_ZONES) * PCP_STRIDE;
}

/** page->flags' node and zone bits for a zone handle (set_page_links()). */
export function zoneBits(zh: number): number {
  if (zh === NO_ZONE_HANDLE) return NO_ZONE << PG_ZONE_SHIFT;
  const nid = Math.floor(zh / MAX_NR_ZONES);
  return ((zh - nid * MAX_NR_ZONES) << PG_ZONE_SHIFT) | (nid << PG_NID_SHIFT);
}

/** The node's [start, end) pfns (node_start_pfn, pgdat_end_pfn()). */
export function nodeSpan(m: Memmap, nid: number): [number, number] {
  const o = nid * ND_STRIDE;
  return [m.nodes[o + ND_START]!, m.nodes[o + ND_END]!];
}

/** The node a pfn belongs to by the node spans (for memory without a zone yet: hot-added, offline). */
export function pfnToNid(m: Memmap, pfn: number): number {
  for (let nid = m.nrNodes - 1; nid > 0; nid--) if (pfn >= m.nodes[nid * ND_STRIDE + ND_START]!) return nid;
  return 0;
}
