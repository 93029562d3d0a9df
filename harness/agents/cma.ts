// cma: a cma_alloc() in progress. alloc_contig_range() holds its range MIGRATE_ISOLATE from
// start_isolate_page_range() until undo_isolate_page_range() while it migrates the pages out; here the
// window spans the agent's ops (isolate ... undo_isolate), so the other actors run inside it.
import type * as fcType from 'fast-check';
import type { OpResult } from '../../devices/device';
import type { ActorOp } from '../types';
import type { Memmap } from '../../mm/memmap';
import { blockPresent, stateShow, blockStartPfn } from '../../mm/memory_hotplug';
import { startIsolatePageRange, undoIsolatePageRange } from '../../mm/page_isolation';
import { allocContigRange, freeContigRange, ContigReport } from '../../mm/page_alloc_contig';
import { errname, EBUSY, EINVAL, ENOMEM } from '../../mm/errno';
import { ZONE_MOVABLE, MIGRATE_CMA } from '../../mm/mmzone';
import { AgentEnv, AgentModel, AgentState, rc, num } from './agent';
/** Isolations and allocations the cma agent holds at once (beyond it, -EBUSY). */
export const CMA_ISOLATIONS_MAX = 2;

/**
 * A cma_alloc() in progress: alloc_contig_range() holds the range MIGRATE_ISOLATE from
 * start_isolate_page_range() until undo_isolate_page_range() while it migrates the pages out, which
 * can take long; here the window spans the agent's ops (isolate ... undo_isolate), so other actors run
 * inside it. Only CMA memory blocks in the kernel zones (a block with a ZONE_MOVABLE page is excluded:
 * a pin there breaks no-longterm-pin-in-movable anyway, and an isolated pageblock there would no
 * longer look like CMA to movable-offlinable's exemption). The isolate window migrates nothing; the
 * alloc op (longterm-pin-move) is a whole alloc_contig_range(), migration included.
 */
/** CMA memory blocks in the kernel zones: the blocks the agent isolates. */
export function cmaBlocks(m: Memmap): number[] {
  const blocks: number[] = [];
  for (let b = 0; b < m.nrBlocks; b++) {
    if (!blockPresent(m, b)) continue;
    const start = blockStartPfn(m, b);
    let cma = true;
    for (let pfn = start; pfn < start + m.blockPages && cma; pfn += m.pageblockNrPages) {
      cma = m.getPageblockMigratetype(pfn) === MIGRATE_CMA && m.pageZonenum(pfn) !== ZONE_MOVABLE;
    }
    if (cma) blocks.push(b);
  }
  return blocks;
}

class CmaAllocation implements AgentState {
  /** CMA memory blocks in the kernel zones */
  private readonly blocks: number[];
  /** blocks this agent holds isolated, oldest first */
  private readonly held: number[] = [];
  /** blocks this agent allocated whole (alloc_contig_range() succeeded), oldest first */
  private readonly allocated: number[] = [];

  constructor(private readonly env: AgentEnv) {
    this.blocks = cmaBlocks(env.m);
  }

  step(op: ActorOp): OpResult {
    if (op.op === 'isolate') return this.isolate(op);
    if (op.op === 'undo_isolate') {
      if (!this.held.length) return rc(0, 'nothing isolated');
      const b = this.held.splice(num(op, 'slot') % this.held.length, 1)[0]!;
      this.undo(b);
      return rc(0, `memory${b} back to CMA`);
    }
    if (op.op === 'alloc') return this.alloc(op);
    if (op.op === 'release') {
      if (!this.allocated.length) return rc(0, 'nothing allocated');
      const b = this.allocated.splice(num(op, 'slot') % this.allocated.length, 1)[0]!;
      freeContigRange(this.env.m, blockStartPfn(this.env.m, b), this.env.m.blockPages);
      return rc(0, `memory${b} freed (cma_release())`);
    }
    return rc(-EINVAL, `unknown op ${op.op}`);
  }

  /** A CMA block neither held nor allocated, online, or why not. */
  private pick(op: ActorOp): { b: number } | OpResult {
    const { blocks, held, allocated } = this;
    if (!blocks.length) return rc(0, 'no CMA memory block in a kernel zone');
    const b = blocks[num(op, 'block') % blocks.length]!;
    const mine = held.includes(b) ? 'already isolated' : allocated.includes(b) ? 'already allocated' : '';
    if (mine || held.length + allocated.length >= CMA_ISOLATIONS_MAX)
      return rc(-EBUSY, `memory${b}: ${mine || 'isolations in use'}`);
    const state = stateShow(this.env.m, b);
    if (state !== 'online') return rc(-EBUSY, `memory${b} is ${state}`);
    return { b };
  }

