// The regression file's schema (zod), built from the tables that say what runs - SUITES, each actor
// model's `ops` and `faultPoints` (harness/actors.ts), the kernel variants - so a file either runs exactly what it
// says or is refused, in one line naming the field: `case.programs["pinner-0"][2].map: expected ...`.
// Rules beyond the types (docs/harness.md): the top-level variant and case.variant agree; the case's
// actors are actors of the suite; property and properties are properties of the suite.
import { z } from 'zod';
import type { OpField } from '../devices/device';
import { actorKindOf, actorKinds, actorModel, deviceModelOf } from './actors';
import { SUITES, Suite } from './suites';
import type { Case } from './run_case';
import { RUN_FAILURES } from '../properties/index';
import { MAX_ACTORS, MAX_MAPS } from './schedctl';
import { parseVariant, VariantError } from '../mm/variants';
import { own } from '../mm/own';
import { zodLine, Path, preview } from './input';

const expecting = (message: string) => ({ errorMap: () => ({ message }) });
const nat = z.number(expecting('expected a whole number >= 0')).int().nonnegative().safe();
const NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A kernel variant name (`pinlab variants`). */
export const VARIANT = z.string(expecting('expected a kernel variant like v6.12 or v6.12+R3')).superRefine((k, ctx) => {
  try {
    parseVariant(k);
  } catch (e) {
    if (!(e instanceof VariantError)) throw e;
    ctx.addIssue({ code: 'custom', message: e.message });
  }
});

/** The kind of an actor name "<kind>-<n>" when the kind is an agent or a device model, else null. */
export const knownKind = actorKindOf;

/** The ops (op -> fields) of an actor kind. */
function kindOps(kind: string): Record<string, Record<string, OpField>> {
  return actorModel(kind)!.ops;
}

/** The schema of one op field, given the case's mapping names. */
function fieldSchema(f: OpField, maps: readonly string[]): z.ZodTypeAny {
  const mapping = `a mapping of the case (${maps.join(', ') || 'it maps none'})`;
  const mapName = z.custom<string>((v) => typeof v === 'string' && maps.includes(v), {
    message: `expected ${mapping}`,
  });
  if (Array.isArray(f))
    return z.custom<string>((v) => f.includes(v as string), { message: `expected one of ${f.join(', ')}` });
  if (typeof f === 'object' && 'list' in f)
    return z.array(fieldSchema(f.list, maps), expecting('expected a list')).max(4096);
  if (typeof f === 'object' && 'record' in f) return recordSchema(f.record, maps, []);
  switch (f) {
    case 'int':
      return z.number(expecting('expected a number'));
    case 'nat':
      return nat;
    case 'bool':
      return z.boolean(expecting('expected true or false'));
    case 'string':
      return z.string(expecting('expected text')).max(200);
    case 'map':
    case 'map?':
      return mapName;
    default:
      return z.union(
        [z.number(), z.object({ map: mapName, off: nat, byte: nat.optional() }).strict()],
        expecting(`expected a byte address or { map, off, byte } naming ${mapping}`),
      );
  }
}

/** A record of fields, all optional but the 'map' ones (an agent needs the mapping it works on). */
function recordSchema(
  fields: Readonly<Record<string, OpField>>,
  maps: readonly string[],
  extra: [string, z.ZodTypeAny][],
): z.AnyZodObject {
  const shape: Record<string, z.ZodTypeAny> = Object.fromEntries(extra);
  for (const [k, f] of Object.entries(fields))
    shape[k] = f === 'map' ? fieldSchema(f, maps) : fieldSchema(f, maps).optional();
  return z
    .object(shape, expecting('expected a mapping'))
    .strict(`(fields: ${Object.keys(fields).join(', ') || 'none'})`);
}

/** One actor's program: a list of its kind's ops. */
function programSchema(kind: string, maps: readonly string[]): z.ZodTypeAny {
  const ops = kindOps(kind);
  const names = Object.keys(ops);
  const each = names.map((op) => recordSchema(ops[op]!, maps, [['op', z.literal(op)]]));
  const errorMap: z.ZodErrorMap = (issue, ctx) => {
    const op = (ctx.data as { op?: unknown } | undefined)?.op;
    if (issue.code === 'invalid_union_discriminator') {
      const what = op === undefined ? "an op needs 'op'" : `unknown op ${preview(op)}`;
      return { message: `${what} for ${kind} (ops: ${names.join(', ')})` };
    }
    return {
      message: issue.code === 'invalid_type' ? 'expected an op: a mapping with op and its fields' : ctx.defaultError,
    };
  };
  const op = z.discriminatedUnion('op', each as unknown as [z.AnyZodObject, ...z.AnyZodObject[]], { errorMap });
  return z.array(op, expecting(`expected a list of ${kind} ops`));
}

