// Shared test helpers: boot a machine from a command line, as the CLI does.
import { bootFromSpec } from '../harness/layout';
import { Memmap } from '../mm/memmap';
import { zoneInfo, ZoneInfo } from '../mm/vmstat';
import { ZONE_NAMES } from '../mm/mmzone';

export function boot(cmdline: string, geometry?: string): Memmap {
  return bootFromSpec({ cmdline, geometry }).m;
}

export function zone(m: Memmap, name: (typeof ZONE_NAMES)[number]): ZoneInfo {
  return zoneInfo(m, ZONE_NAMES.indexOf(name));
}

export const MiB = 256; // 4 KiB frames per MiB
export const GiB = 262144;
