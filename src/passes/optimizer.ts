/**
 * @file Optimizers written in IR: given a graph and the gradient of each parameter (values of the
 * graph), adds every parameter's new value as graph nodes and an `update` entry, with the
 * optimizer's state — momentum buffers `<param>@m`, Adam's moments `<param>@m` and `<param>@v`,
 * Adam's step counter `@step` — as `state` nodes that live on the GPU between steps. So one
 * training step is one program, and fusion can put the update into the kernels that make the
 * gradients. Conventions follow PyTorch:
 *   SGD        p' = p - lr (g + wd p)
 *   momentum   m' = mu m + (g + wd p);  p' = p - lr m'
 *   AdamW      t = step + 1;  m' = b1 m + (1 - b1) g;  v' = b2 v + (1 - b2) g²;
 *              m̂ = m' / (1 - b1^t);  v̂ = v' / (1 - b2^t);  p' = p - lr wd p - lr m̂ / (sqrt(v̂) + eps)
 * (bias correction computed in IR from the step counter, weight decay decoupled). A parameter with
 * no gradient in the map is left as it is.
 */
import { GraphBuilder, copyNode, type Value } from '../ir/builder.js';
import { fmtType, typeEq, type Shape } from '../ir/dtype.js';
import { AdjointError, assertNever } from '../ir/errors.js';
import type { Graph, ValueId } from '../ir/graph.js';
import type { OptimizerConfig } from '../ir/model.js';
import type { Pass } from './pipeline.js';

/** The optimizer cannot be built: a bad setting, a gradient of no parameter, a name already taken. */
export class OptimizerError extends AdjointError {
  override name = 'OptimizerError';
}

/**
 * State names contain `@`, which names in the model format cannot (schema.ts NAME_PATTERN); a
 * graph built in TypeScript could still use one, which is reported as a collision.
 */
export const stateName = (param: string, slot: 'm' | 'v') => `${param}@${slot}`;
export const STEP_STATE = '@step';
/** The output names under which autodiff gives the gradients. */
export const GRAD_PREFIX = 'grad:';

/** The settings each optimizer accepts, as the model format checks them (schema.ts). */
function checkConfig(cfg: OptimizerConfig): void {
  const want = (field: string, v: number, ok: boolean, what: string) => {
    if (!Number.isFinite(v) || !ok) throw new OptimizerError(`optimizer ${cfg.kind}: ${field} must be ${what}, got ${v}`);
  };
  want('lr', cfg.lr, cfg.lr > 0, 'a number > 0');
  want('weightDecay', cfg.weightDecay, cfg.weightDecay >= 0, 'a number >= 0');
  switch (cfg.kind) {
    case 'sgd':
      want('momentum', cfg.momentum, cfg.momentum >= 0 && cfg.momentum < 1, 'in [0, 1)');
      break;
    case 'adam':
      want('beta1', cfg.beta1, cfg.beta1 >= 0 && cfg.beta1 < 1, 'in [0, 1)');
      want('beta2', cfg.beta2, cfg.beta2 >= 0 && cfg.beta2 < 1, 'in [0, 1)');
      want('eps', cfg.eps, cfg.eps > 0, 'a number > 0');
      break;
    default:
      assertNever(cfg, 'optimizer');
  }
}

