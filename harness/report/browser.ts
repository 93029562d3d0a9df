// The system's Chromium for checking reports in a real browser (the report test): Debian's `chromium`,
// installed with apt-get on first use as harness/kernel_setup.ts installs qemu.
import { ensurePackages, which } from '../kernel_setup';

const CHROMIUM_BINS = ['chromium', 'chromium-browser'];

/** The path of the Chromium binary, installing Debian's `chromium` when missing (as root); SetupError otherwise. */
export function ensureChromium(log: (s: string) => void): string {
  const find = (): string | null => {
    for (const b of CHROMIUM_BINS) {
      const p = which(b);
      if (p) return p;
    }
    return null;
  };
  ensurePackages([['chromium', () => find() !== null]], log);
  return find()!;
}
