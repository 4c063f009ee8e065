/**
 * @file Lowering: graph nodes -> kernel descriptions. One rule per op, in a table typed over the
 * whole op list: a source is always a buffer; an `inline` op is an expression of its operands at
 * given coordinates (elementwise ops, movement as index arithmetic, gather, one_hot); a
 * `contract` op is a combine over a reduction space (reductions, matmul, the three convolutions,
 * scatter_add); matmul and the convolutions also have a `gemm` form, the same sum as a matrix
 * product whose operands are index arithmetic (an implicit GEMM: no im2col buffer), which gets
 * the register-tiled kernel. A kernel is rooted at one materialized node; every operand that is not
 * materialized is inlined through these rules, so the same table serves unfused and fused code.
 */
import { shapeEq, type Shape } from '../ir/dtype.js';
import { AdjointError, internal } from '../ir/errors.js';
import type { Graph, NodeOfOp, ValueId } from '../ir/graph.js';
import { isUnary, isBinary, isCompare, type Op, type ReduceOp } from '../ir/ops.js';
import {
  add, and, arith, cast, cmp, cst, delinearize, div, int, ivar, keyOf, linearIndex, load, mod, mul, select, sub, tvar, unary,
  type Expr,
} from './expr.js';
import type { FusionPlan, KernelGroup } from './fusion.js';
import type { BufferRef, Combine, ExtraOutput, Kernel, KernelBody, RowStage } from './kernel.js';

/** The expression of a contraction: combine over `rshape` of `body(out, red)`, then `finalize`. */
export interface Contraction {
  readonly rshape: readonly number[];
  readonly combine: Combine;
  readonly body: (out: readonly Expr[], red: readonly Expr[]) => Expr;
  readonly finalize?: (acc: Expr) => Expr;
}

/**
 * A sum of products as a (batched) matrix product C[z*, mi, ni] = sum over ki of
 * lhs(z*, mi, ki) * rhs(z*, ki, ni), element (z*, mi, ni) being the output at `place` (default
 * [z*, mi, ni]). A convolution flattens its output positions into mi and its taps into ki.
 */
export interface Gemm {
  readonly batch: readonly number[];
  readonly m: number;
  readonly n: number;
  readonly k: number;
  readonly lhs: (z: readonly Expr[], mi: Expr, ki: Expr) => Expr;
  readonly rhs: (z: readonly Expr[], ki: Expr, ni: Expr) => Expr;
  readonly place?: (z: readonly Expr[], mi: Expr, ni: Expr) => Expr[];
}

type Lower<K extends Op> =
  | { readonly kind: 'source' }
  | { readonly kind: 'inline'; readonly expr: (n: NodeOfOp<K>, out: readonly Expr[], L: Lowerer) => Expr }
  | {
      readonly kind: 'contract';
      readonly form: (n: NodeOfOp<K>, L: Lowerer) => Contraction;
      /** The same contraction as an implicit GEMM (the tiled kernel), where that form exists. */
      readonly gemm?: (n: NodeOfOp<K>, L: Lowerer) => Gemm;
    };

/** Builds expressions for values at coordinates, loading materialized values from bindings. */
export class Lowerer {
  readonly inputs: BufferRef[] = [];
  readonly inlined = new Set<ValueId>();

  /** Values held in registers at the output element: an epilogue's accumulator, earlier outputs. */
  private readonly registers = new Map<ValueId, { readonly at: string; readonly value: Expr }>();

  /**
   * In-place outputs: a parameter or state updated by output `slot` of this kernel shares that
   * output's buffer, so its reads at the output element load the output binding (negative binding
   * numbers: -1 the main output, -1-i the i-th further one) before the thread overwrites it.
   */
  private readonly aliases = new Map<ValueId, { readonly slot: number; readonly at: string }>();
  /** Aliased values read where the buffer may already hold the new value: they cannot be in place. */
  readonly aliasConflicts = new Set<ValueId>();
  /** The output being computed (0 main, i the i-th further one); -1 inside the contraction's loop. */
  slot = 0;
  /** A trial lowering: a register read away from its element is recorded in `misreads`, not fatal. */
  tentative = false;
  readonly misreads = new Set<ValueId>();

  constructor(
    readonly g: Graph,
    readonly isMaterialized: (id: ValueId) => boolean,
  ) {}

  /** Reads of `id` at `coords` become `value` (the accumulator of the kernel's contraction). */
  withAccumulator(id: ValueId, coords: readonly Expr[], value: Expr): void {
    this.registers.set(id, { at: this.coordKey(id, coords), value });
  }

  /** Reads of `target` at `coords` (the output element) come from output `slot`'s own binding. */
  inPlace(target: ValueId, slot: number, coords: readonly Expr[]): void {
    this.aliases.set(target, { slot, at: this.coordKey(target, coords) });
  }

