// S2 ("can standard systems still pin > 80% of memory?"): the pin-fraction table on a miniature machine.
import { pinFraction, pinFractionTable } from '../harness/pin_fraction';
import { main } from '../harness/cli';

const O = { base: 'mem=8M sysctl.vm.min_free_kbytes=128', geometry: 'mini', share: 0.8, chunk: 32 };

describe('pin-fraction (S2)', () => {
  const rows = pinFractionTable([20, 50, 80], O);

  it('fresh memory: the pinnable share grows with kernelcore= and never exceeds the kernel zones', () => {
    for (const { fresh } of rows) {
      expect(fresh.pinned).toBeGreaterThan(0);
      expect(fresh.pinned).toBeLessThanOrEqual(fresh.kernelManaged);
      // the rest is the watermarks and lowmem reserves: a small share of the kernel zones
      expect(fresh.pinned).toBeGreaterThan(fresh.kernelManaged * 0.7);
      expect(fresh.end).toBe('killed'); // the pinner outgrows the kernel zones: the OOM killer takes it
    }
    expect(rows[0]!.fresh.pinned).toBeLessThan(rows[1]!.fresh.pinned);
    expect(rows[1]!.fresh.pinned).toBeLessThan(rows[2]!.fresh.pinned);
  });

  it("prefaulted memory pins far less: the guest's own pages fill the kernel zones, migration targets run out", () => {
    for (const { fresh, prefault } of rows) {
      expect(prefault.migrated).toBeGreaterThan(0);
      expect(prefault.pinned).toBeLessThan(fresh.pinned);
    }
  });

  it('v5.12 pins everything the process maps, in ZONE_MOVABLE', () => {
    const r = pinFraction(20, { ...O, kernel: 'v5.12' });
    expect(r.end).toBe('all');
    expect(r.pinned).toBe(r.mapped);
    expect(r.pinned).toBeGreaterThan(r.kernelManaged);
  });

  it('pinlab pin-fraction prints the table; bad flags are exit 2', () => {
    let out = '';
    let err = '';
    const io = {
      out: (s: string) => {
        out += s;
      },
      err: (s: string) => {
        err += s;
      },
    };
    expect(
      main(
        [
          'pin-fraction',
          '--cmdline',
          O.base,
          '--geometry',
          'mini',
          '--share',
          '0.8',
          '--chunk',
          '32',
          '--kernelcore',
          '50',
        ],
        io,
      ),
    ).toBe(0);
    expect(out).toMatch(/^ +50% +49\.2% +4\d\.\d% +killed/m);
    for (const bad of [
      ['--kernelcore', '0'],
      ['--share', '2'],
      ['--chunk', 'x'],
      ['--cmdline', 'mem=8M kernelcore=50%'],
      ['--kernel', 'v9'],
    ]) {
      err = '';
      expect(main(['pin-fraction', ...bad], io)).toBe(2);
      expect(err.trim().split('\n')).toHaveLength(1);
    }
  });
});
