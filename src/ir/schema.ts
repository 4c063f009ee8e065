/**
 * @file The JSON model format (docs/model-format.md), validated with zod, and its loader: JSON text
 * -> Model. Every error names the JSON path and, for nodes, the node's name, e.g.
 * `nodes[3].inputs[1]: unknown value "h2"`; none is a stack trace. Nodes may be listed in any
 * order; they are sorted topologically and a cycle is reported with its path. Composite ops
 * (softmax, layernorm, attention, pooling, …) are decomposed into primitives by the builder.
 */
import { z } from 'zod';
import { DTYPES } from './dtype.js';
import { GraphBuilder, convAttrs, type Value } from './builder.js';
import { AdjointError, ModelFormatError } from './errors.js';
import { MODEL_FORMAT_VERSION, type Model, type OptimizerConfig } from './model.js';
import { OPS, UNARY_OPS, BINARY_OPS, COMPARE_OPS, REDUCE_OPS, type Op, type SourceOp } from './ops.js';

const MAX_NAME = 256;
const name = z.string().min(1, 'must be a non-empty string').max(MAX_NAME, `must be at most ${MAX_NAME} characters`);
const dim = z.number().int('must be an integer').min(1, 'must be >= 1').max(2 ** 31 - 1, 'must be < 2^31');
const shape = z.array(dim).max(8, 'rank must be at most 8');
const dtype = z.enum(DTYPES);
const int = z.number().int('must be an integer');
const nat = int.min(0, 'must be >= 0');
const pos = int.min(1, 'must be >= 1');
const finite = z.number().refine(Number.isFinite, 'must be a finite number');
const pair = (p: z.ZodNumber) => z.union([p, z.tuple([p, p])]).transform((v): [number, number] => (typeof v === 'number' ? [v, v] : v));

const init = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('zeros') }),
  z.strictObject({ kind: z.literal('ones') }),
  z.strictObject({ kind: z.literal('constant'), value: finite }),
  z.strictObject({ kind: z.literal('uniform'), low: finite, high: finite }),
  z.strictObject({ kind: z.literal('normal'), std: finite }),
  z.strictObject({ kind: z.literal('glorot_uniform') }),
  z.strictObject({ kind: z.literal('he_normal') }),
]);

const optimizer = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('sgd'),
    lr: finite,
    momentum: finite.default(0),
    weightDecay: finite.default(0),
  }),
  z.strictObject({
    kind: z.literal('adam'),
    lr: finite,
    beta1: finite.default(0.9),
    beta2: finite.default(0.999),
    eps: finite.default(1e-8),
    weightDecay: finite.default(0),
  }),
]);

const node = z.strictObject({
  name: name.optional(),
  op: z.string(),
  inputs: z.array(name).default([]),
  attrs: z.record(z.string(), z.unknown()).default({}),
});

export const modelSchema = z.strictObject({
  version: z.literal(MODEL_FORMAT_VERSION, { error: `must be ${MODEL_FORMAT_VERSION} (the model format version this compiler reads)` }),
  name: name.default('model'),
  inputs: z.array(z.strictObject({ name, shape, dtype: dtype.default('f32') })).default([]),
  params: z.array(z.strictObject({ name, shape, init: init.default({ kind: 'glorot_uniform' }) })).default([]),
  state: z.array(z.strictObject({ name, shape, dtype: dtype.default('f32'), init: init.default({ kind: 'zeros' }) })).default([]),
  nodes: z.array(node),
  outputs: z.record(name, name),
  updates: z.array(z.strictObject({ target: name, value: name })).default([]),
  loss: name.optional(),
  optimizer: optimizer.optional(),
});
export type ModelJson = z.input<typeof modelSchema>;

// ---- per-op attributes as written in JSON, and how each op is built --------------------------

const axes = z.union([int, z.array(int)]);
const conv = { stride: pair(pos).default([1, 1]), padding: pair(nat).default([0, 0]), dilation: pair(pos).default([1, 1]) };
const none = z.strictObject({});