/** A record keyed by names that must satisfy `key` (null, or why not), each value checked by `value(name)`. */
function keyed(
  what: string,
  key: (k: string) => string | null,
  value: (k: string) => z.ZodTypeAny,
  min = 0,
  max = Infinity,
): z.ZodTypeAny {
  return z.unknown().superRefine((x, ctx) => {
    if (typeof x !== 'object' || x === null || Array.isArray(x)) {
      ctx.addIssue({ code: 'custom', message: `expected ${what}` });
      return;
    }
    const names = Object.keys(x);
    if (names.length < min || names.length > max) {
      ctx.addIssue({ code: 'custom', message: `expected ${min} to ${max} entries in ${what}, got ${names.length}` });
    }
    for (const k of names) {
      const why = key(k);
      if (why) {
        ctx.addIssue({ code: 'custom', message: why, path: [k] });
        continue;
      }
      const r = value(k).safeParse((x as Record<string, unknown>)[k]);
      if (!r.success) for (const iss of r.error.issues) ctx.addIssue({ ...iss, path: [k, ...iss.path] } as z.IssueData);
    }
  });
}

const MAP_SPEC = z
  .object(
    {
      name: z.string(expecting('expected a mapping name like buf')).regex(NAME_RE).max(64),
      pages: z
        .number(expecting('expected a number of pages 1..2^31-1'))
        .int()
        .min(1)
        .max(2 ** 31 - 1),
      file: z.enum(['shared', 'private'], expecting('expected shared or private')).optional(),
    },
    expecting('expected { name, pages }'),
  )
  .strict('(fields: name, pages, file)');

const LAYOUT = z
  .object(
    {
      cmdline: z.string(expecting('expected a kernel command line')),
      geometry: z.string(expecting('expected a geometry like mini')).optional(),
      maps: z
        .array(MAP_SPEC, expecting('expected a list of mappings'))
        .max(MAX_MAPS)
        .superRefine((maps, ctx) => {
          const seen = new Set<string>();
          maps.forEach((mp, i) => {
            if (seen.has(mp.name))
              ctx.addIssue({ code: 'custom', message: `mapping '${mp.name}' named twice`, path: [i, 'name'] });
            seen.add(mp.name);
          });
        }),
      memlock: z
        .number(expecting('expected RLIMIT_MEMLOCK in pages, or -1 (unlimited)'))
        .int()
        .min(-1)
        .safe()
        .optional(),
      refusable: z.boolean(expecting('expected true or false')).optional(),
    },
    expecting('expected a mapping with cmdline and maps'),
  )
  .strict('(fields: cmdline, geometry, maps, memlock, refusable)');

/** The case's parts that do not depend on its other parts. */
const CASE_BASE = z
  .object(
    {
      layout: LAYOUT,
      variant: VARIANT,
      programs: z.unknown(),
      schedule: z.array(nat, expecting('expected a list of scheduling choices')).max(1 << 20),
      faults: z.unknown(),
      bugs: z.unknown().optional(),
    },
    expecting('expected a case: a mapping with layout, variant, programs, schedule, faults'),
  )
  .strict('(fields: layout, variant, programs, schedule, faults, bugs)');

/** The parts that depend on the mappings and the actors. */
function caseDeps(c: z.infer<typeof CASE_BASE>, raw: Record<string, unknown>): z.ZodTypeAny {
  const maps = c.layout.maps.map((x) => x.name);
  const programs = raw.programs;
  const actors =
    typeof programs === 'object' && programs !== null && !Array.isArray(programs) ? Object.keys(programs) : [];
  const isActor = (a: string): string | null =>
    actors.includes(a) ? null : `'${a}' is not an actor of the case (actors: ${actors.join(', ')})`;
  const kinds = actorKinds();
  const actorName = (a: string): string | null => {
    if (knownKind(a)) return null;
    return `unknown actor kind '${/^(.+)-[0-9]+$/.exec(a)?.[1] ?? a}' in '${a}' (actors are <kind>-<n>; kinds: ${kinds.join(', ')})`;
  };
  const faultPlan = (a: string): z.ZodTypeAny => {
    const kind = knownKind(a);
    const points = kind ? actorModel(kind)!.faultPoints : [];
    const point = (p: string): string | null =>
      points.includes(p) ? null : `'${p}' is not a fault point of ${a} (points: ${points.join(', ') || 'none'})`;
    return keyed(`fault points of ${a}`, point, () =>
      z.array(nat, expecting('expected a list of call numbers')).max(4096),
    );
  };
  const device = (a: string): string | null =>
    isActor(a) ?? (deviceModelOf(knownKind(a) ?? '') ? null : `'${a}' is not a device`);
  const bugList = (a: string): z.ZodTypeAny => {
    const bugs = Object.keys(deviceModelOf(knownKind(a)!)!.bugs);
    const message = `expected a bug switch of ${knownKind(a)} (${bugs.join(', ') || 'none'})`;
    return z.array(z.custom<string>((b) => bugs.includes(b as string), { message }));
  };
  return z
    .object({
      programs: keyed(
        'a mapping from actor name to its ops',
        actorName,
        (a) => programSchema(knownKind(a)!, maps),
        c.layout.refusable ? 0 : 1, // the boot suite's cases have no actors
        MAX_ACTORS,
      ),
      faults: keyed('a mapping from actor to fault point to call numbers', isActor, faultPlan),
      bugs: keyed('a mapping from device actor to bug switches', device, bugList).optional(),
    })
    .passthrough();
}

