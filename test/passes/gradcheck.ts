/**
 * @file Gradient checking: the adjoint graph's gradients against central finite differences of
 * the loss, both evaluated by the interpreter in float64.
 */
import { numel } from '../../src/ir/dtype.js';
import type { Graph } from '../../src/ir/graph.js';
import { evaluate } from '../../src/ir/interp.js';
import { tensor, type Tensor } from '../../src/ir/tensor.js';
import { grad } from '../../src/passes/autodiff.js';
import { verify } from '../../src/ir/verify.js';
import { rng } from '../../src/runtime/init.js';

/** Random f64 values for every input and param; `gen` may shape them (e.g. positive, away from kinks). */
export function randomEnv(g: Graph, seed: number, gen: (name: string, u: () => number) => number = (_, u) => 2 * u() - 1): Map<string, Tensor> {
  const u = rng(seed);
  const env = new Map<string, Tensor>();
  for (const n of g.nodes) {
    if (n.op !== 'input' && n.op !== 'param' && n.op !== 'state') continue;
    const data = Array.from({ length: numel(n.type.shape) }, () => (n.type.dtype === 'i32' ? Math.floor(u() * 3) : gen(n.attrs.name, u)));
    env.set(n.attrs.name, tensor(n.type.shape, data, n.type.dtype, 'f64'));
  }
  return env;
}

export interface GradCheck {
  /** Worst relative error over every gradient element. */
  readonly worst: number;
  readonly where: string;
}

/** max |analytic - numeric| / max(|numeric|, floor) over every parameter element. */
export function checkGrads(g: Graph, loss: string, env: Map<string, Tensor>, eps = 1e-6, floor = 1e-3): GradCheck {
  const r = grad(g, { loss });
  verify(r.graph, 'autodiff');
  const analytic = evaluate(r.graph, env, 'f64');
  const f = (e: Map<string, Tensor>) => evaluate(g, e, 'f64').outputs.get(loss)!.data[0]!;
  let worst = 0;
  let where = '';
  for (const [name, id] of r.grads) {
    const p = env.get(name)!;
    const ga = analytic.values[id]!.data;
    for (let i = 0; i < p.data.length; i++) {
      const orig = p.data[i]!;
      p.data[i] = orig + eps;
      const up = f(env);
      p.data[i] = orig - eps;
      const down = f(env);
      p.data[i] = orig;
      const num = (up - down) / (2 * eps);
      const err = Math.abs(ga[i]! - num) / Math.max(Math.abs(num), floor);
      if (!(err <= worst)) {
        worst = Number.isNaN(err) ? Infinity : err;
        where = `${name}[${i}]: analytic ${ga[i]} numeric ${num}`;
      }
    }
  }
  return { worst, where };
}
