// An actor instance from its kind's model (harness/actors.ts), given the environment of this run: the
// machine, the process, the seeded randomness, this thread's preemption points and trace.
import type { ActorTask } from '../types';
import type { Memmap } from '../../mm/memmap';
import type { AgentEnv, AgentState } from '../agents/agent';
import type { Control } from '../schedctl';
import { yieldPoint } from '../../mm/sched';
import { actorModel, deviceModelOf } from '../actors';
import { resolveOp } from '../../devices/index';
import { Prng } from '../prng';
import { variant } from '../../mm/variants';

/** The actor's name in traces: "vfio-type1-0" -> "vfio-type1/0". */
const traceName = (name: string): string => name.replace(/-(\d+)$/, '/$1');

export function createActor(
  t: ActorTask,
  m: Memmap,
  c: Control,
  log: (line: string) => void,
  violation: (message: string) => void,
): AgentState {
  const model = actorModel(t.actorKind);
  if (!model) throw new Error(`unknown actor kind '${t.actorKind}'`);
  const rng = new Prng(t.seed ^ Math.imul(t.index + 1, 0x9e3779b1));
  const env: AgentEnv = {
    m,
    mm: t.mm,
    name: traceName(t.name),
    bugs: new Set(t.bugs),
    params: t.params,
    rand: (n) => rng.below(n),
    yieldPoint: (label) => yieldPoint(label), // through this thread's hook (signals are delivered there)
    trace: (line) => log(line),
    kernel: variant(),
    maps: t.maps,
    offlinePasses: t.offlinePasses,
    procMm: t.procMm,
    violation,
    mapGen: (i) => Atomics.load(c.i32, c.mapgenBase + i),
    bumpMapGen: (i) => {
      Atomics.add(c.i32, c.mapgenBase + i, 1);
    },
  };
  const actor = model.create(env);
  if (!deviceModelOf(t.actorKind)) return actor;
  // generated device ops name process addresses as { map, off }: resolve them against this run's maps
  const maps = Object.fromEntries(t.maps.map((x) => [x.name, x.vpn]));
  return {
    step: (op) => actor.step(resolveOp(op, maps)),
    inspect: () => actor.inspect(),
    teardown: () => actor.teardown(),
  };
}
