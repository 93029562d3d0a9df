// Plugins: code outside the harness that adds actor kinds, suites and worker tasks - the harness's own
// self-test actors (test/plugins/selftest.ts), the benchmarks' (bench/plugin.ts), a user's. A plugin is
// a module exporting `plugin: Plugin`, named by its path relative to the pinlab root ("test/plugins/
// selftest"), so the main thread and every worker thread load the same file. The CLI loads the ones
// PINLAB_PLUGINS lists (comma-separated); a pool passes the loaded list to its workers.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as fcType from 'fast-check';
import type { AnyActorModel } from './actors';
import type { AgentEnv, AgentModel, AgentState } from './agents/agent';
import type { ActorOp } from './types';
import type { Suite } from './suites';
import { actorModel, registerActorModel } from './actors';
import { registerSuite } from './suites';

export interface Plugin {
  /** actor kinds a case can name ("<kind>-<n>") */
  actorModels?: readonly AnyActorModel[];
  /** suites `pinlab run --suite` can name */
  suites?: readonly Suite[];
  /** tasks a worker thread runs (ActorPool.runTask): name -> function of the task's data */
  workerTasks?: Readonly<Record<string, (data: never) => unknown>>;
}

/** A plugin that cannot be loaded: bad input, one line. */
export class PluginError extends Error {}

/** The pinlab root: the repository when running from source, dist/ in a build (the same layout). */
const ROOT = path.join(__dirname, '..');
const EXT = __filename.endsWith('.ts') ? '.ts' : '.js';
const NAME = /^[A-Za-z0-9_-]+(\/[A-Za-z0-9_-]+)*$/;

const loaded: string[] = [];
const tasks = new Map<string, (data: never) => unknown>();

/** Load a plugin by its path relative to the pinlab root, once; PluginError when it cannot be. */
export function loadPlugin(name: string): void {
  if (loaded.includes(name)) return;
  if (!NAME.test(name))
    throw new PluginError(`plugin '${name}': not a path under the pinlab root (e.g. test/plugins/selftest)`);
  const file = path.join(ROOT, name + EXT);
  if (!fs.existsSync(file))
    throw new PluginError(`plugin '${name}': no file ${path.relative(process.cwd(), file) || file}`);
  let mod: { plugin?: Plugin };
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- a plugin is found at run time
    mod = require(file) as { plugin?: Plugin };
  } catch (e) {
    throw new PluginError(`plugin '${name}': loading it failed: ${String((e as Error)?.message ?? e).split('\n')[0]}`);
  }
  const p = mod.plugin;
  if (!p || typeof p !== 'object') throw new PluginError(`plugin '${name}': the module exports no 'plugin' object`);
  const twice = [
    ...(p.actorModels ?? [])
      .map((m) => m.name)
      .filter((k) => actorModel(k))
      .map((k) => `actor kind '${k}'`),
    ...Object.keys(p.workerTasks ?? {})
      .filter((t) => tasks.has(t))
      .map((t) => `worker task '${t}'`),
  ];
  if (twice.length) throw new PluginError(`plugin '${name}': ${twice.join(', ')} already registered`);
  for (const m of p.actorModels ?? []) registerActorModel(m);
  for (const s of p.suites ?? []) registerSuite(s);
  for (const [t, fn] of Object.entries(p.workerTasks ?? {})) tasks.set(t, fn);
  loaded.push(name);
}

/** Load every plugin a PINLAB_PLUGINS value lists (comma-separated; empty: none). */
export function loadPlugins(list: string | undefined): void {
  for (const name of (list ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean))
    loadPlugin(name);
}

/** The plugins loaded in this thread, in load order (what a pool hands its workers). */
export function loadedPlugins(): readonly string[] {
  return loaded;
}

/** A plugin's worker task by name (worker.ts). */
export function workerTask(name: string): ((data: never) => unknown) | undefined {
  return tasks.get(name);
}

/**
 * An actor model for a plugin's simple actor: ops without fault points, programs of one op by default,
 * out of the quiescence barrier for the reason given.
 */
export function simpleActorModel(
  name: string,
  summary: string,
  create: (env: AgentEnv) => AgentState,
  ops: AgentModel['ops'],
  skipsQuiescence: string,
): AgentModel {
  return {
    name,
    summary,
    source: 'a plugin',
    create,
    ops,
    errnos: Object.fromEntries(Object.keys(ops).map((o) => [o, []])),
    arbitrary: (fc: typeof fcType) => fc.constant({ op: Object.keys(ops)[0]! }) as fcType.Arbitrary<ActorOp>,
    faultPoints: [],
    programLength: 1,
    skipsQuiescence,
  };
}
