// pinlab devices: the device models (devices/index.ts) with their ops and bug switches.
import { DEVICE_MODELS } from '../../devices/index';
import { errname } from '../../mm/errno';
import { Command, parse, noPositionals } from './command';

const DEVICES_HELP = `usage: pinlab devices [--json]

List the device models (one file each under devices/): what each emulates and from which kernel file,
its ops with the errnos each may return, and its bug switches (pinlab run --suite device:<model> --bug
NAME). docs/adding-a-device.md says how to add one.
`;

export const devices: Command = {
  name: 'devices',
  summary: 'list the device models, their ops and their bug switches (--bug NAME)',
  help: () => DEVICES_HELP,
  sync: true,
  run(argv, io) {
    const { values, positionals } = parse('devices', argv, { json: { type: 'boolean' } });
    noPositionals('devices', positionals);
    if (values.help) {
      io.out(DEVICES_HELP);
      return 0;
    }
    const models = Object.values(DEVICE_MODELS);
    if (values.json) {
      const list = models.map((d) => ({
        name: d.name,
        summary: d.summary,
        source: d.source,
        errnos: d.errnos,
        bugs: d.bugs,
        fault_points: d.faultPoints,
      }));
      io.out(JSON.stringify(list, null, 2) + '\n');
      return 0;
    }
    for (const d of models) {
      io.out(`${d.name}: ${d.summary}\n  from ${d.source}\n  ops:\n`);
      for (const [op, errs] of Object.entries(d.errnos))
        io.out(`    ${op.padEnd(16)} ${errs.map(errname).join(' ') || '(never fails)'}\n`);
      const bugs = Object.entries(d.bugs);
      io.out(
        bugs.length
          ? `  bug switches (--bug):\n${bugs.map(([b, what]) => `    ${b.padEnd(22)} ${what}\n`).join('')}`
          : '  no bug switches\n',
      );
    }
    return 0;
  },
};
