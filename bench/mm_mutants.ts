// Mutation testing of the mm core (`npm run bench -- mm-mutants`): how many small bugs planted in
// mm/gup.ts, migrate.ts, page_alloc.ts, memory_hotplug.ts, page_isolation.ts and rmap.ts the tests and
// the campaign catch. A fixed seed samples PINLAB_MUTANTS (default 40) mutation sites found in the
// TypeScript syntax tree - a comparison flipped, a && made || (and back), a ! dropped, an if condition
// negated, an expression statement deleted, a constant changed by one - and each mutant runs, in a copy
// of the repository, against the mm unit specs (jest, type checks off: a mutant that only breaks the
// types is not a caught bug) and the default campaign (seed 1, stopped at its first failure:
// --fail-fast). Killed: either failed or timed out (2 minutes each). Survivors are listed: some are
// equivalent mutants, which no test can kill.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import * as ts from 'typescript';
import { Prng } from '../harness/prng';

type Row = Record<string, string | number>;

export const MUTATED_FILES = ['gup', 'migrate', 'page_alloc', 'memory_hotplug', 'page_isolation', 'rmap'];

export interface Mutant {
  file: string;
  line: number;
  kind: string;
  /** the text replaced, and by what */
  from: string;
  to: string;
  start: number;
  end: number;
}

const FLIP: Partial<Record<ts.SyntaxKind, string>> = {
  [ts.SyntaxKind.LessThanToken]: '>=',
  [ts.SyntaxKind.LessThanEqualsToken]: '>',
  [ts.SyntaxKind.GreaterThanToken]: '<=',
  [ts.SyntaxKind.GreaterThanEqualsToken]: '<',
  [ts.SyntaxKind.EqualsEqualsEqualsToken]: '!==',
  [ts.SyntaxKind.ExclamationEqualsEqualsToken]: '===',
  [ts.SyntaxKind.AmpersandAmpersandToken]: '||',
  [ts.SyntaxKind.BarBarToken]: '&&',
};

/** Every mutation site of one source text. */
export function mutationSites(file: string, text: string): Mutant[] {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true);
  const out: Mutant[] = [];
  const add = (node: ts.Node, kind: string, start: number, end: number, to: string): void => {
    const line = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1;
    out.push({ file, line, kind, from: text.slice(start, end), to, start, end });
  };
  const visit = (node: ts.Node): void => {
    if (ts.isBinaryExpression(node) && FLIP[node.operatorToken.kind]) {
      const op = node.operatorToken;
      add(node, 'operator', op.getStart(sf), op.getEnd(), FLIP[op.kind]!);
    } else if (ts.isPrefixUnaryExpression(node) && node.operator === ts.SyntaxKind.ExclamationToken) {
      add(node, 'negation dropped', node.getStart(sf), node.operand.getStart(sf), '');
    } else if (ts.isIfStatement(node)) {
      const c = node.expression;
      add(node, 'condition negated', c.getStart(sf), c.getEnd(), `!(${c.getText(sf)})`);
    } else if (ts.isExpressionStatement(node) && !ts.isStringLiteral(node.expression)) {
      add(node, 'statement deleted', node.getStart(sf), node.getEnd(), ';');
    } else if (ts.isNumericLiteral(node) && !ts.isEnumMember(node.parent)) {
      const v = Number(node.text);
      add(node, 'constant', node.getStart(sf), node.getEnd(), String(v === 1 ? 0 : v + 1));
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

/**
 * Run cmd under timeout(1), which puts it in a process group of its own (the group's id is timeout's
 * pid) and signals the whole group when time is up; whatever of the group is left when it returns (a
 * jest worker spinning in a mutant's endless loop after jest gave up on it) is killed too, so nothing
 * runs on into the next mutant's measurement. spawnSync's own timeout would kill only the child it
 * started. 124: timed out; 137: killed 5 s after that.
 */
function run(cmd: string, args: string[], cwd: string, timeoutMs: number): 'pass' | 'fail' | 'timeout' {
  const secs = String(Math.ceil(timeoutMs / 1000));
  const r = spawnSync('timeout', ['-k', '5', secs, cmd, ...args], {
    cwd,
    stdio: 'ignore',
    timeout: timeoutMs + 30_000, // a backstop should timeout(1) itself hang
    env: { ...process.env, CI: '1' },
  });
  try {
    if (r.pid) process.kill(-r.pid, 'SIGKILL');
  } catch {
    // ESRCH: the group is gone, as it should be
  }
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT') return 'timeout';
  if (r.status === 124 || r.status === 137) return 'timeout';
  return r.status === 0 ? 'pass' : 'fail';
}

/** A copy of the tracked files (node_modules linked): mutants are written there, never in the tree. */
function sandbox(root: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pinlab-mutants-'));
  const files = execFileSync('git', ['ls-files', '-z'], { cwd: root, encoding: 'utf8' }).split('\0').filter(Boolean);
  for (const f of files) {
    fs.mkdirSync(path.join(dir, path.dirname(f)), { recursive: true });
    fs.copyFileSync(path.join(root, f), path.join(dir, f));
  }
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'));
  // the campaign runs the compiled build, as npm start does (tsx's esbuild exports are slower on mm's hot
  // paths); a mutant replaces one file's .js with transpileModule()'s, which is tsc's emit for the file
  execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: dir });
  // the unit specs without type checks: a mutant that only breaks the types is no caught bug
  fs.writeFileSync(
    path.join(dir, 'jest.mutants.json'),
    JSON.stringify({
      testEnvironment: 'node',
      roots: ['<rootDir>/test/unit/mm'],
      testMatch: ['**/*.spec.ts'],
      transform: { '^.+\\.ts$': ['ts-jest', { diagnostics: false, isolatedModules: true }] },
      testTimeout: 60000,
    }),
  );
  return dir;
}

