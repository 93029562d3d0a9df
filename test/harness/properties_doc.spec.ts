// docs/properties.md's table is the registry's: `pinlab properties --markdown` between its markers.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { propertiesMarkdown } from '../../harness/cli/properties';
import { PROPERTIES } from '../../properties/index';
import { KERNEL_MUTATIONS, DEVICE_MUTATIONS } from '../../harness/mutations';
import { mutationTable, replaceTable, tableMarkers } from '../../bench/mutation';

it('docs/properties.md holds the table pinlab properties --markdown prints', () => {
  const doc = fs.readFileSync(path.join(__dirname, '../../docs/properties.md'), 'utf8');
  const m = /<!-- BEGIN pinlab properties --markdown -->\n([\s\S]*?)<!-- END pinlab properties --markdown -->/.exec(
    doc,
  );
  expect(m).not.toBeNull();
  expect(m![1]).toBe(propertiesMarkdown());
});

it('every property has a promise, a kernel reference, and a phase unless it is a failure of the run itself', () => {
  for (const p of PROPERTIES) {
    expect(p.promise.length).toBeGreaterThan(20);
    expect(p.reference.length).toBeGreaterThan(5);
    if (!('runFailure' in p && p.runFailure)) expect(p.phases.length).toBeGreaterThan(0);
  }
});

describe('the mutation tables, which npm run bench -- --write mutation rewrites', () => {
  const doc = fs.readFileSync(path.join(__dirname, '../../docs/properties.md'), 'utf8');
  const between = (kind: 'kernel' | 'device'): string => {
    const [b, e] = tableMarkers(kind);
    return doc.slice(doc.indexOf(b), doc.indexOf(e));
  };

  it('hold a row for every entry of harness/mutations.ts', () => {
    for (const mu of KERNEL_MUTATIONS) expect(between('kernel')).toContain(`\`${mu.variant}\``);
    for (const mu of DEVICE_MUTATIONS) expect(between('device')).toContain(`--bug ${mu.bugs!.join(',')}\``);
  });

  it('are replaced between their markers and nowhere else', () => {
    const rows = [
      {
        property: 'pins-balance',
        breaker: 'v6.12 --bug leak',
        suite: 'device:x',
        found: '20/20',
        'median first failure s': 0.2,
        'median cases': 3,
        'median with shrinking s': 0.3,
        'median shrunk ops': 1,
        'max shrunk ops': 2,
        'what the bug is': 'a test row',
        kind: 'device',
      },
    ];
    const table = mutationTable(rows, 'device', 'Measured now.');
    expect(table).toMatch(
      /^\| `pins-balance` \| `device:x --bug leak` \| a test row \| 20\/20 \| 0\.2 s \| 3 \| 0\.3 s \| 1 \/ 2 \|$/m,
    );
    const once = replaceTable(doc, 'device', table);
    expect(replaceTable(once, 'device', table)).toBe(once);
    expect(once).toContain(between('kernel'));
    expect(once.split(tableMarkers('device')[0]).length).toBe(2);
    expect(() => replaceTable('no markers', 'kernel', table)).toThrow(/no '<!-- BEGIN/);
  });
});
