// The properties, in the order the harness checks them within a phase. Adding one: a file in properties/
// and one line here (docs/adding-a-property.md).
import type { Phase, Property } from './property';
import { allocatorSound } from './allocator_sound';
import { layoutSound } from './layout_sound';
import { kernelBug } from './kernel_bug';
import { movableOfflinable } from './movable_offlinable';
import { pinsBalance } from './pins_balance';
import { errnoContract } from './errno_contract';
import { noLongtermPinInMovable } from './no_longterm_pin_in_movable';
import { dmaIntegrity } from './dma_integrity';
import { noLivelock } from './no_livelock';
import { lruIsolationBalanced } from './lru_isolation_balanced';
import { deadlock, hang, kernelPanic, actorThrew, workerExit, propertyThrew, determinism } from './run_failures';

export const PROPERTIES = [
  layoutSound,
  allocatorSound,
  kernelBug,
  noLivelock,
  movableOfflinable,
  pinsBalance,
  errnoContract,
  noLongtermPinInMovable,
  dmaIntegrity,
  lruIsolationBalanced,
  deadlock,
  hang,
  kernelPanic,
  actorThrew,
  workerExit,
  propertyThrew,
  determinism,
] as const;

export type PropertyName = (typeof PROPERTIES)[number]['name'];
export type { Phase, Property, Finding, BootCheck, OpCheck, QuiescentCheck, EndCheck } from './property';

const BY_NAME = new Map<string, Property>(PROPERTIES.map((p) => [p.name, p]));

/** The property of that name (own names only), or undefined. */
export function propertyNamed(name: string): Property | undefined {
  return BY_NAME.get(name);
}

export function isPropertyName(name: string): name is PropertyName {
  return BY_NAME.has(name);
}

/** The run's own failures: reported whatever --property selects. */
export const RUN_FAILURES: readonly string[] = PROPERTIES.filter((p) => (p as Property).runFailure).map((p) => p.name);

/** The kernel's promises: what --property selects among. */
export const PROMISES: readonly string[] = PROPERTIES.filter((p) => !(p as Property).runFailure).map((p) => p.name);

/** The properties a phase checks, in order. */
export function propertiesAt(phase: Phase): readonly Property[] {
  return PROPERTIES.filter((p) => (p.phases as readonly Phase[]).includes(phase));
}
