/**
 * @file The expression language of kernels: a small typed tree of constants, index variables, loads
 * and arithmetic, built with smart constructors that fold constants and drop identities (x*1, x+0)
 * so index arithmetic baked from static shapes stays small. Every kernel is a loop over an output
 * index (and, for reductions, a reduction index) whose body is one of these trees; fusion changes
 * which values are loaded and which are inlined, never the emitter.
 */
import { castToI32 } from '../ir/interp.js';
import type { UnaryOp } from '../ir/ops.js';

export type ScalarType = 'f32' | 'i32' | 'bool';

export type ArithOp = 'add' | 'sub' | 'mul' | 'div' | 'mod' | 'max' | 'min' | 'pow';
/** `ult`: a < b with both read as unsigned 32-bit integers (0 <= a < b in one test, for b >= 0). */
export type CmpOp = 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge' | 'ult';
export type LogicOp = 'and' | 'or';

export type Expr =
  | { readonly k: 'const'; readonly t: ScalarType; readonly v: number }
  /** A variable of the enclosing code: an i32 loop index (`o0`, `r1`) or an accumulator (`acc`). */
  | { readonly k: 'var'; readonly t: ScalarType; readonly name: string }
  /** Element `index` (i32) of kernel binding `binding`. */
  | { readonly k: 'load'; readonly t: 'f32' | 'i32'; readonly binding: number; readonly index: Expr }
  | { readonly k: 'unary'; readonly t: ScalarType; readonly op: UnaryOp; readonly a: Expr }
  | { readonly k: 'arith'; readonly t: 'f32' | 'i32'; readonly op: ArithOp; readonly a: Expr; readonly b: Expr }
  | { readonly k: 'cmp'; readonly t: 'bool'; readonly op: CmpOp; readonly a: Expr; readonly b: Expr }
  | { readonly k: 'logic'; readonly t: 'bool'; readonly op: LogicOp; readonly a: Expr; readonly b: Expr }
  /** c ? a : b */
  | { readonly k: 'select'; readonly t: ScalarType; readonly c: Expr; readonly a: Expr; readonly b: Expr }
  | { readonly k: 'cast'; readonly t: ScalarType; readonly a: Expr }
  /**
   * The random_uniform value of element `index` (i32) under key (`seed`, `stream`) at step
   * `counter` (src/ir/random.ts); emitted as a call of the generator's WGSL function.
   */
  | { readonly k: 'random'; readonly t: 'f32'; readonly seed: Expr; readonly stream: number; readonly index: Expr; readonly counter: Expr };

const fround = Math.fround;

export const cst = (v: number, t: ScalarType = 'f32'): Expr => ({
  k: 'const', t, v: t === 'f32' ? fround(v) : t === 'i32' ? v | 0 : v ? 1 : 0,
});
export const int = (v: number): Expr => cst(v, 'i32');
export const bool = (v: boolean): Expr => cst(v ? 1 : 0, 'bool');
export const ivar = (name: string): Expr => ({ k: 'var', t: 'i32', name });
export const tvar = (name: string, t: ScalarType): Expr => ({ k: 'var', t, name });
export const load = (binding: number, index: Expr, t: 'f32' | 'i32'): Expr => ({ k: 'load', t, binding, index });

const isConst = (e: Expr, v?: number): e is Extract<Expr, { k: 'const' }> =>
  e.k === 'const' && (v === undefined || e.v === v);

const UNARY_FOLD: { readonly [K in UnaryOp]: (x: number) => number } = {
  neg: (x) => -x, abs: Math.abs, exp: Math.exp, log: Math.log, sqrt: Math.sqrt, rsqrt: (x) => 1 / Math.sqrt(x),
  reciprocal: (x) => 1 / x, tanh: Math.tanh, sigmoid: (x) => 1 / (1 + Math.exp(-x)), relu: (x) => (x > 0 ? x : 0),
  sin: Math.sin, cos: Math.cos,
};

export function unary(op: UnaryOp, a: Expr): Expr {
  if (isConst(a) && a.t !== 'bool') {
    const v = UNARY_FOLD[op](a.v);
    if (Number.isFinite(v)) return cst(v, a.t);
  }
  if (op === 'neg' && a.k === 'unary' && a.op === 'neg') return a.a;
  return { k: 'unary', t: a.t, op, a };
}

