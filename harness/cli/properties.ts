// pinlab properties: the property registry (properties/index.ts) - each property's promise, where the
// kernel makes it, the phases it is checked at, and the variants and device bugs shown to break it.
// --markdown prints the table docs/properties.md holds (test/harness/properties_doc.spec.ts keeps them equal).
import { PROPERTIES, Property, Phase } from '../../properties/index';
import { KERNEL_MUTATIONS, DEVICE_MUTATIONS } from '../mutations';
import { Command, parse, noPositionals } from './command';

const PROPERTIES_HELP = `usage: pinlab properties [--json | --markdown]

List the properties pinlab checks (pinlab run --property P checks only P): the kernel's promise, where
the kernel makes it, the phases of a run at which it is checked (boot: once per command line, right
after boot; op: after each op in the actor's thread; quiescence: every actor idle, pins held; teardown: devices closed; exit: processes exited), and
the kernel variants and device bugs shown to break it. The run's own failures (deadlock, hang, ...) are
reported whatever --property selects. docs/properties.md has the table; docs/adding-a-property.md says
how to add one.
`;

const PHASE_WORDS: Record<Phase, string> = {
  boot: 'at boot',
  op: 'after every op',
  quiescence: 'at quiescence',
  teardown: 'after teardown',
  exit: 'after exit',
};

/** Where the property is checked, in words. */
function when(p: Property): string {
  if (p.runFailure && p.name !== 'kernel-bug') return 'any time; always reported';
  return p.phases.map((ph) => PHASE_WORDS[ph]).join(', ');
}

/** The variants and device bugs that break it (harness/mutations.ts), as `--kernel V` and `--bug B` names. */
function brokenBy(p: Property): string[] {
  const out = new Set<string>();
  for (const mu of KERNEL_MUTATIONS) if (mu.property === p.name) out.add(mu.variant);
  for (const mu of DEVICE_MUTATIONS)
    if (mu.property === p.name) out.add(`${mu.suite.replace(/^device2?:/, '')} --bug ${mu.bugs!.join(',')}`);
  return [...out];
}

const cell = (s: string): string => s.replace(/\|/g, '\\|');

/** The markdown table docs/properties.md holds between its markers. */
export function propertiesMarkdown(): string {
  const rows = [
    '| property | the promise | where the kernel makes it | checked | broken by |',
    '|---|---|---|---|---|',
  ];
  for (const p of PROPERTIES as readonly Property[]) {
    const broken =
      brokenBy(p)
        .map((b) => `\`${b}\``)
        .join(', ') || '—';
    rows.push(`| \`${p.name}\` | ${cell(p.promise)} | ${cell(p.reference)} | ${when(p)} | ${broken} |`);
  }
  return rows.join('\n') + '\n';
}

export const properties: Command = {
  name: 'properties',
  summary: 'list the properties: the promise, the kernel reference, when checked, what breaks it',
  help: () => PROPERTIES_HELP,
  sync: true,
  run(argv, io) {
    const { values, positionals } = parse('properties', argv, {
      json: { type: 'boolean' },
      markdown: { type: 'boolean' },
    });
    noPositionals('properties', positionals);
    if (values.help) {
      io.out(PROPERTIES_HELP);
      return 0;
    }
    if (values.markdown) {
      io.out(propertiesMarkdown());
      return 0;
    }
    const list = (PROPERTIES as readonly Property[]).map((p) => ({
      name: p.name,
      promise: p.promise,
      reference: p.reference,
      phases: p.phases,
      run_failure: p.runFailure === true,
      broken_by: brokenBy(p),
    }));
    if (values.json) {
      io.out(JSON.stringify(list, null, 2) + '\n');
      return 0;
    }
    for (const p of list) {
      io.out(
        `${p.name}${p.run_failure ? ' (a failure of the run itself)' : ''}\n  ${p.promise}\n  kernel: ${p.reference}\n`,
      );
      io.out(
        `  checked: ${when(PROPERTIES.find((q) => q.name === p.name)!)}${p.broken_by.length ? `\n  broken by: ${p.broken_by.join('; ')}` : ''}\n`,
      );
    }
    return 0;
  },
};