/** Check a case; throws an Error whose message is one line naming the field (paths under `prefix`). */
export function parseCase(x: unknown, prefix: Path = ['case']): Case {
  const doc = prefix.length ? nest(prefix, x) : x;
  const base = CASE_BASE.safeParse(x);
  if (!base.success) throw new Error(zodLine(prefixed(base.error, prefix), doc));
  const deps = caseDeps(base.data, x as Record<string, unknown>).safeParse(x);
  if (!deps.success) throw new Error(zodLine(prefixed(deps.error, prefix), doc));
  return x as Case;
}

/** The regression file's own fields (the case is checked by parseCase). */
const REGRESSION = z
  .object(
    {
      name: z.string(expecting('expected a name')).max(200).optional(),
      suite: z.string(expecting('expected a suite name')).superRefine((s, ctx) => {
        if (!own(SUITES, s))
          ctx.addIssue({ code: 'custom', message: `unknown suite ${preview(s)} (pinlab run --help lists them)` });
      }),
      seed: z
        .number(expecting('expected a 32-bit seed'))
        .int()
        .min(-(2 ** 31))
        .max(2 ** 31 - 1),
      path: z
        .string(expecting("expected fast-check's path: numbers separated by ':'"))
        .regex(/^([0-9]{1,9}(:[0-9]{1,9})*)?$/),
      variant: VARIANT,
      property: z.string(expecting('expected a property name')),
      verdict: z.enum(['fail', 'pass'], expecting('expected "fail" or "pass"')),
      message: z.string(expecting('expected text')).optional(),
      trace_hash: z
        .string(expecting('expected 8 hex digits'))
        .regex(/^[0-9a-f]{8}$/)
        .optional(),
      reproduced: z.boolean(expecting('expected true or false')).optional(),
      shrinking_interrupted_after: z.number(expecting('expected a number of shrink steps')).int().min(0).optional(),
      properties: z
        .array(z.string(expecting('expected a property name')), expecting('expected a list of property names'))
        .nonempty()
        .optional(),
      case: z.custom((v) => v !== undefined),
    },
    expecting('expected a regression file: a mapping with suite, seed, path, variant, property, verdict, case'),
  )
  .strict(
    '(fields: name, suite, seed, path, variant, property, verdict, message, trace_hash, reproduced,' +
      ' shrinking_interrupted_after, properties, case)',
  );

export type RegressionDoc = Omit<z.infer<typeof REGRESSION>, 'case'> & { case: Case };

/** Check a regression file's document; throws an Error whose message is one line naming the field. */
export function parseRegression(doc: unknown): RegressionDoc {
  const r = REGRESSION.safeParse(doc);
  if (!r.success) throw new Error(zodLine(r.error, doc));
  const cs = parseCase(r.data.case);
  const d = r.data;
  const suite: Suite = own(SUITES, d.suite)!;
  const bad = (path: Path, message: string): never => {
    throw new Error(zodLine(new z.ZodError([{ code: 'custom', path: [...path], message }]), doc));
  };
  // the file runs exactly what it says: one kernel, the suite's actors and properties
  if (cs.variant !== d.variant) {
    bad(
      ['variant'],
      `'${d.variant}' but case.variant is '${cs.variant}': they must agree (edit both, or replay with --kernel)`,
    );
  }
  for (const a of Object.keys(cs.programs)) {
    if (suite.actors.includes(a)) continue;
    bad(['case', 'programs', a], `not an actor of suite ${suite.name} (actors: ${suite.actors.join(', ')})`);
  }
  const checkable = suite.properties.filter((p) => !RUN_FAILURES.includes(p));
  const all = [...new Set([...suite.properties, ...RUN_FAILURES])];
  if (!all.includes(d.property)) {
    bad(['property'], `${preview(d.property)} is not a property of suite ${suite.name} (${all.join(', ')})`);
  }
  d.properties?.forEach((p, i) => {
    if (checkable.includes(p)) return;
    bad(
      ['properties', i],
      `${preview(p)} is not a property of suite ${suite.name} (${checkable.join(', ') || 'none'})`,
    );
  });
  return { ...d, case: cs };
}

function nest(path: Path, x: unknown): unknown {
  return path.reduceRight<unknown>((v, p) => (typeof p === 'number' ? Object.assign([], { [p]: v }) : { [p]: v }), x);
}

function prefixed(err: z.ZodError, prefix: Path): z.ZodError {
  return new z.ZodError(err.issues.map((i) => ({ ...i, path: [...prefix, ...i.path] })));
}
