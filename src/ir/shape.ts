/**
 * @file Shape and dtype rules, one per op: from the operands' types and the attributes, the type
 * of the result, or a ShapeError that says what does not fit. The builder runs these as nodes are
 * added and the verifier re-runs them after every pass.
 */
import {
  broadcastShapes, fmtShape, fmtType, numel, shapeEq, type DType, type Shape, type TensorType,
} from './dtype.js';
import { ShapeError } from './errors.js';
import { ARITY, type Op, type OpAttrs, type ReduceAttrs, type SourceAttrs, type Conv2dAttrs } from './ops.js';

export type ShapeRule<K extends Op> = (attrs: OpAttrs[K], inputs: readonly TensorType[]) => TensorType;

const MAX_DIM = 2 ** 31 - 1;

export function checkShape(shape: Shape, what = 'shape'): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 1 || d > MAX_DIM) {
      throw new ShapeError(`${what} ${fmtShape(shape)}: every dimension must be an integer >= 1`);
    }
  }
  if (numel(shape) > MAX_DIM) throw new ShapeError(`${what} ${fmtShape(shape)} has more than 2^31-1 elements`);
}

const source = (a: SourceAttrs): TensorType => {
  checkShape(a.shape);
  return { dtype: a.dtype, shape: a.shape };
};

const inp = (xs: readonly TensorType[], i: number): TensorType => {
  const t = xs[i];
  if (!t) throw new ShapeError(`missing operand ${i}`);
  return t;
};

const floatOnly = (t: TensorType, what: string): void => {
  if (t.dtype !== 'f32') throw new ShapeError(`${what} needs f32 operands, got ${fmtType(t)}`);
};

const unary = (_: unknown, xs: readonly TensorType[]): TensorType => {
  const x = inp(xs, 0);
  floatOnly(x, 'this op');
  return x;
};

const sameDtype = (xs: readonly TensorType[]): DType => {
  const d = inp(xs, 0).dtype;
  for (const x of xs) if (x.dtype !== d) throw new ShapeError(`dtypes differ: ${xs.map(fmtType).join(', ')}`);
  return d;
};

const binary = (_: unknown, xs: readonly TensorType[]): TensorType => ({
  dtype: sameDtype(xs),
  shape: broadcastShapes(inp(xs, 0).shape, inp(xs, 1).shape),
});

const floatBinary = (_: unknown, xs: readonly TensorType[]): TensorType => {
  const t = binary(_, xs);
  floatOnly(t, 'this op');
  return t;
};

function checkAxes(axes: readonly number[], rank: number, what: string): void {
  axes.forEach((a, i) => {
    if (!Number.isInteger(a) || a < 0 || a >= rank) throw new ShapeError(`${what}: axis ${a} out of range for rank ${rank}`);
    if (i > 0 && a <= axes[i - 1]!) throw new ShapeError(`${what}: axes must be sorted and unique`);
  });
}

const reduce = (a: ReduceAttrs, xs: readonly TensorType[]): TensorType => {
  const x = inp(xs, 0);
  checkAxes(a.axes, x.shape.length, 'reduce');
  const shape: number[] = [];
  x.shape.forEach((d, i) => {
    if (!a.axes.includes(i)) shape.push(d);
    else if (a.keepdims) shape.push(1);
  });
  return { dtype: x.dtype, shape };
};

function perAxis(name: string, xs: readonly number[], rank: number): void {
  if (xs.length !== rank) throw new ShapeError(`${name} has ${xs.length} entries for rank ${rank}`);
}

/** Output size of a convolution along one spatial dim. */
export function convOut(size: number, k: number, stride: number, pad: number, dil: number): number {
  return Math.floor((size + 2 * pad - dil * (k - 1) - 1) / stride) + 1;
}

function checkConvAttrs(a: Conv2dAttrs): void {
  for (const v of [...a.stride, ...a.dilation]) {
    if (!Number.isInteger(v) || v < 1) throw new ShapeError(`conv2d: stride and dilation must be integers >= 1`);
  }
  for (const v of a.padding) if (!Number.isInteger(v) || v < 0) throw new ShapeError(`conv2d: padding must be integers >= 0`);
}

