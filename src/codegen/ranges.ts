/**
 * @file Range-aware simplification of index arithmetic. Lowering builds element indices by
 * linearizing coordinates and splitting them again (a reshape of a transpose reads element
 * `(ki*128 + ni) / 32 % 4 …`), and a kernel evaluates them per element, per step of its K loop.
 * Knowing each coordinate's range (its axis), most divisions and remainders fall apart: with
 * 0 <= ni < 128, `(ki*128 + ni) / 8192` is `ki / 64` and `(ki*128 + ni) % 32` is `ni % 32`, so the
 * index splits into a part of `ki` alone and a part of `ni` alone, which the emitters compute once
 * per K step and once per thread. Every rewrite is exact for the ranges given (the dividends are
 * non-negative, where WGSL's truncating division is the floor); test/ranges.test.ts checks them
 * against evaluation on every point of random small ranges.
 */
import { assertNever } from '../ir/errors.js';
import { add, and, arith, bool, childrenOf, cmp, int, keyOf, mul, select, sub, type CmpOp, type Expr } from '../passes/expr.js';
import type { Kernel, KernelBody } from '../passes/kernel.js';

/** Inclusive bounds of an integer. */
export type Range = readonly [lo: number, hi: number];
export type Ranges = ReadonlyMap<string, Range>;

const isInt = (e: Expr, v?: number): e is Extract<Expr, { k: 'const' }> => e.k === 'const' && e.t === 'i32' && (v === undefined || e.v === v);

/** A sum of `coef * atom` terms and a constant; atoms are the non-linear parts (vars, /, %, min, …). */
export interface Linear {
  readonly terms: Map<string, { readonly atom: Expr; coef: number }>;
  c: number;
}

export function linearOf(e: Expr): Linear {
  const out: Linear = { terms: new Map(), c: 0 };
  const walk = (x: Expr, s: number): void => {
    if (isInt(x)) out.c += s * x.v;
    else if (x.k === 'arith' && x.t === 'i32' && (x.op === 'add' || x.op === 'sub')) {
      walk(x.a, s);
      walk(x.b, x.op === 'add' ? s : -s);
    } else if (x.k === 'arith' && x.t === 'i32' && x.op === 'mul' && isInt(x.b)) walk(x.a, s * x.b.v);
    else if (x.k === 'arith' && x.t === 'i32' && x.op === 'mul' && isInt(x.a)) walk(x.b, s * x.a.v);
    else {
      const key = keyOf(x);
      const t = out.terms.get(key);
      if (t) t.coef += s;
      else out.terms.set(key, { atom: x, coef: s });
    }
  };
  walk(e, 1);
  return out;
}

function build(terms: Iterable<{ readonly atom: Expr; readonly coef: number }>, c: number): Expr {
  let e: Expr | undefined;
  for (const { atom, coef } of terms) {
    if (coef === 0) continue;
    if (e && coef < 0) e = sub(e, mul(atom, int(-coef)));
    else {
      const t = mul(atom, int(coef));
      e = e ? add(e, t) : t;
    }
  }
  return e ? add(e, int(c)) : int(c);
}

/** The terms of `lin` whose coefficient `g` divides (divided by it) and the others. */
function splitBy(lin: Linear, g: number): { whole: { atom: Expr; coef: number }[]; rest: { atom: Expr; coef: number }[] } {
  const whole: { atom: Expr; coef: number }[] = [];
  const rest: { atom: Expr; coef: number }[] = [];
  for (const t of lin.terms.values()) {
    if (t.coef === 0) continue;
    if (t.coef % g === 0) whole.push({ atom: t.atom, coef: t.coef / g });
    else rest.push(t);
  }
  return { whole, rest };
}

