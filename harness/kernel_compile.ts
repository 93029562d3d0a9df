// A scenario compiled for the real kernel: the probe's program (one line per step) and the guest's
// machine (QEMU -m and machine type, kernel command line). Anything the kernel cannot do the way the
// model does is refused here, before anything boots, with one line naming it (docs/real-kernel.md).

import { qemuRam } from '../mm/e820';
import { Scenario, STEP_KINDS } from './scenario';
import { ScenarioError, Step, sizePages, offsetBytes, vmstatItems } from './scenario_ctx';
import { parseCmdline, parseGeometry, CmdlineError } from '../mm/cmdline';
import { VM_ITEMS } from '../mm/vmstat';
import type { KernelImage } from './kernel_setup';
import { deviceModelName } from './scenario_dev';

const PAGE = 4096;

/** Ops with no syscall (pinlab-only staging of kernel state): why each is refused. */
export const REFUSED_OPS: Record<string, string> = {
  kalloc: 'kernel allocations held by the kernel have no syscall (a test module would be needed)',
  kfree: 'frees a kalloc, which the kernel cannot run',
  fragment: 'holding every other free page of a zone has no syscall',
  isolate: 'taking a folio off the LRU has no syscall',
  putback: 'puts back an isolate, which the kernel cannot run',
  hold_ref: 'holding a transient reference on a folio has no syscall',
  isolate_range: 'holding a block MIGRATE_ISOLATE has no syscall',
  undo_isolate: 'undoes an isolate_range, which the kernel cannot run',
  inject: 'fault injection points are pinlab-only',
  migrate: 'move_pages() moves between nodes, not zones; a one-node guest migrates nothing',
  drain: 'no syscall runs lru_add_drain_all() + drain_all_pages() alone',
  open_file: 'the probe does not create files yet (memfd_create, O_TMPFILE)',
  memory_failure: 'a machine check has no syscall (madvise advice: hwpoison injects one into a mapped page)',
};

/** Fields that run differently or not at all on the kernel: [op, field, allowed value or undefined for none, why]. */
const REFUSED_FIELDS: [string, string, unknown, string][] = [
  ['mmap', 'pfnmap', false, 'a VM_PFNMAP mapping needs a device driver'],
  ['mmap', 'fd', undefined, 'the probe does not map files yet'],
  ['pin', 'write', true, 'io_uring fixed buffers always pin FOLL_WRITE'],
  ['pin', 'fast', true, 'io_uring pins with pin_user_pages_fast()'],
  ['unpin', 'dirty', undefined, 'io_uring unpins with unpin_user_folio(), never dirtying'],
];

/** The /proc/vmstat items the probe follows: the model's (those a kernel lacks are left out of its report). */
export const COUNTERS = [...VM_ITEMS];

export interface KernelMachine {
  /** QEMU -m in MiB */
  memMiB: number;
  machineType: string;
  /** QEMU device arguments a device step needs (intel-iommu and edu for vfio-type1) */
  devices?: string[];
  /** the guest's kernel command line */
  cmdline: string;
  warnings: string[];
  /** module parameters /init gives insmod, by module (vfio_iommu_type1.dma_entry_limit= on the machine's line) */
  moduleArgs?: Record<string, string>;
}

export interface CompiledScenario {
  program: string;
  machine: KernelMachine;
  /** kernel modules the device steps need, loaded by /init as --load's (dependencies first) */
  modules?: string[];
  /** per step: the names the report needs (proc, pin) and what the detail shows */
  steps: {
    op: string;
    proc?: string;
    child?: string;
    len?: number;
    expect?: unknown;
    expect_match?: unknown;
    value?: number;
    block?: number;
    items?: string[];
    pin?: string;
    hold?: boolean;
    /** open/call/close: the device (as:/dev:) and the call made */
    dev?: string;
    device?: string;
    call?: string;
    iova?: number;
  }[];
}

/**
 * Device models a scenario can open (op: open) on a real kernel, and their ops: each op either runs (the probe's
 * line) or is refused, with why. A device not named here is refused (docs/real-kernel.md).
 */
