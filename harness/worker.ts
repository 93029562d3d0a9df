// The one file that runs inside worker threads: loads the plugins its pool loaded (harness/plugins.ts),
// then runs each task it is given - an actor (harness/actor/) or a plugin's task. Never the pool or the CLI.
import { workerData } from 'piscina';
import type { WorkerTask, ActorResult } from './types';
import { runActor } from './actor';
import { loadPlugin, workerTask } from './plugins';

for (const name of (workerData as { plugins?: string[] } | undefined)?.plugins ?? []) loadPlugin(name);

export default function run(task: WorkerTask): ActorResult | unknown {
  if (task.kind === 'actor') return runActor(task);
  const fn = workerTask(task.task);
  if (!fn) throw new Error(`worker task '${task.task}': no loaded plugin has it`);
  return fn(task.data as never);
}