interface OpSpec<S extends z.ZodType> {
  readonly attrs: S;
  /** Number of inputs, or 'variadic'. */
  readonly arity: number | 'variadic';
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

const poolSpec = z.strictObject({ kernel: pair(pos), stride: pair(pos).optional(), padding: pair(nat).default([0, 0]) });

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
  concat: spec({ attrs: z.strictObject({ axis: int }), arity: 'variadic', build: (b, xs, a) => b.concat(xs, a.axis) }),
  matmul: spec({ attrs: none, arity: 2, build: (b, xs) => b.matmul(at(xs, 0), at(xs, 1)) }),
  gather: spec({ attrs: none, arity: 2, build: (b, xs) => b.gather(at(xs, 0), at(xs, 1)) }),
  scatter_add: spec({ attrs: z.strictObject({ rows: pos }), arity: 2, build: (b, xs, a) => b.scatterAdd(at(xs, 0), at(xs, 1), a.rows) }),
  one_hot: spec({ attrs: z.strictObject({ depth: pos }), arity: 1, build: (b, xs, a) => b.oneHot(at(xs, 0), a.depth) }),
  conv2d: spec({ attrs: z.strictObject(conv), arity: 2, build: (b, xs, a) => b.conv2d(at(xs, 0), at(xs, 1), a) }),
  conv2d_input_grad: spec({
    attrs: z.strictObject({ ...conv, size: pair(pos) }),
    arity: 2,
    build: (b, xs, a) => b.add('conv2d_input_grad', { ...convAttrs(a), size: a.size }, xs),
  }),
  conv2d_filter_grad: spec({
    attrs: z.strictObject({ ...conv, kernel: pair(pos) }),
    arity: 2,
    build: (b, xs, a) => b.add('conv2d_filter_grad', { ...convAttrs(a), kernel: a.kernel }, xs),
  }),
  // ---- composites: decomposed into primitives by the builder ----
  linear: spec({ attrs: none, arity: 'variadic', build: (b, xs) => b.linear(at(xs, 0), at(xs, 1), xs[2]) }),
  square: spec({ attrs: none, arity: 1, build: (b, xs) => b.square(at(xs, 0)) }),
  softmax: spec({ attrs: z.strictObject({ axis: int.default(-1) }), arity: 1, build: (b, xs, a) => b.softmax(at(xs, 0), a.axis) }),
  log_softmax: spec({ attrs: z.strictObject({ axis: int.default(-1) }), arity: 1, build: (b, xs, a) => b.logSoftmax(at(xs, 0), a.axis) }),
  softmax_cross_entropy: spec({ attrs: none, arity: 2, build: (b, xs) => b.softmaxCrossEntropy(at(xs, 0), at(xs, 1)) }),
  mse: spec({ attrs: none, arity: 2, build: (b, xs) => b.mse(at(xs, 0), at(xs, 1)) }),
  layernorm: spec({ attrs: z.strictObject({ eps: finite.default(1e-5) }), arity: 'variadic', build: (b, xs, a) => b.layerNorm(at(xs, 0), xs[1], xs[2], a.eps) }),
  gelu: spec({ attrs: none, arity: 1, build: (b, xs) => b.gelu(at(xs, 0)) }),
  attention: spec({ attrs: z.strictObject({ causal: z.boolean().default(false) }), arity: 3, build: (b, xs, a) => b.attention(at(xs, 0), at(xs, 1), at(xs, 2), a.causal) }),
  max_pool2d: spec({ attrs: poolSpec, arity: 1, build: (b, xs, a) => b.maxPool2d(at(xs, 0), a) }),
  avg_pool2d: spec({ attrs: poolSpec, arity: 1, build: (b, xs, a) => b.avgPool2d(at(xs, 0), a) }),
};

/** Every primitive but the three source kinds must be writable as a node: checked by the compiler. */
type MissingPrimitive = Exclude<Exclude<Op, 'input' | 'param' | 'state'>, keyof typeof OP_SPECS>;
const _allPrimitivesCovered: MissingPrimitive extends never ? true : MissingPrimitive = true;
void _allPrimitivesCovered;

export const JSON_OPS: readonly string[] = Object.keys(OP_SPECS);
export const COMPOSITE_OPS: readonly string[] = JSON_OPS.filter((o) => !(OPS as readonly string[]).includes(o));
export type SourceKind = Extract<SourceOp, 'input' | 'param' | 'state'>;

// ---- loading -------------------------------------------------------------------------------

/** `['nodes', 3, 'inputs', 1]` -> `nodes[3].inputs[1]` */
export function fmtPath(path: readonly PropertyKey[]): string {
  let s = '';
  for (const p of path) s += typeof p === 'number' ? `[${p}]` : s ? `.${String(p)}` : String(p);
  return s || '(root)';
}

function zodMessage(err: z.ZodError, prefix: readonly PropertyKey[] = []): string {
  const issue = err.issues[0];
  if (!issue) return `${fmtPath(prefix)}: invalid`;
  let msg = issue.message;
  if (issue.code === 'unrecognized_keys') msg = `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}`;
  else if (issue.code === 'invalid_type') msg = `expected ${issue.expected}${'input' in issue && issue.input === undefined ? ', but it is missing' : ''}`;
  return `${fmtPath([...prefix, ...issue.path])}: ${msg}`;
}

