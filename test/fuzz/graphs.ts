/**
 * @file Random valid graphs for differential fuzzing. A fast-check arbitrary produces a *recipe*
 * (input shapes, then steps, each a kind and a short stream of small numbers) and
 * {@link buildGraph} turns any recipe into a valid graph with the GraphBuilder: every choice is
 * taken modulo what is possible at that point, and when a step cannot apply as drawn it takes a
 * simpler form, so shrinking (dropping steps, numbers going to 0) always yields a valid, simpler
 * graph. 0 is the simplest choice everywhere (the most recent value, the first op, no
 * broadcasting).
 *
 * Values stay finite and the comparison with the interpreter stays meaningful:
 * - every f32 value carries a bound on its magnitude; log/sqrt/rsqrt/reciprocal read abs(x)+0.5,
 *   divisors are abs(y)+0.5, pow has base abs(x)+0.5 and an exponent within [-2, 2], exp and
 *   sin/cos get scaled inputs, and a value whose bound passes 8 is scaled back (i32 values past
 *   1e5 are divided back), so nothing overflows and a small relative error stays small;
 * - a discontinuous op (a comparison used as a 0/1 value or as a `where` condition, a cast to i32,
 *   an index) only ever reads *exact* values — ones both sides compute bit for bit (sources,
 *   constants, movement, neg/abs/relu/max/min, i32 arithmetic, multiplying by 4) — because a
 *   rounding difference in an input of `x < y` flips the result. Comparisons of rounded values
 *   appear in continuous forms only: where(x < y, x, y) and (x < y) * (x - y).
 */
import fc from 'fast-check';
import { GraphBuilder, type Value } from '../../src/ir/builder.js';
import { broadcastShapes, numel, type DType, type Shape } from '../../src/ir/dtype.js';
import type { Graph } from '../../src/ir/graph.js';
import { BINARY_OPS, COMPARE_OPS, UNARY_OPS, type BinaryOp, type UnaryOp } from '../../src/ir/ops.js';

/** The largest tensor a step may make (9^4: rank 4 with the largest dims). */
export const MAX_ELEMENTS = 6561;
const MAX_RANK = 4;
const MAX_INPUTS = 8;
/** f32 values are scaled back below this magnitude. */
const F32_BOUND = 8;
/** i32 values are divided back below this magnitude (f32 represents every such integer exactly). */
const I32_BOUND = 100_000;

export const STEP_KINDS = [
  'unary', 'binary', 'compare', 'where', 'cast', 'reduce', 'reshape', 'transpose', 'broadcast', 'slice', 'pad',
  'concat', 'matmul', 'constant', 'gather', 'one_hot', 'scatter_add', 'stop_gradient',
] as const;
export type StepKind = (typeof STEP_KINDS)[number];

export interface InputSpec {
  readonly shape: readonly number[];
  readonly dtype: DType;
}

export interface Step {
  readonly kind: StepKind;
  /** The step's choices, consumed in order; missing ones are 0. */
  readonly choices: readonly number[];
}

export interface Recipe {
  readonly inputs: readonly InputSpec[];
  readonly steps: readonly Step[];
  /** Extra outputs besides the last value (picked like operands). */
  readonly outputs: readonly number[];
  /** Seed of the input values. */
  readonly seed: number;
  /**
   * maxStorageBuffersPerShaderStage to compile for: the spec's 8, or 5 (the fewest that still
   * fit every single op: concat of 4 parts + the output), which makes fusion split more kernels.
   */
  readonly bindings: number;
  /** Built for gradient checking: see {@link RecipeOptions.differentiable}. */
  readonly differentiable?: boolean;
}

