// The device-model registry and the one place process addresses in generated ops are resolved.
// Add a model: write devices/<name>.ts exporting a DeviceModel, import it here, add it to MODELS
// (docs/adding-a-device.md).

import type { DeviceModel, DeviceOp, VaddrRef } from './device';
import { PAGE_SIZE } from '../mm/memmap';
import { ESRCH } from '../mm/errno';
import { own } from '../mm/own';
import { examplePinbuf } from './example_pinbuf';
import { rdmaOdp } from './rdma_odp';
import { vfioType1 } from './vfio_type1';
import { vfioMdev } from './vfio_mdev';
import { iommufdAccess } from './iommufd_access';
import { rdmaUmem } from './rdma_umem';
import { ioUringFixed } from './io_uring_fixed';

const MODELS: DeviceModel[] = [vfioType1, vfioMdev, iommufdAccess, rdmaUmem, rdmaOdp, ioUringFixed, examplePinbuf];

/** Every registered model by name. */
export const DEVICE_MODELS: Record<string, DeviceModel> = Object.fromEntries(MODELS.map((d) => [d.name, d]));

/** The model called name; an unknown name throws, listing the known ones. */
export function deviceModel(name: string): DeviceModel {
  const d = own(DEVICE_MODELS, name);
  if (!d) throw new Error(`unknown device model '${name}' (models: ${Object.keys(DEVICE_MODELS).join(', ')})`);
  return d;
}

/** Is rc a result op may return? Successes (>= 0) always are; -ESRCH (the process was killed) too. */
export function errnoAllowed(model: DeviceModel, op: string, rc: number): boolean {
  const allowed = own(model.errnos, op);
  if (!allowed) return false; // unknown op names: false
  if (rc >= 0 || rc === -ESRCH) return true;
  return allowed.includes(rc);
}

/** Mapping names to the first vpn of each mapping, as the user agent created them. */
export type MapTable = Readonly<Record<string, number>>;

export function isVaddrRef(x: unknown): x is VaddrRef {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return false;
  const r = x as Record<string, unknown>;
  return typeof r.map === 'string' && typeof r.off === 'number';
}

/**
 * The byte address a VaddrRef names: (maps[ref.map] + ref.off) * PAGE_SIZE + (ref.byte ?? 0).
 * An unknown mapping name throws: the harness maps every name in shape.maps before devices run.
 */
export function resolveVaddr(maps: MapTable, ref: VaddrRef): number {
  const start = own(maps, ref.map);
  if (start === undefined)
    throw new Error(`resolveVaddr: no mapping named '${ref.map}' (mapped: ${Object.keys(maps).join(', ') || 'none'})`);
  return (start + ref.off) * PAGE_SIZE + (ref.byte ?? 0);
}

/** A copy of op with every VaddrRef, at any depth (arrays and records), replaced by its byte address. */
export function resolveOp(op: DeviceOp, maps: MapTable): DeviceOp {
  const walk = (x: unknown): unknown => {
    if (isVaddrRef(x)) return resolveVaddr(maps, x);
    if (Array.isArray(x)) return x.map(walk);
    if (typeof x === 'object' && x !== null) return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, walk(v)]));
    return x;
  };
  return walk(op) as DeviceOp;
}