export const KERNEL_DEVICES: Record<string, { runs: string[]; refused: Record<string, string> }> = {
  'vfio-type1': {
    runs: ['map_dma', 'unmap_dma', 'get_info'],
    refused: {
      dma_write:
        "edu's DMA engine moves data only between RAM and its own buffer, which the CPU cannot reach: a staging map_dma would change what is pinned",
      dma_read:
        "edu's DMA engine moves data only between RAM and its own buffer, which the CPU cannot reach: a staging map_dma would change what is pinned",
    },
  },
  'io_uring-fixed': {
    runs: ['register', 'unregister'],
    refused: {
      read_fixed: "READ_FIXED needs a file, and the model's file data has no kernel counterpart: not mapped",
      write_fixed: "WRITE_FIXED needs a file, and the model's file data has no kernel counterpart: not mapped",
    },
  },
  'rdma-umem': {
    runs: ['reg_mr', 'dereg_mr'],
    refused: {
      post: 'a work request needs a queue pair and a peer, which the probe does not set up',
      complete: 'a work request needs a queue pair and a peer, which the probe does not set up',
    },
  },
};

/** The vfio-type1 guest: q35 with QEMU's intel-iommu and its edu device, bound to vfio-pci in the guest. */
const VFIO_QEMU = ['-device', 'intel-iommu,intremap=on,caching-mode=on', '-device', 'edu'];
const VFIO_MODULES = ['vfio_iommu_type1', 'vfio_pci'];
/** The rdma-umem guest: an e1000 NIC (user-mode network) with rdma_rxe on it, verbs through ib_uverbs. */
const RDMA_QEMU = ['-netdev', 'user,id=n0', '-device', 'e1000,netdev=n0'];
const RDMA_MODULES = ['e1000', 'crc32_generic', 'rdma_rxe', 'ib_uverbs'];
/** The probe's line per device and step: open, call (by op), close. */
const PROBE_OPS: Record<string, { open: string; close: string }> = {
  'vfio-type1': { open: 'vfio_open', close: 'vfio_close' },
  'rdma-umem': { open: 'rdma_open', close: 'rdma_close' },
  'io_uring-fixed': { open: 'uring_open', close: 'uring_close' },
};
/** The most iovecs one register step passes to the probe */
const MAX_IOVECS = 36;
function refuse(file: string, n: number, op: string, what: string): never {
  throw new ScenarioError(`${file}: step ${n} (${op}): ${what}`);
}

/**
 * The guest: QEMU -M from pinlab.machine= (pc by default); -m is mem= plus 2 MiB (SeaBIOS keeps its tables at
 * the top of RAM) and mem= on the guest's command line trims RAM back to exactly mem=, so memory blocks are
 * whole, when that RAM fits below the PCI hole; else -m is mem= and RAM above the hole sits above 4G. The
 * model boots from the same e820 map (qemuRam(), mm/e820.ts).
 */