  /**
   * cma_alloc() of a whole CMA block, done in one op: alloc_contig_range() isolates it, migrates what is
   * in use out (MR_CONTIG_RANGE), waits for deferred hugetlb frees in test_pages_isolated() (R19's fix)
   * and takes every page from the buddy; -EBUSY or -ENOMEM leave nothing allocated.
   */
  private alloc(op: ActorOp): OpResult {
    const { m } = this.env;
    const p = this.pick(op);
    if (!('b' in p)) return p;
    const start = blockStartPfn(m, p.b);
    const report: ContigReport = { busyPfn: -1, migrated: 0 };
    const r = allocContigRange(m, start, start + m.blockPages, MIGRATE_CMA, report);
    if (r) return rc(r, `memory${p.b}: ${report.migrated} migrated; ${errname(r)} at pfn ${report.busyPfn}`);
    this.allocated.push(p.b);
    return rc(0, `memory${p.b} (pfn ${start}-${start + m.blockPages - 1}) allocated; ${report.migrated} migrated`);
  }

  /** alloc_contig_range()'s start_isolate_page_range() over one CMA block. */
  private isolate(op: ActorOp): OpResult {
    const { m } = this.env;
    const p = this.pick(op);
    if (!('b' in p)) return p;
    const b = p.b;
    const start = blockStartPfn(m, b);
    const out = { pfn: -1 };
    const r = startIsolatePageRange(m, start, start + m.blockPages, MIGRATE_CMA, 0, out);
    if (r) return rc(r, `memory${b}: ${errname(r)} at pfn ${out.pfn}`);
    this.held.push(b);
    return rc(0, `memory${b} (pfn ${start}-${start + m.blockPages - 1}) CMA pageblocks isolated`);
  }

  /** undo_isolate_page_range(): the block's pageblocks back to MIGRATE_CMA. */
  private undo(b: number): void {
    const { m } = this.env;
    const start = blockStartPfn(m, b);
    undoIsolatePageRange(m, start, start + m.blockPages, MIGRATE_CMA);
  }

  inspect(): ReturnType<AgentState['inspect']> {
    return { held: [], accounting: { isolated: this.held.length } };
  }

  teardown(): OpResult {
    const n = this.held.length;
    while (this.held.length) this.undo(this.held.shift()!);
    const { m } = this.env;
    const freed = this.allocated.length;
    while (this.allocated.length) freeContigRange(m, blockStartPfn(m, this.allocated.shift()!), m.blockPages);
    return rc(n, `${n} blocks back to CMA${freed ? `, ${freed} freed` : ''}`);
  }
}

function cmaOps(fc: typeof fcType): fcType.Arbitrary<ActorOp> {
  return fc.oneof(
    { weight: 2, arbitrary: fc.record({ op: fc.constant('isolate'), block: fc.nat(7) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('undo_isolate'), slot: fc.nat(1) }) },
  ) as fcType.Arbitrary<ActorOp>;
}

/** cmaOps plus whole cma_alloc()s and their release (alloc_contig_range(): longterm-pin-move, R19's path). */
export function cmaOpsAlloc(fc: typeof fcType): fcType.Arbitrary<ActorOp> {
  return fc.oneof(
    { weight: 3, arbitrary: cmaOps(fc) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('alloc'), block: fc.nat(7) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('release'), slot: fc.nat(1) }) },
  ) as fcType.Arbitrary<ActorOp>;
}
/** The op kinds cmaOpsAlloc's swarm picks among. */
export const CMA_ALLOC_OP_KINDS = ['isolate', 'undo_isolate', 'alloc', 'release'];

export const cma: AgentModel = {
  name: 'cma',
  summary:
    'a cma_alloc() in progress: holds CMA memory blocks MIGRATE_ISOLATE across ops; in longterm-pin-move also whole cma_alloc()s and cma_release()s',
  source: 'mm/cma.c cma_alloc() -> alloc_contig_range(); mm/page_isolation.c',
  ops: { isolate: { block: 'nat' }, undo_isolate: { slot: 'nat' }, alloc: { block: 'nat' }, release: { slot: 'nat' } },
  errnos: {
    isolate: [-EBUSY], // alloc_contig_range() -> start_isolate_page_range(): an unmovable or already isolated pageblock
    undo_isolate: [],
    // alloc_contig_range(): isolation or test_pages_isolated() failed (-EBUSY), no migration target (-ENOMEM)
    alloc: [-EBUSY, -ENOMEM],
    release: [],
  },
  faultPoints: [],
  programLength: 3,
  opKinds: ['isolate', 'undo_isolate'],
  arbitrary: cmaOps,
  create: (env) => new CmaAllocation(env),
};
