/**
 * @file Autodiff: derives the adjoint graph by reverse accumulation. The result is the forward
 * graph (same node ids) followed by the adjoint nodes, with one output `grad:<param>` per
 * parameter. The algorithm is micrograd's made into a graph pass: walk the nodes from the loss
 * backwards in topological order, seeded with d loss = 1; apply each op's vector-Jacobian product
 * (written in IR ops, so the adjoint graph can itself be differentiated); sum the adjoints where a
 * value fans out; reduce-sum back to each operand's shape where it was broadcast. Integer values,
 * comparisons, `cast`, `one_hot` and `stop_gradient` carry no gradient. A parameter the loss does
 * not depend on gets an explicit zero gradient and a diagnostic.
 */
import { GraphBuilder, copyNode, type Value } from '../ir/builder.js';
import { shapeEq, type Shape } from '../ir/dtype.js';
import { AdjointError } from '../ir/errors.js';
import type { Graph, NodeOfOp, ValueId } from '../ir/graph.js';
import type { Op } from '../ir/ops.js';

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

/** What a VJP rule sees: the builder, the primal inputs and output, and the output's cotangent. */
interface VjpCtx {
  readonly b: GraphBuilder;
  readonly xs: readonly Value[];
  readonly y: Value;
  readonly g: Value;
}

/** Cotangents of the inputs, in order; `undefined` where an input gets no gradient. */
type Vjp<K extends Op> = (n: NodeOfOp<K>, c: VjpCtx) => readonly (Value | undefined)[];

/** Sums `v` down to `shape` over the axes NumPy broadcasting added or stretched. */
export function unbroadcast(b: GraphBuilder, v: Value, shape: Shape): Value {
  const from = v.type.shape;
  if (shapeEq(from, shape)) return v;
  const off = from.length - shape.length;
  const axes: number[] = [];
  from.forEach((d, i) => {
    if (i < off || (shape[i - off] === 1 && d !== 1)) axes.push(i);
  });
  const summed = axes.length ? b.reduceSum(v, axes, true) : v;
  return b.reshape(summed, shape);
}

const none: Vjp<Op> = (n) => n.inputs.map(() => undefined);
const x0 = (c: VjpCtx) => c.xs[0]!;
const x1 = (c: VjpCtx) => c.xs[1]!;
const un = (c: VjpCtx, v: Value, i: number) => unbroadcast(c.b, v, c.xs[i]!.type.shape);
/** A linear unary op: the cotangent maps through `f`. */
const linear = <K extends Op>(f: (c: VjpCtx) => Value): Vjp<K> => (_, c) => [f(c)];
/** An elementwise unary op with derivative `d(x, y)`: g * d. */
const pointwise = <K extends Op>(d: (c: VjpCtx) => Value): Vjp<K> => (_, c) => [c.b.mul(c.g, d(c))];

/** The cotangent of a reduction, brought back to the input's shape (reduced axes restored as 1). */
function unreduce(c: VjpCtx, v: Value, axes: readonly number[]): Value {
  const xs = x0(c).type.shape;
  const kept = xs.map((d, i) => (axes.includes(i) ? 1 : d));
  return c.b.broadcastTo(c.b.reshape(v, kept), xs);
}

type ConvAttrs = NodeOfOp<'conv2d'>['attrs'];
const convBase = (a: ConvAttrs): ConvAttrs => ({ stride: a.stride, padding: a.padding, dilation: a.dilation });
const spatial = (v: Value): [number, number] => [v.type.shape[2]!, v.type.shape[3]!];

