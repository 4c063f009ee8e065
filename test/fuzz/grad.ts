/**
 * @file Random differentiable problems for gradient fuzzing, and their check against finite
 * differences; no device needed. A recipe made with `recipeArb({ differentiable: true })` gives a
 * graph (graphs.ts); its f32 inputs become parameters (the first always, the others unless the
 * case's `keep` mask leaves them inputs), and the loss is sum_k sum(v_k * w_k) over its outputs
 * and every f32 value nothing reads (so that every step the recipe made can reach the loss), each
 * with a random weight input `w<k>` of its shape (an i32 output is cast to f32 first: it carries
 * no gradient). `grad` then `simplify` make the program under test.
 *
 * The check: that program evaluated by the interpreter in float64 against central differences of
 * the loss, at a few coordinates of each parameter and along one random direction through all of
 * them. The graphs keep their kinks and jumps (relu, abs, max, where of a comparison, casts to
 * i32), so every probe is differenced at two step sizes: where the estimates disagree a kink is
 * within reach of the step and the probe is skipped (and counted); elsewhere they agree to O(h^2)
 * and the gradient must match their Richardson extrapolation, which is exact to O(h^4).
 */
import fc from 'fast-check';
import { copyNode, GraphBuilder, type Value } from '../../src/ir/builder.js';
import type { Graph } from '../../src/ir/graph.js';
import { evaluate } from '../../src/ir/interp.js';
import { numel } from '../../src/ir/dtype.js';
import { tensor, withPrecision, type Tensor } from '../../src/ir/tensor.js';
import { verify } from '../../src/ir/verify.js';
import { grad } from '../../src/passes/autodiff.js';
import { simplify } from '../../src/passes/simplify.js';
import { rng } from '../../src/runtime/init.js';
import { buildCase, recipeArb, SIN_COS_ERROR, type Recipe } from './graphs.js';

export interface GradRecipe {
  readonly recipe: Recipe;
  /** Bit i set: the (i+1)-th f32 input stays an input instead of becoming a parameter. */
  readonly keep: number;
}

/** Differentiable recipes (no stop_gradient, first input f32) of 1-`maxSteps` steps. */
export const gradRecipeArb = (maxSteps?: number): fc.Arbitrary<GradRecipe> =>
  fc.record({ recipe: recipeArb({ differentiable: true, ...(maxSteps ? { maxSteps } : {}) }), keep: fc.nat({ max: 15 }) });

export interface GradCase {
  /** The recipe's graph with parameters, and the scalar output `loss` as its only output. */
  readonly loss: Graph;
  /** grad(loss) then simplify: outputs `loss` and `grad:<param>` for every parameter. */
  readonly graph: Graph;
  readonly params: readonly string[];
  /** maxStorageBuffersPerShaderStage to compile for. */
  readonly bindings: number;
}

/** The differentiable problem of a recipe; every graph made goes through the verifier. */
export function buildGradCase(r: GradRecipe): GradCase {
  const fwd = buildCase(r.recipe);
  const b = new GraphBuilder();
  const params: string[] = [];
  let f32Inputs = 0;
  for (const n of fwd.graph.nodes) {
    if (n.op === 'input' && n.type.dtype === 'f32' && !((r.keep << 1) & (1 << f32Inputs++))) {
      b.param(n.attrs.name, n.attrs.shape, { kind: 'zeros' });
      params.push(n.attrs.name);
    } else {
      copyNode(b, n, n.inputs.map((x) => b.value(x)));
    }
  }
  const used = new Set(fwd.graph.nodes.flatMap((n) => n.inputs));
  const outs = fwd.graph.outputs.map((o) => o.value);
  const sinks = fwd.graph.nodes.flatMap((n, i) => (n.type.dtype === 'f32' && !used.has(i) && !outs.includes(i) ? [i] : []));
  const terms = [...outs, ...sinks].map((id, k): Value => {
    let v = b.value(id);
    if (v.type.dtype === 'i32') v = b.cast(v, 'f32');
    const t = b.mul(v, b.input(`w${k}`, v.type.shape));
    return t.type.shape.length ? b.reduceSum(t) : t;
  });
  b.output('loss', terms.reduce((s, t) => b.add_(s, t)));
  const loss = b.build();
  verify(loss, 'gradient fuzz loss');
  const adj = grad(loss, { loss: 'loss' }).graph;
  verify(adj, 'autodiff');
  const graph = simplify(adj);
  verify(graph, 'simplify');
  return { loss, graph, params, bindings: fwd.bindings };
}

/**
 * How far the outputs of `g` can move, relative to max(|value|, 1), when its sin and cos results
 * are off by up to WGSL's {@link SIN_COS_ERROR} (SwiftShader uses that slack): an estimate in
 * float64, the largest move over a few patterns of errors of ±2^-11 at every element (all up, all
 * down, two random), as the error of an adjoint graph has no static bound like the forward
 * graph's. 0 for a graph with neither.
 */