/** A dimension: often 1 (for broadcasting), otherwise 1..9. */
const dimArb = fc.oneof({ arbitrary: fc.constant(1), weight: 1 }, { arbitrary: fc.integer({ min: 1, max: 9 }), weight: 3 });
const shapeArb = fc.array(dimArb, { minLength: 0, maxLength: MAX_RANK });
const inputArb: fc.Arbitrary<InputSpec> = fc.record({
  shape: shapeArb,
  dtype: fc.oneof({ arbitrary: fc.constant<DType>('f32'), weight: 4 }, { arbitrary: fc.constant<DType>('i32'), weight: 1 }),
});

const WEIGHTS: { readonly [K in StepKind]: number } = {
  unary: 6, binary: 8, compare: 3, where: 3, cast: 2, reduce: 4, reshape: 3, transpose: 3, broadcast: 2, slice: 3,
  pad: 2, concat: 2, matmul: 3, constant: 1, gather: 1, one_hot: 1, scatter_add: 1, stop_gradient: 1,
};
const stepArb = (kinds: readonly StepKind[]): fc.Arbitrary<Step> => fc.record({
  kind: fc.oneof(...kinds.map((k) => ({ arbitrary: fc.constant(k), weight: WEIGHTS[k] }))),
  choices: fc.array(fc.nat({ max: 1000 }), { maxLength: 16, size: 'max' }),
});

export interface RecipeOptions {
  /** The most steps (default 24). */
  readonly maxSteps?: number;
  /**
   * Graphs whose gradients are checked against finite differences: no `stop_gradient` anywhere
   * (autodiff treats its operand as a constant, finite differences see through it), and the first
   * input is f32 (something to differentiate). Kinks and jumps (relu, abs, max, comparisons, casts
   * to i32) stay: the gradient check skips a coordinate whose finite differences disagree.
   */
  readonly differentiable?: boolean;
}

/** Recipes of 1-4 inputs and 1-`maxSteps` steps. */
export function recipeArb(opts: RecipeOptions = {}): fc.Arbitrary<Recipe> {
  const diff = opts.differentiable ?? false;
  const kinds = diff ? STEP_KINDS.filter((k) => k !== 'stop_gradient') : STEP_KINDS;
  const inputs = diff
    ? fc.tuple(fc.record({ shape: shapeArb, dtype: fc.constant<DType>('f32') }), fc.array(inputArb, { maxLength: 3 })).map(([x, xs]) => [x, ...xs])
    : fc.array(inputArb, { minLength: 1, maxLength: 4 });
  return fc.record({
    inputs,
    steps: fc.array(stepArb(kinds), { minLength: 1, maxLength: opts.maxSteps ?? 24, size: 'max' }),
    outputs: fc.array(fc.nat({ max: 1000 }), { maxLength: 3 }),
    seed: fc.nat({ max: 1_000_000 }),
    bindings: fc.constantFrom(8, 5),
    ...(diff ? { differentiable: fc.constant(true) } : {}),
  });
}

/** A value of the graph being built, with what the generator knows about it. */
interface Val {
  readonly v: Value;
  /** An upper bound of |x| over every element. */
  readonly bound: number;
  /** Computed bit for bit alike by the interpreter and the GPU. */
  readonly exact: boolean;
  /**
   * A bound on the absolute error the GPU may have beyond float32 rounding: sin and cos are only
   * accurate to 2^-11 in WGSL (SwiftShader uses that slack), and later ops carry the error on.
   */
  readonly err: number;
}

/** WGSL's absolute error bound of sin and cos on [-pi, pi]. */
export const SIN_COS_ERROR = 2 ** -11;
/** The tolerance of an output computed without sin or cos, relative to max(|ref|, 1). */
export const BASE_TOLERANCE = 1e-4;

/** A fuzz case: the graph, the binding limit to compile for, and the tolerance of its outputs. */
export interface FuzzCase {
  readonly graph: Graph;
  readonly bindings: number;
  /** {@link BASE_TOLERANCE} plus the largest error bound an output carries from sin or cos. */
  readonly tolerance: number;
}

