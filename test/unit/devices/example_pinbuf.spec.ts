import * as fc from 'fast-check';
import { readFileSync } from 'fs';
import { join } from 'path';
import { examplePinbuf } from '../../../devices/example_pinbuf';
import { memlockCounters } from '../../../devices/common';
import { rig, fill, checkHeld, expectReleased, pinsHeld, PAGE } from './helpers';
import { getUser } from '../../../mm/memory';
import { EBUSY, EINVAL, ENOMEM, EPERM, EFAULT } from '../../../mm/errno';

describe('example-pinbuf (the docs/adding-a-device.md example)', () => {
  it('docs/adding-a-device.md shows devices/example_pinbuf.ts verbatim', () => {
    const doc = readFileSync(join(__dirname, '../../../docs/adding-a-device.md'), 'utf8');
    const block = /<!-- example_pinbuf.ts -->\n```ts\n([\s\S]*?)```/.exec(doc);
    expect(block).not.toBeNull();
    expect(block![1]).toBe(readFileSync(join(__dirname, '../../../devices/example_pinbuf.ts'), 'utf8'));
  });

  it('pins, DMAs what the process then reads, and releases everything', () => {
    const r = rig(examplePinbuf);
    fill(r, 'buf', 4);
    expect(r.run({ op: 'pin', vaddr: { map: 'buf', off: 0 }, len: 4 * PAGE }).rc).toBe(4);
    expect(checkHeld(r.m, r.dev.inspect().held)).toEqual([]);
    expect(memlockCounters(r.m, r.mm).pinned_vm).toBe(4);
    expect(r.run({ op: 'dma_write', off: 2 * PAGE, value: 9 }).violation).toBeUndefined();
    expect(getUser(r.m, r.mm, r.maps.buf! + 2)).toBe(9);
    expect(r.run({ op: 'dma_read', off: 3 * PAGE }).rc).toBe(1003);
    expect(r.run({ op: 'pin', vaddr: { map: 'buf', off: 0 }, len: PAGE }).rc).toBe(-EBUSY);
    expect(r.run({ op: 'release' }).rc).toBe(4);
    expect(r.run({ op: 'release' }).rc).toBe(-EINVAL);
    expect(r.run({ op: 'dma_read', off: 0 }).rc).toBe(-EFAULT);
    expectReleased(r);
  });

  it('errnos: -EINVAL misaligned, -EPERM without memlock, -ENOMEM over it, -EFAULT past the mapping', () => {
    const r = rig(examplePinbuf, { rlimitMemlockPages: 3 });
    expect(r.run({ op: 'pin', vaddr: { map: 'buf', off: 0, byte: 8 }, len: PAGE }).rc).toBe(-EINVAL);
    expect(r.run({ op: 'pin', vaddr: { map: 'buf', off: 0 }, len: 4 * PAGE }).rc).toBe(-ENOMEM);
    expect(r.run({ op: 'pin', vaddr: { map: 'buf', off: 14 }, len: 3 * PAGE }).rc).toBe(-EFAULT);
    expect(pinsHeld(r.m)).toBe(0);
    expectReleased(r);
    expect(
      rig(examplePinbuf, { rlimitMemlockPages: 0 }).run({ op: 'pin', vaddr: { map: 'buf', off: 0 }, len: PAGE }).rc,
    ).toBe(-EPERM);
  });

  it('no-longterm is caught by the pinnable check', () => {
    const errs = (bugs: string[]) => {
      const r = rig(examplePinbuf, { bugs });
      fill(r, 'buf', 2);
      r.run({ op: 'pin', vaddr: { map: 'buf', off: 0 }, len: 2 * PAGE });
      const e = checkHeld(r.m, r.dev.inspect().held);
      r.dev.teardown();
      expectReleased(r);
      return e;
    };
    expect(errs([])).toEqual([]);
    expect(errs(['no-longterm']).length).toBe(2);
  });

  it('generated ops keep the promises', () => {
    const shape = { maps: [{ name: 'a', pages: 8 }], maxPages: 4 };
    fc.assert(
      fc.property(fc.array(examplePinbuf.arbitrary(fc, shape), { maxLength: 20 }), (ops) => {
        const r = rig(examplePinbuf, { maps: { a: 8 } });
        for (const op of ops) {
          expect(r.run(op).violation).toBeUndefined();
          expect(checkHeld(r.m, r.dev.inspect().held)).toEqual([]);
        }
        r.dev.teardown();
        expectReleased(r);
      }),
      { numRuns: 30, seed: 1 },
    );
  });
});
