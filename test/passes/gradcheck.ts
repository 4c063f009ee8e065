/**
 * @file Gradient checking helpers: a small seeded PRNG of the tests' own (independent of the
 * runtime's initializer), random environments, and central finite differences evaluated by the
 * interpreter in float64 — of the loss (to check gradients) and of a gradient along a direction
 * (to check Hessian-vector products). Every adjoint graph is verified before it is evaluated.
 */
import { numel } from '../../src/ir/dtype.js';
import type { Graph } from '../../src/ir/graph.js';
import { evaluate } from '../../src/ir/interp.js';
import { tensor, type Tensor } from '../../src/ir/tensor.js';
import { verify } from '../../src/ir/verify.js';
import { grad } from '../../src/passes/autodiff.js';

/** mulberry32: a uniform [0, 1) generator from a 32-bit seed. */
export function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Draws one f32 element of the named source. */
export type Gen = (name: string, u: () => number) => number;
export const uniform: Gen = (_, u) => 2 * u() - 1;

/**
 * Random float64 values for every input, param and state of `g`, in node order: f32 elements from
 * `gen` (uniform in [-1, 1) by default), i32 elements in {0, 1, 2}.
 */
export function randomEnv(g: Graph, seed: number, gen: Gen = uniform): Map<string, Tensor> {
  const u = prng(seed);
  const env = new Map<string, Tensor>();
  for (const n of g.nodes) {
    if (n.op !== 'input' && n.op !== 'param' && n.op !== 'state') continue;
    const data = Array.from({ length: numel(n.type.shape) }, () => (n.type.dtype === 'i32' ? Math.floor(u() * 3) : gen(n.attrs.name, u)));
    env.set(n.attrs.name, tensor(n.type.shape, data, n.type.dtype, 'f64'));
  }
  return env;
}

/** A copy of `env` with one tensor replaced. */
export function withValue(env: ReadonlyMap<string, Tensor>, name: string, data: ArrayLike<number>): Map<string, Tensor> {
  const t = env.get(name)!;
  return new Map(env).set(name, tensor(t.type.shape, data, t.type.dtype, 'f64'));
}

/** (f(p + eps e_i) - f(p - eps e_i)) / 2 eps for every element i of the source `name`. */
export function numericGrad(f: (env: ReadonlyMap<string, Tensor>) => number, env: ReadonlyMap<string, Tensor>, name: string, eps = 1e-6): Float64Array {
  const p = Float64Array.from(env.get(name)!.data);
  const out = new Float64Array(p.length);
  for (let i = 0; i < p.length; i++) {
    const at = (d: number) => {
      const q = Float64Array.from(p);
      q[i] = p[i]! + d;
      return f(withValue(env, name, q));
    };
    out[i] = (at(eps) - at(-eps)) / (2 * eps);
  }
  return out;
}

/** Worst |got - want| / max(|want|, floor) over all elements, and where it is. */
export interface Mismatch {
  readonly worst: number;
  readonly where: string;
}

export function relError(got: ArrayLike<number>, want: ArrayLike<number>, floor: number, label = ''): Mismatch {
  let worst = got.length === want.length ? 0 : Infinity;
  let where = got.length === want.length ? '' : `${label}: ${got.length} values, want ${want.length}`;
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i]! - want[i]!) / Math.max(Math.abs(want[i]!), floor);
    if (!(err <= worst)) {
      worst = Number.isNaN(err) ? Infinity : err;
      where = `${label}[${i}]: got ${got[i]} want ${want[i]}`;
    }
  }
  return { worst, where };
}

/** Keeps the worse of two mismatches. */
export const worse = (a: Mismatch, b: Mismatch): Mismatch => (b.worst > a.worst ? b : a);

/** The scalar output `name` of `g`, evaluated in float64. */
export const scalarOf = (g: Graph, name: string) => (env: ReadonlyMap<string, Tensor>) => evaluate(g, env, 'f64').outputs.get(name)!.data[0]!;

/**
 * Differentiates `g` (every param) and compares each gradient element, evaluated in float64,
 * with central differences of the loss; errors are relative to max(|numeric|, floor). `scale` is
 * the largest numeric gradient element, so a caller can tell that the check was not vacuous.
 */
export function checkGrads(g: Graph, loss: string, env: ReadonlyMap<string, Tensor>, eps = 1e-6, floor = 1e-3): Mismatch & { readonly scale: number } {
  const r = grad(g, { loss });
  verify(r.graph, 'autodiff');
  const analytic = evaluate(r.graph, env, 'f64');
  const f = scalarOf(g, loss);
  let m: Mismatch = { worst: 0, where: '' };
  let scale = 0;
  for (const [name, id] of r.grads) {
    const numeric = numericGrad(f, env, name, eps);
    m = worse(m, relError(analytic.values[id]!.data, numeric, floor, `grad:${name}`));
    for (const v of numeric) scale = Math.max(scale, Math.abs(v));
  }
  return { ...m, scale };
}
