// Kernel errno values (include/uapi/asm-generic/errno-base.h, errno.h; x86 numbering).
// mm functions return a count or a negative errno, exactly where the kernel does.

export const EPERM = 1;
export const ENOENT = 2;
export const ESRCH = 3;
export const EINTR = 4;
export const EIO = 5;
export const ENXIO = 6;
export const E2BIG = 7;
export const EBADF = 9;
export const ENODEV = 19;
export const EAGAIN = 11;
export const ENOMEM = 12;
export const EACCES = 13;
export const EFAULT = 14;
export const EBUSY = 16;
export const EEXIST = 17;
export const EINVAL = 22;
export const ENOSPC = 28;
export const EDEADLK = 35; // EDEADLOCK is the same number on x86
export const EOVERFLOW = 75;
export const EOPNOTSUPP = 95;
export const EHWPOISON = 133; // memory page has hardware error

const NAMES: Record<number, string> = {
  [EPERM]: 'EPERM',
  [ENOENT]: 'ENOENT',
  [ESRCH]: 'ESRCH',
  [EINTR]: 'EINTR',
  [EIO]: 'EIO',
  [ENXIO]: 'ENXIO',
  [E2BIG]: 'E2BIG',
  [EBADF]: 'EBADF',
  [ENODEV]: 'ENODEV',
  [EAGAIN]: 'EAGAIN',
  [ENOMEM]: 'ENOMEM',
  [EACCES]: 'EACCES',
  [EFAULT]: 'EFAULT',
  [EBUSY]: 'EBUSY',
  [EEXIST]: 'EEXIST',
  [EINVAL]: 'EINVAL',
  [ENOSPC]: 'ENOSPC',
  [EDEADLK]: 'EDEADLK',
  [EOVERFLOW]: 'EOVERFLOW',
  [EOPNOTSUPP]: 'EOPNOTSUPP',
  [EHWPOISON]: 'EHWPOISON',
};

/** "-ENOMEM" for -12; a non-negative value prints as itself. */
export function errname(rc: number): string {
  if (rc >= 0) return String(rc);
  const n = NAMES[-rc];
  return n ? `-${n}` : `-E${-rc}`;
}

/** "-ENOMEM" -> -12; undefined for an unknown name. */
export function errnoByName(name: string): number | undefined {
  for (const [n, v] of Object.entries(NAMES)) if (`-${v}` === name) return -Number(n);
  return undefined;
}
