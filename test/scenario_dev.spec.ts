// Device steps (open/call/close) and process-owned pins: args checked at load (one line, exit 2), each
// device model driven from a scenario, pins released when their process exits or is OOM-killed, further
// kills and the "System is deadlocked on memory" panic when nothing is left.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { main } from '../harness/cli';
import { loadScenario, runScenario, ScenarioRun } from '../harness/scenario';
import { compileScenario } from '../harness/kernel_compile';
import { buildReport } from '../harness/kernel_run';
import { diffRuns } from '../harness/kernel_diff';

function cli(argv: string[]): { code: number; out: string; err: string } {
  let out = '';
  let err = '';
  const code = main(argv, { out: (s) => (out += s), err: (s) => (err += s) });
  return { code, out, err };
}

const X86 = 'machine: { cmdline: "mem=512M" }\n';

function run(text: string, kernel?: string): ScenarioRun {
  const sc = loadScenario('t.yaml', text);
  return runScenario('t.yaml', sc, () => {}, kernel);
}

/** "op result detail" of every step, for readable failures. */
const lines = (r: ScenarioRun): string[] => r.results.map((x) => `${x.step} ${x.op} ${x.result} ${x.detail}`);

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pinlab-scdev-'));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('device steps: bad args are one line on stderr and exit 2', () => {
  const HEAD =
    '  - { op: spawn, proc: a }\n  - { op: mmap, proc: a, as: buf, len: 2M }\n  - { op: open, proc: a, device: vfio-type1, as: vf }\n';
  const cases: [string, string, RegExp][] = [
    [
      'unknown-device',
      '  - { op: spawn, proc: a }\n  - { op: open, proc: a, device: nvme, as: d }\n',
      /: step 2 \(open\): device: expected one of vfio-type1, .*, got "nvme"$/,
    ],
    [
      'no-as',
      '  - { op: spawn, proc: a }\n  - { op: open, proc: a, device: vfio-type1 }\n',
      /: step 2 \(open\): needs 'as'$/,
    ],
    [
      'unknown-call',
      `${HEAD}  - { op: call, dev: vf, call: reg_mr, args: {} }\n`,
      /: step 4 \(call\): call: vfio-type1 has no op 'reg_mr' \(ops: map_dma, unmap_dma, dma_write, dma_read, get_info\)$/,
    ],
    [
      'unknown-arg',
      `${HEAD}  - { op: call, dev: vf, call: unmap_dma, args: { iova: 0, len: 4K } }\n`,
      /: step 4 \(call\): args: unmap_dma: unknown argument 'len' \(iova, size, all\)$/,
    ],
    [
      'bad-size',
      `${HEAD}  - { op: call, dev: vf, call: map_dma, args: { iova: 0, vaddr: buf, size: 2Q, read: true } }\n`,
      /: step 4 \(call\): args\.size: expected a byte count: a number, or a size like 2M$/,
    ],
    [
      'bad-vaddr',
      `${HEAD}  - { op: call, dev: vf, call: map_dma, args: { iova: 0, vaddr: [1], size: 4K } }\n`,
      /: step 4 \(call\): args\.vaddr: expected an address/,
    ],
    [
      'bad-bool',
      `${HEAD}  - { op: call, dev: vf, call: map_dma, args: { iova: 0, vaddr: buf, size: 4K, read: 1 } }\n`,
      /: step 4 \(call\): args\.read: expected true or false/,
    ],
    [
      'bad-access',
      '  - { op: spawn, proc: a }\n  - { op: open, proc: a, device: rdma-umem, as: nic }\n  - { op: call, dev: nic, call: reg_mr, args: { vaddr: 0, length: 4K, access: [local_wirte] } }\n',
      /: step 3 \(call\): args\.access.*expected one/,
    ],
    [
      'call-before-open',
      '  - { op: spawn, proc: a }\n  - { op: call, dev: vf, call: map_dma, args: {} }\n',
      /: step 2 \(call\): dev: no device opened as 'vf' before this step$/,
    ],
    ['memlock-negative', '  - { op: spawn, proc: a, memlock: -1 }\n', /: step 1 \(spawn\): memlock: expected a size/],
  ];
  it.each(cases)('%s', (name, steps, want) => {
    const f = path.join(dir, `${name}.yaml`);
    fs.writeFileSync(f, `${X86}steps:\n${steps}`);
    const r = cli(['scenario', f]);
    expect([r.code, r.out]).toEqual([2, '']);
    expect(r.err.trimEnd().split('\n')).toHaveLength(1);
    expect(r.err.trimEnd()).toMatch(want);
  });
});

