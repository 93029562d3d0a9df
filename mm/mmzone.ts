// Zones and migratetypes (include/linux/mmzone.h). x86-64 has no ZONE_HIGHMEM; ZONE_DEVICE exists (Debian's
// amd64 config enables it) but boot memory never lands there.

export const ZONE_DMA = 0;
export const ZONE_DMA32 = 1;
export const ZONE_NORMAL = 2;
export const ZONE_MOVABLE = 3;
export const ZONE_DEVICE = 4;
export const MAX_NR_ZONES = 5;
export const ZONE_NAMES = ['DMA', 'DMA32', 'Normal', 'Movable', 'Device'] as const;

// enum migratetype; MIGRATE_PCPTYPES = the types that have per-CPU lists.
export const MIGRATE_UNMOVABLE = 0;
export const MIGRATE_MOVABLE = 1;
export const MIGRATE_RECLAIMABLE = 2;
export const MIGRATE_PCPTYPES = 3;
export const MIGRATE_HIGHATOMIC = 3;
export const MIGRATE_CMA = 4;
export const MIGRATE_ISOLATE = 5;
export const MIGRATE_TYPES = 6;
// migratetype_names[] (mm/vmstat.c)
export const MIGRATETYPE_NAMES = ['Unmovable', 'Movable', 'Reclaimable', 'HighAtomic', 'CMA', 'Isolate'] as const;

/** migratetype_is_mergeable(): CMA, ISOLATE and HIGHATOMIC blocks never merge with other types. */
export function migratetypeIsMergeable(mt: number): boolean {
  return mt < MIGRATE_PCPTYPES;
}

export function zoneName(zid: number): string {
  return ZONE_NAMES[zid] ?? `zone${zid}`;
}
