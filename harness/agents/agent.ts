// What kernel agents share: the environment the harness gives them (the process's mappings and their
// generation words) and the helpers their ops use. An agent is an actor model like a device model
// (devices/device.ts ActorModel): its ops, their errnos and fields, the fault points they meet, its
// generator, whether it joins the quiescence barrier.
import type * as fcType from 'fast-check';
import type { ActorModel, DeviceEnv, DeviceState, OpResult, GenShape } from '../../devices/device';
import type { Memmap } from '../../mm/memmap';
import type { Finding } from '../../properties/property';
import type { ActorOp, MapInfo } from '../types';
import { errname } from '../../mm/errno';
import { folioMaybeDmaPinned } from '../../mm/rmap';
import { HWPOISONED_LARGE_SKIPPED } from '../../mm/memory_hotplug';
import { MAX_MAPS } from '../schedctl';

/**
 * What an agent gets besides the DeviceEnv: the process's mappings and their generation words, a
 * seqcount: odd while the user agent unmaps or replaces pages of the mapping, bumped again after.
 */
export interface AgentEnv extends DeviceEnv {
  maps: MapInfo[];
  mapGen(i: number): number;
  bumpMapGen(i: number): void;
  offlinePasses: number;
  /** the case's process (env.mm is -1 for an agent with none): /proc/PID/pagemap */
  procMm: number;
}

export interface AgentState extends DeviceState {
  /**
   * With every actor between ops (nothing in flight), re-run on a private copy of the machine what
   * ran out of its budget during the run: still no progress with nobody else running is a livelock.
   */
  recheck?(copy: () => Memmap): Finding[];
  /** how many re-checks recheck() has queued (0: nothing to run) */
  recheckWork?(): number;
}

export type AgentModel = ActorModel<AgentEnv, AgentState>;

/** The generator of an agent's ops, from the shape of the process's mappings. */
export type OpsArbitrary = (fc: typeof fcType, shape: GenShape) => fcType.Arbitrary<ActorOp>;

export function rc(r: number, detail?: string): OpResult {
  return detail === undefined ? { rc: r } : { rc: r, detail };
}

export function errOr(r: number, ok: string): string {
  return r < 0 ? errname(r) : ok;
}

export function mapOf(env: AgentEnv, name: unknown): { map: MapInfo; i: number } | null {
  const i = env.maps.findIndex((x) => x.name === name);
  return i < 0 ? null : { map: env.maps[i]!, i };
}

export function num(op: ActorOp, field: string, def = 0): number {
  const v = op[field];
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : def;
}

/** The user's extra mappings (longterm-pin-move): one huge page MAP_HUGETLB, one PMD's worth MAP_SHARED. */
export const SCRATCH_KINDS = ['hugetlb', 'shared'] as const;
export type ScratchKind = (typeof SCRATCH_KINDS)[number];

/**
 * Where the user maps its scratch mapping of a kind: PMD-aligned above the case's mappings (so no
 * remap meets it), the hugetlb one first, the shared one a PMD above. One PMD's worth of pages.
 */
export function scratchVpn(env: AgentEnv, kind: ScratchKind): number {
  const h = env.m.ptrsPerTable;
  const top = Math.ceil(Math.max(0, ...env.maps.map((x) => x.vpn + x.pages)) / h) * h;
  return kind === 'hugetlb' ? top : top + h;
}

/** The generation word of a scratch mapping: after the case's mappings' (harness/schedctl.ts MAPGEN_SLOTS). */
export function scratchGen(kind: ScratchKind): number {
  return MAX_MAPS + SCRATCH_KINDS.indexOf(kind);
}

/** Page range [vpn, vpn + n) inside the mapping: page and pages are taken modulo its size. */
export function range(map: MapInfo, op: ActorOp): { vpn: number; n: number } {
  const off = num(op, 'page') % map.pages;
  return { vpn: map.vpn + off, n: Math.max(1, Math.min(num(op, 'pages', 1), map.pages - off)) };
}

/** Run fn with mapping i's generation odd (an unmap, or a scratch mapping's mmap, in progress), then even again. */
export function unmapping<T>(env: AgentEnv, i: number, fn: () => T): T {
  env.bumpMapGen(i);
  try {
    return fn();
  } finally {
    env.bumpMapGen(i);
  }
}

/** The fields of a page range in an agent's op. */
export const RANGE = { map: 'map', page: 'nat', pages: 'nat' } as const;

/** Why a pin or migration could not finish; 'pinned' and 'no target memory' block it legitimately. */
export function failureReasons(m: Memmap, failures: { pfn: number; why: string }[]): { legit: boolean; text: string } {
  let legit = false;
  const parts: string[] = [];
  for (const f of failures.slice(0, 3)) {
    const pinned = f.pfn >= 0 && f.pfn < m.nrFrames && folioMaybeDmaPinned(m, m.compoundHead(f.pfn));
    // a pin, a full machine, or a THP memory failure could not split (6.12's do_migrate_range() skips it for good)
    if (pinned || /no target memory/.test(f.why) || f.why === HWPOISONED_LARGE_SKIPPED) legit = true;
    parts.push(`pfn ${f.pfn}: ${f.why}${pinned ? ' (DMA-pinned)' : ''}`);
  }
  return { legit, text: parts.join('; ') || 'no failure recorded' };
}