  /** Coordinates as a key; a dimension of size 1 has only one coordinate, whatever its expression. */
  private coordKey(id: ValueId, coords: readonly Expr[]): string {
    const shape = this.shape(id);
    return coords.map((c, i) => (shape[i] === 1 ? '_' : keyOf(c))).join(',');
  }

  shape(id: ValueId): Shape {
    return this.g.nodes[id]!.type.shape;
  }

  binding(ref: BufferRef): number {
    const i = this.inputs.findIndex((r) => r.kind === ref.kind && r.id === ref.id);
    if (i >= 0) return i;
    this.inputs.push(ref);
    return this.inputs.length - 1;
  }

  /** Element `coords` of value `id`. */
  value(id: ValueId, coords: readonly Expr[]): Expr {
    const n = this.g.nodes[id]!;
    const dt = n.type.dtype;
    const reg = this.registers.get(id);
    if (reg) {
      if (this.coordKey(id, coords) !== reg.at) {
        if (!this.tentative) internal(`value ${id} is read away from the output element that holds it`);
        this.misreads.add(id);
      }
      return reg.value;
    }
    const alias = this.aliases.get(id);
    if (alias) {
      // Safe only at the thread's own element, before that output is stored, outside the contraction loop.
      if (this.slot >= 0 && alias.slot >= this.slot && this.coordKey(id, coords) === alias.at) {
        return load(-1 - alias.slot, linearIndex(coords, n.type.shape), dt);
      }
      this.aliasConflicts.add(id);
    }
    if (this.isMaterialized(id)) return load(this.binding({ kind: 'value', id }), linearIndex(coords, n.type.shape), dt);
    const rule = LOWER_RULES[n.op] as Lower<typeof n.op>;
    if (rule.kind !== 'inline') internal(`value ${id} (${n.op}) must be materialized to be read`);
    this.inlined.add(id);
    return rule.expr(n as never, coords, this);
  }

  /** Element `coords` (in `to`'s shape) of value `id`, broadcast NumPy-style. */
  broadcast(id: ValueId, coords: readonly Expr[], to: Shape): Expr {
    const from = this.shape(id);
    const off = to.length - from.length;
    return this.value(id, from.map((d, i) => (d === 1 ? int(0) : coords[i + off]!)));
  }
}

const clamp = (e: Expr, lo: number, hi: number): Expr => arith('min', arith('max', e, int(lo)), int(hi));
/** lo <= e < hi; from 0, one unsigned comparison. */
const inRange = (e: Expr, lo: number, hi: number): Expr =>
  lo === 0 ? cmp('ult', e, int(hi)) : and(cmp('ge', e, int(lo)), cmp('lt', e, int(hi)));
/**
 * A coordinate that may fall outside [0, size): whether it is inside, and the coordinate, clamped
 * to 0 outside unless `clamp` is false. Implicit-GEMM operands pass false: their loads are masked
 * by `ok` and WebGPU's robust buffer access makes a read past a binding harmless (it yields a value
 * of the binding or zero), so an index stays a per-row part plus a per-step part (no selects) and
 * the K loop does a third less integer work.
 */
const guard = (e: Expr, size: number, clamp = true): { readonly ok: Expr; readonly at: Expr } => {
  const ok = inRange(e, 0, size);
  return { ok, at: clamp ? select(ok, e, int(0)) : e };
};

const elementwise = <K extends Op>(f: (n: NodeOfOp<K>, xs: Expr[]) => Expr): Lower<K> => ({
  kind: 'inline',
  expr: (n, out, L) => f(n, n.inputs.map((x) => L.broadcast(x, out, n.type.shape))),
});

const unaryRule = elementwise<Op>((n, [a]) => {
  if (!isUnary(n.op)) internal(`${n.op} is not unary`);
  return unary(n.op, a!);
});
const binaryRule = elementwise<Op>((n, [a, b]) => {
  if (!isBinary(n.op)) internal(`${n.op} is not binary`);
  return arith(n.op, a!, b!);
});
const compareRule = elementwise<Op>((n, [a, b]) => {
  if (!isCompare(n.op)) internal(`${n.op} is not a comparison`);
  return cast(cmp(n.op, a!, b!), n.type.dtype);
});

function reduceForm(kind: ReduceOp): Lower<ReduceOp> {
  return {
    kind: 'contract',
    form: (n, L) => {
      const x = n.inputs[0]!;
      const xs = L.shape(x);
      const { axes, keepdims } = n.attrs;
      const rshape = axes.map((a) => xs[a]!);
      const count = rshape.reduce((p, q) => p * q, 1);
      return {
        rshape,
        combine: kind === 'reduce_max' ? 'max' : 'sum',
        body: (out, red) => {
          let j = 0;
          let o = 0;
          const coords = xs.map((_, i) => {
            if (axes.includes(i)) {
              if (keepdims) o++;
              return red[j++]!;
            }
            return out[o++]!;
          });
          return L.value(x, coords);
        },
        ...(kind === 'reduce_mean' ? { finalize: (acc: Expr) => mul(acc, cst(1 / count)) } : {}),
      };
    },
  };
}

