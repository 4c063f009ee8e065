/**
 * @file Autodiff: derives the adjoint graph by reverse accumulation. The result is the forward
 * graph (same node ids) followed by the adjoint nodes, with one output `grad:<param>` per
 * parameter. The algorithm is micrograd's made into a graph pass: walk the nodes from the loss
 * backwards in topological order, seeded with d loss = 1; apply each op's vector-Jacobian product
 * (written in IR ops through the builder, so the adjoint graph is an ordinary graph and can itself
 * be differentiated: grad-of-grad, Hessian-vector products); sum the adjoints where a value fans
 * out; reduce-sum back to each operand's shape where it was broadcast. Only nodes that the loss
 * depends on and that depend on a requested parameter are visited, and a rule builds a cotangent
 * only for the operands that need one, so the pass emits no dead adjoint nodes. Integer values,
 * comparisons, `iota`, `one_hot`, `stop_gradient` and casts between dtypes carry no gradient. A
 * parameter that gets no gradient has an explicit zero one and a diagnostic.
 */
import { GraphBuilder, copyNode, type Value } from '../ir/builder.js';
import { fmtType, shapeEq, type Shape } from '../ir/dtype.js';
import { AdjointError } from '../ir/errors.js';
import type { Graph, NodeOfOp, ValueId } from '../ir/graph.js';
import type { Conv2dAttrs, Op } from '../ir/ops.js';
import { printNode } from '../ir/printer.js';

/** A request the graph cannot satisfy: no such loss, a loss that is not an f32 scalar, … */
export class GradError extends AdjointError {
  override name = 'GradError';
}

export interface GradOptions {
  /** Name of the scalar f32 output to differentiate. */
  readonly loss: string;
  /** Parameters to differentiate with respect to; default: every param. */
  readonly wrt?: readonly string[];
}

export interface GradResult {
  readonly graph: Graph;
  /** Parameter name -> the value of its gradient in `graph`. */
  readonly grads: ReadonlyMap<string, ValueId>;
  readonly diagnostics: readonly string[];
}

/** What a VJP rule sees: the builder, the primal operands and result, and the result's cotangent. */
export interface VjpCtx {
  readonly b: GraphBuilder;
  readonly xs: readonly Value[];
  readonly y: Value;
  readonly g: Value;
}

/** An operand's cotangent, built only if that operand needs one; `undefined`: no gradient. */
export type Cotangent = (() => Value) | undefined;

/** A VJP rule: one cotangent per operand, in order. */
export type VjpRule<K extends Op> = (n: NodeOfOp<K>, c: VjpCtx) => readonly Cotangent[];

/**
 * Sums `v` down to `shape` over the axes NumPy broadcasting added (leading) or stretched (size 1 in
 * `shape`): one reduce_sum, with keepdims when no axis was added, else followed by a reshape if an
 * axis was stretched.
 */
export function unbroadcast(b: GraphBuilder, v: Value, shape: Shape): Value {
  const from = v.type.shape;
  if (shapeEq(from, shape)) return v;
  const off = from.length - shape.length;
  const axes = from.flatMap((d, i) => (i < off || (shape[i - off] === 1 && d !== 1) ? [i] : []));
  const summed = axes.length ? b.reduceSum(v, axes, off === 0) : v;
  return shapeEq(summed.type.shape, shape) ? summed : b.reshape(summed, shape);
}

const x0 = (c: VjpCtx) => c.xs[0]!;
const x1 = (c: VjpCtx) => c.xs[1]!;
/** `v` unbroadcast to operand i's shape. */
const un = (c: VjpCtx, v: Value, i: number) => unbroadcast(c.b, v, c.xs[i]!.type.shape);

