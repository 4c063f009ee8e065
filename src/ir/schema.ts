/**
 * @file The JSON model format (docs/model-format.md), validated with zod, and its loader: JSON text
 * -> Model. Every error names the JSON path and, for nodes, the node's name, e.g.
 * `nodes[3].inputs[1]: unknown value "h2"`; none is a stack trace. Nodes may be listed in any
 * order; they are sorted topologically and a cycle is reported with its path. Composite ops
 * (softmax, layernorm, attention, pooling, …) are decomposed into primitives by the builder.
 */
import { z } from 'zod';
import { DTYPES, fmtType, typeEq } from './dtype.js';
import { GraphBuilder, convAttrs, type RecurrentWeights, type Value } from './builder.js';
import { AdjointError, ModelFormatError } from './errors.js';
import { MODEL_FORMAT_VERSION, type Model, type OptimizerConfig } from './model.js';
import { OPS, UNARY_OPS, BINARY_OPS, COMPARE_OPS, REDUCE_OPS, type Op, type SourceOp } from './ops.js';

const MAX_NAME = 256;
/**
 * Value names: letters, digits and `_ . : / -`, optionally after a leading `%` (the serializer's
 * anonymous names). Names appear in printed IR, error messages and artifact manifests, so they are
 * kept to one printable token; they never reach WGSL.
 */
export const NAME_PATTERN = /^%?[A-Za-z0-9_][A-Za-z0-9_.:/-]*$/;
const name = z
  .string()
  .min(1, 'must be a non-empty string')
  .max(MAX_NAME, `must be at most ${MAX_NAME} characters`)
  .regex(NAME_PATTERN, 'is not a valid name (use letters, digits and _ . : / -, optionally after a leading %)');
const modelName = z
  .string()
  .min(1, 'must be a non-empty string')
  .max(MAX_NAME, `must be at most ${MAX_NAME} characters`)
  .regex(/^[^\u0000-\u001f\u007f]*$/, 'is not a valid model name (control characters are not allowed)');
const dim = z.number().int('must be an integer').min(1, 'must be >= 1').max(2 ** 31 - 1, 'must be < 2^31');
const shape = z.array(dim).max(8, 'rank must be at most 8');
const dtype = z.enum(DTYPES);
const int = z.number().int('must be an integer');
const nat = int.min(0, 'must be >= 0');
const pos = int.min(1, 'must be >= 1');
const finite = z.number().refine(Number.isFinite, 'must be a finite number');
const positive = finite.refine((v) => v > 0, 'must be > 0');
const nonNegative = finite.refine((v) => v >= 0, 'must be >= 0');
/** A decay rate in [0, 1). */
const rate = finite.refine((v) => v >= 0 && v < 1, 'must be >= 0 and < 1');
const pair = (p: z.ZodNumber, what: string) =>
  z
    .union([p, z.tuple([p, p])], { error: `must be ${what} or a pair [h, w] of them` })
    .transform((v): [number, number] => (typeof v === 'number' ? [v, v] : v));

const init = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('zeros') }),
  z.strictObject({ kind: z.literal('ones') }),
  z.strictObject({ kind: z.literal('constant'), value: finite }),
  z
    .strictObject({ kind: z.literal('uniform'), low: finite, high: finite })
    .refine((u) => u.low <= u.high, { message: 'must have low <= high', path: ['high'] }),
  z.strictObject({ kind: z.literal('normal'), std: nonNegative }),
  z.strictObject({ kind: z.literal('glorot_uniform') }),
  z.strictObject({ kind: z.literal('he_normal') }),
  z.strictObject({ kind: z.literal('seed') }),
]);

// ---- issue 16: the optimizer recipe (schedule, clipping, accumulation) that every kind accepts ----
const fraction = finite.refine((v) => v >= 0 && v <= 1, 'must be >= 0 and <= 1');
const schedule = z.strictObject({
  warmupSteps: nat.default(0),
  warmupInit: fraction.default(0),
  decay: z
    .discriminatedUnion('kind', [
      z.strictObject({ kind: z.literal('cosine'), steps: pos, alpha: fraction.default(0) }),
      z.strictObject({ kind: z.literal('step'), every: pos, gamma: positive.default(0.1) }),
    ])
    .optional(),
});
const recipe = { schedule: schedule.optional(), clipNorm: positive.optional(), accumulate: pos.optional() };
// ---- end of the recipe ----