/** A stream of choices: `next(n)` is in [0, n), 0 once the stream runs out. */
class Choices {
  private i = 0;
  constructor(private readonly xs: readonly number[]) {}
  next(n: number): number {
    const x = this.xs[this.i++] ?? 0;
    return n <= 1 ? 0 : x % n;
  }
  flag(): boolean {
    return this.next(2) === 1;
  }
}

const shapeOf = (x: Val): Shape => x.v.type.shape;
const dtypeOf = (x: Val): DType => x.v.type.dtype;
const rankOf = (x: Val): number => x.v.type.shape.length;

/** The broadcast shape of some shapes if they broadcast within the size limits, else undefined. */
function broadcastOk(...shapes: Shape[]): number[] | undefined {
  try {
    const s = broadcastShapes(...shapes);
    return s.length <= MAX_RANK && numel(s) <= MAX_ELEMENTS ? s : undefined;
  } catch {
    return undefined;
  }
}

function primeFactors(n: number): number[] {
  const out: number[] = [];
  for (let p = 2; n > 1; p++) {
    while (n % p === 0) {
      out.push(p);
      n /= p;
    }
  }
  return out;
}

class Gen {
  readonly b = new GraphBuilder();
  readonly pool: Val[] = [];
  private inputs = 0;

  /** `differentiable`: never make a `stop_gradient` (see {@link RecipeOptions}). */
  constructor(private readonly differentiable: boolean) {}

  /** Adds an input; values as {@link inputValue} makes them. */
  input(shape: Shape, dtype: DType): Val {
    const v = this.b.input(`x${this.inputs++}`, shape, dtype);
    return this.keep({ v, bound: dtype === 'i32' ? 3 : 1, exact: true, err: 0 });
  }

  canAddInput(): boolean {
    return this.inputs < MAX_INPUTS;
  }

  /** Records a value, first scaling it back if its bound grew too large. */
  keep(x: Val): Val {
    let out = x;
    if (dtypeOf(x) === 'f32' && x.bound > F32_BOUND) {
      const s = F32_BOUND / x.bound;
      out = { v: this.b.mul(x.v, s), bound: F32_BOUND, exact: false, err: x.err * s };
    } else if (dtypeOf(x) === 'i32' && x.bound > I32_BOUND) {
      const d = Math.ceil(x.bound / 1000);
      out = { v: this.b.div(x.v, d), bound: Math.ceil(x.bound / d), exact: true, err: 0 };
    }
    this.pool.push(out);
    return out;
  }

  /**
   * A value of the pool satisfying `ok`, counting back from the most recent (one of the last
   * three, three times in four, so that chains grow deep); undefined if none.
   */
  pick(c: Choices, ok: (x: Val) => boolean = () => true): Val | undefined {
    const cands = this.pool.filter(ok);
    if (!cands.length) return undefined;
    const recent = c.next(4) !== 3;
    return cands[cands.length - 1 - c.next(recent ? Math.min(3, cands.length) : cands.length)];
  }

  /** Some value: the pool is never empty (recipes have at least one input). */
  any(c: Choices, ok?: (x: Val) => boolean): Val {
    return this.pick(c, ok) ?? this.pool[this.pool.length - 1]!;
  }

  asF32(x: Val): Val {
    return dtypeOf(x) === 'f32' ? x : this.keep({ ...x, v: this.b.cast(x.v, 'f32') });
  }

  /** A shape that broadcasts with `s`: some dims set to 1, some leading dims dropped. */
  partnerShape(c: Choices, s: Shape): number[] {
    const drop = c.next(s.length + 1);
    return s.slice(drop).map((d) => (c.next(3) === 1 ? 1 : d));
  }

  /** A second operand for `a`: same dtype, broadcasts with it; a fresh input when chosen or needed. */
  partner(c: Choices, a: Val): Val {
    const ok = (x: Val) => dtypeOf(x) === dtypeOf(a) && broadcastOk(shapeOf(a), shapeOf(x)) !== undefined;
    if (c.next(3) === 2 && this.canAddInput()) return this.input(this.partnerShape(c, shapeOf(a)), dtypeOf(a));
    return this.pick(c, ok) ?? a;
  }

