/**
 * @file Optimizers written in IR: given a graph with gradients, adds the update of every
 * parameter as graph nodes and `update` entries, with the optimizer's state (momentum buffers,
 * Adam's moments, a step counter) as `state` nodes that live on the GPU between steps. So one
 * training step is one program, and fusion can put the update into the kernels that make the
 * gradients. Conventions follow PyTorch: SGD p -= lr (g + wd p); momentum m = mu m + (g + wd p),
 * p -= lr m; AdamW with bias correction and decoupled weight decay.
 */
import { GraphBuilder, copyNode, type Value } from '../ir/builder.js';
import { AdjointError } from '../ir/errors.js';
import type { Graph, ValueId } from '../ir/graph.js';
import type { OptimizerConfig } from '../ir/model.js';

/** State names use `@`, which the model format does not allow in names, so they never collide. */
export const stateName = (param: string, slot: string) => `${param}@${slot}`;
export const STEP_STATE = '@step';

export function applyOptimizer(g: Graph, grads: ReadonlyMap<string, ValueId>, cfg: OptimizerConfig): Graph {
  const b = new GraphBuilder();
  g.nodes.forEach((n) => copyNode(b, n, n.inputs.map((x) => b.value(x))));
  const taken = new Set(g.nodes.flatMap((n) => (n.op === 'input' || n.op === 'param' || n.op === 'state' ? [n.attrs.name] : [])));
  const state = (name: string, shape: readonly number[]): Value => {
    if (taken.has(name)) throw new AdjointError(`optimizer: the name "${name}" is already used`);
    taken.add(name);
    return b.add('state', { name, shape, dtype: 'f32', init: { kind: 'zeros' } }, []);
  };
  const params = new Map<string, ValueId>();
  g.nodes.forEach((n, i) => n.op === 'param' && params.set(n.attrs.name, i));
  const updates: [string, Value][] = [];
  // Adam's bias correction needs the step number t = step + 1.
  let t: Value | undefined;
  if (cfg.kind === 'adam') {
    const step = state(STEP_STATE, []);
    t = b.add_(step, 1);
    updates.push([STEP_STATE, t]);
  }
  for (const [name, gid] of grads) {
    const pid = params.get(name);
    if (pid === undefined) throw new AdjointError(`optimizer: "${name}" is not a parameter`);
    const p = b.value(pid);
    let grad = b.value(gid);
    const shape = p.type.shape;
    switch (cfg.kind) {
      case 'sgd': {
        if (cfg.weightDecay) grad = b.add_(grad, b.mul(p, cfg.weightDecay));
        if (cfg.momentum) {
          const m = state(stateName(name, 'm'), shape);
          // m' = mu m + g
          const m2 = b.add_(b.mul(m, cfg.momentum), grad);
          updates.push([stateName(name, 'm'), m2]);
          grad = m2;
        }
        // p' = p - lr g
        updates.push([name, b.sub(p, b.mul(grad, cfg.lr))]);
        break;
      }
      case 'adam': {
        const m = state(stateName(name, 'm'), shape);
        const v = state(stateName(name, 'v'), shape);
        // m' = b1 m + (1 - b1) g;  v' = b2 v + (1 - b2) g^2
        const m2 = b.add_(b.mul(m, cfg.beta1), b.mul(grad, 1 - cfg.beta1));
        const v2 = b.add_(b.mul(v, cfg.beta2), b.mul(b.mul(grad, grad), 1 - cfg.beta2));
        // mhat = m' / (1 - b1^t);  vhat = v' / (1 - b2^t)
        const mhat = b.div(m2, b.sub(1, b.pow(b.full(cfg.beta1), t!)));
        const vhat = b.div(v2, b.sub(1, b.pow(b.full(cfg.beta2), t!)));
        // p' = p - lr wd p - lr mhat / (sqrt(vhat) + eps)
        let p2 = b.sub(p, b.mul(b.div(mhat, b.add_(b.sqrt(vhat), cfg.eps)), cfg.lr));
        if (cfg.weightDecay) p2 = b.sub(p2, b.mul(p, cfg.lr * cfg.weightDecay));
        updates.push([stateName(name, 'm'), m2], [stateName(name, 'v'), v2], [name, p2]);
        break;
      }
    }
  }
  for (const o of g.outputs) b.output(o.name, b.value(o.value));
  for (const u of g.updates) b.update(u.target, b.value(u.value));
  for (const [target, v] of updates) b.update(target, v);
  return b.build();
}
