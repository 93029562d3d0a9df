// The kernel command line: the early_param()/__setup()/module_param handlers pinlab honours, each
// named after the kernel function and file it models. Unknown parameters, bad units and values that
// cannot describe a machine are errors (CmdlineError: exit 2); where the kernel clamps or ignores a
// value it is done the same way and said in a warning.

import { Geometry, MINI, X86_64, PAGE_SHIFT } from './memmap';
import { E820Edit, E820_TYPE_ACPI, E820_TYPE_PRAM, E820_TYPE_RAM, E820_TYPE_RESERVED, QemuMachine } from './e820';

export class CmdlineError extends Error {
  constructor(msg: string) {
    super(msg);
    this.name = 'CmdlineError';
  }
}

/** kernelcore=/movablecore=: a size or a percentage of memory (cmdline_parse_core, mm/mm_init.c). */
interface CoreSize {
  bytes?: number;
  percent?: number;
}

interface CmaParam {
  bytes: number;
  /** explicit placement: cma=size@base (fixed) or cma=size@base-limit */
  baseBytes?: number;
  limitBytes?: number;
}

export interface HugepageParam {
  /** hstate order (9 = 2 MiB, 18 = 1 GiB on x86-64) */
  order: number;
  count: number;
}

type OnlineTypeName = 'offline' | 'online' | 'online_kernel' | 'online_movable';

export interface BootParams {
  cmdline: string;
  geometry: Geometry;
  /** mem=: boot RAM in bytes */
  memBytes: number;
  kernelcore: CoreSize | null;
  movablecore: CoreSize | null;
  cma: CmaParam | null;
  movableNode: boolean;
  /** memhp_default_state= (null: the build default, offline) */
  memhpDefaultState: OnlineTypeName | null;
  onlinePolicy: 'contig-zones' | 'auto-movable';
  autoMovableRatio: number;
  hugepages: HugepageParam[];
  /** hugetlb_free_vmemmap=: HVO (mm/hugetlb_vmemmap.c vmemmap_optimize_enabled; off unless ..._DEFAULT_ON) */
  hugetlbFreeVmemmap: boolean;
  /** vm.min_free_kbytes set by the user, or null for the kernel's own value */
  minFreeKbytes: number | null;
  watermarkScaleFactor: number;
  thp: 'always' | 'madvise' | 'never';
  /** pinlab.hotplug=: hot-pluggable memory that boots offline, in bytes */
  hotplugBytes: number;
  /** pinlab.device_coherent=: a device's coherent memory (MEMORY_DEVICE_COHERENT, memremap_pages()), in bytes */
  deviceCoherentBytes: number;
  /** pinlab.machine=: the QEMU machine whose firmware map boots an x86_64 geometry (pc, as pinlab kernel runs) */
  machine: QemuMachine;
  /** pinlab.kmem=: whether the booted kernel's own memory (mm_init.ts KERNEL_FOOTPRINTS) is allocated */
  kmem: boolean;
  /**
   * What device models read (DeviceEnv.params): vfio_iommu_type1.dma_entry_limit= (the module parameter,
   * as `dma_entry_limit`) and pinlab.iommu_aw_bits= (QEMU intel-iommu's aw-bits, as `addr_width`)
   */
  deviceParams: Record<string, number>;
  /** memmap=: edits of the e820 map in command-line order (parse_memmap_opt) */
  memmap: E820Edit[];
  /** numa=fake=N: emulated NUMA nodes (numa_emu_cmdline(); 0 = off, one node) */
  numaFake: number;
  /**
   * pinlab.numa_nodes=SIZE,SIZE...: the machine's NUMA nodes, bytes of RAM each from the bottom (QEMU's
   * `-numa node,mem=SIZE`, which the guest reads from the SRAT); the last node takes what is left
   */
  numaNodeBytes: number[];
  /** pinlab.hotpluggable_node=N[,M]: nodes whose memory the firmware (SRAT) marks hotpluggable */
  hotpluggableNodes: number[];
  warnings: string[];
}

