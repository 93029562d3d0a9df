// Bad user input - a flag, a scenario file, a regression file, a kernel command line - is one line on
// stderr and exit code 2, before any work: never a stack trace, an internal error, a hang, memory
// exhaustion, or silent acceptance. One describe per class of input that once broke that rule.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { mainAsync } from '../../harness/cli';

export async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await mainAsync(argv, { out: (s) => (out += s), err: (s) => (err += s) });
  return { code, out, err };
}

/** Exit 2, exactly one line on stderr matching re. */
async function refused(argv: string[], re: RegExp): Promise<string> {
  const r = await cli(argv);
  expect({ code: r.code, err: r.err }).toEqual({ code: 2, err: expect.stringMatching(re) });
  expect(r.err.endsWith('\n') && r.err.split('\n').length === 2).toBe(true);
  return r.err;
}

let tmp: string;
beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pinlab-bad-')); });
afterAll(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

function file(name: string, text: string): string {
  const f = path.join(tmp, name);
  fs.writeFileSync(f, text);
  return f;
}

const MINI = 'mem=1M movablecore=512K sysctl.vm.min_free_kbytes=16';
export const goodCase = {
  layout: { cmdline: MINI, geometry: 'mini', maps: [{ name: 'buf', pages: 8 }] },
  variant: 'v6.12', programs: { 'pinner-0': [{ op: 'pin', map: 'buf', page: 0, pages: 1 }] }, schedule: [], faults: {},
};
export const goodFile = { suite: 'longterm-pin', seed: 1, path: '0', variant: 'v6.12', property: 'pins-balance', verdict: 'pass', case: goodCase };

describe('names looked up in tables: only their own keys name something', () => {
  it.each([
    [['constructor'], /^pinlab: unknown verb 'constructor'/],
    [['toString'], /^pinlab: unknown verb 'toString'/],
    [['__proto__'], /^pinlab: unknown verb '__proto__'/],
    [['run', '--kernel', 'constructor'], /^pinlab: --kernel: unknown kernel variant 'constructor'/],
    [['run', '--kernel', '__proto__'], /^pinlab: --kernel: unknown kernel variant '__proto__'/],
    [['run', '--kernel', 'hasOwnProperty+R3'], /^pinlab: --kernel: unknown kernel variant 'hasOwnProperty'/],
    [['run', '--suite', 'toString'], /^pinlab: --suite: unknown suite 'toString'/],
    [['run', '--suite', 'device:vfio-type1', '--bug', 'constructor'], /^pinlab: --bug: vfio-type1 has no bug 'constructor'/],
    [['replay', '--seed', '1', '--path', '0', '--suite', 'valueOf'], /^pinlab: --suite: unknown suite 'valueOf'/],
    [['scenario', 'x.yaml', '--kernel', 'valueOf'], /^pinlab: --kernel: unknown kernel variant 'valueOf'/],
    [['pin-fraction', '--kernel', 'constructor'], /^pinlab: --kernel: unknown kernel variant 'constructor'/],
  ])('%j', async (argv, re) => {
    await refused(argv as string[], re);
  });

  it.each(['constructor-0', 'valueOf', '__proto__-0', 'hasOwnProperty-1'])('actor %s in a regression file', async (name) => {
    const f = file(`actor-${name}.json`, JSON.stringify({ ...goodFile, case: { ...goodCase, programs: { [name]: [{ op: 'pin' }] } } }));
    await refused(['replay', f], /unknown actor kind/);
  });
});
