/**
 * @file The reference interpreter: evaluates a graph on the CPU, one rule per op, in float32 (every
 * f32 result rounded to float32, the oracle for the GPU) or float64 (the oracle for
 * finite-difference gradient checks). Slow and simple on purpose: it is the definition of what
 * every op means.
 */
import { broadcastShapes, fmtType, numel, stridesOf, typeEq, type Shape, type TensorType } from './dtype.js';
import { AdjointError, ShapeError } from './errors.js';
import type { Graph, Node, NodeOfOp, ValueId } from './graph.js';
import type { BinaryOp, CompareOp, Op, UnaryOp, Conv2dAttrs } from './ops.js';
import { printNode } from './printer.js';
import { allocData, type Precision, type Tensor } from './tensor.js';
import { uniformAt } from './random.js';

/** The training program ('train') or the forward program ('eval'); see passes/mode.ts. */
export type Mode = 'train' | 'eval';

interface Ctx {
  readonly precision: Precision;
  /** Which program the graph stands for: `is_training` is 1 in 'train', 0 in 'eval'. */
  readonly mode: Mode;
  /** Inputs, params and state by name. */
  readonly env: ReadonlyMap<string, Tensor>;
}

type Rule<K extends Op> = (n: NodeOfOp<K>, xs: readonly Tensor[], ctx: Ctx) => Tensor;

const alloc = (type: TensorType, ctx: Ctx): Tensor => ({ type, data: allocData(type.dtype, numel(type.shape), ctx.precision) });
const arg = (xs: readonly Tensor[], i: number): Tensor => xs[i]!;

/** For each output element, the flat index of the (broadcast) source element. */
export function broadcastIndex(from: Shape, to: Shape): Int32Array {
  const n = numel(to);
  const idx = new Int32Array(n);
  const r = to.length;
  const off = r - from.length;
  const fs = stridesOf(from);
  const st = to.map((d, i) => (i < off || from[i - off] === 1 ? 0 : fs[i - off]!));
  const c = new Array<number>(r).fill(0);
  let cur = 0;
  for (let i = 0; i < n; i++) {
    idx[i] = cur;
    for (let k = r - 1; k >= 0; k--) {
      c[k]!++;
      cur += st[k]!;
      if (c[k]! < to[k]!) break;
      cur -= st[k]! * c[k]!;
      c[k] = 0;
    }
  }
  return idx;
}

/** Calls f with each multi-index of `shape` and its flat index. */
function forEachIndex(shape: Shape, f: (c: readonly number[], i: number) => void): void {
  const n = numel(shape);
  const c = new Array<number>(shape.length).fill(0);
  for (let i = 0; i < n; i++) {
    f(c, i);
    for (let k = shape.length - 1; k >= 0; k--) {
      if (++c[k]! < shape[k]!) break;
      c[k] = 0;
    }
  }
}

const UNARY: { readonly [K in UnaryOp]: (x: number) => number } = {
  neg: (x) => -x,
  abs: Math.abs,
  exp: Math.exp,
  log: Math.log,
  sqrt: Math.sqrt,
  rsqrt: (x) => 1 / Math.sqrt(x),
  reciprocal: (x) => 1 / x,
  tanh: Math.tanh,
  sigmoid: (x) => 1 / (1 + Math.exp(-x)),
  relu: (x) => (x > 0 ? x : 0),
  sin: Math.sin,
  cos: Math.cos,
};

/** i32 division truncates toward zero; division by zero gives 0 (as WGSL does). */
const BINARY: { readonly [K in BinaryOp]: (a: number, b: number, int: boolean) => number } = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b, int) => (int ? Math.imul(a, b) : a * b),
  div: (a, b, int) => (int ? (b === 0 ? 0 : Math.trunc(a / b)) : a / b),
  max: (a, b) => Math.max(a, b),
  min: (a, b) => Math.min(a, b),
  pow: (a, b) => Math.pow(a, b),
};

