// pinlab kernel without a guest: what is refused up front, the machine QEMU gets, the program the probe
// runs, the report from canned probe lines (an OOM kill, a panic) and the diff against the model.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadScenario, runScenario } from '../../harness/scenario';
import { compileScenario, kernelMachine } from '../../harness/kernel_compile';
import { buildReport } from '../../harness/kernel_run';
import { diffRuns, formatDiff, stepFacts } from '../../harness/kernel_diff';
import {
  variantForRelease,
  cpioNewc,
  checkKernelSpec,
  isStatic,
  realKernelsFor,
  RELEASE_VARIANTS,
} from '../../harness/kernel_setup';
import { realKernelMarkdown } from '../../harness/cli/variants';
import { parseVariant } from '../../mm/variants';
import { mainAsync } from '../../harness/cli';

const yaml = (steps: string, cmdline = 'mem=1G movablecore=512M', extra = '') =>
  loadScenario('t.yaml', `machine: { cmdline: "${cmdline}"${extra} }\nsteps:\n${steps}`);

function refusal(steps: string, extra = ''): string {
  try {
    compileScenario('t.yaml', yaml(steps, undefined, extra));
  } catch (e) {
    return (e as Error).message;
  }
  return 'not refused';
}

describe('pinlab kernel: compile', () => {
  it('refuses pinlab-only ops and fields with one line naming the step', () => {
    expect(refusal('  - { op: kalloc, size: 4M, as: k }')).toMatch(
      /^t\.yaml: step 1 \(kalloc\): op kalloc cannot run on a real kernel/,
    );
    expect(refusal('  - { op: fragment, zone: DMA32, as: f }')).toMatch(/step 1 \(fragment\)/);
    expect(refusal('  - { op: drain }')).toMatch(/step 1 \(drain\)/);
    expect(refusal('  - { op: spawn, proc: a }\n  - { op: mmap, proc: a, len: 4K, pfnmap: true }')).toMatch(
      /step 2 \(mmap\): pfnmap/,
    );
    expect(
      refusal(
        '  - { op: spawn, proc: a }\n  - { op: mmap, proc: a, len: 4K, as: b }\n  - { op: pin, proc: a, addr: b, len: 4K, as: p, write: false }',
      ),
    ).toMatch(/step 3 \(pin\): write: false cannot run on a real kernel: io_uring/);
    expect(refusal('  - { op: spawn, proc: a }\n  - { op: read, proc: a, addr: 0x8000 }')).toMatch(
      /step 2 \(read\): absolute address/,
    );
    expect(
      refusal(
        '  - { op: spawn, proc: a }\n  - { op: mmap, proc: a, len: 4K, as: b }\n  - { op: pin, proc: a, addr: b, len: 4K, as: p }\n  - { op: exit, proc: a }',
      ),
    ).toMatch(/step 4 \(exit\): exit of 'a' while it holds pin 'p'/);
    expect(refusal('  - { op: zones }', ', geometry: mini')).toMatch(
      /machine.geometry 'mini': a real kernel has only the x86_64 geometry/,
    );
  });

  it('refuses every mini-geometry scenario in scenarios/ and runs the x86_64 ones it can', () => {
    expect(() => compileScenario('fork-cow.yaml', loadScenario('scenarios/fork-cow.yaml'))).toThrow(/geometry 'mini'/);
    expect(() => compileScenario('s1.yaml', loadScenario('scenarios/s1-kernel-zone-exhaustion.yaml'))).toThrow(
      /step 2 \(kalloc\)/,
    );
    expect(() =>
      compileScenario('s4.yaml', loadScenario('scenarios/s4-pin-fails-with-movable-free.yaml')),
    ).not.toThrow();
  });

  it('maps mem= to QEMU -m plus 2M, trims with mem= and adds the model defaults the guest needs', () => {
    const m = kernelMachine('t.yaml', yaml('  - { op: zones }'));
    expect(m.memMiB).toBe(1026);
    expect(m.machineType).toBe('pc');
    expect(m.cmdline).toMatch(/^mem=1024M movablecore=512M transparent_hugepage=madvise console=ttyS0 /);
    expect(m.cmdline).toMatch(/panic=-1/);
    const big = kernelMachine(
      't.yaml',
      yaml('  - { op: zones }', 'mem=8G min_free_kbytes=8192 transparent_hugepage=always'),
    );
    expect(big.memMiB).toBe(8192);
    expect(big.cmdline).toMatch(/^sysctl\.vm\.min_free_kbytes=8192 transparent_hugepage=always console/);
    expect(big.warnings).toEqual([]); // the model boots the same split map (mm/e820.ts)
    // pinlab.machine= picks QEMU's -M; on q35 RAM splits at 2G once it reaches 2.75G, so no mem= then
    const q35 = kernelMachine('t.yaml', yaml('  - { op: zones }', 'mem=2816M pinlab.machine=q35'));
    expect(q35).toMatchObject({ machineType: 'q35', memMiB: 2816 });
    expect(q35.cmdline).not.toMatch(/mem=|pinlab\.machine/);
    const q35small = kernelMachine(
      't.yaml',
      yaml('  - { op: zones }', 'mem=2G pinlab.machine=q35 memmap=64M$0x10000000'),
    );
    expect(q35small).toMatchObject({ machineType: 'q35', memMiB: 2050 });
    expect(q35small.cmdline).toMatch(/^mem=2048M memmap=64M\$0x10000000 /);
    expect(() =>
      kernelMachine('t.yaml', yaml('  - { op: zones }', 'mem=1G cma=64M'), {
        spec: 'debian:6.12',
        bzImage: '',
        release: 'x',
        variant: 'v6.12',
        config: new Map(),
      }),
    ).toThrow(/cma= needs CONFIG_CMA/);
  });

  it('writes one probe line per step with mappings, processes and pins as numbers', () => {
    const c = compileScenario(
      't.yaml',
      yaml(
        [
          '  - { op: spawn, proc: a, oom_score_adj: -1000 }',
          '  - { op: mmap, proc: a, len: 8K, as: b, thp: true, populate: true }',
          '  - { op: touch, proc: a, addr: b+4K, len: 4K, value: 3 }',
          '  - { op: fork, proc: a, child: c }',
          '  - { op: pin, proc: c, addr: b, len: 8K, as: r }',
          '  - { op: unpin, pin: r }',
          '  - { op: offline, block: 7 }',
          '  - { op: vmstat }',
          '  - { op: pin_max, proc: a, addr: b, len: 8K, chunk: 4K, as: m }',
        ].join('\n'),
      ),
    );
    expect(c.program.split('\n')).toEqual([
      expect.stringMatching(/^counters nr_foll_pin_acquired,nr_foll_pin_released,/),
      '1 spawn p=0 name=a oom=-1000',
      '2 mmap p=0 m=0 len=8192 prot=3 shared=0 hugetlb=0 advice=14 populate=1',
      '3 touch p=0 a=0:4096 len=4096 write=1 value=3',
      '4 fork p=0 c=1 name=c',
      '5 pin p=1 a=0:0 len=8192 h=0',
      '6 unpin h=0',
      '7 offline b=7 ms=10000',
      '8 vmstat',
      '9 pinmax p=0 a=0:0 len=8192 chunk=4096 h=1',
      '',
    ]);
  });

  it('picks the model variant from the kernel version', () => {
    expect(
      variantForRelease('6.12.118+deb12-amd64 (debian-kernel@lists.debian.org) #1 SMP Debian 6.12.118-1~deb12u1'),
    ).toBe('v6.12');
    expect(
      variantForRelease('6.1.0-57-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-3'),
    ).toBe('v6.1+-R10');
    expect(variantForRelease('6.1.5')).toBe('v6.1');
    expect(variantForRelease('6.1.13')).toBe('v6.1+-R10');
    expect(variantForRelease('5.15.0')).toBe('v5.13');
    expect(variantForRelease('6.18.0-rc1')).toBe('v6.12');
    // R10 was fixed in v6.2 (and 6.1.13), R8 in v5.19: later releases do not have them
    expect(variantForRelease('6.5.3')).toBe('v6.1+-R10');
    expect(variantForRelease('6.0.9')).toBe('v5.13+-R8');
    expect(variantForRelease('5.19.0')).toBe('v5.13+-R8');
    expect(variantForRelease('5.18.19')).toBe('v5.13');
    expect(variantForRelease('5.12.1')).toBe('v5.12');
  });

  it('says which real kernels each variant stands for, the inverse of the release table', () => {
    expect(realKernelsFor('v6.12')).toEqual({ debian: ['debian:6.12'], releases: ['6.12 and later'] });
    expect(realKernelsFor('v6.1+-R10')).toEqual({ debian: ['debian:6.1'], releases: ['6.1.13 to before 6.12'] });
    expect(realKernelsFor('v6.1')).toEqual({ debian: [], releases: ['6.1 to before 6.1.13'] });
    expect(realKernelsFor('v5.12')).toEqual({ debian: [], releases: ['before 5.13'] });
    expect(realKernelsFor('series-v1')).toEqual({ debian: [], releases: [] });
    // every release row's variant parses, and the first release of each range maps back to it
    for (const r of RELEASE_VARIANTS) {
      expect(() => parseVariant(r.variant)).not.toThrow();
      expect(variantForRelease(r.from.join('.'))).toBe(r.variant);
    }
  });

  it('docs/real-kernel.md holds the table pinlab variants --markdown prints', () => {
    const doc = fs.readFileSync(path.join(__dirname, '../../docs/real-kernel.md'), 'utf8');
    const m = /<!-- BEGIN pinlab variants --markdown -->\n([\s\S]*?)<!-- END pinlab variants --markdown -->/.exec(doc);
    expect(m).not.toBeNull();
    expect(m![1]).toBe(realKernelMarkdown());
  });

  it('writes newc archives and tells static ELF files', () => {
    const a = cpioNewc([{ name: 'init', data: Buffer.from('x'), mode: 0o755 }]);
    expect(a.toString('latin1', 0, 6)).toBe('070701');
    expect(a.length % 4).toBe(0);
    expect(a.toString('latin1')).toContain('TRAILER!!!');
    expect(isStatic(process.execPath)).toBe(false);
    expect(() => checkKernelSpec('debian:5.10')).toThrow(/unknown kernel 'debian:5.10'/);
    expect(() => checkKernelSpec('/no/such/bzImage')).toThrow(/no such file/);
  });
});

