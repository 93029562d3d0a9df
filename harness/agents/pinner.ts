// pinner: a long-term pinner calling mm/gup.ts directly, as vfio_pin_pages_remote() and ib_umem_get()
// do without their accounting: pin_user_pages(_fast)(FOLL_LONGTERM [| FOLL_WRITE]) on the process, DMA
// through the frames captured at pin time, unpin dirty; or a short-term FOLL_PIN held across one
// preemption point, as O_DIRECT holds it for the I/O; or plain FOLL_GET references held for one access,
// as KVM's hva_to_pfn() and access_process_vm() take them.
import { hwpoisonEntryAt } from '../../mm/memory_failure';
import type * as fcType from 'fast-check';
import type { GenShape, OpResult } from '../../devices/device';
import type { Memmap } from '../../mm/memmap';
import type { Finding } from '../../properties/property';
import type { ActorOp, MapInfo } from '../types';
import { PG_lru, VMA_FLAGS } from '../../mm/memmap';
import { ptlLock, ptlUnlock, VM_READ, VM_WRITE, mmapReadLock, mmapReadUnlock } from '../../mm/mm_types';
import { current } from '../../mm/sched';
import { followPte, findVma } from '../../mm/memory';
import {
  pinUserPages,
  pinUserPagesFast,
  getUserPages,
  getUserPagesFast,
  releasePages,
  unpinUserPagesDirtyLock,
  newPinReport,
  FOLL_WRITE,
  FOLL_LONGTERM,
  PinReport,
} from '../../mm/gup';
import { EINVAL, EBUSY, EINTR, ENOMEM, EFAULT } from '../../mm/errno';
import { folioIsLongtermPinnable } from '../../mm/pinnable';
import { vmaNeedsDirtyTracking } from '../../mm/filemap';
import { releaseAtLeast, variant } from '../../mm/variants';
import { zoneName, ZONE_MOVABLE, MIGRATE_CMA, MIGRATE_ISOLATE } from '../../mm/mmzone';
import { dmaTargetViolation, deviceWrite, GUP_FAULT_POINTS } from '../../devices/common';
import { errnoContract } from '../../properties/errno_contract';
import {
  AgentEnv,
  AgentModel,
  AgentState,
  RANGE,
  SCRATCH_KINDS,
  rc,
  errOr,
  mapOf,
  num,
  range,
  failureReasons,
  scratchGen,
  scratchVpn,
} from './agent';

/** Pins the pinner holds at once (a pin beyond it fails with -EBUSY). */
export const PINNER_SLOTS_MAX = 8;

/** gen: the mapping's generation over the whole pin (even, unchanged), or -1 when an unmap raced with it */
interface Pin {
  map: number;
  vpn: number;
  pfns: number[];
  gen: number;
  write: boolean;
}

/** A long-term pin that ran out of its retry budget (outcome no-progress), to re-run on a quiescent copy. */
interface StuckPin {
  vpn: number;
  n: number;
  flags: number;
  fast: boolean;
}

/** The pages of a range that are not long-term pinnable, with what keeps them from migrating. */
function describeUnpinnable(m: Memmap, mm: number, vpn: number, n: number): string {
  const out: string[] = [];
  ptlLock(m, mm);
  try {
    for (let k = 0; k < n && out.length < 3; k++) {
      const t = followPte(m, mm, vpn + k);
      if (!t || t.pfn < 0) continue;
      const head = m.compoundHead(t.pfn);
      if (folioIsLongtermPinnable(m, head)) continue;
      const where = `pfn ${t.pfn} (${zoneName(m.pageZonenum(t.pfn))}, refcount ${m.refcount[head]})`;
      out.push(
        m.flags[head]! & PG_lru
          ? `${where} is on the LRU but is not migrated`
          : `${where} is off the LRU, so folio_isolate_lru() fails and it is never migrated; every round collects it again`,
      );
    }
  } finally {
    ptlUnlock(m, mm);
  }
  return out.join('; ') || 'every page is pinnable now';
}

/**
 * A pin whose pages migrated every round: where the last one went, and why that target is again not
 * long-term pinnable (folio_is_longterm_pinnable()), so the next round migrates it again.
 */