export function sinCosSensitivity(g: Graph, env: ReadonlyMap<string, Tensor>, seed: number): number {
  const b = new GraphBuilder();
  const errs: Value[] = [];
  const map: Value[] = [];
  g.nodes.forEach((n, i) => {
    const v = copyNode(b, n, n.inputs.map((x) => map[x]!));
    if (n.op !== 'sin' && n.op !== 'cos') return void (map[i] = v);
    const e = b.input(`__sincos${errs.length}`, v.type.shape);
    errs.push(e);
    map[i] = b.add_(v, e);
  });
  if (!errs.length) return 0;
  for (const o of g.outputs) b.output(o.name, map[o.value]!);
  const h = b.build();
  const u = rng(seed);
  const run = (err: () => number) => {
    const e = new Map(env);
    errs.forEach((v, k) => e.set(`__sincos${k}`, tensor(v.type.shape, Array.from({ length: numel(v.type.shape) }, err), 'f32', 'f64')));
    return evaluate(h, e, 'f64').outputs;
  };
  const base = run(() => 0);
  let worst = 0;
  for (const err of [() => SIN_COS_ERROR, () => -SIN_COS_ERROR, () => (u() < 0.5 ? -1 : 1) * SIN_COS_ERROR, () => (u() < 0.5 ? -1 : 1) * SIN_COS_ERROR]) {
    const moved = run(err);
    for (const [name, t] of base) {
      const m = moved.get(name)!.data;
      t.data.forEach((x, i) => (worst = Math.max(worst, Math.abs(m[i]! - x) / Math.max(Math.abs(x), 1))));
    }
  }
  return worst;
}

/** The larger step; the smaller is half of it. */
export const FD_STEP = 1e-4;
/** Coordinates probed per parameter (all of them for a smaller parameter). */
export const COORDS_PER_PARAM = 3;
/**
 * Probes whose two finite differences disagree by more than this (relative, with the floor of
 * {@link GradCheck}) are skipped as near a kink. Smooth functions stay far below it: the two
 * estimates differ by h^2 f'''/8 ~ 1e-9 f'''.
 */
export const KINK_TOLERANCE = 1e-6;

/** One probe: a direction through the parameters, as a vector per parameter. */
type Direction = ReadonlyMap<string, Float64Array>;

export interface GradCheck {
  /** Probes compared with the gradient. */
  readonly probes: number;
  /** Probes skipped because a kink or a jump was within reach of the finite-difference step. */
  readonly skipped: number;
  /** Compared probes whose derivative is above the floor: the check was not vacuous. */
  readonly nonzero: number;
  /**
   * The worst error of a compared probe: |gradient . d - fd| / max(|fd|, floor), where the floor
   * is 1e-3 of sum_i |gradient_i d_i| (so cancellation in a directional derivative is not held
   * against it) and at least {@link ABS_FLOOR}; with where it happened.
   */
  readonly worst: number;
  readonly where: string;
}

/** The smallest floor of the relative error: finite differences of f64 losses of size ~1e3 are good to ~1e-9. */
export const ABS_FLOOR = 1e-4;

/**
 * The gradients of `c.graph` (evaluated in float64 at `env`) against central differences of
 * `c.loss`. Coordinates and the random direction are drawn from `seed`.
 */
export function checkGradients(c: GradCase, env: ReadonlyMap<string, Tensor>, seed: number): GradCheck {
  const base = new Map([...env].map(([k, t]) => [k, withPrecision(t, 'f64')]));
  const out = evaluate(c.graph, base, 'f64').outputs;
  const grads = new Map(c.params.map((p) => [p, out.get(`grad:${p}`)!.data]));
  const lossAt = (d: Direction, t: number): number => {
    const e = new Map(base);
    for (const [name, v] of d) {
      const x = base.get(name)!;
      e.set(name, { type: x.type, data: Float64Array.from(x.data, (xi, i) => xi + t * v[i]!) });
    }
    return evaluate(c.loss, e, 'f64').outputs.get('loss')!.data[0]!;
  };
  const fd = (d: Direction, h: number) => (lossAt(d, h) - lossAt(d, -h)) / (2 * h);

  const u = rng(seed);
  const probes: { label: string; d: Direction }[] = [];
  for (const p of c.params) {
    const n = grads.get(p)!.length;
    const coords = [...Array(n).keys()];
    for (let k = 0; k < Math.min(COORDS_PER_PARAM, n); k++) {
      const i = coords.splice(Math.floor(u() * coords.length), 1)[0]!;
      const v = new Float64Array(n);
      v[i] = 1;
      probes.push({ label: `grad:${p}[${i}]`, d: new Map([[p, v]]) });
    }
  }
  probes.push({ label: 'a random direction', d: new Map(c.params.map((p) => [p, Float64Array.from(grads.get(p)!, () => 2 * u() - 1)])) });

  let skipped = 0;
  let nonzero = 0;
  let worst = 0;
  let where = '';
  for (const { label, d } of probes) {
    let analytic = 0;
    let size = 0;
    for (const [p, v] of d) {
      const g = grads.get(p)!;
      v.forEach((vi, i) => {
        analytic += g[i]! * vi;
        size += Math.abs(g[i]! * vi);
      });
    }
    const [f1, f2] = [fd(d, FD_STEP), fd(d, FD_STEP / 2)];
    // Values stay finite by construction (graphs.ts): a NaN fails, it is not skipped as a kink.
    const denom = Math.max(Math.abs(f2), Number.isFinite(size) ? 1e-3 * size : 0, ABS_FLOOR);
    if (Number.isFinite(f1) && Number.isFinite(f2) && !(Math.abs(f1 - f2) <= KINK_TOLERANCE * denom)) {
      skipped++;
      continue;
    }
    const want = (4 * f2 - f1) / 3;
    if (Math.abs(want) > ABS_FLOOR) nonzero++;
    const err = Math.abs(analytic - want) / denom;
    if (!(err <= worst)) {
      worst = Number.isNaN(err) ? Infinity : err;
      where = `${label}: gradient ${analytic}, finite differences ${want} (steps ${FD_STEP}: ${f1}, ${FD_STEP / 2}: ${f2})`;
    }
  }
  return { probes: probes.length, skipped, nonzero, worst, where };
}
