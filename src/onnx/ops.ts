/**
 * @file The ONNX operator table: one rule per supported operator, each translating a node into
 * builder calls. Semantics follow the ONNX operator specification at the node's opset (attributes
 * that became inputs, changed defaults, legacy broadcasting before opset 7). What the IR lacks is
 * built from primitives: erf (Abramowitz–Stegun 7.1.26, |error| < 1.5e-7), grouped convolutions
 * (depthwise as kernel-many shifted products, other groups as one conv per group), ConvTranspose
 * (`conv2d_input_grad`, which is a transposed convolution), pooling with dilation and ceil mode
 * (strided slices), batch norm in its inference form. Whatever a rule cannot do exactly it refuses
 * through `c.fail`, which names the node, its op and its opset.
 */
import { F32_LOWEST, type GraphBuilder, type Value } from '../ir/builder.js';
import { broadcastShapes, numel, normAxis, type DType } from '../ir/dtype.js';
import type { AttributeProto } from './proto.js';
import { tensorValues, ONNX_DTYPE, isFloatType } from './proto.js';

/** A constant known at import time: its values, or one value filling it (big uniform weights). */
export interface HostTensor {
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly data?: Float64Array;
  readonly fill?: number;
  /** It was an int64 tensor in the file (shapes, axes). */
  readonly int64?: boolean;
}

/** An ONNX value during import. */
export type OV =
  | { readonly kind: 'value'; readonly v: Value }
  /** `train`: a float initializer, a weight (materialized as a param of that name). */
  | { readonly kind: 'const'; readonly t: HostTensor; readonly name?: string; readonly train?: string }
  /** An optional output no rule computes; reading it is refused with `why`. */
  | { readonly kind: 'missing'; readonly why: string };

export interface OnnxCtx {
  readonly b: GraphBuilder;
  readonly opset: number;
  /** How many outputs the node lists. */
  readonly outputs: number;
  readonly attrs: ReadonlyMap<string, AttributeProto>;
  readonly where: string;
  fail(why: string): never;
  /**
   * Refuses something adjoint does not do at all (a run-time shape, an attribute value it has no
   * translation for), counted under `<op> <feature>` by the conformance run.
   */
  unsupported(feature: string, why: string): never;
  /** The operand as a graph value (a constant is materialized). */
  value(x: OV | undefined, what: string): Value;
}

export type OnnxResult = OV | Value | undefined;
export type OnnxRule = (c: OnnxCtx, xs: readonly (OV | undefined)[]) => OnnxResult | OnnxResult[];

// ---- attribute and constant helpers --------------------------------------------------------

const aInt = (c: OnnxCtx, k: string, d: number): number => (c.attrs.has(k) ? Number(c.attrs.get(k)!.i ?? 0) : d);
const aFloat = (c: OnnxCtx, k: string, d: number): number => (c.attrs.has(k) ? Number(c.attrs.get(k)!.f ?? 0) : d);
const aInts = (c: OnnxCtx, k: string): number[] | undefined => (c.attrs.has(k) ? (c.attrs.get(k)!.ints ?? []).map(Number) : undefined);
const aStr = (c: OnnxCtx, k: string, d: string): string => {
  const s = c.attrs.get(k)?.s;
  return s ? new TextDecoder().decode(s) : d;
};

/** The values of a constant operand; refused when it is computed at run time. */
function konst(c: OnnxCtx, x: OV | undefined, what: string): Float64Array {
  if (!x) return c.fail(`${what} is missing`);
  if (x.kind === 'missing') return c.fail(x.why);
  if (x.kind !== 'const') return c.unsupported(`with a run-time ${what}`, `${what} must be a constant (it is computed at run time, a dynamic shape)`);
  return x.t.data ?? new Float64Array(numel(x.t.shape)).fill(x.t.fill ?? 0);
}
const kints = (c: OnnxCtx, x: OV | undefined, what: string): number[] => [...konst(c, x, what)].map((v) => Math.round(v));
const isConst = (x: OV | undefined): x is OV & { kind: 'const' } => x?.kind === 'const';
const shapeOf = (c: OnnxCtx, x: OV | undefined, what: string): readonly number[] => {
  if (!x) return c.fail(`${what} is missing`);
  if (x.kind === 'missing') return c.fail(x.why);
  return x.kind === 'value' ? x.v.type.shape : x.t.shape;
};
const dtypeOf = (x: OV | undefined): DType => (x?.kind === 'value' ? x.v.type.dtype : x?.kind === 'const' ? x.t.dtype : 'f32');
const konstOut = (shape: readonly number[], data: ArrayLike<number>, dtype: DType = 'i32'): OV => ({ kind: 'const', t: { shape: [...shape], dtype, data: Float64Array.from(data), int64: dtype === 'i32' } });

/** An axis attribute or value normalized against rank `r`, refused when out of range. */
function axisOf(c: OnnxCtx, a: number, r: number, what = 'axis'): number {
  if (!Number.isInteger(a) || a < -r || a >= Math.max(r, 1)) return c.fail(`${what} ${a} is out of range for rank ${r}`);
  return a < 0 ? a + r : a;
}

const x0 = (c: OnnxCtx, xs: readonly (OV | undefined)[]) => c.value(xs[0], 'input 0');
const x1 = (c: OnnxCtx, xs: readonly (OV | undefined)[]) => c.value(xs[1], 'input 1');

// ---- elementwise ---------------------------------------------------------------------------

/** Before opset 7, binary ops broadcast only with `broadcast=1`, aligning B at `axis`. */
function legacyB(c: OnnxCtx, a: Value, bv: Value): Value {
  if (c.opset >= 7 || aInt(c, 'broadcast', 0) !== 1 || !c.attrs.has('axis')) return bv;
  const ra = a.type.shape.length;
  const rb = bv.type.shape.length;
  const axis = axisOf(c, aInt(c, 'axis', 0), ra);
  return c.b.reshape(bv, [...Array(axis).fill(1), ...bv.type.shape, ...Array(Math.max(0, ra - axis - rb)).fill(1)]);
}
const binary = (f: (b: GraphBuilder, p: Value, q: Value) => Value): OnnxRule => (c, xs) => {
  const a = x0(c, xs);
  return f(c.b, a, legacyB(c, a, x1(c, xs)));
};
const unary = (f: (b: GraphBuilder, x: Value, c: OnnxCtx) => Value): OnnxRule => (c, xs) => f(c.b, x0(c, xs), c);
const variadic = (f: (b: GraphBuilder, p: Value, q: Value) => Value, mean = false): OnnxRule => (c, xs) => {
  const vs = xs.map((x, i) => c.value(x, `input ${i}`));
  let acc = vs[0] ?? c.fail('needs at least one input');
  for (const v of vs.slice(1)) acc = f(c.b, acc, v);
  return mean ? c.b.mul(acc, 1 / vs.length) : acc;
};

/** erf by Abramowitz–Stegun 7.1.26 (absolute error below 1.5e-7), odd in x. */
export function erf(b: GraphBuilder, x: Value): Value {
  const ax = b.abs(x);
  const t = b.reciprocal(b.add_(b.mul(ax, 0.3275911), 1));
  let poly = b.mul(t, 1.061405429);
  for (const a of [-1.453152027, 1.421413741, -0.284496736, 0.254829592]) poly = b.mul(b.add_(poly, a), t);
  const y = b.sub(1, b.mul(poly, b.exp(b.neg(b.square(x)))));
  return b.where(b.lt(x, 0), b.neg(y), y);
}
/** log(1 + exp(x)) without overflow: max(x, 0) + log(1 + exp(-|x|)). */
const softplus = (b: GraphBuilder, x: Value): Value => b.add_(b.relu(x), b.log(b.add_(b.exp(b.neg(b.abs(x))), 1)));
const elu = (b: GraphBuilder, x: Value, alpha: number): Value => b.where(b.gt(x, 0), x, b.mul(b.sub(b.exp(b.minimum(x, 0)), 1), alpha));