  /** An exact condition that broadcasts with `s`: an exact pool value, else `iota < k`. */
  condition(c: Choices, s: Shape): Val {
    const found = this.pick(c, (x) => x.exact && broadcastOk(shapeOf(x), s) !== undefined);
    if (found && !c.flag()) return found;
    if (s.length === 0) return this.keep({ v: this.b.full(c.next(2), [], 'i32'), bound: 1, exact: true, err: 0 });
    const axis = c.next(s.length);
    const iota = this.b.iota(s, axis, 'i32');
    return this.keep({ v: this.b.lt(iota, 1 + c.next(s[axis]!)), bound: 1, exact: true, err: 0 });
  }

  /** abs(x) + 0.5: at least 0.5, for log, sqrt, rsqrt, reciprocal, pow bases and divisors. */
  positive(x: Val): { v: Value; bound: number; err: number } {
    return { v: this.b.add_(this.b.abs(x.v), 0.5), bound: x.bound + 0.5, err: x.err };
  }

  /** x scaled so its bound is at most `max`. */
  within(x: Val, max: number): { v: Value; bound: number; err: number } {
    if (x.bound <= max) return x;
    const s = max / x.bound;
    return { v: this.b.mul(x.v, s), bound: max, err: x.err * s };
  }

  // ---- steps: each comment gives how the error bound `err` carries through --------------------

  unary(c: Choices): void {
    const x = this.any(c);
    const b = this.b;
    if (dtypeOf(x) === 'i32') {
      const op = (['neg', 'abs', 'relu'] as const)[c.next(3)]!;
      this.keep({ v: b.unary(op, x.v), bound: x.bound, exact: true, err: 0 });
      return;
    }
    const op: UnaryOp = UNARY_OPS[c.next(UNARY_OPS.length)]!;
    const f = (v: Value, bound: number, err: number) => this.keep({ v, bound, exact: false, err });
    switch (op) {
      case 'neg': case 'abs': case 'relu':
        this.keep({ v: b.unary(op, x.v), bound: x.bound, exact: x.exact, err: x.err });
        return;
      case 'exp': {
        // |exp'| <= e^bound
        const y = this.within(x, 3);
        f(b.exp(y.v), Math.exp(y.bound), Math.exp(y.bound) * y.err);
        return;
      }
      case 'log': {
        // |log'(t)| <= 2 for t >= 0.5
        const p = this.positive(x);
        f(b.log(p.v), Math.max(Math.LN2, Math.log(p.bound)), 2 * p.err);
        return;
      }
      case 'sqrt': {
        // |sqrt'(t)| <= 0.71 for t >= 0.5
        const p = this.positive(x);
        f(b.sqrt(p.v), Math.sqrt(p.bound), p.err);
        return;
      }
      case 'rsqrt':
        // |(t^-1/2)'| <= 1.42 for t >= 0.5
        f(b.rsqrt(this.positive(x).v), Math.SQRT2, 1.5 * x.err);
        return;
      case 'reciprocal':
        // |(1/t)'| <= 4 for t >= 0.5
        f(b.reciprocal(this.positive(x).v), 2, 4 * x.err);
        return;
      case 'tanh': case 'sigmoid':
        f(b.unary(op, x.v), 1, x.err);
        return;
      case 'sin': case 'cos': {
        const y = this.within(x, Math.PI);
        f(b.unary(op, y.v), 1, y.err + SIN_COS_ERROR);
        return;
      }
    }
  }

