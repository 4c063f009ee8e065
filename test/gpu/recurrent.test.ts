/**
 * @file Issue 16 on the adapter: the LSTM's and GRU's backward graphs (backpropagation through
 * time over the unrolled sequence) against the interpreter, fused and unfused; a training step
 * with the whole optimizer recipe (schedule, clipping, accumulation, RMSprop, Adagrad) against the
 * interpreter; and gradient accumulation over k micro-batches of n giving, on the GPU, the update
 * of one batch of k·n within float32 tolerance.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compile, trainingGraph } from '../../src/compile.js';
import { GraphBuilder } from '../../src/ir/builder.js';
import type { Model, OptimizerConfig } from '../../src/ir/model.js';
import { evaluate } from '../../src/ir/interp.js';
import { tensor, type Tensor } from '../../src/ir/tensor.js';
import { grad } from '../../src/passes/autodiff.js';
import { getDevice } from '../../src/runtime/device.js';
import { initValues } from '../../src/runtime/init.js';
import { Program } from '../../src/runtime/program.js';
import { expectGpuMatches, maxRelError, randomEnv } from './harness.js';

let device: GPUDevice;
beforeAll(async () => { device = await getDevice({ quiet: true }); });
afterAll(() => device?.destroy());

describe('recurrent layers on the GPU follow the interpreter', () => {
  it.each(['lstm', 'gru'] as const)('%s: loss and every gradient, T = 4', async (kind) => {
    const [B, T, I, H] = [3, 4, 5, 4];
    const G = kind === 'lstm' ? 4 : 3;
    const b = new GraphBuilder();
    const x = b.input('x', [B, T, I]);
    const w = {
      weightIh: b.param('weight_ih', [G * H, I]), weightHh: b.param('weight_hh', [G * H, H]),
      biasIh: b.param('bias_ih', [G * H]), biasHh: b.param('bias_hh', [G * H]),
    };
    const y = kind === 'lstm' ? b.lstm(x, w, b.param('h0', [B, H]), b.param('c0', [B, H])).y : b.gru(x, w, b.param('h0', [B, H])).y;
    b.output('loss', b.reduceSum(b.mul(y, b.input('r', [B, T, H]))));
    const r = grad(b.build(), { loss: 'loss' });
    expect(r.grads.size).toBe(kind === 'lstm' ? 6 : 5);
    await expectGpuMatches(device, r.graph, randomEnv(r.graph, 7), 1e-4);
  });
});

// ---- the optimizer recipe --------------------------------------------------------------------------

const [N, D, K] = [8, 6, 3];

/** Linear regression with a mean loss over the batch of n. */
function regression(n: number, optimizer: OptimizerConfig): Model {
  const b = new GraphBuilder();
  const h = b.tanh(b.linear(b.input('x', [n, D]), b.param('w1', [D, 8]), b.param('b1', [8], { kind: 'uniform', low: -0.1, high: 0.1 })));
  const pred = b.linear(h, b.param('w2', [8, K]), b.param('b2', [K], { kind: 'zeros' }));
  b.output('loss', b.mse(pred, b.input('t', [n, K])));
  return { name: 'regression', graph: b.build(), loss: 'loss', optimizer };
}
const X = Float32Array.from({ length: 4 * N * D }, (_, i) => Math.sin(i * 0.37) * 2);
const Y = Float32Array.from({ length: 4 * N * K }, (_, i) => Math.cos(i * 0.11));

/** Trains on the GPU: `feeds` one step each; returns the program's params and state, and the interpreter's (f32). */
async function trainBoth(model: Model, feeds: readonly { x: Float32Array; t: Float32Array }[]) {
  const { train } = compile(model);
  const prog = await Program.load(device, train!, { seed: 5, strictShaders: true });
  const graph = trainingGraph(model).graph;
  const env = new Map<string, Tensor>();
  for (const s of [...train!.params, ...train!.state]) env.set(s.name, tensor(s.shape, initValues(s.init, s.shape, 5, s.name), s.dtype));
  for (const f of feeds) {
    await prog.step(f, []);
    env.set('x', tensor([f.x.length / D, D], f.x)).set('t', tensor([f.t.length / K, K], f.t));
    for (const [k, v] of evaluate(graph, env, 'f32').updates) env.set(k, v);
  }
  const gpu = await prog.snapshot();
  prog.destroy();
  return { gpu, env };
}

describe('the optimizer recipe on the GPU', () => {
  const recipe = { schedule: { warmupSteps: 2, warmupInit: 0.1, decay: { kind: 'cosine', steps: 4, alpha: 0.05 } }, clipNorm: 0.3 } as const;
  it.each([
    ['Adam, warm-up and cosine decay, clipping, accumulation over 2', { kind: 'adam', lr: 0.05, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.01, ...recipe, accumulate: 2 }],
    ['RMSprop with momentum, step decay', { kind: 'rmsprop', lr: 0.01, alpha: 0.9, eps: 1e-8, momentum: 0.5, weightDecay: 0, schedule: { warmupSteps: 0, warmupInit: 0, decay: { kind: 'step', every: 2, gamma: 0.5 } } }],
    ['Adagrad, clipping', { kind: 'adagrad', lr: 0.1, eps: 1e-10, initialAccumulator: 0.1, weightDecay: 0, clipNorm: 0.3 }],
  ] satisfies [string, OptimizerConfig][])('%s: 8 steps, every parameter and state within 1e-4 of the interpreter', async (_, cfg) => {
    const feeds = Array.from({ length: 8 }, (_, s) => ({ x: X.slice(s * (N / 2) * D, (s + 1) * (N / 2) * D), t: Y.slice(s * (N / 2) * K, (s + 1) * (N / 2) * K) }));
    const { gpu, env } = await trainBoth(regression(N / 2, cfg), feeds);
    for (const [name, v] of gpu) expect(maxRelError(v, env.get(name)!.data, 1e-2), name).toBeLessThanOrEqual(1e-4);
    const w0 = initValues({ kind: 'glorot_uniform' }, [D, 8], 5, 'w1');
    expect(maxRelError(gpu.get('w1')!, w0, 1e-2), 'w1 moved').toBeGreaterThan(1e-3);
  });

  it('accumulation over k micro-batches of n = one batch of k·n (Adam, 3 updates, k = 2 and 4)', async () => {
    const cfg: OptimizerConfig = { kind: 'adam', lr: 0.02, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0 };
    const whole = Array.from({ length: 3 }, (_, s) => ({ x: X.slice(s * N * D, (s + 1) * N * D), t: Y.slice(s * N * K, (s + 1) * N * K) }));
    const big = await trainBoth(regression(N, cfg), whole);
    for (const k of [2, 4]) {
      const n = N / k;
      const micro = whole.flatMap((f) => Array.from({ length: k }, (_, j) => ({ x: f.x.slice(j * n * D, (j + 1) * n * D), t: f.t.slice(j * n * K, (j + 1) * n * K) })));
      const small = await trainBoth(regression(n, { ...cfg, accumulate: k }), micro);
      for (const [name, v] of big.gpu) expect(maxRelError(small.gpu.get(name)!, v, 1e-2), `k=${k} ${name}`).toBeLessThanOrEqual(2e-4);
      expect(Array.from(small.gpu.get('@step')!)).toEqual([3]);
      expect(Array.from(small.gpu.get('@micro')!)).toEqual([0]);
    }
  });
});