function castTo(c: OnnxCtx, x: Value, to: number): Value {
  if (isFloatType(to)) return x.type.dtype === 'f32' ? x : c.b.cast(x, 'f32');
  if (to === ONNX_DTYPE.BOOL) return c.b.ne(x, 0);
  if (to === ONNX_DTYPE.STRING) return c.fail('casting to strings is not supported');
  return x.type.dtype === 'i32' ? x : c.b.cast(x, 'i32');
}

// ---- movement ------------------------------------------------------------------------------

function reshapeTo(c: OnnxCtx, x: Value, spec: readonly number[], allowZero: boolean): Value {
  const shape = spec.map((d, i) => (d === 0 && !allowZero ? x.type.shape[i] ?? c.fail(`shape entry ${i} copies a dimension the input lacks`) : d));
  const known = shape.filter((d) => d !== -1).reduce((p, q) => p * q, 1);
  const free = shape.filter((d) => d === -1).length;
  if (free > 1) return c.fail('the shape has more than one -1');
  const n = numel(x.type.shape);
  const out = shape.map((d) => (d === -1 ? n / Math.max(known, 1) : d));
  if (out.some((d) => !Number.isInteger(d) || d < 1)) return c.fail(`cannot reshape [${x.type.shape.join(',')}] to [${spec.join(',')}]`);
  return c.b.reshape(x, out);
}

function flatten2(c: OnnxCtx, x: Value, axis: number): Value {
  const s = x.type.shape;
  const a = axis < 0 ? axis + s.length : axis;
  if (a < 0 || a > s.length) c.fail(`axis ${axis} is out of range for rank ${s.length}`);
  return c.b.reshape(x, [numel(s.slice(0, a)), numel(s.slice(a))]);
}

/** Axes from the `axes` attribute (older opsets) or the second input (newer ones). */
function axesArg(c: OnnxCtx, xs: readonly (OV | undefined)[], inputFrom: number, idx = 1): number[] | undefined {
  if (c.opset >= inputFrom) return xs[idx] ? kints(c, xs[idx], 'axes') : undefined;
  return aInts(c, 'axes');
}

function sliceAxes(c: OnnxCtx, x: Value, starts: number[], ends: number[], axes: number[] | undefined, steps: number[] | undefined): Value {
  const s = x.type.shape;
  const r = s.length;
  const st = s.map(() => 0);
  const en = [...s];
  const sp = s.map(() => 1);
  (axes ?? starts.map((_, i) => i)).forEach((a0, i) => {
    const a = axisOf(c, a0, r, 'slice axis');
    const d = s[a]!;
    const step = steps?.[i] ?? 1;
    if (step < 1) c.fail(`slice steps below 1 (here ${step}) are not supported`);
    const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + d : v, 0), d);
    st[a] = clamp(starts[i]!);
    en[a] = clamp(ends[i]!);
    sp[a] = step;
    if (en[a]! <= st[a]!) c.fail(`the slice of axis ${a} is empty (empty tensors are not supported)`);
  });
  return c.b.slice(x, st, en, sp);
}

/** Gathers along `axis`: the IR gathers rows (axis 0), so other axes go through transposes. */
function gatherAxis(c: OnnxCtx, data: Value, idx: OV | undefined, axis: number): Value {
  const b = c.b;
  const s = data.type.shape;
  const a = axisOf(c, axis, s.length);
  const d = s[a]!;
  let iv: Value;
  if (isConst(idx)) {
    const vals = konst(c, idx, 'indices').map((v) => (v < 0 ? v + d : v));
    if (vals.some((v) => v < 0 || v >= d)) c.fail(`an index is out of range for axis ${a} of size ${d}`);
    if (idx.t.shape.length === 0) {
      // One index: a slice and a reshape, no gather.
      const st = s.map(() => 0);
      const en = [...s];
      st[a] = vals[0]!;
      en[a] = vals[0]! + 1;
      return b.reshape(b.slice(data, st, en), s.filter((_, i) => i !== a));
    }
    iv = c.value({ kind: 'const', t: { shape: idx.t.shape, dtype: 'i32', data: vals }, name: idx.name ?? 'indices' }, 'indices');
  } else {
    iv = c.value(idx, 'indices');
    if (iv.type.dtype !== 'i32') c.fail('indices must be integers');
    iv = b.where(b.lt(iv, 0), b.add_(iv, d), iv);
  }
  const perm = [a, ...s.keys()].filter((v, i) => i === 0 || v !== a);
  const moved = a === 0 ? data : b.transpose(data, perm);
  const g = b.gather(moved, iv);
  if (a === 0) return g;
  // g: [...idx, ...rest without axis a, in perm order]; move the index dims back to position a.
  const ri = iv.type.shape.length;
  const rest = s.length - 1;
  const back = [...Array(a).keys()].map((i) => ri + i);
  return b.transpose(g, [...back, ...[...Array(ri).keys()], ...[...Array(rest - a).keys()].map((i) => ri + a + i)]);
}

// ---- convolution and pooling ---------------------------------------------------------------

interface Window {
  readonly kernel: number[];
  readonly strides: number[];
  readonly dilations: number[];
  readonly begin: number[];
  readonly end: number[];
}

/** Kernel, strides, dilations and pads of a conv or pooling node over `spatial` (the input's H, W). */
function windowOf(c: OnnxCtx, spatial: readonly number[], kernel: readonly number[], ceil = false): Window {
  const n = spatial.length;
  const strides = aInts(c, 'strides') ?? Array(n).fill(1);
  const dilations = aInts(c, 'dilations') ?? Array(n).fill(1);
  const pads = aInts(c, 'pads') ?? Array(2 * n).fill(0);
  const auto = aStr(c, 'auto_pad', 'NOTSET');
  let begin = pads.slice(0, n);
  let end = pads.slice(n, 2 * n);
  if (auto === 'SAME_UPPER' || auto === 'SAME_LOWER') {
    begin = [];
    end = [];
    spatial.forEach((d, i) => {
      const out = Math.ceil(d / strides[i]!);
      const total = Math.max(0, (out - 1) * strides[i]! + (kernel[i]! - 1) * dilations[i]! + 1 - d);
      const lo = auto === 'SAME_UPPER' ? Math.floor(total / 2) : Math.ceil(total / 2);
      begin.push(lo);
      end.push(total - lo);
    });
  } else if (auto === 'VALID') {
    begin = Array(n).fill(0);
    end = Array(n).fill(0);
  } else if (auto !== 'NOTSET') c.fail(`auto_pad "${auto}" is not supported`);
  if (ceil) {
    // Ceil mode: extra padding at the end so the last partial window is taken.
    spatial.forEach((d, i) => {
      const span = (kernel[i]! - 1) * dilations[i]! + 1;
      const padded = d + begin[i]! + end[i]!;
      let out = Math.ceil((padded - span) / strides[i]!) + 1;
      if ((out - 1) * strides[i]! >= d + begin[i]!) out--; // the last window must start inside the input or its begin padding
      end[i] = Math.max(end[i]!, (out - 1) * strides[i]! + span - d - begin[i]!);
    });
  }
  if ([...strides, ...dilations].some((v) => !Number.isInteger(v) || v < 1)) c.fail('strides and dilations must be integers >= 1');
  if ([...begin, ...end].some((v) => v < 0)) c.fail('negative pads are not supported');
  return { kernel: [...kernel], strides, dilations, begin, end };
}