  binary(c: Choices): void {
    const a = this.any(c);
    const y = this.partner(c, a);
    const b = this.b;
    if (dtypeOf(a) === 'i32') {
      const op = (['add', 'sub', 'mul', 'div', 'max', 'min'] as const)[c.next(6)]!;
      const mulOk = a.bound * y.bound <= I32_BOUND;
      const bound = op === 'mul' ? (mulOk ? a.bound * y.bound : a.bound + y.bound) : op === 'div' || op === 'max' || op === 'min' ? Math.max(a.bound, y.bound) : a.bound + y.bound;
      // i32 division truncates and x / 0 = 0 on both sides: exact.
      this.keep({ v: b.binary(op === 'mul' && !mulOk ? 'add' : op, a.v, y.v), bound, exact: true, err: 0 });
      return;
    }
    const op: BinaryOp = BINARY_OPS[c.next(BINARY_OPS.length)]!;
    switch (op) {
      case 'add': case 'sub':
        this.keep({ v: b.binary(op, a.v, y.v), bound: a.bound + y.bound, exact: false, err: a.err + y.err });
        return;
      case 'mul':
        this.keep({ v: b.mul(a.v, y.v), bound: a.bound * y.bound, exact: false, err: a.bound * y.err + y.bound * a.err + a.err * y.err });
        return;
      case 'max': case 'min':
        this.keep({ v: b.binary(op, a.v, y.v), bound: Math.max(a.bound, y.bound), exact: a.exact && y.exact, err: Math.max(a.err, y.err) });
        return;
      case 'div': {
        // a / t with t >= 0.5: |d/da| <= 2, |d/dt| <= 4 |a|
        const d = this.positive(y);
        const v = c.flag() ? b.div(a.v, b.neg(d.v)) : b.div(a.v, d.v);
        this.keep({ v, bound: 2 * a.bound, exact: false, err: 2 * a.err + 4 * a.bound * d.err });
        return;
      }
      case 'pow': {
        // t^e, t in [0.5, T], |e| <= 2: |d/dt| <= 2 max(T, 8), |d/de| <= |t^e| max(ln T, ln 2)
        const base = this.positive(a);
        const e = this.within(y, 2);
        const bound = Math.max(base.bound ** e.bound, 2 ** e.bound);
        const err = 2 * Math.max(base.bound, 8) * base.err + bound * Math.max(Math.log(base.bound), Math.LN2) * e.err;
        this.keep({ v: b.pow(base.v, e.v), bound, exact: false, err });
        return;
      }
    }
  }

  compare(c: Choices): void {
    const a = this.any(c);
    const y = this.partner(c, a);
    const op = COMPARE_OPS[c.next(COMPARE_OPS.length)]!;
    const b = this.b;
    const cmp = b.binary(op, a.v, y.v);
    // In the continuous forms a flipped comparison changes the result by at most |a - y|, which
    // is within the operands' errors whenever the flip can happen.
    if (a.exact && y.exact) {
      this.keep({ v: cmp, bound: 1, exact: true, err: 0 });
    } else if (c.flag()) {
      this.keep({ v: b.mul(cmp, b.sub(a.v, y.v)), bound: a.bound + y.bound, exact: false, err: a.err + y.err });
    } else {
      this.keep({ v: b.where(cmp, a.v, y.v), bound: Math.max(a.bound, y.bound), exact: false, err: a.err + y.err });
    }
  }

  where(c: Choices): void {
    const a = this.any(c);
    const y = this.partner(c, a);
    const s = broadcastOk(shapeOf(a), shapeOf(y))!;
    const cond = this.condition(c, s);
    this.keep({ v: this.b.where(cond.v, a.v, y.v), bound: Math.max(a.bound, y.bound), exact: a.exact && y.exact, err: Math.max(a.err, y.err) });
  }

  cast(c: Choices): void {
    const x = this.any(c, (v) => v.exact);
    if (dtypeOf(x) === 'i32') {
      this.keep({ v: this.b.cast(x.v, 'f32'), bound: x.bound, exact: true, err: 0 });
    } else if (x.exact) {
      // Times 4 (exact in f32) so that truncation gives more than -1, 0, 1.
      this.keep({ v: this.b.cast(this.b.mul(x.v, 4), 'i32'), bound: 4 * x.bound, exact: true, err: 0 });
    } else if (!this.differentiable) {
      this.stopGradient(c);
    }
  }