const optimizer = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('sgd'),
    lr: positive,
    momentum: rate.default(0),
    weightDecay: nonNegative.default(0),
    ...recipe,
  }),
  z.strictObject({
    kind: z.literal('adam'),
    lr: positive,
    beta1: rate.default(0.9),
    beta2: rate.default(0.999),
    eps: positive.default(1e-8),
    weightDecay: nonNegative.default(0),
    ...recipe,
  }),
  // issue 16: RMSprop and Adagrad, PyTorch's defaults
  z.strictObject({
    kind: z.literal('rmsprop'),
    lr: positive,
    alpha: rate.default(0.99),
    eps: positive.default(1e-8),
    momentum: rate.default(0),
    weightDecay: nonNegative.default(0),
    ...recipe,
  }),
  z.strictObject({
    kind: z.literal('adagrad'),
    lr: positive,
    eps: positive.default(1e-10),
    initialAccumulator: nonNegative.default(0),
    weightDecay: nonNegative.default(0),
    ...recipe,
  }),
]);

const node = z.strictObject({
  name: name.optional(),
  op: z.string(),
  inputs: z.array(name).default([]),
  attrs: z.record(z.string(), z.unknown()).default({}),
});

export const modelSchema = z.strictObject({
  version: z.literal(MODEL_FORMAT_VERSION),
  name: modelName.default('model'),
  inputs: z.array(z.strictObject({ name, shape, dtype: dtype.default('f32') })).default([]),
  params: z.array(z.strictObject({
    name, shape,
    init: init.refine((i) => i.kind !== 'seed', 'the "seed" init is for i32 state only').default({ kind: 'glorot_uniform' }),
  })).default([]),
  state: z.array(z.strictObject({ name, shape, dtype: dtype.default('f32'), init: init.default({ kind: 'zeros' }) })
    .refine((x) => x.init.kind !== 'seed' || x.dtype === 'i32', { message: 'the "seed" init needs dtype "i32"', path: ['init'] })).default([]),
  nodes: z.array(node),
  outputs: z.record(name, name),
  updates: z.array(z.strictObject({ target: name, value: name })).default([]),
  loss: name.optional(),
  optimizer: optimizer.optional(),
});
export type ModelJson = z.input<typeof modelSchema>;

// ---- per-op attributes as written in JSON, and how each op is built --------------------------

const axes = z.union([int, z.array(int)], { error: 'must be an integer or an array of integers' });
const conv = {
  stride: pair(pos, 'an integer >= 1').default([1, 1]),
  padding: pair(nat, 'an integer >= 0').default([0, 0]),
  dilation: pair(pos, 'an integer >= 1').default([1, 1]),
};
const none = z.strictObject({});

interface OpSpec<S extends z.ZodType> {
  readonly attrs: S;
  /** Number of inputs, or the range [min, max] of it. */
  readonly arity: number | readonly [number, number];
  readonly build: (b: GraphBuilder, xs: readonly Value[], a: z.output<S>) => Value;
}
const spec = <S extends z.ZodType>(s: OpSpec<S>): OpSpec<S> => s;
const at = (xs: readonly Value[], i: number): Value => xs[i]!;

const elementwise = Object.fromEntries(
  [...UNARY_OPS, ...BINARY_OPS, ...COMPARE_OPS, 'where' as const, 'stop_gradient' as const].map((op) => [
    op,
    spec({ attrs: none, arity: op === 'where' ? 3 : (UNARY_OPS as readonly string[]).includes(op) || op === 'stop_gradient' ? 1 : 2, build: (b, xs) => b.add(op, {}, xs) }),
  ]),
) as Record<(typeof UNARY_OPS)[number] | (typeof BINARY_OPS)[number] | (typeof COMPARE_OPS)[number] | 'where' | 'stop_gradient', OpSpec<typeof none>>;

const reduceSpec = z.strictObject({ axes: axes.optional(), keepdims: z.boolean().default(false) });
const reduces = Object.fromEntries(
  REDUCE_OPS.map((op) => [op, spec({ attrs: reduceSpec, arity: 1, build: (b, xs, a) => b.reduce(op, at(xs, 0), a.axes, a.keepdims) })]),
) as Record<(typeof REDUCE_OPS)[number], OpSpec<typeof reduceSpec>>;

const poolSpec = z.strictObject({
  kernel: pair(pos, 'an integer >= 1'),
  stride: pair(pos, 'an integer >= 1').optional(),
  padding: pair(nat, 'an integer >= 0').default([0, 0]),
});

