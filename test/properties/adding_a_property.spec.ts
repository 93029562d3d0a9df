// docs/adding-a-property.md's worked example is the real property, and it is registered.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PROPERTIES } from '../../properties/index';
import { lruIsolationBalanced } from '../../properties/lru_isolation_balanced';
import { KERNEL_MUTATIONS } from '../../harness/mutations';

const root = path.join(__dirname, '../..');

it('docs/adding-a-property.md shows properties/lru_isolation_balanced.ts verbatim', () => {
  const doc = fs.readFileSync(path.join(root, 'docs/adding-a-property.md'), 'utf8');
  const block = /<!-- lru_isolation_balanced.ts -->\n```ts\n([\s\S]*?)```/.exec(doc);
  expect(block).not.toBeNull();
  expect(block![1]).toBe(fs.readFileSync(path.join(root, 'properties/lru_isolation_balanced.ts'), 'utf8'));
});

it('the example is registered, has its mutation entry and its committed regression file', () => {
  expect(PROPERTIES).toContain(lruIsolationBalanced);
  const mu = KERNEL_MUTATIONS.find((x) => x.property === lruIsolationBalanced.name);
  expect(mu).toMatchObject({ variant: 'v6.1', fixed: 'v6.1+-R10' });
  expect(
    fs.existsSync(path.join(root, 'regressions', `longterm-pin-v6.1-lru-isolation-balanced-${mu!.seed}.json`)),
  ).toBe(true);
});