export const VJP_RULES: { readonly [K in Op]: Vjp<K> } = {
  input: none, param: none, state: none, full: none, iota: none,
  neg: linear((c) => c.b.neg(c.g)),
  // d|x| = sign(x) dx (the derivative at 0 is taken as 1)
  abs: (_, c) => [c.b.where(c.b.ge(x0(c), 0), c.g, c.b.neg(c.g))],
  // d e^x = e^x dx
  exp: pointwise((c) => c.y),
  // d log x = dx / x
  log: (_, c) => [c.b.div(c.g, x0(c))],
  // d sqrt(x) = dx / (2 sqrt(x))
  sqrt: (_, c) => [c.b.div(c.g, c.b.mul(c.y, 2))],
  // d x^-1/2 = -1/2 x^-3/2 dx = -1/2 y^3 dx
  rsqrt: pointwise((c) => c.b.mul(c.b.mul(c.b.mul(c.y, c.y), c.y), -0.5)),
  // d(1/x) = -dx / x^2 = -y^2 dx
  reciprocal: pointwise((c) => c.b.neg(c.b.mul(c.y, c.y))),
  // d tanh x = (1 - tanh^2 x) dx
  tanh: pointwise((c) => c.b.sub(1, c.b.mul(c.y, c.y))),
  // d s(x) = s(x)(1 - s(x)) dx
  sigmoid: pointwise((c) => c.b.mul(c.y, c.b.sub(1, c.y))),
  // d relu(x) = [x > 0] dx; read from the output, so fusion never needs the pre-activation
  relu: (_, c) => [c.b.where(c.b.gt(c.y, 0), c.g, 0)],
  // d sin x = cos x dx
  sin: pointwise((c) => c.b.cos(x0(c))),
  // d cos x = -sin x dx
  cos: pointwise((c) => c.b.neg(c.b.sin(x0(c)))),
  add: (_, c) => [un(c, c.g, 0), un(c, c.g, 1)],
  sub: (_, c) => [un(c, c.g, 0), un(c, c.b.neg(c.g), 1)],
  // d(ab) = b da + a db
  mul: (_, c) => [un(c, c.b.mul(c.g, x1(c)), 0), un(c, c.b.mul(c.g, x0(c)), 1)],
  // d(a/b) = da / b - (a/b) db / b
  div: (_, c) => [un(c, c.b.div(c.g, x1(c)), 0), un(c, c.b.neg(c.b.div(c.b.mul(c.g, c.y), x1(c))), 1)],
  // max routes the cotangent to the larger operand (ties to the first)
  max: (_, c) => {
    const first = c.b.ge(x0(c), x1(c));
    return [un(c, c.b.where(first, c.g, 0), 0), un(c, c.b.where(first, 0, c.g), 1)];
  },
  min: (_, c) => {
    const first = c.b.le(x0(c), x1(c));
    return [un(c, c.b.where(first, c.g, 0), 0), un(c, c.b.where(first, 0, c.g), 1)];
  },
  // d a^p = p a^(p-1) da + a^p log(a) dp
  pow: (_, c) => [
    un(c, c.b.mul(c.g, c.b.mul(x1(c), c.b.pow(x0(c), c.b.sub(x1(c), 1)))), 0),
    un(c, c.b.mul(c.g, c.b.mul(c.y, c.b.log(x0(c)))), 1),
  ],
  eq: none, ne: none, lt: none, le: none, gt: none, ge: none,
  where: (_, c) => {
    const cond = c.xs[0]!;
    return [undefined, un(c, c.b.where(cond, c.g, 0), 1), un(c, c.b.where(cond, 0, c.g), 2)];
  },
  // Casting to f32 from f32 is the identity; any other cast carries no gradient.
  cast: (n, c) => [n.attrs.dtype === 'f32' && x0(c).type.dtype === 'f32' ? c.g : undefined],
  stop_gradient: none,
  reduce_sum: (n, c) => [unreduce(c, c.g, n.attrs.axes)],
  // d mean = broadcast(g) / count
  reduce_mean: (n, c) => {
    const count = n.attrs.axes.reduce((p, a) => p * x0(c).type.shape[a]!, 1);
    return [unreduce(c, c.b.mul(c.g, 1 / count), n.attrs.axes)];
  },
  // d max = g at the maxima, shared equally among ties
  reduce_max: (n, c) => {
    const mask = c.b.eq(x0(c), unreduce(c, c.y, n.attrs.axes));
    const count = c.b.reduceSum(mask, n.attrs.axes, true);
    return [c.b.mul(unreduce(c, c.g, n.attrs.axes), c.b.div(mask, count))];
  },
  reshape: linear((c) => c.b.reshape(c.g, x0(c).type.shape)),
  transpose: (n, c) => {
    const inv: number[] = [];
    n.attrs.perm.forEach((p, i) => (inv[p] = i));
    return [c.b.transpose(c.g, inv)];
  },
  broadcast_to: (_, c) => [un(c, c.g, 0)],
  // A strided slice scatters back with a pad: low = start, interior = step - 1.
  slice: (n, c) => {
    const xs = x0(c).type.shape;
    const { starts, steps } = n.attrs;
    const out = c.g.type.shape;
    const high = xs.map((d, i) => d - (starts[i]! + (out[i]! - 1) * steps[i]! + 1));
    return [c.b.pad(c.g, starts, high, 0, steps.map((s) => s - 1))];
  },
  // A pad's cotangent is the slice of the original positions.
  pad: (n, c) => {
    const xs = x0(c).type.shape;
    const { low, interior } = n.attrs;
    const ends = xs.map((d, i) => low[i]! + (d - 1) * (interior[i]! + 1) + 1);
    return [c.b.slice(c.g, low, ends, interior.map((s) => s + 1))];
  },
  concat: (n, c) => {
    const ax = n.attrs.axis;
    let start = 0;
    return c.xs.map((x) => {
      const size = x.type.shape[ax]!;
      const starts = x.type.shape.map((_, i) => (i === ax ? start : 0));
      const ends = c.g.type.shape.map((d, i) => (i === ax ? start + size : d));
      start += size;
      return c.b.slice(c.g, starts, ends);
    });
  },
  // d(AB) = dA B + A dB: two matmuls with transposed operands, summed over broadcast batch dims
  matmul: (_, c) => [un(c, c.b.matmul(c.g, c.b.mT(x1(c))), 0), un(c, c.b.matmul(c.b.mT(x0(c)), c.g), 1)],
  // gather's cotangent scatters back; scatter_add's gathers
  gather: (_, c) => [c.b.scatterAdd(x1(c), c.g, x0(c).type.shape[0]!), undefined],
  scatter_add: (_, c) => [undefined, c.b.gather(c.g, x0(c))],
  one_hot: none,
  // conv2d, conv2d_input_grad and conv2d_filter_grad are the three bilinear views of
  // T(x, w, dy) = <conv2d(x, w), dy>: each one's VJPs are the other two.
  conv2d: (n, c) => [
    c.b.add('conv2d_input_grad', { ...convBase(n.attrs), size: spatial(x0(c)) }, [c.g, x1(c)]),
    c.b.add('conv2d_filter_grad', { ...convBase(n.attrs), kernel: spatial(x1(c)) }, [x0(c), c.g]),
  ],
  // z = IG(dy, w): <zbar, z> = T(zbar, w, dy), so d dy = conv2d(zbar, w) and d w = FG(zbar, dy)
  conv2d_input_grad: (n, c) => [
    c.b.add('conv2d', convBase(n.attrs), [c.g, x1(c)]),
    c.b.add('conv2d_filter_grad', { ...convBase(n.attrs), kernel: spatial(x1(c)) }, [c.g, x0(c)]),
  ],
  // z = FG(x, dy): <zbar, z> = T(x, zbar, dy), so d x = IG(dy, zbar) and d dy = conv2d(x, zbar)
  conv2d_filter_grad: (n, c) => [
    c.b.add('conv2d_input_grad', { ...convBase(n.attrs), size: spatial(x0(c)) }, [x1(c), c.g]),
    c.b.add('conv2d', convBase(n.attrs), [x0(c), c.g]),
  ],
};