export function kernelMachine(file: string, sc: Scenario, kernel?: KernelImage): KernelMachine {
  const geo = sc.machine.geometry;
  if (geo !== undefined && geo.trim() !== 'x86_64') {
    throw new ScenarioError(
      `${file}: machine.geometry '${geo}': a real kernel has only the x86_64 geometry (128M memory blocks, pageblock order 9)`,
    );
  }
  let params;
  try {
    params = parseCmdline(sc.machine.cmdline, parseGeometry(undefined));
  } catch (e) {
    if (e instanceof CmdlineError) throw new ScenarioError(`${file}: machine: ${e.message}`);
    throw e;
  }
  const warnings: string[] = [];
  const moduleArgs: Record<string, string> = {};
  const words = sc.machine.cmdline.trim().split(/\s+/).filter(Boolean);
  const out: string[] = [];
  for (const w of words) {
    const key = w.split('=')[0]!;
    if (key === 'pinlab.hotplug')
      throw new ScenarioError(
        `${file}: machine: pinlab.hotplug= (hot-pluggable memory) is not mapped to QEMU memory devices yet`,
      );
    if (key === 'cma' && kernel?.config && kernel.config.get('CONFIG_CMA') !== 'y') {
      throw new ScenarioError(
        `${file}: machine: cma= needs CONFIG_CMA, which ${kernel.spec} (${kernel.release}) is built without`,
      );
    }
    if (key === 'min_free_kbytes') {
      out.push(`sysctl.vm.${w}`);
      continue;
    } // what the model takes it as
    if (key === 'mem' || key === 'pinlab.machine' || key === 'pinlab.kmem' || key === 'pinlab.iommu_aw_bits') continue;
    // a loadable module's parameter: modprobe would take it from /proc/cmdline; busybox's insmod is given it
    const mod = /^(vfio_iommu_type1)\.(.+)$/.exec(w);
    if (mod) {
      moduleArgs[mod[1]!] = [moduleArgs[mod[1]!], mod[2]!].filter(Boolean).join(' ');
      continue;
    }
    out.push(w);
  }
  // mem= is an address limit on x86 (parse_memopt): given only when all RAM sits below the PCI hole
  const { ramBytes, memLimit } = qemuRam(params.memBytes, params.machine);
  const qemuMiB = ramBytes / (1 << 20);
  if (memLimit !== null) out.unshift(`mem=${memLimit / (1 << 20)}M`);
  // the model's defaults where Debian's build differs: transparent_hugepage= (the model: madvise; Debian: always)
  if (!words.some((w) => w.startsWith('transparent_hugepage='))) out.push(`transparent_hugepage=${params.thp}`);
  // what the guest needs: the console, a panic that ends QEMU, offline failure reasons (pr_debug), no KASLR, no
  // speculative-execution mitigations (page table isolation makes every syscall slow under TCG)
  out.push('console=ttyS0', 'quiet', 'panic=-1', 'nokaslr', 'mitigations=off', 'dyndbg="file memory_hotplug.c +p"');
  const machine: KernelMachine = { memMiB: qemuMiB, machineType: params.machine, cmdline: out.join(' '), warnings };
  if (Object.keys(moduleArgs).length) machine.moduleArgs = moduleArgs;
  if (sc.steps.some((s) => s.op === 'open' && s.device === 'rdma-umem')) machine.devices = RDMA_QEMU;
  if (sc.steps.some((s) => s.op === 'open' && s.device === 'vfio-type1')) {
    // QEMU has intel-iommu only on q35; the model boots from q35's e820 map only when told to (mm/e820.ts)
    if (params.machine !== 'q35')
      throw new ScenarioError(
        `${file}: machine: vfio-type1 runs behind QEMU's intel-iommu, which needs q35: add pinlab.machine=q35 to machine.cmdline`,
      );
    // kernel-irqchip=split is what interrupt remapping asks of KVM (TCG ignores it)
    machine.machineType = 'q35,kernel-irqchip=split';
    // pinlab.iommu_aw_bits=: the IOMMU's address width, QEMU's aw-bits (the model's addr_width)
    const aw = params.deviceParams.addr_width;
    const iommu =
      aw === undefined ? VFIO_QEMU : VFIO_QEMU.map((a) => (a.startsWith('intel-iommu') ? `${a},aw-bits=${aw}` : a));
    machine.devices = [...iommu, ...(machine.devices ?? [])];
    machine.cmdline += ' intel_iommu=on';
  }
  return machine;
}

function addrArg(file: string, n: number, op: string, v: unknown, maps: Map<string, number>): string {
  if (typeof v === 'number' || typeof v !== 'string' || !/^[A-Za-z_]/.test(v)) {
    refuse(
      file,
      n,
      op,
      `absolute address ${JSON.stringify(v)}: the kernel places mappings elsewhere; name the mapping (as:) and add an offset`,
    );
  }
  const mt = /^([A-Za-z_][A-Za-z0-9_]*)(?:\+(.+))?$/.exec(v);
  if (!mt) refuse(file, n, op, `bad address '${v}'`);
  const m = maps.get(mt[1]!);
  if (m === undefined) refuse(file, n, op, `addr: unknown mapping '${mt[1]}' (name one with 'as:' on an mmap step)`);
  let off = 0;
  if (mt[2] !== undefined) {
    try {
      off = offsetBytes('addr', mt[2]);
    } catch (e) {
      refuse(file, n, op, (e as Error).message);
    }
  }
  if (off % PAGE) refuse(file, n, op, `addr: offset ${off} is not page aligned`);
  return `${m}:${off}`;
}

