/**
 * @file The one list of primitive ops, grouped by category, with the typed attributes of each.
 * Every layer (shape rules, interpreter, VJP rules, WGSL emission) keeps one table typed
 * `{ [K in Op]: Rule<K> }` over this list, so adding an op here is a compile error until every
 * layer has its rule. Composites (softmax, layernorm, attention, pooling, …) are not here: the
 * builder decomposes them into these primitives.
 */
import type { DType, Shape } from './dtype.js';

export const UNARY_OPS = [
  'neg', 'abs', 'exp', 'log', 'sqrt', 'rsqrt', 'reciprocal', 'tanh', 'sigmoid', 'relu', 'sin', 'cos',
] as const;
export const BINARY_OPS = ['add', 'sub', 'mul', 'div', 'max', 'min', 'pow'] as const;
export const COMPARE_OPS = ['eq', 'ne', 'lt', 'le', 'gt', 'ge'] as const;
export const REDUCE_OPS = ['reduce_sum', 'reduce_max', 'reduce_mean'] as const;
export const MOVEMENT_OPS = ['reshape', 'transpose', 'broadcast_to', 'slice', 'pad', 'concat'] as const;
export const SOURCE_OPS = ['input', 'param', 'state', 'full', 'iota'] as const;

export const OPS = [
  // sources: values that come from outside the graph or from nothing
  ...SOURCE_OPS,
  // elementwise: unary, binary (NumPy broadcasting), comparisons (1 or 0 in the operands' dtype),
  // select, conversions
  ...UNARY_OPS,
  ...BINARY_OPS,
  ...COMPARE_OPS,
  'where',
  'cast',
  'stop_gradient',
  // reductions over axes
  ...REDUCE_OPS,
  // movement: change which element sits where, never the values
  ...MOVEMENT_OPS,
  // contractions and indexing
  'matmul',
  'gather',
  'scatter_add',
  'one_hot',
  // convolution: the three bilinear views of one trilinear form (see conv2d_input_grad)
  'conv2d',
  'conv2d_input_grad',
  'conv2d_filter_grad',
  // ---- random numbers and train/eval mode (issue 16) ----
  // random_uniform(seed i32[], counter i32[]) -> f32[shape]: Threefry-2x32-20, a pure function of
  // (seed, stream) as key and (element index, counter) as counter (src/ir/random.ts)
  'random_uniform',
  // is_training: f32 scalar, 1 in the training program and 0 in the forward (eval) program; the
  // `mode` pass (src/passes/mode.ts) replaces it with a constant before anything else runs
  'is_training',
  // ---- end issue 16 ----
] as const;

export type Op = (typeof OPS)[number];
export type UnaryOp = (typeof UNARY_OPS)[number];
export type BinaryOp = (typeof BINARY_OPS)[number];
export type CompareOp = (typeof COMPARE_OPS)[number];
export type ReduceOp = (typeof REDUCE_OPS)[number];
export type MovementOp = (typeof MOVEMENT_OPS)[number];
export type SourceOp = (typeof SOURCE_OPS)[number];
export type ElementwiseOp = UnaryOp | BinaryOp | CompareOp | 'where' | 'cast' | 'stop_gradient';

const set = <T extends string>(xs: readonly T[]) => new Set<string>(xs);
const unarySet = set(UNARY_OPS);
const binarySet = set(BINARY_OPS);
const compareSet = set(COMPARE_OPS);
const reduceSet = set(REDUCE_OPS);
const movementSet = set(MOVEMENT_OPS);
const sourceSet = set(SOURCE_OPS);
const opSet = set(OPS);

export const isOp = (s: string): s is Op => opSet.has(s);
export const isUnary = (op: Op): op is UnaryOp => unarySet.has(op);
export const isBinary = (op: Op): op is BinaryOp => binarySet.has(op);
export const isCompare = (op: Op): op is CompareOp => compareSet.has(op);
export const isReduce = (op: Op): op is ReduceOp => reduceSet.has(op);
export const isMovement = (op: Op): op is MovementOp => movementSet.has(op);
export const isSource = (op: Op): op is SourceOp => sourceSet.has(op);
export const isElementwise = (op: Op): op is ElementwiseOp =>
  isUnary(op) || isBinary(op) || isCompare(op) || op === 'where' || op === 'cast' || op === 'stop_gradient';

/** How a parameter is initialized. Deterministic given the program's seed. */
export type Init =
  | { readonly kind: 'zeros' }
  | { readonly kind: 'ones' }
  | { readonly kind: 'constant'; readonly value: number }
  | { readonly kind: 'uniform'; readonly low: number; readonly high: number }
  | { readonly kind: 'normal'; readonly std: number }
  /** U(-l, l) with l = sqrt(6 / (fanIn + fanOut)); fans from the last two dims (times receptive field). */
  | { readonly kind: 'glorot_uniform' }
  /** N(0, 2 / fanIn). */
  | { readonly kind: 'he_normal' }
  /** The program's seed itself (i32 state only): the key of random_uniform, set at load. */
  | { readonly kind: 'seed' };