const COMPARE: { readonly [K in CompareOp]: (a: number, b: number) => boolean } = {
  eq: (a, b) => a === b,
  ne: (a, b) => a !== b,
  lt: (a, b) => a < b,
  le: (a, b) => a <= b,
  gt: (a, b) => a > b,
  ge: (a, b) => a >= b,
};

function elementwise(n: Node, xs: readonly Tensor[], ctx: Ctx, f: (vals: number[]) => number): Tensor {
  const out = alloc(n.type, ctx);
  const maps = xs.map((x) => broadcastIndex(x.type.shape, n.type.shape));
  const vals = new Array<number>(xs.length);
  for (let i = 0; i < out.data.length; i++) {
    for (let k = 0; k < xs.length; k++) vals[k] = xs[k]!.data[maps[k]![i]!]!;
    out.data[i] = f(vals);
  }
  return out;
}

const unary = (op: UnaryOp): Rule<UnaryOp> => (n, xs, ctx) => {
  const f = UNARY[op];
  return elementwise(n, xs, ctx, (v) => f(v[0]!));
};
const binary = (op: BinaryOp): Rule<BinaryOp> => (n, xs, ctx) => {
  const f = BINARY[op];
  const int = n.type.dtype === 'i32';
  return elementwise(n, xs, ctx, (v) => f(v[0]!, v[1]!, int));
};
const compare = (op: CompareOp): Rule<CompareOp> => (n, xs, ctx) => {
  const f = COMPARE[op];
  return elementwise(n, xs, ctx, (v) => (f(v[0]!, v[1]!) ? 1 : 0));
};

type ReduceKind = 'sum' | 'max' | 'mean';
const reduce = (kind: ReduceKind): Rule<'reduce_sum' | 'reduce_max' | 'reduce_mean'> => (n, xs, ctx) => {
  const x = arg(xs, 0);
  const { axes } = n.attrs;
  const out = alloc(n.type, ctx);
  const acc = new Float64Array(out.data.length).fill(kind === 'max' ? -Infinity : 0);
  // Output strides over the kept axes (reduced axes contribute 0).
  const kept = x.type.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const ks = stridesOf(kept).map((s, i) => (axes.includes(i) ? 0 : s));
  forEachIndex(x.type.shape, (c, i) => {
    let o = 0;
    for (let k = 0; k < c.length; k++) o += c[k]! * ks[k]!;
    const v = x.data[i]!;
    acc[o] = kind === 'max' ? Math.max(acc[o]!, v) : acc[o]! + v;
  });
  const count = numel(x.type.shape) / Math.max(1, out.data.length);
  for (let i = 0; i < acc.length; i++) out.data[i] = kind === 'mean' ? acc[i]! / count : acc[i]!;
  return out;
};

/** Gathers out[i] = x[src(c)] over the output's multi-indices; src returns -1 for "use fill". */
function remap(n: Node, x: Tensor, ctx: Ctx, src: (c: readonly number[]) => number, fill = 0): Tensor {
  const out = alloc(n.type, ctx);
  forEachIndex(n.type.shape, (c, i) => {
    const j = src(c);
    out.data[i] = j < 0 ? fill : x.data[j]!;
  });
  return out;
}

function flat(c: readonly number[], strides: readonly number[]): number {
  let o = 0;
  for (let k = 0; k < c.length; k++) o += c[k]! * strides[k]!;
  return o;
}

const source: Rule<'input' | 'param' | 'state'> = (n, _, ctx) => {
  const t = ctx.env.get(n.attrs.name);
  if (!t) throw new ShapeError(`no value given for ${n.op} "${n.attrs.name}"`);
  if (!typeEq(t.type, n.type)) throw new ShapeError(`${n.op} "${n.attrs.name}" expects ${fmtType(n.type)}, got ${fmtType(t.type)}`);
  const out = alloc(n.type, ctx);
  out.data.set(t.data);
  return out;
};

