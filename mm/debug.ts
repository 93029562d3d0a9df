// VM_BUG_ON / VM_WARN_ON_ONCE (include/linux/mmdebug.h). A failed assertion is a simulator bug or a
// kernel BUG_ON: it throws, and the harness ends the run and prints its seed.

export class KernelBug extends Error {
  constructor(what: string) {
    super(`kernel BUG: ${what}`);
    this.name = 'KernelBug';
  }
}

/**
 * An oops: the kernel dereferenced a bad pointer (die() -> "BUG: kernel NULL pointer dereference").
 * A KernelBug to the campaign; a scenario step ends in it as in a panic (the task dies holding its
 * locks, so pinlab runs nothing after it).
 */
export class KernelOops extends KernelBug {
  constructor(what: string) {
    super(what);
    this.message = `Oops: ${what}`;
  }
}

/** VM_BUG_ON with a constant message. Where the message is built from values, write
 * `if (cond) bug(\`...\`)` so the string is made only when the check fails (hot paths). */
export function vmBugOn(cond: boolean, what: string): void {
  if (cond) throw new KernelBug(what);
}

export function bug(what: string): never {
  throw new KernelBug(what);
}

const warned = new Set<string>();
export const warnings: string[] = [];

/** Returns cond; records the first occurrence of each warning (WARN_ON_ONCE). */
export function vmWarnOnOnce(cond: boolean, what: string): boolean {
  if (cond && !warned.has(what)) {
    warned.add(what);
    warnings.push(what);
  }
  return cond;
}

/**
 * The mm core's WARN_ON_ONCE()s that the kernel-bug property reports, as a kernel test run with
 * panic_on_warn (syzkaller) would: each sets its bit in the machine's `warned` word. None fires on a
 * correct kernel; R20's do_migrate_range() raises the first two.
 */
export const MM_WARNINGS = [
  'try_to_unmap_one: an anonymous folio with no swap entry (swapbacked != swapcache)',
  'do_migrate_range: a hwpoisoned folio on the LRU',
  'split_folio: a PMD entry survived unmap_folio()',
] as const;
export type MmWarning = (typeof MM_WARNINGS)[number];

/** vmWarnOnOnce() that the machine remembers (its `warned` word), for the kernel-bug property. */
export function vmWarnOnOnceMm(m: { warned: Int32Array }, cond: boolean, what: MmWarning): boolean {
  if (cond) Atomics.or(m.warned, 0, 1 << MM_WARNINGS.indexOf(what));
  return vmWarnOnOnce(cond, what);
}

/** The MM_WARNINGS that fired on the machine. */
export function mmWarningsFired(m: { warned: Int32Array }): string[] {
  const w = Atomics.load(m.warned, 0);
  return MM_WARNINGS.filter((_, i) => w & (1 << i));
}
