// cma: a cma_alloc() in progress. alloc_contig_range() holds its range MIGRATE_ISOLATE from
// start_isolate_page_range() until undo_isolate_page_range() while it migrates the pages out; here the
// window spans the agent's ops (isolate ... undo_isolate), so the other actors run inside it.
import type * as fcType from 'fast-check';
import type { OpResult } from '../../devices/device';
import type { ActorOp } from '../types';
import type { Memmap } from '../../mm/memmap';
import { blockPresent, stateShow, blockStartPfn } from '../../mm/memory_hotplug';
import { startIsolatePageRange, undoIsolatePageRange } from '../../mm/page_isolation';
import { errname, EBUSY, EINVAL } from '../../mm/errno';
import { ZONE_MOVABLE, MIGRATE_CMA } from '../../mm/mmzone';
import { AgentEnv, AgentModel, AgentState, rc, num } from './agent';
/** Isolations the cma agent holds at once (isolate beyond it fails with -EBUSY). */
export const CMA_ISOLATIONS_MAX = 2;

/**
 * A cma_alloc() in progress: alloc_contig_range() holds the range MIGRATE_ISOLATE from
 * start_isolate_page_range() until undo_isolate_page_range() while it migrates the pages out, which
 * can take long; here the window spans the agent's ops (isolate ... undo_isolate), so other actors run
 * inside it. Only CMA memory blocks in the kernel zones (a block with a ZONE_MOVABLE page is excluded:
 * a pin there breaks no-longterm-pin-in-movable anyway, and an isolated pageblock there would no
 * longer look like CMA to movable-offlinable's exemption). The migration itself is not modelled.
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
    return rc(-EINVAL, `unknown op ${op.op}`);
  }

  /** alloc_contig_range()'s start_isolate_page_range() over one CMA block. */
  private isolate(op: ActorOp): OpResult {
    const { m } = this.env;
    const { blocks, held } = this;
    if (!blocks.length) return rc(0, 'no CMA memory block in a kernel zone');
    const b = blocks[num(op, 'block') % blocks.length]!;
    if (held.includes(b) || held.length >= CMA_ISOLATIONS_MAX)
      return rc(-EBUSY, `memory${b}: ${held.includes(b) ? 'already isolated' : 'isolations in use'}`);
    if (stateShow(m, b) !== 'online') return rc(-EBUSY, `memory${b} is ${stateShow(m, b)}`);
    const start = blockStartPfn(m, b);
    const out = { pfn: -1 };
    const r = startIsolatePageRange(m, start, start + m.blockPages, MIGRATE_CMA, 0, out);
    if (r) return rc(r, `memory${b}: ${errname(r)} at pfn ${out.pfn}`);
    held.push(b);
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
    return rc(n, `${n} blocks back to CMA`);
  }
}

function cmaOps(fc: typeof fcType): fcType.Arbitrary<ActorOp> {
  return fc.oneof(
    { weight: 2, arbitrary: fc.record({ op: fc.constant('isolate'), block: fc.nat(7) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('undo_isolate'), slot: fc.nat(1) }) },
  ) as fcType.Arbitrary<ActorOp>;
}

export const cma: AgentModel = {
  name: 'cma',
  summary: 'a cma_alloc() in progress: holds CMA memory blocks MIGRATE_ISOLATE across ops',
  source: 'mm/cma.c cma_alloc() -> alloc_contig_range(); mm/page_isolation.c',
  ops: { isolate: { block: 'nat' }, undo_isolate: { slot: 'nat' } },
  errnos: {
    isolate: [-EBUSY], // alloc_contig_range() -> start_isolate_page_range(): an unmovable or already isolated pageblock
    undo_isolate: [],
  },
  faultPoints: [],
  programLength: 3,
  opKinds: ['isolate', 'undo_isolate'],
  arbitrary: cmaOps,
  create: (env) => new CmaAllocation(env),
};