/** Input coordinate of a convolution tap: out*stride - pad + k*dil. */
const tap = (o: Expr, k: Expr, stride: number, pad: number, dil: number): Expr =>
  add(sub(mul(o, int(stride)), int(pad)), mul(k, int(dil)));

/**
 * Element [b, c, hh, ww] of NCHW value `x`, or 0 where (hh, ww) is off the image (zero padding: a
 * GEMM multiplies it by its weight, as an im2col matrix would).
 */
const padded = (L: Lowerer, x: ValueId, b: Expr, c: Expr, hh: Expr, ww: Expr, clamp = true): Expr => {
  const [, , h, wd] = L.shape(x) as [number, number, number, number];
  const [gh, gw] = [guard(hh, h, clamp), guard(ww, wd, clamp)];
  return select(and(gh.ok, gw.ok), L.value(x, [b, c, gh.at, gw.at]), cst(0));
};

/**
 * The output coordinate that input position `pos` reaches through tap `k` (the inverse of `tap`):
 * (pos + pad - k*dil) / stride, valid when it divides exactly and lands inside the output.
 */
const source = (pos: Expr, k: Expr, st: number, pad: number, dil: number, size: number, clamp = true) => {
  const t = sub(add(pos, int(pad)), mul(k, int(dil)));
  const valid = and(inRange(t, 0, (size - 1) * st + 1), st > 1 ? cmp('eq', mod(t, int(st)), int(0)) : cst(1, 'bool'));
  const at = div(t, int(st));
  return { valid, at: clamp ? select(valid, at, int(0)) : at };
};