export function grad(g: Graph, opts: GradOptions): GradResult {
  const loss = g.outputs.find((o) => o.name === opts.loss);
  if (!loss) throw new AdjointError(`autodiff: the graph has no output "${opts.loss}" (outputs: ${g.outputs.map((o) => o.name).join(', ') || 'none'})`);
  const lossNode = g.nodes[loss.value]!;
  if (lossNode.type.shape.length !== 0 || lossNode.type.dtype !== 'f32') {
    throw new AdjointError(`autodiff: the loss "${opts.loss}" must be an f32 scalar, got ${lossNode.type.dtype}[${lossNode.type.shape.join(',')}]`);
  }
  const params = new Map<string, ValueId>();
  g.nodes.forEach((n, i) => n.op === 'param' && params.set(n.attrs.name, i));
  const wrt = opts.wrt ?? [...params.keys()];
  for (const name of wrt) if (!params.has(name)) throw new AdjointError(`autodiff: "${name}" is not a parameter of the graph`);

  // Only nodes that depend on a parameter and that the loss depends on carry adjoints.
  const wrtIds = new Set(wrt.map((n) => params.get(n)!));
  const dependsOnParam = g.nodes.map(() => false);
  g.nodes.forEach((n, i) => {
    dependsOnParam[i] = wrtIds.has(i) || n.inputs.some((x) => dependsOnParam[x]);
  });
  const lossNeeds = g.nodes.map(() => false);
  lossNeeds[loss.value] = true;
  for (let i = loss.value; i >= 0; i--) if (lossNeeds[i]) for (const x of g.nodes[i]!.inputs) lossNeeds[x] = true;
  const relevant = (i: ValueId) => dependsOnParam[i]! && lossNeeds[i]! && g.nodes[i]!.type.dtype === 'f32';

  const b = new GraphBuilder();
  g.nodes.forEach((n) => copyNode(b, n, n.inputs.map((x) => b.value(x))));
  const adj = new Map<ValueId, Value>();
  const accumulate = (id: ValueId, v: Value) => {
    const prev = adj.get(id);
    adj.set(id, prev ? b.add_(prev, v) : v);
  };
  adj.set(loss.value, b.full(1));
  for (let i = loss.value; i >= 0; i--) {
    const ct = adj.get(i);
    if (!ct || !relevant(i)) continue;
    const n = g.nodes[i]!;
    if (n.op === 'param' || n.op === 'input' || n.op === 'state') continue;
    const rule = VJP_RULES[n.op] as Vjp<typeof n.op>;
    const cts = rule(n as never, { b, xs: n.inputs.map((x) => b.value(x)), y: b.value(i), g: ct });
    n.inputs.forEach((x, j) => {
      const v = cts[j];
      if (v && relevant(x)) accumulate(x, v);
    });
  }

  const diagnostics: string[] = [];
  const grads = new Map<string, ValueId>();
  for (const name of wrt) {
    const id = params.get(name)!;
    let v = adj.get(id);
    if (!v) {
      diagnostics.push(`parameter "${name}" does not affect the loss "${opts.loss}": its gradient is zero`);
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