export interface SourceAttrs {
  readonly name: string;
  readonly shape: Shape;
  readonly dtype: DType;
}
export interface ParamAttrs extends SourceAttrs {
  readonly init: Init;
}
export interface ReduceAttrs {
  /** Normalized (non-negative, sorted, unique) axes. */
  readonly axes: readonly number[];
  readonly keepdims: boolean;
}
export interface Conv2dAttrs {
  readonly stride: readonly [number, number];
  readonly padding: readonly [number, number];
  readonly dilation: readonly [number, number];
}
type Empty = Readonly<Record<never, never>>;

/** Typed attributes of every op. */
export interface OpAttrs {
  input: SourceAttrs;
  param: ParamAttrs;
  /** Persistent non-trainable state (optimizer moments, step counters), initialized by `init`. */
  state: ParamAttrs;
  full: { readonly value: number; readonly shape: Shape; readonly dtype: DType };
  /** Index along `axis`, broadcast over the other dims. */
  iota: { readonly shape: Shape; readonly axis: number; readonly dtype: DType };
  neg: Empty; abs: Empty; exp: Empty; log: Empty; sqrt: Empty; rsqrt: Empty; reciprocal: Empty;
  tanh: Empty; sigmoid: Empty; relu: Empty; sin: Empty; cos: Empty;
  add: Empty; sub: Empty; mul: Empty; div: Empty; max: Empty; min: Empty; pow: Empty;
  eq: Empty; ne: Empty; lt: Empty; le: Empty; gt: Empty; ge: Empty;
  /** where(cond, a, b): a where cond != 0, else b; broadcasting. */
  where: Empty;
  cast: { readonly dtype: DType };
  /** Identity whose gradient is zero. */
  stop_gradient: Empty;
  reduce_sum: ReduceAttrs;
  reduce_max: ReduceAttrs;
  reduce_mean: ReduceAttrs;
  reshape: { readonly shape: Shape };
  transpose: { readonly perm: readonly number[] };
  broadcast_to: { readonly shape: Shape };
  /** out[i] = x[start + i*step] per axis; step >= 1; end exclusive. */
  slice: { readonly starts: readonly number[]; readonly ends: readonly number[]; readonly steps: readonly number[] };
  /** Per axis: `low` elements before, `high` after, `interior` between neighbours, all >= 0. */
  pad: {
    readonly low: readonly number[];
    readonly high: readonly number[];
    readonly interior: readonly number[];
    readonly value: number;
  };
  concat: { readonly axis: number };
  /** [..., M, K] @ [..., K, N] -> [..., M, N]; batch dims broadcast; rank >= 2 on both sides. */
  matmul: Empty;
  /** gather(table [V, ...], indices i32 [...]) -> [...indices, ...table[1:]]: rows of the table. */
  gather: Empty;
  /** scatter_add(indices i32 [...], updates [...indices, ...row]) -> [rows, ...row]: sums rows. */
  scatter_add: { readonly rows: number };
  /** one_hot(indices i32 [...]) -> f32 [..., depth]. */
  one_hot: { readonly depth: number };
  /** conv2d(x [N,C,H,W], w [O,C,KH,KW]) -> [N,O,OH,OW]. */
  conv2d: Conv2dAttrs;
  /** The input gradient of conv2d: (dy [N,O,OH,OW], w [O,C,KH,KW]) -> [N,C,H,W], H,W = `size`. */
  conv2d_input_grad: Conv2dAttrs & { readonly size: readonly [number, number] };
  /** The filter gradient of conv2d: (x [N,C,H,W], dy [N,O,OH,OW]) -> [O,C,KH,KW], KH,KW = `kernel`. */
  conv2d_filter_grad: Conv2dAttrs & { readonly kernel: readonly [number, number] };
  /**
   * random_uniform(seed i32[], counter i32[]) -> f32[shape] in [0, 1): element i is
   * (x0 >> 8) * 2^-24 with (x0, x1) = Threefry-2x32-20(key = (seed, stream), counter = (i, counter)).
   */
  random_uniform: { readonly shape: Shape; readonly stream: number };
  /** 1 in the training program, 0 in the forward (eval) program (an f32 scalar). */
  is_training: Empty;
}

/** How many inputs each op takes; `variadic` means one or more. */
export const ARITY: { readonly [K in Op]: number | 'variadic' } = {
  input: 0, param: 0, state: 0, full: 0, iota: 0,
  neg: 1, abs: 1, exp: 1, log: 1, sqrt: 1, rsqrt: 1, reciprocal: 1, tanh: 1, sigmoid: 1, relu: 1, sin: 1, cos: 1,
  add: 2, sub: 2, mul: 2, div: 2, max: 2, min: 2, pow: 2,
  eq: 2, ne: 2, lt: 2, le: 2, gt: 2, ge: 2,
  where: 3, cast: 1, stop_gradient: 1,
  reduce_sum: 1, reduce_max: 1, reduce_mean: 1,
  reshape: 1, transpose: 1, broadcast_to: 1, slice: 1, pad: 1, concat: 'variadic',
  matmul: 2, gather: 2, scatter_add: 2, one_hot: 1,
  conv2d: 2, conv2d_input_grad: 2, conv2d_filter_grad: 2,
  random_uniform: 2, is_training: 0,
};
