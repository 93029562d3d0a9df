// user: the process itself (a VMM or a verbs application): faults and writes its memory, munmap, remap
// and MADV_DONTNEED, fork and exit of children; refault (MADV_DONTNEED and touch again) in the
// longterm-pin-split-cma and longterm-pin-get suites only; MAP_HUGETLB and MAP_SHARED mappings, move_pages(2)
// and mprotect() in longterm-pin-move only; madvise(MADV_HWPOISON) in longterm-pin-hwpoison,
// madvise(MADV_SOFT_OFFLINE) in longterm-pin-get.
import type * as fcType from 'fast-check';
import type { GenShape, OpResult } from '../../devices/device';
import type { ActorOp, MapInfo } from '../types';
import { MM_USERS, MM_PID } from '../../mm/memmap';
import { mmBase } from '../../mm/mm_types';
import { atomicRead } from '../../mm/atomic';
import { getUser, putUser } from '../../mm/memory';
import {
  doMunmap,
  doMmap,
  doMadvise,
  doMprotect,
  dupMm,
  exitMmap,
  MADV_DONTNEED,
  PROT_READ,
  PROT_WRITE,
} from '../../mm/mmap';
import { migrateRange } from '../../mm/migrate';
import { errname, EINVAL, EAGAIN, ENOMEM, EFAULT, EEXIST, EPERM, EBUSY, EHWPOISON, EIO, EINTR } from '../../mm/errno';
import { MADV_HWPOISON, MADV_SOFT_OFFLINE } from '../../mm/memory_failure';
import { sysMlock, sysMlock2, sysMunlock, MLOCK_ONFAULT } from '../../mm/mlock';
import { deviceRange } from '../../mm/memremap';
import { migrateVmaToDevice } from '../../mm/migrate_device';
import {
  AgentEnv,
  AgentModel,
  AgentState,
  RANGE,
  SCRATCH_KINDS,
  ScratchKind,
  rc,
  errOr,
  mapOf,
  num,
  range,
  scratchGen,
  scratchVpn,
  unmapping,
} from './agent';

/** Children the user agent holds at once (a fork beyond it fails with -EAGAIN, as RLIMIT_NPROC would). */
export const USER_CHILDREN_MAX = 2;

/** A child the user forked: its mm slot and pid (the OOM killer may reap it, a later fork take its slot). */
interface Child {
  mm: number;
  pid: number;
}

/** move_pages(2) targets, as migrateRange() takes them (the scenario op `migrate`'s `to`). */
export const MOVE_TARGETS = ['kernel', 'movable', 'any'] as const;

/** The process itself (a VMM or a verbs application): its own memory operations. */
class UserProcess implements AgentState {
  private readonly children: Child[] = [];
  /** first vpn of the hugetlb and shared mappings the first 'hugetlb' / 'shared' op made; -1: none */
  private readonly scratchVpn: Record<ScratchKind, number> = { hugetlb: -1, shared: -1 };
  /** an mlock op ran: teardown munlocks the case's mappings */
  private mlocked = false;

  constructor(private readonly env: AgentEnv) {}

