// The benchmarks' one table printer: plain aligned columns (numbers right, text left), no quotes, no
// index column - unlike console.table, a row can be pasted into a markdown file or read in a log.

export type Row = Record<string, string | number>;

/** The median (the mean of the middle two for an even count; NaN for none). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (!s.length) return NaN;
  const k = s.length >> 1;
  return s.length % 2 ? s[k]! : (s[k - 1]! + s[k]!) / 2;
}

/** A number as the tables show it: integers with thousands separators, others with up to 3 decimals. */
export function formatCell(v: string | number | undefined): string {
  if (v === undefined) return '';
  if (typeof v === 'string') return v;
  if (!Number.isFinite(v)) return String(v);
  if (Number.isInteger(v)) return v.toLocaleString('en-US');
  return v.toLocaleString('en-US', { maximumFractionDigits: 3 });
}

/** The rows as a text table: a header, a rule, one line per row; columns in order of first appearance. */
export function formatTable(rows: readonly Row[]): string {
  if (!rows.length) return '(no rows)\n';
  const cols: string[] = [];
  for (const r of rows) for (const k of Object.keys(r)) if (!cols.includes(k)) cols.push(k);
  const numeric = cols.map((c) => rows.every((r) => r[c] === undefined || typeof r[c] === 'number'));
  const cells = rows.map((r) => cols.map((c) => formatCell(r[c])));
  const width = cols.map((c, i) => Math.max(c.length, ...cells.map((line) => line[i]!.length)));
  const pad = (s: string, i: number): string => (numeric[i] ? s.padStart(width[i]!) : s.padEnd(width[i]!));
  const line = (xs: string[]): string => xs.map(pad).join('  ').trimEnd();
  const out = [line(cols), width.map((w) => '-'.repeat(w)).join('  '), ...cells.map(line)];
  return out.join('\n') + '\n';
}
