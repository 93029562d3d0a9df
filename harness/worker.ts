// The one file that runs inside worker threads: loads the plugins its pool loaded (harness/plugins.ts),
// then runs each task it is given - an actor (harness/actor/) or a plugin's task. Never the pool or the CLI.
// piscina's worker passes the pool's workerData through as node:worker_threads' own (piscina/dist/worker.js);
// importing it from 'piscina' would load the whole pool side of piscina into every worker (~30 ms each)
import { workerData } from 'node:worker_threads';
import type { WorkerTask, ActorResult, WorkerData } from './types';
import { runActor } from './actor';
import { loadPlugin, workerTask } from './plugins';
import { bindLater } from './affinity';

const data = workerData as WorkerData | undefined;
for (const name of data?.plugins ?? []) loadPlugin(name);
// started unbound to load the code above on every CPU; onto the pool's CPU when the pool says so
// (ActorPool.bindNow()), without waiting for it
const bindFlag = data?.bind ? new Int32Array(data.bind) : null;
let unbound = typeof data?.cpu === 'number';

export default function run(task: WorkerTask): ActorResult | unknown {
  if (unbound && Atomics.load(bindFlag!, 0) === 1) {
    unbound = false;
    void bindLater(data!.cpu!);
  }
  if (task.kind === 'actor') return runActor(task);
  const fn = workerTask(task.task);
  if (!fn) throw new Error(`worker task '${task.task}': no loaded plugin has it`);
  return fn(task.data as never);
}