describe('device steps run each model', () => {
  it('vfio-type1: map_dma pins (counted in vmstat), the device DMAs, unmap_dma returns the bytes, close', () => {
    const r = run(`${X86}steps:
  - { op: spawn, proc: a }
  - { op: mmap, proc: a, as: buf, len: 2M, populate: true }
  - { op: open, proc: a, device: vfio-type1, as: vf, expect: 0 }
  - { op: call, dev: vf, call: map_dma, args: { iova: 0x100000, vaddr: buf, size: 2M, read: true, write: true }, expect: 0 }
  - { op: vmstat, items: nr_foll_pin_acquired nr_foll_pin_released, expect_match: "acquired 512; nr_foll_pin_released 0" }
  - { op: call, dev: vf, call: dma_write, args: { iova: 0x101000, value: 77 }, expect: 0 }
  - { op: read, proc: a, addr: buf+4K, value: 77 }
  - { op: call, dev: vf, call: unmap_dma, args: { iova: 1M, size: 2M }, expect: 2097152 }
  - { op: call, dev: vf, call: dma_read, args: { iova: 0x101000 }, expect: -EFAULT }
  - { op: close, dev: vf, expect: 0 }
  - { op: vmstat, items: nr_foll_pin_acquired nr_foll_pin_released, expect_match: "acquired 512; nr_foll_pin_released 512" }
`);
    expect(r.results.filter((x) => !x.ok).map((x) => `${x.step} ${x.result} ${x.detail}`)).toEqual([]);
    expect(r.results[3]!.proc).toBe('a'); // a call acts for the device's process
  });

  it('rdma-umem: reg_mr returns the MR number; memlock 0 is -EPERM (can_do_mlock), dereg twice -ENOENT', () => {
    const r = run(`${X86}steps:
  - { op: spawn, proc: a }
  - { op: mmap, proc: a, as: buf, len: 1M, populate: true }
  - { op: open, proc: a, device: rdma-umem, as: nic }
  - { op: call, dev: nic, call: reg_mr, args: { vaddr: buf, length: 512K, access: local_write }, expect: 0 }
  - { op: call, dev: nic, call: reg_mr, args: { vaddr: buf+512K, length: 512K, access: [local_write, remote_read] }, expect: 1 }
  - { op: call, dev: nic, call: dereg_mr, args: { mr: 1 }, expect: 0 }
  - { op: call, dev: nic, call: dereg_mr, args: { mr: 1 }, expect: -ENOENT }
  - { op: close, dev: nic, expect: 0, expect_match: "128 page" }
  - { op: spawn, proc: b, memlock: 0 }
  - { op: mmap, proc: b, as: bb, len: 64K, populate: true }
  - { op: open, proc: b, device: rdma-umem, as: nic2 }
  - { op: call, dev: nic2, call: reg_mr, args: { vaddr: bb, length: 64K, access: [local_write] }, expect: -EPERM }
`);
    expect(r.results.filter((x) => !x.ok).map((x) => `${x.step} ${x.result} ${x.detail}`)).toEqual([]);
  });

  it('vfio-type1 with memlock 0: map_dma is -ENOMEM (vfio_pin_pages_remote over RLIMIT_MEMLOCK)', () => {
    const r = run(`${X86}steps:
  - { op: spawn, proc: a, memlock: 0 }
  - { op: mmap, proc: a, as: buf, len: 64K, populate: true }
  - { op: open, proc: a, device: vfio-type1, as: vf }
  - { op: call, dev: vf, call: map_dma, args: { iova: 0, vaddr: buf, size: 64K, read: true }, expect: -ENOMEM }
  - { op: vmstat, items: nr_foll_pin_acquired nr_foll_pin_released, expect_match: "acquired (\\\\d+); nr_foll_pin_released \\\\1$" }
`);
    expect(lines(r).filter((_, i) => !r.results[i]!.ok)).toEqual([]);
  });

  it('io_uring-fixed (also spelled io-uring-fixed): register, a second -EBUSY, unregister, -ENXIO after', () => {
    const r = run(`${X86}steps:
  - { op: spawn, proc: a }
  - { op: mmap, proc: a, as: buf, len: 256K, populate: true }
  - { op: open, proc: a, device: io-uring-fixed, as: ring }
  - { op: call, dev: ring, call: register, args: { iovecs: [ { base: buf, len: 128K }, { base: buf+128K, len: 128K } ] }, expect: 0 }
  - { op: call, dev: ring, call: register, args: { iovecs: [ { base: buf, len: 4K } ] }, expect: -EBUSY }
  - { op: call, dev: ring, call: write_fixed, args: { buf: 1, off: 0, addr: 0 } }
  - { op: call, dev: ring, call: unregister, expect: 0, expect_match: "64 page" }
  - { op: call, dev: ring, call: unregister, expect: -ENXIO }
  - { op: close, dev: ring, expect: 0 }
`);
    expect(lines(r).filter((_, i) => !r.results[i]!.ok)).toEqual([]);
  });

  it('a device left open is closed with its process: exit releases its pins, a later call names no device', () => {
    const text = `${X86}steps:
  - { op: spawn, proc: a }
  - { op: mmap, proc: a, as: buf, len: 1M, populate: true }
  - { op: open, proc: a, device: vfio-type1, as: vf }
  - { op: call, dev: vf, call: map_dma, args: { iova: 0, vaddr: buf, size: 1M, read: true }, expect: 0 }
  - { op: exit, proc: a, expect_match: "256 pinned pages released" }
  - { op: vmstat, items: nr_foll_pin_acquired nr_foll_pin_released, expect_match: "acquired 256; nr_foll_pin_released 256" }
`;
    const r = run(text);
    expect(lines(r).filter((_, i) => !r.results[i]!.ok)).toEqual([]);
    expect(() => run(`${text}  - { op: close, dev: vf }\n`)).toThrow(
      /step 7 \(close\): dev: no open device named 'vf'/,
    );
  });
});

