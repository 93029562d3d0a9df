// pinlab kernel without a guest: what is refused up front, the machine QEMU gets, the program the probe
// runs, the report from canned probe lines (an OOM kill, a panic) and the diff against the model.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadScenario, runScenario, Scenario } from '../../harness/scenario';
import { parseYamlText } from '../../harness/input';
import { compileScenario, kernelMachine } from '../../harness/kernel_compile';
import { buildReport, qemuArgs } from '../../harness/kernel_run';
import { diffRuns, formatDiff, stepFacts } from '../../harness/kernel_diff';
import {
  variantForRelease,
  cpioNewc,
  checkKernelSpec,
  isStatic,
  realKernelsFor,
  RELEASE_VARIANTS,
  KernelImage,
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
    // an exit with a pin held runs: the ring's buffers go with the process on both sides
    const exited = compileScenario(
      't.yaml',
      yaml(
        '  - { op: spawn, proc: a }\n  - { op: mmap, proc: a, len: 4K, as: b }\n  - { op: pin, proc: a, addr: b, len: 4K, as: p }\n  - { op: exit, proc: a }\n  - { op: unpin, pin: p, expect: -ESRCH }',
      ),
    );
    expect(exited.program).toMatch(/^4 exit p=0\n5 unpin h=0\n/m);
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
          '  - { op: madvise, proc: a, addr: b, len: 4K, advice: hwpoison }',
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
      '10 madvise p=0 a=0:0 len=4096 advice=100',
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

describe('pinlab kernel: device steps (open, call, close)', () => {
  // the steps as the scenario file writes them, read without the model's schema: the kernel side stands alone
  const Q35 = 'mem=1G movablecore=256M pinlab.machine=q35';
  const dev = (steps: string, cmdline = 'mem=1G movablecore=256M'): Scenario =>
    parseYamlText(`machine: { cmdline: "${cmdline}" }\nsteps:\n${steps}`) as Scenario;
  const head = [
    '  - { op: spawn, proc: a }',
    '  - { op: mmap, proc: a, as: buf, len: 2M, populate: true }',
    '  - { op: open, proc: a, device: vfio-type1, as: vf }',
  ];
  const devRefusal = (...steps: string[]): string => {
    try {
      compileScenario('t.yaml', dev([...head, ...steps].join('\n'), Q35));
    } catch (e) {
      return (e as Error).message;
    }
    return 'not refused';
  };

  it('refuses vfio-type1 on a pc machine: intel-iommu needs q35, and the model must boot the same map', () => {
    expect(() => compileScenario('t.yaml', dev(head.join('\n')))).toThrow(
      /^t\.yaml: machine: vfio-type1 runs behind QEMU's intel-iommu, which needs q35: add pinlab\.machine=q35/,
    );
  });

  it('compiles vfio-type1 map_dma/unmap_dma/close to the probe, on q35 with intel-iommu and edu', () => {
    const c = compileScenario(
      't.yaml',
      dev(
        [
          ...head,
          '  - { op: call, dev: vf, call: map_dma, args: { iova: 0x100000, vaddr: buf, size: 2M, read: true, write: true }, expect: 0 }',
          '  - { op: call, dev: vf, call: unmap_dma, args: { iova: 1M, size: 1M } }',
          '  - { op: call, dev: vf, call: unmap_dma, args: { all: true } }',
          '  - { op: close, dev: vf }',
        ].join('\n'),
        Q35,
      ),
    );
    expect(c.program.split('\n').slice(3, 8)).toEqual([
      '3 vfio_open p=0 h=0',
      '4 vfio_map p=0 h=0 iova=1048576 a=0:0 len=2097152 prot=3',
      '5 vfio_unmap p=0 h=0 iova=1048576 len=1048576 all=0',
      '6 vfio_unmap p=0 h=0 iova=0 len=0 all=1',
      '7 vfio_close p=0 h=0',
    ]);
    expect(c.modules).toEqual(['vfio_iommu_type1', 'vfio_pci']);
    expect(c.machine.machineType).toBe('q35,kernel-irqchip=split');
    expect(c.machine.cmdline).toMatch(/ intel_iommu=on$/);
    const args = qemuArgs(c, { bzImage: 'bz' } as KernelImage, 'i', 'c', 'r');
    expect(args.join(' ')).toMatch(
      /^-M q35,kernel-irqchip=split .* -device intel-iommu,intremap=on,caching-mode=on -device edu$/,
    );
    // without a device step: the pc machine, no devices, no modules
    const plain = compileScenario('t.yaml', dev(head.slice(0, 2).join('\n')));
    expect([plain.machine.machineType, plain.machine.devices, plain.modules]).toEqual(['pc', undefined, []]);
    expect(qemuArgs(plain, { bzImage: 'bz' } as KernelImage, 'i', 'c', 'r')).not.toContain('edu');
    // kernelMachine alone (pinlab kernel recomputes it with the kernel's .config) gives the same guest
    expect(kernelMachine('t.yaml', dev(head.join('\n'), Q35))).toEqual(c.machine);
  });

  it("gives insmod the machine's module parameters and QEMU the IOMMU's address width", () => {
    const c = compileScenario(
      't.yaml',
      dev(
        [...head, '  - { op: call, dev: vf, call: get_info }'].join('\n'),
        `${Q35} vfio_iommu_type1.dma_entry_limit=2 pinlab.iommu_aw_bits=48`,
      ),
    );
    expect(c.program.split('\n')[4]).toBe('4 vfio_info p=0 h=0'); // VFIO_IOMMU_GET_INFO
    expect(stepFacts('call', '0', 'iova ranges: 0x0-0xfedfffff, 0xfef00000-0xffffffffffff; dma_avail 2', [])).toEqual({
      result: '0',
      'iova ranges': '0x0-0xfedfffff, 0xfef00000-0xffffffffffff',
      dma_avail: '2',
    });
    expect(c.machine.moduleArgs).toEqual({ vfio_iommu_type1: 'dma_entry_limit=2' });
    expect(c.machine.cmdline).not.toMatch(/dma_entry_limit|aw_bits/);
    const args = qemuArgs(c, { bzImage: 'bz' } as KernelImage, 'i', 'c', 'r');
    expect(args.join(' ')).toMatch(/ -device intel-iommu,intremap=on,caching-mode=on,aw-bits=48 -device edu$/);
  });

  it('compiles the shipped VFIO scenario', () => {
    const file = 'scenarios/kernel/vfio-map-movable.yaml';
    const c = compileScenario(file, parseYamlText(fs.readFileSync(file, 'utf8')) as Scenario);
    expect(c.program).toMatch(/^4 vfio_map p=0 h=0 iova=1048576 a=0:0 len=209715200 prot=3$/m);
    expect(c.machine.devices).toContain('edu');
  });

  it('refuses, naming the step, every device and op that does not run on the kernel', () => {
    const open = (device: string): string => {
      try {
        compileScenario(
          't.yaml',
          dev(`  - { op: spawn, proc: a }\n  - { op: open, proc: a, device: ${device}, as: d }`),
        );
      } catch (e) {
        return (e as Error).message;
      }
      return 'not refused';
    };
    expect(open('nvme')).toMatch(/step 2 \(open\): device 'nvme' cannot run on a real kernel: no kernel mapping/);
    expect(open('constructor')).toMatch(/step 2 \(open\): device 'constructor' cannot run on a real kernel/);
    expect(devRefusal('  - { op: call, dev: vf, call: dma_write, args: { iova: 0, value: 1 } }')).toMatch(
      /^t\.yaml: step 4 \(call\): vfio-type1 dma_write cannot run on a real kernel: edu's DMA engine/,
    );
    expect(devRefusal('  - { op: call, dev: vf, call: dma_read, args: { iova: 0 } }')).toMatch(
      /step 4 \(call\): vfio-type1 dma_read/,
    );
    expect(devRefusal('  - { op: call, dev: vf, call: reg_mr, args: {} }')).toMatch(
      /step 4 \(call\): vfio-type1 has no op 'reg_mr'/,
    );
    expect(devRefusal('  - { op: call, dev: vf, call: unmap_dma, args: { iova: 0, len: 4K } }')).toMatch(
      /step 4 \(call\): unmap_dma: unknown argument 'len'/,
    );
    expect(devRefusal('  - { op: call, dev: vx, call: unmap_dma, args: { all: true } }')).toMatch(
      /step 4 \(call\): dev: no open device named 'vx'/,
    );
    expect(
      devRefusal('  - { op: call, dev: vf, call: map_dma, args: { iova: 0, vaddr: 0x7000, size: 4K, read: true } }'),
    ).toMatch(/step 4 \(call\): absolute address 28672/);
    expect(devRefusal('  - { op: call, dev: vf, call: map_dma, args: { iova: [1], vaddr: buf, size: 4K } }')).toMatch(
      /step 4 \(call\): iova: needs a byte count or address/,
    );
    expect(
      devRefusal(
        '  - { op: spawn, proc: b }',
        '  - { op: mmap, proc: b, as: other, len: 4K }',
        '  - { op: call, dev: vf, call: map_dma, args: { iova: 0, vaddr: other, size: 4K, read: true } }',
      ),
    ).toMatch(/step 6 \(call\): vaddr: mapping 'other' is b's, the device is open in a/);
    // an exit closes the process's devices (exit_files()): a later step on one names no open device
    expect(devRefusal('  - { op: exit, proc: a }')).toBe('not refused');
    expect(devRefusal('  - { op: exit, proc: a }', '  - { op: close, dev: vf }')).toMatch(
      /step 5 \(close\): dev: no open device named 'vf'/,
    );
    expect(devRefusal('  - { op: close, dev: vf }', '  - { op: close, dev: vf }')).toMatch(
      /step 5 \(close\): dev: no open device named 'vf'/,
    );
    expect(devRefusal('  - { op: open, proc: a, device: vfio-type1, as: vf }')).toMatch(
      /step 4 \(open\): device 'vf' is already open/,
    );
    expect(devRefusal('  - { op: close, dev: vf }', '  - { op: exit, proc: a }')).toBe('not refused');
  });

  it('compiles rdma-umem reg_mr/dereg_mr/close to the probe, with an e1000 and rdma_rxe linked on it', () => {
    const c = compileScenario(
      't.yaml',
      dev(
        [
          '  - { op: spawn, proc: a }',
          '  - { op: mmap, proc: a, as: buf, len: 2M, populate: true }',
          '  - { op: open, proc: a, device: rdma-umem, as: nic }',
          '  - { op: call, dev: nic, call: reg_mr, args: { vaddr: buf+4K, length: 1M, access: [local_write, remote_read] } }',
          '  - { op: call, dev: nic, call: dereg_mr, args: { mr: 0 } }',
          '  - { op: close, dev: nic }',
        ].join('\n'),
      ),
    );
    const lines = c.program.split('\n');
    expect(lines[1]).toBe('rxelink eth0');
    expect(lines.slice(4, 8)).toEqual([
      '3 rdma_open p=0 h=0',
      '4 rdma_reg p=0 h=0 a=0:4096 len=1048576 access=5',
      '5 rdma_dereg p=0 h=0 mr=0',
      '6 rdma_close p=0 h=0',
    ]);
    expect(c.modules).toEqual(['e1000', 'crc32_generic', 'rdma_rxe', 'ib_uverbs']);
    expect([c.machine.machineType, c.machine.devices]).toEqual([
      'pc',
      ['-netdev', 'user,id=n0', '-device', 'e1000,netdev=n0'],
    ]);
    const nic = (call: string) => {
      try {
        compileScenario(
          't.yaml',
          dev([...head.slice(0, 2), '  - { op: open, proc: a, device: rdma-umem, as: nic }', call].join('\n')),
        );
      } catch (e) {
        return (e as Error).message;
      }
      return 'not refused';
    };
    expect(nic('  - { op: call, dev: nic, call: post, args: { mr: 0 } }')).toMatch(
      /^t\.yaml: step 4 \(call\): rdma-umem post cannot run on a real kernel: a work request needs a queue pair/,
    );
    expect(nic('  - { op: call, dev: nic, call: complete, args: {} }')).toMatch(/step 4 \(call\): rdma-umem complete/);
    expect(
      nic('  - { op: call, dev: nic, call: reg_mr, args: { vaddr: buf, length: 4K, access: [toString] } }'),
    ).toMatch(/step 4 \(call\): access: 'toString' is not one of local_write/);
    expect(nic('  - { op: call, dev: nic, call: reg_mr, args: { vaddr: buf, length: 4K, hca_va: 4096 } }')).toMatch(
      /step 4 \(call\): hca_va: an absolute I\/O address/,
    );
    expect(nic('  - { op: call, dev: nic, call: dereg_mr, args: { mr: x } }')).toMatch(
      /step 4 \(call\): mr: "x" is not an MR number/,
    );
  });

  it("takes the model's registered name io_uring-fixed as well as io-uring-fixed", () => {
    const c = compileScenario(
      't.yaml',
      dev([...head.slice(0, 2), '  - { op: open, proc: a, device: io_uring-fixed, as: ring }'].join('\n')),
    );
    expect(c.program).toContain('\n3 uring_open p=0 h=0');
  });

  it('compiles io-uring-fixed register/unregister/close to a ring of its own; read_fixed and write_fixed are refused', () => {
    const steps = [
      ...head.slice(0, 2),
      '  - { op: mmap, proc: a, as: two, len: 8K }',
      '  - { op: open, proc: a, device: io-uring-fixed, as: ring }',
    ];
    const c = compileScenario(
      't.yaml',
      dev(
        [
          ...steps,
          '  - { op: call, dev: ring, call: register, args: { iovecs: [{ base: buf, len: 1M }, { base: 0, len: 0 }, { base: two+4K, len: 4K }] } }',
          '  - { op: call, dev: ring, call: unregister, args: {} }',
          '  - { op: close, dev: ring }',
        ].join('\n'),
      ),
    );
    expect(c.program.split('\n').slice(4, 8)).toEqual([
      '4 uring_open p=0 h=0',
      '5 uring_reg p=0 h=0 iov=0:0:1048576,-:0:0,1:4096:4096',
      '6 uring_unreg p=0 h=0',
      '7 uring_close p=0 h=0',
    ]);
    expect([c.machine.machineType, c.machine.devices, c.modules]).toEqual(['pc', undefined, []]);
    const ring = (call: string) => {
      try {
        compileScenario('t.yaml', dev([...steps, call].join('\n')));
      } catch (e) {
        return (e as Error).message;
      }
      return 'not refused';
    };
    expect(ring('  - { op: call, dev: ring, call: read_fixed, args: { buf: 0, off: 0, value: 1 } }')).toMatch(
      /^t\.yaml: step 5 \(call\): io_uring-fixed read_fixed cannot run on a real kernel: READ_FIXED needs a file/,
    );
    expect(ring('  - { op: call, dev: ring, call: write_fixed, args: { buf: 0, off: 0 } }')).toMatch(
      /step 5 \(call\): io_uring-fixed write_fixed/,
    );
    expect(ring('  - { op: call, dev: ring, call: register, args: { iovecs: [{ base: 0x1000, len: 4K }] } }')).toMatch(
      /step 5 \(call\): absolute address 4096/,
    );
    expect(ring('  - { op: call, dev: ring, call: register, args: { iovecs: [{ addr: buf, len: 4K }] } }')).toMatch(
      /step 5 \(call\): iovecs: unknown field 'addr'/,
    );
    expect(
      ring(
        `  - { op: call, dev: ring, call: register, args: { iovecs: [${Array(37).fill('{ base: buf, len: 4K }').join(', ')}] } }`,
      ),
    ).toMatch(/step 5 \(call\): iovecs: a list of at most 36/);
  });

  it("reports a device step in the model's words, with the kernel's rc checked against expect", () => {
    const c = compileScenario(
      't.yaml',
      dev(
        [
          ...head,
          '  - { op: call, dev: vf, call: map_dma, args: { iova: 0x100000, vaddr: buf, size: 2M, read: true, write: true }, expect: 0 }',
          '  - { op: call, dev: vf, call: unmap_dma, args: { iova: 0x100000, size: 2M }, expect: 2097152 }',
          '  - { op: close, dev: vf, expect: -EBADF }',
        ].join('\n'),
        Q35,
      ),
    );
    const hello =
      '{"hello":"pinlab-probe","uptime_ms":3000,"counters":["pgmigrate_success"],"release":"6.12.0","zones":[]}';
    const rep = buildReport('t.yaml', c, { spec: 'debian:6.12', release: '6.12.0', variant: 'v6.12' }, [
      hello,
      '{"step":1,"op":"spawn","rc":0,"aux":90,"d":{},"log":[],"killed":[]}',
      '{"step":2,"op":"mmap","rc":0,"aux":4096,"addr":"0x200000","res":{"pages":512,"present":512,"zero":0,"zones":{"Movable":512}},"d":{},"log":[],"killed":[]}',
      '{"step":3,"op":"vfio_open","rc":0,"aux":1,"d":{},"log":[],"killed":[]}',
      '{"step":4,"op":"vfio_map","rc":0,"aux":0,"addr":"0x200000","res":{"pages":512,"present":512,"zero":0,"zones":{"DMA32":512}},"vm":{"VmLck":2048,"VmPin":0},"d":{"pgmigrate_success":512},"log":[],"killed":[]}',
      '{"step":5,"op":"vfio_unmap","rc":1048576,"aux":0,"d":{},"log":[],"killed":[]}',
      '{"step":6,"op":"vfio_close","rc":0,"aux":0,"d":{},"log":[],"killed":[]}',
      '{"end":6,"ms":100,"vmstat":{},"zones":[],"blocks":[]}',
    ]);
    expect(rep.results.map((r) => [r.op, r.proc, r.result, r.ok])).toEqual([
      ['spawn', 'a', '0', true],
      ['mmap', 'a', '0', true],
      ['open', 'a', '0', true],
      ['call', 'a', '0', true],
      ['call', 'a', '1048576', false], // expected 2097152
      ['close', 'a', '0', false], // expected -EBADF
    ]);
    expect(rep.results[2]!.detail).toBe('vfio-pci edu in iommu group 1; container set to VFIO_TYPE1v2_IOMMU');
    expect(rep.results[3]!.detail).toBe(
      '0x100000+0x200000 pinned and mapped: 512 pages present (DMA32 512); 512 migrated; locked_vm 512 pages',
    );
    expect(rep.results[4]!.detail).toBe('1048576 bytes unmapped');
    expect(rep.ok).toBe(false);
  });

  it('reports rdma-umem: the link the probe added, an MR with its lkey, pages and pinned_vm', () => {
    const c = compileScenario(
      't.yaml',
      dev(
        [
          ...head.slice(0, 2),
          '  - { op: open, proc: a, device: rdma-umem, as: nic, expect: 0 }',
          '  - { op: call, dev: nic, call: reg_mr, args: { vaddr: buf, length: 2M, access: [local_write] }, expect: 0 }',
          '  - { op: call, dev: nic, call: dereg_mr, args: { mr: 1 }, expect: -ENOENT }',
        ].join('\n'),
      ),
    );
    const hello =
      '{"hello":"pinlab-probe","uptime_ms":3000,"counters":["pgmigrate_success"],"release":"6.12.0","zones":[]}';
    const rep = buildReport('t.yaml', c, { spec: 'debian:6.12', release: '6.12.0', variant: 'v6.12' }, [
      hello,
      '{"rxelink":-2}',
      '{"step":1,"op":"spawn","rc":0,"aux":90,"d":{},"log":[],"killed":[]}',
      '{"step":2,"op":"mmap","rc":0,"aux":4096,"addr":"0x200000","res":{"pages":512,"present":512,"zero":0,"zones":{"Movable":512}},"d":{},"log":[],"killed":[]}',
      '{"step":3,"op":"rdma_open","rc":0,"aux":0,"d":{},"log":[],"killed":[]}',
      '{"step":4,"op":"rdma_reg","rc":0,"aux":607,"addr":"0x200000","res":{"pages":512,"present":512,"zero":0,"zones":{"DMA32":512}},"vm":{"VmLck":0,"VmPin":2048},"d":{"pgmigrate_success":512},"log":[],"killed":[]}',
      '{"step":5,"op":"rdma_dereg","rc":-2,"aux":0,"d":{},"log":[],"killed":[]}',
      '{"end":5,"ms":100,"vmstat":{},"zones":[],"blocks":[]}',
    ]);
    expect(rep.init).toEqual(['rdma link add rxe0 type rxe netdev eth0: failed, -ENOENT']);
    expect(rep.results[2]!.detail).toBe('rxe0 on eth0: ucontext and PD allocated');
    expect(rep.results[3]!.detail).toBe(
      'mr 0: lkey 0x25f, 512 pages present (DMA32 512); 512 migrated; pinned_vm 512 pages',
    );
    expect(rep.results.map((r) => r.ok)).toEqual([true, true, true, true, true]);
    expect(rep.ok).toBe(true);
  });
});