/** A rank-3 (1-D) operand as rank 4 with H = 1; rank 4 as is; other ranks refused. */
function as2d(c: OnnxCtx, x: Value, what: string): Value {
  const s = x.type.shape;
  if (s.length === 4) return x;
  if (s.length === 3) return c.b.reshape(x, [s[0]!, s[1]!, 1, s[2]!]);
  return c.fail(`${what} has rank ${s.length}; only 1-D and 2-D (rank 3 and 4) are supported`);
}
const win2d = (w: Window, oneD: boolean): Window =>
  oneD ? { kernel: [1, ...w.kernel], strides: [1, ...w.strides], dilations: [1, ...w.dilations], begin: [0, ...w.begin], end: [0, ...w.end] } : w;
const back1d = (c: OnnxCtx, y: Value, oneD: boolean): Value => {
  const s = y.type.shape;
  return oneD ? c.b.reshape(y, [s[0]!, s[1]!, s[3]!]) : y;
};

/** x padded explicitly when its pads are not symmetric; returns the conv padding left to apply. */
function padFor(b: GraphBuilder, x: Value, w: Window): { x: Value; padding: [number, number] } {
  if (w.begin[0] === w.end[0] && w.begin[1] === w.end[1]) return { x, padding: [w.begin[0]!, w.begin[1]!] };
  return { x: b.pad(x, [0, 0, w.begin[0]!, w.begin[1]!], [0, 0, w.end[0]!, w.end[1]!]), padding: [0, 0] };
}

/**
 * Kernel-many strided slices of padded `x` (window positions), each mapped by `term` and combined
 * by `f` as a balanced tree, so a big window is a shallow expression.
 */
function windows(b: GraphBuilder, x: Value, w: Window, term: (win: Value, i: number, j: number) => Value, f: (p: Value, q: Value) => Value): Value {
  const [n, ch, h, wd] = x.type.shape as [number, number, number, number];
  const out = [0, 1].map((i) => Math.floor(((i === 0 ? h : wd) - ((w.kernel[i]! - 1) * w.dilations[i]! + 1)) / w.strides[i]!) + 1);
  if (out.some((o) => o < 1)) throw new OnnxWindowError(`the window does not fit the input ${h}x${wd}`);
  const level: Value[] = [];
  for (let i = 0; i < w.kernel[0]!; i++) {
    for (let j = 0; j < w.kernel[1]!; j++) {
      const [oi, oj] = [i * w.dilations[0]!, j * w.dilations[1]!];
      const win = b.slice(x, [0, 0, oi, oj], [n, ch, oi + (out[0]! - 1) * w.strides[0]! + 1, oj + (out[1]! - 1) * w.strides[1]! + 1], [1, 1, w.strides[0]!, w.strides[1]!]);
      level.push(term(win, i, j));
    }
  }
  return tree(level, f);
}

/** `f` over `level` as a balanced tree (a shallow expression). */
function tree(level: Value[], f: (p: Value, q: Value) => Value): Value {
  while (level.length > 1) {
    const next: Value[] = [];
    for (let k = 0; k + 1 < level.length; k += 2) next.push(f(level[k]!, level[k + 1]!));
    if (level.length % 2) next.push(level.at(-1)!);
    level = next;
  }
  return level[0]!;
}

/**
 * Pooling windows of padded `x` combined by `f` (max or sum: associative, commutative), done
 * separably: first over the rows' taps, then over the columns' taps, so a KH x KW window costs
 * KH + KW strided slices, not KH * KW (a 60x80 max pool: 140 slices, not 4,800).
 */
function poolWindows(b: GraphBuilder, x: Value, w: Window, f: (p: Value, q: Value) => Value): Value {
  const [n, ch, h, wd] = x.type.shape as [number, number, number, number];
  const out = [0, 1].map((i) => Math.floor(((i === 0 ? h : wd) - ((w.kernel[i]! - 1) * w.dilations[i]! + 1)) / w.strides[i]!) + 1);
  if (out.some((o) => o < 1)) throw new OnnxWindowError(`the window does not fit the input ${h}x${wd}`);
  const rows: Value[] = [];
  for (let i = 0; i < w.kernel[0]!; i++) {
    const oi = i * w.dilations[0]!;
    rows.push(b.slice(x, [0, 0, oi, 0], [n, ch, oi + (out[0]! - 1) * w.strides[0]! + 1, wd], [1, 1, w.strides[0]!, 1]));
  }
  const r = tree(rows, f);
  const cols: Value[] = [];
  for (let j = 0; j < w.kernel[1]!; j++) {
    const oj = j * w.dilations[1]!;
    cols.push(b.slice(r, [0, 0, 0, oj], [n, ch, out[0]!, oj + (out[1]! - 1) * w.strides[1]! + 1], [1, 1, 1, w.strides[1]!]));
  }
  return tree(cols, f);
}
class OnnxWindowError extends Error {}

/** A 2-D convolution of x [N,C,H,W] by w [O,C/group,KH,KW] over window `win`, any group count. */
function conv2dCore(c: OnnxCtx, x: Value, w: Value, win: Window, group: number): Value {
  const b = c.b;
  const [, ch] = x.type.shape as [number, number, number, number];
  const [o, cpg, kh, kw] = w.type.shape as [number, number, number, number];
  if (group < 1 || ch % group !== 0 || o % group !== 0 || cpg * group !== ch) c.fail(`group ${group} does not fit ${ch} input channels, ${o} filters of ${cpg} channels`);
  if (group === 1) {
    const p = padFor(b, x, win);
    return b.conv2d(p.x, w, { stride: [win.strides[0]!, win.strides[1]!], padding: p.padding, dilation: [win.dilations[0]!, win.dilations[1]!] });
  }
  if (cpg === 1) {
    // Depthwise (channel multiplier m = o / ch): kernel-many shifted products, one kernel after fusion.
    const m = o / ch;
    const [n, , h, wd] = x.type.shape as [number, number, number, number];
    let xr = x;
    if (m > 1) xr = b.reshape(b.broadcastTo(b.reshape(x, [n, ch, 1, h, wd]), [n, ch, m, h, wd]), [n, o, h, wd]);
    const padded = win.begin.some((v) => v > 0) || win.end.some((v) => v > 0)
      ? b.pad(xr, [0, 0, win.begin[0]!, win.begin[1]!], [0, 0, win.end[0]!, win.end[1]!])
      : xr;
    try {
      return windows(b, padded, win, (sl, i, j) => b.mul(sl, b.reshape(b.slice(w, [0, 0, i, j], [o, 1, i + 1, j + 1]), [1, o, 1, 1])), (p, q) => b.add_(p, q));
    } catch (e) {
      if (e instanceof OnnxWindowError) c.fail(e.message);
      throw e;
    }
  }
  const p = padFor(b, x, win);
  const per = o / group;
  const parts: Value[] = [];
  const [n, , h, wd] = p.x.type.shape as [number, number, number, number];
  for (let gi = 0; gi < group; gi++) {
    const xg = b.slice(p.x, [0, gi * cpg, 0, 0], [n, (gi + 1) * cpg, h, wd]);
    const wg = b.slice(w, [gi * per, 0, 0, 0], [(gi + 1) * per, cpg, kh, kw]);
    parts.push(b.conv2d(xg, wg, { stride: [win.strides[0]!, win.strides[1]!], padding: p.padding, dilation: [win.dilations[0]!, win.dilations[1]!] }));
  }
  return b.concat(parts, 1);
}

/** The depth part of a 3-D window, and its H, W part as a 2-D window. */
const split3 = (w: Window): [Window, Window] => [
  { kernel: [w.kernel[0]!], strides: [w.strides[0]!], dilations: [w.dilations[0]!], begin: [w.begin[0]!], end: [w.end[0]!] },
  { kernel: w.kernel.slice(1), strides: w.strides.slice(1), dilations: w.dilations.slice(1), begin: w.begin.slice(1), end: w.end.slice(1) },
];