describe('pinlab kernel: report and diff', () => {
  const sc = yaml(
    [
      '  - { op: spawn, proc: vm }',
      '  - { op: mmap, proc: vm, len: 8K, as: g, expect: 0 }',
      '  - { op: touch, proc: vm, addr: g, value: 1 }',
      '  - { op: pin, proc: vm, addr: g, len: 8K, as: r, expect: killed }',
      '  - { op: vmstat, items: oom_kill }',
      '  - { op: spawn, proc: b, expect: panic }',
    ].join('\n'),
  );
  const c = compileScenario('t.yaml', sc);
  const hello =
    '{"hello":"pinlab-probe","uptime_ms":4000,"counters":["oom_kill","pgmigrate_success"],"release":"6.12.0","thp":"always [madvise] never","zones":[],"block_pages":32768,"blocks":[]}';
  const lines = [
    hello,
    '{"step":1,"op":"spawn","rc":0,"aux":99,"d":{},"log":[],"killed":[]}',
    '{"step":2,"op":"mmap","rc":0,"aux":4096,"addr":"0x1000","res":{"pages":2,"present":0,"zero":0,"zones":{}},"d":{},"log":[],"killed":[]}',
    '{"step":3,"op":"touch","rc":0,"aux":0,"addr":"0x1000","res":{"pages":2,"present":2,"zero":0,"zones":{"Movable":2}},"d":{},"log":[],"killed":[]}',
    '{"step":4,"op":"pin","addr":"0x1000","died":true,"d":{"oom_kill":1,"pgmigrate_success":1},"log":["Out of memory: Killed process 99 (vm) total-vm:2000kB, anon-rss:8kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:40kB oom_score_adj:0"],"killed":["vm"]}',
    '{"step":5,"op":"vmstat","rc":0,"aux":0,"d":{},"log":[],"killed":[]}',
  ];
  const console = '[ 9.1] Kernel panic - not syncing: System is deadlocked on memory\n';

  it("turns probe lines into the scenario report: zones, an OOM kill of the step's process, a panic", () => {
    const rep = buildReport('t.yaml', c, { spec: 'debian:6.12', release: '6.12.0', variant: 'v6.12' }, lines, console);
    expect(rep.results.map((r) => r.result)).toEqual(['0', '0', '0', 'killed', '0', 'panic']);
    expect(rep.results[2]!.detail).toBe('2 pages present (Movable 2)');
    expect(rep.results[3]!.ok).toBe(true); // expect: killed
    expect(rep.results[4]!.detail).toBe('oom_kill 1');
    expect(rep.results[3]!.detail).toBe('0x1000 2 pages: outcome killed; 1 migrated');
    expect(rep.results[5]).toMatchObject({
      ok: true,
      detail: 'Kernel panic - not syncing: System is deadlocked on memory',
    });
    expect(rep.panic).toBe('System is deadlocked on memory');
    expect(rep.time.boot_ms).toBe(4000);
  });

  it('a guest that never ran the probe is an error, not a pass', () => {
    const rep = buildReport(
      't.yaml',
      c,
      { spec: 'debian:6.12', release: '6.12.0', variant: 'v6.12' },
      [],
      '[ 1.0] reboot: Power down\n',
    );
    expect(rep.ok).toBe(false);
    expect(rep.error).toMatch(/the probe never started \(console: \[ 1.0\] reboot: Power down\)/);
  });

  it('compares facts, not addresses or counts that cannot match', () => {
    expect(stepFacts('touch', '0', '16 pages present (Normal 4, Movable 12), 2 zero-page', [])).toEqual({
      result: '0',
      present: '16',
      zones: 'Normal 4, Movable 12',
      'zero-page': '2',
    });
    expect(
      stepFacts(
        'pin',
        '512',
        '0x200000 512 pages: outcome pinned; 512 pinned (DMA32 512); 512 migrated; 1 retries',
        [],
      ),
    ).toEqual({ result: '512', pinned: '512 (DMA32 512)', migrated: '512', 'THP split': '0' });
    expect(stepFacts('vmstat', '0', 'pgfault 12; oom_kill 1', [])).toEqual({ result: '0', oom_kill: '1' });
    const file = 'scenarios/kernel/longterm-pin-movable.yaml';
    const s = loadScenario(file);
    const cc = compileScenario(file, s);
    const lines: string[] = [];
    const model = runScenario(file, s, (l) => lines.push(l), 'v6.12');
    // a kernel run made of the model's own lines agrees with it, then one changed zone is one difference
    const kernel = buildReport(file, cc, { spec: 'x', release: 'x', variant: 'v6.12' }, [hello], '');
    kernel.results = model.results.map((r) => ({ ...r, rc: r.rc, killed: [], log: [], raw: {} }));
    kernel.blocks = model.layout.blocks.map((b) => ({ index: b.index, state: b.state, valid_zones: b.valid_zones }));
    kernel.vmstat = { ...model.vmstat } as Record<string, number>;
    kernel.error = undefined;
    expect(diffRuns(model, lines, kernel).same).toBe(true);
    kernel.results[3] = {
      ...kernel.results[3]!,
      detail: kernel.results[3]!.detail.replace('DMA32 4096', 'Movable 4096'),
    };
    const d = diffRuns(model, lines, kernel);
    expect(d.same).toBe(false);
    expect(formatDiff(d)).toContain('      DIFF pinned: model 4096 (DMA32 4096), kernel 4096 (Movable 4096)');
  });
});

