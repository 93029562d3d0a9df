// Reading user files (scenarios, regression files) and turning what is wrong with them into ONE line:
// a bounded read of a regular file, YAML whose warnings count as errors and whose aliases may not
// contain themselves, and a zod error reduced to its first issue with the field's path and value.
import * as fs from 'node:fs';
import { parseDocument, visit, Document } from 'yaml';
import type { ZodError, ZodIssue } from 'zod';

/** Larger input files are refused: what they describe must fit the simulated machine anyway. */
export const INPUT_MAX_BYTES = 16 << 20;

/** An error's message for a bad file: a RangeError from parsing or checking means nesting past the stack. */
export function badFileMessage(e: unknown): string {
  return e instanceof RangeError ? `nested too deeply (${e.message})` : (e as Error).message;
}

/** The text of a regular file of at most INPUT_MAX_BYTES; anything else throws one line. */
export function readInput(file: string): string {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK); // a FIFO must not block the open
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(code === 'ENOENT' ? 'no such file' : `cannot read it: ${code ?? (e as Error).message}`, {
      cause: e,
    });
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile())
      throw new Error(`not a regular file (${st.isDirectory() ? 'a directory' : 'a device, FIFO or socket'})`);
    if (st.size > INPUT_MAX_BYTES) throw new Error(`${st.size} bytes: larger than ${INPUT_MAX_BYTES >> 20} MiB`);
    const buf = Buffer.alloc(INPUT_MAX_BYTES + 1);
    let n = 0;
    for (let r; n < buf.length && (r = fs.readSync(fd, buf, n, buf.length - n, null)) > 0;) n += r;
    if (n > INPUT_MAX_BYTES) throw new Error(`larger than ${INPUT_MAX_BYTES >> 20} MiB`);
    return buf.toString('utf8', 0, n);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * YAML (JSON is YAML) as plain data. Errors and warnings (an unknown %YAML version or tag) are one
 * line; an alias inside the node it names (`len: &x [*x]`) would make cyclic data and is refused,
 * as are more aliases than the yaml library's resource-exhaustion limit (maxAliasCount).
 */
export function parseYamlText(text: string): unknown {
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length) throw new Error(`not valid YAML/JSON: ${firstLine(doc.errors[0]!.message)}`);
  if (doc.warnings.length) throw new Error(`YAML: ${firstLine(doc.warnings[0]!.message)}`); // %YAML 9.9, an unknown !tag
  let cyclic: string | null = null;
  visit(doc, {
    Alias(_key, node, path) {
      const src = node.resolve(doc as Document);
      if (src && path.includes(src)) {
        cyclic = node.source;
        return visit.BREAK;
      }
      return undefined;
    },
  });
  if (cyclic !== null) throw new Error(`YAML: the alias *${cyclic} is inside the node &${cyclic} names (cyclic data)`);
  try {
    return doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    throw new Error(`YAML: ${firstLine((e as Error).message)}`, { cause: e }); // maxAliasCount: an alias bomb
  }
}

function firstLine(s: string): string {
  return s.split('\n')[0]!.replace(/:$/, '').trim();
}

export type Path = readonly (string | number)[];

/** a.b[2]["x y"] */
export function pathText(path: Path): string {
  let s = '';
  for (const p of path) {
    if (typeof p === 'number') s += `[${p}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(p)) s += s ? `.${p}` : p;
    else s += `[${JSON.stringify(p)}]`;
  }
  return s;
}

/** The value at path (own keys only), or undefined. */
export function valueAt(doc: unknown, path: Path): unknown {
  let v = doc;
  for (const p of path) {
    if (typeof v !== 'object' || v === null || !Object.hasOwn(v, p)) return undefined;
    v = (v as Record<string | number, unknown>)[p];
  }
  return v;
}

/** A short rendering of a value from a file, for a message. */
export function preview(v: unknown): string {
  let s: string;
  if (v === undefined) s = 'nothing';
  else if (typeof v === 'number') s = Number.isNaN(v) ? 'NaN' : String(v);
  else {
    try {
      s = JSON.stringify(v) ?? String(v);
    } catch {
      s = String(v);
    }
  }
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** Renders the head of a path (say ['steps', 2] as "step 3 (mmap)"); returns how many elements it used. */
export type PathHead = (path: Path, doc: unknown) => { text: string; used: number } | null;

/** The first issue of a zod error as one line: "<path>: <what was expected>, got <value>". */
export function zodLine(err: ZodError, doc: unknown, head?: PathHead): string {
  const first = err.issues[0]!;
  // zod lists missing keys before unknown ones; an unknown key beside a missing one is the likelier typo
  const parent = pathText(first.path.slice(0, -1));
  const typo = err.issues.find((i) => i.code === 'unrecognized_keys' && pathText(i.path) === parent);
  return issueLine(typo ?? first, doc, head);
}

function issueLine(issue: ZodIssue, doc: unknown, head?: PathHead): string {
  const path = issue.path;
  const h = head?.(path, doc) ?? null;
  const where = (p: Path): string =>
    [h?.text, pathText(p.slice(h?.used ?? 0))].filter(Boolean).join(': ') || 'top level';
  const parent = valueAt(doc, path.slice(0, -1));
  const key = path[path.length - 1];
  const absent =
    typeof key === 'string' &&
    typeof parent === 'object' &&
    parent !== null &&
    !Array.isArray(parent) &&
    !Object.hasOwn(parent, key);
  // an unknown op: the message names the key itself
  if (issue.code === 'invalid_union_discriminator') return `${where(path.slice(0, -1))}: ${issue.message}`;
  if (absent && (issue.code === 'invalid_type' || issue.code === 'custom'))
    return `${where(path.slice(0, -1))}: needs '${key}'`;
  if (issue.code === 'unrecognized_keys') {
    const keys =
      issue.keys
        .slice(0, 3)
        .map((k) => preview(k).replace(/^"|"$/g, "'"))
        .join(', ') + (issue.keys.length > 3 ? ` and ${issue.keys.length - 3} more` : '');
    const known = issue.message.startsWith('(') ? ` ${issue.message}` : '';
    return `${where(path)}: unknown key${issue.keys.length > 1 ? 's' : ''} ${keys}${known}`;
  }
  // pinlab's schema messages (and every custom issue) are "expected ..." (then the value follows) or a
  // whole sentence; zod's own defaults ("Invalid input", "Expected string, received number") are reworded
  const msg =
    issue.code === 'custom' || /^[a-z'(]/.test(issue.message) ? issue.message : `expected ${zodExpected(issue)}`;
  return `${where(path)}: ${msg}${msg.startsWith('expected') ? `, got ${preview(valueAt(doc, path))}` : ''}`;
}

/** What zod's own issue asked for, in words (the schemas give their own messages where it matters). */
function zodExpected(issue: ZodIssue): string {
  switch (issue.code) {
    case 'invalid_type':
      return issue.expected === 'object' ? 'a mapping' : issue.expected === 'array' ? 'a list' : `a ${issue.expected}`;
    case 'invalid_literal':
      return JSON.stringify(issue.expected);
    case 'invalid_enum_value':
      return `one of ${issue.options.join(', ')}`;
    case 'too_small':
      return issue.type === 'array' ? `at least ${issue.minimum} entries` : `at least ${issue.minimum}`;
    case 'too_big':
      return issue.type === 'array' ? `at most ${issue.maximum} entries` : `at most ${issue.maximum}`;
    default:
      return issue.message.toLowerCase();
  }
}