/** lstm and gru operands after x: weight_ih, weight_hh, then the optional biases (issue 16). */
const recurrentWeights = (xs: readonly Value[]): RecurrentWeights => ({
  weightIh: at(xs, 1), weightHh: at(xs, 2), ...(xs[3] ? { biasIh: xs[3] } : {}), ...(xs[4] ? { biasHh: xs[4] } : {}),
});

/** Every primitive (but the sources that have their own sections) and every composite. */
const OP_SPECS = {
  ...elementwise,
  ...reduces,
  full: spec({ attrs: z.strictObject({ value: finite, shape: shape.default([]), dtype: dtype.default('f32') }), arity: 0, build: (b, _, a) => b.full(a.value, a.shape, a.dtype) }),
  iota: spec({ attrs: z.strictObject({ shape, axis: int, dtype: dtype.default('i32') }), arity: 0, build: (b, _, a) => b.iota(a.shape, a.axis, a.dtype) }),
  cast: spec({ attrs: z.strictObject({ dtype }), arity: 1, build: (b, xs, a) => b.cast(at(xs, 0), a.dtype) }),
  reshape: spec({ attrs: z.strictObject({ shape }), arity: 1, build: (b, xs, a) => b.reshape(at(xs, 0), a.shape) }),
  transpose: spec({ attrs: z.strictObject({ perm: z.array(nat).optional() }), arity: 1, build: (b, xs, a) => b.transpose(at(xs, 0), a.perm) }),
  broadcast_to: spec({ attrs: z.strictObject({ shape }), arity: 1, build: (b, xs, a) => b.broadcastTo(at(xs, 0), a.shape) }),
  slice: spec({
    attrs: z.strictObject({ starts: z.array(nat), ends: z.array(nat), steps: z.array(pos).optional() }),
    arity: 1,
    build: (b, xs, a) => b.slice(at(xs, 0), a.starts, a.ends, a.steps),
  }),
  pad: spec({
    attrs: z.strictObject({ low: z.array(nat), high: z.array(nat), interior: z.array(nat).optional(), value: finite.default(0) }),
    arity: 1,
    build: (b, xs, a) => b.pad(at(xs, 0), a.low, a.high, a.value, a.interior),
  }),
  concat: spec({ attrs: z.strictObject({ axis: int }), arity: [1, Infinity], build: (b, xs, a) => b.concat(xs, a.axis) }),
  matmul: spec({ attrs: none, arity: 2, build: (b, xs) => b.matmul(at(xs, 0), at(xs, 1)) }),
  gather: spec({ attrs: none, arity: 2, build: (b, xs) => b.gather(at(xs, 0), at(xs, 1)) }),
  scatter_add: spec({ attrs: z.strictObject({ rows: pos }), arity: 2, build: (b, xs, a) => b.scatterAdd(at(xs, 0), at(xs, 1), a.rows) }),
  one_hot: spec({ attrs: z.strictObject({ depth: pos }), arity: 1, build: (b, xs, a) => b.oneHot(at(xs, 0), a.depth) }),
  conv2d: spec({ attrs: z.strictObject(conv), arity: 2, build: (b, xs, a) => b.conv2d(at(xs, 0), at(xs, 1), a) }),
  conv2d_input_grad: spec({
    attrs: z.strictObject({ ...conv, size: pair(pos, 'an integer >= 1') }),
    arity: 2,
    build: (b, xs, a) => b.add('conv2d_input_grad', { ...convAttrs(a), size: a.size }, xs),
  }),
  conv2d_filter_grad: spec({
    attrs: z.strictObject({ ...conv, kernel: pair(pos, 'an integer >= 1') }),
    arity: 2,
    build: (b, xs, a) => b.add('conv2d_filter_grad', { ...convAttrs(a), kernel: a.kernel }, xs),
  }),
  // ---- composites: decomposed into primitives by the builder ----
  linear: spec({ attrs: none, arity: [2, 3], build: (b, xs) => b.linear(at(xs, 0), at(xs, 1), xs[2]) }),
  square: spec({ attrs: none, arity: 1, build: (b, xs) => b.square(at(xs, 0)) }),
  softmax: spec({ attrs: z.strictObject({ axis: int.default(-1) }), arity: 1, build: (b, xs, a) => b.softmax(at(xs, 0), a.axis) }),
  log_softmax: spec({ attrs: z.strictObject({ axis: int.default(-1) }), arity: 1, build: (b, xs, a) => b.logSoftmax(at(xs, 0), a.axis) }),
  softmax_cross_entropy: spec({ attrs: none, arity: 2, build: (b, xs) => b.softmaxCrossEntropy(at(xs, 0), at(xs, 1)) }),
  mse: spec({ attrs: none, arity: 2, build: (b, xs) => b.mse(at(xs, 0), at(xs, 1)) }),
  layernorm: spec({ attrs: z.strictObject({ eps: nonNegative.default(1e-5) }), arity: [1, 3], build: (b, xs, a) => b.layerNorm(at(xs, 0), xs[1], xs[2], a.eps) }),
  gelu: spec({ attrs: none, arity: 1, build: (b, xs) => b.gelu(at(xs, 0)) }),
  attention: spec({ attrs: z.strictObject({ causal: z.boolean().default(false) }), arity: 3, build: (b, xs, a) => b.attention(at(xs, 0), at(xs, 1), at(xs, 2), a.causal) }),
  max_pool2d: spec({ attrs: poolSpec, arity: 1, build: (b, xs, a) => b.maxPool2d(at(xs, 0), a) }),
  avg_pool2d: spec({ attrs: poolSpec, arity: 1, build: (b, xs, a) => b.avgPool2d(at(xs, 0), a) }),
  // ---- issue 16: random numbers, train/eval mode, dropout, batch normalization ----
  random_uniform: spec({
    attrs: z.strictObject({ shape, stream: nat.max(2 ** 31 - 1, 'must be < 2^31') }),
    arity: 2,
    build: (b, xs, a) => b.add('random_uniform', { shape: a.shape, stream: a.stream }, xs),
  }),
  is_training: spec({ attrs: none, arity: 0, build: (b) => b.isTraining() }),
  dropout: spec({ attrs: z.strictObject({ rate }), arity: 1, build: (b, xs, a) => b.dropout(at(xs, 0), a.rate) }),
  batch_norm: spec({
    attrs: z.strictObject({
      momentum: finite.refine((v) => v >= 0 && v <= 1, 'must be >= 0 and <= 1').default(0.1),
      eps: nonNegative.default(1e-5),
    }),
    arity: 5,
    build: (b, xs, a) => b.batchNorm(at(xs, 0), at(xs, 1), at(xs, 2), at(xs, 3), at(xs, 4), a),
  }),
  // ---- end issue 16 ----
  // ---- recurrent layers (issue 16): inputs x [B,T,I], weight_ih, weight_hh[, bias_ih[, bias_hh]] -> y [B,T,H]
  lstm: spec({ attrs: none, arity: [3, 5], build: (b, xs) => b.lstm(at(xs, 0), recurrentWeights(xs)).y }),
  gru: spec({ attrs: none, arity: [3, 5], build: (b, xs) => b.gru(at(xs, 0), recurrentWeights(xs)).y }),
};

