/**
 * @file The optimizers and the recipe against PyTorch itself: parameter trajectories of
 * torch.optim (RMSprop, Adagrad, SGD with clip_grad_norm_, LinearLR warm-up, StepLR, Adam with
 * CosineAnnealingLR) on f(w) = sum(c w² + sin w), 8 steps in float64, recorded by the committed
 * test/fixtures/optim/make-fixtures.py; the same program built here (its gradient by autodiff, the
 * whole training pipeline) runs in the interpreter in float64.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../src/ir/builder.js';
import { evaluate } from '../../src/ir/interp.js';
import type { OptimizerConfig } from '../../src/ir/model.js';
import { tensor, zeros, type Tensor } from '../../src/ir/tensor.js';
import { trainingGraph } from '../../src/compile.js';

const fx = JSON.parse(readFileSync(new URL('../fixtures/optim/trajectories.json', import.meta.url), 'utf8')) as {
  C: number[]; W0: number[]; cases: Record<string, number[][]>;
};

const CASES: readonly (readonly [string, OptimizerConfig, number])[] = [
  ['rmsprop', { kind: 'rmsprop', lr: 0.01, alpha: 0.9, eps: 1e-6, momentum: 0.8, weightDecay: 0.02 }, 1e-12],
  ['adagrad', { kind: 'adagrad', lr: 0.2, eps: 1e-6, initialAccumulator: 0.1, weightDecay: 0.03 }, 1e-12],
  // clip_grad_norm_ scales by max_norm / (norm + 1e-6); Optax's rule (here) by max_norm / norm.
  ['sgd_clip', { kind: 'sgd', lr: 0.1, momentum: 0, weightDecay: 0, clipNorm: 0.5 }, 1e-6],
  ['sgd_warmup', { kind: 'sgd', lr: 0.1, momentum: 0, weightDecay: 0, schedule: { warmupSteps: 4, warmupInit: 0.25 } }, 1e-12],
  ['adam_cosine', { kind: 'adam', lr: 0.05, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, schedule: { warmupSteps: 0, warmupInit: 0, decay: { kind: 'cosine', steps: 8, alpha: 0.1 } } }, 1e-10],
  ['sgd_step', { kind: 'sgd', lr: 0.1, momentum: 0.5, weightDecay: 0, schedule: { warmupSteps: 0, warmupInit: 0, decay: { kind: 'step', every: 3, gamma: 0.5 } } }, 1e-12],
];

describe('trajectories against torch.optim (8 steps, float64)', () => {
  it.each(CASES)('%s', (name, optimizer, tol) => {
    const n = fx.W0.length;
    const b = new GraphBuilder();
    const c = b.input('c', [n]);
    const w = b.param('w', [n]);
    b.output('loss', b.reduceSum(b.add_(b.mul(c, b.mul(w, w)), b.sin(w))));
    const { graph } = trainingGraph({ name, graph: b.build(), loss: 'loss', optimizer }, { verify: true });
    const env = new Map<string, Tensor>([['c', tensor([n], fx.C, 'f32', 'f64')], ['w', tensor([n], fx.W0, 'f32', 'f64')]]);
    for (const node of graph.nodes) {
      if (node.op !== 'state') continue;
      const t = zeros(node.type, 'f64');
      if (node.attrs.init.kind === 'constant') t.data.fill(node.attrs.init.value);
      env.set(node.attrs.name, t);
    }
    const want = fx.cases[name]!;
    want.forEach((row, s) => {
      for (const [k, v] of evaluate(graph, env, 'f64').updates) env.set(k, v);
      const got = Array.from(env.get('w')!.data);
      got.forEach((x, i) => expect(Math.abs(x - row[i]!), `step ${s + 1} w[${i}]: ${x} vs torch ${row[i]}`).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(row[i]!))));
    });
    expect(Math.abs(want.at(-1)![0]! - fx.W0[0]!)).toBeGreaterThan(1e-3);
  });
});
