/**
 * @file The gradient test table, one row per differentiable primitive and per composite: shared by
 * the finite-difference check (test/passes/autodiff.test.ts) and the GPU check of the adjoint
 * graphs (test/gpu/grads.test.ts).
 */
import type { GraphBuilder, Value } from '../../src/ir/builder.js';
import type { Op } from '../../src/ir/ops.js';

export interface Row {
  readonly name: string;
  readonly covers: readonly Op[];
  /** Builds f(params); the loss is sum(f * fixed random weights). */
  readonly f: (b: GraphBuilder) => Value;
  /** Parameter values: positive, or away from kinks. */
  readonly gen?: (name: string, u: () => number) => number;
  /** Tolerance on the GPU when the WGSL builtins involved promise less (sin, cos: 2^-11 absolute). */
  readonly gpuTol?: number;
}

const awayFromZero = (_: string, u: () => number) => (u() < 0.5 ? -1 : 1) * (0.2 + u());
const positive = (_: string, u: () => number) => 0.3 + u();
const p = (b: GraphBuilder, name: string, shape: number[]) => b.param(name, shape);

export const ROWS: Row[] = [
  { name: 'neg, exp, tanh, sigmoid, sin, cos', covers: ['neg', 'exp', 'tanh', 'sigmoid', 'sin', 'cos', 'stop_gradient'], gpuTol: 2 ** -10,
    f: (b) => { const x = p(b, 'x', [5]); return b.add_(b.add_(b.neg(b.exp(x)), b.tanh(x)), b.mul(b.sigmoid(x), b.add_(b.sin(x), b.cos(x)))); } },
  { name: 'abs and relu away from 0', covers: ['abs', 'relu'], gen: awayFromZero,
    f: (b) => { const x = p(b, 'x', [6]); return b.mul(b.abs(x), b.relu(x)); } },
  { name: 'log, sqrt, rsqrt, reciprocal on positive inputs', covers: ['log', 'sqrt', 'rsqrt', 'reciprocal'], gen: positive,
    f: (b) => { const x = p(b, 'x', [5]); return b.add_(b.add_(b.log(x), b.sqrt(x)), b.mul(b.rsqrt(x), b.reciprocal(x))); } },
  { name: 'binary ops with broadcasting [3,4] and [4], [3,1]', covers: ['add', 'sub', 'mul', 'div'], gen: positive,
    f: (b) => { const x = p(b, 'x', [3, 4]); const y = p(b, 'y', [4]); const z = p(b, 'z', [3, 1]);
      return b.div(b.mul(b.sub(x, y), b.add_(x, z)), z); } },
  { name: 'max and min without ties', covers: ['max', 'min'],
    f: (b) => { const x = p(b, 'x', [6]); const y = p(b, 'y', [6]); return b.add_(b.maximum(x, y), b.mul(b.minimum(x, y), 3)); } },
  { name: 'pow in base and exponent', covers: ['pow'], gen: positive,
    f: (b) => b.pow(p(b, 'x', [4]), p(b, 'y', [4])) },
  { name: 'where routes the cotangent; comparisons carry none', covers: ['where', 'gt', 'lt', 'eq', 'ne', 'le', 'ge'],
    f: (b) => { const x = p(b, 'x', [6]); const y = p(b, 'y', [6]); const c = b.add_(b.add_(b.gt(x, 0), b.lt(y, 0)), b.add_(b.eq(x, y), b.ne(x, 0)));
      return b.add_(b.where(b.gt(x, y), b.mul(x, 2), b.mul(y, y)), b.mul(b.add_(b.le(x, y), b.ge(x, y)), c)); } },
  { name: 'cast f32 -> f32 passes, f32 -> i32 blocks', covers: ['cast'],
    f: (b) => { const x = p(b, 'x', [4]); return b.mul(b.cast(x, 'f32'), b.cast(b.cast(b.mul(x, 10), 'i32'), 'f32')); } },
  { name: 'reductions: sum, mean, max (no ties) over axes, keepdims', covers: ['reduce_sum', 'reduce_mean', 'reduce_max'],
    f: (b) => { const x = p(b, 'x', [3, 4, 2]); return b.add_(b.add_(b.reduceSum(x, 1), b.reduceMean(x, [1], true)), b.reduceMax(b.reduceMax(x, [1], true), [0, 2], true)); } },
  { name: 'movement: reshape, transpose, broadcast_to, strided slice, pad with interior, concat', covers: ['reshape', 'transpose', 'broadcast_to', 'slice', 'pad', 'concat'],
    f: (b) => { const x = p(b, 'x', [2, 3, 4]); const y = p(b, 'y', [3, 1]);
      const s = b.slice(b.transpose(x, [2, 0, 1]), [1, 0, 0], [4, 2, 3], [2, 1, 2]);
      const q = b.pad(s, [1, 0, 0], [0, 1, 2], 0.5, [1, 0, 1]);
      return b.concat([b.reshape(q, [q.type.shape[0]!, q.type.shape[1]! * q.type.shape[2]!]), b.reshape(b.broadcastTo(y, [2, 3, 4]), [q.type.shape[0]!, 24 / q.type.shape[0]!])], 1); } },
  { name: 'matmul 2-D and batched with broadcast batch', covers: ['matmul'],
    f: (b) => b.add_(b.reduceSum(b.matmul(p(b, 'a', [2, 3, 4]), p(b, 'w', [4, 5])), 0), b.matmul(p(b, 'c', [3, 2]), p(b, 'd', [2, 5]))) },
  { name: 'gather and scatter_add (repeated indices)', covers: ['gather', 'scatter_add', 'one_hot', 'iota', 'full'],
    f: (b) => { const t = p(b, 't', [4, 3]); const idx = b.cast(b.iota([5], 0, 'f32'), 'i32'); const i2 = b.cast(b.div(b.iota([5], 0, 'f32'), 2), 'i32');
      const gth = b.gather(t, b.minimum(idx, b.full(3, [], 'i32')));
      return b.add_(b.reduceSum(b.mul(b.scatterAdd(i2, gth, 4), b.full(1.5, [4, 3])), 1), b.reduceSum(b.oneHot(i2, 4), 0)); } },
  { name: 'conv2d and its gradient ops (stride, padding, dilation)', covers: ['conv2d', 'conv2d_input_grad', 'conv2d_filter_grad'],
    f: (b) => { const x = p(b, 'x', [2, 2, 6, 5]); const w = p(b, 'w', [3, 2, 3, 2]);
      const a = { stride: [2, 1] as [number, number], padding: [1, 1] as [number, number], dilation: [1, 2] as [number, number] };
      const y = b.conv2d(x, w, a);
      const dy = p(b, 'dy', [...y.type.shape]);
      const ig = b.add('conv2d_input_grad', { ...a, size: [6, 5] }, [dy, w]);
      const fg = b.add('conv2d_filter_grad', { ...a, kernel: [3, 2] }, [x, dy]);
      return b.add_(b.add_(b.reduceSum(b.mul(y, y)), b.reduceSum(b.mul(ig, x))), b.reduceSum(b.mul(fg, fg))); } },
  { name: 'softmax and log_softmax', covers: [], f: (b) => { const x = p(b, 'x', [3, 5]); return b.add_(b.softmax(x), b.logSoftmax(x, 0)); } },
  { name: 'softmax cross-entropy against integer labels', covers: [], f: (b) => b.softmaxCrossEntropy(p(b, 'x', [4, 5]), b.input('y', [4], 'i32')) },
  { name: 'mse', covers: [], f: (b) => b.mse(p(b, 'x', [3, 4]), p(b, 't', [3, 4])) },
  { name: 'layernorm with gain and bias', covers: [], f: (b) => b.layerNorm(p(b, 'x', [3, 6]), p(b, 'g', [6]), p(b, 'h', [6])) },
  { name: 'gelu (tanh form)', covers: [], f: (b) => b.gelu(p(b, 'x', [7])) },
  { name: 'attention, causal and not', covers: [],
    f: (b) => { const q = p(b, 'q', [2, 3, 4]); const k = p(b, 'k', [2, 3, 4]); const v = p(b, 'v', [2, 3, 2]);
      return b.add_(b.attention(q, k, v), b.attention(q, k, v, true)); } },
  { name: 'max_pool2d and avg_pool2d with stride and padding', covers: [],
    f: (b) => { const x = p(b, 'x', [1, 2, 5, 5]); return b.add_(b.maxPool2d(x, { kernel: [3, 3], stride: [2, 2], padding: [1, 1] }), b.avgPool2d(x, { kernel: [3, 3], stride: [2, 2], padding: [1, 1] })); } },
  { name: 'linear (matmul + bias)', covers: [], f: (b) => b.linear(p(b, 'x', [3, 4]), p(b, 'w', [4, 2]), p(b, 'c', [2])) },
];