/** Simplifies the i32 index arithmetic in `e`, given the ranges of its variables. */
export function simplifyIndices(e: Expr, ranges: Ranges): Expr {
  const memo = new Map<Expr, Expr>();
  const rangeMemo = new Map<Expr, Range | undefined>();

  const rangeOf = (x: Expr): Range | undefined => {
    if (rangeMemo.has(x)) return rangeMemo.get(x);
    const r = computeRange(x);
    rangeMemo.set(x, r);
    return r;
  };
  const computeRange = (x: Expr): Range | undefined => {
    if (x.t !== 'i32') return undefined;
    if (x.k === 'const') return [x.v, x.v];
    if (x.k === 'var') return ranges.get(x.name);
    if (x.k === 'select') {
      const [a, b] = [rangeOf(x.a), rangeOf(x.b)];
      return a && b ? [Math.min(a[0], b[0]), Math.max(a[1], b[1])] : undefined;
    }
    if (x.k !== 'arith') return undefined;
    const a = rangeOf(x.a);
    const b = rangeOf(x.b);
    if (!a || !b) return undefined;
    const op = x.op;
    switch (op) {
      case 'add': return [a[0] + b[0], a[1] + b[1]];
      case 'sub': return [a[0] - b[1], a[1] - b[0]];
      case 'mul': {
        const p = [a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1]];
        return [Math.min(...p), Math.max(...p)];
      }
      // Truncating division by a positive constant is monotone; a remainder takes the dividend's sign.
      case 'div':
        return b[0] === b[1] && b[0] > 0 ? [Math.trunc(a[0] / b[0]), Math.trunc(a[1] / b[0])] : undefined;
      case 'mod':
        if (!(b[0] === b[1] && b[0] > 0)) return undefined;
        if (a[0] >= 0) return a[1] < b[0] ? a : [0, b[0] - 1];
        return [Math.max(a[0], 1 - b[0]), Math.max(0, Math.min(a[1], b[0] - 1))];
      case 'min': return [Math.min(a[0], b[0]), Math.min(a[1], b[1])];
      case 'max': return [Math.max(a[0], b[0]), Math.max(a[1], b[1])];
      case 'pow': return undefined;
      default: return assertNever(op, 'arith op');
    }
  };
  const nonNeg = (x: Expr): boolean => (rangeOf(x)?.[0] ?? -1) >= 0;
  const within = (x: Expr, d: number): boolean => {
    const r = rangeOf(x);
    return r !== undefined && r[0] >= 0 && r[1] < d;
  };

  /** x = g*W + R with 0 <= R < g, for the largest coefficient g of x that divides d and allows it. */
  const factor = (lin: Linear, d: number): { g: number; w: Expr; r: Expr } | undefined => {
    for (const g of divisorsAmong(lin, d)) {
      const qc = Math.floor(lin.c / g);
      const s = splitBy(lin, g);
      const r = build(s.rest, lin.c - qc * g);
      if (s.whole.length > 0 && within(r, g)) return { g, w: build(s.whole, qc), r };
    }
    return undefined;
  };

  /** x / d for x >= 0 and a constant d > 0. */
  const divide = (x: Expr, d: number): Expr => {
    if (within(x, d)) return int(0);
    if (x.k === 'arith' && x.op === 'div' && isInt(x.b) && x.b.v > 0 && nonNeg(x.a)) return divide(x.a, d * x.b.v);
    const lin = linearOf(x);
    // x = d*W + R with R >= 0: x / d = W + R / d.
    const q = Math.floor(lin.c / d);
    const a = splitBy(lin, d);
    const restA = build(a.rest, lin.c - q * d);
    if ((a.whole.length > 0 || q > 0) && nonNeg(restA)) {
      const tail = within(restA, d) ? int(0) : arith('div', restA, int(d));
      return add(build(a.whole, q), tail);
    }
    // x = g*W + R with g dividing d and 0 <= R < g: x / d = W / (d/g).
    const f = factor(lin, d);
    return f ? divide(f.w, d / f.g) : arith('div', x, int(d));
  };

  /** x % d for x >= 0 and a constant d > 0. */
  const remainder = (x: Expr, d: number): Expr => {
    if (within(x, d)) return x;
    if (x.k === 'arith' && x.op === 'mod' && isInt(x.b) && x.b.v % d === 0 && nonNeg(x.a)) return remainder(x.a, d);
    const lin = linearOf(x);
    // x = d*W + R with R >= 0: x % d = R % d.
    const a = splitBy(lin, d);
    const c = ((lin.c % d) + d) % d;
    const restA = build(a.rest, c);
    if ((a.whole.length > 0 || lin.c >= d) && nonNeg(restA)) return within(restA, d) ? restA : arith('mod', restA, int(d));
    // x = g*W + R with g dividing d and 0 <= R < g: x % d = g * (W % (d/g)) + R.
    const f = factor(lin, d);
    return f ? add(mul(remainder(f.w, d / f.g), int(f.g)), f.r) : arith('mod', x, int(d));
  };

  const go = (x: Expr): Expr => {
    const known = memo.get(x);
    if (known) return known;
    let r: Expr;
    switch (x.k) {
      case 'const': case 'var': r = x; break;
      case 'load': r = { ...x, index: regroup(go(x.index)) }; break;
      case 'unary': case 'cast': r = { ...x, a: go(x.a) }; break;
      case 'cmp': {
        const [a, b] = [go(x.a), go(x.b)];
        const decided = decide(x.op, rangeOf(a), rangeOf(b));
        r = decided !== undefined ? bool(decided) : a === x.a && b === x.b ? x : cmp(x.op, a, b);
        break;
      }
      case 'logic': {
        const [a, b] = [go(x.a), go(x.b)];
        r = a === x.a && b === x.b ? x : x.op === 'and' ? and(a, b) : { ...x, a, b };
        break;
      }
      case 'select': {
        const [c, a, b] = [go(x.c), go(x.a), go(x.b)];
        r = c === x.c && a === x.a && b === x.b ? x : select(c, a, b);
        break;
      }
      case 'arith': {
        const [a, b] = [go(x.a), go(x.b)];
        if (x.t === 'i32' && (x.op === 'div' || x.op === 'mod') && isInt(b) && b.v > 0 && nonNeg(a)) {
          r = x.op === 'div' ? divide(a, b.v) : remainder(a, b.v);
        } else if (x.t === 'i32' && (x.op === 'min' || x.op === 'max')) {
          const [ra, rb] = [rangeOf(a), rangeOf(b)];
          const aFirst = ra && rb && (x.op === 'min' ? ra[1] <= rb[0] : ra[0] >= rb[1]);
          const bFirst = ra && rb && (x.op === 'min' ? rb[1] <= ra[0] : rb[0] >= ra[1]);
          r = aFirst ? a : bFirst ? b : a === x.a && b === x.b ? x : arith(x.op, a, b);
        } else r = a === x.a && b === x.b ? x : arith(x.op, a, b);
        break;
      }
      case 'random': r = { ...x, seed: go(x.seed), index: go(x.index), counter: go(x.counter) }; break;
      default: return assertNever(x, 'expression');
    }
    memo.set(x, r);
    return r;
  };
  return go(e);
}