describe('scenario pins are their process', () => {
  it('exit releases a pin; a later unpin of it is -ESRCH, as the probe answers for a dead process', () => {
    const r = run(`${X86}steps:
  - { op: spawn, proc: a }
  - { op: mmap, proc: a, as: buf, len: 1M, populate: true }
  - { op: pin, proc: a, addr: buf, len: 1M, as: p, expect: 256 }
  - { op: exit, proc: a, expect_match: "^256 pinned pages released" }
  - { op: unpin, pin: p, expect: -ESRCH }
  - { op: vmstat, items: nr_foll_pin_acquired nr_foll_pin_released, expect_match: "acquired 256; nr_foll_pin_released 256" }
`);
    expect(lines(r).filter((_, i) => !r.results[i]!.ok)).toEqual([]);
  });

  // b (the OOM killer's pick) pins 300M of a 512M machine's only zones; the kalloc can only succeed if b's
  // kill releases its pins, not just reaps its unpinned memory
  const KILL = `machine: { cmdline: "mem=512M" }
kernels: [v6.1, v6.12]
steps:
  - { op: spawn, proc: qemu, oom_score_adj: -1000 }
  - { op: mmap, proc: qemu, len: 64M, as: ga, populate: true }
  - { op: pin, proc: qemu, addr: ga, len: 64M, as: pa, expect: 16384 }
  - { op: spawn, proc: b }
  - { op: mmap, proc: b, len: 300M, as: gb, populate: true }
  - { op: open, proc: b, device: rdma-umem, as: nic }
  - { op: call, dev: nic, call: reg_mr, args: { vaddr: gb, length: 100M, access: [local_write] }, expect: 0 }
  - { op: pin, proc: b, addr: gb+100M, len: 200M, as: pb, expect: 51200 }
  - { op: kalloc, size: 200M, as: k1, expect: 51200 }
  - { op: unpin, pin: pb, expect: -ESRCH }
  - { op: call, dev: nic, call: dereg_mr, args: { mr: 0 }, expect: -ESRCH }
  - { op: vmstat, items: oom_kill, expect_match: "oom_kill 1$" }
  - { op: kalloc, size: 200M, as: k2, expect: panic }
`;

  it.each(['v6.1', 'v6.12'])(
    '%s: the OOM kill releases the victim, the allocation then succeeds; nothing left: panic',
    (k) => {
      const r = run(KILL, k);
      expect(lines(r).filter((_, i) => !r.results[i]!.ok)).toEqual([]);
      expect(r.panic).toBe('Kernel panic - not syncing: System is deadlocked on memory');
      expect(r.results).toHaveLength(13);
    },
  );

  it("a pinner killed inside its own pin step: the pin went with it (if_pinned: the probe's answer; else -ENOENT)", () => {
    const text = (ifp: boolean) => `machine: { cmdline: "mem=1G movablecore=768M" }
steps:
  - { op: spawn, proc: vmm }
  - { op: mmap, proc: vmm, len: 224M, as: guest, populate: true }
  - { op: pin_max, proc: vmm, addr: guest, len: 224M, chunk: 2M, as: dma }
  - { op: unpin, pin: dma${ifp ? ', if_pinned: true' : ''} }
  - { op: vmstat, items: nr_foll_pin_acquired nr_foll_pin_released, expect_match: "acquired (\\\\d+); nr_foll_pin_released \\\\1$" }
`;
    const r = run(text(true));
    expect(r.results.map((x) => x.ok)).toEqual([true, true, true, true, true]);
    expect(r.results[3]).toMatchObject({
      result: '0',
      detail: 'not pinned: its process died and io_uring released the buffers with it',
    });
    expect(run(text(false)).results[3]).toMatchObject({ result: '-ENOENT', detail: '' });
  });
});

