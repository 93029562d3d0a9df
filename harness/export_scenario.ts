// A regression file's case as a scenario (`pinlab replay FILE --scenario OUT`), so a failure the
// property search found can be run step by step on a real kernel (`pinlab kernel OUT`). A scenario is
// sequential: the agents' ops become steps in the order they started in the deterministic replay; what
// interleaved inside an op (a preemption between a pin's collect and its migration) is not kept, and
// the steps say so. Device actors and DMA have no scenario form: an op of a device model is refused,
// a DMA becomes a comment.
import type { Case, CaseResult } from './run_case';
import type { ActorOp, MapInfo } from './types';
import { SCRATCH_KINDS, ScratchKind, num, range } from './agents/agent';
import { CaseError, checkSetup } from './run_case';
import { actorKind } from './actors';
import { hotplugBlocks } from './agents/hotplug';
import { cmaBlocks, CMA_ISOLATIONS_MAX } from './agents/cma';
import { K_OP } from './schedctl';
import { PAGE_SIZE } from '../mm/memmap';
import { deviceRange } from '../mm/memremap';

/** One scenario step (plain YAML flow mapping), or a comment line. */
type Line = Record<string, string | number | boolean> | string;

const PROC = 'user';

/** A YAML scalar: plain when it reads back as the same string, else JSON-quoted. */
function scalar(v: string | number | boolean): string {
  if (typeof v !== 'string') return String(v);
  return /^[A-Za-z_][A-Za-z0-9_+.:-]*$/.test(v) && !/^(true|false|null|yes|no|on|off)$/i.test(v)
    ? v
    : JSON.stringify(v);
}

function lineText(l: Line): string {
  if (typeof l === 'string') return `  # ${l}`;
  return `  - { ${Object.entries(l)
    .map(([k, v]) => `${k}: ${scalar(v)}`)
    .join(', ')} }`;
}

/** "buf", "buf+8K": page off of a mapping, as a scenario address. */
const addrOf = (map: string, off: number): string => (off ? `${map}+${(off * PAGE_SIZE) / 1024}K` : map);

/** What the export keeps between ops: names of pins, children and isolations, as the agents' slots hold them. */
class Exporter {
  readonly lines: Line[] = [];
  private readonly pins: string[] = [];
  private readonly children: string[] = [];
  private readonly isolated: { name: string; block: number }[] = [];
  private readonly allocated: { name: string; block: number }[] = [];
  /** isolate_range / alloc_contig_range steps written per block */
  private readonly tries = new Map<number, number>();
  private nPin = 0;
  private nChild = 0;
  private nRemap = 0;
  /** the user's scratch mappings now mapped (named after their kind) */
  private readonly scratch: Record<ScratchKind, boolean> = { hugetlb: false, shared: false };

  /** h: a scratch mapping's pages (one PMD's worth); deviceMemory: the machine has device-coherent memory */
  constructor(
    private readonly maps: MapInfo[],
    private readonly hotplug: number[],
    private readonly cma: number[],
    private readonly h: number,
    private readonly deviceMemory: boolean,
  ) {}

  /**
   * The page range of an op as the agents take it (range()): "buf+8K" and a length. Maps start at vpn 0
   * here. With `of` naming a scratch mapping: its range if mapped (the user falls back to the case's
   * mapping, the pinner's pin finds nothing: null).
   */
  private range(op: ActorOp, user = true): { addr: string; len: string; map: string; off: number; n: number } | null {
    const of = SCRATCH_KINDS.find((k) => k === op.of);
    const scratch = of && (this.scratch[of] || !user);
    if (scratch && !this.scratch[of]) return null;
    const map = scratch ? { name: of, vpn: 0, pages: this.h } : this.maps.find((x) => x.name === op.map);
    if (!map) return null;
    const { vpn: off, n } = range(map, op);
    return { addr: addrOf(map.name, off), len: `${n}p`, map: map.name, off, n };
  }

  /** The user's hugetlb or shared op (User.scratch()): mmap on first use, then one access; unmap: munmap. */
  private scratchOp(kind: ScratchKind, op: ActorOp, detail: string): void {
    const len = `${this.h}p`;
    if (op.unmap === true) {
      if (!this.scratch[kind]) return void this.lines.push(`${kind}: not mapped`);
      this.scratch[kind] = false;
      return void this.lines.push({ op: 'munmap', proc: PROC, addr: kind, len });
    }
    if (!this.scratch[kind]) {
      this.lines.push({ op: 'mmap', proc: PROC, as: kind, len, [kind]: true });
      // the mmap failed in the replay (User.scratch()'s detail): the access never ran
      if (detail.startsWith(`mmap(${kind})`)) return;
      this.scratch[kind] = true;
      // MAP_LOCKED: mlock_future_ok() and a populate, as mlock(2) of the new mapping does
      if (op.locked === true) this.lines.push({ op: 'mlock', proc: PROC, addr: kind, len });
    }
    const addr = addrOf(kind, num(op, 'page') % this.h);
    if (op.write === true) this.lines.push({ op: 'write', proc: PROC, addr, value: num(op, 'value') });
    else this.lines.push({ op: 'read', proc: PROC, addr });
  }

