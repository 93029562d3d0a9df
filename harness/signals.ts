// SIGINT (Ctrl-C) and SIGTERM: the first one ends a run cleanly (the running case is stopped, the pool torn
// down, a failure found so far is kept, the summary printed); a second one takes the signal's default
// action and ends the process at once. bin/pinlab.js installs its handlers (bin/signals.js) before it
// builds dist/ or loads the CLI, so a signal that arrives early is remembered, and hands that state over
// with adoptProcessInterrupt(); in-process callers of mainAsync() get handlers for the call's duration.
import { constants } from 'node:os';

export type StopSignal = 'SIGINT' | 'SIGTERM';

/** Set once a run must stop; signal says which signal asked (none: a deadline). */
export interface Interrupt {
  stopped: boolean;
  signal?: StopSignal | null;
}

/** What bin/signals.js hands the CLI. */
export interface ProcessSignals {
  interrupt: Interrupt;
  /** remove the handlers: from now on a signal takes its default action (for verbs that never yield) */
  release(): void;
}

let processSignals: ProcessSignals | null = null;

/** The process entry's handlers and state, installed before anything else (bin/pinlab.js). */
export function adoptProcessSignals(s: ProcessSignals | null): void {
  processSignals = s;
}

/** The exit code of a run a signal ended: 128 + the signal number, as a shell reports it (130, 143). */
export function signalExitCode(i: Interrupt): number {
  return 128 + constants.signals[i.signal ?? 'SIGINT'];
}

/** Run fn with the process's interrupt state; without bin/pinlab.js's handlers, install some for its duration. */
export function withInterrupt<T>(fn: (interrupt: Interrupt) => Promise<T>): Promise<T> {
  if (processSignals) return fn(processSignals.interrupt);
  const interrupt: Interrupt = { stopped: false, signal: null };
  const release = (): void => {
    process.off('SIGINT', onSig);
    process.off('SIGTERM', onSig);
  };
  function onSig(sig: StopSignal): void {
    if (interrupt.stopped) {
      release();
      process.kill(process.pid, sig);
      return;
    }
    interrupt.stopped = true;
    interrupt.signal = sig;
  }
  process.on('SIGINT', onSig);
  process.on('SIGTERM', onSig);
  return fn(interrupt).finally(release);
}