/** A comparison's value when the operands' ranges decide it. */
function decide(op: CmpOp, a: Range | undefined, b: Range | undefined): boolean | undefined {
  if (!a || !b) return undefined;
  const lt = a[1] < b[0] ? true : a[0] >= b[1] ? false : undefined;
  const le = a[1] <= b[0] ? true : a[0] > b[1] ? false : undefined;
  switch (op) {
    case 'lt': return lt;
    case 'le': return le;
    case 'gt': return le === undefined ? undefined : !le;
    case 'ge': return lt === undefined ? undefined : !lt;
    case 'eq': return a[0] === a[1] && b[0] === b[1] && a[0] === b[0] ? true : lt === true || (le === false) ? false : undefined;
    case 'ne': return a[0] === a[1] && b[0] === b[1] && a[0] === b[0] ? false : lt === true || (le === false) ? true : undefined;
    // Unsigned: decided like lt when both are non-negative, or a negative a against a non-negative b.
    case 'ult':
      if (a[0] >= 0 && b[0] >= 0) return lt;
      return a[1] < 0 && b[0] >= 0 ? false : undefined;
    default: return assertNever(op, 'comparison');
  }
}

/** The variables an expression reads. */
function varsOf(e: Expr, memo: Map<Expr, string[]>): string[] {
  const known = memo.get(e);
  if (known) return known;
  const out = e.k === 'var' ? [e.name] : [...new Set(childrenOf(e).flatMap((c) => varsOf(c, memo)))].sort();
  memo.set(e, out);
  return out;
}

