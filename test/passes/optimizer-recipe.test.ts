/**
 * @file The optimizer recipe of issue 16 in the interpreter (float64), each against a reference
 * computed by hand: learning-rate schedules (warm-up, cosine, step decay, joined) read off an SGD
 * step on a unit gradient, whose parameter moves by exactly lr_t; clipping by global norm on a
 * gradient of known norm; accumulation over k micro-batches (nothing moves between updates, Adam's
 * moments and step counter included, and k micro-batches of n give the update of one batch of k·n);
 * the whole recipe over several steps against a TypeScript implementation of the formulas; the
 * model format's spelling and its errors.
 */
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../src/ir/builder.js';
import type { Graph } from '../../src/ir/graph.js';
import { evaluate } from '../../src/ir/interp.js';
import type { LrSchedule, Model, OptimizerConfig } from '../../src/ir/model.js';
import { loadModel } from '../../src/ir/schema.js';
import { tensor, zeros, type Tensor } from '../../src/ir/tensor.js';
import { verify } from '../../src/ir/verify.js';
import { applyOptimizer, OptimizerError } from '../../src/passes/optimizer.js';
import { trainingGraph } from '../../src/compile.js';

type Vec = number[];
const f64 = (shape: readonly number[], data: readonly number[]) => tensor(shape, data, 'f32', 'f64');

function initState(g: Graph, env: Map<string, Tensor>): Map<string, Tensor> {
  for (const n of g.nodes) {
    if (n.op !== 'state') continue;
    const t = zeros(n.type, 'f64');
    if (n.attrs.init.kind === 'constant') t.data.fill(n.attrs.init.value);
    env.set(n.attrs.name, t);
  }
  return env;
}

/** One step: evaluates `g` in float64 and feeds every update back into `env`. */
function step(g: Graph, env: Map<string, Tensor>): void {
  for (const [name, t] of evaluate(g, env, 'f64').updates) env.set(name, t);
}

const value = (env: ReadonlyMap<string, Tensor>, name: string): Vec => Array.from(env.get(name)!.data);

function expectClose(got: Vec, want: Vec, what: string, tol = 1e-12): void {
  expect(got.length, what).toBe(want.length);
  got.forEach((x, i) => expect(Math.abs(x - want[i]!), `${what}[${i}]: ${x} vs ${want[i]}`).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(want[i]!))));
}

/** A parameter w [n] whose gradient is the input `g` [n]. */
function withInputGradient(cfg: OptimizerConfig, n = 1): Graph {
  const b = new GraphBuilder();
  const w = b.param('w', [n], { kind: 'zeros' });
  const gw = b.input('g', [n]);
  void w;
  const out = applyOptimizer(b.build(), new Map([['w', gw.id]]), cfg);
  verify(out, 'optimizer');
  return out;
}

const sgd = (lr: number, extra: Partial<OptimizerConfig> = {}): OptimizerConfig => ({ kind: 'sgd', lr, momentum: 0, weightDecay: 0, ...extra }) as OptimizerConfig;

// ---- schedules -----------------------------------------------------------------------------------

describe('learning-rate schedules, computed in the program from @step', () => {
  /** lr_t for t = 0 … n-1, read as the move of w under SGD with gradient 1. */
  function lrs(schedule: LrSchedule, lr: number, n: number): Vec {
    const g = withInputGradient(sgd(lr, { schedule }));
    const env = initState(g, new Map([['w', f64([1], [0])], ['g', f64([1], [1])]]));
    const out: number[] = [];
    for (let t = 0; t < n; t++) {
      const before = env.get('w')!.data[0]!;
      step(g, env);
      out.push(before - env.get('w')!.data[0]!);
    }
    expect(value(env, '@step')).toEqual([n]);
    return out;
  }
  const c = Math.SQRT1_2; // cos(π/4)

  it('linear warm-up from 0 over 4 updates: 0, lr/4, lr/2, 3lr/4, then lr', () => {
    expectClose(lrs({ warmupSteps: 4, warmupInit: 0 }, 2, 6), [0, 0.5, 1, 1.5, 2, 2], 'lr');
  });

  it('cosine decay over 4 updates to 0 after a 2-update warm-up', () => {
    // t = 0, 1: warm-up 0, lr/2; then s = t - 2: lr (1 + cos(π s/4)) / 2, held at 0 after s = 4
    expectClose(lrs({ warmupSteps: 2, warmupInit: 0, decay: { kind: 'cosine', steps: 4, alpha: 0 } }, 1, 8), [0, 0.5, 1, (1 + c) / 2, 0.5, (1 - c) / 2, 0, 0], 'lr');
  });

  it('cosine decay with a floor alpha = 0.1: lr ((1 - α)(1 + cos(π s/D))/2 + α)', () => {
    expectClose(lrs({ warmupSteps: 0, warmupInit: 0, decay: { kind: 'cosine', steps: 2, alpha: 0.1 } }, 0.5, 4), [0.5, 0.5 * 0.55, 0.05, 0.05], 'lr');
  });

  it('step decay: lr γ^floor(s / every)', () => {
    expectClose(lrs({ warmupSteps: 0, warmupInit: 0, decay: { kind: 'step', every: 2, gamma: 0.5 } }, 1, 6), [1, 1, 0.5, 0.5, 0.25, 0.25], 'lr');
  });

  it('warm-up from 0.4 lr over 3 updates, then step decay every 3 by 0.1', () => {
    expectClose(lrs({ warmupSteps: 3, warmupInit: 0.4, decay: { kind: 'step', every: 3, gamma: 0.1 } }, 1, 8), [0.4, 0.6, 0.8, 1, 1, 1, 0.1, 0.1], 'lr');
  });
});

