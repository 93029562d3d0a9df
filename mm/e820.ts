// The firmware memory map and its boot-time edits (arch/x86/kernel/e820.c, v6.12): the map QEMU's pc and
// q35 machines (SeaBIOS) give a guest, mem= and memmap= (parse_memopt, parse_memmap_one), the kernel's
// trim_bios_range() (arch/x86/kernel/setup.c), e820__update_table() and the memblock.memory ranges
// e820__memblock_setup() derives from it. Addresses are bytes (numbers: exact below 2^53).

export const E820_TYPE_RAM = 1;
export const E820_TYPE_RESERVED = 2;
export const E820_TYPE_ACPI = 3;
export const E820_TYPE_PRAM = 12;
const E820_MAX_ENTRIES = 128 + 3 * 8; // E820_MAX_ENTRIES with MAX_NUMNODES 8

export interface E820Entry {
  addr: number;
  size: number;
  type: number;
}

export type QemuMachine = 'pc' | 'q35';
export const QEMU_MACHINES: readonly QemuMachine[] = ['pc', 'q35'];

/** One boot-time edit of the map: mem=/memmap=nn (a limit), memmap=nn@ss, nn$ss, nn#ss, nn!ss, exactmap. */
export type E820Edit =
  { kind: 'limit'; bytes: number } | { kind: 'add'; addr: number; size: number; type: number } | { kind: 'exactmap' };

const GiB = 2 ** 30;
const MiB = 2 ** 20;
/** SeaBIOS keeps its tables in the top 128K of the RAM below 4G (reserved in its e820). */
const SEABIOS_TOP = 0x20000;
/** The pc's and q35's max_ram_below_4g defaults: past them RAM is split at 3G (pc) or 2G (q35). */
const SPLIT: Record<QemuMachine, { lowmemMax: number; split: number }> = {
  pc: { lowmemMax: 0xe0000000, split: 0xc0000000 }, // pc_init1(), hw/i386/pc_piix.c
  q35: { lowmemMax: 0xb0000000, split: 0x80000000 }, // pc_q35_init(), hw/i386/pc_q35.c
};

/**
 * What `pinlab kernel` gives QEMU for pinlab's mem=SIZE: -m SIZE+2M and the kernel's mem=SIZE when all of
 * it fits below the PCI hole (so RAM ends at exactly SIZE, as blocks are whole), else -m SIZE and no mem=.
 */
export function qemuRam(memBytes: number, machine: QemuMachine): { ramBytes: number; memLimit: number | null } {
  const mib = Math.ceil(memBytes / MiB) * MiB;
  if (mib + 2 * MiB < SPLIT[machine].lowmemMax) return { ramBytes: mib + 2 * MiB, memLimit: mib };
  return { ramBytes: mib, memLimit: null };
}

/** The e820 map QEMU's machine with SeaBIOS gives a guest of ramBytes (as Debian's QEMU 7.2 prints it). */
export function qemuE820(machine: QemuMachine, ramBytes: number): E820Entry[] {
  const { lowmemMax, split } = SPLIT[machine];
  const below = ramBytes >= lowmemMax ? split : ramBytes;
  const above = ramBytes - below;
  const t: E820Entry[] = [
    { addr: 0, size: 0x9fc00, type: E820_TYPE_RAM },
    { addr: 0x9fc00, size: 0x400, type: E820_TYPE_RESERVED }, // EBDA
    { addr: 0xf0000, size: 0x10000, type: E820_TYPE_RESERVED }, // the BIOS
    { addr: 0x100000, size: below - SEABIOS_TOP - 0x100000, type: E820_TYPE_RAM },
    { addr: below - SEABIOS_TOP, size: SEABIOS_TOP, type: E820_TYPE_RESERVED },
  ];
  if (machine === 'q35') {
    t.push({ addr: 0xb0000000, size: 0x10000000, type: E820_TYPE_RESERVED }); // MMCONFIG
    t.push({ addr: 0xfed1c000, size: 0x4000, type: E820_TYPE_RESERVED }); // the ICH9's RCRB
  }
  t.push({ addr: 0xfffc0000, size: 0x40000, type: E820_TYPE_RESERVED }); // the BIOS ROM
  if (above) t.push({ addr: 4 * GiB, size: above, type: E820_TYPE_RAM });
  t.push({ addr: 0xfd00000000, size: 0x300000000, type: E820_TYPE_RESERVED }); // AMD HyperTransport
  return t;
}

/** __e820__range_add() */
export function e820RangeAdd(t: E820Entry[], addr: number, size: number, type: number): void {
  if (t.length >= E820_MAX_ENTRIES) return; // "too many entries; ignoring"
  t.push({ addr, size, type });
}

/** e820__range_remove(): cut [start, start+size) out of the entries (of oldType only, when given). */
export function e820RangeRemove(t: E820Entry[], start: number, size: number, oldType: number | null): void {
  const end = start + size;
  const out: E820Entry[] = [];
  for (const e of t) {
    const eEnd = e.addr + e.size;
    if ((oldType !== null && e.type !== oldType) || eEnd <= start || e.addr >= end) {
      out.push(e);
      continue;
    }
    if (e.addr < start) out.push({ addr: e.addr, size: start - e.addr, type: e.type });
    if (eEnd > end) out.push({ addr: end, size: eEnd - end, type: e.type });
  }
  t.splice(0, t.length, ...out);
}