export const LOWER_RULES: { readonly [K in Op]: Lower<K> } = {
  input: { kind: 'source' },
  param: { kind: 'source' },
  state: { kind: 'source' },
  full: { kind: 'inline', expr: (n) => cst(n.attrs.value, n.attrs.dtype) },
  iota: { kind: 'inline', expr: (n, out) => cast(out[n.attrs.axis]!, n.attrs.dtype) },
  neg: unaryRule, abs: unaryRule, exp: unaryRule, log: unaryRule, sqrt: unaryRule, rsqrt: unaryRule,
  reciprocal: unaryRule, tanh: unaryRule, sigmoid: unaryRule, relu: unaryRule, sin: unaryRule, cos: unaryRule,
  add: binaryRule, sub: binaryRule, mul: binaryRule, div: binaryRule, max: binaryRule, min: binaryRule, pow: binaryRule,
  eq: compareRule, ne: compareRule, lt: compareRule, le: compareRule, gt: compareRule, ge: compareRule,
  where: elementwise((n, [c, a, b]) => select(cmp('ne', c!, cst(0, c!.t)), a!, b!)),
  cast: elementwise((n, [a]) => cast(a!, n.attrs.dtype)),
  stop_gradient: elementwise((_, [a]) => a!),
  reduce_sum: reduceForm('reduce_sum'),
  reduce_max: reduceForm('reduce_max'),
  reduce_mean: reduceForm('reduce_mean'),
  reshape: {
    kind: 'inline',
    expr: (n, out, L) => {
      const x = n.inputs[0]!;
      return L.value(x, delinearize(linearIndex(out, n.type.shape), L.shape(x)));
    },
  },
  transpose: {
    kind: 'inline',
    expr: (n, out, L) => {
      const coords: Expr[] = [];
      n.attrs.perm.forEach((p, k) => (coords[p] = out[k]!));
      return L.value(n.inputs[0]!, coords);
    },
  },
  broadcast_to: { kind: 'inline', expr: (n, out, L) => L.broadcast(n.inputs[0]!, out, n.type.shape) },
  slice: {
    kind: 'inline',
    expr: (n, out, L) => L.value(n.inputs[0]!, out.map((c, k) => add(int(n.attrs.starts[k]!), mul(c, int(n.attrs.steps[k]!))))),
  },
  pad: {
    kind: 'inline',
    expr: (n, out, L) => {
      const x = n.inputs[0]!;
      const xs = L.shape(x);
      let valid = cst(1, 'bool');
      const coords = out.map((c, k) => {
        const rel = sub(c, int(n.attrs.low[k]!));
        const step = n.attrs.interior[k]! + 1;
        const q = div(rel, int(step));
        valid = and(valid, inRange(rel, 0, (xs[k]! - 1) * step + 1));
        if (step > 1) valid = and(valid, cmp('eq', mod(rel, int(step)), int(0)));
        return clamp(q, 0, xs[k]! - 1);
      });
      return select(valid, L.value(x, coords), cst(n.attrs.value, n.type.dtype));
    },
  },
  concat: {
    kind: 'inline',
    expr: (n, out, L) => {
      const ax = n.attrs.axis;
      const parts: { start: number; id: ValueId; size: number }[] = [];
      let start = 0;
      for (const id of n.inputs) {
        const size = L.shape(id)[ax]!;
        parts.push({ start, id, size });
        start += size;
      }
      let e: Expr | undefined;
      for (const p of [...parts].reverse()) {
        const coords = out.map((c, k) => (k === ax ? clamp(sub(c, int(p.start)), 0, p.size - 1) : c));
        const v = L.value(p.id, coords);
        e = e === undefined ? v : select(cmp('lt', out[ax]!, int(p.start + p.size)), v, e);
      }
      return e!;
    },
  },
  matmul: {
    kind: 'contract',
    form: (n, L) => {
      const [a, b] = n.inputs as [ValueId, ValueId];
      const k = L.shape(a).at(-1)!;
      const r = n.type.shape.length;
      return {
        rshape: [k],
        combine: 'sum',
        body: (out, [kk]) => {
          const batch = out.slice(0, r - 2);
          const av = L.broadcast(a, [...batch, out[r - 2]!, kk!], [...n.type.shape.slice(0, -2), L.shape(a).at(-2)!, k]);
          const bv = L.broadcast(b, [...batch, kk!, out[r - 1]!], [...n.type.shape.slice(0, -2), k, L.shape(b).at(-1)!]);
          return mul(av, bv);
        },
      };
    },
    gemm: (n, L) => {
      const [a, b] = n.inputs as [ValueId, ValueId];
      const batch = n.type.shape.slice(0, -2);
      const [m, k] = L.shape(a).slice(-2) as [number, number];
      const nn = n.type.shape.at(-1)!;
      return {
        batch, m, n: nn, k,
        lhs: (z, mi, ki) => L.broadcast(a, [...z, mi, ki], [...batch, m, k]),
        rhs: (z, ki, ni) => L.broadcast(b, [...z, ki, ni], [...batch, k, nn]),
      };
    },
  },
  gather: {
    kind: 'inline',
    expr: (n, out, L) => {
      const [t, idx] = n.inputs as [ValueId, ValueId];
      const ri = L.shape(idx).length;
      const rows = L.shape(t)[0]!;
      const r = L.value(idx, out.slice(0, ri));
      return select(inRange(r, 0, rows), L.value(t, [clamp(r, 0, rows - 1), ...out.slice(ri)]), cst(0, n.type.dtype));
    },
  },
  scatter_add: {
    kind: 'contract',
    form: (n, L) => {
      const [idx, upd] = n.inputs as [ValueId, ValueId];
      return {
        rshape: [...L.shape(idx)],
        combine: 'sum',
        body: (out, red) =>
          select(cmp('eq', L.value(idx, red), out[0]!), L.value(upd, [...red, ...out.slice(1)]), cst(0, n.type.dtype)),
      };
    },
  },
  one_hot: {
    kind: 'inline',
    expr: (n, out, L) => cast(cmp('eq', L.value(n.inputs[0]!, out.slice(0, -1)), out.at(-1)!), 'f32'),
  },
  conv2d: {
    kind: 'contract',
    form: (n, L) => {
      const [x, w] = n.inputs as [ValueId, ValueId];
      const [, c, h, wd] = L.shape(x) as [number, number, number, number];
      const [, , kh, kw] = L.shape(w) as [number, number, number, number];
      const { stride: s, padding: p, dilation: d } = n.attrs;
      return {
        rshape: [c, kh, kw],
        combine: 'sum',
        body: ([b, o, i, j], [ci, ki, kj]) => {
          const hh = tap(i!, ki!, s[0], p[0], d[0]);
          const ww = tap(j!, kj!, s[1], p[1], d[1]);
          const [gh, gw] = [guard(hh, h), guard(ww, wd)];
          const valid = and(gh.ok, gw.ok);
          const xv = L.value(x, [b!, ci!, gh.at, gw.at]);
          return select(valid, mul(xv, L.value(w, [o!, ci!, ki!, kj!])), cst(0));
        },
      };
    },
    // M = batch x output positions, N = output channels, K = input channels x taps.
    gemm: (n, L) => {
      const [x, w] = n.inputs as [ValueId, ValueId];
      const [nb, c] = L.shape(x) as [number, number, number, number];
      const [o, , kh, kw] = L.shape(w) as [number, number, number, number];
      const [, , oh, ow] = n.type.shape as [number, number, number, number];
      const { stride: s, padding: p, dilation: d } = n.attrs;
      const pos = (mi: Expr) => delinearize(mi, [nb, oh, ow]);
      const taps = (ki: Expr) => delinearize(ki, [c, kh, kw]);
      return {
        batch: [], m: nb * oh * ow, n: o, k: c * kh * kw,
        lhs: (_, mi, ki) => {
          const [b, i, j] = pos(mi);
          const [ci, ti, tj] = taps(ki);
          return padded(L, x, b!, ci!, tap(i!, ti!, s[0], p[0], d[0]), tap(j!, tj!, s[1], p[1], d[1]), false);
        },
        rhs: (_, ki, ni) => L.value(w, [ni, ...taps(ki)]),
        place: (_, mi, ni) => {
          const [b, i, j] = pos(mi);
          return [b!, ni, i!, j!];
        },
      };
    },
  },
  conv2d_input_grad: {
    kind: 'contract',
    form: (n, L) => {
      const [dy, w] = n.inputs as [ValueId, ValueId];
      const [, o, oh, ow] = L.shape(dy) as [number, number, number, number];
      const [, , kh, kw] = L.shape(w) as [number, number, number, number];
      const { stride: s, padding: p, dilation: d } = n.attrs;
      // dx[b,c,h,w] = sum over (o,ki,kj) with h = i*s - p + ki*d of dy[b,o,i,j] w[o,c,ki,kj]
      return {
        rshape: [o, kh, kw],
        combine: 'sum',
        body: ([b, c, hh, ww], [oc, ki, kj]) => {
          const r = source(hh!, ki!, s[0], p[0], d[0], oh);
          const q = source(ww!, kj!, s[1], p[1], d[1], ow);
          const v = mul(L.value(dy, [b!, oc!, r.at, q.at]), L.value(w, [oc!, c!, ki!, kj!]));
          return select(and(r.valid, q.valid), v, cst(0));
        },
      };
    },
    // M = batch x input positions, N = input channels, K = output channels x taps.
    gemm: (n, L) => {
      const [dy, w] = n.inputs as [ValueId, ValueId];
      const [nb, o, oh, ow] = L.shape(dy) as [number, number, number, number];
      const [, c, kh, kw] = L.shape(w) as [number, number, number, number];
      const [, , h, wd] = n.type.shape as [number, number, number, number];
      const { stride: s, padding: p, dilation: d } = n.attrs;
      const pos = (mi: Expr) => delinearize(mi, [nb, h, wd]);
      const taps = (ki: Expr) => delinearize(ki, [o, kh, kw]);
      return {
        batch: [], m: nb * h * wd, n: c, k: o * kh * kw,
        lhs: (_, mi, ki) => {
          const [b, hh, ww] = pos(mi);
          const [oc, ti, tj] = taps(ki);
          const r = source(hh!, ti!, s[0], p[0], d[0], oh, false);
          const q = source(ww!, tj!, s[1], p[1], d[1], ow, false);
          return select(and(r.valid, q.valid), L.value(dy, [b!, oc!, r.at, q.at]), cst(0));
        },
        rhs: (_, ki, ni) => {
          const [oc, ti, tj] = taps(ki);
          return L.value(w, [oc!, ni, ti!, tj!]);
        },
        place: (_, mi, ni) => {
          const [b, hh, ww] = pos(mi);
          return [b!, ni, hh!, ww!];
        },
      };
    },
  },
  conv2d_filter_grad: {
    kind: 'contract',
    form: (n, L) => {
      const [x, dy] = n.inputs as [ValueId, ValueId];
      const [, , h, wd] = L.shape(x) as [number, number, number, number];
      const [nb, , oh, ow] = L.shape(dy) as [number, number, number, number];
      const { stride: s, padding: p, dilation: d } = n.attrs;
      return {
        rshape: [nb, oh, ow],
        combine: 'sum',
        body: ([o, c, ki, kj], [b, i, j]) => {
          const hh = tap(i!, ki!, s[0], p[0], d[0]);
          const ww = tap(j!, kj!, s[1], p[1], d[1]);
          const [gh, gw] = [guard(hh, h), guard(ww, wd)];
          const valid = and(gh.ok, gw.ok);
          const xv = L.value(x, [b!, c!, gh.at, gw.at]);
          return select(valid, mul(xv, L.value(dy, [b!, o!, i!, j!])), cst(0));
        },
      };
    },
    // M = output channels, N = input channels x taps, K = batch x output positions (few outputs,
    // a long K: the emitter splits K over threads).
    gemm: (n, L) => {
      const [x, dy] = n.inputs as [ValueId, ValueId];
      const [, c] = L.shape(x) as [number, number, number, number];
      const [nb, o, oh, ow] = L.shape(dy) as [number, number, number, number];
      const [, , kh, kw] = n.type.shape as [number, number, number, number];
      const { stride: s, padding: p, dilation: d } = n.attrs;
      const pos = (ki: Expr) => delinearize(ki, [nb, oh, ow]);
      const taps = (ni: Expr) => delinearize(ni, [c, kh, kw]);
      return {
        batch: [], m: o, n: c * kh * kw, k: nb * oh * ow,
        lhs: (_, mi, ki) => {
          const [b, i, j] = pos(ki);
          return L.value(dy, [b!, mi, i!, j!]);
        },
        rhs: (_, ki, ni) => {
          const [b, i, j] = pos(ki);
          const [ci, ti, tj] = taps(ni);
          return padded(L, x, b!, ci!, tap(i!, ti!, s[0], p[0], d[0]), tap(j!, tj!, s[1], p[1], d[1]), false);
        },
        place: (_, mi, ni) => [mi, ...taps(ni)],
      };
    },
  },
  // ---- issue 16: random numbers and train/eval mode ----
  // Element i: Threefry-2x32-20 of counter (i, counter) under key (seed, stream), as in the
  // interpreter (wgsl.ts emits the same text of src/ir/random.ts); elementwise on the index.
  random_uniform: {
    kind: 'inline',
    expr: (n, out, L) => {
      const [seed, counter] = [L.value(n.inputs[0]!, []), L.value(n.inputs[1]!, [])];
      return { k: 'random', t: 'f32', seed, stream: n.attrs.stream, index: linearIndex(out, n.type.shape), counter };
    },
  },
  // The mode pass (passes/mode.ts) replaces every is_training with a constant before lowering.
  is_training: { kind: 'inline', expr: () => internal('is_training reached lowering: run the mode pass (passes/mode.ts) first') },
  // ---- end issue 16 ----
};