  reduce(c: Choices): void {
    const x = this.any(c);
    const r = rankOf(x);
    const mask = c.next(2 ** r);
    const axes = [...Array(r).keys()].filter((i) => (mask >> i) & 1);
    const keepdims = c.flag();
    const count = numel(axes.map((i) => shapeOf(x)[i]!));
    const kinds = dtypeOf(x) === 'i32' ? (['sum', 'max'] as const) : (['sum', 'max', 'mean'] as const);
    const kind = kinds[c.next(kinds.length)]!;
    const b = this.b;
    if (kind === 'max') this.keep({ v: b.reduceMax(x.v, axes, keepdims), bound: x.bound, exact: x.exact, err: x.err });
    else if (kind === 'mean') this.keep({ v: b.reduceMean(x.v, axes, keepdims), bound: x.bound, exact: false, err: x.err });
    else this.keep({ v: b.reduceSum(x.v, axes, keepdims), bound: x.bound * count, exact: dtypeOf(x) === 'i32' || count === 1, err: x.err * count });
  }

  reshape(c: Choices): void {
    const x = this.any(c);
    const n = numel(shapeOf(x));
    let rank = c.next(MAX_RANK + 1);
    if (rank === 0 && n > 1) rank = 1;
    const dims = new Array<number>(rank).fill(1);
    for (const p of primeFactors(n)) dims[c.next(rank)]! *= p;
    this.keep({ ...x, v: this.b.reshape(x.v, dims) });
  }

  transpose(c: Choices): void {
    const x = this.any(c);
    const rest = [...Array(rankOf(x)).keys()];
    const perm: number[] = [];
    while (rest.length) perm.push(rest.splice(c.next(rest.length), 1)[0]!);
    this.keep({ ...x, v: this.b.transpose(x.v, perm) });
  }

  broadcast(c: Choices): void {
    const x = this.any(c);
    const s = shapeOf(x);
    const lead = Array.from({ length: c.next(MAX_RANK - s.length + 1) }, () => 1 + c.next(4));
    const target = [...lead, ...s.map((d) => (d === 1 ? 1 + c.next(4) : d))];
    this.keep({ ...x, v: this.b.broadcastTo(x.v, numel(target) <= MAX_ELEMENTS ? target : s) });
  }

  slice(c: Choices): void {
    const x = this.any(c);
    const starts: number[] = [];
    const ends: number[] = [];
    const steps: number[] = [];
    for (const d of shapeOf(x)) {
      const start = c.next(d);
      starts.push(start);
      ends.push(d - c.next(d - start));
      steps.push(1 + c.next(3));
    }
    this.keep({ ...x, v: this.b.slice(x.v, starts, ends, steps) });
  }

  pad(c: Choices): void {
    const x = this.any(c);
    const s = shapeOf(x);
    let low = s.map(() => c.next(3));
    let high = s.map(() => c.next(3));
    let interior = s.map(() => c.next(3));
    const value = [0, -1, 0.5, 2][c.next(4)]!;
    const size = s.reduce((p, d, i) => p * (low[i]! + high[i]! + d + (d - 1) * interior[i]!), 1);
    if (size > MAX_ELEMENTS) [low, high, interior] = [low.map(() => 0), high.map(() => 0), interior.map(() => 0)];
    this.keep({ ...x, v: this.b.pad(x.v, low, high, value, interior), bound: Math.max(x.bound, Math.abs(value)) });
  }

