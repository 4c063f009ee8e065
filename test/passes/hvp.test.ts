/**
 * @file Hessian-vector products by differentiating twice: `grad` gives the adjoint graph of f, whose
 * `grad:<param>` outputs are folded into the scalar <grad f, v> (v a fixed input per parameter),
 * and `grad` of that graph gives H v. This works only because every VJP rule is written in IR ops,
 * so the first adjoint graph is itself differentiable. H v is checked against central finite
 * differences of the gradient along v, (grad f(p + eps v) - grad f(p - eps v)) / 2 eps, in float64,
 * and, where the Hessian has a short closed form (quadratic form, log-sum-exp, product of sines),
 * against that formula too.
 */
import { describe, expect, it } from 'vitest';
import { GraphBuilder, copyNode, type Value } from '../../src/ir/builder.js';
import type { Graph } from '../../src/ir/graph.js';
import { evaluate } from '../../src/ir/interp.js';
import { tensor, type Tensor } from '../../src/ir/tensor.js';
import { verify } from '../../src/ir/verify.js';
import { grad } from '../../src/passes/autodiff.js';
import { randomEnv } from './gradcheck.js';

/** The name of the direction input for parameter `p`. */
const dir = (p: string) => `v:${p}`;

/** f's adjoint graph, and the adjoint of <grad f, v>, whose `grad:<param>` outputs are H v. */
function hvpGraphs(f: Graph) {
  const first = grad(f, { loss: 'loss' });
  verify(first.graph, 'autodiff');
  const b = new GraphBuilder();
  first.graph.nodes.forEach((n) => copyNode(b, n, n.inputs.map((x) => b.value(x))));
  let gv: Value | undefined;
  for (const [name, id] of first.grads) {
    const g = b.value(id);
    const term = b.reduceSum(b.mul(g, b.input(dir(name), g.type.shape)));
    gv = gv ? b.add_(gv, term) : term;
  }
  if (!gv) throw new Error('the function has no parameters');
  b.output('gv', gv);
  const second = grad(b.build(), { loss: 'gv' });
  verify(second.graph, 'autodiff (second order)');
  return { first, second };
}

const f64 = (t: Tensor, data: ArrayLike<number>) => tensor(t.type.shape, data, t.type.dtype, 'f64');

interface HvpCheck {
  /** H v by double differentiation, per parameter. */
  readonly hv: ReadonlyMap<string, Float64Array>;
  /** Worst |analytic - numeric| / max(|numeric|, floor) over every element. */
  readonly worst: number;
  readonly where: string;
  /** Largest |H v| element, to show the check is not vacuous. */
  readonly scale: number;
  /** The point and the directions the check used (f64). */
  readonly env: ReadonlyMap<string, Tensor>;
}

function checkHvp(f: Graph, seed: number, gen?: (name: string, u: () => number) => number, eps = 1e-5, floor = 1e-3): HvpCheck {
  const { first, second } = hvpGraphs(f);
  const env = randomEnv(second.graph, seed, gen);
  const analytic = evaluate(second.graph, env, 'f64');
  const shifted = (sign: number) => {
    const e = new Map(env);
    for (const name of first.grads.keys()) {
      const p = env.get(name)!;
      const v = env.get(dir(name))!;
      e.set(name, f64(p, p.data.map((x, i) => x + sign * eps * v.data[i]!)));
    }
    return evaluate(first.graph, e, 'f64').values;
  };
  const [up, down] = [shifted(1), shifted(-1)];
  const hv = new Map<string, Float64Array>();
  let worst = 0;
  let where = '';
  let scale = 0;
  for (const [name, id] of first.grads) {
    const a = Float64Array.from(analytic.outputs.get(`grad:${name}`)!.data);
    hv.set(name, a);
    const [gu, gd] = [up[id]!.data, down[id]!.data];
    a.forEach((x, i) => {
      const num = (gu[i]! - gd[i]!) / (2 * eps);
      const err = Math.abs(x - num) / Math.max(Math.abs(num), floor);
      scale = Math.max(scale, Math.abs(x));
      if (!(err <= worst)) {
        worst = Number.isNaN(err) ? Infinity : err;
        where = `${name}[${i}]: double grad ${x}, finite differences ${num}`;
      }
    });
  }
  return { hv, worst, where, scale, env };
}

function graph(build: (b: GraphBuilder) => Value): Graph {
  const b = new GraphBuilder();
  b.output('loss', build(b));
  return b.build();
}

const expectClose = (got: ArrayLike<number>, want: readonly number[]) => {
  expect(got.length).toBe(want.length);
  want.forEach((w, i) => expect(Math.abs(got[i]! - w), `[${i}]: ${got[i]} vs ${w}`).toBeLessThanOrEqual(1e-12 * Math.max(1, Math.abs(w))));
};