/** MAX_NUMNODES pinlab handles (the node id takes two bits of page->flags: mm/memmap.ts). */
export const PINLAB_MAX_NUMNODES = 4;

const SUFFIX: Record<string, number> = { K: 10, M: 20, G: 30, T: 40, P: 50, E: 60 };

/** memparse() (lib/cmdline.c): a number (0x hex, 0 octal) with an optional K/M/G/T/P/E suffix. */
export function memparse(param: string, text: string): number {
  const m = /^(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)([KkMmGgTtPpEe]?)$/.exec(text);
  if (!m)
    throw new CmdlineError(
      `${param}: bad size '${text}' (expected a number with an optional K, M, G, T, P or E suffix)`,
    );
  const digits = m[1]!;
  let v =
    digits.startsWith('0x') || digits.startsWith('0X')
      ? parseInt(digits.slice(2), 16)
      : digits.length > 1 && digits.startsWith('0')
        ? parseInt(digits.slice(1), 8)
        : parseInt(digits, 10);
  if (m[2]) v *= 2 ** SUFFIX[m[2].toUpperCase()]!;
  if (!Number.isSafeInteger(v)) throw new CmdlineError(`${param}: size '${text}' is too large`);
  return v;
}

function parseCore(param: string, text: string): CoreSize {
  // cmdline_parse_core(): "nn%" or a memparse size; kernelcore=mirror is the mirrored-memory mode.
  if (text === 'mirror')
    throw new CmdlineError(`${param}: 'mirror' needs mirrored memory, which pinlab does not model`);
  const pm = /^([0-9]+)%$/.exec(text);
  if (pm) {
    const percent = Number(pm[1]);
    if (percent > 100) throw new CmdlineError(`${param}: ${text} is more than 100%`);
    return { percent };
  }
  return { bytes: memparse(param, text) };
}

function parseBool(param: string, text: string): boolean {
  // kstrtobool()
  if (/^(1|y|Y|on)$/.test(text)) return true;
  if (/^(0|n|N|off)$/.test(text)) return false;
  throw new CmdlineError(`${param}: expected a boolean, got '${text}'`);
}

function parseUint(param: string, text: string): number {
  if (!/^[0-9]+$/.test(text)) throw new CmdlineError(`${param}: expected a non-negative integer, got '${text}'`);
  const v = Number(text);
  if (!Number.isSafeInteger(v)) throw new CmdlineError(`${param}: '${text}' is too large`);
  return v;
}

/** vm.min_free_kbytes: an int >= 0 (proc_dointvec_minmax with extra1 = SYSCTL_ZERO, no upper bound). */
function parseMinFreeKbytes(param: string, text: string): number {
  const v = parseUint(param, text);
  if (v > 2 ** 31 - 1)
    throw new CmdlineError(`${param}: ${v} out of range 0..2147483647 (an int: proc_dointvec_minmax)`);
  return v;
}

/** early_cma() (kernel/dma/contiguous.c): cma=nn[MG]@[start[MG][-end[MG]]] */
function parseCma(text: string): CmaParam {
  const [size, place] = text.split('@', 2) as [string, string | undefined];
  if (size.endsWith('%')) throw new CmdlineError(`cma: percentages need CONFIG_CMA_SIZE_SEL_PERCENTAGE; give a size`);
  const p: CmaParam = { bytes: memparse('cma', size) };
  if (p.bytes === 0) throw new CmdlineError('cma: size 0');
  if (place !== undefined) {
    const [base, limit] = place.split('-', 2) as [string, string | undefined];
    p.baseBytes = memparse('cma', base);
    if (limit !== undefined) p.limitBytes = memparse('cma', limit);
  }
  return p;
}

