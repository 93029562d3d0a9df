// The probe's step interpreter on the host kernel: compile probe/pinlab-probe.c with gcc -static and run
// small programs (mmap, touch, pagemap residency, io_uring fixed buffers, fork, munmap). The host's zones
// are whatever this machine has: the tests count pages, not zones.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { buildProbe } from '../../harness/kernel_setup';
import { compileScenario } from '../../harness/kernel_compile';
import { buildReport } from '../../harness/kernel_run';
import { loadScenario, runScenario } from '../../harness/scenario';

let probe: string;
const root = process.getuid?.() === 0;

beforeAll(() => {
  probe = buildProbe(); // a SetupError (one line: gcc's error) fails every test here
});

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the probe's JSON, read field by field
type Rec = Record<string, any>;

function runProbe(program: string): Rec[] {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pinlab-probe-test-'));
  const file = path.join(dir, 'prog.txt');
  fs.writeFileSync(file, program);
  const r = spawnSync(probe, [file], { encoding: 'utf8', timeout: 30000 });
  fs.rmSync(dir, { recursive: true, force: true });
  expect(r.status).toBe(0);
  return r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Rec);
}

const step = (recs: Rec[], n: number) => recs.find((r) => r.step === n)!;

describe('pinlab-probe on the host kernel', () => {
  it('prints a hello with the counters it found, one line per step and an end line', () => {
    const recs = runProbe('counters nr_foll_pin_acquired,no_such_counter\n1 spawn p=0 name=a\n2 exit p=0\n');
    expect(recs[0]).toMatchObject({ hello: 'pinlab-probe', page_size: 4096 });
    expect(recs[0]!.counters).toEqual(['nr_foll_pin_acquired']);
    expect(Array.isArray(recs[0]!.zones)).toBe(true);
    expect(step(recs, 1)).toMatchObject({ op: 'spawn', rc: 0 });
    expect(step(recs, 2)).toMatchObject({ op: 'exit', rc: 0 });
    expect(recs[recs.length - 1]).toMatchObject({ end: 2 });
  });

  it("census: a memory block's pages by /proc/kpageflags, with its reserved runs (root), or the errno", () => {
    const recs = runProbe('1 census b=0\n');
    const r = step(recs, 1);
    if (!fs.existsSync('/sys/devices/system/memory/block_size_bytes')) return; // no memory blocks: nothing to count
    if (root) {
      expect(r.census).toMatchObject({ anon: expect.any(Number), shmem: expect.any(Number), file: expect.any(Number) });
      for (const [off, n] of r.census.runs as [number, number][]) expect(off >= 0 && n > 0).toBe(true);
    } else expect(r.census_error).toBeLessThan(0);
  });

  it('mmap, touch, read back, residency from pagemap, munmap, then a fault reads as -EFAULT', () => {
    const recs = runProbe(
      [
        'counters pgfault',
        '1 spawn p=0 name=a',
        '2 mmap p=0 m=0 len=65536 prot=3',
        '3 touch p=0 a=0:0 len=65536 value=100',
        '4 read p=0 a=0:8192',
        '5 write p=0 a=0:8192 value=7',
        '6 read p=0 a=0:8192',
        '7 madvise p=0 a=0:0 len=8192 advice=4',
        '8 touch p=0 a=0:0 len=8192 write=0',
        '9 munmap p=0 a=0:0 len=65536',
        '10 read p=0 a=0:0',
      ].join('\n') + '\n',
    );
    expect(step(recs, 2).res).toMatchObject({ pages: 16, present: 0 });
    expect(step(recs, 3)).toMatchObject({ rc: 0 });
    expect(step(recs, 3).res).toMatchObject({ pages: 16, present: 16, zero: 0 });
    if (root)
      expect(
        Object.values(step(recs, 3).res.zones as Record<string, number>).reduce((a, b) => a + b, 0) +
          step(recs, 3).res.unknown,
      ).toBe(16);
    expect(step(recs, 4).rc).toBe(102);
    expect(step(recs, 5).rc).toBe(0); // a store returns 0, as the model's write does
    expect(step(recs, 6).rc).toBe(7);
    // MADV_DONTNEED, then read faults map the zero page (kpageflags says so, as root) on Debian's
    // kernels; some hosts map fresh pages instead (a 6.18 Firecracker guest kernel: present 2, zero 0)
    const r8 = step(recs, 8).res;
    expect(r8).toMatchObject({ pages: 2 });
    expect(r8.present + r8.zero).toBe(2);
    if (!root) expect(r8.zero).toBe(0); // only kpageflags (root) tells the zero page apart
    expect(step(recs, 10).rc).toBe(-14);
  });

  it('a PMD or larger mapping starts PMD-aligned, as the model places it', () => {
    const recs = runProbe('counters pgfault\n1 spawn p=0 name=a\n2 mmap p=0 m=0 len=4194304 prot=3\n');
    expect(BigInt(step(recs, 2).aux) % (2n << 20n)).toBe(0n);
  });

  it('an io_uring fixed buffer pins every page (FOLL_PIN counters) until it is unregistered', () => {
    const recs = runProbe(
      [
        'counters nr_foll_pin_acquired,nr_foll_pin_released',
        '1 spawn p=0 name=a',
        '2 mmap p=0 m=0 len=1048576 prot=3 populate=1',
        '3 pin p=0 a=0:0 len=1048576 h=0',
        '4 unpin h=0',
        '5 unpin h=0 ifp=1',
      ].join('\n') + '\n',
    );
    expect(step(recs, 2).res).toMatchObject({ present: 256 });
    expect(step(recs, 3)).toMatchObject({ op: 'pin', rc: 256 });
    expect(step(recs, 3).d.nr_foll_pin_acquired).toBeGreaterThanOrEqual(256);
    expect(step(recs, 3).vm.VmPin).toBe(1024); // io_uring charges mm->pinned_vm
    expect(step(recs, 4)).toMatchObject({ rc: 0 });
    expect(step(recs, 4).d.nr_foll_pin_released).toBeGreaterThanOrEqual(256);
    expect(step(recs, 4).vm.VmPin).toBe(0);
    expect(step(recs, 5)).toMatchObject({ rc: 0, aux: -1 }); // if_pinned: nothing held
  });

  it('pin_max registers chunk after chunk in a sparse io_uring buffer table until one fails', () => {
    const recs = runProbe(
      [
        'counters nr_foll_pin_acquired',
        '1 spawn p=0 name=a',
        '2 mmap p=0 m=0 len=16384 prot=3 populate=1',
        '3 mprotect p=0 a=0:12288 len=4096 prot=1',
        '4 pinmax p=0 a=0:0 len=16384 chunk=4096 h=0',
        '5 unpin h=0',
      ].join('\n') + '\n',
    );
    expect(step(recs, 3)).toMatchObject({ rc: 0 });
    expect(step(recs, 4)).toMatchObject({ op: 'pinmax', rc: 3, aux: -14 }); // the read-only chunk: -EFAULT
    expect(step(recs, 4).res).toMatchObject({ pages: 3, present: 3 });
    expect(step(recs, 4).d.nr_foll_pin_acquired).toBeGreaterThanOrEqual(3);
    expect(step(recs, 5)).toMatchObject({ rc: 0 });
  });

  it('a vmsplice hold takes the pages, a failed register is an errno, fork is copy-on-write', () => {
    const recs = runProbe(
      [
        'counters nr_foll_pin_acquired',
        '1 spawn p=0 name=parent',
        '2 mmap p=0 m=0 len=16384 prot=3',
        '3 touch p=0 a=0:0 len=16384 value=10',
        '4 hold p=0 a=0:0 len=16384 h=0',
        '5 unpin h=0',
        '6 mmap p=0 m=1 len=8192 prot=1',
        '7 pin p=0 a=1:0 len=8192 h=1',
        '8 fork p=0 c=1 name=child',
        '9 write p=1 a=0:4096 value=5',
        '10 read p=0 a=0:4096',
        '11 read p=1 a=0:4096',
        '12 exit p=1',
        '13 read p=1 a=0:0',
      ].join('\n') + '\n',
    );
    expect(step(recs, 4)).toMatchObject({ rc: 4 });
    expect(step(recs, 5)).toMatchObject({ rc: 0 });
    expect(step(recs, 7).rc).toBeLessThan(0); // FOLL_WRITE on a read-only mapping
    expect(step(recs, 8)).toMatchObject({ rc: 0 });
    expect(step(recs, 9)).toMatchObject({ rc: 0 });
    expect(step(recs, 10).rc).toBe(11);
    expect(step(recs, 11).rc).toBe(5);
    expect(step(recs, 13)).toMatchObject({ rc: -3 }); // the process is gone: -ESRCH
  });

  it('vfio ops on a host without vfio or edu: open fails with the errno, the slot holds nothing', () => {
    const recs = runProbe(
      [
        'counters nr_foll_pin_acquired',
        '1 spawn p=0 name=a',
        '2 mmap p=0 m=0 len=8192 prot=3 populate=1',
        '3 vfio_open p=0 h=0',
        '4 vfio_map p=0 h=0 iova=1048576 a=0:0 len=8192 prot=3',
        '5 vfio_unmap p=0 h=0 iova=1048576 len=8192 all=0',
        '6 vfio_close p=0 h=0',
        '7 vfio_open p=0 h=99',
      ].join('\n') + '\n',
    );
    // no /dev/vfio/vfio (no vfio module): -ENOENT; vfio but no edu device (1234:11e8): -ENODEV
    expect([-2, -19]).toContain(step(recs, 3).rc);
    // nothing open in slot 0: map, unmap and close get -EBADF and pin nothing
    expect(step(recs, 4)).toMatchObject({ op: 'vfio_map', rc: -9 });
    expect(step(recs, 4).res).toMatchObject({ pages: 2, present: 2 });
    expect(step(recs, 4).d.nr_foll_pin_acquired ?? 0).toBe(0);
    expect(step(recs, 5)).toMatchObject({ rc: -9 });
    expect(step(recs, 6)).toMatchObject({ rc: -9 });
    expect(step(recs, 7)).toMatchObject({ error: 'bad slot' });
  });

  it('rdma ops on a host without rdma_rxe: open fails with the errno, reg_mr/dereg_mr/close get -EBADF', () => {
    // no rxelink line here: the probe never adds an RDMA link to the host
    const recs = runProbe(
      [
        'counters nr_foll_pin_acquired',
        '1 spawn p=0 name=a',
        '2 mmap p=0 m=0 len=8192 prot=3 populate=1',
        '3 rdma_open p=0 h=0',
        '4 rdma_reg p=0 h=0 a=0:0 len=8192 access=1',
        '5 rdma_dereg p=0 h=0 mr=0',
        '6 rdma_close p=0 h=0',
      ].join('\n') + '\n',
    );
    if (fs.existsSync('/dev/infiniband/uverbs0')) expect(step(recs, 3).rc).toBe(0);
    else expect(step(recs, 3).rc).toBe(-2);
    if (step(recs, 3).rc === 0) return; // a host with RDMA: the error path below does not apply
    expect(step(recs, 4)).toMatchObject({ op: 'rdma_reg', rc: -9 });
    expect(step(recs, 4).d.nr_foll_pin_acquired ?? 0).toBe(0);
    expect(step(recs, 5)).toMatchObject({ rc: -9 });
    expect(step(recs, 6)).toMatchObject({ rc: -9 });
  });

  it('io-uring-fixed on the host: a ring of its own, one table (-EBUSY), unregister twice (-ENXIO), closed', () => {
    const recs = runProbe(
      [
        'counters nr_foll_pin_acquired,nr_foll_pin_released',
        '1 spawn p=0 name=a',
        '2 mmap p=0 m=0 len=16384 prot=3 populate=1',
        '3 uring_open p=0 h=0',
        '4 uring_reg p=0 h=0 iov=0:0:8192,-:0:0,0:8192:4096',
        '5 uring_reg p=0 h=0 iov=0:0:4096',
        '6 uring_unreg p=0 h=0',
        '7 uring_unreg p=0 h=0',
        '8 uring_reg p=0 h=0 iov=-:0:4096',
        '9 uring_reg p=0 h=0 iov=0:0:16384',
        '10 uring_close p=0 h=0',
        '11 uring_reg p=0 h=0 iov=0:0:4096',
      ].join('\n') + '\n',
    );
    expect(step(recs, 3)).toMatchObject({ rc: 0 });
    expect(step(recs, 4)).toMatchObject({ rc: 0 });
    expect(step(recs, 4).d.nr_foll_pin_acquired).toBeGreaterThanOrEqual(3); // two buffers, a sparse slot between
    expect(step(recs, 4).vm.VmPin).toBe(12);
    expect(step(recs, 5)).toMatchObject({ rc: -16 }); // a table exists: -EBUSY
    expect(step(recs, 6)).toMatchObject({ rc: 0 });
    expect(step(recs, 6).vm.VmPin).toBe(0);
    expect(step(recs, 7)).toMatchObject({ rc: -6 }); // no table: -ENXIO
    expect(step(recs, 8)).toMatchObject({ rc: -14 }); // NULL base with a length: -EFAULT
    expect(step(recs, 9)).toMatchObject({ rc: 0 });
    expect(step(recs, 9).res).toMatchObject({ pages: 4, present: 4 });
    expect(step(recs, 10)).toMatchObject({ rc: 0 });
    expect(step(recs, 11)).toMatchObject({ rc: -9 }); // closed
  });

  it('mlock, mlock2(MLOCK_ONFAULT) and munlock: VmLck after each step is what the model reports as locked_vm', () => {
    const file = path.join(__dirname, '..', '..', 'scenarios', 'kernel', 'mlock-longterm-pin.yaml');
    const sc = loadScenario(file);
    const c = compileScenario(file, sc);
    expect(c.program).toContain('\n6 mlock p=0 a=0:0 len=8388608 onfault=0\n');
    expect(c.program).toContain('\n7 munlock p=0 a=1:0 len=65536\n');
    const recs = runProbe(c.program);
    const rep = buildReport(
      file,
      c,
      { spec: 'host', release: os.release(), variant: 'v6.12' },
      recs.map((r) => JSON.stringify(r)),
    );
    expect(rep.error).toBeUndefined();
    const model = runScenario(file, sc, () => {}, 'v6.12');
    const lockedVm = (d: string) => /^locked_vm \d+ pages/.exec(d)?.[0];
    expect(rep.results.map((r) => r.result)).toEqual(model.results.map((r) => r.result));
    expect(rep.results.map((r) => lockedVm(r.detail))).toEqual(model.results.map((r) => lockedVm(r.detail)));
    expect(rep.results[5]!.result).toBe('-ENOMEM'); // do_mlock(): 2048 + 1040 - 1024 > 2048
    expect(rep.results[4]!.detail).toMatch(/; 0 pages present$/); // MLOCK_ONFAULT: nothing faulted in
  });

  it('runs a compiled scenario and the report reads like pinlab scenario', () => {
    const file = path.join(__dirname, '..', '..', 'scenarios', 'kernel', 'longterm-pin-movable.yaml');
    const c = compileScenario(file, loadScenario(file));
    const recs = runProbe(c.program);
    const rep = buildReport(
      file,
      c,
      { spec: 'host', release: os.release(), variant: 'v6.12' },
      recs.map((r) => JSON.stringify(r)),
    );
    expect(rep.error).toBeUndefined();
    expect(rep.results.map((r) => r.result)).toEqual(['0', '0', '0', '4096', '1001', '5095', '0', '0', '0']);
    expect(rep.results[2]!.detail).toMatch(/^4096 pages present/);
    expect(rep.results[3]!.detail).toMatch(/outcome pinned; 4096 pinned \(/);
    expect(rep.results[7]!.detail).toBe('4096 pages unpinned');
  });
});