  concat(c: Choices): void {
    let x = this.any(c);
    if (rankOf(x) === 0) x = this.keep({ ...x, v: this.b.reshape(x.v, [1]) });
    const s = shapeOf(x);
    const axis = c.next(s.length);
    const parts = [x];
    let total = s[axis]!;
    const fits = (y: Val) =>
      dtypeOf(y) === dtypeOf(x) && rankOf(y) === s.length && shapeOf(y).every((d, i) => i === axis || d === s[i]);
    for (let k = 1 + c.next(2); k >= 1; k--) {
      let y = this.pick(c, fits) ?? x;
      if (c.next(3) === 2 && this.canAddInput()) y = this.input(s.map((d, i) => (i === axis ? 1 + c.next(4) : d)), dtypeOf(x));
      const n = shapeOf(y)[axis]!;
      if ((numel(s) / s[axis]!) * (total + n) > MAX_ELEMENTS) break;
      parts.push(y);
      total += n;
    }
    this.keep({
      v: this.b.concat(parts.map((p) => p.v), axis),
      bound: Math.max(...parts.map((p) => p.bound)),
      exact: parts.every((p) => p.exact),
      err: Math.max(...parts.map((p) => p.err)),
    });
  }

  matmul(c: Choices): void {
    let a = this.asF32(this.any(c));
    if (rankOf(a) < 2) {
      const n = numel(shapeOf(a));
      a = this.keep({ ...a, v: this.b.reshape(a.v, c.flag() ? [n, 1] : [1, n]) });
    }
    const sa = shapeOf(a);
    const k = sa.at(-1)!;
    const fits = (y: Val) => {
      const sb = shapeOf(y);
      if (dtypeOf(y) !== 'f32' || sb.length < 2 || sb.at(-2) !== k) return false;
      const batch = broadcastOk(sa.slice(0, -2), sb.slice(0, -2));
      return batch !== undefined && batch.length + 2 <= MAX_RANK && numel(batch) * sa.at(-2)! * sb.at(-1)! <= MAX_ELEMENTS;
    };
    let y = this.pick(c, fits);
    if (!y || c.next(3) === 2) {
      // A transposed operand (an inlined index change) or a fresh input [batch?, k, n].
      const t = this.pick(c, (v) => dtypeOf(v) === 'f32' && rankOf(v) === 2 && shapeOf(v)[1] === k && shapeOf(v)[0]! * sa.at(-2)! <= MAX_ELEMENTS);
      if (t && c.flag()) y = this.keep({ ...t, v: this.b.transpose(t.v, [1, 0]) });
      else if (this.canAddInput()) {
        const batch = c.flag() ? sa.slice(0, -2).map((d) => (c.flag() ? 1 : d)) : [];
        y = this.input([...batch, k, 1 + c.next(9)], 'f32');
      }
    }
    if (!y || !fits(y)) y = this.keep({ ...a, v: this.b.mT(a.v) });
    if (!fits(y)) return;
    const err = k * (a.bound * y.err + y.bound * a.err + a.err * y.err);
    this.keep({ v: this.b.matmul(a.v, y.v), bound: k * a.bound * y.bound, exact: false, err });
  }

  constant(c: Choices): void {
    const x = this.any(c);
    const s = shapeOf(x);
    if (s.length === 0 || c.flag()) {
      const value = [1.5, -2, 0.25][c.next(3)]!;
      this.keep({ v: this.b.full(value, s), bound: Math.abs(value), exact: true, err: 0 });
    } else {
      const axis = c.next(s.length);
      this.keep({ v: this.b.iota(s, axis, c.flag() ? 'i32' : 'f32'), bound: Math.max(1, s[axis]! - 1), exact: true, err: 0 });
    }
  }

  /** An i32 index value (exact by construction) satisfying `ok`, or a fresh i32 input of `shape`. */
  indices(c: Choices, ok: (x: Val) => boolean, shape: Shape): Val | undefined {
    const found = this.pick(c, (x) => dtypeOf(x) === 'i32' && ok(x));
    if (found && !c.flag()) return found;
    return this.canAddInput() ? this.input(shape, 'i32') : found;
  }