/**
 * A 3-D operation (x [N,C,D,H,W]) as 2-D ones over depth slabs: for each depth tap kd, the
 * strided slab of padded x at kd goes through `f` as a 2-D batch [N*OD, C, H, W] (depth folded
 * into the batch); `combine` joins the taps (a sum for convolution, a max or sum for pooling).
 */
function depthTaps(c: OnnxCtx, x: Value, depth: Window, padValue: number, f: (slab: Value, kd: number) => Value, combine: (p: Value, q: Value) => Value): Value {
  const b = c.b;
  const [n, ch, d, h, wd] = x.type.shape as [number, number, number, number, number];
  const xp = depth.begin[0] || depth.end[0] ? b.pad(x, [0, 0, depth.begin[0]!, 0, 0], [0, 0, depth.end[0]!, 0, 0], padValue) : x;
  const dp = d + depth.begin[0]! + depth.end[0]!;
  const span = (depth.kernel[0]! - 1) * depth.dilations[0]! + 1;
  const od = Math.floor((dp - span) / depth.strides[0]!) + 1;
  if (od < 1) c.fail(`the window does not fit depth ${d}`);
  let level: Value[] = [];
  for (let kd = 0; kd < depth.kernel[0]!; kd++) {
    const at = kd * depth.dilations[0]!;
    const slab = b.slice(xp, [0, 0, at, 0, 0], [n, ch, at + (od - 1) * depth.strides[0]! + 1, h, wd], [1, 1, depth.strides[0]!, 1, 1]);
    const flat = b.reshape(b.transpose(slab, [0, 2, 1, 3, 4]), [n * od, ch, h, wd]);
    level.push(f(flat, kd));
  }
  while (level.length > 1) {
    const next: Value[] = [];
    for (let k = 0; k + 1 < level.length; k += 2) next.push(combine(level[k]!, level[k + 1]!));
    if (level.length % 2) next.push(level.at(-1)!);
    level = next;
  }
  const y = level[0]!;
  const [, co, oh, ow] = y.type.shape as [number, number, number, number];
  return b.transpose(b.reshape(y, [n, od, co, oh, ow]), [0, 2, 1, 3, 4]);
}

function conv(c: OnnxCtx, xs: readonly (OV | undefined)[]): Value {
  const b = c.b;
  const x0v = x0(c, xs);
  const group = aInt(c, 'group', 1);
  if (x0v.type.shape.length === 5) {
    const w = x1(c, xs);
    if (w.type.shape.length !== 5) c.fail('the weight of a 3-D convolution needs rank 5');
    const [o, cpg, kd, kh, kw] = w.type.shape as [number, number, number, number, number];
    const [depth, plane] = split3(windowOf(c, x0v.type.shape.slice(2), [kd, kh, kw]));
    let y = depthTaps(c, x0v, depth, 0, (slab, t) => conv2dCore(c, slab, b.reshape(b.slice(w, [0, 0, t, 0, 0], [o, cpg, t + 1, kh, kw]), [o, cpg, kh, kw]), plane, group), (p, q) => b.add_(p, q));
    if (xs[2]) y = b.add_(y, b.reshape(c.value(xs[2], 'bias'), [1, o, 1, 1, 1]));
    return y;
  }
  const oneD = x0v.type.shape.length === 3;
  const x = as2d(c, x0v, 'the input');
  const w = as2d(c, x1(c, xs), 'the weight');
  const [o, , kh, kw] = w.type.shape as [number, number, number, number];
  const kernel = aInts(c, 'kernel_shape');
  if (kernel && kernel.join() !== (oneD ? [kw] : [kh, kw]).join()) c.fail(`kernel_shape [${kernel.join(',')}] does not match the weight`);
  const win = win2d(windowOf(c, oneD ? [x.type.shape[3]!] : x.type.shape.slice(2), oneD ? [kw] : [kh, kw]), oneD);
  let y = conv2dCore(c, x, w, win, group);
  if (xs[2]) y = b.add_(y, b.reshape(c.value(xs[2], 'bias'), [1, o, 1, 1]));
  return back1d(c, y, oneD);
}

function convTranspose(c: OnnxCtx, xs: readonly (OV | undefined)[]): Value {
  const b = c.b;
  const x0v = x0(c, xs);
  const oneD = x0v.type.shape.length === 3;
  const x = as2d(c, x0v, 'the input');
  const w = as2d(c, x1(c, xs), 'the weight');
  const [n, ci, h, wd] = x.type.shape as [number, number, number, number];
  const [wc, cpg, kh, kw] = w.type.shape as [number, number, number, number];
  const group = aInt(c, 'group', 1);
  if (wc !== ci || ci % group !== 0) c.fail(`the weight [${w.type.shape.join(',')}] does not fit ${ci} input channels in ${group} groups`);
  const k = [kh, kw];
  const nd = oneD ? 1 : 2;
  const lift = (v: number[] | undefined, d: number): number[] => (v ? (oneD ? [d, ...v] : v) : [d, d]);
  const strides = lift(aInts(c, 'strides'), 1);
  const dil = lift(aInts(c, 'dilations'), 1);
  const outPad = lift(aInts(c, 'output_padding'), 0);
  const pads = aInts(c, 'pads');
  let begin = pads ? (oneD ? [0, pads[0]!] : pads.slice(0, 2)) : [0, 0];
  let end = pads ? (oneD ? [0, pads[1]!] : pads.slice(2, 4)) : [0, 0];
  const inSize = [h, wd];
  const full = [0, 1].map((i) => (inSize[i]! - 1) * strides[i]! + (k[i]! - 1) * dil[i]! + 1 + outPad[i]!);
  const auto = aStr(c, 'auto_pad', 'NOTSET');
  const outShape = aInts(c, 'output_shape');
  if (outShape || auto === 'SAME_UPPER' || auto === 'SAME_LOWER') {
    const want = outShape ? (oneD ? [1, ...outShape.slice(-1)] : outShape.slice(-2)) : inSize.map((d, i) => d * strides[i]!);
    const total = [0, 1].map((i) => full[i]! - want[i]!);
    begin = total.map((t) => (auto === 'SAME_UPPER' ? Math.floor(t / 2) : t - Math.floor(t / 2)));
    end = total.map((t, i) => t - begin[i]!);
  } else if (auto !== 'NOTSET' && auto !== 'VALID') c.fail(`auto_pad "${auto}" is not supported`);
  void nd;
  if ([...begin, ...end].some((v) => v < 0)) c.fail('negative pads are not supported');
  if (outPad.some((v, i) => v >= strides[i]!)) c.fail('output_padding must be smaller than the stride');
  const attrs = { stride: [strides[0]!, strides[1]!] as [number, number], padding: [0, 0] as [number, number], dilation: [dil[0]!, dil[1]!] as [number, number], size: [full[0]!, full[1]!] as [number, number] };
  let y: Value;
  if (group === 1) y = b.add('conv2d_input_grad', attrs, [x, w]);
  else {
    const cig = ci / group;
    const parts: Value[] = [];
    for (let gi = 0; gi < group; gi++) {
      const xg = b.slice(x, [0, gi * cig, 0, 0], [n, (gi + 1) * cig, h, wd]);
      const wg = b.slice(w, [gi * cig, 0, 0, 0], [(gi + 1) * cig, cpg, kh, kw]);
      parts.push(b.add('conv2d_input_grad', attrs, [xg, wg]));
    }
    y = b.concat(parts, 1);
  }
  const co = y.type.shape[1]!;
  if (begin.some((v) => v > 0) || end.some((v) => v > 0)) {
    if (full.some((f, i) => f - begin[i]! - end[i]! < 1)) c.fail('the pads leave an empty output');
    y = b.slice(y, [0, 0, begin[0]!, begin[1]!], [n, co, full[0]! - end[0]!, full[1]! - end[1]!]);
  }
  if (xs[2]) y = b.add_(y, b.reshape(c.value(xs[2], 'bias'), [1, co, 1, 1]));
  return back1d(c, y, oneD);
}