/** Visits every (output position, input position, kernel tap) triple of a 2-D convolution. */
function convTaps(
  a: Conv2dAttrs, x: Shape, w: Shape, y: Shape,
  f: (xi: number, wi: number, yi: number) => void,
): void {
  const [n, c, h, wd] = x as [number, number, number, number];
  const [o, , kh, kw] = w as [number, number, number, number];
  const [, , oh, ow] = y as [number, number, number, number];
  for (let b = 0; b < n; b++) for (let oc = 0; oc < o; oc++) for (let i = 0; i < oh; i++) for (let j = 0; j < ow; j++) {
    const yi = ((b * o + oc) * oh + i) * ow + j;
    for (let ic = 0; ic < c; ic++) for (let p = 0; p < kh; p++) {
      const hh = i * a.stride[0] - a.padding[0] + p * a.dilation[0];
      if (hh < 0 || hh >= h) continue;
      for (let q = 0; q < kw; q++) {
        const ww = j * a.stride[1] - a.padding[1] + q * a.dilation[1];
        if (ww < 0 || ww >= wd) continue;
        f(((b * c + ic) * h + hh) * wd + ww, ((oc * c + ic) * kh + p) * kw + q, yi);
      }
    }
  }
}

function accumulate(n: Node, ctx: Ctx, fill: (acc: Float64Array) => void): Tensor {
  const out = alloc(n.type, ctx);
  const acc = new Float64Array(out.data.length);
  fill(acc);
  out.data.set(acc);
  return out;
}

