// Where a command, a suite run or a campaign writes: stdout and stderr, or a test's buffers.
export interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
}