function describeMovedAgain(m: Memmap, report: PinReport): string | null {
  const mv = report.lastMoved;
  if (!report.migrated || !mv) return null;
  const at = (pfn: number): string => `pfn ${pfn} (${zoneName(m.pageZonenum(pfn))})`;
  const mt = m.getPageblockMigratetype(mv.dst);
  const why =
    m.pageZonenum(mv.dst) === ZONE_MOVABLE
      ? 'the migration target was allocated in ZONE_MOVABLE'
      : mt === MIGRATE_CMA
        ? 'the migration target was allocated in a CMA pageblock'
        : mt === MIGRATE_ISOLATE
          ? 'the migration target sits in an isolated pageblock'
          : folioIsLongtermPinnable(m, mv.dst)
            ? 'the re-pin found another unpinnable page'
            : 'the target is not long-term pinnable';
  return (
    `the pages moved ${report.migrated} times and every round found them unpinnable again: the last move took ` +
    `${at(mv.src)} to ${at(mv.dst)}, and ${why} (not long-term pinnable), so the next round migrates it again`
  );
}

function describePin(report: PinReport): string {
  return `${report.outcome}${report.migrated ? `, ${report.migrated} migrated` : ''}${report.retries ? `, ${report.retries} retries` : ''}`;
}

/**
 * A long-term pinner calling mm/gup.ts directly (the pattern of vfio_pin_pages_remote / ib_umem_get
 * without their accounting): pin, DMA through the frames captured at pin time, unpin dirty.
 * A DMA checks the pinning promise: the frame still carries a pin, and, unless the process unmapped
 * or replaced the range since (its generation word), the process still maps that very frame.
 */
/**
 * writable_file_mapping_allowed() refuses it (v6.5+): a long-term write pin of a shared mapping of a file
 * with writeback is -EFAULT (check_vma_flags()), not a bad address.
 */
function fileWriteRefused(m: Memmap, vb: number, flags: number): boolean {
  const lt = FOLL_WRITE | FOLL_LONGTERM;
  return (flags & lt) === lt && vmaNeedsDirtyTracking(m, vb) && releaseAtLeast(variant(), 6, 5);
}

class Pinner implements AgentState {
  private readonly pins: Pin[] = [];
  private readonly stuck: StuckPin[] = [];

  constructor(private readonly env: AgentEnv) {}

  step(op: ActorOp): OpResult {
    switch (op.op) {
      case 'pin':
        return this.pin(op);
      case 'unpin':
        return this.unpin(op);
      case 'dma':
        return this.dma(op);
      case 'get':
        return this.get(op);
      default:
        return rc(-EINVAL, `unknown op ${op.op}`);
    }
  }

  /** pin_user_pages(_fast)(): a long-term pin kept in a slot, or a short-term one held for one I/O. */
  private pin(op: ActorOp): OpResult {
    const { m, mm } = this.env;
    const mp = this.target(op);
    if (!mp) return rc(-EINVAL, `no mapping ${String(op.map)}`);
    if (this.pins.length >= PINNER_SLOTS_MAX) return rc(-EBUSY, 'all pin slots in use');
    const { vpn, n } = range(mp.map, op);
    const gen = this.env.mapGen(mp.i);
    const pages: number[] = new Array(n).fill(-1);
    const report = newPinReport();
    const fast = op.fast === true;
    const flags = (op.write === false ? 0 : FOLL_WRITE) | (op.longterm === false ? 0 : FOLL_LONGTERM);
    const gaveUp = current().gupFaultRetriesExhausted;
    const r = (fast ? pinUserPagesFast : pinUserPages)(m, mm, vpn, n, flags, pages, report);
    const how = describePin(report);
    const call = `${fast ? 'pin_user_pages_fast' : 'pin_user_pages'}(${flags & FOLL_LONGTERM ? 'FOLL_LONGTERM' : 'short-term'}${flags & FOLL_WRITE ? '|FOLL_WRITE' : ''}) vpn ${vpn} +${n}`;
    if (report.outcome === 'no-progress' && this.stuck.length < 4) this.stuck.push({ vpn, n, flags, fast });
    if (!(flags & FOLL_LONGTERM)) return this.shortTermIo(r, pages, flags, `${call}: `, how);
    const stable = gen % 2 === 0 && this.env.mapGen(mp.i) === gen; // no unmap of the mapping overlapped the pin
    const got = r > 0 ? pages.slice(0, r).filter((p) => p >= 0) : [];
    if (got.length)
      this.pins.push({ map: mp.i, vpn, pfns: got, gen: stable ? gen : -1, write: (flags & FOLL_WRITE) !== 0 });
    if (r > n || got.length < r) {
      // __gup_longterm_locked() returns the number of pages it pinned, never more (R9)
      return {
        rc: r,
        detail: `${call}: returned ${r} for ${n} requested, ${got.length} pages filled in (${how})`,
        property: errnoContract.name,
        violation: `pin_user_pages vpn ${vpn} +${n} returned ${r} but pinned ${got.length} pages: the caller would use ${r - got.length} pages it does not hold`,
      } as OpResult;
    }
    // (not when the walk gave up faulting a page in: pinlab's retry bound, docs/simplifications.md)
    if (r === -EFAULT && stable && current().gupFaultRetriesExhausted === gaveUp) {
      const bad = this.efaultViolation(mp.i, gen, vpn, n, flags, 'pin_user_pages');
      if (bad)
        return { rc: r, detail: `${call}: -EFAULT (${how})`, property: errnoContract.name, violation: bad } as OpResult;
    }
    const where =
      r > 0
        ? ` pfn ${pages
            .slice(0, r)
            .map((p) => `${p}(${zoneName(m.pageZonenum(p))})`)
            .join(',')}`
        : '';
    return rc(r, `${call}: ${errOr(r, `${r} pinned`)} (${how})${where}`);
  }