// ---- clipping ------------------------------------------------------------------------------------

describe('gradient clipping by global norm', () => {
  /** w [2] and u [1] with gradients (3, 4) and 12: one norm over both, 13. */
  function clipped(clipNorm: number): [Vec, Vec] {
    const b = new GraphBuilder();
    b.param('w', [2], { kind: 'zeros' });
    b.param('u', [1], { kind: 'zeros' });
    const gw = b.input('gw', [2]);
    const gu = b.input('gu', [1]);
    const g = applyOptimizer(b.build(), new Map([['w', gw.id], ['u', gu.id]]), sgd(1, { clipNorm }));
    verify(g, 'optimizer');
    const env = new Map([['w', f64([2], [0, 0])], ['u', f64([1], [0])], ['gw', f64([2], [3, 4])], ['gu', f64([1], [12])]]);
    step(g, env);
    return [value(env, 'w'), value(env, 'u')];
  }

  it('a norm of 13 clipped to 6.5 halves every gradient', () => {
    const [w, u] = clipped(6.5);
    expectClose(w, [-1.5, -2], 'w');
    expectClose(u, [-6], 'u');
  });

  it('a norm below the threshold leaves the gradients as they are', () => {
    const [w, u] = clipped(13.5);
    expectClose(w, [-3, -4], 'w');
    expectClose(u, [-12], 'u');
  });
});

// ---- accumulation --------------------------------------------------------------------------------