function pool(kind: 'max' | 'avg'): OnnxRule {
  return (c, xs) => {
    const b = c.b;
    if (c.outputs > 1) c.fail('the Indices output is not supported');
    const x0v = x0(c, xs);
    const kernel = aInts(c, 'kernel_shape') ?? c.fail('kernel_shape is missing');
    const ceil = aInt(c, 'ceil_mode', 0) === 1;
    if (x0v.type.shape.length === 5) {
      // 3-D: 2-D pooling of depth slabs (depth folded into the batch), combined over the depth taps.
      if (kernel.length !== 3) c.fail('kernel_shape needs 3 entries for a 3-D input');
      const full = windowOf(c, x0v.type.shape.slice(2), kernel, ceil);
      if (kind === 'avg' && ceil && full.end.join() !== windowOf(c, x0v.type.shape.slice(2), kernel).end.join()) c.fail('ceil_mode with a partial last window is not supported for AveragePool');
      const [depth, plane] = split3(full);
      const lowest = kind === 'max' ? F32_LOWEST : 0;
      const pool2 = (slab: Value): Value => {
        const padded = plane.begin.some((v) => v > 0) || plane.end.some((v) => v > 0)
          ? b.pad(slab, [0, 0, plane.begin[0]!, plane.begin[1]!], [0, 0, plane.end[0]!, plane.end[1]!], lowest)
          : slab;
        try {
          return poolWindows(b, padded, plane, (p, q) => (kind === 'max' ? b.maximum(p, q) : b.add_(p, q)));
        } catch (e) {
          if (e instanceof OnnxWindowError) return c.fail(e.message);
          throw e;
        }
      };
      const both = (p: Value, q: Value) => (kind === 'max' ? b.maximum(p, q) : b.add_(p, q));
      const y = depthTaps(c, x0v, depth, lowest, pool2, both);
      if (kind === 'max') return y;
      const padsUsed = full.begin.some((v) => v > 0) || full.end.some((v) => v > 0);
      if (aInt(c, 'count_include_pad', 0) === 1 || !padsUsed) return b.mul(y, 1 / (kernel[0]! * kernel[1]! * kernel[2]!));
      const [, , d, h, wd] = x0v.type.shape as [number, number, number, number, number];
      return b.div(y, depthTaps(c, b.full(1, [1, 1, d, h, wd]), depth, 0, pool2, both));
    }
    const oneD = x0v.type.shape.length === 3;
    const x = as2d(c, x0v, 'the input');
    const base = windowOf(c, oneD ? [x.type.shape[3]!] : x.type.shape.slice(2), kernel);
    const win = win2d(windowOf(c, oneD ? [x.type.shape[3]!] : x.type.shape.slice(2), kernel, ceil), oneD);
    if (kind === 'avg' && ceil && win.end.join() !== win2d(base, oneD).end.join()) c.fail('ceil_mode with a partial last window is not supported for AveragePool');
    const padded = win.begin.some((v) => v > 0) || win.end.some((v) => v > 0)
      ? b.pad(x, [0, 0, win.begin[0]!, win.begin[1]!], [0, 0, win.end[0]!, win.end[1]!], kind === 'max' ? F32_LOWEST : 0)
      : x;
    let y: Value;
    try {
      y = poolWindows(b, padded, win, (p, q) => (kind === 'max' ? b.maximum(p, q) : b.add_(p, q)));
    } catch (e) {
      if (e instanceof OnnxWindowError) return c.fail(e.message);
      throw e;
    }
    if (kind === 'avg') {
      const area = win.kernel[0]! * win.kernel[1]!;
      const padsUsed = win.begin.some((v) => v > 0) || win.end.some((v) => v > 0);
      if (aInt(c, 'count_include_pad', 0) === 1 || !padsUsed) y = b.mul(y, 1 / area);
      else {
        // The divisor counts only the window's elements inside the input: the same window sums
        // over a padded tensor of ones (constants, folded into the kernel by fusion).
        const ones = b.full(1, [1, 1, x.type.shape[2]!, x.type.shape[3]!]);
        const count = poolWindows(b, b.pad(ones, [0, 0, win.begin[0]!, win.begin[1]!], [0, 0, win.end[0]!, win.end[1]!]), win, (p, q) => b.add_(p, q));
        y = b.div(y, count);
      }
    }
    return back1d(c, y, oneD);
  };
}

// ---- normalization, softmax, reductions ----------------------------------------------------

const channelShape = (x: Value): number[] => x.type.shape.map((d, i) => (i === 1 ? d : 1));

function softmaxRule(log: boolean): OnnxRule {
  return (c, xs) => {
    const b = c.b;
    const x = x0(c, xs);
    const r = x.type.shape.length;
    if (c.opset >= 13) return log ? b.logSoftmax(x, axisOf(c, aInt(c, 'axis', -1), r)) : b.softmax(x, axisOf(c, aInt(c, 'axis', -1), r));
    // Before opset 13: over the flattened trailing dims from `axis` (default 1).
    const flat = flatten2(c, x, aInt(c, 'axis', 1));
    const y = log ? b.logSoftmax(flat, -1) : b.softmax(flat, -1);
    return b.reshape(y, x.type.shape);
  };
}

function reduceRule(kind: 'sum' | 'mean' | 'max' | 'min' | 'sumsq' | 'l2' | 'l1' | 'prod', inputFrom: number): OnnxRule {
  return (c, xs) => {
    const b = c.b;
    const x = x0(c, xs);
    const r = x.type.shape.length;
    const keep = aInt(c, 'keepdims', 1) === 1;
    let axes = axesArg(c, xs, inputFrom);
    if (!axes || axes.length === 0) {
      if (aInt(c, 'noop_with_empty_axes', 0) === 1) return x;
      axes = [...Array(r).keys()];
    }
    const ax = axes.map((a) => axisOf(c, a, r));
    if (r === 0) return x;
    switch (kind) {
      case 'sum': return b.reduceSum(x, ax, keep);
      case 'mean': return b.reduceMean(x, ax, keep);
      case 'max': return b.reduceMax(x, ax, keep);
      case 'min': return b.neg(b.reduceMax(b.neg(x), ax, keep));
      case 'sumsq': return b.reduceSum(b.square(x), ax, keep);
      case 'l2': return b.sqrt(b.reduceSum(b.square(x), ax, keep));
      case 'l1': return b.reduceSum(b.abs(x), ax, keep);
      case 'prod': return c.fail('ReduceProd is not supported');
    }
  };
}

const compare = (op: 'eq' | 'lt' | 'gt' | 'le' | 'ge'): OnnxRule => binary((b, p, q) => b.binary(op, p, q));

// ---- the table -----------------------------------------------------------------------------