  /**
   * The mapping a pin names, with the index of its generation word: one of the case's, or with `of`,
   * the user's hugetlb or shared scratch mapping (mapped or not: a pin of nothing is -EFAULT), as a
   * VMM pins hugetlbfs- or memfd-backed guest memory.
   */
  private target(op: ActorOp): { map: MapInfo; i: number } | null {
    const of = SCRATCH_KINDS.find((k) => k === op.of);
    if (!of) return mapOf(this.env, op.map);
    const map = { name: of, vpn: scratchVpn(this.env, of), pages: this.env.m.ptrsPerTable };
    return { map, i: scratchGen(of) };
  }

  /**
   * get_user_pages(_fast)(): plain FOLL_GET references, as KVM's hva_to_pfn() and access_process_vm()
   * take them, held across one preemption point (the access), then dropped (release_pages()). Not a
   * pin: while held it is an extra reference that makes a racing migration, THP split or offline fail
   * and retry.
   */
  private get(op: ActorOp): OpResult {
    const { m } = this.env;
    const mp = mapOf(this.env, op.map);
    if (!mp) return rc(-EINVAL, `no mapping ${String(op.map)}`);
    const { vpn, n } = range(mp.map, op);
    const gen = this.env.mapGen(mp.i);
    const pages: number[] = new Array(n).fill(-1);
    const fast = op.fast === true;
    const flags = op.write === false ? 0 : FOLL_WRITE;
    const gaveUp = current().gupFaultRetriesExhausted;
    const r = (fast ? getUserPagesFast : getUserPages)(m, this.env.mm, vpn, n, flags, pages);
    const call = `${fast ? 'get_user_pages_fast' : 'get_user_pages'}(${flags & FOLL_WRITE ? 'FOLL_WRITE' : '0'}) vpn ${vpn} +${n}`;
    const got = r > 0 ? pages.slice(0, r).filter((p) => p >= 0).length : 0;
    if (r > n || got < r) {
      releasePages(m, pages, n);
      return {
        rc: r,
        detail: `${call}: returned ${r} for ${n} requested, ${got} pages filled in`,
        property: errnoContract.name,
        violation: `get_user_pages vpn ${vpn} +${n} returned ${r} but got ${got} pages: the caller would use ${r - got} pages it holds no reference on`,
      } as OpResult;
    }
    const stable = gen % 2 === 0 && this.env.mapGen(mp.i) === gen;
    if (r === -EFAULT && stable && current().gupFaultRetriesExhausted === gaveUp) {
      const bad = this.efaultViolation(mp.i, gen, vpn, n, flags, 'get_user_pages');
      if (bad) return { rc: r, detail: `${call}: -EFAULT`, property: errnoContract.name, violation: bad } as OpResult;
    }
    if (r <= 0) return rc(r, `${call}: ${errOr(r, 'nothing got')}`);
    this.env.yieldPoint('pinner:get-access');
    releasePages(m, pages, r);
    return rc(r, `${call}: ${r} got, accessed and put`);
  }

  /** A short-term pin (O_DIRECT): held across the I/O, one preemption point, then released dirty. */
  private shortTermIo(r: number, pages: number[], flags: number, call: string, how: string): OpResult {
    if (r <= 0) return rc(r, `${call}${errOr(r, 'nothing pinned')} (${how})`);
    this.env.yieldPoint('pinner:short-term-io');
    unpinUserPagesDirtyLock(this.env.m, pages, r, (flags & FOLL_WRITE) !== 0);
    return rc(r, `${call}${r} pinned for the I/O and released`);
  }