  step(op: ActorOp): OpResult {
    if (op.op === 'fork') return this.fork();
    if (op.op === 'exit_child') {
      const child = this.children.shift();
      return rc(0, child === undefined ? 'no child' : this.exitChild(child));
    }
    if (op.op === 'hugetlb' || op.op === 'shared') return this.scratch(op.op, op);
    const mp = mapOf(this.env, op.map);
    if (!mp) return rc(-EINVAL, `no mapping ${String(op.map)}`);
    const { vpn, n } = range(mp.map, op);
    switch (op.op) {
      case 'touch':
        return this.touch(vpn, op.write === true, num(op, 'value', vpn));
      case 'write': {
        const r = putUser(this.env.m, this.env.mm, vpn, num(op, 'value'));
        return rc(r < 0 ? r : 0, `vpn ${vpn} = ${errOr(r, String(r))}`);
      }
      case 'munmap': {
        const r = unmapping(this.env, mp.i, () => doMunmap(this.env.m, this.env.mm, vpn, n));
        return rc(r, `vpn ${vpn} +${n}: ${errOr(r, 'unmapped')}`);
      }
      case 'dontneed': {
        const r = unmapping(this.env, mp.i, () => doMadvise(this.env.m, this.env.mm, vpn, n, MADV_DONTNEED));
        return rc(r, `vpn ${vpn} +${n}: ${errOr(r, 'zapped')}`);
      }
      case 'refault':
        return this.refault(mp.i, vpn, n, op);
      case 'remap':
        return this.remap(mp.i, mp.map);
      case 'move_pages':
        return this.movePages(vpn, n, op);
      case 'mprotect':
        return this.mprotect(vpn, n, op);
      case 'mlock':
        return this.mlock(vpn, n, op);
      case 'migrate_to_device': {
        // a driver's migrate_vma_*() of the range into its device-coherent memory (R17's pages)
        if (!deviceRange(this.env.m).pages) return rc(0, 'no device-coherent memory');
        const r = migrateVmaToDevice(this.env.m, this.env.mm, vpn, n);
        return rc(0, `vpn ${vpn} +${n}: ${r.migrated} migrated to the device, ${r.failed} not`);
      }
      case 'hwpoison': {
        // madvise(MADV_HWPOISON) of one page: memory_failure() unmaps it (a hwpoison entry), or leaves a THP
        // it cannot split mapped with PG_has_hwpoisoned; not an unmap of the range the pinner watches
        const r = doMadvise(this.env.m, this.env.mm, vpn, 1, MADV_HWPOISON);
        return rc(r, `vpn ${vpn}: ${errOr(r, 'poisoned')}`);
      }
      case 'soft_offline': {
        // madvise(MADV_SOFT_OFFLINE) of one page: soft_offline_page() migrates it away (a THP split
        // first) and poisons the old frame; a page that will not migrate (pinned) stays: -EBUSY
        const r = doMadvise(this.env.m, this.env.mm, vpn, 1, MADV_SOFT_OFFLINE);
        return rc(r, `vpn ${vpn}: ${errOr(r, 'soft-offlined')}`);
      }
      default:
        return rc(-EINVAL, `unknown op ${op.op}`);
    }
  }

  /** fork(): dup_mm() of the process; -EAGAIN beyond USER_CHILDREN_MAX. */
  private fork(): OpResult {
    const { m, mm } = this.env;
    if (this.children.length >= USER_CHILDREN_MAX) return rc(-EAGAIN, 'too many children');
    const child = dupMm(m, mm);
    if (child >= 0) this.children.push({ mm: child, pid: m.mms[mmBase(child) + MM_PID]! });
    return rc(child < 0 ? child : 0, errOr(child, `child mm ${child}`));
  }

  /** A child's exit_mmap(), unless the OOM killer reaped it already. */
  private exitChild(c: Child): string {
    const { m } = this.env;
    const b = mmBase(c.mm);
    if (atomicRead(m.mms, b + MM_USERS) === 0 || m.mms[b + MM_PID] !== c.pid)
      return `child pid ${c.pid} was already reaped by the OOM killer`;
    exitMmap(m, c.mm);
    return `child mm ${c.mm} exited`;
  }

  /** A CPU access: get_user() or put_user(), faulting the page in (handle_mm_fault()). */
  private touch(vpn: number, write: boolean, value: number): OpResult {
    const { m, mm } = this.env;
    const r = write ? putUser(m, mm, vpn, value) : getUser(m, mm, vpn);
    return rc(r < 0 ? r : 0, `${write ? 'write' : 'read'} vpn ${vpn}: ${errOr(r, String(r))}`);
  }

  /**
   * MADV_DONTNEED then touch each page again (a balloon or allocator handing memory back and reusing
   * it): inside a THP, zap_pmd_range() splits the PMD and the hole refills with small pages.
   */
  private refault(map: number, vpn: number, n: number, op: ActorOp): OpResult {
    const { m, mm } = this.env;
    const r = unmapping(this.env, map, () => doMadvise(m, mm, vpn, n, MADV_DONTNEED));
    if (r < 0) return rc(r, `vpn ${vpn} +${n}: ${errname(r)}`);
    for (let k = 0; k < n; k++) {
      const t = putUser(m, mm, vpn + k, num(op, 'value', vpn + k));
      if (t < 0) return rc(t, `vpn ${vpn} +${n}: zapped, refault of vpn ${vpn + k}: ${errname(t)}`);
    }
    return rc(0, `vpn ${vpn} +${n}: zapped and faulted in again`);
  }