function foldArith(op: ArithOp, x: number, y: number, t: 'f32' | 'i32'): number | undefined {
  const i = t === 'i32';
  switch (op) {
    case 'add': return x + y;
    case 'sub': return x - y;
    case 'mul': return i ? Math.imul(x, y) : x * y;
    case 'div': return i ? (y === 0 ? 0 : Math.trunc(x / y)) : x / y;
    case 'mod': return i ? (y === 0 ? 0 : x % y) : undefined;
    case 'max': return Math.max(x, y);
    case 'min': return Math.min(x, y);
    case 'pow': return Math.pow(x, y);
  }
}

export function arith(op: ArithOp, a: Expr, b: Expr): Expr {
  const t = a.t === 'i32' ? 'i32' : 'f32';
  if (isConst(a) && isConst(b)) {
    const v = foldArith(op, a.v, b.v, t);
    if (v !== undefined && Number.isFinite(v)) return cst(v, t);
  }
  // Identities on index arithmetic and on values: x+0, 0+x, x-0, x*1, 1*x, x/1; for i32 also x*0, x%1.
  if ((op === 'add' || op === 'sub') && isConst(b, 0)) return a;
  if (op === 'add' && isConst(a, 0)) return b;
  if ((op === 'mul' || op === 'div') && isConst(b, 1)) return a;
  if (op === 'mul' && isConst(a, 1)) return b;
  if (t === 'i32' && op === 'mul' && (isConst(a, 0) || isConst(b, 0))) return int(0);
  if (t === 'i32' && op === 'mod' && isConst(b, 1)) return int(0);
  // (x * c1) * c2 = x * (c1 * c2) on indices (strides of strides).
  if (t === 'i32' && op === 'mul' && isConst(b) && a.k === 'arith' && a.op === 'mul' && isConst(a.b)) return arith('mul', a.a, int(Math.imul(a.b.v, b.v)));
  if (t === 'i32' && op === 'div' && isConst(a, 0)) return int(0);
  return { k: 'arith', t, op, a, b };
}

export const add = (a: Expr, b: Expr) => arith('add', a, b);
export const sub = (a: Expr, b: Expr) => arith('sub', a, b);
export const mul = (a: Expr, b: Expr) => arith('mul', a, b);
export const div = (a: Expr, b: Expr) => arith('div', a, b);
export const mod = (a: Expr, b: Expr) => arith('mod', a, b);

const CMP_FOLD: { readonly [K in CmpOp]: (a: number, b: number) => boolean } = {
  eq: (a, b) => a === b, ne: (a, b) => a !== b, lt: (a, b) => a < b,
  le: (a, b) => a <= b, gt: (a, b) => a > b, ge: (a, b) => a >= b, ult: (a, b) => a >>> 0 < b >>> 0,
};

export function cmp(op: CmpOp, a: Expr, b: Expr): Expr {
  if (isConst(a) && isConst(b)) return bool(CMP_FOLD[op](a.v, b.v));
  return { k: 'cmp', t: 'bool', op, a, b };
}

export function and(a: Expr, b: Expr): Expr {
  if (isConst(a)) return a.v ? b : bool(false);
  if (isConst(b)) return b.v ? a : bool(false);
  return { k: 'logic', t: 'bool', op: 'and', a, b };
}

export function select(c: Expr, a: Expr, b: Expr): Expr {
  if (isConst(c)) return c.v ? a : b;
  return { k: 'select', t: a.t, c, a, b };
}

export function cast(a: Expr, t: ScalarType): Expr {
  if (a.t === t) return a;
  if (isConst(a)) return cst(t === 'i32' && a.t === 'f32' ? castToI32(a.v) : a.v, t);
  return { k: 'cast', t, a };
}

/** True when the expression reads no buffer and no variable. */
export const isConstant = isConst;