describe('scenarios/kernel/pin-max.yaml against the kernel run docs/fidelity.md records', () => {
  it('the unpin after the kill now compares equal: the pin went with its process on both sides', () => {
    const file = path.join(__dirname, '..', 'scenarios', 'kernel', 'pin-max.yaml');
    const sc = loadScenario(file);
    const modelLines: string[] = [];
    const model = runScenario(file, sc, (l) => modelLines.push(l), 'v6.12');
    const c = compileScenario(file, sc);
    // the probe's records of that run: the pinner killed inside pin_max, then if_pinned finds nothing held
    const rec = (step: number, op: string, more: string) =>
      `{"step":${step},"op":"${op}",${more},"d":{},"log":[],"killed":[]}`;
    const lines = [
      '{"hello":"pinlab-probe","uptime_ms":4000,"counters":["oom_kill","nr_foll_pin_acquired","nr_foll_pin_released"],"release":"6.12.0","thp":"always [madvise] never","zones":[],"block_pages":32768,"blocks":[]}',
      rec(1, 'spawn', '"rc":0,"aux":99'),
      rec(
        2,
        'mmap',
        '"rc":0,"aux":0,"addr":"0x1000","res":{"pages":57344,"present":57344,"zero":0,"zones":{"Movable":57344}}',
      ),
      '{"step":3,"op":"pinmax","addr":"0x1000","died":true,"d":{"oom_kill":1,"nr_foll_pin_acquired":93200,"nr_foll_pin_released":93200},"log":["Out of memory: Killed process 99 (vmm)"],"killed":["vmm"]}',
      rec(4, 'vmstat', '"rc":0,"aux":0'),
      rec(5, 'unpin', '"rc":0,"aux":-1'),
      rec(6, 'vmstat', '"rc":0,"aux":0'),
    ];
    const kernel = buildReport(file, c, { spec: 'debian:6.12', release: '6.12.0', variant: 'v6.12' }, lines);
    const d = diffRuns(model, modelLines, kernel);
    const unpin = d.steps.find((s) => s.op === 'unpin')!;
    expect(unpin.kernel!.detail).toBe('not pinned: its process died and io_uring released the buffers with it');
    expect(unpin.differs).toEqual({});
  });
});

