// Scenario steps for files: open_file makes a file a process holds open - a memfd (memfd_create()), a
// file on tmpfs, a file on a filesystem with writeback (ext4, xfs, btrfs: O_TMPFILE in the working
// directory), or a hugetlb memfd (MFD_HUGETLB) - and mmap's `fd:` maps it MAP_SHARED or MAP_PRIVATE.
// The file closes when its process exits. See docs/scenarios.md.
import { ScenarioContext, Step, StepKind, fail, sizePages, proc, FIELD as F } from './scenario_ctx';
import { fileInodeCreate, fileInodePut } from '../mm/mmap';
import { AS_SHMEM, AS_WRITEBACK } from '../mm/filemap';
import { hstateIndex } from '../mm/hugetlb';
import { EINVAL } from '../mm/errno';

export const FILE_KINDS = ['memfd', 'tmpfs', 'file', 'hugetlb'] as const;
type FileKind = (typeof FILE_KINDS)[number];

/** An open file of the scenario: its inode (none for hugetlb), its kind and length, and its process. */
export interface OpenFile {
  proc: string;
  kind: FileKind;
  inode: number;
  nrPages: number;
  /** hugetlb: the huge page size in pages */
  hugePages: number;
}

const files = new WeakMap<ScenarioContext, Map<string, OpenFile>>();
function filesOf(ctx: ScenarioContext): Map<string, OpenFile> {
  let f = files.get(ctx);
  if (!f) files.set(ctx, (f = new Map()));
  return f;
}

/** The file an mmap step's `fd:` names (a ScenarioError when there is none). */
export function fileOf(ctx: ScenarioContext, s: Step): OpenFile {
  const f = typeof s.fd === 'string' ? filesOf(ctx).get(s.fd) : undefined;
  if (!f) fail('fd', `unknown file '${String(s.fd)}' (open one with open_file ... as:)`);
  return f;
}

/** exit_files(): a process's open files close; an inode goes when no mapping holds it either. */
export function closeProcFiles(ctx: ScenarioContext, procName: string): void {
  const f = filesOf(ctx);
  for (const [name, file] of f) {
    if (file.proc !== procName) continue;
    if (file.inode >= 0) fileInodePut(ctx.m, file.inode);
    f.delete(name);
  }
}

export const FILE_STEPS: Record<string, StepKind> = {
  open_file: {
    fields: { proc: F.proc, kind: F.enum(FILE_KINDS), len: F.size, as: F.name },
    required: ['proc', 'kind', 'len', 'as'],
    run(ctx, s) {
      proc(ctx, 'open_file', s);
      const name = s.as as string;
      if (filesOf(ctx).has(name)) fail('as', `file '${name}' is already open`);
      const kind = s.kind as FileKind;
      const nrPages = sizePages('len', s.len);
      let inode = -1;
      let hugePages = 0;
      if (kind === 'hugetlb') {
        // memfd_create(MFD_HUGETLB) of the PMD size (pinlab faults hugetlb folios of that size only);
        // without an hstate of it, -EINVAL (the selftest skips sizes the machine lacks)
        hugePages = ctx.m.ptrsPerTable;
        if (hstateIndex(ctx.m, ctx.m.pmdOrder) < 0) return { rc: -EINVAL, detail: 'no hugetlb pool of the PMD size' };
        if (nrPages % hugePages) return { rc: -EINVAL, detail: 'len is not a multiple of the huge page size' };
      } else {
        // ftruncate(fd, len) of a new memfd / tmpfs file (shmem) or a file on a filesystem with writeback
        inode = fileInodeCreate(ctx.m, nrPages, kind === 'file' ? AS_WRITEBACK : AS_SHMEM);
        if (inode < 0) return { rc: inode, detail: '' };
      }
      filesOf(ctx).set(name, { proc: s.proc as string, kind, inode, nrPages, hugePages });
      const fs = kind === 'file' ? 'a filesystem with writeback' : kind === 'hugetlb' ? 'hugetlbfs' : 'shmem';
      return { rc: 0, detail: `${kind} ${name}: ${nrPages} pages on ${fs}` };
    },
  },
};