export const outVars = (rank: number, prefix = 'o'): Expr[] => Array.from({ length: rank }, (_, i) => ivar(`${prefix}${i}`));

/** Whether an op can only be computed as the root of its own kernel. */
export const isContraction = (op: Op): boolean => LOWER_RULES[op].kind === 'contract';
export const isSourceOp = (op: Op): boolean => LOWER_RULES[op].kind === 'source';

/**
 * The kernel that computes value `root`, reading materialized values through bindings and inlining
 * the rest. With `contraction`, the kernel is that contraction (reduction, matmul, convolution)
 * and `root` is the end of an elementwise epilogue of the same shape computed from its accumulator.
 * A contraction with a `gemm` form (matmul, the convolutions) gets the register-tiled body unless
 * `naiveMatmul` asks for the generic one-thread-per-output contraction (the baseline of the
 * matmul benchmark).
 */
export interface LowerOptions {
  /** Lower contractions that have a `gemm` form with their generic one-thread-per-output form. */
  readonly naiveMatmul?: boolean;
  readonly contraction?: ValueId;
  readonly extras?: readonly ValueId[];
  /** Outputs that may be written over the buffer of the value they update: output -> updated value. */
  readonly inPlace?: ReadonlyMap<ValueId, ValueId>;
  /** A matmul's side output: the sum over k of its right operand (`contraction`, a reduce_sum), with its epilogue. */
  readonly side?: { readonly root: ValueId; readonly contraction: ValueId; readonly extras?: readonly ValueId[] };
}