export const ONNX_OPS: Readonly<Record<string, OnnxRule>> = {
  // elementwise arithmetic
  Add: binary((b, p, q) => b.add_(p, q)),
  Sub: binary((b, p, q) => b.sub(p, q)),
  Mul: binary((b, p, q) => b.mul(p, q)),
  Div: binary((b, p, q) => b.div(p, q)),
  Pow: binary((b, p, q) => (q.type.dtype !== p.type.dtype ? b.pow(p, b.cast(q, p.type.dtype)) : b.pow(p, q))),
  Max: variadic((b, p, q) => b.maximum(p, q)),
  Min: variadic((b, p, q) => b.minimum(p, q)),
  Sum: variadic((b, p, q) => b.add_(p, q)),
  Mean: variadic((b, p, q) => b.add_(p, q), true),
  Sqrt: unary((b, x) => b.sqrt(x)),
  Exp: unary((b, x) => b.exp(x)),
  Log: unary((b, x) => b.log(x)),
  Neg: unary((b, x) => b.neg(x)),
  Abs: unary((b, x) => b.abs(x)),
  Reciprocal: unary((b, x) => b.reciprocal(x)),
  Sin: unary((b, x) => b.sin(x)),
  Cos: unary((b, x) => b.cos(x)),
  Not: unary((b, x) => b.eq(x, 0)),
  And: binary((b, p, q) => b.mul(b.ne(p, 0), b.ne(q, 0))),
  Or: binary((b, p, q) => b.maximum(b.ne(p, 0), b.ne(q, 0))),
  // activations
  Relu: unary((b, x) => b.relu(x)),
  Sigmoid: unary((b, x) => b.sigmoid(x)),
  Tanh: unary((b, x) => b.tanh(x)),
  LeakyRelu: unary((b, x, c) => b.where(b.ge(x, 0), x, b.mul(x, aFloat(c, 'alpha', 0.01)))),
  Elu: unary((b, x, c) => elu(b, x, aFloat(c, 'alpha', 1))),
  Celu: unary((b, x, c) => {
    const a = aFloat(c, 'alpha', 1);
    return b.add_(b.relu(x), b.minimum(b.mul(b.sub(b.exp(b.div(b.minimum(x, 0), a)), 1), a), 0));
  }),
  Selu: unary((b, x, c) => b.mul(elu(b, x, aFloat(c, 'alpha', 1.67326319217681884765625)), aFloat(c, 'gamma', 1.05070102214813232421875))),
  Softplus: unary((b, x) => softplus(b, x)),
  Softsign: unary((b, x) => b.div(x, b.add_(b.abs(x), 1))),
  HardSigmoid: unary((b, x, c) => b.maximum(b.minimum(b.add_(b.mul(x, aFloat(c, 'alpha', 0.2)), aFloat(c, 'beta', 0.5)), 1), 0)),
  HardSwish: unary((b, x) => b.mul(x, b.maximum(b.minimum(b.add_(b.mul(x, 1 / 6), 0.5), 1), 0))),
  Erf: unary((b, x) => erf(b, x)),
  Gelu: unary((b, x, c) => {
    const approx = aStr(c, 'approximate', 'none');
    if (approx === 'tanh') return b.gelu(x);
    if (approx !== 'none') return c.fail(`approximate "${approx}" is not supported`);
    return b.mul(b.mul(x, 0.5), b.add_(erf(b, b.mul(x, Math.SQRT1_2)), 1));
  }),
  PRelu: (c, xs) => {
    const b = c.b;
    const x = x0(c, xs);
    let slope = x1(c, xs);
    // Before opset 7 a slope of one value per channel applies along axis 1.
    const ss = slope.type.shape;
    if (c.opset < 7 && ss.length === 1 && x.type.shape.length >= 2 && ss[0] === x.type.shape[1] && ss[0] !== 1) slope = b.reshape(slope, channelShape(x));
    return b.where(b.lt(x, 0), b.mul(x, slope), x);
  },
  Sign: unary((b, x) => b.sub(b.gt(x, 0), b.lt(x, 0))),
  Shrink: unary((b, x, c) => {
    const [bias, lambd] = [aFloat(c, 'bias', 0), aFloat(c, 'lambd', 0.5)];
    return b.where(b.lt(x, -lambd), b.add_(x, bias), b.where(b.gt(x, lambd), b.sub(x, bias), b.mul(x, 0)));
  }),
  LRN: (c, xs) => {
    // y = x / (bias + alpha / size * sum of x^2 over the `size` neighbouring channels)^beta
    const b = c.b;
    const x = x0(c, xs);
    const s = x.type.shape;
    const size = aInt(c, 'size', 0);
    if (size < 1 || s.length < 3) c.fail('LRN needs size >= 1 and an input with channels');
    const r = s.length;
    const lo = Math.floor((size - 1) / 2);
    const hi = Math.ceil((size - 1) / 2);
    const sq = b.pad(b.square(x), s.map((_, i) => (i === 1 ? lo : 0)), s.map((_, i) => (i === 1 ? hi : 0)));
    const terms: Value[] = [];
    for (let k = 0; k < size; k++) terms.push(b.slice(sq, s.map((_, i) => (i === 1 ? k : 0)), s.map((d, i) => (i === 1 ? k + d : d))));
    const sum = terms.reduce((p, q) => b.add_(p, q));
    void r;
    const base = b.add_(b.mul(sum, aFloat(c, 'alpha', 1e-4) / size), aFloat(c, 'bias', 1));
    return b.div(x, b.exp(b.mul(b.log(base), aFloat(c, 'beta', 0.75))));
  },
  Trilu: (c, xs) => {
    // Keeps the lower (upper = 0: col - row <= k) or upper (col - row >= k) triangle of the last two axes.
    const b = c.b;
    const x = x0(c, xs);
    const s = x.type.shape;
    if (s.length < 2) c.fail('the input needs rank >= 2');
    const k = xs[1] ? kints(c, xs[1], 'k')[0] ?? 0 : 0;
    const [rows, cols] = [s.at(-2)!, s.at(-1)!];
    const diff = b.sub(b.iota([rows, cols], 1), b.iota([rows, cols], 0));
    const keep = aInt(c, 'upper', 1) === 1 ? b.ge(diff, k) : b.le(diff, k);
    return b.where(keep, x, b.mul(x, 0));
  },
  Tile: (c, xs) => {
    const b = c.b;
    const x = x0(c, xs);
    const s = x.type.shape;
    const reps = c.opset >= 6 ? kints(c, xs[1], 'repeats') : c.fail('Tile before opset 6 is not supported');
    if (reps.length !== s.length || reps.some((v) => v < 1)) c.fail(`repeats [${reps.join(',')}] do not fit rank ${s.length}`);
    // [d0, d1, …] -> [1, d0, 1, d1, …] -> broadcast [r0, d0, r1, d1, …] -> [r0 d0, r1 d1, …]
    const spread = b.reshape(x, s.flatMap((d) => [1, d]));
    const big = b.broadcastTo(spread, s.flatMap((d, i) => [reps[i]!, d]));
    return b.reshape(big, s.map((d, i) => d * reps[i]!));
  },
  Clip: (c, xs) => {
    const b = c.b;
    let x = x0(c, xs);
    const lo = c.opset >= 11 ? (xs[1] ? c.value(xs[1], 'min') : undefined) : c.attrs.has('min') ? b.full(aFloat(c, 'min', 0), [], x.type.dtype) : undefined;
    const hi = c.opset >= 11 ? (xs[2] ? c.value(xs[2], 'max') : undefined) : c.attrs.has('max') ? b.full(aFloat(c, 'max', 0), [], x.type.dtype) : undefined;
    if (lo) x = b.maximum(x, lo);
    if (hi) x = b.minimum(x, hi);
    return x;
  },
  // comparisons and selection (booleans are 1/0 in the operands' dtype)
  Equal: compare('eq'),
  Less: compare('lt'),
  Greater: compare('gt'),
  LessOrEqual: compare('le'),
  GreaterOrEqual: compare('ge'),
  Where: (c, xs) => {
    const b = c.b;
    const [p, q] = [c.value(xs[1], 'input 1'), c.value(xs[2], 'input 2')];
    return b.where(c.value(xs[0], 'condition'), p, q.type.dtype === p.type.dtype ? q : b.cast(q, p.type.dtype));
  },
  Cast: (c, xs) => castTo(c, x0(c, xs), aInt(c, 'to', 1)),
  CastLike: (c, xs) => castTo(c, x0(c, xs), dtypeOf(xs[1]) === 'f32' ? ONNX_DTYPE.FLOAT : ONNX_DTYPE.INT32),
  // identities
  Identity: (c, xs) => xs[0] ?? c.fail('input 0 is missing'),
  Dropout: (c, xs) => {
    // Inference form: the identity; the mask (when asked for) is all ones.
    const x = xs[0] ?? c.fail('input 0 is missing');
    if (c.opset >= 12 && xs[2] && isConst(xs[2]) && konst(c, xs[2], 'training_mode')[0]) c.fail('training_mode = true is not supported (dropout imports as the identity)');
    return c.outputs > 1 ? [x, c.b.full(1, shapeOf(c, x, 'input 0'), dtypeOf(x))] : x;
  },
  // constants and static shapes
  Constant: (c) => {
    const a = [...c.attrs.values()][0] ?? c.fail('no value attribute');
    switch (a.name) {
      case 'value': {
        const t = a.t ?? c.fail('value is not a tensor');
        if (!isFloatType(t.dataType) && t.dataType === ONNX_DTYPE.STRING) c.fail('string constants are not supported');
        return { kind: 'const', t: { shape: (t.dims ?? []).map(Number), dtype: isFloatType(t.dataType) ? 'f32' : 'i32', data: tensorValues(t, c.where), int64: t.dataType === ONNX_DTYPE.INT64 } };
      }
      case 'value_float': return konstOut([], [a.f ?? 0], 'f32');
      case 'value_floats': return konstOut([(a.floats ?? []).length], a.floats ?? [], 'f32');
      case 'value_int': return konstOut([], [Number(a.i ?? 0)]);
      case 'value_ints': return konstOut([(a.ints ?? []).length], (a.ints ?? []).map(Number));
      default: return c.fail(`the ${a.name} form is not supported`);
    }
  },
  ConstantOfShape: (c, xs) => {
    const shape = kints(c, xs[0], 'shape');
    if (shape.some((d) => d < 1)) c.fail('empty tensors are not supported');
    const t = c.attrs.get('value')?.t;
    const v = t ? tensorValues(t, c.where)[0] ?? 0 : 0;
    return { kind: 'const', t: { shape, dtype: !t || isFloatType(t.dataType) ? 'f32' : 'i32', fill: v } };
  },
  Shape: (c, xs) => {
    const s = shapeOf(c, xs[0], 'input 0');
    const r = s.length;
    const cl = (v: number) => Math.min(Math.max(v < 0 ? v + r : v, 0), r);
    const part = s.slice(cl(aInt(c, 'start', 0)), cl(aInt(c, 'end', r)));
    return konstOut([part.length], part);
  },
  Size: (c, xs) => konstOut([], [numel(shapeOf(c, xs[0], 'input 0'))]),
  Range: (c, xs) => {
    const [s, l, d] = [0, 1, 2].map((i) => konst(c, xs[i], ['start', 'limit', 'delta'][i]!)[0] ?? 0) as [number, number, number];
    const n = Math.max(Math.ceil((l - s) / d), 0);
    if (n < 1) c.fail('the range is empty');
    return konstOut([n], Array.from({ length: n }, (_, i) => s + i * d), dtypeOf(xs[0]));
  },
  // matrix products
  MatMul: (c, xs) => {
    const b = c.b;
    let a = x0(c, xs);
    let w = x1(c, xs);
    const [ra, rw] = [a.type.shape.length, w.type.shape.length];
    if (ra === 1) a = b.reshape(a, [1, a.type.shape[0]!]);
    if (rw === 1) w = b.reshape(w, [w.type.shape[0]!, 1]);
    let y = b.matmul(a, w);
    const s = y.type.shape;
    if (ra === 1) y = b.reshape(y, [...s.slice(0, -2), s.at(-1)!]);
    if (rw === 1) y = b.reshape(y, y.type.shape.slice(0, -1));
    return y;
  },
  Gemm: (c, xs) => {
    const b = c.b;
    let a = x0(c, xs);
    let w = x1(c, xs);
    if (a.type.shape.length !== 2 || w.type.shape.length !== 2) c.fail('Gemm needs matrices');
    if (aInt(c, 'transA', 0)) a = b.transpose(a);
    if (aInt(c, 'transB', 0)) w = b.transpose(w);
    let y = b.matmul(a, w);
    const alpha = aFloat(c, 'alpha', 1);
    if (alpha !== 1) y = b.mul(y, alpha);
    if (xs[2]) {
      const beta = aFloat(c, 'beta', 1);
      const cv = c.value(xs[2], 'C');
      y = b.add_(y, beta === 1 ? cv : b.mul(cv, beta));
    }
    return y;
  },
  // convolution, pooling, normalization
  Conv: conv,
  ConvTranspose: convTranspose,
  MaxPool: pool('max'),
  AveragePool: pool('avg'),
  GlobalAveragePool: (c, xs) => {
    const x = x0(c, xs);
    return c.b.reduceMean(x, [...x.type.shape.keys()].slice(2), true);
  },
  GlobalMaxPool: (c, xs) => {
    const x = x0(c, xs);
    return c.b.reduceMax(x, [...x.type.shape.keys()].slice(2), true);
  },
  BatchNormalization: (c, xs) => {
    const b = c.b;
    if (aInt(c, 'training_mode', 0) === 1) c.fail('training_mode = 1 is not supported (batch norm imports in its inference form)');
    if (c.outputs > 1 && c.opset >= 14) c.fail('the running-statistics outputs are not supported');
    const x = x0(c, xs);
    if (x.type.shape.length < 2) c.fail('the input needs a channel axis');
    const cs = channelShape(x);
    const [scale, bias, mean, v] = [1, 2, 3, 4].map((i) => b.reshape(c.value(xs[i], ['scale', 'B', 'mean', 'var'][i - 1]!), cs));
    const a = b.mul(scale!, b.rsqrt(b.add_(v!, aFloat(c, 'epsilon', 1e-5))));
    // y = (x - mean) * a + B, with a = scale / sqrt(var + eps)
    return b.add_(b.mul(b.sub(x, mean!), a), bias!);
  },
  InstanceNormalization: (c, xs) => {
    const b = c.b;
    const x = x0(c, xs);
    const axes = [...x.type.shape.keys()].slice(2);
    const xc = b.sub(x, b.reduceMean(x, axes, true));
    const y = b.mul(xc, b.rsqrt(b.add_(b.reduceMean(b.square(xc), axes, true), aFloat(c, 'epsilon', 1e-5))));
    const cs = channelShape(x);
    return b.add_(b.mul(y, b.reshape(c.value(xs[1], 'scale'), cs)), b.reshape(c.value(xs[2], 'B'), cs));
  },
  LayerNormalization: (c, xs) => {
    const b = c.b;
    if (c.outputs > 1) c.fail('the Mean and InvStdDev outputs are not supported');
    const x = x0(c, xs);
    const r = x.type.shape.length;
    const axis = axisOf(c, aInt(c, 'axis', -1), r);
    const axes = [...Array(r - axis).keys()].map((i) => axis + i);
    const xc = b.sub(x, b.reduceMean(x, axes, true));
    let y = b.mul(xc, b.rsqrt(b.add_(b.reduceMean(b.square(xc), axes, true), aFloat(c, 'epsilon', 1e-5))));
    y = b.mul(y, c.value(xs[1], 'Scale'));
    if (xs[2]) y = b.add_(y, c.value(xs[2], 'B'));
    return y;
  },
  Softmax: softmaxRule(false),
  LogSoftmax: softmaxRule(true),
  ReduceSum: reduceRule('sum', 13),
  ReduceMean: reduceRule('mean', 18),
  ReduceMax: reduceRule('max', 18),
  ReduceMin: reduceRule('min', 18),
  ReduceSumSquare: reduceRule('sumsq', 18),
  ReduceL2: reduceRule('l2', 18),
  ReduceL1: reduceRule('l1', 18),
  // movement
  Reshape: (c, xs) => {
    const spec = c.opset >= 5 ? kints(c, xs[1], 'shape') : aInts(c, 'shape') ?? c.fail('shape is missing');
    return reshapeTo(c, x0(c, xs), spec, aInt(c, 'allowzero', 0) === 1);
  },
  Flatten: (c, xs) => flatten2(c, x0(c, xs), aInt(c, 'axis', 1)),
  Transpose: (c, xs) => {
    const x = x0(c, xs);
    const perm = aInts(c, 'perm');
    return c.b.transpose(x, perm?.map((p) => axisOf(c, p, x.type.shape.length, 'perm entry')));
  },
  Squeeze: (c, xs) => {
    const x = x0(c, xs);
    const s = x.type.shape;
    const axes = (axesArg(c, xs, 13) ?? s.flatMap((d, i) => (d === 1 ? [i] : []))).map((a) => axisOf(c, a, s.length));
    for (const a of axes) if (s[a] !== 1) c.fail(`axis ${a} has size ${s[a]}, not 1`);
    return c.b.reshape(x, s.filter((_, i) => !axes.includes(i)));
  },
  Unsqueeze: (c, xs) => {
    const x = x0(c, xs);
    const s = x.type.shape;
    const axes = axesArg(c, xs, 13) ?? c.fail('axes is missing');
    const r = s.length + axes.length;
    const at = new Set(axes.map((a) => axisOf(c, a, r)));
    const out: number[] = [];
    let k = 0;
    for (let i = 0; i < r; i++) out.push(at.has(i) ? 1 : s[k++]!);
    return c.b.reshape(x, out);
  },
  Expand: (c, xs) => {
    const x = x0(c, xs);
    const shape = kints(c, xs[1], 'shape');
    let out: number[];
    try {
      out = broadcastShapes(x.type.shape, shape);
    } catch {
      return c.fail(`[${x.type.shape.join(',')}] does not broadcast to [${shape.join(',')}]`);
    }
    const y = x.type.shape.length < out.length ? c.b.reshape(x, [...Array(out.length - x.type.shape.length).fill(1), ...x.type.shape]) : x;
    return out.join() === y.type.shape.join() ? y : c.b.broadcastTo(y, out);
  },
  Concat: (c, xs) => {
    const vs = xs.filter((x) => x !== undefined).map((x, i) => c.value(x, `input ${i}`));
    const r = vs[0]?.type.shape.length ?? c.fail('needs at least one input');
    return vs.length === 1 ? vs[0]! : c.b.concat(vs, axisOf(c, aInt(c, 'axis', 0), r));
  },
  Split: (c, xs) => {
    const x = x0(c, xs);
    const s = x.type.shape;
    const axis = axisOf(c, aInt(c, 'axis', 0), s.length);
    const d = s[axis]!;
    let sizes = c.opset >= 13 ? (xs[1] ? kints(c, xs[1], 'split') : undefined) : aInts(c, 'split');
    if (!sizes) {
      const n = c.opset >= 18 && c.attrs.has('num_outputs') ? aInt(c, 'num_outputs', 1) : c.outputs;
      const each = Math.ceil(d / n);
      sizes = Array.from({ length: n }, (_, i) => Math.min(each, d - i * each));
    }
    if (sizes.some((v) => v < 1) || sizes.reduce((p, q) => p + q, 0) !== d) c.fail(`split sizes [${sizes.join(',')}] do not add up to ${d}`);
    let at = 0;
    return sizes.map((len) => {
      const st = s.map(() => 0);
      const en = [...s];
      st[axis] = at;
      en[axis] = at + len;
      at += len;
      return c.b.slice(x, st, en);
    });
  },
  Slice: (c, xs) => {
    const x = x0(c, xs);
    if (c.opset < 10) return sliceAxes(c, x, aInts(c, 'starts') ?? c.fail('starts is missing'), aInts(c, 'ends') ?? c.fail('ends is missing'), aInts(c, 'axes'), undefined);
    return sliceAxes(c, x, kints(c, xs[1], 'starts'), kints(c, xs[2], 'ends'), xs[3] ? kints(c, xs[3], 'axes') : undefined, xs[4] ? kints(c, xs[4], 'steps') : undefined);
  },
  Gather: (c, xs) => gatherAxis(c, x0(c, xs), xs[1], aInt(c, 'axis', 0)),
  Pad: (c, xs) => {
    const b = c.b;
    const x = x0(c, xs);
    const r = x.type.shape.length;
    const mode = aStr(c, 'mode', 'constant');
    if (mode !== 'constant' && mode !== 'reflect' && mode !== 'edge') c.fail(`mode "${mode}" is not supported`);
    let pads: number[];
    let value: number;
    if (c.opset < 11) {
      pads = aInts(c, 'pads') ?? aInts(c, 'paddings') ?? c.fail('pads is missing');
      value = aFloat(c, 'value', 0);
    } else {
      pads = kints(c, xs[1], 'pads');
      value = xs[2] ? konst(c, xs[2], 'constant_value')[0] ?? 0 : 0;
      if (xs[3]) {
        const axes = kints(c, xs[3], 'axes').map((a) => axisOf(c, a, r));
        const full = Array(2 * r).fill(0);
        axes.forEach((a, i) => {
          full[a] = pads[i]!;
          full[a + r] = pads[i + axes.length]!;
        });
        pads = full;
      }
    }
    if (pads.length !== 2 * r) c.fail(`pads has ${pads.length} entries for rank ${r}`);
    const lo = pads.slice(0, r);
    const hi = pads.slice(r);
    let y = x;
    if (lo.some((v) => v < 0) || hi.some((v) => v < 0)) {
      const s = x.type.shape;
      y = b.slice(y, lo.map((v) => Math.max(-v, 0)), s.map((d, i) => d - Math.max(-hi[i]!, 0)));
    }
    if (mode !== 'constant') {
      // reflect: mirror without the edge element; edge: repeat the edge element. Built from
      // one-element slices along each padded axis.
      for (let a = 0; a < r; a++) {
        const [pl, ph] = [Math.max(lo[a]!, 0), Math.max(hi[a]!, 0)];
        if (!pl && !ph) continue;
        const s = y.type.shape;
        const d = s[a]!;
        if (mode === 'reflect' && (pl >= d || ph >= d)) c.fail(`reflect padding of ${Math.max(pl, ph)} needs more than ${d} elements on axis ${a}`);
        const at = (k: number) => b.slice(y, s.map((_, i) => (i === a ? k : 0)), s.map((n, i) => (i === a ? k + 1 : n)));
        const before = Array.from({ length: pl }, (_, k) => at(mode === 'reflect' ? pl - k : 0));
        const after = Array.from({ length: ph }, (_, k) => at(mode === 'reflect' ? d - 2 - k : d - 1));
        y = b.concat([...before, y, ...after], a);
      }
      return y;
    }
    if (lo.some((v) => v > 0) || hi.some((v) => v > 0)) y = b.pad(y, lo.map((v) => Math.max(v, 0)), hi.map((v) => Math.max(v, 0)), value);
    return y;
  },
};
