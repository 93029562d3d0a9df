// SIGINT (Ctrl-C) and SIGTERM from the first line of bin/pinlab.js, before dist/ is built or the CLI is
// loaded (harness/signals.ts takes the state over). The first signal is remembered: a build in progress
// is stopped, and a run that starts later stops at once and reports "interrupted". The handlers then
// step aside, so a second signal takes its default action and ends the process at once, even while
// JavaScript is busy.
'use strict';
const { constants } = require('node:os');

/** harness/signals.ts Interrupt: stopped once a signal came; signal names it. */
const interrupt = { stopped: false, signal: null };
const hooks = new Set();

function release() {
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
}

function onSignal(sig) {
  if (interrupt.stopped) {
    // a second signal that queued up behind the first while the event loop was busy
    release();
    process.kill(process.pid, sig);
    return;
  }
  interrupt.stopped = true;
  interrupt.signal = sig;
  for (const f of [...hooks]) f(sig);
  // signals already queued are delivered in this turn of the event loop; after it, the default action
  setImmediate(release);
}

function install() {
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

/** 128 + the signal number, as a shell reports a process a signal ended (130, 143). */
function exitCode() {
  return 128 + constants.signals[interrupt.signal || 'SIGINT'];
}

/** Call f when the first signal arrives (at once if it already has); returns the undo. */
function onInterrupt(f) {
  if (interrupt.stopped) f(interrupt.signal);
  else hooks.add(f);
  return () => hooks.delete(f);
}

module.exports = { interrupt, install, release, exitCode, onInterrupt };
