/**
 * @file Reference-interpreter tests against hand-computed values. Every case runs in both
 * precisions: in float64 the result must match the literal expectation closely, and in float32 it
 * must be exactly the float32 rounding of the float64 result (for ops that round once) or match
 * within a float32 tolerance (for composites, which round at every step). Expected numbers are
 * written out literally or come from a few lines of independent arithmetic in the test (a naive
 * convolution loop over an explicitly padded array, an adjoint identity), never from the
 * interpreter itself.
 */
import { describe, expect, it } from 'vitest';
import {
  BINARY_OPS, COMPARE_OPS, F32_LOWEST, GraphBuilder, OPS, ShapeError, UNARY_OPS, evaluate, tensor, verify,
  type BinaryOp, type CompareOp, type DType, type EvalResult, type Graph, type Precision, type Shape,
  type Tensor, type UnaryOp, type Value,
} from '../../src/ir/index.js';

interface Feed {
  readonly shape: Shape;
  readonly data: readonly number[];
  readonly dtype?: DType;
}
interface Want {
  readonly shape: Shape;
  readonly data: readonly number[];
  readonly dtype?: DType;
}
type Build = (b: GraphBuilder, xs: readonly Value[]) => Value;

interface Run {
  readonly g: Graph;
  readonly r: EvalResult;
  readonly y: Tensor;
  readonly id: number;
}

/** Builds a graph with inputs x0, x1, … from `feeds`, verifies it and evaluates it. */
function run(build: Build, feeds: readonly Feed[], precision: Precision): Run {
  const b = new GraphBuilder();
  const xs = feeds.map((f, i) => b.input(`x${i}`, f.shape, f.dtype ?? 'f32'));
  const y = build(b, xs);
  b.output('y', y);
  const g = b.build();
  verify(g, 'test');
  const env = new Map(feeds.map((f, i) => [`x${i}`, tensor(f.shape, f.data, f.dtype ?? 'f32', precision)] as const));
  const r = evaluate(g, env, precision);
  return { g, r, y: r.outputs.get('y')!, id: y.id };
}

/** Indices where |got - want| > tol * max(1, |want|), with both values, for a readable failure. */
function farFrom(got: ArrayLike<number>, want: readonly number[], tol: number): string[] {
  const bad: string[] = [];
  if (got.length !== want.length) return [`length ${got.length} != ${want.length}`];
  for (let i = 0; i < want.length; i++) {
    const [g, w] = [got[i]!, want[i]!];
    if (!(Math.abs(g - w) <= tol * Math.max(1, Math.abs(w)))) bad.push(`[${i}] got ${g}, want ${w}`);
  }
  return bad;
}

interface Opts {
  /** f32 result must be exactly fround(f64 result): true for ops that round once. */
  readonly exact?: boolean;
  readonly tol32?: number;
  readonly tol64?: number;
}

/** Runs `build` in f64 and f32 and checks both against the hand-computed `want`. */
function expectBoth(build: Build, feeds: readonly Feed[], want: Want, opts: Opts = {}): { f64: Run; f32: Run } {
  const f64 = run(build, feeds, 'f64');
  const f32 = run(build, feeds, 'f32');
  const type = { dtype: want.dtype ?? 'f32', shape: [...want.shape] };
  expect(f64.y.type).toEqual(type);
  expect(f32.y.type).toEqual(type);
  if (type.dtype === 'i32') {
    expect(f64.y.data).toBeInstanceOf(Int32Array);
    expect(Array.from(f64.y.data)).toEqual(want.data);
    expect(Array.from(f32.y.data)).toEqual(want.data);
    return { f64, f32 };
  }
  expect(f64.y.data).toBeInstanceOf(Float64Array);
  expect(f32.y.data).toBeInstanceOf(Float32Array);
  expect(farFrom(f64.y.data, want.data, opts.tol64 ?? 1e-12)).toEqual([]);
  expect(farFrom(f32.y.data, want.data, opts.tol32 ?? 1e-6)).toEqual([]);
  if (opts.exact ?? true) {
    const notRounded = Array.from(f32.y.data).flatMap((v, i) =>
      v === Math.fround(f64.y.data[i]!) ? [] : [`[${i}] f32 ${v}, fround(f64) ${Math.fround(f64.y.data[i]!)}`]);
    expect(notRounded).toEqual([]);
  }
  return { f64, f32 };
}

const iotaData = (n: number) => Array.from({ length: n }, (_, i) => i);

/** A small deterministic PRNG (mulberry32) giving float32-representable values in [-1, 1). */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.fround(((t ^ (t >>> 14)) >>> 0) / 2 ** 31 - 1);
  };
}
const randomData = (rng: () => number, n: number) => Array.from({ length: n }, rng);
const numel = (shape: readonly number[]) => shape.reduce((p, d) => p * d, 1);
const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
};