/** Every primitive but the three source kinds must be writable as a node: checked by the compiler. */
type MissingPrimitive = Exclude<Exclude<Op, 'input' | 'param' | 'state'>, keyof typeof OP_SPECS>;
const _allPrimitivesCovered: MissingPrimitive extends never ? true : MissingPrimitive = true;
void _allPrimitivesCovered;

export const JSON_OPS: readonly string[] = Object.keys(OP_SPECS);
export const COMPOSITE_OPS: readonly string[] = JSON_OPS.filter((o) => !(OPS as readonly string[]).includes(o));
export type SourceKind = Extract<SourceOp, 'input' | 'param' | 'state'>;

// ---- loading -------------------------------------------------------------------------------

/** `['nodes', 3, 'inputs', 1]` -> `nodes[3].inputs[1]`; keys that are not identifiers are quoted. */
export function fmtPath(path: readonly PropertyKey[]): string {
  let s = '';
  for (const p of path) {
    if (typeof p === 'number') s += `[${p}]`;
    else if (typeof p === 'string' && !/^[A-Za-z_$][\w$]*$/.test(p)) s += `[${JSON.stringify(p)}]`;
    else s += s ? `.${String(p)}` : String(p);
  }
  return s || '(root)';
}

/** A short one-line rendering of a JSON value for error messages. */
function fmtValue(v: unknown): string {
  if (v === null || typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (typeof v === 'string') {
    const q = JSON.stringify(v);
    return q.length > 48 ? `${q.slice(0, 44)}..."` : q;
  }
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : typeof v;
}

const EXPECTED: Readonly<Record<string, string>> = {
  int: 'an integer', number: 'a number', string: 'a string', boolean: 'true or false', array: 'an array',
  tuple: 'an array', object: 'an object', record: 'an object',
};

const oneOf = (xs: readonly unknown[]): string => `one of ${xs.map((x) => JSON.stringify(x)).join(', ')}`;

/** One zod issue as `path: what is wrong`, naming the offending value where that helps. */
function issueMessage(issue: z.core.$ZodIssue, prefix: readonly PropertyKey[], schema?: z.ZodType): string {
  const path = [...prefix, ...issue.path];
  const got = 'input' in issue && issue.input !== undefined ? issue.input : undefined;
  let msg: string;
  switch (issue.code) {
    case 'invalid_type':
      // zod refuses non-finite numbers (1e400 parses to Infinity) as a wrong type: say what is wrong.
      if (issue.expected === 'number' && typeof got === 'number') msg = `must be a finite number, got ${got}`;
      else msg = got === undefined ? `missing (expected ${EXPECTED[issue.expected] ?? issue.expected})` : `expected ${EXPECTED[issue.expected] ?? issue.expected}, got ${fmtValue(got)}`;
      break;
    case 'invalid_value':
      msg = got === undefined ? `missing (expected ${oneOf(issue.values)})` : `must be ${oneOf(issue.values)}, got ${fmtValue(got)}`;
      break;
    case 'unrecognized_keys': {
      msg = `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}`;
      if (schema instanceof z.ZodObject && issue.path.length === 0) {
        const keys = Object.keys(schema.shape);
        msg += keys.length ? ` (allowed: ${keys.join(', ')})` : ' (it takes no attributes)';
      }
      break;
    }
    case 'invalid_union': {
      const disc = 'discriminator' in issue ? issue.discriminator : undefined;
      if (disc !== undefined && 'options' in issue && Array.isArray(issue.options)) {
        const v = got !== null && typeof got === 'object' ? (got as Record<string, unknown>)[disc] : undefined;
        msg = v === undefined ? `missing (expected ${oneOf(issue.options)})` : `must be ${oneOf(issue.options)}, got ${fmtValue(v)}`;
      } else {
        msg = got === undefined ? `missing (${issue.message})` : `${issue.message}, got ${fmtValue(got)}`;
      }
      break;
    }
    case 'invalid_key': {
      const inner = issue.issues[0];
      return `${fmtPath(path.slice(0, -1))}: key ${fmtValue(issue.input)} ${inner?.message ?? 'is not allowed'}`;
    }
    case 'invalid_format':
      msg = `${fmtValue(got)} ${issue.message}`;
      break;
    case 'too_small':
    case 'too_big':
      // zod's own messages ("Too small: …") are replaced; the schema's custom ones are kept.
      msg = !issue.message.startsWith('Too ') ? issue.message : `must have ${issue.code === 'too_small' ? 'at least' : 'at most'} ${String(issue.code === 'too_small' ? issue.minimum : issue.maximum)} ${issue.origin === 'array' ? 'entries' : issue.origin === 'string' ? 'characters' : ''}`.trimEnd();
      if (issue.origin === 'number' && typeof got === 'number') msg += `, got ${got}`;
      else if (issue.origin === 'array' && Array.isArray(got)) msg += `, got ${got.length}`;
      break;
    case 'custom':
      msg = typeof got === 'number' ? `${issue.message}, got ${got}` : issue.message;
      break;
    default:
      msg = issue.message;
  }
  return `${fmtPath(path)}: ${msg}`;
}

function zodMessage(err: z.ZodError, prefix: readonly PropertyKey[] = [], schema?: z.ZodType): string {
  const issue = err.issues[0];
  return issue ? issueMessage(issue, prefix, schema) : `${fmtPath(prefix)}: invalid`;
}

/** The 1-based line and column of a character offset. */
function lineCol(text: string, pos: number): string {
  const before = text.slice(0, pos);
  const line = before.split('\n').length;
  return `line ${line}, column ${pos - before.lastIndexOf('\n')}`;
}

/**
 * The offset of the character V8 reports as "Unexpected token" (its message quotes the text but
 * gives no position): the shortest prefix that fails the same way ends just after it, and every
 * shorter prefix fails only for ending early, so a binary search finds it.
 */
function unexpectedTokenOffset(text: string): number {
  const bad = (len: number): boolean => {
    try {
      JSON.parse(text.slice(0, len));
      return false;
    } catch (e) {
      return e instanceof Error && e.message.startsWith('Unexpected token');
    }
  };
  let [lo, hi] = [0, text.length]; // bad(hi) holds, bad(lo) does not
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (bad(mid)) hi = mid;
    else lo = mid;
  }
  return hi - 1;
}