/** e820__range_update(): the part of oldType entries in [start, start+size) becomes newType. */
export function e820RangeUpdate(t: E820Entry[], start: number, size: number, oldType: number, newType: number): void {
  const end = start + size;
  const added: E820Entry[] = [];
  for (const e of t) {
    if (e.type !== oldType) continue;
    const s = Math.max(e.addr, start);
    const f = Math.min(e.addr + e.size, end);
    if (s < f) added.push({ addr: s, size: f - s, type: newType });
  }
  e820RangeRemove(t, start, size, oldType);
  t.push(...added);
}

/**
 * e820__update_table(): sorted, overlaps resolved (the larger type number wins, as the kernel's
 * change-point sweep does), adjacent entries of one type merged, empty ones dropped.
 */
export function e820UpdateTable(t: E820Entry[]): void {
  const points = [...new Set(t.flatMap((e) => [e.addr, e.addr + e.size]))].sort((a, b) => a - b);
  const out: E820Entry[] = [];
  for (let i = 0; i + 1 < points.length; i++) {
    const s = points[i]!;
    const f = points[i + 1]!;
    let type = 0;
    for (const e of t) if (e.size && e.addr <= s && e.addr + e.size >= f) type = Math.max(type, e.type);
    if (!type) continue;
    const last = out[out.length - 1];
    if (last && last.type === type && last.addr + last.size === s) last.size += f - s;
    else out.push({ addr: s, size: f - s, type });
  }
  t.splice(0, t.length, ...out);
}

/** parse_memopt() and parse_memmap_one() applied to the table in command-line order. */
export function applyEdits(t: E820Entry[], edits: E820Edit[]): void {
  for (const e of edits) {
    if (e.kind === 'exactmap') t.length = 0;
    else if (e.kind === 'limit') e820RangeRemove(t, e.bytes, Number.MAX_SAFE_INTEGER - e.bytes, E820_TYPE_RAM);
    else e820RangeAdd(t, e.addr, e.size, e.type);
  }
}

/** trim_bios_range(): pfn 0 is the BIOS's (reserved), 640K-1M is never RAM. */
export function trimBiosRange(t: E820Entry[]): void {
  e820RangeUpdate(t, 0, 0x1000, E820_TYPE_RAM, E820_TYPE_RESERVED);
  e820RangeRemove(t, 0xa0000, 0x100000 - 0xa0000, E820_TYPE_RAM);
  e820UpdateTable(t);
}

/** e820__memblock_setup() + memblock_trim_memory(PAGE_SIZE): the RAM entries as whole-page pfn ranges. */
export function memblockRanges(t: E820Entry[]): [number, number][] {
  const out: [number, number][] = [];
  for (const e of [...t].sort((a, b) => a.addr - b.addr)) {
    if (e.type !== E820_TYPE_RAM) continue;
    const s = Math.ceil(e.addr / 4096);
    const f = Math.floor((e.addr + e.size) / 4096);
    if (s >= f) continue;
    const last = out[out.length - 1];
    if (last && last[1] >= s) last[1] = Math.max(last[1], f);
    else out.push([s, f]);
  }
  return out;
}

function hex(a: number): string {
  return '0x' + a.toString(16).padStart(16, '0');
}

/** e820_print_type() */
function typeName(type: number): string {
  switch (type) {
    case E820_TYPE_RAM:
      return 'usable';
    case E820_TYPE_RESERVED:
      return 'reserved';
    case E820_TYPE_ACPI:
      return 'ACPI data';
    case 7:
    case E820_TYPE_PRAM:
      return `persistent (type ${type})`;
    default:
      return `type ${type}`;
  }
}

/** e820__print_table(who) */
export function e820PrintTable(t: E820Entry[], who: string): string {
  return t.map((e) => `${who}: [mem ${hex(e.addr)}-${hex(e.addr + e.size - 1)}] ${typeName(e.type)}\n`).join('');
}

/** The whole early map: QEMU's, the user's edits (printed as "user:" when any), trim_bios_range(). */
export interface BootE820 {
  machine: QemuMachine;
  firmware: E820Entry[];
  /** the table after mem=/memmap= (e820__finish_early_params), null when the command line has none */
  user: E820Entry[] | null;
  /** memblock.memory in pfns */
  memRanges: [number, number][];
}

export function bootE820(machine: QemuMachine, ramBytes: number, edits: E820Edit[]): BootE820 {
  const firmware = qemuE820(machine, ramBytes);
  const t = firmware.map((e) => ({ ...e }));
  let user: E820Entry[] | null = null;
  if (edits.length) {
    applyEdits(t, edits);
    e820UpdateTable(t);
    user = t.map((e) => ({ ...e }));
  }
  trimBiosRange(t);
  return { machine, firmware, user, memRanges: memblockRanges(t) };
}
