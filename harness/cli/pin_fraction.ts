// pinlab pin-fraction: how much of memory can be pinned long-term for each kernelcore= share.
import { DEFAULT_VARIANT } from '../../mm/variants';
import { bootFromSpec } from '../layout';
import { pinFractionTable, formatPinFraction } from '../pin_fraction';
import { Command, parse, noPositionals, UsageError } from './command';
import { intFlag, kernelFlag } from './flags';

const PIN_FRACTION_HELP = `usage: pinlab pin-fraction [--cmdline "mem=1G"] [--geometry G] [--kernel V] [--kernelcore 10,20,...]
                           [--share 0.9] [--chunk PAGES] [--json]

"Can standard systems still pin > 80% of memory?" For each kernelcore= share (appended to --cmdline), a process
maps --share of managed memory and pins it long-term in --chunk pages (default 512, a 2M MAP_DMA) until a pin
fails: once with fresh memory (GUP faults it in, inside PF_MEMALLOC_PIN: straight into the kernel zones) and
once prefaulted (the guest touched it first: it sits in ZONE_MOVABLE and must migrate, and its unpinned pages
already fill the kernel zones). Prints the pinned share of managed memory and how the pinning ended.
`;

export const pinFraction: Command = {
  name: 'pin-fraction',
  summary: 'how much of memory can be pinned long-term for each kernelcore= share (S2)',
  help: () => PIN_FRACTION_HELP,
  sync: true,
  run(argv, io) {
    const { values, positionals } = parse('pin-fraction', argv, {
      cmdline: { type: 'string' },
      geometry: { type: 'string' },
      kernel: { type: 'string' },
      kernelcore: { type: 'string' },
      share: { type: 'string' },
      chunk: { type: 'string' },
      json: { type: 'boolean' },
    });
    noPositionals('pin-fraction', positionals);
    if (values.help) {
      io.out(PIN_FRACTION_HELP);
      return 0;
    }
    const kernel = kernelFlag(values.kernel);
    const base = (values.cmdline as string | undefined) ?? 'mem=1G';
    if (/\b(kernelcore|movablecore)=/.test(base))
      throw new UsageError(
        'pin-fraction: --cmdline must not set kernelcore= or movablecore= (the verb varies kernelcore=)',
      );
    const pcts = ((values.kernelcore as string | undefined) ?? '10,20,30,40,50,60,70,80,90')
      .split(',')
      .map((x) => intFlag('kernelcore', x, 1, 99)!);
    const shareText = values.share as string | undefined;
    const decimal = shareText !== undefined && shareText !== '' && /^(0|1)?(\.[0-9]+)?$/.test(shareText);
    const share = shareText === undefined ? 0.9 : decimal ? Number(shareText) : NaN;
    if (!(share > 0 && share <= 1)) throw new UsageError(`--share: '${String(shareText)}' is not a fraction in (0, 1]`);
    const chunk = intFlag('chunk', values.chunk, 1) ?? 512;
    bootFromSpec({ cmdline: `${base} kernelcore=${pcts[0]}%`, geometry: values.geometry as string | undefined }); // validate once
    const rows = pinFractionTable(pcts, {
      base,
      geometry: values.geometry as string | undefined,
      kernel,
      share,
      chunk,
    });
    if (values.json)
      io.out(JSON.stringify({ cmdline: base, kernel: kernel ?? DEFAULT_VARIANT, share, chunk, rows }, null, 2) + '\n');
    else
      io.out(
        `# ${base} kernelcore=N%, kernel ${kernel ?? DEFAULT_VARIANT}, mapping ${share * 100}% of managed memory, pinned in ${chunk}-page chunks\n${formatPinFraction(rows)}`,
      );
    return 0;
  },
};
