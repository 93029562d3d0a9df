// Scenario files: every example in scenarios/ runs green; bad files are one line on stderr and exit 2;
// a mismatch is exit 1; --json has the documented shape.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { main } from '../harness/cli';
import { loadScenario, runScenario, scenarioKernels } from '../harness/scenario';

function run(argv: string[]): { code: number; out: string; err: string } {
  let out = '';
  let err = '';
  const code = main(argv, { out: (s) => (out += s), err: (s) => (err += s) });
  return { code, out, err };
}

const SCENARIOS = path.join(__dirname, '..', 'scenarios');
const files = fs
  .readdirSync(SCENARIOS)
  .filter((f) => f.endsWith('.yaml'))
  .sort();

const MACHINE = 'machine:\n  cmdline: mem=1M movablecore=512K sysctl.vm.min_free_kbytes=16\n  geometry: mini\n';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pinlab-scenario-'));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Write a scenario file into the temp dir; returns its path. */
function scenarioFile(name: string, text: string): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, text);
  return f;
}

describe('scenarios/*.yaml', () => {
  it('has the examples the docs promise', () => {
    for (const f of [
      'offline-basic',
      'fork-cow',
      'mprotect-readonly',
      'madvise-dontneed',
      'shared-fork',
      'thp-offline',
      'hugetlb-offline',
    ])
      expect(files).toContain(`${f}.yaml`);
  });

  it.each(files)('%s loads and every expectation holds under each of its kernels', (f) => {
    const file = path.join(SCENARIOS, f);
    const sc = loadScenario(file);
    expect(sc.steps.length).toBeGreaterThan(0);
    for (const k of scenarioKernels(sc)) {
      const lines: string[] = [];
      const r = runScenario(file, sc, (l) => lines.push(l), k);
      expect([k, r.results.filter((x) => !x.ok)]).toEqual([k, []]);
      expect(r.ok).toBe(true);
      expect(lines.filter((l) => /^\[/.test(l))).toHaveLength(r.panic ? r.results.length : sc.steps.length);
      expect(lines.some((l) => /MISMATCH/.test(l))).toBe(false);
    }
    // every example checks something
    expect(sc.steps.some((s) => s.expect !== undefined || (s.op === 'read' && s.value !== undefined))).toBe(true);
  });

  it('every example has a description', () => {
    for (const f of files) expect(fs.readFileSync(path.join(SCENARIOS, f), 'utf8')).toMatch(/^description: \S/m);
  });

  it('the THP example migrates its THPs whole', () => {
    const file = path.join(SCENARIOS, 'thp-offline.yaml');
    const r = runScenario(file, loadScenario(file));
    expect(r.vmstat.thp_fault_alloc).toBe(2);
    expect(r.vmstat.thp_migration_success).toBe(2);
    expect(r.vmstat.thp_migration_split).toBe(0);
    expect(r.layout.blocks.find((b) => b.index === 4)!.state).toBe('offline'); // the lowest movable block
  });

  it('the hugetlb example dissolves the free pool pages of the offlined block', () => {
    const file = path.join(SCENARIOS, 'hugetlb-offline.yaml');
    const r = runScenario(file, loadScenario(file));
    expect(r.layout.hugetlb).toEqual([{ page_size: 32768, nr_hugepages: 4, free_hugepages: 4 }]);
    expect(r.vmstat.pgmigrate_success).toBe(8);
    expect(r.layout.blocks.find((b) => b.index === 5)!.state).toBe('offline');
  });

  it('the CLI runs them all: exit 0', () => {
    const r = run(['scenario', ...files.map((f) => path.join(SCENARIOS, f))]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const runs = files.reduce((n, f) => n + scenarioKernels(loadScenario(path.join(SCENARIOS, f))).length, 0);
    expect(r.out.match(/^# ok: /gm)).toHaveLength(runs); // one run per file and kernel
  });
});

describe('pinlab scenario: bad files are one line on stderr and exit 2', () => {
  const STEP1 = '  - { op: spawn, proc: a }\n';
  const cases: [string, string, RegExp][] = [
    ['malformed.yaml', `${MACHINE}steps:\n  - { op: spawn, proc: a\n`, /: not valid YAML\/JSON: /],
    ['not-a-mapping.yaml', '- 1\n- 2\n', /: top level: expected a mapping with 'machine' and 'steps', got \[1,2\]$/],
    [
      'top-key.yaml',
      `${MACHINE}stpes: []\n`,
      /: top level: unknown key 'stpes' \(keys: machine, steps, description, kernels\)$/,
    ],
    ['no-cmdline.yaml', 'machine:\n  geometry: mini\nsteps: []\n', /: machine: needs 'cmdline'$/],
    ['no-machine.yaml', 'steps: []\n', /: top level: needs 'machine'$/],
    [
      'bad-param.yaml',
      'machine:\n  cmdline: mem=1M bogus=1\n  geometry: mini\nsteps: []\n',
      /: machine: unknown kernel parameter 'bogus=1'/,
    ],
    ['bad-unit.yaml', 'machine:\n  cmdline: mem=1Q\n  geometry: mini\nsteps: []\n', /: machine: mem: bad size '1Q'/],
    [
      'bad-geometry.yaml',
      'machine:\n  cmdline: mem=1M\n  geometry: tiny\nsteps: []\n',
      /: machine: geometry: unknown preset 'tiny'/,
    ],
    ['steps-map.yaml', `${MACHINE}steps:\n  op: spawn\n`, /: steps: expected a list of steps, got \{"op":"spawn"\}$/],
    ['steps-missing.yaml', MACHINE, /: top level: needs 'steps'$/],
    ['step-scalar.yaml', `${MACHINE}steps:\n  - spawn\n`, /: step 1: a step is a mapping with 'op' and its fields$/],
    [
      'unknown-op.yaml',
      `${MACHINE}steps:\n${STEP1}  - { op: frob, proc: a }\n`,
      /: step 2: unknown op "frob" \(ops: spawn, mmap, .*zones, .*pin_max\)$/,
    ],
    [
      'unknown-field.yaml',
      `${MACHINE}steps:\n${STEP1}  - { op: mmap, proc: a, size: 8K }\n`,
      /: step 2 \(mmap\): unknown key 'size' \(fields of mmap: proc, as, len, /,
    ],
    [
      'no-field-op.yaml',
      `${MACHINE}steps:\n  - { op: zones, proc: a }\n`,
      /: step 1 \(zones\): unknown key 'proc' \(fields of zones: none; expect, expect_match\)$/,
    ],
    ['missing-field.yaml', `${MACHINE}steps:\n${STEP1}  - { op: mmap, proc: a }\n`, /: step 2 \(mmap\): needs 'len'$/],
    [
      'missing-value.yaml',
      `${MACHINE}steps:\n${STEP1}  - { op: write, proc: a, addr: 0x8000 }\n`,
      /: step 2 \(write\): needs 'value'$/,
    ],
    [
      'bad-size.yaml',
      `${MACHINE}steps:\n${STEP1}  - { op: mmap, proc: a, len: 4Q }\n`,
      /: step 2 \(mmap\): len: expected a size like 4K, 2M or 1G, or 16p for 16 pages \(whole 4K pages\), got "4Q"$/,
    ],
    [
      'partial-page.yaml',
      `${MACHINE}steps:\n${STEP1}  - { op: mmap, proc: a, len: 6K }\n`,
      /: step 2 \(mmap\): len: expected a size like 4K, .*, got "6K"$/,
    ],
    [
      'zero-size.yaml',
      `${MACHINE}steps:\n${STEP1}  - { op: mmap, proc: a, len: 0 }\n`,
      /: step 2 \(mmap\): len: expected a size like 4K, .*, got 0$/,
    ],
    [
      'unknown-map.yaml',
      `${MACHINE}steps:\n${STEP1}  - { op: mmap, proc: a, as: buf, len: 8K }\n  - { op: write, proc: a, addr: bfu, value: 1 }\n`,
      /: step 3 \(write\): addr: unknown mapping 'bfu' \(name one with 'as:' on an mmap step\)$/,
    ],
    [
      'bad-offset.yaml',
      `${MACHINE}steps:\n${STEP1}  - { op: mmap, proc: a, as: buf, len: 8K }\n  - { op: read, proc: a, addr: buf+1x }\n`,
      /: step 3 \(read\): addr: expected an address: a mapping name, .*, got "buf\+1x"$/,
    ],
    [
      'unaligned.yaml',
      `${MACHINE}steps:\n${STEP1}  - { op: mmap, proc: a, as: buf, len: 8K }\n  - { op: read, proc: a, addr: buf+100 }\n`,
      /: step 3 \(read\): addr: expected an address: .*, got "buf\+100"$/,
    ],
    [
      'unknown-proc.yaml',
      `${MACHINE}steps:\n${STEP1}  - { op: mmap, proc: b, len: 8K }\n`,
      /: step 2 \(mmap\): mmap: unknown process 'b' \(create it with 'op: spawn' or 'op: fork'\)$/,
    ],
    ['dup-proc.yaml', `${MACHINE}steps:\n${STEP1}${STEP1}`, /: step 2 \(spawn\): .*process 'a' exists$/],
    [
      'no-len.yaml',
      `${MACHINE}steps:\n${STEP1}  - { op: mmap, proc: a, as: buf, len: 8K }\n  - { op: touch, proc: a, addr: buf+4K }\n`,
      /: step 3 \(touch\): len: needs 'len:' unless 'addr:' names a whole mapping$/,
    ],
    [
      'bad-prot.yaml',
      `${MACHINE}steps:\n${STEP1}  - { op: mmap, proc: a, len: 8K, prot: rwx }\n`,
      /: step 2 \(mmap\): prot: expected one of rw, r, w, none, got "rwx"$/,
    ],
    [
      'bad-advice.yaml',
      `${MACHINE}steps:\n${STEP1}  - { op: mmap, proc: a, as: buf, len: 8K }\n  - { op: madvise, proc: a, addr: buf, advice: free }\n`,
      /: step 3 \(madvise\): advice: expected one of dontneed, hugepage, nohugepage, populate_write, hwpoison, soft_offline, got "free"$/,
    ],
    [
      'bad-block.yaml',
      `${MACHINE}steps:\n  - { op: offline, block: 99 }\n`,
      /: step 1 \(offline\): block: no memory block 99$/,
    ],
    [
      'bad-expect.yaml',
      `${MACHINE}steps:\n${STEP1}  - { op: zones, expect: ENOMEM }\n`,
      /: step 2 \(zones\): expect: expected a number, an errno like -ENOMEM, killed or panic, got "ENOMEM"$/,
    ],
    [
      'bad-expect-bool.yaml',
      `${MACHINE}steps:\n  - { op: zones, expect: true }\n`,
      /: step 1 \(zones\): expect: expected a number, an errno like -ENOMEM, killed or panic, got true$/,
    ],
  ];

  it.each(cases)('%s', (name, text, re) => {
    const f = scenarioFile(name, text);
    const r = run(['scenario', f]);
    expect(r.code).toBe(2);
    const lines = r.err.split('\n');
    expect(lines.pop()).toBe(''); // one line, newline-terminated
    expect(lines).toHaveLength(1);
    expect(lines[0]!.startsWith(`pinlab: ${f}: `)).toBe(true);
    expect(lines[0]).toMatch(re);
  });

  it('a bad file is exit 2 with --json too, and nothing on stdout', () => {
    const f = scenarioFile('json-bad.yaml', `${MACHINE}steps:\n  - { op: frob }\n`);
    const r = run(['scenario', f, '--json']);
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
    expect(r.err).toMatch(/^pinlab: .*json-bad\.yaml: step 1: unknown op "frob"/);
  });

  it('a missing file is exit 2', () => {
    const f = path.join(dir, 'nope.yaml');
    const r = run(['scenario', f]);
    expect(r.code).toBe(2);
    expect(r.err).toBe(`pinlab: ${f}: no such file\n`);
  });

  it('no file at all is a usage error', () => {
    const r = run(['scenario']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^pinlab: scenario: give at least one scenario FILE/);
  });
});

describe('pinlab scenario: expectations', () => {
  it('a mismatch exits 1 and says so; the other steps still run', () => {
    const f = scenarioFile(
      'mismatch.yaml',
      `${MACHINE}steps:
  - { op: spawn, proc: a }
  - { op: mmap, proc: a, as: buf, len: 8K, prot: r }
  - { op: write, proc: a, addr: buf, value: 1, expect: 0 }
  - { op: read, proc: a, addr: buf+4K, value: 5 }
  - { op: zones, expect: 0 }
`,
    );
    const r = run(['scenario', f]);
    expect(r.code).toBe(1);
    expect(r.err).toBe('');
    expect(r.out).toMatch(/^\[ {2}3\] a: write -> -EFAULT \(EXPECTED 0: MISMATCH\)$/m);
    expect(r.out).toMatch(/^\[ {2}4\] a: read -> 0 \(MISMATCH\) {2}0x9000 = 0, expected 5$/m);
    expect(r.out).toMatch(/^\[ {2}5\] zones -> 0 \(expected 0: ok\)/m);
    expect(r.out).toMatch(/^# FAILED: 3\/5 steps as expected$/m);
  });

  it('an errno expectation compares names, a number compares the rc', () => {
    const f = scenarioFile(
      'errno.yaml',
      `${MACHINE}steps:
  - { op: spawn, proc: a }
  - { op: mmap, proc: a, as: buf, len: 8K }
  - { op: write, proc: a, addr: buf, value: 42, expect: 0 }
  - { op: read, proc: a, addr: buf, expect: 42 }
  - { op: munmap, proc: a, addr: buf }
  - { op: read, proc: a, addr: 0x8000, expect: -EFAULT }
  - { op: offline, block: 0, expect: -16 }
`,
    );
    const r = run(['scenario', f]);
    expect(r.out).toMatch(/^# ok: 7\/7 steps as expected$/m);
    expect(r.code).toBe(0);
  });

  it('one failing file among good ones makes the exit code 1', () => {
    const good = path.join(SCENARIOS, 'fork-cow.yaml');
    const bad = scenarioFile('one-bad.yaml', `${MACHINE}steps:\n  - { op: offline, block: 0, expect: 0 }\n`);
    const r = run(['scenario', good, bad]);
    expect(r.code).toBe(1);
    expect(r.out.match(/^# ok: /gm)).toHaveLength(1);
    expect(r.out.match(/^# FAILED: /gm)).toHaveLength(1);
  });
});

describe('scenarios/kernel/hwpoison-offline-online.yaml (memblk_nr_poison(), v6.2)', () => {
  const file = path.join(SCENARIOS, 'kernel', 'hwpoison-offline-online.yaml');
  const results = (k: string): ReturnType<typeof runScenario>['results'] => {
    const r = runScenario(file, loadScenario(file), () => {}, k);
    expect(r.results.filter((x) => !x.ok)).toEqual([]);
    return r.results;
  };

  it('v6.12 refuses to online the block with the poisoned page; the pin is released cleanly', () => {
    expect(
      results('v6.12')
        .slice(4)
        .map((x) => `${x.op} ${x.result}`),
    ).toEqual(['offline 0', 'online -EHWPOISON', 'unpin 0', 'mmap 0', 'vmstat 0']);
  });

  it('v6.1 onlines it: the unpin is a kernel BUG (an oops of the task), the fill meets the bad page', () => {
    const r = results('v6.1');
    expect(r.slice(4).map((x) => `${x.op} ${x.result}`)).toEqual([
      'offline 0',
      'online 0',
      'unpin killed',
      'mmap killed',
      'vmstat 0',
    ]);
    expect(r[6]!.detail).toMatch(/^kernel BUG: folio_put: pfn \d+ refcount was 0/);
    expect(r[7]!.detail).toMatch(/bad page state: pfn \d+ allocated with refcount -1024/);
  });
});

describe('pinlab scenario --json', () => {
  it('has results[], layout.zones and vmstat', () => {
    const r = run(['scenario', path.join(SCENARIOS, 'madvise-dontneed.yaml'), '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    expect(j.ok).toBe(true);
    expect(j.file).toMatch(/madvise-dontneed\.yaml$/);
    expect(Array.isArray(j.results)).toBe(true);
    expect(j.results.length).toBeGreaterThan(0);
    j.results.forEach((x: Record<string, unknown>, i: number) => {
      expect(x).toMatchObject({ step: i + 1, ok: true });
      expect(typeof x.op).toBe('string');
      expect(typeof x.rc).toBe('number');
      expect(typeof x.result).toBe('string');
      expect(typeof x.detail).toBe('string');
    });
    expect(j.results[0]).toEqual({ step: 1, op: 'spawn', proc: 'a', rc: 0, result: '0', detail: 'mm 0', ok: true });
    const dn = j.results.find((x: { op: string }) => x.op === 'madvise');
    expect(dn).toMatchObject({ rc: 0, result: '0', ok: true });
    expect(j.results.find((x: { result: string }) => x.result === '-ENOMEM')).toMatchObject({ op: 'madvise', rc: -12 });
    expect(j.layout.zones.map((z: { name: string }) => z.name)).toEqual([
      'DMA',
      'DMA32',
      'Normal',
      'Movable',
      'Device',
    ]);
    for (const k of ['name', 'start_pfn', 'spanned', 'present', 'managed', 'free', 'min'])
      expect(j.layout.zones[3]).toHaveProperty(k);
    expect(j.layout.blocks).toHaveLength(8);
    expect(typeof j.vmstat.pgfault).toBe('number');
    expect(j.vmstat.pgfault).toBeGreaterThan(0);
  });

  it('a step without a process has no proc; a mismatch is ok: false with exit 1', () => {
    const f = scenarioFile(
      'json-mismatch.yaml',
      `${MACHINE}steps:\n  - { op: zones }\n  - { op: offline, block: 0, expect: 0 }\n`,
    );
    const r = run(['scenario', f, '--json']);
    expect(r.code).toBe(1);
    const j = JSON.parse(r.out);
    expect(j.ok).toBe(false);
    expect(j.results[0]).not.toHaveProperty('proc');
    expect(j.results[1]).toMatchObject({ step: 2, op: 'offline', rc: -16, result: '-EBUSY', ok: false });
  });

  it('several files give an array', () => {
    const r = run([
      'scenario',
      path.join(SCENARIOS, 'fork-cow.yaml'),
      path.join(SCENARIOS, 'shared-fork.yaml'),
      '--json',
    ]);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    expect(j).toHaveLength(2);
    expect(j.map((d: { ok: boolean }) => d.ok)).toEqual([true, true]);
  });
});

describe('pinlab scenario: mlock and munlock (mm/mlock.c)', () => {
  it('report locked_vm (VmLck); over RLIMIT_MEMLOCK is -ENOMEM, an unmapped range -ENOMEM, onfault faults nothing', () => {
    const f = scenarioFile(
      'mlock.yaml',
      `${MACHINE}steps:
  - { op: spawn, proc: a, memlock: 32K }
  - { op: mmap, proc: a, as: buf, len: 64K }
  - { op: mlock, proc: a, addr: buf, len: 16K, expect: 0 }
  - { op: mlock, proc: a, addr: buf+16K, len: 16K, onfault: true, expect: 0 }
  - { op: mlock, proc: a, addr: buf, len: 36K, expect: -ENOMEM }
  - { op: munlock, proc: a, addr: buf+8K, len: 8K, expect: 0 }
  - { op: mlock, proc: a, addr: buf+60K, len: 8K, expect: -ENOMEM }
  - { op: munlock, proc: a, addr: buf, expect: 0 }
`,
    );
    const r = run(['scenario', f]);
    expect(r.err).toBe('');
    expect(r.out).toMatch(
      /^\[ {2}3\] a: mlock -> 0 \(expected 0: ok\) {2}locked_vm 4 pages \(VmLck 16 kB\); 4 pages present \(Movable 4\)$/m,
    );
    expect(r.out).toMatch(
      /^\[ {2}4\] a: mlock -> 0 \(expected 0: ok\) {2}locked_vm 8 pages \(VmLck 32 kB\); 0 pages present$/m,
    );
    expect(r.out).toMatch(/^\[ {2}5\] a: mlock -> -ENOMEM \(expected -ENOMEM: ok\) {2}locked_vm 8 pages/m);
    expect(r.out).toMatch(/^\[ {2}6\] a: munlock -> 0 \(expected 0: ok\) {2}locked_vm 6 pages \(VmLck 24 kB\)$/m);
    expect(r.out).toMatch(/^\[ {2}7\] a: mlock -> -ENOMEM \(expected -ENOMEM: ok\) {2}locked_vm 7 pages/m); // the page before the hole stays locked
    expect(r.out).toMatch(/^\[ {2}8\] a: munlock -> 0 \(expected 0: ok\) {2}locked_vm 0 pages \(VmLck 0 kB\)$/m);
    expect(r.code).toBe(0);
  });

  it('a bad onfault is one line and exit 2', () => {
    const f = scenarioFile(
      'mlock-bad.yaml',
      `${MACHINE}steps:\n  - { op: spawn, proc: a }\n  - { op: mlock, proc: a, addr: 0x8000, len: 4K, onfault: 1 }\n`,
    );
    const r = run(['scenario', f]);
    expect(r.code).toBe(2);
    expect(r.err.trim().split('\n')).toHaveLength(1);
    expect(r.err).toMatch(/step 2 \(mlock\).*onfault.*expected true or false/);
  });
});
