/**
 * @file Optimizers in IR: the printed IR of an SGD update (golden); parameter trajectories of every
 * optimizer over several steps, run in the interpreter in float64, against a plain TypeScript
 * implementation of the PyTorch formulas written here independently (SGD, weight decay, momentum
 * with PyTorch's first-step buffer, Adam, AdamW with decoupled decay); the same for the whole
 * training pipeline on a linear regression whose gradient is known in closed form; and the
 * errors a user can cause.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../src/ir/builder.js';
import { AdjointError } from '../../src/ir/errors.js';
import type { Graph } from '../../src/ir/graph.js';
import { evaluate } from '../../src/ir/interp.js';
import type { Model, OptimizerConfig } from '../../src/ir/model.js';
import { printGraph } from '../../src/ir/printer.js';
import { loadModel } from '../../src/ir/schema.js';
import { tensor, zeros, type Tensor } from '../../src/ir/tensor.js';
import { verify } from '../../src/ir/verify.js';
import { applyOptimizer, OptimizerError } from '../../src/passes/optimizer.js';
import { trainingGraph, TrainingError } from '../../src/compile.js';

// ---- the reference: PyTorch's formulas on plain arrays ----------------------------------------

type Vec = number[];
interface RefState { step: number; readonly m: Map<string, Vec>; readonly v: Map<string, Vec> }

/** One optimizer step on `params` (in place) given their gradients, as torch.optim.SGD / Adam / AdamW do it. */
function referenceStep(cfg: OptimizerConfig, params: Map<string, Vec>, grads: ReadonlyMap<string, Vec>, st: RefState): void {
  st.step += 1;
  for (const [name, p] of params) {
    const g = grads.get(name)!;
    if (cfg.kind === 'sgd') {
      // torch.optim.SGD: d = g + wd p; buf = d on the first step, else mu buf + d; p -= lr d
      let d = g.map((gi, i) => gi + cfg.weightDecay * p[i]!);
      if (cfg.momentum !== 0) {
        const prev = st.m.get(name);
        const buf = prev === undefined ? d : prev.map((bi, i) => cfg.momentum * bi + d[i]!);
        st.m.set(name, buf);
        d = buf;
      }
      for (let i = 0; i < p.length; i++) p[i] = p[i]! - cfg.lr * d[i]!;
    } else if (cfg.kind === 'adam') {
      // torch.optim.AdamW: p *= 1 - lr wd; m, v moving averages; bias-corrected step
      const m = st.m.get(name) ?? g.map(() => 0);
      const v = st.v.get(name) ?? g.map(() => 0);
      for (let i = 0; i < p.length; i++) {
        p[i] = p[i]! * (1 - cfg.lr * cfg.weightDecay);
        m[i] = cfg.beta1 * m[i]! + (1 - cfg.beta1) * g[i]!;
        v[i] = cfg.beta2 * v[i]! + (1 - cfg.beta2) * g[i]! * g[i]!;
        const mhat = m[i]! / (1 - cfg.beta1 ** st.step);
        const vhat = v[i]! / (1 - cfg.beta2 ** st.step);
        p[i] = p[i]! - (cfg.lr * mhat) / (Math.sqrt(vhat) + cfg.eps);
      }
      st.m.set(name, m);
      st.v.set(name, v);
    } else if (cfg.kind === 'rmsprop') {
      // torch.optim.RMSprop (centered=False): grad += wd p; square_avg = alpha sa + (1 - alpha) grad²;
      // avg = sqrt(sa) + eps; buf = momentum buf + grad / avg, p -= lr buf (or p -= lr grad / avg)
      const d = g.map((gi, i) => gi + cfg.weightDecay * p[i]!);
      const sa = (st.v.get(name) ?? g.map(() => 0)).map((x, i) => cfg.alpha * x + (1 - cfg.alpha) * d[i]! * d[i]!);
      st.v.set(name, sa);
      let u = d.map((di, i) => di / (Math.sqrt(sa[i]!) + cfg.eps));
      if (cfg.momentum > 0) {
        u = (st.m.get(name) ?? g.map(() => 0)).map((bi, i) => cfg.momentum * bi + u[i]!);
        st.m.set(name, u);
      }
      for (let i = 0; i < p.length; i++) p[i] = p[i]! - cfg.lr * u[i]!;
    } else {
      // torch.optim.Adagrad (lr_decay 0): grad += wd p; state_sum += grad²; p -= lr grad / (sqrt(state_sum) + eps)
      const d = g.map((gi, i) => gi + cfg.weightDecay * p[i]!);
      const sum = (st.v.get(name) ?? g.map(() => cfg.initialAccumulator)).map((x, i) => x + d[i]! * d[i]!);
      st.v.set(name, sum);
      for (let i = 0; i < p.length; i++) p[i] = p[i]! - (cfg.lr * d[i]!) / (Math.sqrt(sum[i]!) + cfg.eps);
    }
  }
}

