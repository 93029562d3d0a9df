// pinlab variants: the kernel variants and the regression corpus's bug switches.
import { parseVariant, VARIANT_NAMES, BUGS, DEFAULT_VARIANT } from '../../mm/variants';
import { RELEASE_VARIANTS, realKernelsFor } from '../kernel_setup';
import { Command, parse, noPositionals } from './command';

const VARIANTS_HELP = `usage: pinlab variants [--json | --markdown]

List the kernel variants (--kernel NAME) and the bug switches from the regression corpus that can be
added to any of them (--kernel v6.12+R3) or removed (--kernel v6.1+-R10), and which real kernels each
variant stands for (pinlab kernel --kernel debian:X, or your own bzImage of those releases).
docs/kernel-variants.md has more; --markdown prints the real-kernel table of docs/real-kernel.md.
`;

/** Each variant the release table names, then the ones no release is (their kernels must be built). */
export function realKernelRows(): { variant: string; debian: string[]; releases: string[] }[] {
  const names = [...new Set([...RELEASE_VARIANTS.map((r) => r.variant), ...VARIANT_NAMES])];
  return names.map((variant) => ({ variant, ...realKernelsFor(variant) }));
}

export function realKernelMarkdown(): string {
  const rows = realKernelRows().map((r) => {
    const own = r.releases.length ? r.releases.join(', ') : 'none released: a tree with its code built by you';
    return `| \`${r.variant}\` | ${r.debian.map((d) => `\`${d}\``).join(', ') || '-'} | ${own} |\n`;
  });
  return `| model variant | Debian image | your own bzImage of |\n|---|---|---|\n${rows.join('')}`;
}

export const variants: Command = {
  name: 'variants',
  summary: 'list the kernel variants and bug switches (--kernel v6.12+R3)',
  help: () => VARIANTS_HELP,
  sync: true,
  run(argv, io) {
    const { values, positionals } = parse('variants', argv, {
      json: { type: 'boolean' },
      markdown: { type: 'boolean' },
    });
    noPositionals('variants', positionals);
    if (values.help) {
      io.out(VARIANTS_HELP);
      return 0;
    }
    const variants = VARIANT_NAMES.map((n) => {
      const v = parseVariant(n);
      return { name: n, default: n === DEFAULT_VARIANT, commit: v.commit, summary: v.summary, bugs: [...v.bugs] };
    });
    if (values.markdown) {
      io.out(realKernelMarkdown());
      return 0;
    }
    if (values.json) {
      io.out(JSON.stringify({ variants, bugs: BUGS, real_kernels: realKernelRows() }, null, 2) + '\n');
      return 0;
    }
    io.out('kernel variants:\n');
    for (const v of variants) {
      io.out(
        `  ${v.name.padEnd(10)} ${v.summary}${v.default ? ' [default]' : ''}\n  ${''.padEnd(10)} from ${v.commit}${v.bugs.length ? `; has ${v.bugs.join(' ')}` : ''}\n`,
      );
    }
    io.out('\nreal kernels (pinlab kernel --kernel debian:X or PATH-TO-BZIMAGE):\n');
    for (const r of realKernelRows()) {
      const on = [...r.debian, ...r.releases.map((x) => `a bzImage (${x})`)].join(', or ') || 'no released kernel';
      io.out(`  ${r.variant.padEnd(10)} ${on}\n`);
    }
    io.out('\nbug switches (+Rn adds one, +-Rn removes one):\n');
    for (const b of BUGS) io.out(`  ${b.id.padEnd(4)} ${b.what}\n       fixed by ${b.commit}\n`);
    return 0;
  },
};
