/**
 * @file The index simplifier (src/codegen/ranges.ts): every rewrite is exact on its ranges. Random
 * index expressions of the shapes lowering builds (linearize coordinates, split them again in
 * another shape, scale, offset, clamp) are simplified and compared with the original on every
 * point of their variables' ranges, with WGSL's i32 semantics (truncating / and %).
 */
import { describe, expect, it } from 'vitest';
import { add, and, arith, cmp, delinearize, div, int, ivar, keyOf, linearIndex, load, mod, mul, select, sub, type Expr } from '../../src/passes/expr.js';
import { simplifyIndices, type Range } from '../../src/codegen/ranges.js';

function evalI32(e: Expr, env: ReadonlyMap<string, number>): number {
  switch (e.k) {
    case 'const': return e.v;
    case 'var': return env.get(e.name)!;
    case 'arith': {
      const [a, b] = [evalI32(e.a, env), evalI32(e.b, env)];
      switch (e.op) {
        case 'add': return (a + b) | 0;
        case 'sub': return (a - b) | 0;
        case 'mul': return Math.imul(a, b);
        case 'div': return b === 0 ? 0 : Math.trunc(a / b) | 0;
        case 'mod': return b === 0 ? 0 : a % b;
        case 'min': return Math.min(a, b);
        case 'max': return Math.max(a, b);
        default: throw new Error(`unexpected ${e.op}`);
      }
    }
    case 'cmp': {
      const [a, b] = [evalI32(e.a, env), evalI32(e.b, env)];
      const r = { eq: a === b, ne: a !== b, lt: a < b, le: a <= b, gt: a > b, ge: a >= b, ult: a >>> 0 < b >>> 0 }[e.op];
      return r ? 1 : 0;
    }
    case 'logic': return e.op === 'and' ? evalI32(e.a, env) & evalI32(e.b, env) : evalI32(e.a, env) | evalI32(e.b, env);
    case 'select': return evalI32(e.c, env) ? evalI32(e.a, env) : evalI32(e.b, env);
    default: throw new Error(`unexpected ${e.k}`);
  }
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pick = <T>(u: () => number, xs: readonly T[]): T => xs[Math.floor(u() * xs.length)]!;

/** A random index of the kind lowering builds, over vars with the given sizes. */
function randomIndex(u: () => number, vars: readonly [string, number][]): Expr {
  // Coordinates of a random shape whose element count is the product of the vars' sizes: the vars
  // linearized, then split again (a reshape), permuted (a transpose) and linearized once more.
  const total = vars.reduce((p, [, n]) => p * n, 1);
  let lin = linearIndex(vars.map(([v]) => ivar(v)), vars.map(([, n]) => n));
  for (let round = 0; round < 2; round++) {
    const shape: number[] = [];
    let left = total;
    while (left > 1) {
      const f = pick(u, [2, 3, 4, 8].filter((d) => left % d === 0).concat(left));
      shape.push(f);
      left /= f;
    }
    const coords = delinearize(lin, shape);
    const perm = shape.map((_, i) => i).sort(() => u() - 0.5);
    lin = linearIndex(perm.map((p) => coords[p]!), perm.map((p) => shape[p]!));
  }
  const extra = pick(u, ['none', 'scale', 'offset', 'div', 'mod', 'min', 'guard', 'shifted']);
  switch (extra) {
    // A pooling or padding gradient: a shifted coordinate, tested for range and parity, then halved.
    case 'guard': {
      const t = sub(lin, int(pick(u, [1, 2])));
      const ok = and(cmp('ult', t, int(Math.max(1, total - pick(u, [0, 1, 2])))), cmp('eq', mod(t, int(2)), int(0)));
      return select(ok, arith('min', arith('max', div(t, int(2)), int(0)), int(Math.max(0, total / 2 - 1))), int(-1));
    }
    case 'shifted': return select(cmp(pick(u, ['lt', 'ge', 'ne', 'le'] as const), lin, int(pick(u, [0, total, total - 1]))), lin, int(7));
    case 'scale': return add(mul(lin, int(pick(u, [2, 4, 3]))), int(pick(u, [0, 1, 5])));
    case 'offset': return add(lin, int(pick(u, [1, 7, 64])));
    case 'div': return div(add(lin, int(pick(u, [0, 3]))), int(pick(u, [2, 4, 6, 16])));
    case 'mod': return mod(lin, int(pick(u, [2, 4, 5, 32])));
    case 'min': return arith('min', lin, int(Math.max(0, total - pick(u, [1, 3]))));
    default: return lin;
  }
}

function* points(vars: readonly [string, number][]): Generator<Map<string, number>> {
  const idx = vars.map(() => 0);
  for (;;) {
    yield new Map(vars.map(([v], i) => [v, idx[i]!]));
    let i = vars.length - 1;
    while (i >= 0 && ++idx[i]! === vars[i]![1]) idx[i--] = 0;
    if (i < 0) return;
  }
}

describe('index simplification', () => {
  it('splits a reshaped transpose into per-variable parts', () => {
    // (ki*128 + ni) read through [4, 64, 4, 32] -> transposed: the matmul operand of a QKV weight gradient.
    const lin = add(mul(ivar('ki'), int(128)), ivar('ni'));
    const c = delinearize(lin, [8, 64, 4, 32]);
    const idx = linearIndex([c[0]!, c[2]!, c[3]!, c[1]!], [8, 4, 32, 64]);
    const ranges = new Map<string, Range>([['ki', [0, 511]], ['ni', [0, 127]]]);
    const s = simplifyIndices(idx, ranges);
    // No division or remainder mixes ki with ni any more.
    const mixes = (e: Expr): boolean => e.k === 'arith' && (e.op === 'div' || e.op === 'mod') && keyOf(e.a).includes('ki') && keyOf(e.a).includes('ni');
    const walk = (e: Expr): boolean => mixes(e) || (e.k === 'arith' && (walk(e.a) || walk(e.b)));
    expect(walk(idx)).toBe(true);
    expect(walk(s)).toBe(false);
    for (const p of points([['ki', 512], ['ni', 128]])) expect(evalI32(s, p)).toBe(evalI32(idx, p));
  });

  it('is exact on every point of 400 random index expressions', () => {
    const u = rng(20261201);
    let simplified = 0;
    for (let n = 0; n < 400; n++) {
      const count = 1 + Math.floor(u() * 3);
      const vars: [string, number][] = Array.from({ length: count }, (_, i) => [`v${i}`, pick(u, [1, 2, 3, 4, 6, 8, 12, 16])]);
      const e = randomIndex(u, vars);
      const ranges = new Map(vars.map(([v, size]) => [v, [0, size - 1] as const]));
      const s = simplifyIndices(e, ranges);
      // As a load's index it is also regrouped (one sum per set of variables).
      const l = simplifyIndices(load(0, e, 'f32'), ranges);
      if (l.k !== 'load') throw new Error('a load simplified to something else');
      if (keyOf(s) !== keyOf(e)) simplified++;
      for (const p of points(vars)) {
        const want = evalI32(e, p);
        for (const got of [s, l.index]) {
          if (want !== evalI32(got, p)) throw new Error(`${keyOf(e)} -> ${keyOf(got)} differs at ${JSON.stringify([...p])}: ${want} vs ${evalI32(got, p)}`);
        }
      }
    }
    expect(simplified).toBeGreaterThan(100);
  });

  it('leaves expressions over variables of unknown range alone', () => {
    const e = mod(div(add(mul(ivar('x'), int(128)), ivar('y')), int(32)), int(4));
    expect(keyOf(simplifyIndices(e, new Map()))).toBe(keyOf(e));
  });
});