  /**
   * __get_user_pages(): -EFAULT for the first page means no VMA or check_vma_flags() refused it; an
   * anonymous R/W mapping nobody unmapped during the pin faults in (or migrates) instead (R15).
   */
  private efaultViolation(
    map: number,
    gen: number,
    vpn: number,
    n: number,
    flags: number,
    call: string,
  ): string | undefined {
    const { m, mm } = this.env;
    mmapReadLock(m, mm);
    const vb = findVma(m, mm, vpn);
    const ok =
      vb >= 0 &&
      (m.vmas[vb + VMA_FLAGS]! & (flags & FOLL_WRITE ? VM_WRITE : VM_READ)) !== 0 &&
      !fileWriteRefused(m, vb, flags);
    mmapReadUnlock(m, mm);
    // and still nobody unmapped or remapped it: the VMA read above is the one the pin saw
    if (!ok || this.env.mapGen(map) !== gen) return undefined;
    // a poisoned page: vm_fault_to_errno() makes VM_FAULT_HWPOISON -EFAULT without FOLL_HWPOISON
    if (hwpoisonEntryAt(m, mm, vpn)) return undefined;
    return `${call} vpn ${vpn} +${n} returned -EFAULT, but a VMA the pin may access maps vpn ${vpn} and nothing unmapped it during the pin: -EFAULT means a bad address`;
  }

  /** unpin_user_pages_dirty_lock() of one slot. */
  private unpin(op: ActorOp): OpResult {
    if (!this.pins.length) return rc(0, 'nothing pinned');
    const p = this.pins.splice(num(op, 'slot') % this.pins.length, 1)[0]!;
    return rc(this.release(p), `unpin_user_pages_dirty_lock vpn ${p.vpn} +${p.pfns.length}`);
  }

  /** A device DMA through a frame captured at pin time: a write, or a read through a read-only pin. */
  private dma(op: ActorOp): OpResult {
    const { m, mm } = this.env;
    if (!this.pins.length) return rc(0, 'nothing pinned');
    const p = this.pins[num(op, 'slot') % this.pins.length]!;
    const k = num(op, 'page') % p.pfns.length;
    const pfn = p.pfns[k]!;
    const vpn = p.vpn + k;
    let violation = dmaTargetViolation(m, pfn, `pinner DMA to vpn ${vpn}`);
    if (!violation && p.gen >= 0 && this.env.mapGen(p.map) === p.gen) {
      ptlLock(m, mm);
      const t = followPte(m, mm, vpn);
      ptlUnlock(m, mm);
      // a migration entry for our own frame is a migration that will fail (the pin holds a reference)
      if (t && t.pfn !== pfn && this.env.mapGen(p.map) === p.gen) {
        violation = `vpn ${vpn} is long-term pinned at pfn ${pfn}, but the process now maps pfn ${t.pfn}${t.migrating ? ' (a migration entry)' : ''}: the device DMAs where the process no longer looks`;
      }
    }
    if (!p.write)
      return {
        rc: 0,
        detail: `DMA read pfn ${pfn} (vpn ${vpn}) = ${Atomics.load(m.content, pfn)} (a read-only pin)`,
        violation,
      };
    deviceWrite(m, pfn, num(op, 'value'));
    return { rc: 0, detail: `DMA write pfn ${pfn} (vpn ${vpn}) = ${num(op, 'value')}`, violation };
  }

  private release(p: Pin): number {
    unpinUserPagesDirtyLock(this.env.m, p.pfns, p.pfns.length, p.write);
    return p.pfns.length;
  }

  inspect(): ReturnType<AgentState['inspect']> {
    const held = this.pins.flatMap((p) => p.pfns.map((pfn, k) => ({ iova: 0, vpn: p.vpn + k, pfn, longterm: true })));
    return { held, accounting: { pinned: this.pins.reduce((a, p) => a + p.pfns.length, 0) } };
  }

  teardown(): OpResult {
    let n = 0;
    while (this.pins.length) n += this.release(this.pins.pop()!);
    return rc(n, `${n} pages unpinned`);
  }

  recheckWork(): number {
    return this.stuck.length;
  }