/** JSON.parse with a one-line error that gives the line and column. */
export function parseJsonText(text: string, where = 'model'): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    const msg = (e instanceof Error ? e.message : String(e)).replace(/\s+/g, ' ');
    if (text.trim() === '') throw new ModelFormatError(`${where}: invalid JSON: the file is empty`);
    let pos: number | undefined;
    let what: string;
    if (msg.startsWith('Unexpected end of JSON input')) {
      pos = text.length;
      what = 'unexpected end of input';
    } else if (msg.startsWith('Unexpected token')) {
      pos = unexpectedTokenOffset(text);
      what = `unexpected character ${JSON.stringify(text[pos] ?? '')}`;
    } else {
      const m = / in JSON at position (\d+)/.exec(msg);
      pos = m ? Number(m[1]) : undefined;
      what = msg.replace(/ in JSON at position \d+.*$/, '');
      what = what.charAt(0).toLowerCase() + what.slice(1);
    }
    if (pos !== undefined) {
      const before = text.slice(0, pos).trimEnd();
      const next = text[pos];
      if (before.endsWith(',') && (next === '}' || next === ']')) {
        pos = before.length - 1;
        what = `trailing comma before "${next}"`;
      } else if (pos >= text.length) {
        what += ' (is the file truncated?)';
      }
    }
    throw new ModelFormatError(`${where}: invalid JSON${pos !== undefined ? ` at ${lineCol(text, pos)}` : ''}: ${what}`);
  }
}