  /** munmap() of the whole mapping and mmap() at the same address: fresh, unfaulted memory. */
  private remap(i: number, map: MapInfo): OpResult {
    const { m, mm } = this.env;
    const r = unmapping(this.env, i, () => {
      const u = doMunmap(m, mm, map.vpn, map.pages);
      return u === 0 ? doMmap(m, mm, { nrPages: map.pages, vpn: map.vpn, prot: PROT_READ | PROT_WRITE }) : u;
    });
    return rc(r < 0 ? r : 0, `${map.name} at vpn ${map.vpn}: ${errOr(r, 'mapped afresh')}`);
  }

  /**
   * An extra mapping of one PMD's worth of pages above the case's mappings (so no remap meets it):
   * MAP_HUGETLB (one huge page: hugetlb_fault() takes a folio from the pool, or copies after fork) or
   * MAP_SHARED anonymous (shmem: shmem_zero_setup(), shmem_fault()), MAP_LOCKED when asked (mlock
   * accounting, populated at mmap). The first op maps it, then each op is a CPU access of one of its
   * pages; with unmap, munmap() of it.
   */
  private scratch(kind: ScratchKind, op: ActorOp): OpResult {
    const { m, mm } = this.env;
    const h = m.ptrsPerTable;
    const at = this.scratchVpn[kind];
    if (op.unmap === true) {
      if (at < 0) return rc(0, `no ${kind} mapping`);
      // the pinner may hold pins of it (its generation word tells the pinner's DMA check)
      const r = unmapping(this.env, scratchGen(kind), () => doMunmap(m, mm, at, h));
      if (r === 0) this.scratchVpn[kind] = -1;
      return rc(r, `${kind} at vpn ${at}: ${errOr(r, 'unmapped')}`);
    }
    if (at < 0) {
      const vpn = scratchVpn(this.env, kind);
      const prot = PROT_READ | PROT_WRITE;
      // the mapping appears: its generation word moves too, or a pin that found nothing there a moment
      // ago would look like an -EFAULT with the VMA in place (free mode)
      const v = unmapping(this.env, scratchGen(kind), () =>
        kind === 'hugetlb'
          ? doMmap(m, mm, { nrPages: h, vpn, prot, hugetlb: true })
          : doMmap(m, mm, { nrPages: h, vpn, prot, shared: true, locked: op.locked === true }),
      );
      if (v < 0) return rc(v, `mmap(${kind}) of ${h} pages: ${errname(v)}`);
      this.scratchVpn[kind] = v;
    }
    const vpn = this.scratchVpn[kind] + (num(op, 'page') % h);
    return this.touch(vpn, op.write === true, num(op, 'value', vpn));
  }

  /**
   * move_pages(2) of a range (do_move_pages_to_node(), migrateRange()): of the case's mapping, or of
   * the hugetlb or shared mapping if there is one; to the kernel zones, ZONE_MOVABLE or anywhere.
   */
  private movePages(vpn: number, n: number, op: ActorOp): OpResult {
    const { m, mm } = this.env;
    const to = MOVE_TARGETS.find((t) => t === op.to) ?? 'any';
    ({ vpn, n } = this.ofScratch(vpn, n, op));
    const r = migrateRange(m, mm, vpn, n, to);
    return rc(r.rc, `vpn ${vpn} +${n} to ${to}: ${errOr(r.rc, `${r.migrated} migrated, ${r.failed} failed`)}`);
  }

  /** The range op.of names: the hugetlb or shared mapping if there is one, else the case's mapping's. */
  private ofScratch(vpn: number, n: number, op: ActorOp): { vpn: number; n: number } {
    const of = SCRATCH_KINDS.find((k) => k === op.of);
    if (of === undefined || this.scratchVpn[of] < 0) return { vpn, n };
    return range({ name: of, vpn: this.scratchVpn[of], pages: this.env.m.ptrsPerTable }, op);
  }