describe('sources', () => {
  it('input, param and state read the environment; updates are reported by target', () => {
    for (const precision of ['f64', 'f32'] as const) {
      const b = new GraphBuilder();
      const x = b.input('x', [2]);
      const w = b.param('w', [2], { kind: 'zeros' });
      const step = b.state('step', [], { kind: 'zeros' }, 'i32');
      b.output('y', b.mul(x, w));
      b.update('step', b.add_(step, 1));
      b.update('w', b.sub(w, x));
      const g = b.build();
      const env = new Map([
        ['x', tensor([2], [1.5, -2], 'f32', precision)],
        ['w', tensor([2], [4, 0.5], 'f32', precision)],
        ['step', tensor([], [41], 'i32')],
      ]);
      const r = evaluate(g, env, precision);
      expect(Array.from(r.outputs.get('y')!.data)).toEqual([6, -1]);
      expect(Array.from(r.updates.get('step')!.data)).toEqual([42]);
      expect(Array.from(r.updates.get('w')!.data)).toEqual([2.5, 2.5]);
    }
  });

  it('a missing or mistyped input is a ShapeError naming the node', () => {
    const b = new GraphBuilder();
    b.output('y', b.relu(b.input('x', [2])));
    const g = b.build();
    expect(() => evaluate(g, new Map())).toThrowError(ShapeError);
    expect(() => evaluate(g, new Map())).toThrowError('a:f32[2] = input[name="x"]: no value given for input "x"');
    expect(() => evaluate(g, new Map([['x', tensor([3], [1, 2, 3])]]))).toThrowError(
      'a:f32[2] = input[name="x"]: input "x" expects f32[2], got f32[3]');
  });

  it('full fills a constant in either dtype', () => {
    expectBoth((b) => b.full(2.5, [2, 2]), [], { shape: [2, 2], data: [2.5, 2.5, 2.5, 2.5] });
    expectBoth((b) => b.full(-7, [3], 'i32'), [], { shape: [3], data: [-7, -7, -7], dtype: 'i32' });
  });

  it('iota counts along its axis and repeats along the others', () => {
    expectBoth((b) => b.iota([2, 3], 1), [], { shape: [2, 3], data: [0, 1, 2, 0, 1, 2], dtype: 'i32' });
    expectBoth((b) => b.iota([2, 3], 0), [], { shape: [2, 3], data: [0, 0, 0, 1, 1, 1], dtype: 'i32' });
    expectBoth((b) => b.iota([2, 2, 2], -1, 'f32'), [], { shape: [2, 2, 2], data: [0, 1, 0, 1, 0, 1, 0, 1] });
  });
});