const CONFIGS: readonly (readonly [string, OptimizerConfig])[] = [
  ['SGD', { kind: 'sgd', lr: 0.1, momentum: 0, weightDecay: 0 }],
  ['SGD with weight decay', { kind: 'sgd', lr: 0.1, momentum: 0, weightDecay: 0.05 }],
  ['SGD with momentum and weight decay', { kind: 'sgd', lr: 0.05, momentum: 0.9, weightDecay: 0.01 }],
  ['Adam', { kind: 'adam', lr: 0.05, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 }],
  ['AdamW', { kind: 'adam', lr: 0.02, beta1: 0.8, beta2: 0.99, eps: 1e-3, weightDecay: 0.1 }],
  ['RMSprop', { kind: 'rmsprop', lr: 0.01, alpha: 0.99, eps: 1e-8, momentum: 0, weightDecay: 0 }],
  ['RMSprop with momentum and weight decay', { kind: 'rmsprop', lr: 0.005, alpha: 0.9, eps: 1e-6, momentum: 0.8, weightDecay: 0.02 }],
  ['Adagrad', { kind: 'adagrad', lr: 0.1, eps: 1e-10, initialAccumulator: 0, weightDecay: 0 }],
  ['Adagrad with an initial accumulator and weight decay', { kind: 'adagrad', lr: 0.2, eps: 1e-6, initialAccumulator: 0.1, weightDecay: 0.03 }],
];

// ---- running a program for several steps ------------------------------------------------------

const f64 = (shape: readonly number[], data: readonly number[]) => tensor(shape, data, 'f32', 'f64');

/** The environment of the first step: the given inputs and params; every state at its init (zeros or a constant). */
function firstEnv(g: Graph, given: ReadonlyMap<string, Tensor>): Map<string, Tensor> {
  const env = new Map(given);
  for (const n of g.nodes) {
    if (n.op !== 'state') continue;
    const t = zeros(n.type, 'f64');
    if (n.attrs.init.kind === 'constant') t.data.fill(n.attrs.init.value);
    env.set(n.attrs.name, t);
  }
  return env;
}

/** Runs `steps` steps, feeding every update back; returns the params' values after each step. */
function trajectory(g: Graph, env: Map<string, Tensor>, steps: number, params: readonly string[]): Map<string, Vec>[] {
  const out: Map<string, Vec>[] = [];
  for (let s = 0; s < steps; s++) {
    const r = evaluate(g, env, 'f64');
    for (const [name, t] of r.updates) env.set(name, t);
    out.push(new Map(params.map((p) => [p, Array.from(env.get(p)!.data)])));
  }
  return out;
}

function expectClose(got: Vec, want: Vec, what: string, tol = 1e-12): void {
  expect(got.length, what).toBe(want.length);
  got.forEach((x, i) => expect(Math.abs(x - want[i]!), `${what}[${i}]: ${x} vs ${want[i]}`).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(want[i]!))));
}

// ---- goldens -----------------------------------------------------------------------------------