describe('gradient accumulation over k micro-batches', () => {
  it('SGD, k = 3: the parameter moves on every third step by lr times the mean gradient', () => {
    const g = withInputGradient(sgd(0.5, { accumulate: 3 }));
    const env = initState(g, new Map([['w', f64([1], [10])]]));
    const seen: [Vec, Vec, Vec][] = [];
    for (const gv of [1, 2, 6, 3, 3, 3]) {
      env.set('g', f64([1], [gv]));
      step(g, env);
      seen.push([value(env, 'w'), value(env, 'w@acc'), value(env, '@micro')]);
    }
    // mean(1, 2, 6) = 3: w = 10 - 0.5·3; mean(3, 3, 3) = 3: w = 8.5 - 1.5
    expect(seen).toEqual([
      [[10], [1], [1]], [[10], [3], [2]], [[8.5], [0], [0]],
      [[8.5], [3], [1]], [[8.5], [6], [2]], [[7], [0], [0]],
    ]);
  });

  it('Adam, k = 2: the moments and @step stay as they are on the step that does not update', () => {
    const cfg: OptimizerConfig = { kind: 'adam', lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, accumulate: 2 };
    const g = withInputGradient(cfg, 2);
    const env = initState(g, new Map([['w', f64([2], [1, -1])]]));
    env.set('g', f64([2], [0.2, -0.6]));
    step(g, env);
    for (const [name, want] of [['w', [1, -1]], ['w@m', [0, 0]], ['w@v', [0, 0]], ['@step', [0]]] as const) expect(value(env, name), name).toEqual(want);
    env.set('g', f64([2], [0.4, 0.2]));
    step(g, env);
    // One Adam step (t = 1) with the mean gradient (0.3, -0.2): m = 0.1 g, v = 0.001 g², m̂ = g, v̂ = g²,
    // so w moves by lr·g/(|g| + eps) = ±0.1 (up to eps).
    const gm = [0.3, -0.2];
    expectClose(value(env, 'w@m'), gm.map((x) => 0.1 * x), 'm');
    expectClose(value(env, 'w@v'), gm.map((x) => 0.001 * x * x), 'v');
    expectClose(value(env, 'w'), [1, -1].map((p, i) => p - (0.1 * gm[i]!) / (Math.abs(gm[i]!) + 1e-8)), 'w');
    expect(value(env, '@step')).toEqual([1]);
    expect(value(env, '@micro')).toEqual([0]);
  });

  it('k micro-batches of n give the update of one batch of k·n (linear regression, mean loss)', () => {
    const [N, D] = [6, 3];
    const X = Array.from({ length: N * D }, (_, i) => Math.sin(i * 1.7));
    const T = Array.from({ length: N }, (_, i) => Math.cos(i * 0.9));
    const regression = (n: number, optimizer: OptimizerConfig): Model => {
      const b = new GraphBuilder();
      const pred = b.linear(b.input('x', [n, D]), b.param('w', [D, 1]), b.param('bias', [1]));
      b.output('loss', b.mse(pred, b.input('t', [n, 1])));
      return { name: 'r', graph: b.build(), loss: 'loss', optimizer };
    };
    const base: OptimizerConfig = { kind: 'adam', lr: 0.05, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0, clipNorm: 0.5 };
    for (const k of [2, 3]) {
      const n = N / k;
      const whole = trainingGraph(regression(N, base)).graph;
      const micro = trainingGraph(regression(n, { ...base, accumulate: k })).graph;
      const start = () => new Map([['w', f64([D, 1], [0.1, -0.2, 0.3])], ['bias', f64([1], [0.05])]]);
      const e1 = initState(whole, start());
      const e2 = initState(micro, start());
      for (let update = 0; update < 3; update++) {
        e1.set('x', f64([N, D], X)).set('t', f64([N, 1], T));
        step(whole, e1);
        for (let j = 0; j < k; j++) {
          e2.set('x', f64([n, D], X.slice(j * n * D, (j + 1) * n * D))).set('t', f64([n, 1], T.slice(j * n, (j + 1) * n)));
          step(micro, e2);
        }
        for (const name of ['w', 'bias', 'w@m', 'w@v', '@step']) expectClose(value(e2, name), value(e1, name), `k=${k} update ${update + 1} ${name}`, 1e-12);
      }
    }
  });
});

// ---- the whole recipe against the formulas ------------------------------------------------------

describe('the recipe over several steps against a TypeScript implementation of the formulas', () => {
  // f = sum(c w² + sin w): df/dw = 2 c w + cos w.
  const C = [0.5, -1, 2];
  const W0 = [0.3, -0.7, 1.1];
  const gradOf = (w: Vec) => w.map((x, i) => 2 * C[i]! * x + Math.cos(x));

  function referenceLr(lr: number, s: LrSchedule, t: number): number {
    if (t < s.warmupSteps) return lr * (s.warmupInit + ((1 - s.warmupInit) * t) / s.warmupSteps);
    const u = t - s.warmupSteps;
    const d = s.decay;
    if (d?.kind === 'cosine') return lr * ((1 - d.alpha) * 0.5 * (1 + Math.cos((Math.PI * Math.min(u, d.steps)) / d.steps)) + d.alpha);
    if (d?.kind === 'step') return lr * d.gamma ** Math.floor(u / d.every);
    return lr;
  }

  it('Adam with warm-up, cosine decay, clipping and accumulation over 2: 12 steps', () => {
    const schedule: LrSchedule = { warmupSteps: 2, warmupInit: 0.25, decay: { kind: 'cosine', steps: 3, alpha: 0.1 } };
    const cfg: OptimizerConfig = { kind: 'adam', lr: 0.1, beta1: 0.8, beta2: 0.9, eps: 1e-6, weightDecay: 0.01, schedule, clipNorm: 1.5, accumulate: 2 };
    const b = new GraphBuilder();
    const c = b.input('c', [3]);
    const w = b.param('w', [3]);
    const gw = b.add_(b.mul(b.mul(c, 2), w), b.cos(w));
    const g = applyOptimizer(b.build(), new Map([['w', gw.id]]), cfg);
    verify(g, 'optimizer');
    const env = initState(g, new Map([['c', f64([3], C)], ['w', f64([3], W0)]]));
    // The reference: accumulate, clip the mean, AdamW with lr_t.
    const p = [...W0];
    let acc = [0, 0, 0];
    let micro = 0;
    let t = 0;
    const m = [0, 0, 0];
    const v = [0, 0, 0];
    for (let s = 0; s < 12; s++) {
      step(g, env);
      acc = acc.map((a, i) => a + gradOf(p)[i]!);
      if (++micro === 2) {
        let gm = acc.map((a) => a / 2);
        const norm = Math.hypot(...gm);
        gm = gm.map((x) => (x * 1.5) / Math.max(norm, 1.5));
        const lr = referenceLr(cfg.lr, schedule, t);
        t++;
        for (let i = 0; i < 3; i++) {
          p[i] = p[i]! * (1 - lr * cfg.weightDecay);
          m[i] = 0.8 * m[i]! + 0.2 * gm[i]!;
          v[i] = 0.9 * v[i]! + 0.1 * gm[i]! * gm[i]!;
          p[i] = p[i]! - (lr * (m[i]! / (1 - 0.8 ** t))) / (Math.sqrt(v[i]! / (1 - 0.9 ** t)) + 1e-6);
        }
        acc = [0, 0, 0];
        micro = 0;
      }
      expectClose(value(env, 'w'), p, `step ${s + 1} w`);
    }
    expect(value(env, '@step')).toEqual([6]);
    expect(Math.abs(p[0]! - W0[0]!)).toBeGreaterThan(1e-2);
  });
});

