// Device steps: open a `pinlab devices` model for a process (its fd), call its ops, close it. The model
// runs in-thread against the scenario's machine; closing the fd (or the process exiting or being
// OOM-killed: exit_files()) runs the model's teardown, which releases what it pins. See docs/scenarios.md.
import { z } from 'zod';
import { ScenarioContext, StepKind, Step, fail, FIELD as F, NAME_RE } from './scenario_ctx';
import { DEVICE_MODELS } from '../devices/index';
import type { DeviceModel, DeviceState, OpField } from '../devices/device';
import { PAGE_SIZE } from '../mm/memmap';
import { memparse } from '../mm/cmdline';
import { own } from '../mm/own';
import { Prng } from './prng';

/** An open device: the process whose fd it is, its model and its state. */
export interface OpenDevice {
  proc: string;
  mm: number;
  model: DeviceModel;
  state: DeviceState;
}

/** Op fields that are byte counts or addresses: a number, or a size like 2M / 0x100000. */
const BYTE_FIELDS = new Set(['iova', 'size', 'length', 'len', 'hca_va', 'off', 'offset', 'addr']);

/** A byte count: a whole number >= 0, or memparse syntax ('2M', '0x1000', '16p' for pages); null when neither. */
export function byteValue(v: unknown): number | null {
  if (typeof v === 'number') return Number.isSafeInteger(v) && v >= 0 ? v : null;
  if (typeof v !== 'string') return null;
  if (/^[0-9]+p$/.test(v)) return Number(v.slice(0, -1)) * PAGE_SIZE;
  try {
    const b = memparse('size', v);
    return Number.isSafeInteger(b) ? b : null;
  } catch {
    return null;
  }
}

/** A scenario vaddr: a byte address, or a mapping name with an optional +offset (buf, buf+8K). */
function vaddrSyntax(v: unknown): boolean {
  if (typeof v === 'number') return Number.isSafeInteger(v) && v >= 0;
  if (typeof v !== 'string') return false;
  const mt = /^([A-Za-z_][A-Za-z0-9_]*)(?:\+(.+))?$/.exec(v);
  return mt ? mt[2] === undefined || byteValue(mt[2]) !== null : byteValue(v) !== null;
}

/** The zod schema of one op field in a scenario (the model's OpField, with scenario sizes and addresses). */
function fieldSchema(name: string, f: OpField): z.ZodTypeAny {
  if (Array.isArray(f))
    return z.custom<string>((v) => f.includes(v as string), { message: `expected one of ${f.join(', ')}` });
  if (typeof f === 'object' && 'list' in f) {
    const item = fieldSchema(name, f.list);
    // a list of names may be written as one name (access: local_write)
    return Array.isArray(f.list)
      ? z.union([item, z.array(item)], { errorMap: () => ({ message: `expected one or a list of ${f.list}` }) })
      : z.array(item, { errorMap: () => ({ message: 'expected a list' }) }).max(4096);
  }
  if (typeof f === 'object' && 'record' in f) return recordSchema(f.record);
  switch (f) {
    case 'int':
    case 'nat':
      return BYTE_FIELDS.has(name)
        ? z.custom((v) => byteValue(v) !== null, { message: 'expected a byte count: a number, or a size like 2M' })
        : z.number({ errorMap: () => ({ message: 'expected a number' }) }).int();
    case 'bool':
      return F.bool;
    case 'vaddr':
      return z.custom(vaddrSyntax, { message: 'expected an address: a mapping name, name+offset or a byte address' });
    default:
      return z.string({ errorMap: () => ({ message: 'expected text' }) }).max(200);
  }
}

function recordSchema(fields: Readonly<Record<string, OpField>>): z.AnyZodObject {
  const shape: Record<string, z.ZodTypeAny> = {};
  for (const [k, f] of Object.entries(fields)) shape[k] = fieldSchema(k, f).optional();
  return z
    .object(shape, { errorMap: () => ({ message: 'expected a mapping' }) })
    .strict(`(fields: ${Object.keys(fields).join(', ') || 'none'})`);
}

/**
 * Load-time checks the step schema cannot make alone: `call` names an op of the device `dev` was opened
 * as, and its args fit that op's field table. Returns [step index, path, message] of the first problem.
 */
export function deviceStepProblem(
  steps: readonly Step[],
): { i: number; path: (string | number)[]; msg: string } | null {
  const opened = new Map<string, DeviceModel>();
  for (let i = 0; i < steps.length; i++) {
    const s = steps[i]!;
    if (s.op === 'open') {
      const model = modelNamed(s.device);
      opened.set(String(s.as), model);
    } else if (s.op === 'call' || s.op === 'close') {
      const model = opened.get(String(s.dev));
      if (!model) return { i, path: ['dev'], msg: `no device opened as '${String(s.dev)}' before this step` };
      if (s.op === 'close') continue;
      const fields = own(model.ops, String(s.call));
      if (!fields)
        return {
          i,
          path: ['call'],
          msg: `${model.name} has no op '${String(s.call)}' (ops: ${Object.keys(model.ops).join(', ')})`,
        };
      const r = recordSchema(fields).safeParse(s.args ?? {});
      if (!r.success) {
        const iss = r.error.issues[0]!;
        const msg =
          iss.code === 'unrecognized_keys'
            ? `${s.call}: unknown argument '${iss.keys[0]}' (${Object.keys(fields).join(', ') || 'none'})`
            : iss.message;
        return { i, path: ['args', ...iss.path], msg };
      }
    }
  }
  return null;
}