describe('elementwise', () => {
  /** Inputs are exact in float32, so one rounding separates the f32 and f64 results. */
  const UNARY: { readonly [K in UnaryOp]: { readonly x: readonly number[]; readonly want: readonly number[] } } = {
    neg: { x: [1.5, -2, 0], want: [-1.5, 2, 0] },
    abs: { x: [-1.5, 2, 0], want: [1.5, 2, 0] },
    exp: { x: [0, 1, -1, 0.5], want: [1, 2.718281828459045, 0.36787944117144233, 1.6487212707001282] },
    log: { x: [1, 2, 0.5, 4], want: [0, 0.6931471805599453, -0.6931471805599453, 1.3862943611198906] },
    sqrt: { x: [4, 0.25, 2, 0], want: [2, 0.5, 1.4142135623730951, 0] },
    rsqrt: { x: [4, 0.25, 2], want: [0.5, 2, 0.7071067811865476] },
    reciprocal: { x: [4, -0.5, 3], want: [0.25, -2, 0.3333333333333333] },
    tanh: { x: [0, 0.5, -1], want: [0, 0.46211715726000974, -0.7615941559557649] },
    sigmoid: { x: [0, 2, -2], want: [0.5, 0.8807970779778823, 0.11920292202211755] },
    relu: { x: [-1, 0, 2.5], want: [0, 0, 2.5] },
    sin: { x: [0, 0.5, -1], want: [0, 0.479425538604203, -0.8414709848078965] },
    cos: { x: [0, 0.5, 1], want: [1, 0.8775825618903728, 0.5403023058681398] },
  };

  it('has a unary row for every unary op', () => {
    expect(Object.keys(UNARY).sort()).toEqual([...UNARY_OPS].sort());
  });

  it.each([...UNARY_OPS])('%s', (op) => {
    const { x, want } = UNARY[op];
    expectBoth((b, [a]) => b.unary(op, a!), [{ shape: [x.length], data: x }], { shape: [x.length], data: want });
  });

  it('neg, abs and relu also work on i32', () => {
    const x = { shape: [4], data: [-3, 0, 5, -2147483647], dtype: 'i32' } as const;
    expectBoth((b, [a]) => b.neg(a!), [x], { shape: [4], data: [3, 0, -5, 2147483647], dtype: 'i32' });
    expectBoth((b, [a]) => b.abs(a!), [x], { shape: [4], data: [3, 0, 5, 2147483647], dtype: 'i32' });
    expectBoth((b, [a]) => b.relu(a!), [x], { shape: [4], data: [0, 0, 5, 0], dtype: 'i32' });
  });

  /** a = [[1,2,3],[4,5,6]] with b = [2,4,0.5]; and [[1],[2]] with [[3,4,5]]. */
  const BINARY: { readonly [K in BinaryOp]: { readonly rowVec: readonly number[]; readonly outer: readonly number[] } } = {
    add: { rowVec: [3, 6, 3.5, 6, 9, 6.5], outer: [4, 5, 6, 5, 6, 7] },
    sub: { rowVec: [-1, -2, 2.5, 2, 1, 5.5], outer: [-2, -3, -4, -1, -2, -3] },
    mul: { rowVec: [2, 8, 1.5, 8, 20, 3], outer: [3, 4, 5, 6, 8, 10] },
    div: { rowVec: [0.5, 0.5, 6, 2, 1.25, 12], outer: [1 / 3, 0.25, 0.2, 2 / 3, 0.5, 0.4] },
    max: { rowVec: [2, 4, 3, 4, 5, 6], outer: [3, 4, 5, 3, 4, 5] },
    min: { rowVec: [1, 2, 0.5, 2, 4, 0.5], outer: [1, 1, 1, 2, 2, 2] },
    pow: { rowVec: [1, 16, 1.7320508075688772, 16, 625, 2.449489742783178], outer: [1, 1, 1, 8, 16, 32] },
  };

  it('has a binary row for every binary op', () => {
    expect(Object.keys(BINARY).sort()).toEqual([...BINARY_OPS].sort());
  });

  it.each([...BINARY_OPS])('%s broadcasts [2,3] with [3] and [2,1] with [1,3]', (op) => {
    const build: Build = (b, [x, y]) => b.binary(op, x!, y!);
    expectBoth(build, [{ shape: [2, 3], data: [1, 2, 3, 4, 5, 6] }, { shape: [3], data: [2, 4, 0.5] }],
      { shape: [2, 3], data: BINARY[op].rowVec });
    expectBoth(build, [{ shape: [2, 1], data: [1, 2] }, { shape: [1, 3], data: [3, 4, 5] }],
      { shape: [2, 3], data: BINARY[op].outer });
  });

  it('a number operand becomes a scalar constant of the other operand\'s dtype', () => {
    expectBoth((b, [x]) => b.sub(10, b.mul(x!, 2)), [{ shape: [3], data: [1, 2, 3] }], { shape: [3], data: [8, 6, 4] });
    expectBoth((b, [x]) => b.add_(x!, 1), [{ shape: [2], data: [1, 2], dtype: 'i32' }], { shape: [2], data: [2, 3], dtype: 'i32' });
  });

  it('i32 division truncates toward zero and x / 0 = 0', () => {
    expectBoth((b, [x, y]) => b.div(x!, y!), [
      { shape: [6], data: [7, -7, 7, -7, 5, 0], dtype: 'i32' },
      { shape: [6], data: [2, 2, -2, -2, 0, 0], dtype: 'i32' },
    ], { shape: [6], data: [3, -3, -3, 3, 0, 0], dtype: 'i32' });
  });

  it('i32 add, sub and mul wrap around like 32-bit hardware; max and min compare integers', () => {
    const feeds = [
      { shape: [3], data: [2147483647, -2147483648, 46341], dtype: 'i32' },
      { shape: [3], data: [1, 1, 46341], dtype: 'i32' },
    ] as const;
    expectBoth((b, [x, y]) => b.add_(x!, y!), feeds, { shape: [3], data: [-2147483648, -2147483647, 92682], dtype: 'i32' });
    expectBoth((b, [x, y]) => b.sub(x!, y!), feeds, { shape: [3], data: [2147483646, 2147483647, 0], dtype: 'i32' });
    // 46341^2 = 2147488281 = 2^32 - 2147479015
    expectBoth((b, [x, y]) => b.mul(x!, y!), feeds, { shape: [3], data: [2147483647, -2147483648, -2147479015], dtype: 'i32' });
    expectBoth((b, [x, y]) => b.maximum(x!, y!), feeds, { shape: [3], data: [2147483647, 1, 46341], dtype: 'i32' });
    expectBoth((b, [x, y]) => b.minimum(x!, y!), feeds, { shape: [3], data: [1, -2147483648, 46341], dtype: 'i32' });
  });

  /** a = [1,2,3] against b = [2,2,2]. */
  const COMPARE: { readonly [K in CompareOp]: readonly number[] } = {
    eq: [0, 1, 0], ne: [1, 0, 1], lt: [1, 0, 0], le: [1, 1, 0], gt: [0, 0, 1], ge: [0, 1, 1],
  };

  it.each([...COMPARE_OPS])('%s gives 1 or 0 in the operands\' dtype', (op) => {
    expect(Object.keys(COMPARE).sort()).toEqual([...COMPARE_OPS].sort());
    const build: Build = (b, [x, y]) => b.binary(op, x!, y!);
    expectBoth(build, [{ shape: [3], data: [1, 2, 3] }, { shape: [3], data: [2, 2, 2] }], { shape: [3], data: COMPARE[op] });
    expectBoth(build, [{ shape: [3], data: [1, 2, 3], dtype: 'i32' }, { shape: [], data: [2], dtype: 'i32' }],
      { shape: [3], data: COMPARE[op], dtype: 'i32' });
  });

  it('where picks a where the condition is non-zero, with broadcasting', () => {
    expectBoth((b, [c, x]) => b.where(c!, x!, -1), [{ shape: [2, 1], data: [1, 0] }, { shape: [3], data: [1, 2, 3] }],
      { shape: [2, 3], data: [1, 2, 3, -1, -1, -1] });
    expectBoth((b, [c, x, y]) => b.where(c!, x!, y!), [
      { shape: [4], data: [5, 0, -1, 0], dtype: 'i32' },
      { shape: [4], data: [1.5, 2.5, 3.5, 4.5] },
      { shape: [1], data: [0.25] },
    ], { shape: [4], data: [1.5, 0.25, 3.5, 0.25] });
  });

  it('cast f32 -> i32 truncates toward zero, saturates, and maps NaN to 0', () => {
    expectBoth((b, [x]) => b.cast(x!, 'i32'), [{ shape: [8], data: [2.75, -2.75, 0.5, -0.5, 3e9, -3e9, NaN, 2147483520] }],
      { shape: [8], data: [2, -2, 0, 0, 2147483647, -2147483648, 0, 2147483520], dtype: 'i32' });
  });

  it('cast i32 -> f32 rounds to float32 in f32 mode only', () => {
    const { f64, f32 } = expectBoth((b, [x]) => b.cast(x!, 'f32'), [{ shape: [3], data: [3, -4, 16777217], dtype: 'i32' }],
      { shape: [3], data: [3, -4, 16777217] }, { tol32: 1e-7 });
    expect(f64.y.data[2]).toBe(16777217);
    expect(f32.y.data[2]).toBe(16777216);
  });

  it('stop_gradient is the identity on values', () => {
    expectBoth((b, [x]) => b.stopGradient(x!), [{ shape: [2], data: [-1.5, 7] }], { shape: [2], data: [-1.5, 7] });
  });
});