  /**
   * mlock(2), mlock2(MLOCK_ONFAULT) or munlock(2) of a range (do_mlock(), apply_vma_lock_flags()): of the
   * case's mapping or the shared one. mlock2(MLOCK_ONFAULT) over faulted shmem pages puts them in the
   * per-CPU mlock batch with PG_lru still set (mlock_folio()), the state R13's collect missed.
   */
  private mlock(vpn: number, n: number, op: ActorOp): OpResult {
    const { m, mm } = this.env;
    ({ vpn, n } = this.ofScratch(vpn, n, op));
    const how = MLOCK_HOWS.find((x) => x === op.how) ?? 'mlock';
    this.mlocked ||= how !== 'munlock';
    const r =
      how === 'munlock'
        ? sysMunlock(m, mm, vpn, n)
        : how === 'onfault'
          ? sysMlock2(m, mm, vpn, n, MLOCK_ONFAULT)
          : sysMlock(m, mm, vpn, n);
    return rc(r, `${how} vpn ${vpn} +${n}: ${errOr(r, 'done')}`);
  }

  /** mprotect() of a range: read-only (change_protection() write-protects its entries) or read-write again. */
  private mprotect(vpn: number, n: number, op: ActorOp): OpResult {
    const prot = PROT_READ | (op.write === true ? PROT_WRITE : 0);
    const r = doMprotect(this.env.m, this.env.mm, vpn, n, prot);
    return rc(r, `vpn ${vpn} +${n} ${op.write === true ? 'rw' : 'r'}: ${errOr(r, 'done')}`);
  }

  inspect(): ReturnType<AgentState['inspect']> {
    return { held: [], accounting: { children: this.children.length } };
  }

  /**
   * Children exit; the extra mappings go (munmap(): a MAP_LOCKED one gives its locked_vm back, which
   * pins-balance expects at 0 once teardown is over), and what mlock ops locked is munlocked, page by
   * page (munlock(2) of a range with a hole stops at the hole: -ENOMEM).
   */
  teardown(): OpResult {
    const n = this.children.length;
    while (this.children.length) this.exitChild(this.children.shift()!);
    for (const k of SCRATCH_KINDS) if (this.scratchVpn[k] >= 0) this.scratch(k, { op: k, unmap: true });
    if (this.mlocked)
      for (const mp of this.env.maps)
        for (let k = 0; k < mp.pages; k++) sysMunlock(this.env.m, this.env.mm, mp.vpn + k, 1);
    return rc(n, `${n} children exited`);
  }
}

/** The user's ops as generated: accesses, unmaps, remaps, MADV_DONTNEED, fork and exit of children. */
function userOps(fc: typeof fcType, shape: GenShape): fcType.Arbitrary<ActorOp> {
  const map = fc.constantFrom(...shape.maps.map((x) => x.name));
  const page = fc.nat(31);
  const pages = fc.integer({ min: 1, max: 4 });
  return fc.oneof(
    { weight: 5, arbitrary: fc.record({ op: fc.constant('touch'), map, page, write: fc.boolean() }) },
    { weight: 3, arbitrary: fc.record({ op: fc.constant('write'), map, page, value: fc.nat(0xffff) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('munmap'), map, page, pages }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('remap'), map }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('dontneed'), map, page, pages }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('fork') }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('exit_child') }) },
  ) as fcType.Arbitrary<ActorOp>;
}

/** userOps plus refault (MADV_DONTNEED and touch again: splits a THP's PMD, refills the hole): the split-cma suite. */
export function userOpsRefault(fc: typeof fcType, shape: GenShape): fcType.Arbitrary<ActorOp> {
  const refault = fc.record({
    op: fc.constant('refault'),
    map: fc.constantFrom(...shape.maps.map((x) => x.name)),
    page: fc.nat(31),
    pages: fc.integer({ min: 1, max: 4 }),
  });
  return fc.oneof(
    { weight: 13, arbitrary: userOps(fc, shape) },
    { weight: 6, arbitrary: refault },
  ) as fcType.Arbitrary<ActorOp>;
}

/**
 * userOps plus hwpoison (madvise(MADV_HWPOISON) of a page, R20), 10 ops in 24: the longterm-pin-hwpoison suite.
 * R20 needs a poison to land while offlining holds the page isolated; at 5 in 19 a search needed about twice the
 * cases (bench/README.md), at 20 in 34 the other ops that set that window up grow too rare.
 */
export function userOpsHwpoison(fc: typeof fcType, shape: GenShape): fcType.Arbitrary<ActorOp> {
  // and, now and then, soft offline: of a page memory_failure() left mapped (a THP it could not split),
  // soft_offline_page()'s "already poisoned"
  return withPageOp(fc, shape, withPageOp(fc, shape, userOps(fc, shape), 14, 'hwpoison', 10), 22, 'soft_offline', 2);
}