describe('pinlab kernel: bad input is one line and exit 2', () => {
  const run = async (argv: string[]) => {
    let out = '';
    let err = '';
    const code = await mainAsync(argv, { out: (s) => (out += s), err: (s) => (err += s) });
    return { code, out, err };
  };
  it('an unknown kernel, a missing bzImage, a refused op', async () => {
    let r = await run(['kernel', 'scenarios/kernel/longterm-pin-movable.yaml', '--kernel', 'debian:4.19']);
    expect(r).toMatchObject({ code: 2, out: '' });
    expect(r.err).toMatch(
      /^pinlab: kernel: --kernel: unknown kernel 'debian:4.19' \(debian:6.12, debian:6.1, or a path to a bzImage\)\n$/,
    );
    r = await run(['kernel', 'scenarios/kernel/longterm-pin-movable.yaml', '--kernel', '/nonexistent/bzImage']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^pinlab: kernel: --kernel: no such file '\/nonexistent\/bzImage'/);
    r = await run(['kernel', 'scenarios/s1-kernel-zone-exhaustion.yaml']);
    expect(r.code).toBe(2);
    expect(r.err).toBe(
      'pinlab: scenarios/s1-kernel-zone-exhaustion.yaml: step 2 (kalloc): op kalloc cannot run on a real kernel: kernel allocations held by the kernel have no syscall (a test module would be needed)\n',
    );
    r = await run(['kernel', '--help']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^usage: pinlab kernel FILE/);
  });
});