describe('reductions', () => {
  /** x[i][j][k] = 12i + 4j + k, shape [2,3,4]. */
  const x = { shape: [2, 3, 4], data: iotaData(24) };

  it('reduce_sum over axes 0 and 2, with and without keepdims', () => {
    // sum over i, k of 12i + 4j + k = 48 + 2 (16j + 6) = 60 + 32j
    expectBoth((b, [a]) => b.reduceSum(a!, [0, 2]), [x], { shape: [3], data: [60, 92, 124] });
    expectBoth((b, [a]) => b.reduceSum(a!, [0, 2], true), [x], { shape: [1, 3, 1], data: [60, 92, 124] });
    expectBoth((b, [a]) => b.reduceSum(a!), [x], { shape: [], data: [276] });
    expectBoth((b, [a]) => b.reduceSum(a!, undefined, true), [x], { shape: [1, 1, 1], data: [276] });
  });

  it('reduce_max over several axes, and over all-negative values', () => {
    expectBoth((b, [a]) => b.reduceMax(a!, [0, 2]), [x], { shape: [3], data: [15, 19, 23] });
    expectBoth((b, [a]) => b.reduceMax(a!, 1), [x], { shape: [2, 4], data: [8, 9, 10, 11, 20, 21, 22, 23] });
    expectBoth((b, [a]) => b.reduceMax(a!, -1, true), [{ shape: [2, 3], data: [-3, -1, -2, -7, -9, -8] }],
      { shape: [2, 1], data: [-1, -7] });
  });

  it('reduce_mean divides by the number of reduced elements', () => {
    expectBoth((b, [a]) => b.reduceMean(a!, [0, 2]), [x], { shape: [3], data: [7.5, 11.5, 15.5] });
    expectBoth((b, [a]) => b.reduceMean(a!, [1, 2], true), [x], { shape: [2, 1, 1], data: [5.5, 17.5] });
  });

  it('reductions of i32 stay i32', () => {
    expectBoth((b, [a]) => b.reduceSum(a!, 0), [{ shape: [2, 2], data: [1, -5, 3, 7], dtype: 'i32' }],
      { shape: [2], data: [4, 2], dtype: 'i32' });
    expectBoth((b, [a]) => b.reduceMax(a!, 1), [{ shape: [2, 2], data: [1, -5, 3, 7], dtype: 'i32' }],
      { shape: [2], data: [1, 7], dtype: 'i32' });
  });
});

