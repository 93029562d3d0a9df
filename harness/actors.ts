// Every actor kind a case can name, in one place: the kernel agents (harness/agents/) and the device
// models (devices/), each an ActorModel, and how an actor's name ("pinner-0", "vfio-type1-1") names
// its kind. Plugins (harness/plugins.ts) register more: the harness's self-test actors, a bench's.
import type { ActorModel, DeviceModel } from '../devices/device';
import type { AgentEnv, AgentState } from './agents';
import { AGENT_MODELS } from './agents';
import { DEVICE_MODELS } from '../devices/index';

/** An actor model as the harness runs it: every model gets the agents' environment (a superset). */
export type AnyActorModel = ActorModel<AgentEnv, AgentState>;

const MODELS = new Map<string, { model: AnyActorModel; device: DeviceModel | null }>();
for (const a of AGENT_MODELS) MODELS.set(a.name, { model: a, device: null });
for (const d of Object.values(DEVICE_MODELS)) MODELS.set(d.name, { model: d as unknown as AnyActorModel, device: d });

/** Add an actor kind (a plugin's); its name must be new. */
export function registerActorModel(model: AnyActorModel): void {
  if (MODELS.has(model.name)) throw new Error(`actor kind '${model.name}' is registered twice`);
  MODELS.set(model.name, { model, device: null });
}

/** The model of an actor kind, or undefined. */
export function actorModel(kind: string): AnyActorModel | undefined {
  return MODELS.get(kind)?.model;
}

/** The device model of a kind, or null for an agent or an unknown kind. */
export function deviceModelOf(kind: string): DeviceModel | null {
  return MODELS.get(kind)?.device ?? null;
}

/** Every actor kind, agents first. */
export function actorKinds(): string[] {
  return [...MODELS.keys()];
}

const NAME = /^(.+)-(0|[1-9][0-9]{0,5})$/;

/** The kind an actor's name "<kind>-<n>" names when that kind exists, else null. */
export function actorKindOf(name: string): string | null {
  const mt = NAME.exec(name);
  return mt && MODELS.has(mt[1]!) ? mt[1]! : null;
}

/** The kind of a valid actor name (what actorKindOf() accepted). */
export function actorKind(name: string): string {
  const kind = actorKindOf(name);
  if (kind === null) throw new Error(`'${name}' names no actor kind (${actorKinds().join(', ')})`);
  return kind;
}
