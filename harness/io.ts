// Where a command, a suite run or a campaign writes: stdout and stderr, or a test's buffers, and files
// written whole or not at all.
import * as fs from 'node:fs';

export interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
}

/** Write a file atomically (a temporary file, then rename); one line naming the file on failure. */
export function writeFileAtomic(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    fs.writeFileSync(tmp, text);
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw new Error(`cannot write '${file}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, {
      cause: e,
    });
  }
}