/** base, or at weight in base + weight an op {map, page} on one page (an madvise of that page). */
function withPageOp(
  fc: typeof fcType,
  shape: GenShape,
  base: fcType.Arbitrary<ActorOp>,
  baseWeight: number,
  op: string,
  weight: number,
): fcType.Arbitrary<ActorOp> {
  const one = fc.record({
    op: fc.constant(op),
    map: fc.constantFrom(...shape.maps.map((x) => x.name)),
    page: fc.nat(31),
  });
  return fc.oneof({ weight: baseWeight, arbitrary: base }, { weight, arbitrary: one }) as fcType.Arbitrary<ActorOp>;
}

/**
 * userOpsRefault plus soft_offline (madvise(MADV_SOFT_OFFLINE) of a page): the longterm-pin-get suite,
 * where FOLL_GET references and pins race the migration it makes.
 */
export function userOpsRefaultSoftOffline(fc: typeof fcType, shape: GenShape): fcType.Arbitrary<ActorOp> {
  return withPageOp(fc, shape, userOpsRefault(fc, shape), 19, 'soft_offline', 4);
}

/**
 * userOps plus MAP_HUGETLB and MAP_SHARED mappings, move_pages(2) and mprotect() (the longterm-pin-move
 * suite): the hugetlb and shmem fault paths, MR_SYSCALL migration and write-protection racing the pinner.
 */
export function userOpsHugetlbMove(fc: typeof fcType, shape: GenShape): fcType.Arbitrary<ActorOp> {
  const map = fc.constantFrom(...shape.maps.map((x) => x.name));
  const scratch = (op: ScratchKind): fcType.Arbitrary<ActorOp> =>
    fc.record({
      op: fc.constant(op),
      page: fc.nat(7),
      write: fc.boolean(),
      value: fc.nat(0xffff),
      unmap: fc.boolean(),
      ...(op === 'shared' ? { locked: fc.boolean() } : {}),
    }) as fcType.Arbitrary<ActorOp>;
  const movePages = fc.record({
    op: fc.constant('move_pages'),
    map,
    page: fc.nat(31),
    pages: fc.integer({ min: 1, max: 8 }),
    to: fc.constantFrom(...MOVE_TARGETS),
    of: fc.constantFrom('map', ...SCRATCH_KINDS),
  });
  const mprotect = fc.record({
    op: fc.constant('mprotect'),
    map,
    page: fc.nat(31),
    pages: fc.integer({ min: 1, max: 8 }),
    write: fc.boolean(),
  });
  const mlock = fc.record({
    op: fc.constant('mlock'),
    map,
    page: fc.nat(31),
    pages: fc.integer({ min: 1, max: 8 }),
    how: fc.constantFrom(...MLOCK_HOWS),
    of: fc.constantFrom('map', 'shared'),
  });
  return fc.oneof(
    { weight: 12, arbitrary: userOps(fc, shape) },
    { weight: 2, arbitrary: scratch('hugetlb') },
    { weight: 2, arbitrary: scratch('shared') },
    { weight: 2, arbitrary: movePages },
    { weight: 2, arbitrary: mprotect },
    { weight: 1, arbitrary: mlock },
    {
      weight: 2,
      arbitrary: fc.record({
        op: fc.constant('migrate_to_device'),
        map,
        page: fc.nat(31),
        pages: fc.integer({ min: 1, max: 32 }),
      }),
    },
    // RAS on a machine with device memory: soft_offline_page() refuses a page migrated to the device
    // (pfn_to_online_page(): not ZONE_DEVICE, -EIO) and moves the others
    { weight: 1, arbitrary: fc.record({ op: fc.constant('soft_offline'), map, page: fc.nat(31) }) },
  ) as fcType.Arbitrary<ActorOp>;
}

export const USER_OP_KINDS = ['touch', 'write', 'munmap', 'remap', 'dontneed', 'fork', 'exit_child'] as const;
/** The op kinds longterm-pin-move's swarm picks among. */
export const USER_MOVE_OP_KINDS = [
  ...USER_OP_KINDS,
  'hugetlb',
  'shared',
  'move_pages',
  'mprotect',
  'mlock',
  'migrate_to_device',
  'soft_offline',
];
/** The user's mlock op: mlock(2), mlock2(MLOCK_ONFAULT) or munlock(2). */
export const MLOCK_HOWS = ['mlock', 'onfault', 'munlock'] as const;

