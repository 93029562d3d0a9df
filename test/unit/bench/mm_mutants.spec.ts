// The mm mutation sampler's sites (bench/mm_mutants.ts): what it plants, and that every mutant of the
// six files is still a program (it parses) and differs from the original.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ts from 'typescript';
import { mutationSites, mutantScores, MUTATED_FILES } from '../../../bench/mm_mutants';

it('finds flipped comparisons and logic, dropped negations, negated conditions, deleted statements, constants', () => {
  const text = 'function f(a: number, b: number, c: boolean) {\n  if (a < b && !c) {\n    g();\n    a = 1;\n  }\n}\n';
  const sites = mutationSites('x.ts', text);
  const apply = (i: number): string => text.slice(0, sites[i]!.start) + sites[i]!.to + text.slice(sites[i]!.end);
  expect(sites.map((s) => `${s.kind}: ${s.from} -> ${s.to}`)).toEqual([
    'condition negated: a < b && !c -> !(a < b && !c)',
    'operator: && -> ||',
    'operator: < -> >=',
    'negation dropped: ! -> ',
    'statement deleted: g(); -> ;',
    'statement deleted: a = 1; -> ;',
    'constant: 1 -> 0',
  ]);
  expect(apply(2)).toContain('if (a >= b && !c)');
  expect(apply(3)).toContain('if (a < b && c)');
});

it('mutants of the mutated mm files parse and differ from the file', () => {
  for (const f of MUTATED_FILES) {
    const file = `mm/${f}.ts`;
    const text = fs.readFileSync(path.join(__dirname, '../../..', file), 'utf8');
    const sites = mutationSites(file, text);
    expect(sites.length).toBeGreaterThan(50);
    const step = Math.ceil(sites.length / 40); // every kind, 40 a file: parsing each is slow
    for (const s of sites.filter((_, i) => i % step === 0)) {
      const m = text.slice(0, s.start) + s.to + text.slice(s.end);
      expect(m).not.toBe(text);
      const sf = ts.createSourceFile(file, m, ts.ScriptTarget.ES2022, true) as ts.SourceFile & {
        parseDiagnostics: ts.Diagnostic[];
      };
      expect(sf.parseDiagnostics.map((d) => `${s.line} ${s.kind}: ${String(d.messageText)}`)).toEqual([]);
    }
  }
});

it('scores per file: killed by anything, and by the campaign alone', () => {
  const rows = [
    { file: 'mm/a.ts', unit: 'fail', campaign: 'pass', killed: 'yes' },
    { file: 'mm/a.ts', unit: 'pass', campaign: 'fail', killed: 'yes' },
    { file: 'mm/b.ts', unit: 'pass', campaign: 'pass', killed: 'no' },
  ];
  expect(mutantScores(rows)).toEqual([
    { file: 'mm/a.ts', mutants: 2, killed: 2, score: '100%', 'killed by the campaign': 1, 'campaign score': '50%' },
    { file: 'mm/b.ts', mutants: 1, killed: 0, score: '0%', 'killed by the campaign': 0, 'campaign score': '0%' },
    { file: 'all', mutants: 3, killed: 2, score: '67%', 'killed by the campaign': 1, 'campaign score': '33%' },
  ]);
});