/** Sources, comparisons and other piecewise-constant ops: no operand gets a gradient. */
const zeroGrad: VjpRule<Op> = (n) => n.inputs.map(() => undefined);
/** A one-operand op whose cotangent is `f` of the context. */
const unary = <K extends Op>(f: (c: VjpCtx, n: NodeOfOp<K>) => Value): VjpRule<K> => (n, c) => [() => f(c, n)];
/** A one-operand linear op: its VJP is its transpose `f`, applied to g. */
const linear = unary;
/** A unary elementwise op with derivative `d` (of x and y): g * d. */
const pointwise = <K extends Op>(d: (c: VjpCtx) => Value): VjpRule<K> => (_, c) => [() => c.b.mul(c.g, d(c))];
/** A binary elementwise op: `da`, `db` give each operand's cotangent before unbroadcasting. */
const binary = <K extends Op>(da: (c: VjpCtx) => Value, db: (c: VjpCtx) => Value): VjpRule<K> =>
  (_, c) => [() => un(c, da(c), 0), () => un(c, db(c), 1)];

/** max and min: the cotangent goes to the operand selected by `cmp(a, b)`, else to b; one mask for both. */
const route = (cmp: 'ge' | 'le'): VjpRule<'max' | 'min'> => (_, c) => {
  let mask: Value | undefined;
  const first = () => (mask ??= c.b.binary(cmp, x0(c), x1(c)));
  return [() => un(c, c.b.where(first(), c.g, 0), 0), () => un(c, c.b.where(first(), 0, c.g), 1)];
};

/** A reduction's cotangent `v`, broadcast back to the operand's shape (reshaped first unless only leading axes were reduced). */
function unreduce(c: VjpCtx, v: Value, axes: readonly number[]): Value {
  const xs = x0(c).type.shape;
  const kept = xs.map((d, i) => (axes.includes(i) ? 1 : d));
  const lead = kept.findIndex((d, i) => d !== 1 || !axes.includes(i));
  const trailing = lead < 0 ? [] : kept.slice(lead);
  const r = shapeEq(v.type.shape, kept) || shapeEq(v.type.shape, trailing) ? v : c.b.reshape(v, kept);
  return shapeEq(r.type.shape, xs) ? r : c.b.broadcastTo(r, xs);
}

const convBase = (a: Conv2dAttrs): Conv2dAttrs => ({ stride: a.stride, padding: a.padding, dilation: a.dilation });
const spatial = (v: Value): [number, number] => [v.type.shape[2]!, v.type.shape[3]!];
/** conv2d(x, w) with the node's stride, padding and dilation. */
const conv = (c: VjpCtx, a: Conv2dAttrs, x: Value, w: Value) => c.b.add('conv2d', convBase(a), [x, w]);
/** The input gradient of conv2d for an input the shape of `like`. */
const convIG = (c: VjpCtx, a: Conv2dAttrs, dy: Value, w: Value, like: Value) =>
  c.b.add('conv2d_input_grad', { ...convBase(a), size: spatial(like) }, [dy, w]);
/** The filter gradient of conv2d for a filter the shape of `like`. */
const convFG = (c: VjpCtx, a: Conv2dAttrs, x: Value, dy: Value, like: Value) =>
  c.b.add('conv2d_filter_grad', { ...convBase(a), kernel: spatial(like) }, [x, dy]);