/** JSON.parse with an error that gives the line and column. */
export function parseJsonText(text: string, where = 'model'): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    const m = /position (\d+)/.exec(msg);
    let loc = '';
    if (m) {
      const pos = Number(m[1]);
      const before = text.slice(0, pos);
      const line = before.split('\n').length;
      const col = pos - before.lastIndexOf('\n');
      loc = ` at line ${line}, column ${col}`;
    }
    throw new ModelFormatError(`${where}: invalid JSON${loc}: ${msg.replace(/ in JSON at position \d+.*$/, '').replace(/^.*?: /, '')}`);
  }
}

const describeNode = (i: number, n: { name?: string | undefined; op: string }) =>
  `nodes[${i}]${n.name !== undefined ? ` (${JSON.stringify(n.name)}, ${n.op})` : ` (${n.op})`}`;

/** Validates a parsed JSON value and builds the model. */
export function modelFromJson(json: unknown): Model {
  const parsed = modelSchema.safeParse(json);
  if (!parsed.success) throw new ModelFormatError(zodMessage(parsed.error));
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
  const guard = <T>(where: string, f: () => T): T => {
    try {
      return f();
    } catch (e) {
      if (e instanceof ModelFormatError) throw e;
      if (e instanceof AdjointError) throw new ModelFormatError(`${where}: ${e.message}`);
      throw e;
    }
  };
  m.inputs.forEach((x, i) => guard(`inputs[${i}]`, () => define(x.name, `inputs[${i}]`, () => b.input(x.name, x.shape, x.dtype))));
  m.params.forEach((x, i) => guard(`params[${i}]`, () => define(x.name, `params[${i}]`, () => b.param(x.name, x.shape, x.init))));
  m.state.forEach((x, i) => guard(`state[${i}]`, () => define(x.name, `state[${i}]`, () => b.state(x.name, x.shape, x.init, x.dtype))));

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
          throw new ModelFormatError(`nodes[${dep}]: cycle ${[...cyc, `nodes[${dep}] "${m.nodes[dep]!.name}"`].join(' -> ')}`);
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
    const s = (OP_SPECS as Record<string, OpSpec<z.ZodType> | undefined>)[n.op];
    if (s === undefined || !Object.hasOwn(OP_SPECS, n.op)) {
      throw new ModelFormatError(`nodes[${i}].op: unknown op ${JSON.stringify(n.op)}${suggest(n.op)}`);
    }
    const arityOk = s.arity === 'variadic' ? n.inputs.length >= 1 : n.inputs.length === s.arity;
    if (!arityOk) {
      throw new ModelFormatError(`${where}.inputs: ${n.op} takes ${s.arity === 'variadic' ? 'one or more' : s.arity} inputs, got ${n.inputs.length}`);
    }
    const attrs = s.attrs.safeParse(n.attrs);
    if (!attrs.success) throw new ModelFormatError(zodMessage(attrs.error, ['nodes', i, 'attrs']));
    const xs = n.inputs.map((x) => values.get(x)!);
    const v = guard(where, () => s.build(b, xs, attrs.data));
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
  for (const [k, x] of Object.entries(m.outputs)) b.output(k, ref(x, `outputs.${k}`));
  m.updates.forEach((u, i) => {
    const t = values.get(u.target);
    const tn = t && b.build().nodes[t.id];
    if (!tn || (tn.op !== 'param' && tn.op !== 'state')) throw new ModelFormatError(`updates[${i}].target: "${u.target}" is not a param or state`);
    const v = ref(u.value, `updates[${i}].value`);
    if (v.type.dtype !== tn.type.dtype || v.type.shape.join() !== tn.type.shape.join()) {
      throw new ModelFormatError(`updates[${i}]: the value's type does not match "${u.target}"`);
    }
    b.update(u.target, v);
  });
  if (m.loss !== undefined) {
    const l = m.outputs[m.loss] !== undefined && Object.hasOwn(m.outputs, m.loss) ? values.get(m.outputs[m.loss]!) : undefined;
    if (!l) throw new ModelFormatError(`loss: "${m.loss}" is not one of the outputs`);
    if (l.type.shape.length !== 0 || l.type.dtype !== 'f32') throw new ModelFormatError(`loss: "${m.loss}" must be an f32 scalar, got ${l.type.dtype}[${l.type.shape.join(',')}]`);
  }
  const opt = m.optimizer as OptimizerConfig | undefined;
  return { name: m.name, graph: b.build(), ...(m.loss !== undefined ? { loss: m.loss } : {}), ...(opt ? { optimizer: opt } : {}) };
}

/** Loads a model from JSON text; `where` names the file in errors. */
export function loadModel(text: string, where = 'model'): Model {
  return modelFromJson(parseJsonText(text, where));
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