/** Rejects `__proto__` keys anywhere: JSON.parse keeps them as own keys, but copying them into a
 * fresh object (as validation does) would replace its prototype instead. */
function rejectProtoKeys(json: unknown): void {
  const stack: { v: unknown; path: PropertyKey[] }[] = [{ v: json, path: [] }];
  while (stack.length) {
    const { v, path } = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (Object.hasOwn(v, '__proto__')) throw new ModelFormatError(`${fmtPath(path)}: the key "__proto__" is not allowed`);
    for (const [k, x] of Object.entries(v)) {
      if (x !== null && typeof x === 'object') stack.push({ v: x, path: [...path, Array.isArray(v) ? Number(k) : k] });
    }
  }
}

/** `nodes[3] ("h")`, or `nodes[3]` for an unnamed node. */
const describeNode = (i: number, n: { name?: string | undefined }) =>
  `nodes[${i}]${n.name !== undefined ? ` (${JSON.stringify(n.name)})` : ''}`;

const fmtArity = (a: number | readonly [number, number]): string =>
  typeof a === 'number' ? `${a} input${a === 1 ? '' : 's'}` : a[1] === Infinity ? `${a[0]} or more inputs` : `${a[0]} ${a[1] === a[0] + 1 ? 'or' : 'to'} ${a[1]} inputs`;

/**
 * The message of a shape error raised while building `op` from a model file, without the builder's
 * own value names (which the file never mentions): the rule's message with a leading op name
 * dropped, or for a composite, the primitive that failed inside it.
 */
function shapeDetail(e: AdjointError, op: string): string {
  const cause = e.cause instanceof AdjointError ? e.cause : undefined;
  const inner = cause ? /^([a-z0-9_]+)[ :]/.exec(e.message)?.[1] : undefined;
  const strip = (msg: string, name: string) => msg.replace(new RegExp(`^(${name}:? |this op )`), '');
  if (!cause || inner === undefined) return strip(e.message, op);
  return inner === op ? strip(cause.message, op) : `${inner}: ${strip(cause.message, inner)}`;
}