export const VJP_RULES: { readonly [K in Op]: VjpRule<K> } = {
  input: zeroGrad, param: zeroGrad, state: zeroGrad, full: zeroGrad, iota: zeroGrad,
  neg: linear((c) => c.b.neg(c.g)),
  // d|x| = sign(x) dx (the derivative at 0 is taken as 1)
  abs: unary((c) => c.b.where(c.b.ge(x0(c), 0), c.g, c.b.neg(c.g))),
  // d e^x = e^x dx = y dx
  exp: pointwise((c) => c.y),
  // d log x = dx / x
  log: unary((c) => c.b.div(c.g, x0(c))),
  // d sqrt(x) = dx / (2 sqrt(x)) = dx / 2y
  sqrt: unary((c) => c.b.div(c.g, c.b.mul(c.y, 2))),
  // d x^-1/2 = -1/2 x^-3/2 dx = -1/2 y^3 dx
  rsqrt: pointwise((c) => c.b.mul(c.b.mul(c.b.mul(c.y, c.y), c.y), -0.5)),
  // d(1/x) = -dx / x^2 = -y^2 dx
  reciprocal: pointwise((c) => c.b.neg(c.b.mul(c.y, c.y))),
  // d tanh x = (1 - y^2) dx
  tanh: pointwise((c) => c.b.sub(1, c.b.mul(c.y, c.y))),
  // d s(x) = s (1 - s) dx, s = y
  sigmoid: pointwise((c) => c.b.mul(c.y, c.b.sub(1, c.y))),
  // d relu(x) = [x > 0] dx = [y > 0] dx (read from the output: fusion never needs the pre-activation)
  relu: unary((c) => c.b.where(c.b.gt(c.y, 0), c.g, 0)),
  // d sin x = cos x dx
  sin: pointwise((c) => c.b.cos(x0(c))),
  // d cos x = -sin x dx
  cos: pointwise((c) => c.b.neg(c.b.sin(x0(c)))),
  // d(a + b) = da + db
  add: binary((c) => c.g, (c) => c.g),
  // d(a - b) = da - db
  sub: binary((c) => c.g, (c) => c.b.neg(c.g)),
  // d(ab) = b da + a db
  mul: binary((c) => c.b.mul(c.g, x1(c)), (c) => c.b.mul(c.g, x0(c))),
  // d(a/b) = da / b - (a/b) db / b = da / b - y db / b
  div: binary((c) => c.b.div(c.g, x1(c)), (c) => c.b.neg(c.b.div(c.b.mul(c.g, c.y), x1(c)))),
  // d max(a, b) = [a >= b] da + [a < b] db (ties go to the first operand)
  max: route('ge'),
  // d min(a, b) = [a <= b] da + [a > b] db (ties go to the first operand)
  min: route('le'),
  // d a^p = p a^(p-1) da + a^p log(a) dp
  pow: binary(
    (c) => c.b.mul(c.g, c.b.mul(x1(c), c.b.pow(x0(c), c.b.sub(x1(c), 1)))),
    (c) => c.b.mul(c.g, c.b.mul(c.y, c.b.log(x0(c)))),
  ),
  eq: zeroGrad, ne: zeroGrad, lt: zeroGrad, le: zeroGrad, gt: zeroGrad, ge: zeroGrad,
  // d where(c, a, b) = where(c, da, db); the condition is piecewise constant
  where: (_, c) => [undefined, () => un(c, c.b.where(x0(c), c.g, 0), 1), () => un(c, c.b.where(x0(c), 0, c.g), 2)],
  // A cast to f32 of an f32 is the identity; a cast between dtypes carries no gradient.
  cast: (n, c) => [n.attrs.dtype === 'f32' && x0(c).type.dtype === 'f32' ? () => c.g : undefined],
  stop_gradient: zeroGrad,
  // d sum = broadcast(g)
  reduce_sum: linear((c, n) => unreduce(c, c.g, n.attrs.axes)),
  // d mean = broadcast(g) / count
  reduce_mean: linear((c, n) => {
    const count = n.attrs.axes.reduce((p, a) => p * x0(c).type.shape[a]!, 1);
    return unreduce(c, c.b.mul(c.g, 1 / count), n.attrs.axes);
  }),
  // d max = broadcast(g) * [x == max] / (number of ties): the maxima share it equally
  reduce_max: unary((c, n) => {
    const mask = c.b.eq(x0(c), unreduce(c, c.y, n.attrs.axes));
    const ties = c.b.reduceSum(mask, n.attrs.axes, true);
    return c.b.mul(unreduce(c, c.g, n.attrs.axes), c.b.div(mask, ties));
  }),
  reshape: linear((c) => c.b.reshape(c.g, x0(c).type.shape)),
  // The transpose of a permutation is the inverse permutation.
  transpose: linear((c, n) => {
    const inv: number[] = [];
    n.attrs.perm.forEach((p, i) => (inv[p] = i));
    return c.b.transpose(c.g, inv);
  }),
  broadcast_to: linear((c) => un(c, c.g, 0)),
  // A strided slice's transpose is a pad: low = start, interior = step - 1, high = what is left.
  slice: linear((c, n) => {
    const { starts, steps } = n.attrs;
    const out = c.g.type.shape;
    const high = x0(c).type.shape.map((d, i) => d - (starts[i]! + (out[i]! - 1) * steps[i]! + 1));
    return c.b.pad(c.g, starts, high, 0, steps.map((s) => s - 1));
  }),
  // A pad's transpose is the strided slice of the original positions (the fill value is a constant).
  pad: linear((c, n) => {
    const { low, interior } = n.attrs;
    const ends = x0(c).type.shape.map((d, i) => low[i]! + (d - 1) * (interior[i]! + 1) + 1);
    return c.b.slice(c.g, low, ends, interior.map((s) => s + 1));
  }),
  // Each operand of a concat gets its slice of the cotangent.
  concat: (n, c) => {
    const ax = n.attrs.axis;
    let start = 0;
    return c.xs.map((x) => {
      const lo = start;
      start += x.type.shape[ax]!;
      const starts = x.type.shape.map((_, i) => (i === ax ? lo : 0));
      const ends = c.g.type.shape.map((d, i) => (i === ax ? lo + x.type.shape[ax]! : d));
      return () => c.b.slice(c.g, starts, ends);
    });
  },
  // d(AB) = dA B + A dB: dA = g B^T, dB = A^T g (two matmuls), summed over broadcast batch dims
  matmul: binary((c) => c.b.matmul(c.g, c.b.mT(x1(c))), (c) => c.b.matmul(c.b.mT(x0(c)), c.g)),
  // gather's transpose scatters the rows back, summing repeats; indices get none
  gather: (_, c) => [() => c.b.scatterAdd(x1(c), c.g, x0(c).type.shape[0]!), undefined],
  // scatter_add's transpose gathers the rows each update went to
  scatter_add: (_, c) => [undefined, () => c.b.gather(c.g, x0(c))],
  one_hot: zeroGrad,
  // conv2d, conv2d_input_grad (IG) and conv2d_filter_grad (FG) are the three bilinear views of
  // T(x, w, dy) = <conv2d(x, w), dy> = <x, IG(dy, w)> = <w, FG(x, dy)>: each one's VJPs are the
  // other two. y = conv2d(x, w): <ybar, y> = T(x, w, ybar), so dx = IG(ybar, w), dw = FG(x, ybar).
  conv2d: (n, c) => [() => convIG(c, n.attrs, c.g, x1(c), x0(c)), () => convFG(c, n.attrs, x0(c), c.g, x1(c))],
  // z = IG(dy, w): <zbar, z> = T(zbar, w, dy), so d dy = conv2d(zbar, w), dw = FG(zbar, dy)
  conv2d_input_grad: (n, c) => [() => conv(c, n.attrs, c.g, x1(c)), () => convFG(c, n.attrs, c.g, x0(c), x1(c))],
  // z = FG(x, dy): <zbar, z> = T(x, zbar, dy), so dx = IG(dy, zbar), d dy = conv2d(x, zbar)
  conv2d_filter_grad: (n, c) => [() => convIG(c, n.attrs, x1(c), c.g, x0(c)), () => conv(c, n.attrs, x0(c), c.g)],
  // ---- issue 16: random numbers are constants of the step (their operands are integers); the
  // mode flag is a source ----
  random_uniform: zeroGrad,
  is_training: zeroGrad,
  // ---- end issue 16 ----
};

