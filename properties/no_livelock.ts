// no-livelock: a long-term pin and an offline end within their budgets unless something legitimately
// blocks them. A pin that ran out of its retry budget (outcome no-progress) or an offline that spent its
// pass budget is run again on a copy of the quiescent machine by the actor that ran it: still no
// progress with nobody else running, and no pin or lack of memory to explain it, is a livelock.
import type { Property } from './property';

export const noLivelock = {
  name: 'no-livelock',
  promise:
    'A long-term pin and a memory offline make progress once nothing else runs, unless a pin or a lack of memory blocks them.',
  reference:
    "__gup_longterm_locked()'s -EAGAIN loop (mm/gup.c); offline_pages()'s retry loop (mm/memory_hotplug.c; memory-hotplug.rst: it retries until it succeeds or a signal arrives)",
  phases: ['quiescence'],
  atQuiescence(c) {
    c.checked += c.rechecks; // the no-progress outcomes run again
    return c.recheck?.(c.copy) ?? [];
  },
} as const satisfies Property<'no-livelock'>;
