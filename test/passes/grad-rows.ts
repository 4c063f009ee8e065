/**
 * @file The gradient test table: one row per differentiable primitive (named by `op`) and one per
 * composite, each a small function of seeded random parameters with inputs kept away from kinks
 * and ties (relu, abs, max near 0 or equal operands) and from domain edges (log, sqrt, pow on
 * positive values). Shared by the finite-difference check (test/passes/autodiff.test.ts) and the
 * GPU check of the adjoint graphs (test/gpu/grads.test.ts).
 */
import type { GraphBuilder, Value } from '../../src/ir/builder.js';
import type { Op } from '../../src/ir/ops.js';

export interface Row {
  readonly name: string;
  /** The primitive this row is about (composite rows have none). */
  readonly op?: Op;
  /** Builds f(params); the loss is sum(f * fixed random weights), so every output element matters. */
  readonly f: (b: GraphBuilder) => Value;
  /** Parameter values: positive, or away from kinks. */
  readonly gen?: (name: string, u: () => number) => number;
  /** Tolerance on the GPU when the WGSL builtins involved promise less (sin, cos: 2^-11 absolute). */
  readonly gpuTol?: number;
}

/** |x| in [0.2, 1.2), either sign. */
const awayFromZero = (_: string, u: () => number) => (u() < 0.5 ? -1 : 1) * (0.2 + u());
/** In [0.3, 1.3). */
const positive = (_: string, u: () => number) => 0.3 + u();
const p = (b: GraphBuilder, name: string, shape: number[]) => b.param(name, shape);
const conv = { stride: [2, 1] as [number, number], padding: [1, 1] as [number, number], dilation: [1, 2] as [number, number] };
/** i32 indices [0, 0, 1, 1, 2, 2, …] (repeats) of length n, built in the graph. */
const pairs = (b: GraphBuilder, n: number) => b.cast(b.div(b.iota([n], 0, 'f32'), 2), 'i32');

const unary = (op: Op & keyof GraphBuilder, gen?: Row['gen'], gpuTol?: number): Row => ({
  name: op, op, ...(gen ? { gen } : {}), ...(gpuTol ? { gpuTol } : {}),
  f: (b) => (b[op] as (x: Value) => Value)(p(b, 'x', [2, 3])),
});

