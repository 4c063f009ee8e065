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
 * (bias correction computed in IR from the step counter, weight decay decoupled);
 *   RMSprop    d = g + wd p;  v' = α v + (1 - α) d²;  u = d / (sqrt(v') + eps);
 *              b' = mu b + u, p' = p - lr b' (momentum) or p' = p - lr u
 *   Adagrad    d = g + wd p;  s' = s + d²;  p' = p - lr d / (sqrt(s') + eps)
 * The recipe every optimizer accepts, all in the program (no host read, no host state):
 *   accumulate k  each step adds its gradient to `<param>@acc`; `@micro` counts the micro-batches;
 *                 on every k-th step (micro + 1 = k) the update uses g = acc / k and resets acc and
 *                 micro; on the other steps every parameter, moment and `@step` keeps its value
 *                 (the new values are selected with `where`)
 *   clipNorm c    g ← g · c / max(‖g‖, c), ‖g‖ the one norm over every parameter's gradient
 *                 (Optax clip_by_global_norm), applied to the (accumulated) gradient
 *   schedule      lr_t from the update counter `@step` t = 0, 1, … (scheduledLr, docs/model-format.md)
 * A parameter with no gradient in the map is left as it is.
 */
import { GraphBuilder, copyNode, type Operand, type Value } from '../ir/builder.js';
import { fmtType, typeEq, type Shape } from '../ir/dtype.js';
import { AdjointError, assertNever } from '../ir/errors.js';
import type { Graph, ValueId } from '../ir/graph.js';
import type { Init } from '../ir/ops.js';
import type { LrSchedule, OptimizerConfig } from '../ir/model.js';
import type { Pass } from './pipeline.js';

/** The optimizer cannot be built: a bad setting, a gradient of no parameter, a name already taken. */
export class OptimizerError extends AdjointError {
  override name = 'OptimizerError';
}

/**
 * State names contain `@`, which names in the model format cannot (schema.ts NAME_PATTERN); a
 * graph built in TypeScript could still use one, which is reported as a collision.
 */
export const stateName = (param: string, slot: 'm' | 'v' | 'acc') => `${param}@${slot}`;
/** The number of updates done (Adam's bias correction, schedules). */
export const STEP_STATE = '@step';
/** The micro-batch index within an accumulation of k (0 … k-1). */
export const MICRO_STATE = '@micro';
/** The output names under which autodiff gives the gradients. */
export const GRAD_PREFIX = 'grad:';

/** The settings each optimizer accepts, as the model format checks them (schema.ts). */
function checkConfig(cfg: OptimizerConfig): void {
  const want = (field: string, v: number, ok: boolean, what: string) => {
    if (!Number.isFinite(v) || !ok) throw new OptimizerError(`optimizer ${cfg.kind}: ${field} must be ${what}, got ${v}`);
  };
  const unit = (v: number) => v >= 0 && v < 1;
  want('lr', cfg.lr, cfg.lr > 0, 'a number > 0');
  want('weightDecay', cfg.weightDecay, cfg.weightDecay >= 0, 'a number >= 0');
  switch (cfg.kind) {
    case 'sgd':
      want('momentum', cfg.momentum, unit(cfg.momentum), 'in [0, 1)');
      break;
    case 'adam':
      want('beta1', cfg.beta1, unit(cfg.beta1), 'in [0, 1)');
      want('beta2', cfg.beta2, unit(cfg.beta2), 'in [0, 1)');
      want('eps', cfg.eps, cfg.eps > 0, 'a number > 0');
      break;
    case 'rmsprop':
      want('alpha', cfg.alpha, unit(cfg.alpha), 'in [0, 1)');
      want('momentum', cfg.momentum, unit(cfg.momentum), 'in [0, 1)');
      want('eps', cfg.eps, cfg.eps > 0, 'a number > 0');
      break;
    case 'adagrad':
      want('eps', cfg.eps, cfg.eps > 0, 'a number > 0');
      want('initialAccumulator', cfg.initialAccumulator, cfg.initialAccumulator >= 0, 'a number >= 0');
      break;
    default:
      assertNever(cfg, 'optimizer');
  }
  const count = (v: number, min: number) => Number.isInteger(v) && v >= min;
  if (cfg.clipNorm !== undefined) want('clipNorm', cfg.clipNorm, cfg.clipNorm > 0, 'a number > 0');
  if (cfg.accumulate !== undefined) want('accumulate', cfg.accumulate, count(cfg.accumulate, 1), 'an integer >= 1');
  const sch = cfg.schedule;
  if (sch) {
    want('schedule.warmupSteps', sch.warmupSteps, count(sch.warmupSteps, 0), 'an integer >= 0');
    want('schedule.warmupInit', sch.warmupInit, sch.warmupInit >= 0 && sch.warmupInit <= 1, 'in [0, 1]');
    const d = sch.decay;
    if (d?.kind === 'cosine') {
      want('schedule.decay.steps', d.steps, count(d.steps, 1), 'an integer >= 1');
      want('schedule.decay.alpha', d.alpha, d.alpha >= 0 && d.alpha <= 1, 'in [0, 1]');
    } else if (d?.kind === 'step') {
      want('schedule.decay.every', d.every, count(d.every, 1), 'an integer >= 1');
      want('schedule.decay.gamma', d.gamma, d.gamma > 0, 'a number > 0');
    }
  }
}

/**
 * The learning rate of update t (t = 0 for the first; `step` is the update counter), in IR:
 *   warm-up (t < W)   lr·(init + (1 - init)·t/W)
 *   then, s = t - W:  constant  lr
 *                     cosine    lr·((1 - α)·½(1 + cos(π·min(s, D)/D)) + α)
 *                     step      lr·γ^floor(s / every)
 * (Optax's linear_schedule, cosine_decay_schedule and exponential_decay with staircase, joined.)
 */
export function scheduledLr(b: GraphBuilder, lr: number, sch: LrSchedule, step: Value): Operand {
  const W = sch.warmupSteps;
  const s = W > 0 ? b.maximum(b.sub(step, W), 0) : step;
  let after: Operand = lr;
  const d = sch.decay;
  if (d?.kind === 'cosine') {
    const frac = b.div(b.minimum(s, d.steps), d.steps);
    const cosine = b.mul(b.add_(b.cos(b.mul(frac, Math.PI)), 1), 0.5);
    after = b.mul(b.add_(b.mul(cosine, 1 - d.alpha), d.alpha), lr);
  } else if (d?.kind === 'step') {
    // floor(s / every) for s >= 0: truncation by the cast to i32
    const k = b.cast(b.cast(b.div(s, d.every), 'i32'), 'f32');
    after = b.mul(b.pow(b.full(d.gamma), k), lr);
  }
  if (W === 0) return after;
  const warm = b.mul(b.add_(b.mul(b.div(step, W), 1 - sch.warmupInit), sch.warmupInit), lr);
  return b.where(b.lt(step, W), warm, after);
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
  /** Every updated value's current value by name: what it keeps on a step that does not update. */
  const current = new Map<string, Value>();
  const state = (name: string, shape: Shape, init: Init = { kind: 'zeros' }): Value => {
    if (taken.has(name)) throw new OptimizerError(`optimizer ${cfg.kind}: its state "${name}" collides with a source of the same name; rename that source`);
    taken.add(name);
    const v = b.state(name, shape, init);
    current.set(name, v);
    return v;
  };

  for (const [name, gid] of grads) {
    const pid = params.get(name);
    if (pid === undefined) throw new OptimizerError(`optimizer: "${name}" has a gradient but is not a parameter (parameters: ${[...params.keys()].join(', ') || 'none'})`);
    const gt = g.nodes[gid]?.type;
    if (!gt || !typeEq(gt, g.nodes[pid]!.type)) {
      throw new OptimizerError(`optimizer: the gradient of "${name}" is ${gt ? fmtType(gt) : `no value (${gid})`}, but the parameter is ${fmtType(g.nodes[pid]!.type)}`);
    }
    if (g.updates.some((u) => u.target === name)) throw new OptimizerError(`optimizer: parameter "${name}" already has an update in the graph`);
  }

  /** Updates of the accumulation's own state: made on every step. */
  const always: [string, Value][] = [];
  /** Updates of params, moments and `@step`: made only on steps that update (all, without accumulation). */
  const updates: [string, Value][] = [];
  const param = (name: string): Value => {
    const p = b.value(params.get(name)!);
    current.set(name, p);
    return p;
  };
  let grad = new Map([...grads].map(([name, gid]) => [name, b.value(gid)]));
  let apply: Value | undefined;
  const k = cfg.accumulate ?? 1;
  if (grads.size > 0 && k > 1) {
    // micro' = micro + 1;  apply = micro' >= k;  acc' = acc + g;  g = acc' / k
    const micro = state(MICRO_STATE, []);
    const next = b.add_(micro, 1);
    apply = b.ge(next, k);
    always.push([MICRO_STATE, b.where(apply, 0, next)]);
    grad = new Map([...grad].map(([name, gv]) => {
      const sum = b.add_(state(stateName(name, 'acc'), gv.type.shape), gv);
      always.push([stateName(name, 'acc'), b.where(apply!, 0, sum)]);
      return [name, b.mul(sum, 1 / k)];
    }));
  }
  if (grads.size > 0 && cfg.clipNorm !== undefined) {
    // ‖g‖ = sqrt(Σ over every parameter of Σ g²);  g ← g · c / max(‖g‖, c)
    let sq: Value | undefined;
    for (const gv of grad.values()) {
      const s = b.reduceSum(b.square(gv));
      sq = sq ? b.add_(sq, s) : s;
    }
    const scale = b.div(cfg.clipNorm, b.maximum(b.sqrt(sq!), cfg.clipNorm));
    grad = new Map([...grad].map(([name, gv]) => [name, b.mul(gv, scale)]));
  }
  // The update counter t (the updates done before this one) and its successor, when something needs it.
  let step: Value | undefined;
  let t1: Value | undefined;
  if (grads.size > 0 && (cfg.kind === 'adam' || cfg.schedule !== undefined)) {
    step = state(STEP_STATE, []);
    t1 = b.add_(step, 1);
    updates.push([STEP_STATE, t1]);
  }
  const lr: Operand = cfg.schedule && step ? scheduledLr(b, cfg.lr, cfg.schedule, step) : cfg.lr;
  const lrTimes = (x: number): Operand => (typeof lr === 'number' ? lr * x : b.mul(lr, x));
  /** g + wd p (L2 weight decay added to the gradient) */
  const decayed = (gv: Value, p: Value, wd: number) => (wd ? b.add_(gv, b.mul(wd, p)) : gv);

  switch (cfg.kind) {
    case 'sgd':
      for (const [name, gv] of grad) {
        const p = param(name);
        // g + wd p
        let d = decayed(gv, p, cfg.weightDecay);
        if (cfg.momentum) {
          // m' = mu m + (g + wd p)
          const m = state(stateName(name, 'm'), p.type.shape);
          d = b.add_(b.mul(cfg.momentum, m), d);
          updates.push([stateName(name, 'm'), d]);
        }
        // p' = p - lr d
        updates.push([name, b.sub(p, b.mul(lr, d))]);
      }
      break;
    case 'adam': {
      if (grads.size === 0) break;
      // t = step + 1;  c1 = 1 - b1^t;  c2 = 1 - b2^t (shared by every parameter)
      const c1 = b.sub(1, b.pow(b.full(cfg.beta1), t1!));
      const c2 = b.sub(1, b.pow(b.full(cfg.beta2), t1!));
      for (const [name, gv] of grad) {
        const p = param(name);
        const m = state(stateName(name, 'm'), p.type.shape);
        const v = state(stateName(name, 'v'), p.type.shape);
        // m' = b1 m + (1 - b1) g;  v' = b2 v + (1 - b2) g²
        const m2 = b.add_(b.mul(cfg.beta1, m), b.mul(1 - cfg.beta1, gv));
        const v2 = b.add_(b.mul(cfg.beta2, v), b.mul(1 - cfg.beta2, b.mul(gv, gv)));
        // m̂ = m' / c1;  v̂ = v' / c2
        const mhat = b.div(m2, c1);
        const vhat = b.div(v2, c2);
        // p' = p - lr wd p - lr m̂ / (sqrt(v̂) + eps)
        const shrunk = cfg.weightDecay ? b.sub(p, b.mul(lrTimes(cfg.weightDecay), p)) : p;
        const p2 = b.sub(shrunk, b.mul(lr, b.div(mhat, b.add_(b.sqrt(vhat), cfg.eps))));
        updates.push([stateName(name, 'm'), m2], [stateName(name, 'v'), v2], [name, p2]);
      }
      break;
    }
    case 'rmsprop':
      for (const [name, gv] of grad) {
        const p = param(name);
        const d = decayed(gv, p, cfg.weightDecay);
        // v' = α v + (1 - α) d²;  u = d / (sqrt(v') + eps)
        const v = state(stateName(name, 'v'), p.type.shape);
        const v2 = b.add_(b.mul(cfg.alpha, v), b.mul(1 - cfg.alpha, b.mul(d, d)));
        updates.push([stateName(name, 'v'), v2]);
        let u = b.div(d, b.add_(b.sqrt(v2), cfg.eps));
        if (cfg.momentum) {
          // b' = mu b + u
          const m = state(stateName(name, 'm'), p.type.shape);
          u = b.add_(b.mul(cfg.momentum, m), u);
          updates.push([stateName(name, 'm'), u]);
        }
        // p' = p - lr u
        updates.push([name, b.sub(p, b.mul(lr, u))]);
      }
      break;
    case 'adagrad':
      for (const [name, gv] of grad) {
        const p = param(name);
        const d = decayed(gv, p, cfg.weightDecay);
        // s' = s + d²;  p' = p - lr d / (sqrt(s') + eps)
        const init: Init = cfg.initialAccumulator ? { kind: 'constant', value: cfg.initialAccumulator } : { kind: 'zeros' };
        const s2 = b.add_(state(stateName(name, 'v'), p.type.shape, init), b.mul(d, d));
        updates.push([stateName(name, 'v'), s2], [name, b.sub(p, b.mul(lr, b.div(d, b.add_(b.sqrt(s2), cfg.eps))))]);
      }
      break;
    default:
      assertNever(cfg, 'optimizer');
  }

  for (const o of g.outputs) b.output(o.name, b.value(o.value));
  for (const u of g.updates) b.update(u.target, b.value(u.value));
  for (const [target, v] of always) b.update(target, v);
  // Under accumulation a step that does not update keeps every parameter, moment and counter.
  for (const [target, v] of updates) b.update(target, apply ? b.where(apply, v, current.get(target)!) : v);
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