describe('optimizer IR', () => {
  /** A parameter and its gradient, given as an input. */
  const withGradient = (): [Graph, Map<string, number>] => {
    const b = new GraphBuilder();
    b.param('w', [2], { kind: 'zeros' });
    const gw = b.input('gw', [2]);
    return [b.build(), new Map([['w', gw.id]])];
  };

  it('SGD: p - lr g', () => {
    const [g, grads] = withGradient();
    const out = applyOptimizer(g, grads, { kind: 'sgd', lr: 0.5, momentum: 0, weightDecay: 0 });
    verify(out, 'optimizer');
    expect('\n' + printGraph(out)).toBe(`
a:f32[2] = param[name="w",init=zeros]
b:f32[2] = input[name="gw"]
c:f32[] = full[value=0.5]
d:f32[2] = mul c b
e:f32[2] = sub a d
update "w" <- e
`);
  });

  it('SGD with momentum and weight decay: m\' = mu m + (g + wd p); p - lr m\'', () => {
    const [g, grads] = withGradient();
    const out = applyOptimizer(g, grads, { kind: 'sgd', lr: 0.5, momentum: 0.9, weightDecay: 0.25 });
    verify(out, 'optimizer');
    expect('\n' + printGraph(out)).toBe(`
a:f32[2] = param[name="w",init=zeros]
b:f32[2] = input[name="gw"]
c:f32[] = full[value=0.25]
d:f32[2] = mul c a
e:f32[2] = add b d
f:f32[2] = state[name="w@m",init=zeros]
g:f32[] = full[value=0.9]
h:f32[2] = mul g f
i:f32[2] = add h e
j:f32[] = full[value=0.5]
k:f32[2] = mul j i
l:f32[2] = sub a k
update "w@m" <- i
update "w" <- l
`);
  });

  it('Adam: one shared step counter, two moments per parameter, all state on the device', () => {
    const b = new GraphBuilder();
    const [w, u] = [b.param('w', [2]), b.param('u', [3, 2])];
    const out = applyOptimizer(b.build(), new Map([['w', w.id], ['u', u.id]]), { kind: 'adam', lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 });
    verify(out, 'optimizer');
    const states = out.nodes.flatMap((n) => (n.op === 'state' ? [`${n.attrs.name}:${n.type.shape.join('x') || 'scalar'}:${n.attrs.init.kind}`] : []));
    expect(states).toEqual(['@step:scalar:zeros', 'w@m:2:zeros', 'w@v:2:zeros', 'u@m:3x2:zeros', 'u@v:3x2:zeros']);
    expect(out.updates.map((x) => x.target)).toEqual(['@step', 'w@m', 'w@v', 'w', 'u@m', 'u@v', 'u']);
  });

  it('a parameter without a gradient is not updated', () => {
    const b = new GraphBuilder();
    const w = b.param('w', [2]);
    b.param('frozen', [2]);
    const out = applyOptimizer(b.build(), new Map([['w', w.id]]), { kind: 'sgd', lr: 0.1, momentum: 0.5, weightDecay: 0 });
    expect(out.updates.map((x) => x.target)).toEqual(['w@m', 'w']);
  });
});

// ---- trajectories ------------------------------------------------------------------------------

describe('optimizer trajectories against the PyTorch formulas (6 steps, float64)', () => {
  // Gradients written in IR by hand: f = sum(c w² + sin w) + sum(u⁴ / 4), so
  // df/dw = 2 c w + cos w and df/du = u³.
  const C = [0.5, -1, 2];
  const W0 = [0.3, -0.7, 1.1];
  const U0 = [0.9, -0.4, 0.2, -1.3];
  const gradsOf = (p: ReadonlyMap<string, Vec>) =>
    new Map([
      ['w', p.get('w')!.map((w, i) => 2 * C[i]! * w + Math.cos(w))],
      ['u', p.get('u')!.map((u) => u * u * u)],
    ]);

  function program(cfg: OptimizerConfig): Graph {
    const b = new GraphBuilder();
    const c = b.input('c', [3]);
    const w = b.param('w', [3]);
    const u = b.param('u', [2, 2]);
    const gw = b.add_(b.mul(b.mul(c, 2), w), b.cos(w));
    const gu = b.mul(b.mul(u, u), u);
    return applyOptimizer(b.build(), new Map([['w', gw.id], ['u', gu.id]]), cfg);
  }

  it.each(CONFIGS)('%s', (_, cfg) => {
    const g = program(cfg);
    verify(g, 'optimizer');
    const env = firstEnv(g, new Map([['c', f64([3], C)], ['w', f64([3], W0)], ['u', f64([2, 2], U0)]]));
    const got = trajectory(g, env, 6, ['w', 'u']);
    const ref = new Map([['w', [...W0]], ['u', [...U0]]]);
    const st: RefState = { step: 0, m: new Map(), v: new Map() };
    got.forEach((params, s) => {
      referenceStep(cfg, ref, gradsOf(ref), st);
      for (const name of ['w', 'u']) expectClose(params.get(name)!, ref.get(name)!, `step ${s + 1} ${name}`);
    });
    // The parameters moved, so the comparison compared something.
    expect(Math.abs(got[5]!.get('w')![0]! - W0[0]!)).toBeGreaterThan(1e-3);
    if (cfg.kind === 'adam') expect(Array.from(env.get('@step')!.data)).toEqual([6]);
  });
});

