// What scenario steps share: the context, the step-kind interface, and value parsers (sizes,
// addresses, processes, protections) that turn a bad value into a ScenarioError naming it.
import { Memmap, PAGE_SIZE, PG_zero } from '../mm/memmap';
import { memparse } from '../mm/cmdline';
import { PROT_READ, PROT_WRITE, vmaList } from '../mm/mmap';
import { followPte } from '../mm/memory';
import { ptlLock, ptlUnlock } from '../mm/mm_types';
import { ZONE_NAMES } from '../mm/mmzone';
import { ESRCH } from '../mm/errno';
import { z } from 'zod';
import { vaPages } from '../mm/pgtable';

export class ScenarioError extends Error {
  constructor(msg: string) {
    super(msg);
    this.name = 'ScenarioError';
  }
}

export type Step = Record<string, unknown> & { op: string };

export interface StepResult {
  step: number;
  op: string;
  proc?: string;
  rc: number;
  /** errno name for rc < 0, else the value */
  result: string;
  detail: string;
  ok: boolean;
}

/** The state a scenario's steps share: the machine, named processes and named mappings. */
export interface ScenarioContext {
  m: Memmap;
  procs: Map<string, number>;
  /** processes the OOM killer took, with the step that killed them */
  dead: Map<string, number>;
  /** dead processes not killed by the OOM killer: what killed them (an oops) */
  deadBy?: Map<string, string>;
  /** named things steps hold: pins, kernel allocations, isolated folios */
  held: Map<
    string,
    {
      kind: string;
      pages: number[];
      n: number;
      flags?: number;
      proc?: string;
      at?: number;
      /** kernel memory the hold keeps (a long-term pin's io_mapped_ubuf) */
      kmem?: import('../mm/slab').KBuf[];
    }
  >;
  /** pins released with their process (exit or OOM kill): pin name -> its process, and whether the pin step died */
  released: Map<string, { proc: string; inStep: boolean }>;
  /** open devices by handle (op: open ... as:) */
  devs: Map<string, import('./scenario_dev').OpenDevice>;
  /** every device handle ever opened -> its process (a step on a dead process's device is -ESRCH) */
  devProcs: Map<string, string>;
  step: number;
  /** name -> first vpn and length in pages */
  maps: Map<string, { proc: string; vpn: number; nrPages: number }>;
  out: (line: string) => void;
  /** what the machine's command line sets for device models (BootParams.deviceParams) */
  deviceParams?: Readonly<Record<string, number>>;
  /** fault points a `fault` step armed: every call of them fails until disarmed */
  faults: Set<string>;
}

/**
 * A step kind: its fields (name -> zod schema: the file's schema is built from these tables, so each
 * field is declared once) and how it runs. Values that depend on the run - a process or mapping name,
 * whether a block exists - are checked when the step runs (ScenarioError).
 */
export interface StepKind {
  fields: Record<string, z.ZodTypeAny>;
  required: string[];
  run(ctx: ScenarioContext, s: Step): { rc: number; detail: string; bad?: boolean };
}

export function fail(where: string, what: string): never {
  throw new ScenarioError(`${where}: ${what}`);
}

/** Bytes of a size (bytes with K/M/G/T/P/E, a number of bytes, or "Np" pages; whole 4K pages), or null. */
export function sizeBytes(v: unknown): number | null {
  let bytes: number;
  if (typeof v === 'number') bytes = v;
  else if (typeof v === 'string' && /^[0-9]+p$/.test(v)) bytes = Number(v.slice(0, -1)) * PAGE_SIZE;
  else if (typeof v === 'string') {
    try {
      bytes = memparse('size', v);
    } catch {
      return null;
    }
  } else return null;
  return Number.isSafeInteger(bytes) && bytes > 0 && bytes % PAGE_SIZE === 0 ? bytes : null;
}

/** A size in pages; the file's schema has already checked it (sizeBytes). */
export function sizePages(where: string, v: unknown): number {
  const bytes = sizeBytes(v);
  if (bytes === null) fail(where, `size ${JSON.stringify(v)} is not a positive whole number of 4K pages`);
  return bytes / PAGE_SIZE;
}

/** Is v an address as the file may write it (a mapping name, name+offset, a page-aligned byte address)? */
function addrSyntax(v: unknown): boolean {
  const aligned = (b: number): boolean => Number.isSafeInteger(b) && b >= 0 && b % PAGE_SIZE === 0;
  if (typeof v === 'number') return aligned(v);
  if (typeof v !== 'string') return false;
  const mt = /^([A-Za-z_][A-Za-z0-9_]*)(?:\+(.+))?$/.exec(v);
  const off = mt ? mt[2] : v;
  if (off === undefined) return true;
  if (/^[0-9]+p$/.test(off)) return aligned(Number(off.slice(0, -1)) * PAGE_SIZE);
  try {
    return aligned(memparse('address', off));
  } catch {
    return false;
  }
}

