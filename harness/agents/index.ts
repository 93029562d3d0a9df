// The kernel agents: actors that are not devices but drive the mm core the way user space and kernel
// threads do. Each is an actor model, like a device model (devices/device.ts ActorModel).
//
//   user     the process: faults and writes its memory, munmap/remap/MADV_DONTNEED, fork and exit of children
//   pinner   pin_user_pages(_fast)(FOLL_LONGTERM) on the process, DMA into the pinned frames, unpin
//   hotplug  writes memoryN/state: offline, online[_kernel|_movable]
//   cma      a cma_alloc() in progress: holds CMA memory blocks MIGRATE_ISOLATE across ops
import type { AgentModel } from './agent';
import { user } from './user';
import { pinner } from './pinner';
import { hotplug } from './hotplug';
import { cma } from './cma';

export const AGENT_MODELS: readonly AgentModel[] = [user, pinner, hotplug, cma];
export type { AgentEnv, AgentState, AgentModel } from './agent';
export { userOpsRefault, USER_CHILDREN_MAX } from './user';
export { PINNER_SLOTS_MAX } from './pinner';