// ---- the training pipeline ---------------------------------------------------------------------

describe('trainingGraph', () => {
  // Linear regression, loss = mean((x w + bias - t)²) over N·K elements, so with r = x w + bias - t:
  // dL/dw = x^T (2 r / (N K)), dL/dbias = column sums of 2 r / (N K).
  const [N, D, K] = [4, 3, 2];
  const X = [0.5, -1, 0.25, 1, 0.75, -0.5, -0.25, 0.5, 1, 2, -1.5, 0.125];
  const T = [1, -1, 0.5, 2, -0.75, 0.25, 1.5, -2];
  const W0 = [0.1, -0.2, 0.3, 0.05, -0.15, 0.25];
  const B0 = [0.01, -0.02];

  function regression(optimizer: OptimizerConfig): Model {
    const b = new GraphBuilder();
    const x = b.input('x', [N, D]);
    const t = b.input('t', [N, K]);
    const pred = b.linear(x, b.param('w', [D, K]), b.param('bias', [K]));
    b.output('loss', b.mse(pred, t));
    b.output('pred', pred);
    return { name: 'regression', graph: b.build(), loss: 'loss', optimizer };
  }

  function regressionGrads(p: ReadonlyMap<string, Vec>): Map<string, Vec> {
    const [w, bias] = [p.get('w')!, p.get('bias')!];
    const gw = new Array<number>(D * K).fill(0);
    const gb = new Array<number>(K).fill(0);
    for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) {
      let r = bias[k]! - T[n * K + k]!;
      for (let d = 0; d < D; d++) r += X[n * D + d]! * w[d * K + k]!;
      const dr = (2 * r) / (N * K);
      gb[k] = gb[k]! + dr;
      for (let d = 0; d < D; d++) gw[d * K + k] = gw[d * K + k]! + X[n * D + d]! * dr;
    }
    return new Map([['w', gw], ['bias', gb]]);
  }

  it.each(CONFIGS)('%s: forward, loss, backward and update in one program', (_, cfg) => {
    const passes: string[] = [];
    const { graph, diagnostics } = trainingGraph(regression(cfg), { verify: true, dump: (pass) => passes.push(pass) });
    expect(passes).toEqual(['mode', 'simplify-forward', 'autodiff', 'optimizer', 'simplify']);
    expect(diagnostics).toEqual([]);
    expect(graph.outputs.map((o) => o.name)).toEqual(['loss', 'pred']);
    const env = firstEnv(graph, new Map([['x', f64([N, D], X)], ['t', f64([N, K], T)], ['w', f64([D, K], W0)], ['bias', f64([K], B0)]]));
    const got = trajectory(graph, env, 5, ['w', 'bias']);
    const ref = new Map([['w', [...W0]], ['bias', [...B0]]]);
    const st: RefState = { step: 0, m: new Map(), v: new Map() };
    got.forEach((params, s) => {
      referenceStep(cfg, ref, regressionGrads(ref), st);
      for (const name of ['w', 'bias']) expectClose(params.get(name)!, ref.get(name)!, `step ${s + 1} ${name}`, 1e-10);
    });
  });

  it('reports a parameter the loss does not depend on, and leaves it as it is', () => {
    const b = new GraphBuilder();
    const x = b.input('x', [2]);
    const w = b.param('w', [2]);
    b.param('unused', [2]);
    b.output('loss', b.reduceSum(b.mul(x, w)));
    const { graph, diagnostics } = trainingGraph({ name: 'm', graph: b.build(), loss: 'loss', optimizer: CONFIGS[0]![1] }, { verify: true });
    expect(diagnostics.join('\n')).toContain('"unused"');
    expect(graph.updates.map((u) => u.target)).toContain('w');
  });

  it('trains xor.json as the model file says (SGD lr 0.5): the loss goes down', () => {
    const model = loadModel(readFileSync(new URL('../../models/xor.json', import.meta.url), 'utf8'), 'models/xor.json');
    const { graph } = trainingGraph(model, { verify: true });
    const env = firstEnv(graph, new Map([
      ['x', f64([4, 2], [0, 0, 0, 1, 1, 0, 1, 1])], ['t', f64([4, 1], [0, 1, 1, 0])],
      ['w1', f64([2, 2], [0.5, -0.4, 0.3, 0.8])], ['b1', f64([2], [0.1, -0.1])], ['w2', f64([2, 1], [0.7, -0.6])], ['b2', f64([1], [0.05])],
    ]));
    const losses: number[] = [];
    for (let s = 0; s < 20; s++) {
      const r = evaluate(graph, env, 'f64');
      losses.push(r.outputs.get('loss')!.data[0]!);
      for (const [name, t] of r.updates) env.set(name, t);
    }
    expect(losses.at(-1)!).toBeLessThan(losses[0]!);
  });
});