/**
 * Lowers a kernel, writing in place every output `inPlace` allows whose old value is read only at
 * the thread's own element before it is stored (otherwise that output gets its own buffer).
 */
export function lowerKernel(g: Graph, root: ValueId, isMaterialized: (id: ValueId) => boolean, opts: LowerOptions = {}): Kernel {
  let inPlace = opts.inPlace ?? new Map<ValueId, ValueId>();
  for (;;) {
    const { kernel, conflicts } = lowerOnce(g, root, isMaterialized, { ...opts, inPlace });
    if (!conflicts.size) return kernel;
    inPlace = new Map([...inPlace].filter(([, target]) => !conflicts.has(target)));
  }
}

/**
 * The further outputs `ids` computed after `first` at the element `coords`: each reads the ones
 * before it as registers `<prefix>0`, `<prefix>1`, … and is output slot `slot0 + i`.
 */
function furtherOutputs(
  g: Graph, L: Lowerer, first: ValueId, ids: readonly ValueId[], coords: readonly Expr[], slot0: number, prefix: string,
): ExtraOutput[] {
  const held: ValueId[] = [first];
  return ids.map((id, i) => {
    L.slot = slot0 + i;
    held.forEach((h, j) => L.withAccumulator(h, coords, tvar(`${prefix}${j}`, g.nodes[h]!.type.dtype)));
    const expr = L.value(id, coords);
    held.push(id);
    return { ref: { kind: 'value', id }, dtype: g.nodes[id]!.type.dtype, expr };
  });
}

