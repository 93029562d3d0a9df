// A scenario compiled for the real kernel: the probe's program (one line per step) and the guest's
// machine (QEMU -m and machine type, kernel command line). Anything the kernel cannot do the way the
// model does is refused here, before anything boots, with one line naming it (docs/real-kernel.md).

import { Scenario, STEP_KINDS } from './scenario';
import { ScenarioError, Step, sizePages, offsetBytes, vmstatItems } from './scenario_ctx';
import { parseCmdline, parseGeometry, CmdlineError } from '../mm/cmdline';
import { VM_ITEMS } from '../mm/vmstat';
import type { KernelImage } from './kernel_setup';

const PAGE = 4096;

/** Ops with no syscall (pinlab-only staging of kernel state): why each is refused. */
export const REFUSED_OPS: Record<string, string> = {
  kalloc: 'kernel allocations held by the kernel have no syscall (a test module would be needed)',
  kfree: 'frees a kalloc, which the kernel cannot run',
  fragment: 'holding every other free page of a zone has no syscall',
  isolate: 'taking a folio off the LRU has no syscall',
  putback: 'puts back an isolate, which the kernel cannot run',
  isolate_range: 'holding a block MIGRATE_ISOLATE has no syscall',
  undo_isolate: 'undoes an isolate_range, which the kernel cannot run',
  inject: 'fault injection points are pinlab-only',
  migrate: 'move_pages() moves between nodes, not zones; a one-node guest migrates nothing',
  drain: 'no syscall runs lru_add_drain_all() + drain_all_pages() alone',
};

/** Fields that run differently or not at all on the kernel: [op, field, allowed value or undefined for none, why]. */
const REFUSED_FIELDS: [string, string, unknown, string][] = [
  ['mmap', 'pfnmap', false, 'a VM_PFNMAP mapping needs a device driver'],
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
  /** the guest's kernel command line */
  cmdline: string;
  warnings: string[];
}

export interface CompiledScenario {
  program: string;
  machine: KernelMachine;
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
  }[];
}

function refuse(file: string, n: number, op: string, what: string): never {
  throw new ScenarioError(`${file}: step ${n} (${op}): ${what}`);
}

/**
 * The guest: QEMU -m is mem= plus 2 MiB on the pc machine (SeaBIOS keeps the ACPI tables at the top of RAM),
 * and mem= on the guest's command line trims RAM back to exactly mem=, so memory blocks are whole as in the model.
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
    if (key === 'mem') continue;
    out.push(w);
  }
  const memMiB = Math.ceil(params.memBytes / (1 << 20));
  let qemuMiB = memMiB + 2;
  if (params.memBytes > 3 * 2 ** 30) {
    // the pc machine puts RAM above 3G at 4G (the PCI hole); mem= is an address limit on x86
    warnings.push(
      `mem=${memMiB}M: RAM above 3G sits above 4G on a real pc (the PCI hole), the model's is contiguous: blocks and zones above 3G differ`,
    );
    qemuMiB = memMiB;
  } else out.unshift(`mem=${memMiB}M`);
  // the model's defaults where Debian's build differs: transparent_hugepage= (the model: madvise; Debian: always)
  if (!words.some((w) => w.startsWith('transparent_hugepage='))) out.push(`transparent_hugepage=${params.thp}`);
  // what the guest needs: the console, a panic that ends QEMU, offline failure reasons (pr_debug), no KASLR, no
  // speculative-execution mitigations (page table isolation makes every syscall slow under TCG)
  out.push('console=ttyS0', 'quiet', 'panic=-1', 'nokaslr', 'mitigations=off', 'dyndbg="file memory_hotplug.c +p"');
  return { memMiB: qemuMiB, machineType: 'pc', cmdline: out.join(' '), warnings };
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
const ADVICE: Record<string, number> = { dontneed: 4, hugepage: 14, nohugepage: 15, populate_write: 23 };

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
  let nextMap = 0;
  let nextHold = 0;
  // eslint-disable-next-line max-lines-per-function -- one case per scenario op
  sc.steps.forEach((s: Step, i) => {
    const n = i + 1;
    const op = s.op;
    if (Object.hasOwn(REFUSED_OPS, op)) refuse(file, n, op, `op ${op} cannot run on a real kernel: ${REFUSED_OPS[op]}`);
    if (!Object.hasOwn(STEP_KINDS, op)) refuse(file, n, op, `unknown op '${op}'`);
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
        const memlock =
          s.memlock === undefined
            ? ''
            : ` memlock=${s.memlock === 'unlimited' ? -1 : size(file, n, op, 'memlock', s.memlock)} cap=${s.cap_ipc_lock === true ? 1 : 0}`;
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
        line = `write p=${pid(s.proc)} a=${addrArg(file, n, op, s.addr, maps)} value=${(s.value as number) >>> 0}`;
        break;
      case 'read':
        line = `read p=${pid(s.proc)} a=${addrArg(file, n, op, s.addr, maps)}`;
        if (typeof s.value === 'number') st.value = s.value >>> 0;
        break;
      case 'munmap':
      case 'mprotect':
      case 'madvise': {
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
            refuse(file, n, op, `advice '${String(s.advice)}' is not dontneed, hugepage, nohugepage or populate_write`);
          extra = ` advice=${adv}`;
        }
        line = `${op} p=${p} a=${a} len=${l}${extra}`;
        break;
      }
      case 'mlock':
      case 'munlock': {
        // mlock2(MLOCK_ONFAULT if onfault) / munlock(); the probe reads VmLck after every step
        const p = pid(s.proc);
        const a = addrArg(file, n, op, s.addr, maps);
        const l = len(s.addr, s.len);
        st.len = l;
        line = `${op} p=${p} a=${a} len=${l}${op === 'mlock' ? ` onfault=${s.onfault === true ? 1 : 0}` : ''}`;
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
        for (const [name, pin] of pins) {
          if (pin.proc === s.proc)
            refuse(
              file,
              n,
              op,
              `exit of '${s.proc}' while it holds pin '${name}': io_uring releases a ring's buffers when the process exits (the model's pin outlives it); unpin first`,
            );
        }
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
      default:
        return refuse(file, n, op, `op ${op} has no kernel mapping`);
    }
    lines.push(`${n} ${line}`);
    steps.push(st);
  });
  return { program: lines.join('\n') + '\n', machine, steps };
}

/** A time limit for offline (the kernel retries while pages fail to migrate; a signal ends it with -EINTR). */
export let OFFLINE_MS = 10000;
export function setOfflineTimeout(ms: number): void {
  OFFLINE_MS = ms;
}

/** comm is 15 characters; the probe's names have no spaces. */
function comm(name: string): string {
  return name.slice(0, 15);
}