  /** detail: the op's result as the replay traced it */
  user(op: ActorOp, detail = ''): void {
    if (op.op === 'fork') {
      const child = `child${++this.nChild}`;
      this.children.push(child);
      this.lines.push({ op: 'fork', proc: PROC, child });
      return;
    }
    if (op.op === 'exit_child') {
      const child = this.children.shift();
      this.lines.push(child ? { op: 'exit', proc: child } : 'exit_child: no child');
      return;
    }
    const kind = SCRATCH_KINDS.find((k) => k === op.op);
    if (kind) return this.scratchOp(kind, op, detail);
    const r = this.range(op);
    if (!r) return void this.lines.push(`${op.op}: no mapping ${String(op.map)}`);
    const { addr, len } = r;
    switch (op.op) {
      case 'touch':
        if (op.write === true) this.lines.push({ op: 'write', proc: PROC, addr, value: num(op, 'value') });
        else this.lines.push({ op: 'read', proc: PROC, addr });
        return;
      case 'write':
        return void this.lines.push({ op: 'write', proc: PROC, addr, value: num(op, 'value') });
      case 'munmap':
        return void this.lines.push({ op: 'munmap', proc: PROC, addr, len });
      case 'dontneed':
        return void this.lines.push({ op: 'madvise', proc: PROC, addr, len, advice: 'dontneed' });
      case 'refault':
        this.lines.push({ op: 'madvise', proc: PROC, addr, len, advice: 'dontneed' });
        for (let k = 0; k < r.n; k++)
          this.lines.push({ op: 'write', proc: PROC, addr: addrOf(r.map, r.off + k), value: num(op, 'value') });
        return;
      case 'remap': {
        const pages = this.maps.find((x) => x.name === r.map)!.pages;
        this.lines.push({ op: 'munmap', proc: PROC, addr: r.map, len: `${pages}p` });
        this.lines.push({
          op: 'mmap',
          proc: PROC,
          as: `${r.map}_remap${++this.nRemap}`,
          addr: r.map,
          len: `${pages}p`,
        });
        return;
      }
      case 'move_pages':
        return void this.lines.push({ op: 'migrate', proc: PROC, addr, len, to: String(op.to ?? 'any') });
      case 'mprotect':
        return void this.lines.push({ op: 'mprotect', proc: PROC, addr, len, prot: op.write === true ? 'rw' : 'r' });
      case 'mlock':
        if (op.how === 'munlock') return void this.lines.push({ op: 'munlock', proc: PROC, addr, len });
        return void this.lines.push({ op: 'mlock', proc: PROC, addr, len, onfault: op.how === 'onfault' });
      case 'migrate_to_device':
        if (!this.deviceMemory) return void this.lines.push('migrate_to_device: no device-coherent memory');
        return void this.lines.push({ op: 'migrate_to_device', proc: PROC, addr, len });
      default:
        this.lines.push(`${op.op}: not a user op`);
    }
  }

  /** rc: what the op returned in the replay (a pin that pinned nothing holds no slot). */
  pinner(op: ActorOp, rc: number): void {
    if (op.op === 'unpin') {
      if (!this.pins.length) return void this.lines.push('unpin: nothing pinned');
      const name = this.pins.splice(num(op, 'slot') % this.pins.length, 1)[0]!;
      return void this.lines.push({ op: 'unpin', pin: name });
    }
    if (op.op === 'dma')
      return void this.lines.push(`pinner dma slot ${num(op, 'slot')} page ${num(op, 'page')}: no scenario form`);
    if (op.op !== 'pin') return void this.lines.push(`${op.op}: not a pinner op`);
    const r = this.range(op, false);
    if (!r) return void this.lines.push(`pin: no mapping ${String(op.of ?? op.map)}`);
    const name = `p${++this.nPin}`;
    const step: Line = { op: 'pin', proc: PROC, addr: r.addr, len: r.len, as: name, fast: op.fast === true };
    if (op.write === false) step.write = false;
    if (op.longterm === false) step.longterm = false;
    this.lines.push(step);
    // a short-term pin is released in the same op; a long-term one holds a slot when it pinned something
    if (op.longterm === false) this.lines.push({ op: 'unpin', pin: name, if_pinned: true });
    else if (rc > 0) this.pins.push(name);
  }

  hotplugOp(op: ActorOp): void {
    if (!this.hotplug.length) return void this.lines.push(`${op.op}: no memory blocks`);
    const block = this.hotplug[num(op, 'block') % this.hotplug.length]!;
    if (op.op === 'offline') return void this.lines.push({ op: 'offline', block });
    const type = typeof op.type === 'string' ? op.type : 'online';
    this.lines.push({ op: 'online', block, type });
  }