export const ROWS: readonly Row[] = [
  unary('neg'),
  unary('abs', awayFromZero),
  unary('exp'),
  unary('log', positive),
  unary('sqrt', positive),
  unary('rsqrt', positive),
  unary('reciprocal', awayFromZero),
  unary('tanh'),
  unary('sigmoid'),
  unary('relu', awayFromZero),
  unary('sin', undefined, 2 ** -10),
  unary('cos', undefined, 2 ** -10),
  { name: 'add: bias [3,4] + [4]', op: 'add', f: (b) => b.add_(p(b, 'x', [3, 4]), p(b, 'y', [4])) },
  { name: 'sub: [3,1] - [1,4]', op: 'sub', f: (b) => b.sub(p(b, 'x', [3, 1]), p(b, 'y', [1, 4])) },
  { name: 'mul: [3,1] * [1,4]', op: 'mul', f: (b) => b.mul(p(b, 'x', [3, 1]), p(b, 'y', [1, 4])) },
  { name: 'div: [3,4] / [3,1]', op: 'div', gen: awayFromZero, f: (b) => b.div(p(b, 'x', [3, 4]), p(b, 'y', [3, 1])) },
  { name: 'max: [2,3] and [3], no ties', op: 'max', f: (b) => b.maximum(p(b, 'x', [2, 3]), p(b, 'y', [3])) },
  { name: 'min: [3] and [2,3], no ties', op: 'min', f: (b) => b.minimum(p(b, 'x', [3]), p(b, 'y', [2, 3])) },
  { name: 'pow: base and exponent, [2,3] ^ [3]', op: 'pow', gen: positive, f: (b) => b.pow(p(b, 'x', [2, 3]), p(b, 'y', [3])) },
  { name: 'where: routes by the condition (which depends on x but carries nothing), [2,3] and [3]', op: 'where',
    f: (b) => { const x = p(b, 'x', [2, 3]); return b.where(b.gt(x, 0), b.mul(x, x), p(b, 'y', [3])); } },
  { name: 'cast: f32 -> f32 passes, f32 -> i32 -> f32 blocks', op: 'cast',
    f: (b) => { const x = p(b, 'x', [4]); return b.mul(b.cast(x, 'f32'), b.cast(b.cast(b.mul(x, 10), 'i32'), 'f32')); } },
  { name: 'comparisons carry no gradient: x * (eq + ne + lt + le + gt + ge)',
    f: (b) => { const x = p(b, 'x', [6]); const y = p(b, 'y', [6]);
      const c = b.add_(b.add_(b.add_(b.eq(x, y), b.ne(x, 0)), b.add_(b.lt(y, 0), b.le(x, y))), b.add_(b.gt(x, 0), b.ge(x, y)));
      return b.mul(b.add_(x, y), c); } },
  { name: 'reduce_sum over axis 1, and over [0,2] with keepdims', op: 'reduce_sum',
    f: (b) => { const x = p(b, 'x', [3, 4, 2]); return b.add_(b.reshape(b.reduceSum(x, 1), [3, 1, 2]), b.reduceSum(x, [0, 2], true)); } },
  { name: 'reduce_mean over [0,2] with keepdims, and over everything', op: 'reduce_mean',
    f: (b) => { const x = p(b, 'x', [3, 4, 2]); return b.add_(b.reduceMean(x, [0, 2], true), b.reduceMean(x)); } },
  { name: 'reduce_max over axis 1, then over [0,2] with keepdims (no ties)', op: 'reduce_max',
    f: (b) => b.reduceMax(b.mul(b.reduceMax(p(b, 'x', [3, 4, 2]), 1, true), p(b, 'y', [3, 1, 2])), [0, 2], true) },
  { name: 'reshape [2,3,4] -> [4,6]', op: 'reshape', f: (b) => b.reshape(p(b, 'x', [2, 3, 4]), [4, 6]) },
  { name: 'transpose [2,3,4] by [2,0,1]', op: 'transpose', f: (b) => b.transpose(p(b, 'x', [2, 3, 4]), [2, 0, 1]) },
  { name: 'broadcast_to [3,1] -> [2,3,4]', op: 'broadcast_to', f: (b) => b.broadcastTo(p(b, 'x', [3, 1]), [2, 3, 4]) },
  { name: 'slice, strided: [5,7] from [1,0] to [5,7] by [2,3]', op: 'slice', f: (b) => b.slice(p(b, 'x', [5, 7]), [1, 0], [5, 7], [2, 3]) },
  { name: 'pad with low, high, interior and a fill value', op: 'pad', f: (b) => b.pad(p(b, 'x', [2, 3]), [1, 0], [0, 2], 0.5, [1, 2]) },
  { name: 'concat of three along axis 1', op: 'concat',
    f: (b) => b.concat([p(b, 'x', [2, 1, 3]), p(b, 'y', [2, 2, 3]), p(b, 'z', [2, 3, 3])], 1) },
  { name: 'matmul: 2-D, batched, and batch dims broadcast both ways', op: 'matmul',
    f: (b) => b.add_(b.add_(b.matmul(p(b, 'a', [2, 3, 4]), p(b, 'w', [4, 5])), b.matmul(p(b, 'c', [3, 2]), p(b, 'd', [2, 2, 5]))),
      b.matmul(p(b, 'e', [3, 3]), p(b, 'f', [3, 5]))) },
  { name: 'gather: repeated and out-of-range rows', op: 'gather',
    f: (b) => b.gather(p(b, 't', [4, 3]), b.sub(pairs(b, 11), b.full(1, [], 'i32'))) },
  { name: 'scatter_add: repeated and out-of-range rows', op: 'scatter_add',
    f: (b) => b.scatterAdd(b.sub(pairs(b, 9), b.full(1, [], 'i32')), p(b, 'u', [9, 2]), 3) },
  { name: 'conv2d with stride, padding and dilation', op: 'conv2d',
    f: (b) => b.conv2d(p(b, 'x', [2, 2, 6, 5]), p(b, 'w', [3, 2, 3, 2]), conv) },
  { name: 'conv2d_input_grad with stride, padding and dilation', op: 'conv2d_input_grad',
    f: (b) => b.add('conv2d_input_grad', { ...conv, size: [6, 5] }, [p(b, 'dy', [2, 3, 3, 5]), p(b, 'w', [3, 2, 3, 2])]) },
  { name: 'conv2d_filter_grad with stride, padding and dilation', op: 'conv2d_filter_grad',
    f: (b) => b.add('conv2d_filter_grad', { ...conv, kernel: [3, 2] }, [p(b, 'x', [2, 2, 6, 5]), p(b, 'dy', [2, 3, 3, 5])]) },
  // composites: decomposed by the builder, differentiated through their primitives
  // softmax's shift by stop_gradient(max) cancels, so finite differences agree with the blocked gradient
  { name: 'softmax', f: (b) => b.softmax(p(b, 'x', [3, 5])) },
  { name: 'log_softmax over axis 0', f: (b) => b.logSoftmax(p(b, 'x', [3, 5]), 0) },
  { name: 'softmax_cross_entropy against integer labels', f: (b) => b.softmaxCrossEntropy(p(b, 'x', [4, 5]), b.input('y', [4], 'i32')) },
  { name: 'mse', f: (b) => b.mse(p(b, 'x', [3, 4]), p(b, 't', [3, 4])) },
  { name: 'layernorm with gain and bias', f: (b) => b.layerNorm(p(b, 'x', [3, 6]), p(b, 'g', [6]), p(b, 'h', [6])) },
  { name: 'gelu (tanh form)', f: (b) => b.gelu(p(b, 'x', [7])) },
  { name: 'attention', f: (b) => b.attention(p(b, 'q', [2, 3, 4]), p(b, 'k', [2, 3, 4]), p(b, 'v', [2, 3, 2])) },
  { name: 'attention, causal (iota mask)', f: (b) => b.attention(p(b, 'q', [2, 3, 4]), p(b, 'k', [2, 3, 4]), p(b, 'v', [2, 3, 2]), true) },
  { name: 'max_pool2d 3x3, stride 2, padding 1', f: (b) => b.maxPool2d(p(b, 'x', [1, 2, 5, 5]), { kernel: [3, 3], stride: [2, 2], padding: [1, 1] }) },
  { name: 'avg_pool2d 3x3, stride 2, padding 1', f: (b) => b.avgPool2d(p(b, 'x', [1, 2, 5, 5]), { kernel: [3, 3], stride: [2, 2], padding: [1, 1] }) },
  { name: 'linear (matmul + bias)', f: (b) => b.linear(p(b, 'x', [3, 4]), p(b, 'w', [4, 2]), p(b, 'c', [2])) },
];
