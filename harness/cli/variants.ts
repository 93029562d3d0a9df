// pinlab variants: the kernel variants and the regression corpus's bug switches.
import { parseVariant, VARIANT_NAMES, BUGS, DEFAULT_VARIANT } from '../../mm/variants';
import { Command, parse, noPositionals } from './command';

const VARIANTS_HELP = `usage: pinlab variants [--json]

List the kernel variants (--kernel NAME) and the bug switches from the regression corpus that can be
added to any of them (--kernel v6.12+R3) or removed (--kernel v6.1+-R10). docs/kernel-variants.md has more.
`;

export const variants: Command = {
  name: 'variants',
  summary: 'list the kernel variants and bug switches (--kernel v6.12+R3)',
  help: () => VARIANTS_HELP,
  sync: true,
  run(argv, io) {
    const { values, positionals } = parse('variants', argv, { json: { type: 'boolean' } });
    noPositionals('variants', positionals);
    if (values.help) {
      io.out(VARIANTS_HELP);
      return 0;
    }
    const variants = VARIANT_NAMES.map((n) => {
      const v = parseVariant(n);
      return { name: n, default: n === DEFAULT_VARIANT, commit: v.commit, summary: v.summary, bugs: [...v.bugs] };
    });
    if (values.json) {
      io.out(JSON.stringify({ variants, bugs: BUGS }, null, 2) + '\n');
      return 0;
    }
    io.out('kernel variants:\n');
    for (const v of variants) {
      io.out(
        `  ${v.name.padEnd(10)} ${v.summary}${v.default ? ' [default]' : ''}\n  ${''.padEnd(10)} from ${v.commit}${v.bugs.length ? `; has ${v.bugs.join(' ')}` : ''}\n`,
      );
    }
    io.out('\nbug switches (+Rn adds one, +-Rn removes one):\n');
    for (const b of BUGS) io.out(`  ${b.id.padEnd(4)} ${b.what}\n       fixed by ${b.commit}\n`);
    return 0;
  },
};