describe('movement', () => {
  it('reshape keeps the row-major order', () => {
    expectBoth((b, [a]) => b.reshape(a!, [3, 2]), [{ shape: [2, 3], data: [1, 2, 3, 4, 5, 6] }],
      { shape: [3, 2], data: [1, 2, 3, 4, 5, 6] });
    expectBoth((b, [a]) => b.reshape(a!, []), [{ shape: [1, 1], data: [9] }], { shape: [], data: [9] });
  });

  it('transpose with a 3-D permutation', () => {
    // out[k][i][j] = x[i][j][k] = 12i + 4j + k
    expectBoth((b, [a]) => b.transpose(a!, [2, 0, 1]), [{ shape: [2, 3, 4], data: iotaData(24) }], {
      shape: [4, 2, 3],
      data: [0, 4, 8, 12, 16, 20, 1, 5, 9, 13, 17, 21, 2, 6, 10, 14, 18, 22, 3, 7, 11, 15, 19, 23],
    });
    expectBoth((b, [a]) => b.mT(a!), [{ shape: [2, 3], data: [1, 2, 3, 4, 5, 6] }], { shape: [3, 2], data: [1, 4, 2, 5, 3, 6] });
  });

  it('broadcast_to repeats along size-1 and missing leading axes', () => {
    expectBoth((b, [a]) => b.broadcastTo(a!, [2, 3]), [{ shape: [3], data: [1, 2, 3] }], { shape: [2, 3], data: [1, 2, 3, 1, 2, 3] });
    expectBoth((b, [a]) => b.broadcastTo(a!, [2, 3]), [{ shape: [2, 1], data: [1, 2] }], { shape: [2, 3], data: [1, 1, 1, 2, 2, 2] });
    expectBoth((b, [a]) => b.broadcastTo(a!, [2, 2]), [{ shape: [], data: [4] }], { shape: [2, 2], data: [4, 4, 4, 4], dtype: 'f32' });
  });

  it('slice with starts, ends and steps', () => {
    // x[i][j] = 5i + j; rows 1, 3 and columns 0, 2, 4
    expectBoth((b, [a]) => b.slice(a!, [1, 0], [4, 5], [2, 2]), [{ shape: [4, 5], data: iotaData(20) }],
      { shape: [2, 3], data: [5, 7, 9, 15, 17, 19] });
    expectBoth((b, [a]) => b.slice(a!, [1], [3]), [{ shape: [4], data: [7, 8, 9, 10], dtype: 'i32' }],
      { shape: [2], data: [8, 9], dtype: 'i32' });
  });

  it('pad with low, high and interior padding and a fill value', () => {
    const m = -1;
    expectBoth((b, [a]) => b.pad(a!, [1, 0], [0, 2], m, [1, 1]), [{ shape: [2, 3], data: [1, 2, 3, 4, 5, 6] }], {
      shape: [4, 7],
      data: [
        m, m, m, m, m, m, m,
        1, m, 2, m, 3, m, m,
        m, m, m, m, m, m, m,
        4, m, 5, m, 6, m, m,
      ],
    });
  });

  it('concat on a middle axis', () => {
    expectBoth((b, xs) => b.concat(xs, 1), [
      { shape: [2, 1, 2], data: [1, 2, 3, 4] },
      { shape: [2, 2, 2], data: [5, 6, 7, 8, 9, 10, 11, 12] },
      { shape: [2, 1, 2], data: [13, 14, 15, 16] },
    ], { shape: [2, 4, 2], data: [1, 2, 5, 6, 7, 8, 13, 14, 3, 4, 9, 10, 11, 12, 15, 16] });
  });
});

describe('contractions and indexing', () => {
  it('matmul 2-D', () => {
    expectBoth((b, [x, y]) => b.matmul(x!, y!), [
      { shape: [2, 3], data: [1, 2, 3, 4, 5, 6] },
      { shape: [3, 2], data: [7, 8, 9, 10, 11, 12] },
    ], { shape: [2, 2], data: [58, 64, 139, 154] });
  });

  it('matmul with broadcast batch dims', () => {
    // a_i = [1,2] and [3,4]; b_j = [1,0]^T, [0,1]^T, [1,1]^T; out[i][j] = a_i . b_j
    expectBoth((b, [x, y]) => b.matmul(x!, y!), [
      { shape: [2, 1, 1, 2], data: [1, 2, 3, 4] },
      { shape: [3, 2, 1], data: [1, 0, 0, 1, 1, 1] },
    ], { shape: [2, 3, 1, 1], data: [1, 2, 3, 3, 4, 7] });
    expectBoth((b, [x, y]) => b.matmul(x!, y!), [
      { shape: [2, 2, 2], data: [1, 2, 3, 4, 5, 6, 7, 8] },
      { shape: [2, 2], data: [1, 1, 0, 2] },
    ], { shape: [2, 2, 2], data: [1, 5, 3, 11, 5, 17, 7, 23] });
  });

  it('gather reads rows, and zeros for out-of-range indices', () => {
    expectBoth((b, [t, i]) => b.gather(t!, i!), [
      { shape: [3, 2], data: [1, 2, 3, 4, 5, 6] },
      { shape: [2, 2], data: [2, 0, 3, -1], dtype: 'i32' },
    ], { shape: [2, 2, 2], data: [5, 6, 1, 2, 0, 0, 0, 0] });
  });

  it('scatter_add sums rows at repeated indices and drops out-of-range ones', () => {
    expectBoth((b, [i, u]) => b.scatterAdd(i!, u!, 3), [
      { shape: [5], data: [0, 2, 0, 7, -1], dtype: 'i32' },
      { shape: [5, 2], data: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] },
    ], { shape: [3, 2], data: [6, 8, 0, 0, 3, 4] });
  });

  it('one_hot sets one 1 per index, none for out-of-range ones', () => {
    expectBoth((b, [i]) => b.oneHot(i!, 3), [{ shape: [4], data: [1, 0, 3, -1], dtype: 'i32' }],
      { shape: [4, 3], data: [0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0] });
  });
});