  gather(c: Choices): void {
    let table = this.any(c);
    if (rankOf(table) === 0) table = this.keep({ ...table, v: this.b.reshape(table.v, [1]) });
    const row = shapeOf(table).slice(1);
    const idx = this.indices(c, (x) => rankOf(x) + row.length <= MAX_RANK && numel(shapeOf(x)) * numel(row) <= MAX_ELEMENTS, [1 + c.next(5)]);
    if (!idx) return;
    this.keep({ ...table, v: this.b.gather(table.v, idx.v) });
  }

  oneHot(c: Choices): void {
    const depth = 1 + c.next(5);
    const idx = this.indices(c, (x) => rankOf(x) < MAX_RANK && numel(shapeOf(x)) * depth <= MAX_ELEMENTS, [1 + c.next(6)]);
    if (!idx) return;
    this.keep({ v: this.b.oneHot(idx.v, depth), bound: 1, exact: true, err: 0 });
  }

  scatterAdd(c: Choices): void {
    const idx = this.indices(c, (x) => rankOf(x) <= 2, [1 + c.next(6)]);
    if (!idx) return;
    const is = shapeOf(idx);
    const rows = 1 + c.next(6);
    const fits = (x: Val) => rankOf(x) <= is.length + 2 && is.every((d, i) => shapeOf(x)[i] === d) && rows * numel(shapeOf(x).slice(is.length)) <= MAX_ELEMENTS;
    let upd = this.pick(c, fits);
    if ((!upd || c.flag()) && this.canAddInput()) upd = this.input([...is, ...(c.flag() ? [1 + c.next(4)] : [])], c.next(4) === 3 ? 'i32' : 'f32');
    if (!upd || !fits(upd)) return;
    const count = numel(is);
    this.keep({ v: this.b.scatterAdd(idx.v, upd.v, rows), bound: upd.bound * count, exact: dtypeOf(upd) === 'i32', err: upd.err * count });
  }

  stopGradient(c: Choices): void {
    const x = this.any(c);
    this.keep({ ...x, v: this.b.stopGradient(x.v) });
  }

  step(s: Step): void {
    const c = new Choices(s.choices);
    switch (s.kind) {
      case 'unary': return this.unary(c);
      case 'binary': return this.binary(c);
      case 'compare': return this.compare(c);
      case 'where': return this.where(c);
      case 'cast': return this.cast(c);
      case 'reduce': return this.reduce(c);
      case 'reshape': return this.reshape(c);
      case 'transpose': return this.transpose(c);
      case 'broadcast': return this.broadcast(c);
      case 'slice': return this.slice(c);
      case 'pad': return this.pad(c);
      case 'concat': return this.concat(c);
      case 'matmul': return this.matmul(c);
      case 'constant': return this.constant(c);
      case 'gather': return this.gather(c);
      case 'one_hot': return this.oneHot(c);
      case 'scatter_add': return this.scatterAdd(c);
      case 'stop_gradient': return this.stopGradient(c);
    }
  }
}

/**
 * The graph of a recipe: its inputs, every step in order, and outputs — the last value made plus
 * the recipe's extra picks (values may be outputs twice, and unused values stay in the graph).
 */
export function buildCase(r: Recipe): FuzzCase {
  const gen = new Gen(r.differentiable ?? false);
  for (const i of r.inputs) gen.input(i.shape, i.dtype);
  for (const s of r.steps) gen.step(s);
  const outs = [gen.pool[gen.pool.length - 1]!, ...r.outputs.map((p) => gen.pool[gen.pool.length - 1 - (p % gen.pool.length)]!)];
  outs.forEach((x, i) => gen.b.output(`out${i}`, x.v));
  return { graph: gen.b.build(), bindings: r.bindings, tolerance: BASE_TOLERANCE + Math.max(...outs.map((x) => x.err)) };
}

/** Input values: f32 uniform in [-1, 1), i32 uniform in -3..3 (so divisions by 0 and negative indices occur). */
export function inputValue(dtype: DType, u: () => number): number {
  return dtype === 'i32' ? Math.floor(u() * 7) - 3 : 2 * u() - 1;
}
