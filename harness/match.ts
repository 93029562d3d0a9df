// expect_match in scenario files: JavaScript regular expressions, bounded. A pattern that repeats a group
// which itself repeats (`(a+)+`, `(?:x*y){2,}`, `(a+){30}`) can backtrack catastrophically on a near miss and is
// refused
// when the file loads; any other slow pattern (`(a|a)*`, `.*.*.*.*X`) is stopped by a time limit.
import * as vm from 'node:vm';

/** A match that runs longer than this is stopped: the scenario is bad input. */
export const MATCH_TIMEOUT_MS = 500;
export const MATCH_PATTERN_MAX = 1000;

/** Why a pattern is refused, or null: not a regular expression, too long, or a repeated group that repeats. */
export function patternProblem(src: string): string | null {
  if (src.length > MATCH_PATTERN_MAX) return `longer than ${MATCH_PATTERN_MAX} characters`;
  try {
    new RegExp(src);
  } catch (e) {
    return `not a regular expression: ${(e as Error).message.replace(/^Invalid regular expression: /, '')}`;
  }
  const nested = nestedRepeat(src);
  return nested === null ? null : `'${nested}' repeats a group that itself repeats (catastrophic backtracking)`;
}

/** The first `(...)` quantified by *, +, {n,}, {n>1} or {n,m>1} that holds such a quantifier itself, or null. */
export function nestedRepeat(src: string): string | null {
  const open: { start: number; repeats: boolean }[] = [];
  let closed: { start: number; repeats: boolean } | null = null; // the group just closed (a quantifier may follow)
  for (let i = 0; i < src.length; i++) {
    const c = src[i]!;
    const q = /^(?:[*+]|\{[0-9]+(?:,[0-9]*)?\})\??/.exec(src.slice(i));
    if (q) {
      const m = /^\{([0-9]+)(,?)([0-9]*)\}/.exec(q[0]);
      const repeats = !m || (m[2] ? m[3] === '' || Number(m[3]) > 1 : Number(m[1]) > 1);
      if (repeats && closed?.repeats) return src.slice(closed.start, i + q[0].length);
      if (repeats && open.length) open[open.length - 1]!.repeats = true;
      closed = null;
      i += q[0].length - 1;
      continue;
    }
    closed = null;
    if (c === '\\') i++;
    else if (c === '[') {
      for (i++; i < src.length && src[i] !== ']'; i++) if (src[i] === '\\') i++;
    } else if (c === '(') open.push({ start: i, repeats: false });
    else if (c === ')') {
      closed = open.pop() ?? null;
      if (closed?.repeats && open.length) open[open.length - 1]!.repeats = true;
    }
  }
  return null;
}

const context = vm.createContext({});
const script = new vm.Script('re.test(s)');

/** re.test(s), stopped after MATCH_TIMEOUT_MS (V8 interrupts the backtracking): null when stopped. */
export function boundedTest(re: RegExp, s: string, ms = MATCH_TIMEOUT_MS): boolean | null {
  const ctx = context as { re?: RegExp; s?: string };
  ctx.re = re;
  ctx.s = s;
  try {
    return script.runInContext(context, { timeout: ms }) === true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_SCRIPT_EXECUTION_TIMEOUT') return null;
    throw e;
  } finally {
    ctx.re = undefined;
    ctx.s = undefined;
  }
}