// ---- the model format ----------------------------------------------------------------------------

describe('the recipe in the model format', () => {
  const model = (optimizer: unknown) => JSON.stringify({
    version: 1,
    inputs: [{ name: 'x', shape: [2] }],
    params: [{ name: 'w', shape: [2] }],
    nodes: [{ name: 'l', op: 'reduce_sum', inputs: ['y'] }, { name: 'y', op: 'mul', inputs: ['x', 'w'] }],
    outputs: { loss: 'l' },
    loss: 'loss',
    optimizer,
  });

  it('reads every kind with its defaults and the recipe', () => {
    const m = loadModel(model({ kind: 'rmsprop', lr: 0.01, clipNorm: 1, accumulate: 4, schedule: { warmupSteps: 100, decay: { kind: 'cosine', steps: 1000 } } }));
    expect(m.optimizer).toEqual({
      kind: 'rmsprop', lr: 0.01, alpha: 0.99, eps: 1e-8, momentum: 0, weightDecay: 0, clipNorm: 1, accumulate: 4,
      schedule: { warmupSteps: 100, warmupInit: 0, decay: { kind: 'cosine', steps: 1000, alpha: 0 } },
    });
    expect(loadModel(model({ kind: 'adagrad', lr: 0.1 })).optimizer).toEqual({ kind: 'adagrad', lr: 0.1, eps: 1e-10, initialAccumulator: 0, weightDecay: 0 });
    expect(loadModel(model({ kind: 'sgd', lr: 0.1, schedule: { decay: { kind: 'step', every: 10 } } })).optimizer).toMatchObject({ schedule: { decay: { kind: 'step', every: 10, gamma: 0.1 } } });
    expect(trainingGraph(loadModel(model({ kind: 'adagrad', lr: 0.1, accumulate: 2, clipNorm: 1 })), { verify: true }).graph.updates.map((u) => u.target)).toEqual(['@micro', 'w@acc', 'w@v', 'w']);
  });

  it('a bad recipe is one line naming the field', () => {
    expect(() => loadModel(model({ kind: 'sgd', lr: 0.1, accumulate: 0 }), 'm.json')).toThrow(/^m\.json: optimizer\.accumulate: must be >= 1, got 0$/);
    expect(() => loadModel(model({ kind: 'sgd', lr: 0.1, clipNorm: -1 }), 'm.json')).toThrow(/^m\.json: optimizer\.clipNorm: must be > 0, got -1$/);
    expect(() => loadModel(model({ kind: 'adam', lr: 0.1, schedule: { decay: { kind: 'linear' } } }), 'm.json')).toThrow(/optimizer\.schedule\.decay\.kind: must be one of "cosine", "step", got "linear"/);
    expect(() => loadModel(model({ kind: 'adam', lr: 0.1, schedule: { warmupInit: 2 } }), 'm.json')).toThrow(/optimizer\.schedule\.warmupInit: must be >= 0 and <= 1, got 2/);
    expect(() => applyOptimizer(withInputGradient(sgd(1)), new Map(), sgd(1, { accumulate: 1.5 }))).toThrow(OptimizerError);
    expect(() => applyOptimizer(withInputGradient(sgd(1)), new Map(), sgd(1, { schedule: { warmupSteps: 0, warmupInit: 0, decay: { kind: 'cosine', steps: 0, alpha: 0 } } }))).toThrow(/schedule\.decay\.steps must be an integer >= 1, got 0/);
  });
});