/** The [N,O,OH,OW] output of conv2d for x [N,C,H,W] and w [O,C,KH,KW], checked. */
function conv2dShape(a: Conv2dAttrs, x: Shape, w: Shape): number[] {
  checkConvAttrs(a);
  if (x.length !== 4 || w.length !== 4) throw new ShapeError(`conv2d needs x [N,C,H,W] and w [O,C,KH,KW], got ${fmtShape(x)} and ${fmtShape(w)}`);
  const [n, c, h, wd] = x as [number, number, number, number];
  const [o, c2, kh, kw] = w as [number, number, number, number];
  if (c !== c2) throw new ShapeError(`conv2d: x has ${c} channels but w expects ${c2}`);
  const oh = convOut(h, kh, a.stride[0], a.padding[0], a.dilation[0]);
  const ow = convOut(wd, kw, a.stride[1], a.padding[1], a.dilation[1]);
  if (oh < 1 || ow < 1) throw new ShapeError(`conv2d: kernel ${kh}x${kw} does not fit input ${h}x${wd} with this padding`);
  return [n, o, oh, ow];
}

function expectShape(got: Shape, want: Shape, what: string): void {
  if (!shapeEq(got, want)) throw new ShapeError(`${what}: expected ${fmtShape(want)}, got ${fmtShape(got)}`);
}