export function applyOptimizer(g: Graph, grads: ReadonlyMap<string, ValueId>, cfg: OptimizerConfig): Graph {
  checkConfig(cfg);
  const b = new GraphBuilder();
  g.nodes.forEach((n) => copyNode(b, n, n.inputs.map((x) => b.value(x))));

  const params = new Map<string, ValueId>();
  const taken = new Set<string>();
  g.nodes.forEach((n, i) => {
    if (n.op === 'input' || n.op === 'param' || n.op === 'state') taken.add(n.attrs.name);
    if (n.op === 'param') params.set(n.attrs.name, i);
  });
  const state = (name: string, shape: Shape): Value => {
    if (taken.has(name)) throw new OptimizerError(`optimizer ${cfg.kind}: its state "${name}" collides with a source of the same name; rename that source`);
    taken.add(name);
    return b.state(name, shape, { kind: 'zeros' });
  };

  const updates: [string, Value][] = [];
  for (const [name, gid] of grads) {
    const pid = params.get(name);
    if (pid === undefined) throw new OptimizerError(`optimizer: "${name}" has a gradient but is not a parameter (parameters: ${[...params.keys()].join(', ') || 'none'})`);
    const gt = g.nodes[gid]?.type;
    if (!gt || !typeEq(gt, g.nodes[pid]!.type)) {
      throw new OptimizerError(`optimizer: the gradient of "${name}" is ${gt ? fmtType(gt) : `no value (${gid})`}, but the parameter is ${fmtType(g.nodes[pid]!.type)}`);
    }
    if (g.updates.some((u) => u.target === name)) throw new OptimizerError(`optimizer: parameter "${name}" already has an update in the graph`);
  }

  switch (cfg.kind) {
    case 'sgd':
      for (const [name, gid] of grads) {
        const p = b.value(params.get(name)!);
        // g + wd p
        let d = b.value(gid);
        if (cfg.weightDecay) d = b.add_(d, b.mul(cfg.weightDecay, p));
        if (cfg.momentum) {
          // m' = mu m + (g + wd p)
          const m = state(stateName(name, 'm'), p.type.shape);
          d = b.add_(b.mul(cfg.momentum, m), d);
          updates.push([stateName(name, 'm'), d]);
        }
        // p' = p - lr d
        updates.push([name, b.sub(p, b.mul(cfg.lr, d))]);
      }
      break;
    case 'adam': {
      if (grads.size === 0) break;
      // t = step + 1;  c1 = 1 - b1^t;  c2 = 1 - b2^t (shared by every parameter)
      const step = state(STEP_STATE, []);
      const t = b.add_(step, 1);
      updates.push([STEP_STATE, t]);
      const c1 = b.sub(1, b.pow(b.full(cfg.beta1), t));
      const c2 = b.sub(1, b.pow(b.full(cfg.beta2), t));
      for (const [name, gid] of grads) {
        const p = b.value(params.get(name)!);
        const grad = b.value(gid);
        const m = state(stateName(name, 'm'), p.type.shape);
        const v = state(stateName(name, 'v'), p.type.shape);
        // m' = b1 m + (1 - b1) g;  v' = b2 v + (1 - b2) g²
        const m2 = b.add_(b.mul(cfg.beta1, m), b.mul(1 - cfg.beta1, grad));
        const v2 = b.add_(b.mul(cfg.beta2, v), b.mul(1 - cfg.beta2, b.mul(grad, grad)));
        // m̂ = m' / c1;  v̂ = v' / c2
        const mhat = b.div(m2, c1);
        const vhat = b.div(v2, c2);
        // p' = p - lr wd p - lr m̂ / (sqrt(v̂) + eps)
        const decayed = cfg.weightDecay ? b.sub(p, b.mul(cfg.lr * cfg.weightDecay, p)) : p;
        const p2 = b.sub(decayed, b.mul(cfg.lr, b.div(mhat, b.add_(b.sqrt(vhat), cfg.eps))));
        updates.push([stateName(name, 'm'), m2], [stateName(name, 'v'), v2], [name, p2]);
      }
      break;
    }
    default:
      assertNever(cfg, 'optimizer');
  }

  for (const o of g.outputs) b.output(o.name, b.value(o.value));
  for (const u of g.updates) b.update(u.target, b.value(u.value));
  for (const [target, v] of updates) b.update(target, v);
  return b.build();
}

/**
 * The pass form, after autodiff: takes the gradients from the `grad:<param>` outputs, adds the
 * updates, and drops those outputs (the step uses the gradients; nobody reads them back).
 */
export const optimizerPass = (cfg: OptimizerConfig): Pass => ({
  name: 'optimizer',
  run: (g) => {
    const grads = new Map(g.outputs.filter((o) => o.name.startsWith(GRAD_PREFIX)).map((o) => [o.name.slice(GRAD_PREFIX.length), o.value]));
    const out = applyOptimizer(g, grads, cfg);
    return { ...out, outputs: out.outputs.filter((o) => !o.name.startsWith(GRAD_PREFIX)) };
  },
});