/**
 * A linear index rebuilt as one sum per set of variables its terms read (the constant with the
 * first): `(y - ty)*10 + (x - tx) + c*100` becomes `(y*10 + x) + (c*100 - ty*10 - tx)`, a part a
 * loop hoists and a part its rows share.
 */
function regroup(e: Expr): Expr {
  const lin = linearOf(e);
  if (lin.terms.size < 2) return e;
  const memo = new Map<Expr, string[]>();
  const groups = new Map<string, { atom: Expr; coef: number }[]>();
  for (const t of lin.terms.values()) {
    if (t.coef === 0) continue;
    const key = varsOf(t.atom, memo).join(',');
    const g = groups.get(key);
    if (g) g.push(t);
    else groups.set(key, [t]);
  }
  if (groups.size < 2) return e;
  const keys = [...groups.keys()].sort();
  return keys.map((k, i) => build(groups.get(k)!, i === 0 ? lin.c : 0)).reduce((a, b) => add(a, b));
}

/** The coefficients of `lin` greater than 1 that divide `d`, largest first. */
function divisorsAmong(lin: Linear, d: number): number[] {
  const gs = new Set<number>();
  for (const t of lin.terms.values()) {
    const g = Math.abs(t.coef);
    if (g > 1 && g < d && d % g === 0) gs.add(g);
  }
  return [...gs].sort((p, q) => q - p);
}

const axisRanges = (prefix: string, shape: readonly number[]): [string, Range][] => shape.map((d, i) => [`${prefix}${i}`, [0, d - 1]]);

/** The ranges of a kernel body's coordinate variables. */
export function bodyRanges(body: KernelBody): Ranges {
  switch (body.kind) {
    case 'map': case 'rows': return new Map(axisRanges('o', body.shape));
    case 'reduce': return new Map([...axisRanges('o', body.shape), ...axisRanges('r', body.rshape)]);
    case 'matmul': return new Map([...axisRanges('z', body.batch), ['mi', [0, body.m - 1]], ['ki', [0, body.k - 1]], ['ni', [0, body.n - 1]]]);
    default: return assertNever(body, 'kernel body');
  }
}

/** `k` with the index arithmetic of every expression simplified for its coordinates' ranges. */
export function simplifyKernel(k: Kernel): Kernel {
  const ranges = bodyRanges(k.body);
  const s = (e: Expr): Expr => simplifyIndices(e, ranges);
  const extras = k.extras.map((x) => ({ ...x, expr: s(x.expr) }));
  const b = k.body;
  let body: KernelBody;
  switch (b.kind) {
    case 'map': body = { ...b, expr: s(b.expr) }; break;
    case 'reduce': body = { ...b, body: s(b.body), finalize: s(b.finalize) }; break;
    case 'rows':
      body = {
        ...b, expr: s(b.expr),
        stages: b.stages.map((st) => ({ ...st, value: s(st.value), ...(st.reduce ? { reduce: { ...st.reduce, body: s(st.reduce.body) } } : {}) })),
      };
      break;
    case 'matmul':
      body = {
        ...b, lhs: s(b.lhs), rhs: s(b.rhs), finalize: s(b.finalize),
        ...(b.place ? { place: { shape: b.place.shape, coords: b.place.coords.map(s) } } : {}),
        ...(b.side ? { side: { ...b.side, finalize: s(b.side.finalize), extras: b.side.extras.map((x) => ({ ...x, expr: s(x.expr) })) } } : {}),
      };
      break;
    default: return assertNever(b, 'kernel body');
  }
  return { ...k, body, extras };
}
