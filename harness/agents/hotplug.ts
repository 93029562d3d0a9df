// hotplug: the memory hotplug admin, writing /sys/devices/system/memory/memoryN/state (offline,
// online[_kernel|_movable]) of the hot-pluggable blocks.
import type * as fcType from 'fast-check';
import type { OpResult } from '../../devices/device';
import type { Memmap } from '../../mm/memmap';
import type { Finding } from '../../properties/property';
import type { ActorOp } from '../types';
import { MB_STRIDE, MB_ZONE } from '../../mm/memmap';
import { stateStore, blockPresent, stateShow, OfflineReport } from '../../mm/memory_hotplug';
import { EINVAL, EBUSY, EINTR, ENOMEM, ENODEV, EHWPOISON } from '../../mm/errno';
import { zoneName, ZONE_MOVABLE } from '../../mm/mmzone';
import { AgentEnv, AgentModel, AgentState, rc, errOr, num, failureReasons, mapOf } from './agent';
import type { GenShape } from '../../devices/device';
import { pfnOf } from '../../mm/memory';

/**
 * The memory hotplug agent: writes memoryN/state of the hot-pluggable blocks - those in ZONE_MOVABLE
 * when the run starts (every block on a machine without one), taken modulo their number. Boot memory of
 * the kernel zones is left alone: on a miniature machine, offlining it leaves the kernel zones below
 * min_free_kbytes' 128K floor and every case ends in an OOM panic that says nothing about pinning
 * (docs/simplifications.md).
 */
/** The blocks the agent writes: ZONE_MOVABLE's at the start, or every present block on a machine without one. */
export function hotplugBlocks(m: Memmap): number[] {
  const all: number[] = [];
  for (let b = 0; b < m.nrBlocks; b++) if (blockPresent(m, b)) all.push(b);
  const movable = all.filter((b) => m.blocks[b * MB_STRIDE + MB_ZONE] === ZONE_MOVABLE);
  return movable.length ? movable : all;
}

class HotplugAgent implements AgentState {
  /** the blocks it writes: ZONE_MOVABLE's at the start, or every present block on a machine without one */
  private readonly present: number[];
  /** blocks whose offline ran out of its pass budget */
  private readonly stuck = new Set<number>();

  constructor(private readonly env: AgentEnv) {
    this.present = hotplugBlocks(env.m);
  }

  step(op: ActorOp): OpResult {
    const { m } = this.env;
    if (!this.present.length) return rc(-EINVAL, 'no memory blocks');
    const b = this.present[num(op, 'block') % this.present.length]!;
    if (op.op === 'offline') return this.offline(this.backing(op) ?? b);
    if (op.op === 'online') {
      const type = typeof op.type === 'string' ? op.type : 'online';
      const r = stateStore(m, b, type);
      return rc(r, `memory${b} ${type}: ${errOr(r, stateShow(m, b))}`);
    }
    return rc(-EINVAL, `unknown op ${op.op}`);
  }

  /**
   * With map and page: the block backing that page of the process now (its pfn from /proc/PID/pagemap,
   * over the block size), as an admin offlines the memory under a buffer; undefined when the page is not
   * mapped or its block is not one the agent writes.
   */
  private backing(op: ActorOp): number | undefined {
    const mp = op.map === undefined ? null : mapOf(this.env, op.map);
    if (!mp || this.env.procMm < 0) return undefined;
    const pfn = pfnOf(this.env.m, this.env.procMm, mp.map.vpn + (num(op, 'page') % mp.map.pages));
    const b = pfn < 0 ? -1 : Math.floor(pfn / this.env.m.blockPages);
    return this.present.includes(b) ? b : undefined;
  }

  /** state_store("offline"): offline_pages() with the run's pass budget. */
  private offline(b: number): OpResult {
    const { m } = this.env;
    const zone = m.blocks[b * MB_STRIDE + MB_ZONE]!;
    const report: OfflineReport = { reason: '', pfn: -1, passes: 0, failures: [] };
    const r = stateStore(m, b, 'offline', { passesMax: this.env.offlinePasses, report });
    if (r === -EINTR && /budget/.test(report.reason)) this.stuck.add(b);
    const why =
      r && report.reason
        ? ` (${report.reason}${report.pfn >= 0 ? ` at pfn ${report.pfn}` : ''}, ${report.passes} passes)`
        : '';
    return rc(r, `memory${b} (${zone >= 0 ? zoneName(zone) : 'no zone'}) offline: ${errOr(r, 'offline')}${why}`);
  }

  /** The offlines that ran out of budget, again on a quiescent copy with a bigger one: still stuck is a livelock. */
  recheck(copyOf: () => Memmap): Finding[] {
    const { offlinePasses } = this.env;
    const out: Finding[] = [];
    for (const b of this.stuck) {
      const copy = copyOf();
      if (stateShow(copy, b) !== 'online') continue;
      const report: OfflineReport = { reason: '', pfn: -1, passes: 0, failures: [] };
      const r = stateStore(copy, b, 'offline', { passesMax: offlinePasses * 4, report });
      if (r !== -EINTR) continue; // went offline, or failed for a reason it reports at once
      const why = failureReasons(copy, report.failures);
      if (why.legit) continue; // a pin or a full machine blocks it: offline_pages() would wait for the holder
      out.push({
        message:
          `memory${b} offline ran out of its ${offlinePasses}-pass budget and, with every other actor idle, ` +
          `still makes no progress in ${report.passes} passes: ${why.text}`,
      });
    }
    return out;
  }

  recheckWork(): number {
    return this.stuck.size;
  }

  inspect(): ReturnType<AgentState['inspect']> {
    return { held: [], accounting: {} };
  }

  teardown(): OpResult {
    return rc(0);
  }
}

function hotplugOps(fc: typeof fcType, shape: GenShape): fcType.Arbitrary<ActorOp> {
  const map = fc.constantFrom(...shape.maps.map((x) => x.name));
  return fc.oneof(
    { weight: 2, arbitrary: fc.record({ op: fc.constant('offline'), block: fc.nat(7) }) },
    {
      weight: 1,
      arbitrary: fc.record({ op: fc.constant('offline'), block: fc.nat(7), map, page: fc.nat(31) }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        op: fc.constant('online'),
        block: fc.nat(7),
        type: fc.constantFrom('online_movable', 'online', 'online_kernel'),
      }),
    },
  ) as fcType.Arbitrary<ActorOp>;
}

export const hotplug: AgentModel = {
  name: 'hotplug',
  summary: 'writes memoryN/state of the hot-pluggable blocks: offline, online, online_kernel, online_movable',
  source: 'drivers/base/memory.c state_store(); mm/memory_hotplug.c offline_pages(), online_pages()',
  ops: {
    offline: { block: 'nat', map: 'map?', page: 'nat' },
    online: { block: 'nat', type: ['online', 'online_kernel', 'online_movable'] },
  },
  errnos: {
    // memory_subsys_offline() -> offline_pages(): -EBUSY (unmovable, isolation), -EINTR (signal), -EINVAL, -ENOMEM
    offline: [-EBUSY, -EINTR, -EINVAL, -ENOMEM, -ENODEV],
    online: [-EINVAL, -EBUSY, -ENOMEM, -ENODEV, -EHWPOISON],
  },
  faultPoints: ['migrate:alloc-target', 'migrate:isolate', 'signal'],
  programLength: 4,
  opKinds: ['offline', 'online'],
  withoutProcess: true,
  arbitrary: hotplugOps,
  create: (env) => new HotplugAgent(env),
};