describe('convolution', () => {
  it('conv2d with stride 2, padding 1 and dilation 2, by hand', () => {
    // x[i][j] = 4i + j + 1 (4x4), w = [[1,2],[3,4]]; with padding 1, output (i, j) reads padded
    // rows 2i, 2i+2 and columns 2j, 2j+2, i.e. x[2i-1 | 2i+1][2j-1 | 2j+1]:
    //   (0,0): 4*x[1][1] = 24;  (0,1): 3*x[1][1] + 4*x[1][3] = 18 + 32 = 50
    //   (1,0): 2*x[1][1] + 4*x[3][1] = 12 + 56 = 68;  (1,1): 6 + 2*8 + 3*14 + 4*16 = 128
    expectBoth((b, [x, w]) => b.conv2d(x!, w!, { stride: [2, 2], padding: [1, 1], dilation: [2, 2] }), [
      { shape: [1, 1, 4, 4], data: iotaData(16).map((v) => v + 1) },
      { shape: [1, 1, 2, 2], data: [1, 2, 3, 4] },
    ], { shape: [1, 1, 2, 2], data: [24, 50, 68, 128] });
  });

  /** An independent conv2d: pad x with zeros into a new array, then slide the dilated kernel. */
  function naiveConv2d(
    x: readonly number[], [n, c, h, w]: readonly number[], k: readonly number[], [o, , kh, kw]: readonly number[],
    stride: readonly [number, number], pad: readonly [number, number], dil: readonly [number, number],
  ): { shape: number[]; data: number[] } {
    const [hp, wp] = [h! + 2 * pad[0], w! + 2 * pad[1]];
    const xp = new Array<number>(n! * c! * hp * wp).fill(0);
    for (let b = 0; b < n!; b++) for (let ch = 0; ch < c!; ch++) for (let i = 0; i < h!; i++) for (let j = 0; j < w!; j++) {
      xp[((b * c! + ch) * hp + i + pad[0]) * wp + j + pad[1]] = x[((b * c! + ch) * h! + i) * w! + j]!;
    }
    const [ekh, ekw] = [(kh! - 1) * dil[0] + 1, (kw! - 1) * dil[1] + 1];
    const [oh, ow] = [Math.floor((hp - ekh) / stride[0]) + 1, Math.floor((wp - ekw) / stride[1]) + 1];
    const out: number[] = [];
    for (let b = 0; b < n!; b++) for (let oc = 0; oc < o!; oc++) for (let i = 0; i < oh; i++) for (let j = 0; j < ow; j++) {
      let s = 0;
      for (let ch = 0; ch < c!; ch++) for (let p = 0; p < kh!; p++) for (let q = 0; q < kw!; q++) {
        s += k[((oc * c! + ch) * kh! + p) * kw! + q]! * xp[((b * c! + ch) * hp + i * stride[0] + p * dil[0]) * wp + j * stride[1] + q * dil[1]]!;
      }
      out.push(s);
    }
    return { shape: [n!, o!, oh, ow], data: out };
  }

  it.each([
    { name: 'strided, padded, dilated', x: [2, 3, 7, 6], w: [2, 3, 3, 2], stride: [2, 1], padding: [1, 2], dilation: [2, 1] },
    { name: 'plain 3x3', x: [1, 2, 5, 5], w: [3, 2, 3, 3], stride: [1, 1], padding: [0, 0], dilation: [1, 1] },
    { name: '1x1 kernel, stride 3', x: [1, 4, 7, 8], w: [2, 4, 1, 1], stride: [3, 3], padding: [1, 0], dilation: [1, 1] },
  ] as const)('conv2d matches a naive loop: $name', ({ x, w, stride, padding, dilation }) => {
    const rng = random(7);
    const xd = randomData(rng, numel(x));
    const wd = randomData(rng, numel(w));
    const want = naiveConv2d(xd, x, wd, w, stride, padding, dilation);
    expectBoth((b, [xv, wv]) => b.conv2d(xv!, wv!, { stride, padding, dilation }), [
      { shape: x, data: xd },
      { shape: w, data: wd },
    ], want, { tol32: 1e-5 });
  });

  it.each([
    { x: [2, 3, 7, 6], w: [2, 3, 3, 2], stride: [2, 1], padding: [1, 2], dilation: [2, 1] },
    { x: [1, 2, 8, 8], w: [4, 2, 3, 3], stride: [2, 2], padding: [1, 1], dilation: [1, 1] },
    { x: [3, 1, 5, 4], w: [2, 1, 2, 2], stride: [1, 1], padding: [0, 0], dilation: [2, 2] },
  ] as const)('<conv2d(x,w), dy> = <x, input_grad(dy,w)> = <w, filter_grad(x,dy)> for x $x, w $w', (c) => {
    const attrs = { stride: c.stride, padding: c.padding, dilation: c.dilation };
    const rng = random(11);
    const xd = randomData(rng, numel(c.x));
    const wd = randomData(rng, numel(c.w));
    for (const precision of ['f64', 'f32'] as const) {
      const y = run((b, [x, w]) => b.conv2d(x!, w!, attrs), [{ shape: c.x, data: xd }, { shape: c.w, data: wd }], precision).y;
      const dyShape = y.type.shape;
      const dyd = randomData(rng, numel(dyShape));
      const dx = run((b, [dy, w]) => b.add('conv2d_input_grad', { ...attrs, size: [c.x[2], c.x[3]] }, [dy!, w!]),
        [{ shape: dyShape, data: dyd }, { shape: c.w, data: wd }], precision).y;
      const dw = run((b, [x, dy]) => b.add('conv2d_filter_grad', { ...attrs, kernel: [c.w[2], c.w[3]] }, [x!, dy!]),
        [{ shape: c.x, data: xd }, { shape: dyShape, data: dyd }], precision).y;
      expect(dx.type.shape).toEqual(c.x);
      expect(dw.type.shape).toEqual(c.w);
      const [a, bb, cc] = [dot(y.data, dyd), dot(xd, dx.data), dot(wd, dw.data)];
      const tol = (precision === 'f64' ? 1e-12 : 1e-5) * Math.max(1, Math.abs(a));
      expect(Math.abs(a - bb)).toBeLessThanOrEqual(tol);
      expect(Math.abs(a - cc)).toBeLessThanOrEqual(tol);
    }
  });
});