function lowerOnce(
  g: Graph, root: ValueId, isMaterialized: (id: ValueId) => boolean, opts: LowerOptions & { inPlace: ReadonlyMap<ValueId, ValueId> },
): { kernel: Kernel; conflicts: ReadonlySet<ValueId> } {
  const n = g.nodes[root]!;
  const cid = opts.contraction ?? root;
  const c = g.nodes[cid]!;
  const extraIds = opts.extras ?? [];
  const side = opts.side;
  const sideIds = side ? [side.root, ...(side.extras ?? [])] : [];
  const own = new Set([root, cid, ...extraIds, ...sideIds, ...(side ? [side.contraction] : [])]);
  const L = new Lowerer(g, (id) => !own.has(id) && isMaterialized(id));
  const shape = n.type.shape;
  const dtype = n.type.dtype;
  if (cid !== root && !shapeEq(c.type.shape, shape)) internal(`epilogue ${root} does not have the shape of contraction ${cid}`);
  const rule = LOWER_RULES[c.op] as Lower<typeof c.op>;
  /** The epilogue: `root` at `coords`, with the contraction's value there being `acc`. */
  const epilogue = (coords: readonly Expr[], acc: Expr): Expr => {
    if (cid === root) return acc;
    L.withAccumulator(cid, coords, acc);
    return L.value(root, coords);
  };
  if (rule.kind === 'source') throw new AdjointError(`internal: a ${c.op} is a buffer, not a kernel`);
  const gemm = rule.kind === 'contract' && !opts.naiveMatmul ? rule.gemm?.(c as never, L) : undefined;
  const isMatmul = gemm !== undefined;
  const z = outVars(gemm?.batch.length ?? 0, 'z');
  const [mi, ki, ni] = [ivar('mi'), ivar('ki'), ivar('ni')];
  /** The coordinates of the output element a thread computes (a GEMM's element (mi, ni) at its place). */
  const coords = gemm ? (gemm.place ? gemm.place(z, mi, ni) : [...z, mi, ni]) : outVars(shape.length);
  if (side && !isMatmul) internal(`a side sum needs a tiled matmul, not ${c.op}`);
  /** The side outputs' coordinates: column `ni` of a [N] or [1, N] value. */
  const sideCoords = side ? L.shape(side.root).map((_, i, a) => (i === a.length - 1 ? ivar('ni') : int(0))) : [];
  const outputs = [...[root, ...extraIds].map((id) => ({ id, at: coords })), ...sideIds.map((id) => ({ id, at: sideCoords }))];
  const written: { slot: number; target: ValueId }[] = [];
  outputs.forEach(({ id, at }, slot) => {
    const target = opts.inPlace.get(id);
    if (target === undefined || written.some((w) => w.target === target)) return;
    L.inPlace(target, slot, at);
    written.push({ slot, target });
  });
  let body: KernelBody;
  if (gemm) {
    L.slot = -1;
    const lhs = gemm.lhs(z, mi, ki);
    const rhs = gemm.rhs(z, ki, ni);
    L.slot = 0;
    body = {
      kind: 'matmul',
      batch: gemm.batch,
      m: gemm.m,
      n: gemm.n,
      k: gemm.k,
      lhs,
      rhs,
      ...(gemm.place ? { place: { shape, coords } } : {}),
      finalize: epilogue(coords, tvar('acc', 'f32')),
    };
  } else if (rule.kind === 'contract') {
    const form = rule.form(c as never, L);
    const acc = tvar('acc', c.type.dtype);
    const ov = outVars(shape.length);
    L.slot = -1;
    const red = form.body(ov, outVars(form.rshape.length, 'r'));
    L.slot = 0;
    body = {
      kind: 'reduce',
      shape,
      rshape: form.rshape,
      combine: form.combine,
      accType: c.type.dtype,
      body: red,
      finalize: epilogue(ov, form.finalize ? form.finalize(acc) : acc),
    };
  } else {
    if (cid !== root) internal(`${c.op} is not a contraction`);
    body = { kind: 'map', shape, expr: rule.expr(n as never, outVars(shape.length), L) };
  }
  // Further outputs: each an expression at the same element, reading the outputs before it as v0, v1, ….
  const extras = furtherOutputs(g, L, root, extraIds, coords, 1, 'v');
  // The side sum and its outputs, after the main ones; its further outputs read it as w0, w1, ….
  if (side && body.kind === 'matmul') {
    const sc = g.nodes[side.contraction]!;
    if (sc.op !== 'reduce_sum' || sc.inputs[0] !== c.inputs[1] || sc.attrs.axes.join() !== '0' || shape.length !== 2) {
      internal(`value ${side.contraction} is not the column sum of matmul ${cid}'s right operand`);
    }
    const slot0 = 1 + extraIds.length;
    L.slot = slot0;
    L.withAccumulator(side.contraction, sideCoords, tvar('acc', 'f32'));
    const finalize = L.value(side.root, sideCoords);
    const sideExtras = furtherOutputs(g, L, side.root, side.extras ?? [], sideCoords, slot0 + 1, 'w');
    body = { ...body, side: { output: { kind: 'value', id: side.root }, dtype: g.nodes[side.root]!.type.dtype, finalize, extras: sideExtras } };
  }
  const nodes = new Set([root, cid, ...extraIds, ...sideIds, ...(side ? [side.contraction] : []), ...L.inlined]);
  const kernel: Kernel = {
    inputs: L.inputs, output: { kind: 'value', id: root }, dtype, body, extras, nodes: [...nodes].sort((p, q) => p - q),
    ...(written.length ? { inPlace: written } : {}),
  };
  return { kernel, conflicts: L.aliasConflicts };
}