function size(file: string, n: number, op: string, field: string, v: unknown): number {
  try {
    return sizePages(field, v) * PAGE;
  } catch (e) {
    return refuse(file, n, op, (e as Error).message);
  }
}

const PROT: Record<string, number> = { none: 0, r: 1, w: 2, rw: 3 };
// MADV_SOFT_OFFLINE migrates and poisons the old frame without killing anyone; MADV_HWPOISON poisons the frame
// for good (a guest lives for one run) and SIGBUSes the caller, which the probe's worker survives
const ADVICE: Record<string, number> = {
  dontneed: 4,
  hugepage: 14,
  nohugepage: 15,
  populate_write: 23,
  hwpoison: 100,
  soft_offline: 101,
};

/** Compile a loaded scenario for the probe; a step the kernel cannot run is a ScenarioError naming it. */
// eslint-disable-next-line max-lines-per-function -- its step callback is a table: one case per scenario op
export function compileScenario(file: string, sc: Scenario, kernel?: KernelImage): CompiledScenario {
  const machine = kernelMachine(file, sc, kernel);
  const lines: string[] = [`counters ${COUNTERS.join(',')}`];
  const steps: CompiledScenario['steps'] = [];
  const procs = new Map<string, number>();
  const exited = new Set<string>();
  const maps = new Map<string, number>();
  const mapOwner = new Map<string, string>();
  const mapLen = new Map<number, number>();
  const pins = new Map<string, { h: number; proc: string }>();
  const devs = new Map<string, { h: number; proc: string; device: string }>();
  const opened = new Set<string>();
  let nextMap = 0;
  let nextHold = 0;
  // eslint-disable-next-line max-lines-per-function -- one case per scenario op
  sc.steps.forEach((s: Step, i) => {
    const n = i + 1;
    const op = s.op;
    if (Object.hasOwn(REFUSED_OPS, op)) refuse(file, n, op, `op ${op} cannot run on a real kernel: ${REFUSED_OPS[op]}`);
    if (!Object.hasOwn(STEP_KINDS, op) && !DEVICE_STEPS.includes(op)) refuse(file, n, op, `unknown op '${op}'`);
    for (const [o, f, allowed, why] of REFUSED_FIELDS) {
      if (o === op && s[f] !== undefined && s[f] !== allowed)
        refuse(file, n, op, `${f}: ${JSON.stringify(s[f])} cannot run on a real kernel: ${why}`);
    }
    const st: CompiledScenario['steps'][number] = { op, expect: s.expect, expect_match: s.expect_match };
    const pid = (name: unknown): number => {
      if (typeof name !== 'string') refuse(file, n, op, "needs 'proc:'");
      st.proc = name;
      const p = procs.get(name);
      if (p === undefined) refuse(file, n, op, `unknown process '${name}'${exited.has(name) ? ' (it exited)' : ''}`);
      return p;
    };
    const len = (addrField: unknown, lenField: unknown): number => {
      if (lenField !== undefined) return size(file, n, op, 'len', lenField);
      const base = typeof addrField === 'string' ? /^([A-Za-z_][A-Za-z0-9_]*)(?:\+(.+))?$/.exec(addrField) : null;
      const m = base ? maps.get(base[1]!) : undefined;
      if (m === undefined || base![2] !== undefined)
        refuse(file, n, op, "len: needs 'len:' unless 'addr:' names a whole mapping");
      return mapLen.get(m)!;
    };
    /** pin / pin_max: a new hold named by 'as:' on addr..addr+len of the process */
    const newPin = (): { p: number; a: string; l: number; h: number } => {
      const p = pid(s.proc);
      const name = s.as as string;
      if (pins.has(name)) refuse(file, n, op, `pin '${name}' is already held (unpin it first)`);
      const a = addrArg(file, n, op, s.addr, maps);
      const l = size(file, n, op, 'len', s.len);
      const h = nextHold++;
      pins.set(name, { h, proc: s.proc as string });
      st.len = l;
      st.pin = name;
      return { p, a, l, h };
    };
    let line: string;
    switch (op) {
      case 'spawn': {
        const name = s.proc as string;
        if (procs.has(name)) refuse(file, n, op, `process '${name}' exists`);
        const p = procs.size + exited.size;
        procs.set(name, p);
        st.proc = name;
        // neither memlock nor cap_ipc_lock: the worker stays root (CAP_IPC_LOCK), as the model's spawn is; a
        // cap_ipc_lock alone keeps the default RLIMIT_MEMLOCK (8 MiB, MLOCK_LIMIT), as the model does
        const limit =
          s.memlock === undefined
            ? 8 << 20
            : s.memlock === 'unlimited'
              ? -1
              : s.memlock === 0 || s.memlock === '0'
                ? 0
                : size(file, n, op, 'memlock', s.memlock);
        const memlock =
          s.memlock === undefined && s.cap_ipc_lock === undefined
            ? ''
            : ` memlock=${limit} cap=${s.cap_ipc_lock === true ? 1 : 0}`;
        line = `spawn p=${p} name=${comm(name)}${memlock} oom=${typeof s.oom_score_adj === 'number' ? s.oom_score_adj : 0}`;
        break;
      }
      case 'mmap': {
        const p = pid(s.proc);
        const l = size(file, n, op, 'len', s.len);
        const prot = PROT[s.prot === undefined ? 'rw' : String(s.prot)];
        if (prot === undefined) refuse(file, n, op, `prot '${String(s.prot)}' is not one of r, rw, w, none`);
        const m = nextMap++;
        const at = s.addr === undefined ? '' : ` at=${addrArg(file, n, op, s.addr, maps)}`;
        if (typeof s.as === 'string') {
          maps.set(s.as, m);
          mapOwner.set(s.as, s.proc as string);
        }
        mapLen.set(m, l);
        st.len = l;
        const advice = s.thp === true ? 14 : s.nothp === true ? 15 : 0;
        line = `mmap p=${p} m=${m} len=${l} prot=${prot} shared=${s.shared === true ? 1 : 0} hugetlb=${s.hugetlb === true ? 1 : 0} advice=${advice} populate=${s.populate === true ? 1 : 0}${at}`;
        break;
      }
      case 'touch': {
        const p = pid(s.proc);
        const a = addrArg(file, n, op, s.addr, maps);
        const l = len(s.addr, s.len);
        st.len = l;
        line = `touch p=${p} a=${a} len=${l} write=${s.write === false ? 0 : 1}${typeof s.value === 'number' ? ` value=${s.value >>> 0}` : ''}`;
        break;
      }
      case 'write':
        st.value = (s.value as number) >>> 0; // the report's detail: the probe's rc is 0
        line = `write p=${pid(s.proc)} a=${addrArg(file, n, op, s.addr, maps)} value=${st.value}`;
        break;
      case 'read':
        line = `read p=${pid(s.proc)} a=${addrArg(file, n, op, s.addr, maps)}`;
        if (typeof s.value === 'number') st.value = s.value >>> 0;
        break;
      case 'munmap':
      case 'mprotect':
      case 'madvise':
      case 'mlock':
      case 'munlock': {
        const p = pid(s.proc);
        const a = addrArg(file, n, op, s.addr, maps);
        const l = len(s.addr, s.len);
        st.len = l;
        let extra = '';
        if (op === 'mprotect') {
          const prot = PROT[String(s.prot)];
          if (prot === undefined) refuse(file, n, op, `prot '${String(s.prot)}' is not one of r, rw, w, none`);
          extra = ` prot=${prot}`;
        }
        if (op === 'madvise') {
          const adv = ADVICE[String(s.advice)];
          if (adv === undefined)
            refuse(
              file,
              n,
              op,
              `advice '${String(s.advice)}' is not dontneed, hugepage, nohugepage, populate_write, hwpoison or soft_offline`,
            );
          extra = ` advice=${adv}`;
        }
        // mlock2(MLOCK_ONFAULT if onfault); the probe reads VmLck after every step
        if (op === 'mlock') extra = ` onfault=${s.onfault === true ? 1 : 0}`;
        line = `${op} p=${p} a=${a} len=${l}${extra}`;
        break;
      }
      case 'fork': {
        const p = pid(s.proc);
        const child = s.child as string;
        if (procs.has(child)) refuse(file, n, op, `process '${child}' exists`);
        const c = procs.size + exited.size;
        procs.set(child, c);
        st.child = child;
        line = `fork p=${p} c=${c} name=${comm(child)}`;
        break;
      }
      case 'exit': {
        const p = pid(s.proc);
        // its pins (io_uring rings) and devices close with its files, in the model as on the kernel (exit_files())
        for (const [name, d] of devs) if (d.proc === s.proc) devs.delete(name);
        procs.delete(s.proc as string);
        exited.add(s.proc as string);
        for (const [k, owner] of mapOwner)
          if (owner === s.proc) {
            maps.delete(k);
            mapOwner.delete(k);
          }
        line = `exit p=${p}`;
        break;
      }
      case 'online':
      case 'offline': {
        const b = s.block;
        if (typeof b !== 'number' || !Number.isInteger(b) || b < 0)
          refuse(file, n, op, `block: ${JSON.stringify(b)} is not a memory block number`);
        st.block = b;
        if (op === 'online') {
          const type = s.type === undefined ? 'online' : String(s.type);
          if (!['online', 'online_kernel', 'online_movable'].includes(type))
            refuse(file, n, op, `type '${type}' is not online, online_kernel or online_movable`);
          line = `online b=${b} type=${type}`;
        } else line = `offline b=${b} ms=${OFFLINE_MS}`;
        break;
      }
      case 'pin': {
        const { p, a, l, h } = newPin();
        // long-term: io_uring fixed buffers (FOLL_WRITE|FOLL_LONGTERM); short-term: a page reference held by vmsplice
        st.hold = s.longterm === false;
        line = `${st.hold ? 'hold' : 'pin'} p=${p} a=${a} len=${l} h=${h}`;
        break;
      }
      case 'pin_max': {
        // chunk after chunk, each IORING_REGISTER_BUFFERS_UPDATE of a sparse table: a long-term pin of its own
        const { p, a, l, h } = newPin();
        const chunk = size(file, n, op, 'chunk', s.chunk);
        if (Math.ceil(l / chunk) > 16384)
          refuse(file, n, op, `chunk: ${Math.ceil(l / chunk)} chunks, io_uring registers at most 16384 buffers`);
        line = `pinmax p=${p} a=${a} len=${l} chunk=${chunk} h=${h}`;
        break;
      }
      case 'unpin': {
        const name = s.pin as string;
        const pin = pins.get(name);
        if (!pin) refuse(file, n, op, `pin: no pin named '${name}'`);
        pins.delete(name);
        st.pin = name;
        line = `unpin h=${pin.h}${s.if_pinned === true ? ' ifp=1' : ''}`;
        break;
      }
      case 'vmstat': {
        const items = vmstatItems(s.items);
        for (const it of items)
          if (!(COUNTERS as readonly string[]).includes(it)) refuse(file, n, op, `items: unknown vmstat item '${it}'`);
        st.items = items;
        line = 'vmstat';
        break;
      }
      case 'zones':
        line = 'zones';
        break;
      case 'census': {
        const b = s.block;
        if (typeof b !== 'number' || !Number.isInteger(b) || b < 0)
          refuse(file, n, op, `block: ${JSON.stringify(b)} is not a memory block number`);
        st.block = b;
        line = `census b=${b}`;
        break;
      }
      case 'open': {
        const device = deviceModelName(String(s.device));
        const p = pid(s.proc);
        const dv = Object.hasOwn(KERNEL_DEVICES, device) ? KERNEL_DEVICES[device] : undefined;
        if (!dv)
          refuse(
            file,
            n,
            op,
            `device '${device}' cannot run on a real kernel: no kernel mapping (${Object.keys(KERNEL_DEVICES).join(', ')} have one)`,
          );
        const name = s.as;
        if (typeof name !== 'string') refuse(file, n, op, "needs 'as:' (the name call and close use)");
        if (devs.has(name)) refuse(file, n, op, `device '${name}' is already open`);
        const h = nextHold++;
        devs.set(name, { h, proc: s.proc as string, device });
        opened.add(device);
        st.dev = name;
        st.device = device;
        line = `${PROBE_OPS[device]!.open} p=${p} h=${h}`;
        break;
      }
      case 'call':
      case 'close': {
        const name = String(s.dev);
        const d = devs.get(name);
        if (!d) refuse(file, n, op, `dev: no open device named '${name}'`);
        const p = pid(d.proc);
        st.dev = name;
        st.device = d.device;
        if (op === 'close') {
          devs.delete(name);
          line = `${PROBE_OPS[d.device]!.close} p=${p} h=${d.h}`;
          break;
        }
        const call = String(s.call);
        const dv = KERNEL_DEVICES[d.device]!;
        if (Object.hasOwn(dv.refused, call))
          refuse(file, n, op, `${d.device} ${call} cannot run on a real kernel: ${dv.refused[call]}`);
        if (!dv.runs.includes(call)) refuse(file, n, op, `${d.device} has no op '${call}'`);
        st.call = call;
        line = deviceCall(file, n, d, p, call, (s.args ?? {}) as Record<string, unknown>, maps, mapOwner, st);
        break;
      }
      default:
        return refuse(file, n, op, `op ${op} has no kernel mapping`);
    }
    lines.push(`${n} ${line}`);
    steps.push(st);
  });
  // rdma link add rxe0 type rxe netdev eth0 (the e1000), before the first step
  if (opened.has('rdma-umem')) lines.splice(1, 0, 'rxelink eth0');
  const modules = [...(opened.has('vfio-type1') ? VFIO_MODULES : []), ...(opened.has('rdma-umem') ? RDMA_MODULES : [])];
  return { program: lines.join('\n') + '\n', machine, steps, modules };
}