/** A structural key, equal for equal trees (used for CSE when emitting). */
export function keyOf(e: Expr): string {
  switch (e.k) {
    case 'const': return `${e.t}:${e.v}`;
    case 'var': return e.name;
    case 'load': return `L${e.binding}[${keyOf(e.index)}]`;
    case 'unary': return `${e.op}(${keyOf(e.a)})`;
    case 'arith': case 'cmp': case 'logic': return `${e.op}(${keyOf(e.a)},${keyOf(e.b)})`;
    case 'select': return `sel(${keyOf(e.c)},${keyOf(e.a)},${keyOf(e.b)})`;
    case 'cast': return `${e.t}(${keyOf(e.a)})`;
    case 'random': return `rng(${keyOf(e.seed)},${e.stream},${keyOf(e.index)},${keyOf(e.counter)})`;
  }
}

/** Row-major linear index of `coords` in `shape`. */
export function linearIndex(coords: readonly Expr[], shape: readonly number[]): Expr {
  let idx = int(0);
  let stride = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1) idx = add(mul(coords[i]!, int(stride)), idx);
    stride *= shape[i]!;
  }
  return idx;
}

/** The coordinates in `shape` of a row-major linear index. */
export function delinearize(index: Expr, shape: readonly number[]): Expr[] {
  const coords: Expr[] = [];
  let stride = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    const d = shape[i]!;
    const total = shape.slice(0, i).reduce((p, q) => p * q, 1);
    let c = stride === 1 ? index : div(index, int(stride));
    if (total > 1) c = mod(c, int(d)); // the outermost coordinate needs no modulo
    coords[i] = d === 1 ? int(0) : c;
    stride *= d;
  }
  return coords;
}

/** The children of an expression node. */
export function childrenOf(e: Expr): readonly Expr[] {
  switch (e.k) {
    case 'const': case 'var': return [];
    case 'load': return [e.index];
    case 'unary': case 'cast': return [e.a];
    case 'arith': case 'cmp': case 'logic': return [e.a, e.b];
    case 'select': return [e.c, e.a, e.b];
    case 'random': return [e.seed, e.index, e.counter];
  }
}

/** `e` with variables renamed by `to` (others kept); subtrees without them are kept as they are. */
export function substitute(e: Expr, to: ReadonlyMap<string, Expr>): Expr {
  const memo = new Map<Expr, Expr>();
  const go = (x: Expr): Expr => {
    const known = memo.get(x);
    if (known) return known;
    let r: Expr;
    switch (x.k) {
      case 'const': r = x; break;
      case 'var': r = to.get(x.name) ?? x; break;
      case 'load': r = { ...x, index: go(x.index) }; break;
      case 'unary': case 'cast': r = { ...x, a: go(x.a) }; break;
      case 'arith': case 'cmp': case 'logic': r = { ...x, a: go(x.a), b: go(x.b) }; break;
      case 'select': r = { ...x, c: go(x.c), a: go(x.a), b: go(x.b) }; break;
      case 'random': r = { ...x, seed: go(x.seed), index: go(x.index), counter: go(x.counter) }; break;
    }
    memo.set(x, r);
    return r;
  };
  return go(e);
}

/** The largest compound subtrees of `e` that do not read variable `name` (loop invariants of its loop). */
export function invariantsOf(e: Expr, name: string): Expr[] {
  const reads = new Map<Expr, boolean>();
  const mentions = (x: Expr): boolean => {
    let r = reads.get(x);
    if (r === undefined) {
      r = x.k === 'var' ? x.name === name : childrenOf(x).some(mentions);
      reads.set(x, r);
    }
    return r;
  };
  const out: Expr[] = [];
  const seen = new Set<Expr>();
  const walk = (x: Expr): void => {
    if (seen.has(x) || x.k === 'const' || x.k === 'var') return;
    seen.add(x);
    if (!mentions(x)) out.push(x);
    else childrenOf(x).forEach(walk);
  };
  walk(e);
  return out;
}

/** The input bindings (non-negative load bindings) that some of `exprs` read. */
export function bindingsRead(exprs: readonly Expr[]): Set<number> {
  const out = new Set<number>();
  const seen = new Set<Expr>();
  const walk = (x: Expr): void => {
    if (seen.has(x)) return;
    seen.add(x);
    if (x.k === 'load' && x.binding >= 0) out.add(x.binding);
    childrenOf(x).forEach(walk);
  };
  exprs.forEach(walk);
  return out;
}