// the default campaign (npm start's plan, every suite on every shape), stopped at its first failure
const CAMPAIGN = `require('./dist/harness/cli/index').mainAsync(['campaign','--seed','1','--fail-fast','--save','none','--allow-unexercised'],{out(){},err(){}}).then((c)=>process.exit(c))`;

/** tsc's CommonJS emit of one file (the build's options; isolatedModules makes it file by file). */
function emitJs(text: string): string {
  return ts.transpileModule(text, {
    compilerOptions: {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.CommonJS,
      esModuleInterop: true,
      isolatedModules: true,
    },
  }).outputText;
}

export async function mmMutantRows(root: string): Promise<Row[]> {
  const n = Number(process.env.PINLAB_MUTANTS ?? 40);
  const rng = new Prng(Number(process.env.PINLAB_MUTANT_SEED ?? 1));
  const sites = MUTATED_FILES.flatMap((f) => {
    const file = `mm/${f}.ts`;
    return mutationSites(file, fs.readFileSync(path.join(root, file), 'utf8'));
  });
  const picked: Mutant[] = [];
  const pool = [...sites];
  while (picked.length < n && pool.length) picked.push(pool.splice(rng.below(pool.length), 1)[0]!);
  const dir = sandbox(root);
  const rows: Row[] = [];
  const unitRun = (): ReturnType<typeof run> =>
    run('npx', ['jest', '--config', 'jest.mutants.json', '--silent', '--bail', '--maxWorkers=2'], dir, 120_000);
  const campaignRun = (): ReturnType<typeof run> => run(process.execPath, ['-e', CAMPAIGN], dir, 120_000);
  try {
    // a mutant's .js must be what the build would emit for it: checked on the files as they are
    for (const f of MUTATED_FILES) {
      const js = fs
        .readFileSync(path.join(dir, 'dist', 'mm', `${f}.js`), 'utf8')
        .replace(/\n\/\/# sourceMappingURL=.*\n?$/, '\n');
      if (js !== emitJs(fs.readFileSync(path.join(dir, 'mm', `${f}.ts`), 'utf8')))
        throw new Error(`mm-mutants: transpileModule() does not emit what tsc built for mm/${f}.ts`);
    }
    // without a mutant both must pass, or every mutant would count as killed
    const base = [unitRun(), campaignRun()];
    if (base.some((r) => r !== 'pass'))
      throw new Error(`mm-mutants: the unmutated tree does not pass (unit ${base[0]}, campaign ${base[1]})`);
    for (const [k, mu] of picked.entries()) {
      const src = path.join(dir, mu.file);
      const js = path.join(dir, 'dist', mu.file.replace(/\.ts$/, '.js'));
      const text = fs.readFileSync(src, 'utf8');
      const built = fs.readFileSync(js, 'utf8');
      const mutated = text.slice(0, mu.start) + mu.to + text.slice(mu.end);
      fs.writeFileSync(src, mutated);
      fs.writeFileSync(js, emitJs(mutated));
      const unit = unitRun();
      const campaign = campaignRun();
      fs.writeFileSync(src, text);
      fs.writeFileSync(js, built);
      const killed = unit !== 'pass' || campaign !== 'pass';
      rows.push({
        file: mu.file,
        line: mu.line,
        kind: mu.kind,
        mutant: `${mu.from} -> ${mu.to}`.slice(0, 60),
        unit,
        campaign,
        killed: killed ? 'yes' : 'no',
      });
      process.stderr.write(
        `mm-mutants [${k + 1}/${picked.length}] ${mu.file}:${mu.line} ${mu.kind}: unit ${unit}, campaign ${campaign}\n`,
      );
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

/** Per file: mutants, killed (by anything), killed by the campaign alone. */
export function mutantScores(rows: Row[]): Row[] {
  const files = [...new Set(rows.map((r) => String(r.file)))];
  const score = (rs: Row[]): Row => {
    const killed = rs.filter((r) => r.killed === 'yes').length;
    const byCampaign = rs.filter((r) => r.campaign !== 'pass').length;
    return {
      mutants: rs.length,
      killed,
      score: rs.length ? `${Math.round((100 * killed) / rs.length)}%` : '—',
      'killed by the campaign': byCampaign,
      'campaign score': rs.length ? `${Math.round((100 * byCampaign) / rs.length)}%` : '—',
    };
  };
  return [
    ...files.map((f) => ({ file: f, ...score(rows.filter((r) => r.file === f)) })),
    { file: 'all', ...score(rows) },
  ];
}