const expecting = (message: string) => ({ errorMap: () => ({ message }) });
export const NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The field types of scenario steps (docs/scenarios.md, "Values"). */
export const FIELD = {
  proc: z.string(expecting('expected a process name like a, qemu or vm-1')).regex(/^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/),
  name: z
    .string(expecting('expected a name like buf or p_1 (a letter or _, then letters, digits, _)'))
    .regex(NAME_RE)
    .max(64),
  bool: z.boolean(expecting('expected true or false')),
  size: z.custom<number | string>((v) => sizeBytes(v) !== null, {
    message: 'expected a size like 4K, 2M or 1G, or 16p for 16 pages (whole 4K pages)',
  }),
  memlock: z.custom<number | string>((v) => v === 'unlimited' || v === 0 || v === '0' || sizeBytes(v) !== null, {
    message: 'expected a size like 64K, 0, or unlimited',
  }),
  addr: z.custom<number | string>(addrSyntax, {
    message: 'expected an address: a mapping name, name+offset (buf+8K, buf+2p) or a page-aligned byte address',
  }),
  /** a memory word, taken modulo 2^32 */
  word: z.number(expecting('expected a whole number (a memory word, taken modulo 2^32)')).int().safe(),
  block: z.number(expecting('expected a memory block number (memoryN)')).int().nonnegative().safe(),
  enum: (values: readonly [string, ...string[]]) =>
    z.enum(values as [string, ...string[]], expecting(`expected one of ${values.join(', ')}`)),
  int: (min: number, max: number, what: string) =>
    z
      .number(expecting(`expected ${what} ${min}..${max}`))
      .int()
      .min(min)
      .max(max),
};

/** An address: a mapping name with an optional +offset ("buf+8K"), or a hex/decimal byte address. */
export function addrVpn(ctx: ScenarioContext, where: string, v: unknown): number {
  if (typeof v === 'number') return checkAligned(where, v);
  if (typeof v !== 'string') fail(where, `bad address ${JSON.stringify(v)}`);
  const mt = /^([A-Za-z_][A-Za-z0-9_]*)(?:\+(.+))?$/.exec(v);
  if (mt) {
    const map = ctx.maps.get(mt[1]!);
    if (!map) fail(where, `unknown mapping '${mt[1]}' (name one with 'as:' on an mmap step)`);
    const off = mt[2] === undefined ? 0 : offsetBytes(where, mt[2]);
    return map.vpn + checkAligned(where, off);
  }
  return checkAligned(where, offsetBytes(where, v));
}

export function offsetBytes(where: string, s: string): number {
  if (/^[0-9]+p$/.test(s)) return Number(s.slice(0, -1)) * PAGE_SIZE;
  try {
    return memparse('address', s);
  } catch {
    return fail(where, `bad address or offset '${s}'`);
  }
}

export function checkAligned(where: string, bytes: number): number {
  if (!Number.isSafeInteger(bytes) || bytes < 0 || bytes % PAGE_SIZE)
    fail(where, `address ${bytes} is not page aligned`);
  return bytes / PAGE_SIZE;
}

/** The mm of the step's process; a process the OOM killer took answers -ESRCH. */
export function proc(ctx: ScenarioContext, where: string, s: Step): number {
  const name = s.proc;
  if (typeof name !== 'string') fail(where, "needs 'proc:' (a process name)");
  if (ctx.dead.has(name)) return -ESRCH;
  const mm = ctx.procs.get(name);
  if (mm === undefined) fail(where, `unknown process '${name}' (create it with 'op: spawn' or 'op: fork')`);
  return mm;
}

export function prot(where: string, v: unknown): number {
  if (v === undefined) return PROT_READ | PROT_WRITE;
  if (v === 'none') return 0;
  if (typeof v !== 'string' || !/^r?w?$/.test(v)) fail(where, `prot '${String(v)}' is not one of r, rw, w, none`);
  return (v.includes('r') ? PROT_READ : 0) | (v.includes('w') ? PROT_WRITE : 0);
}

/** "16 pages (Movable 12, Normal 4)": where the range's present pages live. */
export function residency(m: Memmap, mm: number, vpn: number, nrPages: number): string {
  const byZone = new Array(ZONE_NAMES.length).fill(0);
  let present = 0;
  let zero = 0;
  let offline = 0;
  // only pages inside VMAs can be present: the walk costs what is mapped, whatever the range's length
  const vmas = vmaList(m, mm).filter((x) => x.end > vpn && x.start < vpn + nrPages);
  ptlLock(m, mm);
  for (const x of vmas) {
    for (let v = Math.max(x.start, vpn), end = Math.min(x.end, vpn + nrPages, vaPages(m)); v < end; v++) {
      const t = followPte(m, mm, v);
      if (!t || t.migrating) continue;
      if (m.flags[t.pfn]! & PG_zero) {
        zero++;
        continue;
      }
      present++;
      if (m.pageZonenum(t.pfn) < ZONE_NAMES.length) byZone[m.pageZonenum(t.pfn)]++;
      else offline++; // a frame of an offline memory block (R20)
    }
  }
  ptlUnlock(m, mm);
  const zones = byZone.map((n, z) => (n ? `${ZONE_NAMES[z]} ${n}` : '')).filter(Boolean);
  if (offline) zones.push(`offline memory ${offline}`);
  return `${present} pages present${zones.length ? ` (${zones.join(', ')})` : ''}${zero ? `, ${zero} zero-page` : ''}`;
}

export const hex = (vpn: number) => '0x' + (vpn * PAGE_SIZE).toString(16);

/** The vmstat step's items: `items:` as a list (spaces or commas), or the pinning counters. */
export function vmstatItems(items: unknown): string[] {
  if (items !== undefined) return String(items).split(/[ ,]+/).filter(Boolean);
  return [
    'nr_foll_pin_acquired',
    'nr_foll_pin_released',
    'pgmigrate_success',
    'pgmigrate_fail',
    'thp_migration_split',
    'oom_kill',
  ];
}
