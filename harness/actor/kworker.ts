// The kernel's workqueues, as far as the model defers work to them: free_hpage_work (hugetlb folios whose
// free to the buddy was deferred, mm/hugetlb.c; R19). A kworker gets the CPU whenever an actor is between
// ops (it runs at each op's start, on that actor's thread) and before quiescence, so the work is pending
// only inside the op that queued it and in ops that overlap it.
import type { Memmap } from '../../mm/memmap';
import { hugetlbFreesPending, freeHpageWorkfn } from '../../mm/hugetlb';

/** Run the pending work items; log what they did (nothing pending: a load, nothing logged). */
export function kworkerRuns(m: Memmap, log?: (text: string) => void): void {
  if (!hugetlbFreesPending(m)) return;
  const n = freeHpageWorkfn(m);
  if (n && log) log(`free_hpage_workfn: ${n} hugetlb folios freed to the buddy`);
}