/** A row kernel's plan: per-row stages (in order) before the elementwise `root` over whole rows. */
export interface RowsPlan {
  readonly root: ValueId;
  /** Leading axes of the root's shape that index rows. */
  readonly outer: number;
  /** Each stage: a row value (`root`), from a reduction over the row (`contraction`) when given. */
  readonly stages: readonly { readonly root: ValueId; readonly contraction?: ValueId }[];
  /** Stage values other kernels read: stored at the row's index. */
  readonly written: readonly ValueId[];
}

/**
 * Lowers a row kernel, or returns undefined when some stage value would be read away from its own
 * row (the plan is then not a row kernel). Stage values are registers `s<j>`; a reduction stage
 * reduces over the inner coordinates o<outer>…, the same variables the row's elements use.
 */
export function lowerRows(g: Graph, plan: RowsPlan, isMaterialized: (id: ValueId) => boolean): Kernel | undefined {
  const inside = new Set<ValueId>([plan.root, ...plan.stages.flatMap((s) => [s.root, ...(s.contraction !== undefined ? [s.contraction] : [])])]);
  const L = new Lowerer(g, (id) => !inside.has(id) && isMaterialized(id));
  L.tentative = true;
  const shape = g.nodes[plan.root]!.type.shape;
  const ov = outVars(shape.length);
  const inner = ov.slice(plan.outer);
  /** A row value's coordinates: the outer coordinates, then 0 for its trailing axes of size 1. */
  const rowCoords = (id: ValueId): Expr[] => L.shape(id).map((d, i) => (i < plan.outer ? ov[i]! : int(0)));
  const stages: RowStage[] = plan.stages.map((st, j) => {
    const n = g.nodes[st.root]!;
    const coords = rowCoords(st.root);
    let stage: RowStage;
    if (st.contraction !== undefined) {
      const c = g.nodes[st.contraction]!;
      const rule = LOWER_RULES[c.op] as Lower<typeof c.op>;
      if (rule.kind !== 'contract') internal(`row stage ${st.contraction} (${c.op}) is not a reduction`);
      const form = rule.form(c as never, L);
      const body = form.body(rowCoords(st.contraction), inner);
      const acc = tvar('acc', c.type.dtype);
      const fin = form.finalize ? form.finalize(acc) : acc;
      let value = fin;
      if (st.root !== st.contraction) {
        L.withAccumulator(st.contraction, coords, fin);
        value = L.value(st.root, coords);
      }
      stage = { dtype: n.type.dtype, reduce: { combine: form.combine, accType: c.type.dtype, body }, value };
    } else {
      stage = { dtype: n.type.dtype, value: L.value(st.root, coords) };
    }
    L.withAccumulator(st.root, coords, tvar(`s${j}`, n.type.dtype));
    return plan.written.includes(st.root) ? { ...stage, out: { kind: 'value', id: st.root } } : stage;
  });
  const expr = L.value(plan.root, ov);
  if (L.misreads.size) return undefined;
  return {
    inputs: L.inputs,
    output: { kind: 'value', id: plan.root },
    dtype: g.nodes[plan.root]!.type.dtype,
    body: { kind: 'rows', shape, outer: plan.outer, stages, expr },
    extras: [],
    nodes: [...new Set([...inside, ...L.inlined])].sort((p, q) => p - q),
  };
}

/**
 * Lowers one kernel of a fusion plan (fusion calls it too, to measure a candidate kernel's
 * bindings before it commits to it).
 */
export function lowerGroup(
  g: Graph, k: KernelGroup, mat: ReadonlySet<ValueId>, opts: { naiveMatmul?: boolean; inPlace?: ReadonlyMap<ValueId, ValueId> } = {},
): Kernel {
  if (k.rows) return lowerRows(g, { root: k.root, ...k.rows }, (id) => mat.has(id)) ?? internal(`row kernel ${k.root} does not lower`);
  return lowerKernel(g, k.root, (id) => mat.has(id), {
    naiveMatmul: opts.naiveMatmul ?? false,
    ...(opts.inPlace ? { inPlace: opts.inPlace } : {}),
    ...(k.contraction !== undefined ? { contraction: k.contraction } : {}),
    ...(k.extras?.length ? { extras: k.extras } : {}),
    ...(k.side ? { side: k.side } : {}),
  });
}

/** The lowering stage: every kernel of a fusion plan as a kernel description, in the plan's order. */
export function lowerPlan(g: Graph, plan: FusionPlan, opts: { naiveMatmul?: boolean } = {}): Kernel[] {
  return plan.kernels.map((k) => lowerGroup(g, k, plan.materialized, { naiveMatmul: opts.naiveMatmul ?? false, inPlace: plan.inPlace }));
}