describe('composites', () => {
  /** The composite left no op of its own name: it is made of primitives only. */
  function expectDecomposed(g: Graph, composite: string, uses: readonly string[]): void {
    const ops = g.nodes.map((n) => n.op as string);
    expect(ops).not.toContain(composite);
    expect(ops.filter((op) => !(OPS as readonly string[]).includes(op))).toEqual([]);
    for (const op of uses) expect(ops).toContain(op);
  }
  const ln = Math.log;

  it('softmax', () => {
    const { f64 } = expectBoth((b, [x]) => b.softmax(x!), [{ shape: [3, 2], data: [0, 0, ln(3), 0, 1000, 1000] }],
      { shape: [3, 2], data: [0.5, 0.5, 0.75, 0.25, 0.5, 0.5] }, { exact: false });
    expectDecomposed(f64.g, 'softmax', ['reduce_max', 'stop_gradient', 'exp', 'reduce_sum', 'div']);
    expectBoth((b, [x]) => b.softmax(x!, 0), [{ shape: [2, 2], data: [ln(3), 0, 0, 0] }],
      { shape: [2, 2], data: [0.75, 0.5, 0.25, 0.5] }, { exact: false });
  });

  it('log_softmax', () => {
    const { f64 } = expectBoth((b, [x]) => b.logSoftmax(x!), [{ shape: [1, 2], data: [ln(3), 0] }],
      { shape: [1, 2], data: [-0.2876820724517809, -1.3862943611198906] }, { exact: false });
    expectDecomposed(f64.g, 'log_softmax', ['reduce_max', 'exp', 'log', 'sub']);
  });

  it('softmax_cross_entropy: mean over the batch of -log p[label]', () => {
    // p = [1/2, 1/4, 1/4] and [1/3, 1/3, 1/3]; labels 0 and 2: (ln 2 + ln 3) / 2 = ln(6) / 2
    const { f64 } = expectBoth((b, [x, y]) => b.softmaxCrossEntropy(x!, y!), [
      { shape: [2, 3], data: [ln(2), 0, 0, 0, 0, 0] },
      { shape: [2], data: [0, 2], dtype: 'i32' },
    ], { shape: [], data: [0.8958797346140275] }, { exact: false });
    expectDecomposed(f64.g, 'softmax_cross_entropy', ['one_hot', 'reduce_mean', 'neg']);
  });

  it('mse: mean of squared differences', () => {
    const { f64 } = expectBoth((b, [p, t]) => b.mse(p!, t!), [
      { shape: [2, 2], data: [1, 2, 3, 4] },
      { shape: [2, 2], data: [1, 1, 1, 1] },
    ], { shape: [], data: [3.5] });
    expectDecomposed(f64.g, 'mse', ['sub', 'mul', 'reduce_mean']);
  });

  it('layernorm over the last axis, with gamma, beta and eps', () => {
    // rows [1,3] and [0,4]: mean 2, variance 1 and 4
    const s1 = 1 / Math.sqrt(1 + 1e-5);
    const s2 = 2 / Math.sqrt(4 + 1e-5);
    const { f64 } = expectBoth((b, [x, g, be]) => b.layerNorm(x!, g!, be!), [
      { shape: [2, 2], data: [1, 3, 0, 4] },
      { shape: [2], data: [2, 0.5] },
      { shape: [2], data: [0, 1] },
    ], { shape: [2, 2], data: [-2 * s1, 0.5 * s1 + 1, -2 * s2, 0.5 * s2 + 1] }, { exact: false });
    expectDecomposed(f64.g, 'layernorm', ['reduce_mean', 'rsqrt']);
    // [1,2,3,4]: mean 2.5, variance 1.25, 1 / sqrt(1.25) = 0.8944271909999159
    expectBoth((b, [x]) => b.layerNorm(x!, undefined, undefined, 0), [{ shape: [4], data: [1, 2, 3, 4] }],
      { shape: [4], data: [-1.3416407864998738, -0.4472135954999579, 0.4472135954999579, 1.3416407864998738] }, { exact: false });
  });

  it('gelu, tanh form', () => {
    const { f64 } = expectBoth((b, [x]) => b.gelu(x!), [{ shape: [5], data: [0, 1, -1, 2, 0.5] }], {
      shape: [5],
      data: [0, 0.8411919906082768, -0.15880800939172324, 1.954597694087775, 0.34571400982514394],
    }, { exact: false });
    expectDecomposed(f64.g, 'gelu', ['tanh', 'mul', 'add']);
  });

  describe('attention, T=3, d=2', () => {
    // Every query is [sqrt(2) ln 2, 0]; keys are [1,0], [0,0], [0,0]: scaled scores are ln 2, 0, 0,
    // so the softmax weights are 1/2, 1/4, 1/4 (or 2/3, 1/3 over two keys, 1 over one).
    const q = Math.SQRT2 * Math.LN2;
    const feeds: readonly Feed[] = [
      { shape: [3, 2], data: [q, 0, q, 0, q, 0] },
      { shape: [3, 2], data: [1, 0, 0, 0, 0, 0] },
      { shape: [3, 2], data: [1, 2, 3, 4, 5, 6] },
    ];
    /** The softmax weights: the first operand of the final matmul. */
    const weights = (r: Run) => Array.from(r.r.values[r.g.nodes[r.id]!.inputs[0]!]!.data);

    it('without a mask every row mixes all values', () => {
      const { f64, f32 } = expectBoth((b, [x, k, v]) => b.attention(x!, k!, v!), feeds,
        { shape: [3, 2], data: [2.5, 3.5, 2.5, 3.5, 2.5, 3.5] }, { exact: false });
      expectDecomposed(f64.g, 'attention', ['matmul', 'transpose', 'exp', 'div']);
      for (const r of [f64, f32]) expect(farFrom(weights(r), [0.5, 0.25, 0.25, 0.5, 0.25, 0.25, 0.5, 0.25, 0.25], 1e-6)).toEqual([]);
    });

    it('with a causal mask row t mixes values 0..t, and masked weights are exactly zero', () => {
      const { f64, f32 } = expectBoth((b, [x, k, v]) => b.attention(x!, k!, v!, true), feeds,
        { shape: [3, 2], data: [1, 2, 5 / 3, 8 / 3, 2.5, 3.5] }, { exact: false });
      expectDecomposed(f64.g, 'attention', ['iota', 'ge', 'where']);
      for (const r of [f64, f32]) {
        const w = weights(r);
        expect([w[1], w[2], w[5]]).toEqual([0, 0, 0]);
        expect(farFrom(w, [1, 0, 0, 2 / 3, 1 / 3, 0, 0.5, 0.25, 0.25], 1e-6)).toEqual([]);
      }
      expect(F32_LOWEST).toBe(-3.4028234663852886e38);
    });
  });

  describe('pooling', () => {
    // channel 0: x[i][j] = 4i + j + 1; channel 1: its negation
    const x: Feed = { shape: [1, 2, 4, 4], data: [...iotaData(16).map((v) => v + 1), ...iotaData(16).map((v) => -(v + 1))] };
    // kernel 2, stride 2, padding 1 on 4x4: windows cover rows/cols {0}, {1,2}, {3}
    it('max_pool2d with stride and padding ignores the padding', () => {
      const { f64 } = expectBoth((b, [a]) => b.maxPool2d(a!, { kernel: [2, 2], stride: [2, 2], padding: [1, 1] }), [x], {
        shape: [1, 2, 3, 3],
        data: [1, 3, 4, 9, 11, 12, 13, 15, 16, -1, -2, -4, -5, -6, -8, -13, -14, -16],
      });
      expectDecomposed(f64.g, 'max_pool2d', ['pad', 'slice', 'max']);
    });

    it('avg_pool2d with stride and padding counts the zero padding', () => {
      const c0 = [0.25, 1.25, 1, 3.5, 8.5, 5, 3.25, 7.25, 4];
      const { f64 } = expectBoth((b, [a]) => b.avgPool2d(a!, { kernel: [2, 2], stride: [2, 2], padding: [1, 1] }), [x], {
        shape: [1, 2, 3, 3],
        data: [...c0, ...c0.map((v) => -v)],
      });
      expectDecomposed(f64.g, 'avg_pool2d', ['pad', 'slice', 'add', 'mul']);
    });

    it('kernel 3 with stride 1 and no padding: overlapping windows', () => {
      // the max of a window is its bottom-right corner; its mean is its centre (x is linear in i, j)
      expectBoth((b, [a]) => b.maxPool2d(a!, { kernel: [3, 3], stride: [1, 1] }), [x],
        { shape: [1, 2, 2, 2], data: [11, 12, 15, 16, -1, -2, -5, -6] });
      expectBoth((b, [a]) => b.avgPool2d(a!, { kernel: [3, 3], stride: [1, 1] }), [x],
        { shape: [1, 2, 2, 2], data: [6, 7, 10, 11, -6, -7, -10, -11] }, { exact: false });
    });
  });
});