/**
 * hugepagesz_setup(): x86-64 supports 2M (PMD) and 1G (PUD) pages. In a miniature geometry the names
 * keep their page-table level: 2M is one PMD (1 << pageblock_order frames), 1G one PUD (512 PMDs).
 */
function hugepageOrder(param: string, text: string, g: Geometry): number {
  const bytes = memparse(param, text);
  if (bytes === 2 << 20) return g.pageblockOrder;
  if (bytes === 1 << 30) return g.pageblockOrder + 9;
  throw new CmdlineError(`${param}: unsupported page size ${text} (x86-64 has 2M and 1G)`);
}

/** parse_memmap_one(): nn@ss (RAM), nn$ss (reserved), nn#ss (ACPI data), nn!ss (persistent), nn (a limit), exactmap. */
function parseMemmapOne(text: string): E820Edit {
  if (text === 'exactmap') return { kind: 'exactmap' };
  const m = /^([^@$#!%]+)(?:([@$#!%])(.*))?$/.exec(text);
  if (!m) throw new CmdlineError(`memmap: bad value '${text}' (nn[KMG]@ss, nn$ss, nn#ss, nn!ss, nn or exactmap)`);
  const size = memparse('memmap', m[1]!);
  if (m[2] === undefined) return { kind: 'limit', bytes: size };
  if (m[2] === '%') throw new CmdlineError(`memmap: '${text}': the % form (change a range's type) is not modelled`);
  const addr = memparse('memmap', m[3]!);
  const type = { '@': E820_TYPE_RAM, $: E820_TYPE_RESERVED, '#': E820_TYPE_ACPI, '!': E820_TYPE_PRAM }[m[2]]!;
  return { kind: 'add', addr, size, type };
}

export function parseGeometry(spec: string | undefined): Geometry {
  if (!spec || spec === 'x86_64') return { ...X86_64 };
  const parts = spec.split(',');
  let g: Geometry;
  if (parts[0] === 'mini') {
    g = { ...MINI };
    parts.shift();
  } else if (parts[0] === 'x86_64') {
    g = { ...X86_64 };
    parts.shift();
  } else g = { ...X86_64 };
  for (const kv of parts) {
    const [k, v] = kv.split('=', 2) as [string, string | undefined];
    if (v === undefined)
      throw new CmdlineError(`geometry: unknown preset '${kv}' (presets: x86_64, mini; then key=value overrides)`);
    const keys = ['pageblock_order', 'max_order', 'block_pages', 'cpus', 'kernel_pfn'];
    if (!keys.includes(k)) throw new CmdlineError(`geometry: unknown key '${k}' (keys: ${keys.join(', ')})`);
    const n = parseUint(`geometry ${k}`, v);
    if (k === 'pageblock_order') g.pageblockOrder = n;
    else if (k === 'max_order') g.maxOrder = n;
    else if (k === 'block_pages') g.blockPages = n;
    else if (k === 'kernel_pfn')
      g.kernelStartPfn = n; // where the kernel image (and ZERO_PAGE) sits: physical KASLR
    else g.nrCpus = n;
  }
  if (g.maxOrder < 1 || g.maxOrder > 20) throw new CmdlineError(`geometry: max_order ${g.maxOrder} out of range 1..20`);
  if (g.pageblockOrder < 1 || g.pageblockOrder > g.maxOrder)
    throw new CmdlineError(`geometry: pageblock_order ${g.pageblockOrder} must be in 1..max_order (${g.maxOrder})`);
  if (g.blockPages <= 0 || (g.blockPages & (g.blockPages - 1)) !== 0 || g.blockPages < 1 << g.maxOrder) {
    throw new CmdlineError(
      `geometry: block_pages ${g.blockPages} must be a power of two of at least MAX_ORDER_NR_PAGES (${1 << g.maxOrder})`,
    );
  }
  if (g.nrCpus < 1 || g.nrCpus > 64) throw new CmdlineError(`geometry: cpus ${g.nrCpus} out of range 1..64`);
  return g;
}

export const DEFAULT_CMDLINE = 'mem=1G movablecore=512M';

/**
 * Split a command line as the kernel's next_arg() (kernel/params.c) does: a double quote toggles
 * quoting, so spaces inside quotes stay in the argument; a quote opening the argument or its value,
 * and the one closing it, are dropped. A quote left open runs to the end of the line (a warning).
 */
function splitArgs(cmdline: string, warnings: string[]): string[] {
  const out: string[] = [];
  let s = cmdline.replace(/^\s+/, '');
  while (s) {
    let inQuote = false;
    let quoted = false;
    if (s[0] === '"') {
      s = s.slice(1);
      inQuote = quoted = true;
    }
    let i = 0;
    let equals = -1;
    for (; i < s.length; i++) {
      if (/\s/.test(s[i]!) && !inQuote) break;
      if (equals < 0 && s[i] === '=') equals = i;
      if (s[i] === '"') inQuote = !inQuote;
    }
    if (inQuote) {
      warnings.push(
        `unterminated quote in '${s.slice(0, i)}': the rest of the command line is one argument (next_arg)`,
      );
    }
    let arg = s.slice(0, i);
    if (equals >= 0 && arg[equals + 1] === '"') {
      // don't include quotes in the value
      arg = arg.slice(0, equals + 1) + arg.slice(equals + 2);
      if (arg.endsWith('"')) arg = arg.slice(0, -1);
    } else if (quoted && arg.endsWith('"')) arg = arg.slice(0, -1);
    if (arg === '')
      throw new CmdlineError(`an empty argument in the command line (a lone '"'): ${JSON.stringify(cmdline)}`);
    out.push(arg);
    s = s.slice(i).replace(/^\s+/, '');
  }
  return out;
}

/**
 * numa_setup() (arch/x86/mm/numa.c): numa=off and numa=fake=N (numa_emu_cmdline(), mm/numa_emulation.c;
 * a plain count: the `NU` size form is not modelled). Above MAX_NUMNODES the kernel reduces it.
 */
function parseNuma(p: BootParams, v: string): void {
  if (v === 'off') {
    p.numaFake = 0;
    return;
  }
  if (!v.startsWith('fake=')) throw new CmdlineError(`numa: '${v}' is not off or fake=N`);
  const n = parseUint('numa=fake', v.slice(5));
  if (n > PINLAB_MAX_NUMNODES) {
    p.warnings.push(`numa=fake=${n} too large, reducing to ${PINLAB_MAX_NUMNODES}`);
    p.numaFake = PINLAB_MAX_NUMNODES;
  } else p.numaFake = n <= 1 ? 0 : n;
}

// eslint-disable-next-line max-lines-per-function -- a table: one case per kernel parameter
export function parseCmdline(cmdline: string, geometry: Geometry): BootParams {
  const p: BootParams = {
    cmdline,
    geometry,
    memBytes: geometry.dma32EndPfn ? 1 << 30 : 128 << PAGE_SHIFT,
    kernelcore: null,
    movablecore: null,
    cma: null,
    movableNode: false,
    memhpDefaultState: null,
    onlinePolicy: 'contig-zones',
    autoMovableRatio: 301,
    hugepages: [],
    hugetlbFreeVmemmap: false,
    minFreeKbytes: null,
    watermarkScaleFactor: 10,
    thp: 'madvise',
    hotplugBytes: 0,
    deviceCoherentBytes: 0,
    machine: 'pc',
    memmap: [],
    kmem: geometry.dma32EndPfn !== 0,
    deviceParams: {},
    numaFake: 0,
    numaNodeBytes: [],
    hotpluggableNodes: [],
    warnings: [],
  };
  let hugeOrder = geometry.pageblockOrder; // default_hstate: hugepagesz= before hugepages= applies to it
  const seen = new Set<string>();
  for (const arg of splitArgs(cmdline, p.warnings)) {
    const eq = arg.indexOf('=');
    const key = eq < 0 ? arg : arg.slice(0, eq);
    const val = eq < 0 ? undefined : arg.slice(eq + 1);
    const need = (): string => {
      if (val === undefined || val === '') throw new CmdlineError(`${key}: needs a value (${key}=...)`);
      return val;
    };
    if (seen.has(key) && key !== 'hugepagesz' && key !== 'hugepages' && key !== 'memmap')
      p.warnings.push(`${key}= given twice: the last one wins`);
    seen.add(key);
    switch (key) {
      case 'mem': {
        // parse_memopt(), arch/x86/kernel/e820.c
        const v = need();
        if (v === 'nopentium') throw new CmdlineError('mem=nopentium is a 32-bit option');
        p.memBytes = memparse('mem', v);
        if (p.memBytes === 0) throw new CmdlineError('mem: size 0');
        break;
      }
      case 'kernelcore':
        p.kernelcore = parseCore('kernelcore', need());
        break;
      case 'movablecore':
        p.movablecore = parseCore('movablecore', need());
        break;
      case 'cma':
        p.cma = parseCma(need());
        break;
      case 'movable_node': // cmdline_parse_movable_node(), mm/memory_hotplug.c
        if (val !== undefined) throw new CmdlineError('movable_node: takes no value');
        p.movableNode = true;
        break;
      case 'memhp_default_state': {
        // setup_memhp_default_state(), mm/memory_hotplug.c
        const v = need();
        if (v !== 'offline' && v !== 'online' && v !== 'online_kernel' && v !== 'online_movable') {
          throw new CmdlineError(
            `memhp_default_state: '${v}' is not one of offline, online, online_kernel, online_movable`,
          );
        }
        p.memhpDefaultState = v;
        break;
      }
      case 'memory_hotplug.online_policy': {
        // online_policy module param, mm/memory_hotplug.c
        const v = need();
        if (v !== 'contig-zones' && v !== 'auto-movable')
          throw new CmdlineError(`memory_hotplug.online_policy: '${v}' is not contig-zones or auto-movable`);
        p.onlinePolicy = v;
        break;
      }
      case 'memory_hotplug.auto_movable_ratio':
        p.autoMovableRatio = parseUint(key, need());
        break;
      case 'memory_hotplug.auto_movable_numa_aware':
        parseBool(key, need());
        break; // one node: no effect
      case 'hugetlb_free_vmemmap': // core_param(hugetlb_free_vmemmap), mm/hugetlb_vmemmap.c
        p.hugetlbFreeVmemmap = parseBool(key, need());
        break;
      case 'hugepagesz':
        hugeOrder = hugepageOrder(key, need(), geometry);
        break;
      case 'default_hugepagesz':
        hugeOrder = hugepageOrder(key, need(), geometry);
        break;
      case 'hugepages': {
        // hugepages_setup(), mm/hugetlb.c
        const v = need();
        if (/^[0-9]+:/.test(v)) throw new CmdlineError('hugepages: per-node counts (N:count) need more than one node');
        const count = parseUint(key, v);
        const prev = p.hugepages.find((h) => h.order === hugeOrder);
        if (prev) {
          p.warnings.push(
            `hugepages= specified twice for ${hugeOrder === geometry.pageblockOrder ? '2M' : '1G'} pages: the last one wins`,
          );
          prev.count = count;
        } else p.hugepages.push({ order: hugeOrder, count });
        break;
      }
      case 'min_free_kbytes':
        // Not a kernel boot parameter: the kernel knows only the sysctl. Taken as sysctl.vm.min_free_kbytes.
        p.warnings.push('min_free_kbytes= is not a kernel boot parameter; applied as sysctl.vm.min_free_kbytes=');
        p.minFreeKbytes = parseMinFreeKbytes(key, need());
        break;
      case 'sysctl.vm.min_free_kbytes':
        p.minFreeKbytes = parseMinFreeKbytes(key, need());
        break;
      case 'sysctl.vm.watermark_scale_factor': {
        // 1..3000 (proc_dointvec_minmax)
        const v = parseUint(key, need());
        if (v < 1 || v > 3000) throw new CmdlineError(`${key}: ${v} out of range 1..3000`);
        p.watermarkScaleFactor = v;
        break;
      }
      case 'transparent_hugepage': {
        // setup_transparent_hugepage(), mm/huge_memory.c
        const v = need();
        if (v !== 'always' && v !== 'madvise' && v !== 'never')
          throw new CmdlineError(`transparent_hugepage: '${v}' is not always, madvise or never`);
        p.thp = v;
        break;
      }
      case 'pinlab.hotplug':
        p.hotplugBytes = memparse(key, need());
        break;
      case 'pinlab.device_coherent': // a driver's memremap_pages() of MEMORY_DEVICE_COHERENT memory (R17)
        p.deviceCoherentBytes = memparse(key, need());
        break;
      case 'memmap': // parse_memmap_opt(), arch/x86/kernel/e820.c: comma-separated parse_memmap_one()s
        if (!geometry.dma32EndPfn) throw new CmdlineError('memmap: a miniature geometry has no e820 map');
        for (const one of need().split(',')) p.memmap.push(parseMemmapOne(one));
        break;
      case 'vfio_iommu_type1.dma_entry_limit': // module_param_named(dma_entry_limit, ..., uint, 0644)
        p.deviceParams.dma_entry_limit = parseUint(key, need());
        if (p.deviceParams.dma_entry_limit > 0xffffffff)
          throw new CmdlineError(`${key}: ${p.deviceParams.dma_entry_limit} does not fit a uint`);
        break;
      case 'pinlab.iommu_aw_bits': {
        // QEMU's intel-iommu aw-bits: 39 (three-level tables) or 48 (four)
        const v = need();
        if (v !== '39' && v !== '48') throw new CmdlineError(`pinlab.iommu_aw_bits: '${v}' is not 39 or 48`);
        p.deviceParams.addr_width = Number(v);
        break;
      }
      case 'pinlab.kmem': {
        const v = need();
        if (!geometry.dma32EndPfn)
          throw new CmdlineError('pinlab.kmem: a miniature geometry boots no kernel footprint');
        if (v !== 'debian' && v !== 'none') throw new CmdlineError(`pinlab.kmem: '${v}' is not debian or none`);
        p.kmem = v === 'debian';
        break;
      }
      case 'pinlab.machine': {
        const v = need();
        if (!geometry.dma32EndPfn) throw new CmdlineError('pinlab.machine: a miniature geometry is not a PC');
        if (v !== 'pc' && v !== 'q35') throw new CmdlineError(`pinlab.machine: '${v}' is not pc or q35`);
        p.machine = v;
        break;
      }
      case 'numa':
        parseNuma(p, need());
        break;
      case 'pinlab.numa_nodes':
        p.numaNodeBytes = need()
          .split(',')
          .map((v) => memparse(key, v));
        if (p.numaNodeBytes.length > PINLAB_MAX_NUMNODES)
          throw new CmdlineError(`${key}: at most ${PINLAB_MAX_NUMNODES} nodes`);
        break;
      case 'pinlab.hotpluggable_node':
        p.hotpluggableNodes = need()
          .split(',')
          .map((v) => parseUint(key, v));
        if (p.hotpluggableNodes.some((n) => n >= PINLAB_MAX_NUMNODES))
          throw new CmdlineError(`${key}: node ids go up to ${PINLAB_MAX_NUMNODES - 1}`);
        break;
      default:
        throw new CmdlineError(`unknown kernel parameter '${arg}' (see: pinlab layout --help)`);
    }
  }
  if (p.numaFake && p.numaNodeBytes.length > 1)
    throw new CmdlineError('numa=fake= over several physical nodes (pinlab.numa_nodes=) is not modelled');
  return p;
}