/** Validates a parsed JSON value and builds the model. */
export function modelFromJson(json: unknown): Model {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new ModelFormatError(`(root): expected an object, got ${fmtValue(json)}`);
  }
  if (!Object.hasOwn(json, 'version')) {
    throw new ModelFormatError(`version: missing (this compiler reads model format version ${MODEL_FORMAT_VERSION})`);
  }
  const version = (json as { version?: unknown }).version;
  if (version !== MODEL_FORMAT_VERSION) {
    throw new ModelFormatError(`version: ${fmtValue(version)} is not supported (this compiler reads model format version ${MODEL_FORMAT_VERSION})`);
  }
  rejectProtoKeys(json);
  const parsed = modelSchema.safeParse(json, { reportInput: true });
  if (!parsed.success) throw new ModelFormatError(zodMessage(parsed.error, [], modelSchema));
  const m = parsed.data;
  const b = new GraphBuilder();
  const values = new Map<string, Value>();
  const definedAt = new Map<string, string>();
  const define = (nm: string, where: string, v: () => Value): void => {
    const prev = definedAt.get(nm);
    if (prev !== undefined) throw new ModelFormatError(`${where}.name: "${nm}" is already defined at ${prev}`);
    definedAt.set(nm, where);
    values.set(nm, v());
  };
  /** Runs a builder step; a compiler error becomes a ModelFormatError at `where` about `what`. */
  const guard = <T>(where: string, op: string, what: string, f: () => T): T => {
    try {
      return f();
    } catch (e) {
      if (e instanceof ModelFormatError) throw e;
      if (e instanceof AdjointError) throw new ModelFormatError(`${where}: ${what}${what ? ': ' : ''}${shapeDetail(e, op)}`);
      throw e;
    }
  };
  m.inputs.forEach((x, i) => guard(`inputs[${i}] ("${x.name}")`, 'input', '', () => define(x.name, `inputs[${i}]`, () => b.input(x.name, x.shape, x.dtype))));
  m.params.forEach((x, i) => guard(`params[${i}] ("${x.name}")`, 'param', '', () => define(x.name, `params[${i}]`, () => b.param(x.name, x.shape, x.init))));
  m.state.forEach((x, i) => guard(`state[${i}] ("${x.name}")`, 'state', '', () => define(x.name, `state[${i}]`, () => b.state(x.name, x.shape, x.init, x.dtype))));
  // issue 16: the random number key's state comes right after the declared state, so a model
  // written back by modelToJson (which lists it there) loads as the same graph.
  if (m.nodes.some((n) => n.op === 'dropout')) guard('nodes', 'dropout', '', () => b.rngKey());

  // Topological order over the node list, so nodes may be written in any order.
  const nodeByName = new Map<string, number>();
  m.nodes.forEach((n, i) => {
    if (n.name === undefined) return;
    const prev = definedAt.get(n.name) ?? (nodeByName.has(n.name) ? `nodes[${nodeByName.get(n.name)}]` : undefined);
    if (prev !== undefined) throw new ModelFormatError(`nodes[${i}].name: "${n.name}" is already defined at ${prev}`);
    nodeByName.set(n.name, i);
  });
  m.nodes.forEach((n, i) => {
    n.inputs.forEach((x, j) => {
      if (!values.has(x) && !nodeByName.has(x)) throw new ModelFormatError(`nodes[${i}].inputs[${j}]: unknown value "${x}"`);
    });
  });
  const order: number[] = [];
  const mark = new Uint8Array(m.nodes.length); // 0 new, 1 on stack, 2 done
  const visit = (start: number): void => {
    // Iterative DFS so a deep chain cannot overflow the stack.
    const stack: { i: number; next: number }[] = [{ i: start, next: 0 }];
    mark[start] = 1;
    while (stack.length) {
      const top = stack[stack.length - 1]!;
      const n = m.nodes[top.i]!;
      if (top.next < n.inputs.length) {
        const dep = nodeByName.get(n.inputs[top.next++]!);
        if (dep === undefined || mark[dep] === 2) continue;
        if (mark[dep] === 1) {
          const cyc = stack.slice(stack.findIndex((s) => s.i === dep)).map((s) => `nodes[${s.i}] "${m.nodes[s.i]!.name}"`);
          throw new ModelFormatError(`nodes[${dep}]: cycle: ${[...cyc, `nodes[${dep}] "${m.nodes[dep]!.name}"`].join(' reads ')}`);
        }
        mark[dep] = 1;
        stack.push({ i: dep, next: 0 });
      } else {
        mark[top.i] = 2;
        order.push(top.i);
        stack.pop();
      }
    }
  };
  m.nodes.forEach((_, i) => mark[i] === 0 && visit(i));

  for (const i of order) {
    const n = m.nodes[i]!;
    const where = describeNode(i, n);
    const s = Object.hasOwn(OP_SPECS, n.op) ? (OP_SPECS as Record<string, OpSpec<z.ZodType>>)[n.op] : undefined;
    if (s === undefined) {
      const section = n.op === 'input' ? 'inputs' : n.op === 'param' ? 'params' : n.op === 'state' ? 'state' : undefined;
      if (section) throw new ModelFormatError(`nodes[${i}].op: "${n.op}" is not a node op; declare it in the top-level "${section}" list`);
      throw new ModelFormatError(`nodes[${i}].op: unknown op ${fmtValue(n.op)}${suggest(n.op)}`);
    }
    const [lo, hi] = typeof s.arity === 'number' ? [s.arity, s.arity] : s.arity;
    if (n.inputs.length < lo || n.inputs.length > hi) {
      throw new ModelFormatError(`nodes[${i}].inputs: ${n.op} takes ${fmtArity(s.arity)}, got ${n.inputs.length}`);
    }
    const attrs = s.attrs.safeParse(n.attrs, { reportInput: true });
    if (!attrs.success) throw new ModelFormatError(zodMessage(attrs.error, ['nodes', i, 'attrs'], s.attrs));
    const xs = n.inputs.map((x) => values.get(x)!);
    const args = n.inputs.map((x, j) => `${x}:${fmtType(xs[j]!.type)}`);
    const v = guard(where, n.op, [n.op, ...args].join(' '), () => s.build(b, xs, attrs.data));
    if (n.name !== undefined) {
      if (!n.name.startsWith('%')) b.label(v, n.name);
      values.set(n.name, v);
      definedAt.set(n.name, `nodes[${i}]`);
    }
  }
  const ref = (x: string, where: string): Value => {
    const v = values.get(x);
    if (!v) throw new ModelFormatError(`${where}: unknown value "${x}"`);
    return v;
  };
  for (const [k, x] of Object.entries(m.outputs)) b.output(k, ref(x, fmtPath(['outputs', k])));
  const updated = new Map<string, number>();
  m.updates.forEach((u, i) => {
    const t = values.get(u.target);
    const tn = t && b.build().nodes[t.id];
    if (!tn || (tn.op !== 'param' && tn.op !== 'state')) throw new ModelFormatError(`updates[${i}].target: "${u.target}" is not a param or state`);
    const prev = updated.get(u.target);
    if (prev !== undefined) throw new ModelFormatError(`updates[${i}].target: "${u.target}" is already updated by updates[${prev}]`);
    updated.set(u.target, i);
    const v = ref(u.value, `updates[${i}].value`);
    if (!typeEq(v.type, tn.type)) {
      throw new ModelFormatError(`updates[${i}]: "${u.value}" is ${fmtType(v.type)} but ${tn.op} "${u.target}" is ${fmtType(tn.type)}`);
    }
    b.update(u.target, v);
  });
  if (m.loss !== undefined) {
    const l = Object.hasOwn(m.outputs, m.loss) ? values.get(m.outputs[m.loss]!) : undefined;
    if (!l) throw new ModelFormatError(`loss: "${m.loss}" is not one of the outputs`);
    if (l.type.shape.length !== 0 || l.type.dtype !== 'f32') throw new ModelFormatError(`loss: "${m.loss}" must be an f32 scalar, got ${fmtType(l.type)}`);
  }
  const opt = m.optimizer as OptimizerConfig | undefined;
  return { name: m.name, graph: b.build(), ...(m.loss !== undefined ? { loss: m.loss } : {}), ...(opt ? { optimizer: opt } : {}) };
}