/** Device steps (a `pinlab devices` model opened for a process, its ops, its close). */
export const DEVICE_STEPS = ['open', 'call', 'close'];

/** A byte count or address given as a number or a size ('2M'). */
function bytesArg(file: string, n: number, field: string, v: unknown): number {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return v;
  if (typeof v !== 'string')
    return refuse(file, n, 'call', `${field}: needs a byte count or address, got ${JSON.stringify(v)}`);
  try {
    return offsetBytes(field, v);
  } catch (e) {
    return refuse(file, n, 'call', (e as Error).message);
  }
}

/** vfio-type1 map_dma / unmap_dma as the probe's line (VFIO_IOMMU_MAP_DMA / VFIO_IOMMU_UNMAP_DMA). */
function deviceCall(
  file: string,
  n: number,
  d: { h: number; proc: string; device: string },
  pnum: number,
  call: string,
  args: Record<string, unknown>,
  maps: Map<string, number>,
  mapOwner: Map<string, string>,
  st: CompiledScenario['steps'][number],
): string {
  const head = `p=${pnum} h=${d.h}`;
  for (const k of Object.keys(args))
    if (!Object.hasOwn(DEVICE_ARGS[call]!, k))
      refuse(file, n, 'call', `${call}: unknown argument '${k}' (${Object.keys(DEVICE_ARGS[call]!).join(', ')})`);
  const ownMapping = (v: unknown): void => {
    const base = typeof v === 'string' ? /^[A-Za-z_][A-Za-z0-9_]*/.exec(v)?.[0] : undefined;
    if (base !== undefined && mapOwner.get(base) !== undefined && mapOwner.get(base) !== d.proc)
      refuse(file, n, 'call', `vaddr: mapping '${base}' is ${mapOwner.get(base)}'s, the device is open in ${d.proc}`);
  };
  if (call === 'unregister') return `uring_unreg ${head}`;
  if (call === 'register') {
    const iovecs = args.iovecs;
    if (!Array.isArray(iovecs) || iovecs.length > MAX_IOVECS)
      refuse(file, n, 'call', `iovecs: a list of at most ${MAX_IOVECS} {base, len} (the probe's line)`);
    const iov = (iovecs as unknown[]).map((v) => {
      const o = (v ?? {}) as Record<string, unknown>;
      for (const k of Object.keys(o))
        if (k !== 'base' && k !== 'len') refuse(file, n, 'call', `iovecs: unknown field '${k}' (base, len)`);
      const len = bytesArg(file, n, 'len', o.len);
      if (o.base === 0) return `-:0:${len}`; // NULL: a sparse slot with len 0, else -EFAULT from the kernel
      ownMapping(o.base);
      return `${addrArg(file, n, 'call', o.base, maps)}:${len}`;
    });
    st.len = iov.length === 1 ? Number(iov[0]!.split(':')[2]) : 0;
    return `uring_reg ${head} iov=${iov.join(',')}`;
  }
  if (call === 'dereg_mr') {
    const mr = args.mr;
    if (typeof mr !== 'number' || !Number.isSafeInteger(mr))
      refuse(file, n, 'call', `mr: ${JSON.stringify(mr)} is not an MR number`);
    return `rdma_dereg ${head} mr=${mr}`;
  }
  if (call === 'reg_mr') {
    ownMapping(args.vaddr);
    const a = addrArg(file, n, 'call', args.vaddr, maps);
    const len = bytesArg(file, n, 'length', args.length);
    let access = 0;
    for (const name of Array.isArray(args.access)
      ? (args.access as unknown[])
      : args.access === undefined
        ? []
        : [args.access]) {
      const bit = Object.hasOwn(IB_ACCESS, String(name)) ? IB_ACCESS[String(name)] : undefined;
      if (bit === undefined)
        refuse(file, n, 'call', `access: '${String(name)}' is not one of ${Object.keys(IB_ACCESS).join(', ')}`);
      access |= bit;
    }
    st.len = len;
    // hca_va: the model's addresses are not the kernel's: only the default (the buffer's own address) runs
    if (args.hca_va !== undefined)
      refuse(
        file,
        n,
        'call',
        "hca_va: an absolute I/O address; the kernel places the buffer elsewhere (leave it out: the buffer's address)",
      );
    return `rdma_reg ${head} a=${a} len=${len} access=${access}`;
  }
  if (call === 'get_info') return `vfio_info ${head}`;
  if (call === 'unmap_dma') {
    if (args.all === true) return `vfio_unmap ${head} iova=0 len=0 all=1`;
    const iova = bytesArg(file, n, 'iova', args.iova);
    const sz = bytesArg(file, n, 'size', args.size);
    st.iova = iova;
    st.len = sz;
    return `vfio_unmap ${head} iova=${iova} len=${sz} all=0`;
  }
  const iova = bytesArg(file, n, 'iova', args.iova);
  const sz = bytesArg(file, n, 'size', args.size);
  ownMapping(args.vaddr);
  const a = addrArg(file, n, 'call', args.vaddr, maps);
  st.iova = iova;
  st.len = sz;
  const prot = (args.read === true ? 1 : 0) | (args.write === true ? 2 : 0);
  return `vfio_map ${head} iova=${iova} a=${a} len=${sz} prot=${prot}`;
}

/** The arguments each device op that runs takes (the models' fields: devices/vfio_container.ts, rdma_umem.ts). */
const DEVICE_ARGS: Record<string, Record<string, true>> = {
  map_dma: { iova: true, vaddr: true, size: true, read: true, write: true },
  unmap_dma: { iova: true, size: true, all: true },
  reg_mr: { vaddr: true, length: true, hca_va: true, access: true },
  register: { iovecs: true },
  unregister: {},
  dereg_mr: { mr: true },
};

/** enum ib_access_flags, by the model's access names */
const IB_ACCESS: Record<string, number> = {
  local_write: 1,
  remote_write: 2,
  remote_read: 4,
  remote_atomic: 8,
  mw_bind: 16,
  on_demand: 64,
};

/** A time limit for offline (the kernel retries while pages fail to migrate; a signal ends it with -EINTR). */
export let OFFLINE_MS = 10000;
export function setOfflineTimeout(ms: number): void {
  OFFLINE_MS = ms;
}

/** comm is 15 characters; the probe's names have no spaces. */
function comm(name: string): string {
  return name.slice(0, 15);
}