  /** The cma agent's op: its isolations and whole allocations each held in a slot list, as the agent holds them. */
  cmaOp(op: ActorOp, rc: number): void {
    const release = op.op === 'undo_isolate' || op.op === 'release';
    const held = op.op === 'undo_isolate' || op.op === 'isolate' ? this.isolated : this.allocated;
    if (release) {
      if (!held.length) return void this.lines.push(`${op.op}: nothing held`);
      const { name } = held.splice(num(op, 'slot') % held.length, 1)[0]!;
      return void this.lines.push({ op: op.op === 'release' ? 'free_contig_range' : 'undo_isolate', as: name });
    }
    if (!this.cma.length) return void this.lines.push(`${op.op}: no CMA memory block in a kernel zone`);
    const block = this.cma[num(op, 'block') % this.cma.length]!;
    // the agent's own refusal (CmaAllocation.pick()): no kernel call to write
    const mine = [...this.isolated, ...this.allocated];
    if (mine.some((x) => x.block === block) || mine.length >= CMA_ISOLATIONS_MAX)
      return void this.lines.push(`${op.op} memory${block}: the agent holds it or its slots are full (-EBUSY)`);
    // a fresh name for every try: the same block may be tried again while one name still holds it
    const k = (this.tries.get(block) ?? 0) + 1;
    this.tries.set(block, k);
    const name = k > 1 ? `cma${block}_${k}` : `cma${block}`;
    this.lines.push({ op: op.op === 'alloc' ? 'alloc_contig_range' : 'isolate_range', block, as: name });
    if (rc === 0) held.push({ name, block });
  }

  /** One op of one actor, as steps. */
  op(actor: string, op: ActorOp, rc: number, detail: string): void {
    const kind = actorKind(actor);
    if (kind === 'user') this.user(op, detail);
    else if (kind === 'pinner') this.pinner(op, rc);
    else if (kind === 'hotplug') this.hotplugOp(op);
    else if (kind === 'cma') this.cmaOp(op, rc);
    else throw new CaseError(`--scenario: ${actor} is a device model; device ops have no scenario form`);
  }
}

/** The case's ops in the order they started in its replay: [actor, op, rc, detail]. */
function opsInOrder(cs: Case, r: CaseResult): [string, ActorOp, number, string][] {
  if (r.ringLost) throw new CaseError('--scenario: the replay trace lost entries; the op order is not known');
  const out: [string, ActorOp, number, string][] = [];
  for (const e of r.ring) {
    if (e.kind !== K_OP) continue;
    const name = r.names[e.actor]!;
    const op = cs.programs[name]?.[e.arg];
    const rec = r.actors[e.actor]?.ops.find((o) => o.i === e.arg);
    if (op) out.push([name, op, rec?.rc ?? 0, rec?.detail ?? '']);
  }
  return out;
}

/** The case as scenario YAML. r: its deterministic replay (the op order and each op's result). */
export function caseToScenario(cs: Case, r: CaseResult, title: string): string {
  const booted = checkSetup(cs);
  if (!booted) throw new CaseError(`the kernel refuses the case's command line: no machine to write a scenario for`);
  const { m } = booted;
  const maps = cs.layout.maps.map((x) => ({ name: x.name, pages: x.pages, vpn: 0 }));
  const ex = new Exporter(maps, hotplugBlocks(m), cmaBlocks(m), m.ptrsPerTable, deviceRange(m).pages > 0);
  const spawn: Line = { op: 'spawn', proc: PROC };
  if (cs.layout.memlock !== undefined) spawn.memlock = cs.layout.memlock < 0 ? 'unlimited' : `${cs.layout.memlock}p`;
  const setup: Line[] = [spawn];
  for (const map of cs.layout.maps) {
    const len = `${map.pages}p`;
    if (!map.file) {
      setup.push({ op: 'mmap', proc: PROC, as: map.name, len, prot: 'rw' });
      continue;
    }
    // a file map (MapSpec.file): the file opened, mapped shared or private (docs/scenarios.md open_file)
    setup.push({ op: 'open_file', proc: PROC, kind: 'file', len, as: `${map.name}_fd` });
    const shared = map.file === 'shared';
    setup.push({ op: 'mmap', proc: PROC, as: map.name, len, prot: 'rw', fd: `${map.name}_fd`, shared });
  }
  for (const [actor, op, rc, detail] of opsInOrder(cs, r)) {
    ex.lines.push(`${actor}: ${op.op}`);
    ex.op(actor, op, rc, detail);
  }
  const faults = Object.entries(cs.faults).filter(([, f]) => Object.values(f).some((x) => x.length));
  const machine = `{ cmdline: ${JSON.stringify(cs.layout.cmdline)}${cs.layout.geometry ? `, geometry: ${scalar(cs.layout.geometry)}` : ''}, kernel: ${scalar(cs.variant)} }`;
  return [
    'description: >',
    `  ${title}, exported by pinlab replay --scenario: the agents' ops in the order they started in the`,
    '  deterministic replay, one step each. Preemptions inside an op are not kept.',
    ...(faults.length ? [`  Seeded faults (${faults.map(([a]) => a).join(', ')}) are not exported.`] : []),
    `machine: ${machine}`,
    'steps:',
    ...[...setup, ...ex.lines, { op: 'vmstat' }, { op: 'zones' }].map(lineText),
    '',
  ].join('\n');
}