export const INTERP_RULES: { readonly [K in Op]: Rule<K> } = {
  input: source,
  param: source,
  state: source,
  full: (n, _, ctx) => {
    const out = alloc(n.type, ctx);
    out.data.fill(n.attrs.value);
    return out;
  },
  iota: (n, _, ctx) => remapFromIndex(n, ctx, (c) => c[n.attrs.axis]!),
  neg: unary('neg'), abs: unary('abs'), exp: unary('exp'), log: unary('log'), sqrt: unary('sqrt'),
  rsqrt: unary('rsqrt'), reciprocal: unary('reciprocal'), tanh: unary('tanh'), sigmoid: unary('sigmoid'),
  relu: unary('relu'), sin: unary('sin'), cos: unary('cos'),
  add: binary('add'), sub: binary('sub'), mul: binary('mul'), div: binary('div'),
  max: binary('max'), min: binary('min'), pow: binary('pow'),
  eq: compare('eq'), ne: compare('ne'), lt: compare('lt'), le: compare('le'), gt: compare('gt'), ge: compare('ge'),
  where: (n, xs, ctx) => elementwise(n, xs, ctx, (v) => (v[0] !== 0 ? v[1]! : v[2]!)),
  cast: (n, xs, ctx) => elementwise(n, xs, ctx, (v) => (n.attrs.dtype === 'i32' ? castToI32(v[0]!) : v[0]!)),
  stop_gradient: (n, xs, ctx) => elementwise(n, xs, ctx, (v) => v[0]!),
  reduce_sum: reduce('sum'),
  reduce_max: reduce('max'),
  reduce_mean: reduce('mean'),
  reshape: (n, xs, ctx) => remapFlat(n, arg(xs, 0), ctx, (i) => i),
  transpose: (n, xs, ctx) => {
    const x = arg(xs, 0);
    const xs_ = stridesOf(x.type.shape);
    const st = n.attrs.perm.map((p) => xs_[p]!);
    return remap(n, x, ctx, (c) => flat(c, st));
  },
  broadcast_to: (n, xs, ctx) => {
    const x = arg(xs, 0);
    const map = broadcastIndex(x.type.shape, n.type.shape);
    return remapFlat(n, x, ctx, (i) => map[i]!);
  },
  slice: (n, xs, ctx) => {
    const x = arg(xs, 0);
    const st = stridesOf(x.type.shape);
    const { starts, steps } = n.attrs;
    return remap(n, x, ctx, (c) => c.reduce((o, ci, k) => o + (starts[k]! + ci * steps[k]!) * st[k]!, 0));
  },
  pad: (n, xs, ctx) => {
    const x = arg(xs, 0);
    const st = stridesOf(x.type.shape);
    const { low, interior, value } = n.attrs;
    return remap(n, x, ctx, (c) => {
      let o = 0;
      for (let k = 0; k < c.length; k++) {
        const rel = c[k]! - low[k]!;
        const step = interior[k]! + 1;
        if (rel < 0 || rel % step !== 0 || rel / step >= x.type.shape[k]!) return -1;
        o += (rel / step) * st[k]!;
      }
      return o;
    }, value);
  },
  concat: (n, xs, ctx) => {
    const out = alloc(n.type, ctx);
    const ax = n.attrs.axis;
    const os = stridesOf(n.type.shape);
    let base = 0;
    for (const x of xs) {
      const shift = base;
      forEachIndex(x.type.shape, (c, i) => {
        let o = 0;
        for (let k = 0; k < c.length; k++) o += (k === ax ? c[k]! + shift : c[k]!) * os[k]!;
        out.data[o] = x.data[i]!;
      });
      base += x.type.shape[ax]!;
    }
    return out;
  },
  matmul: (n, xs, ctx) => {
    const [a, b] = [arg(xs, 0), arg(xs, 1)];
    const [m, k] = a.type.shape.slice(-2) as [number, number];
    const nn = b.type.shape.at(-1)!;
    const batch = n.type.shape.slice(0, -2);
    const ai = broadcastIndex(a.type.shape.slice(0, -2), batch);
    const bi = broadcastIndex(b.type.shape.slice(0, -2), batch);
    return accumulate(n, ctx, (acc) => {
      for (let t = 0; t < numel(batch); t++) {
        const ao = ai[t]! * m * k;
        const bo = bi[t]! * k * nn;
        const oo = t * m * nn;
        for (let i = 0; i < m; i++) for (let j = 0; j < nn; j++) {
          let s = 0;
          for (let p = 0; p < k; p++) s += a.data[ao + i * k + p]! * b.data[bo + p * nn + j]!;
          acc[oo + i * nn + j] = s;
        }
      }
    });
  },
  gather: (n, xs, ctx) => {
    const [t, idx] = [arg(xs, 0), arg(xs, 1)];
    const rows = t.type.shape[0]!;
    const row = numel(t.type.shape.slice(1));
    const out = alloc(n.type, ctx);
    for (let i = 0; i < idx.data.length; i++) {
      const r = idx.data[i]!;
      if (r < 0 || r >= rows) continue; // out-of-range rows read as zeros
      out.data.set(t.data.subarray(r * row, (r + 1) * row), i * row);
    }
    return out;
  },
  scatter_add: (n, xs, ctx) => {
    const [idx, u] = [arg(xs, 0), arg(xs, 1)];
    const row = numel(n.type.shape.slice(1));
    return accumulate(n, ctx, (acc) => {
      for (let i = 0; i < idx.data.length; i++) {
        const r = idx.data[i]!;
        if (r < 0 || r >= n.attrs.rows) continue; // out-of-range rows are dropped
        for (let j = 0; j < row; j++) acc[r * row + j]! += u.data[i * row + j]!;
      }
    });
  },
  one_hot: (n, xs, ctx) => {
    const idx = arg(xs, 0);
    const d = n.attrs.depth;
    const out = alloc(n.type, ctx);
    for (let i = 0; i < idx.data.length; i++) {
      const v = idx.data[i]!;
      if (v >= 0 && v < d) out.data[i * d + v] = 1;
    }
    return out;
  },
  conv2d: (n, xs, ctx) => {
    const [x, w] = [arg(xs, 0), arg(xs, 1)];
    return accumulate(n, ctx, (acc) =>
      convTaps(n.attrs, x.type.shape, w.type.shape, n.type.shape, (xi, wi, yi) => (acc[yi]! += x.data[xi]! * w.data[wi]!)));
  },
  conv2d_input_grad: (n, xs, ctx) => {
    const [dy, w] = [arg(xs, 0), arg(xs, 1)];
    return accumulate(n, ctx, (acc) =>
      convTaps(n.attrs, n.type.shape, w.type.shape, dy.type.shape, (xi, wi, yi) => (acc[xi]! += dy.data[yi]! * w.data[wi]!)));
  },
  conv2d_filter_grad: (n, xs, ctx) => {
    const [x, dy] = [arg(xs, 0), arg(xs, 1)];
    return accumulate(n, ctx, (acc) =>
      convTaps(n.attrs, x.type.shape, n.type.shape, dy.type.shape, (xi, wi, yi) => (acc[wi]! += x.data[xi]! * dy.data[yi]!)));
  },
  // ---- issue 16: random numbers and train/eval mode ----
  random_uniform: (n, xs, ctx) => {
    const [seed, counter] = [arg(xs, 0).data[0]!, arg(xs, 1).data[0]!];
    const out = alloc(n.type, ctx);
    for (let i = 0; i < out.data.length; i++) out.data[i] = uniformAt(seed, n.attrs.stream, i, counter);
    return out;
  },
  is_training: (n, _, ctx) => {
    const out = alloc(n.type, ctx);
    out.data[0] = ctx.mode === 'train' ? 1 : 0;
    return out;
  },
  // ---- end issue 16 ----
};