// ---- errors --------------------------------------------------------------------------------------

describe('optimizer and training errors', () => {
  const sgd: OptimizerConfig = { kind: 'sgd', lr: 0.1, momentum: 0.9, weightDecay: 0 };

  it('a state name that collides with a source is an OptimizerError naming it', () => {
    const b = new GraphBuilder();
    const w = b.param('w', [2]);
    b.input('w@m', [2]);
    expect(() => applyOptimizer(b.build(), new Map([['w', w.id]]), sgd)).toThrow(/state "w@m" collides/);
  });

  it('a gradient of something that is not a parameter is an OptimizerError', () => {
    const b = new GraphBuilder();
    const x = b.input('x', [2]);
    b.param('w', [2]);
    expect(() => applyOptimizer(b.build(), new Map([['x', x.id]]), sgd)).toThrow(OptimizerError);
    expect(() => applyOptimizer(b.build(), new Map([['x', x.id]]), sgd)).toThrow(/"x" has a gradient but is not a parameter \(parameters: w\)/);
  });

  it('a gradient of the wrong type is an OptimizerError naming both types', () => {
    const b = new GraphBuilder();
    b.param('w', [2]);
    const g = b.input('g', [3]);
    expect(() => applyOptimizer(b.build(), new Map([['w', g.id]]), sgd)).toThrow(/gradient of "w" is f32\[3\], but the parameter is f32\[2\]/);
  });

  it('a bad setting is an OptimizerError naming the field', () => {
    const b = new GraphBuilder();
    const w = b.param('w', [2]);
    expect(() => applyOptimizer(b.build(), new Map([['w', w.id]]), { ...sgd, lr: 0 })).toThrow(/lr must be a number > 0, got 0/);
    expect(() => applyOptimizer(b.build(), new Map([['w', w.id]]), { kind: 'adam', lr: 1, beta1: 1, beta2: 0.9, eps: 1e-8, weightDecay: 0 })).toThrow(/beta1 must be in \[0, 1\)/);
  });

  it('a model without a loss or without an optimizer has no training program', () => {
    const b = new GraphBuilder();
    b.output('y', b.exp(b.input('x', [2])));
    const graph = b.build();
    expect(() => trainingGraph({ name: 'm', graph, optimizer: sgd })).toThrow(TrainingError);
    expect(() => trainingGraph({ name: 'm', graph, optimizer: sgd })).toThrow(/model "m" has no loss: .*\(outputs: y\)/);
    expect(() => trainingGraph({ name: 'm', graph, loss: 'y' })).toThrow(/model "m" has no optimizer/);
    expect(new TrainingError('x')).toBeInstanceOf(AdjointError);
  });
});
