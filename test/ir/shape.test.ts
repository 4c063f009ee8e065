/**
 * @file Shape-rule tests, one table row per op: the result type for ordinary and broadcasting
 * operands, and the ShapeError (with what it must say) for operands or attributes that do not fit.
 * The table is typed over every op, and a test walks OPS, so an op without a row fails twice:
 * at compile time and at run time.
 */
import { describe, expect, it } from 'vitest';
import {
  BINARY_OPS, COMPARE_OPS, OPS, ShapeError, UNARY_OPS, inferType,
  type DType, type Op, type OpAttrs, type TensorType,
} from '../../src/ir/index.js';

const f32 = (...shape: number[]): TensorType => ({ dtype: 'f32', shape });
const i32 = (...shape: number[]): TensorType => ({ dtype: 'i32', shape });

interface Ok<A> {
  readonly attrs: A;
  readonly inputs: readonly TensorType[];
  readonly want: TensorType;
}
interface Bad<A> {
  readonly attrs: A;
  readonly inputs: readonly TensorType[];
  /** What the message must say about the problem. */
  readonly error: RegExp;
}
/** The rows of one op, typed by its attributes. */
interface Rows<A> {
  readonly ok: readonly Ok<A>[];
  readonly bad: readonly Bad<A>[];
}
type Empty = OpAttrs['neg'];

const none = {};
const conv = (s: number, p: number, d: number) =>
  ({ stride: [s, s], padding: [p, p], dilation: [d, d] }) as const;

/** Elementwise float-only unary ops: any shape, f32 only. */
const floatUnary: Rows<Empty> = {
  ok: [
    { attrs: none, inputs: [f32(2, 3)], want: f32(2, 3) },
    { attrs: none, inputs: [f32()], want: f32() },
  ],
  bad: [
    { attrs: none, inputs: [i32(2)], error: /needs f32 operands, got i32\[2\]/ },
    { attrs: none, inputs: [f32(2), f32(2)], error: /takes 1 input, got 2/ },
  ],
};
/** neg, abs, relu: also defined on i32. */
const anyUnary: Rows<Empty> = {
  ok: [
    { attrs: none, inputs: [f32(2, 3)], want: f32(2, 3) },
    { attrs: none, inputs: [i32(4)], want: i32(4) },
  ],
  bad: [{ attrs: none, inputs: [], error: /takes 1 input, got 0/ }],
};
/** Binary arithmetic: NumPy broadcasting, same dtype on both sides. */
const binaryRows = (intOk: boolean): Rows<Empty> => ({
  ok: [
    { attrs: none, inputs: [f32(2, 3), f32(2, 3)], want: f32(2, 3) },
    { attrs: none, inputs: [f32(2, 3), f32(3)], want: f32(2, 3) },
    { attrs: none, inputs: [f32(2, 1), f32(1, 3)], want: f32(2, 3) },
    { attrs: none, inputs: [f32(), f32(4, 1, 5)], want: f32(4, 1, 5) },
    { attrs: none, inputs: [f32(5, 1, 1), f32(2, 7)], want: f32(5, 2, 7) },
    ...(intOk ? [{ attrs: none, inputs: [i32(4), i32()], want: i32(4) }] : []),
  ],
  bad: [
    { attrs: none, inputs: [f32(2, 3), f32(4)], error: /shapes \[2,3\] and \[4\] do not broadcast/ },
    { attrs: none, inputs: [f32(2, 3), i32(2, 3)], error: intOk ? /dtypes differ: f32\[2,3\], i32\[2,3\]/ : /dtypes differ|needs f32/ },
    ...(intOk ? [] : [{ attrs: none, inputs: [i32(2), i32(2)], error: /needs f32 operands, got i32\[2\]/ }]),
    { attrs: none, inputs: [f32(2)], error: /takes 2 inputs, got 1/ },
  ],
});
/** Comparisons: like binary ops; the result keeps the operands' dtype (1 or 0). */
const compareRows: Rows<Empty> = {
  ok: [
    { attrs: none, inputs: [f32(2, 3), f32(3)], want: f32(2, 3) },
    { attrs: none, inputs: [f32(2, 1), f32(1, 3)], want: f32(2, 3) },
    { attrs: none, inputs: [i32(3), i32(3)], want: i32(3) },
  ],
  bad: [
    { attrs: none, inputs: [f32(3), f32(2)], error: /shapes \[3\] and \[2\] do not broadcast/ },
    { attrs: none, inputs: [i32(3), f32(3)], error: /dtypes differ/ },
  ],
};
const reduceRows = (floatOnly: boolean): Rows<OpAttrs['reduce_sum']> => ({
  ok: [
    { attrs: { axes: [0, 2], keepdims: false }, inputs: [f32(2, 3, 4)], want: f32(3) },
    { attrs: { axes: [0, 2], keepdims: true }, inputs: [f32(2, 3, 4)], want: f32(1, 3, 1) },
    { attrs: { axes: [0, 1, 2], keepdims: false }, inputs: [f32(2, 3, 4)], want: f32() },
    { attrs: { axes: [], keepdims: false }, inputs: [f32(2, 3)], want: f32(2, 3) },
    ...(floatOnly ? [] : [{ attrs: { axes: [1], keepdims: false }, inputs: [i32(2, 3)], want: i32(2) }]),
  ],
  bad: [
    { attrs: { axes: [3], keepdims: false }, inputs: [f32(2, 3, 4)], error: /axis 3 out of range for rank 3/ },
    { attrs: { axes: [1, 0], keepdims: false }, inputs: [f32(2, 3, 4)], error: /axes must be sorted and unique/ },
    { attrs: { axes: [1, 1], keepdims: false }, inputs: [f32(2, 3, 4)], error: /axes must be sorted and unique/ },
    ...(floatOnly ? [{ attrs: { axes: [0], keepdims: false }, inputs: [i32(2)], error: /reduce_mean needs f32 operands, got i32\[2\]/ }] : []),
  ],
});
const source = (dtype: DType) => ({ name: 'x', shape: [2, 3], dtype });
const init = { kind: 'zeros' } as const;