/** Which values carry an adjoint: f32, needed by the loss, and depending on a requested parameter. */
function carriesAdjoint(g: Graph, loss: ValueId, wrt: ReadonlySet<ValueId>): { carries: boolean[]; lossNeeds: boolean[] } {
  const fromParam = g.nodes.map(() => false);
  g.nodes.forEach((n, i) => {
    fromParam[i] = wrt.has(i) || (n.op !== 'stop_gradient' && n.inputs.some((x) => fromParam[x]));
  });
  const lossNeeds = g.nodes.map((_, i) => i === loss);
  for (let i = loss; i >= 0; i--) if (lossNeeds[i]) for (const x of g.nodes[i]!.inputs) lossNeeds[x] = true;
  const carries = g.nodes.map((n, i) => fromParam[i]! && lossNeeds[i]! && n.type.dtype === 'f32');
  return { carries, lossNeeds };
}

export function grad(g: Graph, opts: GradOptions): GradResult {
  const loss = g.outputs.find((o) => o.name === opts.loss);
  if (!loss) {
    throw new GradError(`autodiff: the graph has no output "${opts.loss}" (outputs: ${g.outputs.map((o) => o.name).join(', ') || 'none'})`);
  }
  const lossNode = g.nodes[loss.value]!;
  if (lossNode.type.shape.length !== 0 || lossNode.type.dtype !== 'f32') {
    throw new GradError(`autodiff: the loss "${opts.loss}" must be an f32 scalar, got ${fmtType(lossNode.type)} (${printNode(lossNode, loss.value)})`);
  }
  const params = new Map<string, ValueId>();
  g.nodes.forEach((n, i) => n.op === 'param' && params.set(n.attrs.name, i));
  const wrt = [...new Set(opts.wrt ?? params.keys())];
  for (const name of wrt) {
    if (!params.has(name)) throw new GradError(`autodiff: "${name}" is not a parameter of the graph (parameters: ${[...params.keys()].join(', ') || 'none'})`);
    if (g.outputs.some((o) => o.name === `grad:${name}`)) {
      throw new GradError(`autodiff: the graph already has an output "grad:${name}"; drop or rename it before differentiating again`);
    }
  }
  const { carries, lossNeeds } = carriesAdjoint(g, loss.value, new Set(wrt.map((n) => params.get(n)!)));

  const b = new GraphBuilder();
  g.nodes.forEach((n) => copyNode(b, n, n.inputs.map((x) => b.value(x))));
  const adj = new Map<ValueId, Value>();
  adj.set(loss.value, b.full(1));
  for (let i = loss.value; i >= 0; i--) {
    const ct = adj.get(i);
    const n = g.nodes[i]!;
    if (!ct || !carries[i] || n.inputs.length === 0) continue;
    const rule = VJP_RULES[n.op] as VjpRule<typeof n.op>;
    const cts = rule(n as never, { b, xs: n.inputs.map((x) => b.value(x)), y: b.value(i), g: ct });
    n.inputs.forEach((x, j) => {
      const make = cts[j];
      if (!make || !carries[x]) return;
      const v = make();
      const prev = adj.get(x);
      adj.set(x, prev ? b.add_(prev, v) : v); // fan-out: adjoints add up
    });
  }

  const diagnostics: string[] = [];
  const grads = new Map<string, ValueId>();
  for (const name of wrt) {
    const id = params.get(name)!;
    let v = adj.get(id);
    if (!v) {
      const why = lossNeeds[id] ? 'reaches the loss only through stop_gradient or integer values' : 'does not affect the loss';
      diagnostics.push(`parameter "${name}" ${why} "${opts.loss}": its gradient is zero`);
      v = b.full(0, g.nodes[id]!.type.shape);
    }
    grads.set(name, v.id);
  }
  for (const o of g.outputs) b.output(o.name, b.value(o.value));
  for (const [name, v] of grads) b.output(`grad:${name}`, b.value(v));
  for (const u of g.updates) b.update(u.target, b.value(u.value));
  return { graph: b.build(), grads, diagnostics };
}

/** The pass form of {@link grad}, for the pipeline. */
export const autodiff = (loss: string, wrt?: readonly string[]) => ({
  name: 'autodiff',
  run: (g: Graph): Graph => grad(g, { loss, ...(wrt ? { wrt } : {}) }).graph,
});