/** The op to give the model: byte fields as numbers, scenario vaddrs as byte addresses. */
function resolveArgs(ctx: ScenarioContext, fields: Readonly<Record<string, OpField>>, args: Record<string, unknown>) {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(args)) out[k] = resolveValue(ctx, k, fields[k]!, v);
  return out;
}

function resolveValue(ctx: ScenarioContext, name: string, f: OpField, v: unknown): unknown {
  if (typeof f === 'object' && !Array.isArray(f) && 'list' in f) {
    const list = Array.isArray(v) ? v : [v];
    return list.map((x) => resolveValue(ctx, name, f.list, x));
  }
  if (typeof f === 'object' && !Array.isArray(f) && 'record' in f)
    return resolveArgs(ctx, f.record, v as Record<string, unknown>);
  if ((f === 'int' || f === 'nat') && BYTE_FIELDS.has(name)) return byteValue(v);
  if (f === 'vaddr') {
    if (typeof v === 'number') return v;
    const mt = /^([A-Za-z_][A-Za-z0-9_]*)(?:\+(.+))?$/.exec(String(v));
    if (!mt) return byteValue(v);
    const map = ctx.maps.get(mt[1]!);
    if (!map) fail('args', `unknown mapping '${mt[1]}' (name one with 'as:' on an mmap step)`);
    return map.vpn * PAGE_SIZE + (mt[2] === undefined ? 0 : byteValue(mt[2])!);
  }
  return v;
}

function openDevice(ctx: ScenarioContext, s: Step): OpenDevice {
  const d = ctx.devs.get(String(s.dev));
  if (!d) fail('dev', `no open device named '${String(s.dev)}'`);
  return d;
}

/** Close every device a process holds open: its fds closing at exit (exit_files()). */
export function closeProcDevices(ctx: ScenarioContext, procName: string): number {
  let n = 0;
  for (const [name, d] of ctx.devs) {
    if (d.proc !== procName) continue;
    const r = d.state.teardown();
    n += Math.max(0, r.rc);
    ctx.devs.delete(name);
  }
  return n;
}

/** Other spellings of a model's name (io-uring-fixed, as the probe's op names read). */
const DEVICE_ALIASES: Record<string, string> = { 'io-uring-fixed': 'io_uring-fixed' };
const DEVICE_NAMES = [...Object.keys(DEVICE_MODELS), ...Object.keys(DEVICE_ALIASES)] as [string, ...string[]];

/** The registered name of a model a step's `device:` names (an alias: its model's name). */
export function deviceModelName(name: string): string {
  return own(DEVICE_ALIASES, name) ?? name;
}

/** The model a step's `device:` names (the schema has checked it is one). */
function modelNamed(name: unknown): DeviceModel {
  const n = String(name);
  return own(DEVICE_MODELS, own(DEVICE_ALIASES, n) ?? n)!;
}

export const DEVICE_STEPS: Record<string, StepKind> = {
  open: {
    fields: { proc: F.proc, device: F.enum(DEVICE_NAMES), as: F.name },
    required: ['proc', 'device', 'as'],
    run(ctx, s) {
      const mm = ctx.procs.get(String(s.proc));
      if (mm === undefined) fail('proc', `unknown process '${String(s.proc)}'`);
      const as = String(s.as);
      if (!NAME_RE.test(as)) fail('as', `bad handle name '${as}'`);
      if (ctx.devs.has(as)) fail('as', `device '${as}' is already open (close it first)`);
      const model = modelNamed(s.device);
      // the model's traffic choices: seeded from the step number, so a scenario replays exactly
      const rng = new Prng(ctx.step * 0x9e3779b1);
      const state = model.create({
        m: ctx.m,
        mm,
        name: `${model.name}/${as}`,
        bugs: new Set(),
        params: ctx.deviceParams,
        rand: (n) => rng.below(n),
        yieldPoint: () => {},
        trace: () => {},
      });
      ctx.devs.set(as, { proc: String(s.proc), mm, model, state });
      ctx.devProcs.set(as, String(s.proc));
      return { rc: 0, detail: `${model.name} opened as ${as}` };
    },
  },
  call: {
    fields: {
      dev: F.name,
      call: F.name,
      args: z.record(z.unknown(), { errorMap: () => ({ message: "expected a mapping of the op's fields" }) }),
    },
    required: ['dev', 'call'],
    run(ctx, s) {
      const d = openDevice(ctx, s);
      const fields = own(d.model.ops, String(s.call));
      if (!fields) fail('call', `${d.model.name} has no op '${String(s.call)}'`);
      const op = { op: String(s.call), ...resolveArgs(ctx, fields, (s.args ?? {}) as Record<string, unknown>) };
      const r = d.state.step(op);
      if (r.violation) return { rc: r.rc, detail: `${r.detail ?? ''}; VIOLATION: ${r.violation}`, bad: true };
      return { rc: r.rc, detail: r.detail ?? '' };
    },
  },
  close: {
    fields: { dev: F.name },
    required: ['dev'],
    run(ctx, s) {
      const d = openDevice(ctx, s);
      ctx.devs.delete(String(s.dev));
      // the fd's release: what the model's teardown unpins; close(2) itself returns 0
      const r = d.state.teardown();
      return { rc: r.rc < 0 ? r.rc : 0, detail: r.detail ?? '' };
    },
  },
};

/** The process a device step acts for (call/close name a device, whose process it is). */
export function deviceStepProc(ctx: ScenarioContext, s: Step): string | undefined {
  if (s.op !== 'call' && s.op !== 'close') return undefined;
  return ctx.devs.get(String(s.dev))?.proc ?? ctx.devProcs.get(String(s.dev));
}