describe('Hessian-vector products: grad of grad against finite differences of grad (float64)', () => {
  it('quadratic form x^T A x in both x and A: H v = ((A + A^T) vx + (VA + VA^T) x, vx x^T + x vx^T)', () => {
    const f = graph((b) => {
      const x = b.param('x', [4]);
      const a = b.param('A', [4, 4]);
      const ax = b.reshape(b.matmul(a, b.reshape(x, [4, 1])), [4]);
      return b.reduceSum(b.mul(x, ax));
    });
    const r = checkHvp(f, 1);
    expect(r.worst, r.where).toBeLessThanOrEqual(1e-5);
    expect(r.scale).toBeGreaterThan(0.1);
    const [x, a, vx, va] = ['x', 'A', dir('x'), dir('A')].map((n) => Array.from(r.env.get(n)!.data));
    const at = (m: number[], i: number, j: number) => m[i * 4 + j]!;
    const four = [0, 1, 2, 3];
    const hx = four.map((i) => four.reduce((s, j) => s + (at(a!, i, j) + at(a!, j, i)) * vx![j]! + (at(va!, i, j) + at(va!, j, i)) * x![j]!, 0));
    const ha = four.flatMap((i) => four.map((j) => vx![i]! * x![j]! + x![i]! * vx![j]!));
    expectClose(r.hv.get('x')!, hx);
    expectClose(r.hv.get('A')!, ha);
  });

  it('log-sum-exp per row: H v = p * v - p (p . v), p = softmax(x)', () => {
    const f = graph((b) => {
      const x = b.param('x', [2, 5]);
      const m = b.stopGradient(b.reduceMax(x, -1, true));
      return b.reduceSum(b.add_(b.log(b.reduceSum(b.exp(b.sub(x, m)), -1, true)), m));
    });
    const r = checkHvp(f, 2, (_, u) => 4 * u() - 2);
    expect(r.worst, r.where).toBeLessThanOrEqual(1e-5);
    expect(r.scale).toBeGreaterThan(0.01);
    const [x, v] = ['x', dir('x')].map((n) => Array.from(r.env.get(n)!.data));
    const want = [0, 1].flatMap((row) => {
      const xs = x!.slice(row * 5, row * 5 + 5);
      const vs = v!.slice(row * 5, row * 5 + 5);
      const z = xs.reduce((s, t) => s + Math.exp(t), 0);
      const p = xs.map((t) => Math.exp(t) / z);
      const pv = p.reduce((s, t, i) => s + t * vs[i]!, 0);
      return p.map((t, i) => t * vs[i]! - t * pv);
    });
    expectClose(r.hv.get('x')!, want);
  });

  it('product of sines sin x0 sin x1 sin x2 sin x3: H_ij = prod_{k != i,j} sin xk cos xi cos xj, H_ii = -f', () => {
    const f = graph((b) => {
      const s = b.sin(b.param('x', [4]));
      const parts = [0, 1, 2, 3].map((i) => b.slice(s, [i], [i + 1]));
      return b.reshape(parts.reduce((p, q) => b.mul(p, q)), []);
    });
    const r = checkHvp(f, 3, (_, u) => 3 * u() - 1.5);
    expect(r.worst, r.where).toBeLessThanOrEqual(1e-5);
    expect(r.scale).toBeGreaterThan(0.01);
    const [x, v] = ['x', dir('x')].map((n) => Array.from(r.env.get(n)!.data));
    const four = [0, 1, 2, 3];
    const prodExcept = (skip: number[]) => four.filter((k) => !skip.includes(k)).reduce((p, k) => p * Math.sin(x![k]!), 1);
    const h = (i: number, j: number) => (i === j ? -prodExcept([]) : prodExcept([i, j]) * Math.cos(x![i]!) * Math.cos(x![j]!));
    expectClose(r.hv.get('x')!, four.map((i) => four.reduce((s, j) => s + h(i, j) * v![j]!, 0)));
  });

  it('2-layer tanh MLP with a squared-error loss, in every weight and bias', () => {
    const f = graph((b) => {
      const x = b.input('x', [3, 4]);
      const h = b.tanh(b.linear(x, b.param('w1', [4, 5]), b.param('b1', [5])));
      const y = b.tanh(b.linear(h, b.param('w2', [5, 2]), b.param('b2', [2])));
      return b.mse(y, b.input('target', [3, 2]));
    });
    const r = checkHvp(f, 4);
    expect(r.worst, r.where).toBeLessThanOrEqual(1e-5);
    expect(r.scale).toBeGreaterThan(0.01);
  });

  it('softmax cross-entropy of a linear layer, in its weight and bias', () => {
    const f = graph((b) => {
      const x = b.input('x', [4, 3]);
      const logits = b.linear(x, b.param('w', [3, 3]), b.param('b', [3]));
      return b.softmaxCrossEntropy(logits, b.input('labels', [4], 'i32'));
    });
    const r = checkHvp(f, 5, (_, u) => 3 * u() - 1.5);
    expect(r.worst, r.where).toBeLessThanOrEqual(1e-5);
    expect(r.scale).toBeGreaterThan(0.01);
  });

  it('layernorm with gain and bias, squared and weighted, in x, gamma and beta', () => {
    const f = graph((b) => {
      const y = b.layerNorm(b.param('x', [2, 6]), b.param('gamma', [6]), b.param('beta', [6]));
      return b.reduceSum(b.mul(b.square(y), b.input('c', [2, 6])));
    });
    const r = checkHvp(f, 6);
    expect(r.worst, r.where).toBeLessThanOrEqual(1e-5);
    expect(r.scale).toBeGreaterThan(0.01);
  });
});
