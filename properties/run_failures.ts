// The run itself broke: no promise of the kernel's, but what the harness reports whatever --property
// selects. kernel-bug (a BUG_ON in the mm core) is a property of its own (kernel_bug.ts).
import type { Property } from './property';

export const deadlock = {
  name: 'deadlock',
  promise: 'Actors never all wait on each other.',
  reference: 'lockdep (kernel/locking/lockdep.c)',
  phases: ['op'],
  runFailure: true,
} as const satisfies Property<'deadlock'>;

export const hang = {
  name: 'hang',
  promise: 'A run finishes within its time budget.',
  reference: 'the soft-lockup and hung-task watchdogs (kernel/watchdog.c, kernel/hung_task.c)',
  phases: ['op'],
  runFailure: true,
} as const satisfies Property<'hang'>;

export const kernelPanic = {
  name: 'kernel-panic',
  promise: 'The kernel does not panic.',
  reference: 'panic() (kernel/panic.c); out_of_memory() with nothing to kill',
  phases: ['op'],
  runFailure: true,
} as const satisfies Property<'kernel-panic'>;

export const actorThrew = {
  name: 'actor-threw',
  promise: 'An actor never throws (a simulator bug).',
  reference: 'the harness (harness/actor/index.ts)',
  phases: ['op'],
  runFailure: true,
} as const satisfies Property<'actor-threw'>;

export const workerExit = {
  name: 'worker-exit',
  promise: "An actor's worker thread does not die under it.",
  reference: 'the harness (harness/pool.ts)',
  phases: ['op'],
  runFailure: true,
} as const satisfies Property<'worker-exit'>;

export const propertyThrew = {
  name: 'property-threw',
  promise: 'A property check never throws.',
  reference: 'the harness (properties/)',
  phases: ['teardown', 'exit'],
  runFailure: true,
} as const satisfies Property<'property-threw'>;

export const determinism = {
  name: 'determinism',
  promise: 'The same case run twice gives the same trace hash (--check-determinism).',
  reference: 'the harness (harness/trace.ts)',
  phases: [],
  runFailure: true,
} as const satisfies Property<'determinism'>;