describe('spawn: memlock 0 and CAP_IPC_LOCK, the same in the model and on the kernel', () => {
  it('compiles memlock 0 (cap dropped), cap_ipc_lock alone (the default 8 MiB limit), and neither (root)', () => {
    const c = compileScenario(
      't.yaml',
      loadScenario(
        't.yaml',
        `${X86}steps:\n  - { op: spawn, proc: a, memlock: 0 }\n  - { op: spawn, proc: b, cap_ipc_lock: false }\n  - { op: spawn, proc: r }\n`,
      ),
    );
    expect(c.program).toMatch(/^1 spawn p=0 name=a memlock=0 cap=0 oom=0$/m);
    expect(c.program).toMatch(/^2 spawn p=1 name=b memlock=8388608 cap=0 oom=0$/m);
    expect(c.program).toMatch(/^3 spawn p=2 name=r oom=0$/m);
  });

  it('the model: without memlock a process is root (MAP_DMA of 16M passes), cap_ipc_lock: false keeps 8 MiB', () => {
    const r = run(`${X86}steps:
  - { op: spawn, proc: r }
  - { op: mmap, proc: r, as: buf, len: 16M, populate: true }
  - { op: open, proc: r, device: vfio-type1, as: vf }
  - { op: call, dev: vf, call: map_dma, args: { iova: 0, vaddr: buf, size: 16M, read: true }, expect: 0 }
  - { op: spawn, proc: b, cap_ipc_lock: false }
  - { op: mmap, proc: b, as: bb, len: 16M, populate: true }
  - { op: open, proc: b, device: vfio-type1, as: vb }
  - { op: call, dev: vb, call: map_dma, args: { iova: 0, vaddr: bb, size: 16M, read: true }, expect: -ENOMEM }
  - { op: call, dev: vb, call: map_dma, args: { iova: 0, vaddr: bb, size: 8M, read: true }, expect: 0 }
`);
    expect(lines(r).filter((_, i) => !r.results[i]!.ok)).toEqual([]);
  });
});

describe('further kills', () => {
  it("one allocation, two victims: the second's io_uring ring teardown lets the retry through", () => {
    const r = run(`${X86}steps:
  - { op: spawn, proc: a }
  - { op: mmap, proc: a, len: 160M, as: ga, populate: true }
  - { op: pin, proc: a, addr: ga, len: 160M, as: pa }
  - { op: spawn, proc: b }
  - { op: mmap, proc: b, len: 150M, as: gb, populate: true }
  - { op: open, proc: b, device: io-uring-fixed, as: ring }
  - { op: call, dev: ring, call: register, args: { iovecs: [ { base: gb, len: 150M } ] }, expect: 0 }
  - { op: kalloc, size: 300M, as: k, expect: 76800 }
  - { op: call, dev: ring, call: unregister, expect: -ESRCH }
  - { op: vmstat, items: oom_kill nr_foll_pin_acquired nr_foll_pin_released, expect_match: "oom_kill 2; nr_foll_pin_acquired (\\\\d+); nr_foll_pin_released \\\\1$" }
`);
    expect(lines(r).filter((_, i) => !r.results[i]!.ok)).toEqual([]);
    expect(r.panic).toBeUndefined();
  });
});