/** Loads a model from JSON text; `where` (the file name) starts every error message. */
/** The largest model file accepted: a model is a graph, its weights live in checkpoints. */
export const MAX_MODEL_BYTES = 64 * 2 ** 20;

/** The one-line refusal of a model file of `bytes` bytes, or undefined when it is small enough. */
export function modelSizeProblem(bytes: number, where: string): ModelFormatError | undefined {
  if (bytes <= MAX_MODEL_BYTES) return undefined;
  const mb = (x: number) => `${(x / 2 ** 20).toFixed(1)} MB`;
  return new ModelFormatError(`${where}: the file is ${mb(bytes)}, more than the ${mb(MAX_MODEL_BYTES)} a model file may have (weights belong in a checkpoint)`);
}

export function loadModel(text: string, where = 'model'): Model {
  const tooBig = modelSizeProblem(text.length, where);
  if (tooBig) throw tooBig;
  const json = parseJsonText(text, where);
  try {
    return modelFromJson(json);
  } catch (e) {
    if (e instanceof ModelFormatError) throw new ModelFormatError(`${where}: ${e.message}`);
    throw e;
  }
}

function suggest(op: string): string {
  const near = JSON_OPS.filter((k) => editDistance(k, op) <= 2);
  return near.length ? ` (did you mean ${near.map((k) => `"${k}"`).join(' or ')}?)` : '';
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2 || a.length > 64 || b.length > 64) return 99;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}