const RULES: { readonly [K in Op]: Rows<OpAttrs[K]> } = {
  input: {
    ok: [
      { attrs: source('f32'), inputs: [], want: f32(2, 3) },
      { attrs: { name: 'y', shape: [], dtype: 'i32' }, inputs: [], want: i32() },
    ],
    bad: [
      { attrs: { name: 'x', shape: [2, 0], dtype: 'f32' }, inputs: [], error: /shape \[2,0\]: every dimension must be an integer >= 1/ },
      { attrs: { name: 'x', shape: [65536, 65536], dtype: 'f32' }, inputs: [], error: /shape \[65536,65536\] has more than 2\^31-1 elements/ },
      { attrs: source('f32'), inputs: [f32(1)], error: /input takes 0 inputs, got 1/ },
    ],
  },
  param: {
    ok: [{ attrs: { ...source('f32'), init }, inputs: [], want: f32(2, 3) }],
    bad: [{ attrs: { name: 'w', shape: [1.5], dtype: 'f32', init }, inputs: [], error: /shape \[1.5\]: every dimension must be an integer >= 1/ }],
  },
  state: {
    ok: [{ attrs: { name: 'step', shape: [], dtype: 'i32', init }, inputs: [], want: i32() }],
    bad: [{ attrs: { name: 'm', shape: [-1], dtype: 'f32', init }, inputs: [], error: /shape \[-1\]: every dimension must be an integer >= 1/ }],
  },
  full: {
    ok: [
      { attrs: { value: 0, shape: [], dtype: 'f32' }, inputs: [], want: f32() },
      { attrs: { value: 3, shape: [2, 2], dtype: 'i32' }, inputs: [], want: i32(2, 2) },
    ],
    bad: [{ attrs: { value: 1, shape: [0], dtype: 'f32' }, inputs: [], error: /shape \[0\]: every dimension must be an integer >= 1/ }],
  },
  iota: {
    ok: [
      { attrs: { shape: [2, 3], axis: 1, dtype: 'i32' }, inputs: [], want: i32(2, 3) },
      { attrs: { shape: [4], axis: 0, dtype: 'f32' }, inputs: [], want: f32(4) },
    ],
    bad: [
      { attrs: { shape: [2, 3], axis: 2, dtype: 'i32' }, inputs: [], error: /iota: axis 2 out of range for rank 2/ },
      { attrs: { shape: [], axis: 0, dtype: 'i32' }, inputs: [], error: /iota: axis 0 out of range for rank 0/ },
    ],
  },
  neg: anyUnary, abs: anyUnary, relu: anyUnary,
  exp: floatUnary, log: floatUnary, sqrt: floatUnary, rsqrt: floatUnary, reciprocal: floatUnary,
  tanh: floatUnary, sigmoid: floatUnary, sin: floatUnary, cos: floatUnary,
  add: binaryRows(true), sub: binaryRows(true), mul: binaryRows(true), div: binaryRows(true),
  max: binaryRows(true), min: binaryRows(true), pow: binaryRows(false),
  eq: compareRows, ne: compareRows, lt: compareRows, le: compareRows, gt: compareRows, ge: compareRows,
  where: {
    ok: [
      { attrs: none, inputs: [f32(2, 1), f32(3), f32()], want: f32(2, 3) },
      { attrs: none, inputs: [i32(4), f32(4), f32(4)], want: f32(4) },
      { attrs: none, inputs: [f32(), i32(2), i32(1)], want: i32(2) },
    ],
    bad: [
      { attrs: none, inputs: [f32(2), f32(2), i32(2)], error: /dtypes differ: f32\[2\], i32\[2\]/ },
      { attrs: none, inputs: [f32(3), f32(2), f32(2)], error: /shapes \[3\] and \[2\] and \[2\] do not broadcast/ },
      { attrs: none, inputs: [f32(2), f32(2)], error: /where takes 3 inputs, got 2/ },
    ],
  },
  cast: {
    ok: [
      { attrs: { dtype: 'i32' }, inputs: [f32(2, 3)], want: i32(2, 3) },
      { attrs: { dtype: 'f32' }, inputs: [i32(4)], want: f32(4) },
      { attrs: { dtype: 'f32' }, inputs: [f32()], want: f32() },
    ],
    bad: [{ attrs: { dtype: 'i32' }, inputs: [], error: /cast takes 1 input, got 0/ }],
  },
  stop_gradient: {
    ok: [
      { attrs: none, inputs: [f32(2, 3)], want: f32(2, 3) },
      { attrs: none, inputs: [i32(1)], want: i32(1) },
    ],
    bad: [{ attrs: none, inputs: [f32(1), f32(1)], error: /stop_gradient takes 1 input, got 2/ }],
  },
  reduce_sum: reduceRows(false),
  reduce_max: reduceRows(false),
  reduce_mean: reduceRows(true),
  reshape: {
    ok: [
      { attrs: { shape: [3, 2] }, inputs: [f32(2, 3)], want: f32(3, 2) },
      { attrs: { shape: [6] }, inputs: [i32(2, 3)], want: i32(6) },
      { attrs: { shape: [] }, inputs: [f32(1, 1)], want: f32() },
    ],
    bad: [
      { attrs: { shape: [4] }, inputs: [f32(2, 3)], error: /reshape: \[2,3\] has 6 elements, \[4\] has 4/ },
      { attrs: { shape: [-1, 6] }, inputs: [f32(6)], error: /reshape target \[-1,6\]: every dimension must be an integer >= 1/ },
    ],
  },
  transpose: {
    ok: [
      { attrs: { perm: [2, 0, 1] }, inputs: [f32(2, 3, 4)], want: f32(4, 2, 3) },
      { attrs: { perm: [1, 0] }, inputs: [i32(2, 5)], want: i32(5, 2) },
      { attrs: { perm: [] }, inputs: [f32()], want: f32() },
    ],
    bad: [
      { attrs: { perm: [0, 0] }, inputs: [f32(2, 3)], error: /transpose: perm \[0,0\] is not a permutation of 2 axes/ },
      { attrs: { perm: [1, 0] }, inputs: [f32(2, 3, 4)], error: /perm \[1,0\] is not a permutation of 3 axes/ },
    ],
  },
  broadcast_to: {
    ok: [
      { attrs: { shape: [2, 3] }, inputs: [f32(3)], want: f32(2, 3) },
      { attrs: { shape: [2, 3] }, inputs: [f32(2, 1)], want: f32(2, 3) },
      { attrs: { shape: [4, 2] }, inputs: [i32()], want: i32(4, 2) },
    ],
    bad: [
      { attrs: { shape: [3, 1] }, inputs: [f32(3)], error: /broadcast_to: \[3\] does not broadcast to \[3,1\]/ },
      { attrs: { shape: [3] }, inputs: [f32(2, 3)], error: /broadcast_to: \[2,3\] does not broadcast to \[3\]/ },
      { attrs: { shape: [3, 3] }, inputs: [f32(2, 3)], error: /shapes \[2,3\] and \[3,3\] do not broadcast/ },
    ],
  },
  slice: {
    ok: [
      { attrs: { starts: [1, 0], ends: [4, 5], steps: [2, 2] }, inputs: [f32(4, 5)], want: f32(2, 3) },
      { attrs: { starts: [0], ends: [1], steps: [1] }, inputs: [i32(3)], want: i32(1) },
    ],
    bad: [
      { attrs: { starts: [0, 0], ends: [5, 5], steps: [1, 1] }, inputs: [f32(4, 5)], error: /slice: axis 0 of size 4 cannot take start 0, end 5, step 1/ },
      { attrs: { starts: [0], ends: [3], steps: [0] }, inputs: [f32(4)], error: /axis 0 of size 4 cannot take start 0, end 3, step 0/ },
      { attrs: { starts: [2], ends: [2], steps: [1] }, inputs: [f32(4)], error: /cannot take start 2, end 2/ },
      { attrs: { starts: [0], ends: [3], steps: [1] }, inputs: [f32(4, 5)], error: /slice starts has 1 entries for rank 2/ },
    ],
  },
  pad: {
    ok: [
      { attrs: { low: [1, 0], high: [0, 2], interior: [1, 1], value: 0 }, inputs: [f32(2, 3)], want: f32(4, 7) },
      { attrs: { low: [0], high: [0], interior: [0], value: -1 }, inputs: [i32(3)], want: i32(3) },
    ],
    bad: [
      { attrs: { low: [-1], high: [0], interior: [0], value: 0 }, inputs: [f32(3)], error: /pad: amounts must be integers >= 0/ },
      { attrs: { low: [0], high: [0], interior: [0], value: 0 }, inputs: [f32(2, 3)], error: /pad low has 1 entries for rank 2/ },
      { attrs: { low: [0], high: [0], interior: [0], value: NaN }, inputs: [f32(3)], error: /pad: value must be a number/ },
    ],
  },
  concat: {
    ok: [
      { attrs: { axis: 1 }, inputs: [f32(2, 1, 2), f32(2, 2, 2), f32(2, 1, 2)], want: f32(2, 4, 2) },
      { attrs: { axis: 0 }, inputs: [i32(3)], want: i32(3) },
    ],
    bad: [
      { attrs: { axis: 1 }, inputs: [f32(2, 1, 2), f32(3, 2, 2)], error: /concat on axis 1: f32\[2,1,2\], f32\[3,2,2\] do not fit/ },
      { attrs: { axis: 0 }, inputs: [f32(2), i32(2)], error: /concat on axis 0: f32\[2\], i32\[2\] do not fit/ },
      { attrs: { axis: 2 }, inputs: [f32(2, 2)], error: /concat: axis 2 out of range for rank 2/ },
      { attrs: { axis: 0 }, inputs: [], error: /concat takes one or more inputs, got 0/ },
    ],
  },
  matmul: {
    ok: [
      { attrs: none, inputs: [f32(2, 3), f32(3, 4)], want: f32(2, 4) },
      { attrs: none, inputs: [f32(2, 1, 2, 3), f32(5, 3, 4)], want: f32(2, 5, 2, 4) },
      { attrs: none, inputs: [f32(7, 2, 3), f32(3, 1)], want: f32(7, 2, 1) },
    ],
    bad: [
      { attrs: none, inputs: [f32(2, 3), f32(4, 5)], error: /matmul: inner dims differ: \[2,3\] @ \[4,5\]/ },
      { attrs: none, inputs: [f32(3), f32(3, 4)], error: /matmul needs rank >= 2 operands, got f32\[3\] and f32\[3,4\]/ },
      { attrs: none, inputs: [i32(2, 3), i32(3, 2)], error: /matmul needs f32 operands, got i32\[2,3\]/ },
      { attrs: none, inputs: [f32(2, 2, 3), f32(3, 3, 4)], error: /shapes \[2\] and \[3\] do not broadcast/ },
    ],
  },
  gather: {
    ok: [
      { attrs: none, inputs: [f32(10, 4), i32(2, 3)], want: f32(2, 3, 4) },
      { attrs: none, inputs: [i32(5), i32(3)], want: i32(3) },
      { attrs: none, inputs: [f32(5, 2), i32()], want: f32(2) },
    ],
    bad: [
      { attrs: none, inputs: [f32(10, 4), f32(2)], error: /gather: indices must be i32, got f32\[2\]/ },
      { attrs: none, inputs: [f32(), i32(2)], error: /gather: table must have rank >= 1/ },
    ],
  },
  scatter_add: {
    ok: [
      { attrs: { rows: 3 }, inputs: [i32(4), f32(4, 2)], want: f32(3, 2) },
      { attrs: { rows: 5 }, inputs: [i32(2, 2), f32(2, 2)], want: f32(5) },
    ],
    bad: [
      { attrs: { rows: 3 }, inputs: [i32(4), f32(3, 2)], error: /scatter_add: updates \[3,2\] must start with the indices' shape \[4\]/ },
      { attrs: { rows: 3 }, inputs: [f32(4), f32(4, 2)], error: /scatter_add: indices must be i32, got f32\[4\]/ },
      { attrs: { rows: 0 }, inputs: [i32(4), f32(4, 2)], error: /scatter_add result \[0,2\]: every dimension must be an integer >= 1/ },
    ],
  },
  one_hot: {
    ok: [
      { attrs: { depth: 4 }, inputs: [i32(2, 3)], want: f32(2, 3, 4) },
      { attrs: { depth: 10 }, inputs: [i32()], want: f32(10) },
    ],
    bad: [
      { attrs: { depth: 4 }, inputs: [f32(2)], error: /one_hot: indices must be i32, got f32\[2\]/ },
      { attrs: { depth: 0 }, inputs: [i32(2)], error: /one_hot result \[2,0\]: every dimension must be an integer >= 1/ },
    ],
  },
  conv2d: {
    ok: [
      // oh = floor((8 + 2 - 2 - 1) / 2) + 1 = 4
      { attrs: conv(2, 1, 1), inputs: [f32(2, 3, 8, 8), f32(4, 3, 3, 3)], want: f32(2, 4, 4, 4) },
      // effective kernel 1 + 2 * (2 - 1) = 3; oh = floor((4 + 2 - 3) / 2) + 1 = 2
      { attrs: conv(2, 1, 2), inputs: [f32(1, 1, 4, 4), f32(1, 1, 2, 2)], want: f32(1, 1, 2, 2) },
      { attrs: { stride: [1, 2], padding: [0, 1], dilation: [1, 1] }, inputs: [f32(1, 2, 5, 6), f32(3, 2, 3, 3)], want: f32(1, 3, 3, 3) },
    ],
    bad: [
      { attrs: conv(1, 0, 1), inputs: [f32(1, 3, 5, 5), f32(2, 2, 3, 3)], error: /conv2d: x has 3 channels but w expects 2/ },
      { attrs: conv(1, 0, 1), inputs: [f32(1, 1, 2, 2), f32(1, 1, 3, 3)], error: /conv2d: kernel 3x3 does not fit input 2x2/ },
      { attrs: conv(0, 0, 1), inputs: [f32(1, 1, 5, 5), f32(1, 1, 3, 3)], error: /stride and dilation must be integers >= 1/ },
      { attrs: conv(1, 0, 1), inputs: [f32(1, 5, 5), f32(1, 1, 3, 3)], error: /conv2d needs x \[N,C,H,W\] and w \[O,C,KH,KW\], got \[1,5,5\] and \[1,1,3,3\]/ },
      { attrs: conv(1, 0, 1), inputs: [i32(1, 1, 5, 5), f32(1, 1, 3, 3)], error: /conv2d needs f32 operands, got i32\[1,1,5,5\]/ },
    ],
  },
  conv2d_input_grad: {
    ok: [
      { attrs: { ...conv(2, 1, 1), size: [8, 8] }, inputs: [f32(2, 4, 4, 4), f32(4, 3, 3, 3)], want: f32(2, 3, 8, 8) },
      // a 7x7 input also gives a 4x4 output with this stride: `size` says which one
      { attrs: { ...conv(2, 1, 1), size: [7, 7] }, inputs: [f32(2, 4, 4, 4), f32(4, 3, 3, 3)], want: f32(2, 3, 7, 7) },
    ],
    bad: [
      { attrs: { ...conv(2, 1, 1), size: [8, 8] }, inputs: [f32(2, 4, 5, 5), f32(4, 3, 3, 3)], error: /conv2d_input_grad: dy: expected \[2,4,4,4\], got \[2,4,5,5\]/ },
      { attrs: { ...conv(1, 0, 1), size: [8, 8] }, inputs: [f32(2, 4, 6), f32(4, 3, 3, 3)], error: /conv2d_input_grad needs rank-4 operands/ },
    ],
  },
  conv2d_filter_grad: {
    ok: [
      { attrs: { ...conv(2, 1, 1), kernel: [3, 3] }, inputs: [f32(2, 3, 8, 8), f32(2, 4, 4, 4)], want: f32(4, 3, 3, 3) },
      { attrs: { ...conv(1, 0, 2), kernel: [2, 2] }, inputs: [f32(1, 1, 5, 5), f32(1, 6, 3, 3)], want: f32(6, 1, 2, 2) },
    ],
    bad: [
      { attrs: { ...conv(2, 1, 1), kernel: [3, 3] }, inputs: [f32(2, 3, 8, 8), f32(2, 4, 3, 3)], error: /conv2d_filter_grad: dy: expected \[2,4,4,4\], got \[2,4,3,3\]/ },
      { attrs: { ...conv(1, 0, 1), kernel: [9, 9] }, inputs: [f32(1, 1, 4, 4), f32(1, 1, 1, 1)], error: /conv2d: kernel 9x9 does not fit input 4x4/ },
    ],
  },
  random_uniform: {
    ok: [{ attrs: { shape: [2, 3], stream: 0 }, inputs: [i32(), i32()], want: f32(2, 3) }],
    bad: [
      { attrs: { shape: [2, 3], stream: 0 }, inputs: [f32(), i32()], error: /random_uniform: the seed must be an i32 scalar, got f32\[\]/ },
      { attrs: { shape: [2, 3], stream: 0 }, inputs: [i32(), i32(2)], error: /random_uniform: the counter must be an i32 scalar, got i32\[2\]/ },
      { attrs: { shape: [2, 3], stream: -1 }, inputs: [i32(), i32()], error: /random_uniform: stream must be an integer in \[0, 2\^31\), got -1/ },
      { attrs: { shape: [0], stream: 0 }, inputs: [i32(), i32()], error: /shape \[0\]: every dimension must be an integer >= 1/ },
    ],
  },
  is_training: {
    ok: [{ attrs: {}, inputs: [], want: f32() }],
    bad: [{ attrs: {}, inputs: [f32()], error: /is_training takes 0 inputs, got 1/ }],
  },
};

const rowsOf = (op: Op): Rows<unknown> => RULES[op];
const fmt = (xs: readonly TensorType[]) => xs.map((t) => `${t.dtype}[${t.shape.join(',')}]`).join(' ') || '(none)';

describe('shape rules', () => {
  it('has ok and bad rows for every op in OPS', () => {
    const missing = OPS.filter((op) => !Object.hasOwn(RULES, op) || rowsOf(op).ok.length === 0 || rowsOf(op).bad.length === 0);
    expect(missing).toEqual([]);
    expect(Object.keys(RULES).sort()).toEqual([...OPS].sort());
  });

  describe.each([...OPS])('%s', (op) => {
    const rows = rowsOf(op);
    it.each(rows.ok.map((r) => [fmt(r.inputs), r] as const))('%s gives the expected type', (_, r) => {
      expect(inferType(op, r.attrs as never, r.inputs)).toEqual(r.want);
    });
    it.each(rows.bad.map((r) => [fmt(r.inputs), r] as const))('%s is a ShapeError that names the problem', (_, r) => {
      let err: unknown;
      try {
        inferType(op, r.attrs as never, r.inputs);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ShapeError);
      expect((err as Error).message).toMatch(r.error);
    });
  });

  it('covers every unary, binary and compare op with its own group rows', () => {
    for (const op of UNARY_OPS) expect(rowsOf(op).bad.length).toBeGreaterThan(0);
    for (const op of [...BINARY_OPS, ...COMPARE_OPS]) {
      expect(rowsOf(op).ok.some((r) => r.inputs.length === 2 && r.inputs[0]!.shape.length !== r.inputs[1]!.shape.length)).toBe(true);
    }
  });

  it('rejects any result with more than 2^31-1 elements, however it arises', () => {
    expect(() => inferType('add', {}, [f32(65536, 1), f32(1, 65536)])).toThrowError(/result \[65536,65536\] has more than 2\^31-1 elements/);
    expect(() => inferType('matmul', {}, [f32(65536, 1), f32(1, 65536)])).toThrowError(/result \[65536,65536\] has more than 2\^31-1 elements/);
  });
});
