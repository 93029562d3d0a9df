// errno-contract: every op returns a count or an errno its kernel function can return, and a failed op
// leaves nothing pinned behind. Each actor kind declares its errnos per op (its model's `errnos`);
// -ESRCH is always allowed: the harness answers it for a process the OOM killer took. The pinner also
// reports here what only it can see: a pin that returned more pages than it filled in (R9), and an
// -EFAULT for an address nothing unmapped (R15).
import { errname, ESRCH } from '../mm/errno';
import type { Finding, OpCheck, Property } from './property';

export const errnoContract = {
  name: 'errno-contract',
  promise:
    'Every op returns a count or one of the errnos its kernel function can return, and a failed op leaves no pin behind.',
  reference:
    "each op's kernel function (docs/simplifications.md, device errno declarations); __gup_longterm_locked() returns the pinned count or -errno and unpins on failure",
  phases: ['op'],
  afterOp(c) {
    if (!c.op) return [];
    if (c.rc < 0) c.checked++; // an errno path taken
    const out: Finding[] = [];
    if (errnoAllowed(c) === false) {
      out.push({
        message: `${c.op.op} returned ${errname(c.rc)}, which its kernel function never returns`,
        dedupe: `${c.op.op} ${c.rc}`,
      });
    }
    if (c.rc < 0 && c.pinsLeft > 0) {
      out.push({
        message:
          `${c.op.op} failed with ${errname(c.rc)} but left ${c.pinsLeft} pins behind (nr_foll_pin_acquired - ` +
          `nr_foll_pin_released grew by ${c.pinsLeft} on this thread): a failed pin must hold nothing`,
        dedupe: `left ${c.op.op}`,
      });
    }
    return out;
  },
} as const satisfies Property<'errno-contract'>;

/** May the op return rc? Successes and -ESRCH always may; null when the kind declares no errnos. */
function errnoAllowed(c: OpCheck): boolean | null {
  if (c.rc >= 0 || c.rc === -ESRCH) return true;
  if (!c.errnos) return null;
  return Object.hasOwn(c.errnos, c.op!.op) && c.errnos[c.op!.op]!.includes(c.rc);
}