export const SHAPE_RULES: { readonly [K in Op]: ShapeRule<K> } = {
  input: source,
  param: source,
  state: source,
  full: (a) => (checkShape(a.shape), { dtype: a.dtype, shape: a.shape }),
  iota: (a) => {
    checkShape(a.shape);
    checkAxes([a.axis], a.shape.length, 'iota');
    return { dtype: a.dtype, shape: a.shape };
  },
  neg: (_, xs) => inp(xs, 0),
  abs: (_, xs) => inp(xs, 0),
  exp: unary, log: unary, sqrt: unary, rsqrt: unary, reciprocal: unary,
  tanh: unary, sigmoid: unary, relu: (_, xs) => inp(xs, 0), sin: unary, cos: unary,
  add: binary, sub: binary, mul: binary, div: binary, max: binary, min: binary, pow: floatBinary,
  eq: binary, ne: binary, lt: binary, le: binary, gt: binary, ge: binary,
  where: (_, xs) => {
    const [c, a, b] = [inp(xs, 0), inp(xs, 1), inp(xs, 2)];
    return { dtype: sameDtype([a, b]), shape: broadcastShapes(c.shape, a.shape, b.shape) };
  },
  cast: (a, xs) => ({ dtype: a.dtype, shape: inp(xs, 0).shape }),
  stop_gradient: (_, xs) => inp(xs, 0),
  reduce_sum: reduce,
  reduce_max: reduce,
  reduce_mean: (a, xs) => (floatOnly(inp(xs, 0), 'reduce_mean'), reduce(a, xs)),
  reshape: (a, xs) => {
    const x = inp(xs, 0);
    checkShape(a.shape, 'reshape target');
    if (numel(a.shape) !== numel(x.shape)) {
      throw new ShapeError(`reshape: ${fmtShape(x.shape)} has ${numel(x.shape)} elements, ${fmtShape(a.shape)} has ${numel(a.shape)}`);
    }
    return { dtype: x.dtype, shape: a.shape };
  },
  transpose: (a, xs) => {
    const x = inp(xs, 0);
    const r = x.shape.length;
    const sorted = [...a.perm].sort((p, q) => p - q);
    if (a.perm.length !== r || sorted.some((p, i) => p !== i)) {
      throw new ShapeError(`transpose: perm [${a.perm.join(',')}] is not a permutation of ${r} axes`);
    }
    return { dtype: x.dtype, shape: a.perm.map((p) => x.shape[p]!) };
  },
  broadcast_to: (a, xs) => {
    const x = inp(xs, 0);
    checkShape(a.shape, 'broadcast_to target');
    const b = broadcastShapes(x.shape, a.shape);
    if (!shapeEq(b, a.shape)) throw new ShapeError(`broadcast_to: ${fmtShape(x.shape)} does not broadcast to ${fmtShape(a.shape)}`);
    return { dtype: x.dtype, shape: a.shape };
  },
  slice: (a, xs) => {
    const x = inp(xs, 0);
    const r = x.shape.length;
    perAxis('slice starts', a.starts, r);
    perAxis('slice ends', a.ends, r);
    perAxis('slice steps', a.steps, r);
    const shape = x.shape.map((d, i) => {
      const [s, e, st] = [a.starts[i]!, a.ends[i]!, a.steps[i]!];
      if (![s, e, st].every(Number.isInteger) || st < 1 || s < 0 || e > d || s >= e) {
        throw new ShapeError(`slice: axis ${i} of size ${d} cannot take start ${s}, end ${e}, step ${st}`);
      }
      return Math.ceil((e - s) / st);
    });
    return { dtype: x.dtype, shape };
  },
  pad: (a, xs) => {
    const x = inp(xs, 0);
    const r = x.shape.length;
    perAxis('pad low', a.low, r);
    perAxis('pad high', a.high, r);
    perAxis('pad interior', a.interior, r);
    if (!Number.isFinite(a.value) && a.value !== -Infinity) throw new ShapeError(`pad: value must be a number`);
    const shape = x.shape.map((d, i) => {
      const [lo, hi, inr] = [a.low[i]!, a.high[i]!, a.interior[i]!];
      if (![lo, hi, inr].every((v) => Number.isInteger(v) && v >= 0)) throw new ShapeError(`pad: amounts must be integers >= 0`);
      return lo + hi + d + (d - 1) * inr;
    });
    checkShape(shape, 'pad result');
    return { dtype: x.dtype, shape };
  },
  concat: (a, xs) => {
    const x = inp(xs, 0);
    const r = x.shape.length;
    checkAxes([a.axis], r, 'concat');
    let total = 0;
    for (const y of xs) {
      if (y.dtype !== x.dtype || y.shape.length !== r || y.shape.some((d, i) => i !== a.axis && d !== x.shape[i])) {
        throw new ShapeError(`concat on axis ${a.axis}: ${xs.map(fmtType).join(', ')} do not fit`);
      }
      total += y.shape[a.axis]!;
    }
    return { dtype: x.dtype, shape: x.shape.map((d, i) => (i === a.axis ? total : d)) };
  },
  matmul: (_, xs) => {
    const [a, b] = [inp(xs, 0), inp(xs, 1)];
    floatOnly(a, 'matmul');
    floatOnly(b, 'matmul');
    if (a.shape.length < 2 || b.shape.length < 2) throw new ShapeError(`matmul needs rank >= 2 operands, got ${fmtType(a)} and ${fmtType(b)}`);
    const [m, k] = a.shape.slice(-2) as [number, number];
    const [k2, n] = b.shape.slice(-2) as [number, number];
    if (k !== k2) throw new ShapeError(`matmul: inner dims differ: ${fmtShape(a.shape)} @ ${fmtShape(b.shape)}`);
    const batch = broadcastShapes(a.shape.slice(0, -2), b.shape.slice(0, -2));
    return { dtype: 'f32', shape: [...batch, m, n] };
  },
  gather: (_, xs) => {
    const [t, i] = [inp(xs, 0), inp(xs, 1)];
    if (i.dtype !== 'i32') throw new ShapeError(`gather: indices must be i32, got ${fmtType(i)}`);
    if (t.shape.length < 1) throw new ShapeError(`gather: table must have rank >= 1`);
    return { dtype: t.dtype, shape: [...i.shape, ...t.shape.slice(1)] };
  },
  scatter_add: (a, xs) => {
    const [i, u] = [inp(xs, 0), inp(xs, 1)];
    if (i.dtype !== 'i32') throw new ShapeError(`scatter_add: indices must be i32, got ${fmtType(i)}`);
    if (!shapeEq(u.shape.slice(0, i.shape.length), i.shape)) {
      throw new ShapeError(`scatter_add: updates ${fmtShape(u.shape)} must start with the indices' shape ${fmtShape(i.shape)}`);
    }
    const shape = [a.rows, ...u.shape.slice(i.shape.length)];
    checkShape(shape, 'scatter_add result');
    return { dtype: u.dtype, shape };
  },
  one_hot: (a, xs) => {
    const i = inp(xs, 0);
    if (i.dtype !== 'i32') throw new ShapeError(`one_hot: indices must be i32, got ${fmtType(i)}`);
    const shape = [...i.shape, a.depth];
    checkShape(shape, 'one_hot result');
    return { dtype: 'f32', shape };
  },
  conv2d: (a, xs) => {
    const [x, w] = [inp(xs, 0), inp(xs, 1)];
    floatOnly(x, 'conv2d');
    floatOnly(w, 'conv2d');
    return { dtype: 'f32', shape: conv2dShape(a, x.shape, w.shape) };
  },
  conv2d_input_grad: (a, xs) => {
    const [dy, w] = [inp(xs, 0), inp(xs, 1)];
    floatOnly(dy, 'conv2d_input_grad');
    floatOnly(w, 'conv2d_input_grad');
    if (dy.shape.length !== 4 || w.shape.length !== 4) throw new ShapeError(`conv2d_input_grad needs rank-4 operands, got ${fmtShape(dy.shape)} and ${fmtShape(w.shape)}`);
    const x = [dy.shape[0]!, w.shape[1]!, a.size[0], a.size[1]];
    checkShape(x, 'conv2d_input_grad result');
    expectShape(dy.shape, conv2dShape(a, x, w.shape), 'conv2d_input_grad: dy');
    return { dtype: 'f32', shape: x };
  },
  conv2d_filter_grad: (a, xs) => {
    const [x, dy] = [inp(xs, 0), inp(xs, 1)];
    floatOnly(x, 'conv2d_filter_grad');
    floatOnly(dy, 'conv2d_filter_grad');
    if (x.shape.length !== 4 || dy.shape.length !== 4) throw new ShapeError(`conv2d_filter_grad needs rank-4 operands, got ${fmtShape(x.shape)} and ${fmtShape(dy.shape)}`);
    const w = [dy.shape[1]!, x.shape[1]!, a.kernel[0], a.kernel[1]];
    checkShape(w, 'conv2d_filter_grad result');
    expectShape(dy.shape, conv2dShape(a, x.shape, w), 'conv2d_filter_grad: dy');
    return { dtype: 'f32', shape: w };
  },
  // ---- issue 16: random numbers and train/eval mode ----
  random_uniform: (a, xs) => {
    checkShape(a.shape);
    if (!Number.isInteger(a.stream) || a.stream < 0 || a.stream > MAX_DIM) throw new ShapeError(`random_uniform: stream must be an integer in [0, 2^31), got ${a.stream}`);
    xs.forEach((t, i) => {
      if (t.dtype !== 'i32' || t.shape.length !== 0) throw new ShapeError(`random_uniform: the ${i === 0 ? 'seed' : 'counter'} must be an i32 scalar, got ${fmtType(t)}`);
    });
    return { dtype: 'f32', shape: a.shape };
  },
  is_training: () => ({ dtype: 'f32', shape: [] }),
  // ---- end issue 16 ----
};

/** Runs the shape rule of `op`, checking arity first. */
export function inferType<K extends Op>(op: K, attrs: OpAttrs[K], inputs: readonly TensorType[]): TensorType {
  const arity = ARITY[op];
  if (arity === 'variadic' ? inputs.length < 1 : inputs.length !== arity) {
    throw new ShapeError(`${op} takes ${arity === 'variadic' ? 'one or more inputs' : arity === 1 ? '1 input' : `${arity} inputs`}, got ${inputs.length}`);
  }
  const rule = SHAPE_RULES[op] as ShapeRule<K>;
  const t = rule(attrs, inputs);
  // Broadcasting and contractions can multiply sizes: no result may exceed what a buffer can index.
  checkShape(t.shape, 'result');
  return t;
}