export const user: AgentModel = {
  name: 'user',
  summary: 'the process: accesses, munmap, remap, MADV_DONTNEED, fork and exit of its children',
  source: 'mm/memory.c handle_mm_fault(), mm/mmap.c, mm/madvise.c, kernel/fork.c dup_mm()',
  ops: {
    touch: { map: 'map', page: 'nat', write: 'bool', value: 'nat' },
    write: { map: 'map', page: 'nat', value: 'nat' },
    munmap: RANGE,
    dontneed: RANGE,
    refault: { ...RANGE, value: 'nat' },
    remap: { map: 'map' },
    hugetlb: { page: 'nat', write: 'bool', value: 'nat', unmap: 'bool' },
    shared: { page: 'nat', write: 'bool', value: 'nat', unmap: 'bool', locked: 'bool' },
    move_pages: { ...RANGE, to: MOVE_TARGETS, of: ['map', ...SCRATCH_KINDS] },
    mprotect: { ...RANGE, write: 'bool' },
    mlock: { ...RANGE, how: MLOCK_HOWS, of: ['map', 'shared'] },
    migrate_to_device: RANGE,
    hwpoison: { map: 'map', page: 'nat' },
    soft_offline: { map: 'map', page: 'nat' },
    fork: {},
    exit_child: {},
  },
  errnos: {
    fork: [-ENOMEM, -EAGAIN], // dup_mm(); -EAGAIN: pinlab's child limit (as RLIMIT_NPROC)
    exit_child: [],
    touch: [-EFAULT, -ENOMEM], // handle_mm_fault(): VM_FAULT_SIGSEGV / VM_FAULT_OOM
    write: [-EFAULT, -ENOMEM],
    munmap: [-EINVAL, -ENOMEM], // do_vmi_munmap(): split_vma() can fail with -ENOMEM
    dontneed: [-EINVAL, -ENOMEM], // madvise_dontneed_free()
    remap: [-EINVAL, -ENOMEM],
    refault: [-EINVAL, -ENOMEM, -EFAULT], // madvise_dontneed_free(), then handle_mm_fault() per page
    // do_mmap() (-ENOMEM: no pool of the PMD size, no room; -EEXIST: MAP_FIXED_NOREPLACE), hugetlb_fault()
    // (VM_FAULT_OOM: the pool is empty), do_vmi_munmap()
    hugetlb: [-ENOMEM, -EEXIST, -EFAULT, -EINVAL],
    // as hugetlb, and mlock_future_ok() for MAP_LOCKED (-EAGAIN over RLIMIT_MEMLOCK, -EPERM at 0)
    shared: [-ENOMEM, -EEXIST, -EFAULT, -EINVAL, -EAGAIN, -EPERM],
    move_pages: [-ENOMEM], // migrate_pages(): no target memory
    mprotect: [-ENOMEM, -EINVAL], // do_mprotect_pkey(): a hole; split_vma()
    // do_mlock(): -EPERM (RLIMIT_MEMLOCK 0), -ENOMEM (over the limit, or a hole), -EAGAIN (populate ran out)
    mlock: [-EPERM, -ENOMEM, -EAGAIN],
    migrate_to_device: [], // a page that cannot move stays where it is
    // madvise_inject_error(): get_user_pages_fast() (-EFAULT on a poisoned page, -ENOMEM, -EINTR: the OOM
    // killer's SIGKILL while __get_user_pages() faults the page in), memory_failure()
    hwpoison: [-EFAULT, -ENOMEM, -EINTR, -EBUSY, -EHWPOISON],
    // get_user_pages_fast() (-EFAULT: a poisoned or unmapped page, -ENOMEM, -EINTR as above),
    // soft_offline_page() (-EBUSY: it will not migrate or split; -EIO: a page it cannot handle; -ENOMEM: no target)
    soft_offline: [-EFAULT, -ENOMEM, -EINTR, -EBUSY, -EIO],
  },
  faultPoints: [],
  programLength: 12,
  opKinds: USER_OP_KINDS,
  arbitrary: userOps,
  create: (env) => new UserProcess(env),
};
