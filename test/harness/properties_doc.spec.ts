// docs/properties.md's table is the registry's: `pinlab properties --markdown` between its markers.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { propertiesMarkdown } from '../../harness/cli/properties';
import { PROPERTIES } from '../../properties/index';

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