  /** The pins that made no progress, again on a quiescent copy: still none is a livelock. */
  recheck(copyOf: () => Memmap): Finding[] {
    const { mm } = this.env;
    return this.stuck
      .map((s) => {
        const copy = copyOf();
        const pages: number[] = new Array(s.n).fill(-1);
        const report = newPinReport();
        const r = (s.fast ? pinUserPagesFast : pinUserPages)(copy, mm, s.vpn, s.n, s.flags, pages, report);
        if (report.outcome !== 'no-progress') return null;
        const moved = describeMovedAgain(copy, report);
        const why = report.failures.length
          ? failureReasons(copy, report.failures)
          : { text: moved ?? describeUnpinnable(copy, mm, s.vpn, s.n) };
        return {
          message:
            `pin_user_pages vpn ${s.vpn} +${s.n} made no progress (${report.retries} rounds, ${errOr(r, String(r))}) ` +
            `and still makes none with every other actor idle: ${why.text}`,
        };
      })
      .filter((x): x is Finding => x !== null);
  }
}

/**
 * The pinner's ops as generated; shortTerm: the weight of short-term pins (4 long-term pins weigh 4);
 * get: the weight of FOLL_GET references; scratch: the weight of long-term pins of the user's hugetlb
 * and shared mappings (none unless asked, so the other suites draw what they did).
 */
export function pinnerOps(
  fc: typeof fcType,
  shape: GenShape,
  shortTerm = 1,
  get = 0,
  scratch = 0,
): fcType.Arbitrary<ActorOp> {
  const map = fc.constantFrom(...shape.maps.map((x) => x.name));
  const range = { map, page: fc.nat(31), pages: fc.integer({ min: 1, max: 4 }), fast: fc.boolean() };
  const gets = get
    ? [{ weight: get, arbitrary: fc.record({ op: fc.constant('get'), ...range, write: fc.boolean() }) }]
    : [];
  const scratches = scratch
    ? [
        {
          weight: scratch,
          arbitrary: fc.record({
            op: fc.constant('pin'),
            ...range,
            write: fc.boolean(),
            of: fc.constantFrom(...SCRATCH_KINDS),
          }),
        },
      ]
    : [];
  return fc.oneof(
    ...gets,
    ...scratches,
    {
      weight: 4,
      arbitrary: fc.record(
        {
          op: fc.constant('pin'),
          map,
          page: fc.nat(31),
          pages: fc.integer({ min: 1, max: 4 }),
          fast: fc.boolean(),
          write: fc.constant(false),
        },
        { requiredKeys: ['op', 'map', 'page', 'pages', 'fast'] },
      ),
    }, // write: false = a read-only pin (the zero page, R6)
    // a short-term FOLL_PIN (O_DIRECT) held across one preemption point: another holder for R3
    {
      weight: shortTerm,
      arbitrary: fc.record({
        op: fc.constant('pin'),
        map,
        page: fc.nat(31),
        pages: fc.integer({ min: 1, max: 4 }),
        fast: fc.boolean(),
        longterm: fc.constant(false),
      }),
    },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('unpin'), slot: fc.nat(7) }) },
    {
      weight: 2,
      arbitrary: fc.record({ op: fc.constant('dma'), slot: fc.nat(7), page: fc.nat(7), value: fc.nat(0xffff) }),
    },
  ) as fcType.Arbitrary<ActorOp>;
}

export const pinner: AgentModel = {
  name: 'pinner',
  summary: 'a long-term pinner calling pin_user_pages(_fast)() directly, with DMA through what it pinned',
  source: 'mm/gup.c __gup_longterm_locked(), gup_fast_fallback(); unpin_user_pages_dirty_lock()',
  ops: {
    pin: { ...RANGE, fast: 'bool', write: 'bool', longterm: 'bool', of: ['map', ...SCRATCH_KINDS] },
    unpin: { slot: 'nat' },
    dma: { slot: 'nat', page: 'nat', value: 'nat' },
    get: { ...RANGE, fast: 'bool', write: 'bool' },
  },
  errnos: {
    // __gup_longterm_locked(): -EFAULT, -ENOMEM, -EINTR (fatal signal, or pinlab's retry budget);
    // -EBUSY: the agent's slots are full
    pin: [-EFAULT, -ENOMEM, -EINTR, -EBUSY],
    unpin: [],
    dma: [],
    // __get_user_pages(): -EFAULT, -ENOMEM, -EINTR (fatal signal)
    get: [-EFAULT, -ENOMEM, -EINTR],
  },
  faultPoints: GUP_FAULT_POINTS,
  programLength: 10,
  opKinds: ['pin', 'unpin', 'dma'],
  arbitrary: (fc, shape) => pinnerOps(fc, shape),
  create: (env) => new Pinner(env),
};