function remapFlat(n: Node, x: Tensor, ctx: Ctx, src: (i: number) => number): Tensor {
  const out = alloc(n.type, ctx);
  for (let i = 0; i < out.data.length; i++) out.data[i] = x.data[src(i)]!;
  return out;
}

function remapFromIndex(n: Node, ctx: Ctx, f: (c: readonly number[]) => number): Tensor {
  const out = alloc(n.type, ctx);
  forEachIndex(n.type.shape, (c, i) => (out.data[i] = f(c)));
  return out;
}

/** f32 -> i32 as WGSL converts: truncate toward zero, saturate at the i32 range, NaN to 0. */
export function castToI32(v: number): number {
  if (Number.isNaN(v)) return 0;
  return Math.max(-2147483648, Math.min(2147483647, Math.trunc(v)));
}

export interface EvalResult {
  /** Every value of the graph, by id. */
  readonly values: readonly Tensor[];
  readonly outputs: ReadonlyMap<string, Tensor>;
  /** New values of updated params and state, by name. */
  readonly updates: ReadonlyMap<string, Tensor>;
}

/**
 * Evaluates every node in order. `env` holds inputs, params and state by name. `mode` is the
 * value of `is_training` (default 'eval': the model's graph as written is its forward program).
 */
export function evaluate(g: Graph, env: ReadonlyMap<string, Tensor>, precision: Precision = 'f32', mode: Mode = 'eval'): EvalResult {
  const ctx: Ctx = { precision, env, mode };
  const values: Tensor[] = [];
  g.nodes.forEach((n, i) => {
    const rule = INTERP_RULES[n.op] as Rule<typeof n.op>;
    try {
      values.push(rule(n as never, n.inputs.map((x: ValueId) => values[x]!), ctx));
    } catch (e) {
      if (e instanceof AdjointError) throw new ShapeError(`${printNode(n, i)}: ${e.message}`);
      throw e;
    }
  });
  const outputs = new Map(g.outputs.map((o) => [o.name, values[o.value]!]));
  const updates = new Map(g.updates.map((u) => [u.target, values[u.value]!]));
  return { values, outputs, updates };
}

/** Broadcast shape helper re-exported for rules in other layers. */
export { broadcastShapes };
