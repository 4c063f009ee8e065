/**
 * @file Fusion: structure (kernel counts and which nodes share a kernel, not WGSL text), and
 * kernels that must be split to fit the device's storage-buffer limit, run on the adapter.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compile, emitArtifact } from '../../src/compile.js';
import { GraphBuilder, type Value } from '../../src/ir/builder.js';
import { planFusion } from '../../src/passes/fusion.js';
import { lowerGroup } from '../../src/passes/lower.js';
import { getDevice } from '../../src/runtime/device.js';
import { grad } from '../../src/passes/autodiff.js';
import { simplify } from '../../src/passes/simplify.js';
import type { Graph } from '../../src/ir/graph.js';
import type { OptimizerConfig } from '../../src/ir/model.js';
import { expectGpuMatches, randomEnv } from './harness.js';

const kernelsOf = (b: GraphBuilder, maxBindings = 8) => {
  const g = b.build();
  const plan = planFusion(g, { maxBindings });
  return plan.kernels.map((k) => lowerGroup(g, k, plan.materialized).nodes.map((id) => g.nodes[id]!.op).filter((op) => op !== 'full'));
};

/** The kind of each kernel of a graph's plan (map, reduce, matmul, rows). */
const kindsOf = (g: Graph, maxBindings = 8) => {
  const plan = planFusion(g, { maxBindings });
  return plan.kernels.map((k) => lowerGroup(g, k, plan.materialized).body.kind);
};

/** The MLP of the issue: 784-256-10, ReLU, softmax cross-entropy, batch 128. */
function mlp(optimizer: OptimizerConfig) {
  const b = new GraphBuilder();
  const x = b.input('x', [128, 784]);
  const y = b.input('y', [128], 'i32');
  const h = b.relu(b.linear(x, b.param('w1', [784, 256]), b.param('b1', [256], { kind: 'zeros' })));
  b.output('loss', b.softmaxCrossEntropy(b.linear(h, b.param('w2', [256, 10]), b.param('b2', [10], { kind: 'zeros' })), y));
  return compile({ name: 'mlp', graph: b.build(), loss: 'loss', optimizer }).train!;
}

describe('fusion structure', () => {
  it('softmax, log-softmax and layernorm are one kernel each: one workgroup per row', () => {
    for (const f of [
      (b: GraphBuilder, x: Value) => b.softmax(x),
      (b: GraphBuilder, x: Value) => b.logSoftmax(x),
      (b: GraphBuilder, x: Value) => b.layerNorm(x, b.input('g', [300]), b.input('h', [300])),
    ]) {
      const b = new GraphBuilder();
      b.output('y', f(b, b.input('x', [64, 300])));
      expect(kindsOf(b.build())).toEqual(['rows']);
    }
  });

  it('softmax cross-entropy and its gradient take 2 kernels: the row kernel and the batch mean', () => {
    const b = new GraphBuilder();
    b.output('loss', b.softmaxCrossEntropy(b.param('z', [32, 10]), b.input('y', [32], 'i32')));
    const g = simplify(grad(b.build(), { loss: 'loss', wrt: ['z'] }).graph);
    expect(kindsOf(g).sort()).toEqual(['reduce', 'rows']);
  });

  it('a training step of MLP 784-256-10: at most 8 dispatches with SGD (with or without momentum), 10 with Adam, 1 submit', () => {
    for (const momentum of [0, 0.9]) expect(mlp({ kind: 'sgd', lr: 0.1, momentum, weightDecay: 0 }).dispatches.length).toBeLessThanOrEqual(8);
    expect(mlp({ kind: 'adam', lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 }).dispatches.length).toBeLessThanOrEqual(10);
  });

  it('a chain of 10 elementwise ops is one kernel', () => {
    const b = new GraphBuilder();
    let x = b.input('x', [100]);
    const ops = [b.exp, b.neg, b.tanh, b.relu, b.abs, b.sigmoid, b.sin, b.cos, b.sqrt, b.exp];
    for (const f of ops) x = f(x);
    b.output('y', x);
    expect(kernelsOf(b)).toEqual([['exp', 'neg', 'tanh', 'relu', 'abs', 'sigmoid', 'sin', 'cos', 'sqrt', 'exp']]);
  });

  it('a matmul absorbs its transposed operand and its bias + relu epilogue', () => {
    const b = new GraphBuilder();
    const y = b.relu(b.add_(b.matmul(b.transpose(b.input('x', [8, 4])), b.input('w', [8, 3])), b.input('b', [3])));
    b.output('y', y);
    expect(kernelsOf(b)).toEqual([['transpose', 'matmul', 'add', 'relu']]);
  });

  it('a reduction absorbs its elementwise producers', () => {
    const b = new GraphBuilder();
    b.output('s', b.reduceSum(b.exp(b.mul(b.input('x', [4, 5]), 2)), 1));
    expect(kernelsOf(b)).toEqual([['mul', 'exp', 'reduce_sum']]);
  });

  it('never recomputes a matmul: read twice, it is computed once and both readers are further outputs', () => {
    const b = new GraphBuilder();
    const m = b.matmul(b.input('a', [4, 4]), b.input('b', [4, 4]));
    b.output('p', b.exp(m));
    b.output('q', b.neg(m));
    expect(kernelsOf(b)).toEqual([['matmul', 'exp', 'neg']]);
  });

  it('an optimizer update joins the kernel of its gradient as a further output', () => {
    const b = new GraphBuilder();
    const w = b.param('w', [8, 3]);
    const m = b.state('w@m', [8, 3]);
    const g = b.matmul(b.transpose(b.input('x', [4, 8])), b.input('d', [4, 3]));
    const m2 = b.add_(b.mul(m, 0.9), g);
    b.update('w@m', m2);
    b.update('w', b.sub(w, b.mul(m2, 0.1)));
    expect(kernelsOf(b)).toEqual([['transpose', 'matmul', 'mul', 'add', 'mul', 'sub']]);
  });

  it('materializes an expensive value read by a matmul many times', () => {
    const b = new GraphBuilder();
    const e = b.exp(b.sub(b.input('z', [64, 10]), b.input('m', [64, 1])));
    b.output('g', b.matmul(b.transpose(b.input('a', [64, 256])), e));
    expect(kernelsOf(b)).toEqual([['sub', 'exp'], ['transpose', 'matmul']]);
  });
});

describe('row kernels on the adapter', () => {
  let device: GPUDevice;
  beforeAll(async () => { device = await getDevice({ quiet: true }); });
  afterAll(() => device?.destroy());

  it('softmax, log-softmax, layernorm over rows longer and shorter than a workgroup (one thread per row when short), over 70,000 rows', async () => {
    const b = new GraphBuilder();
    const x = b.input('x', [3, 5, 130]);
    b.output('sm', b.softmax(x));
    b.output('lsm', b.logSoftmax(b.input('w', [2, 1000])));
    b.output('ln', b.layerNorm(b.input('t', [70000, 3]), b.input('g', [3]), b.input('h', [3])));
    // Not over trailing axes: stays as separate reductions, still right.
    b.output('mid', b.softmax(x, 1));
    b.output('short', b.softmax(b.input('s', [3, 40])));
    const g = b.build();
    expect(kindsOf(g, 12).filter((k) => k === 'rows').length).toBe(4);
    await expectGpuMatches(device, g, randomEnv(g, 5), 1e-5, { limits: { maxStorageBuffersPerShaderStage: 12 } });
  });

  it('the gradient of layernorm and of log-softmax through row kernels', async () => {
    const b = new GraphBuilder();
    const z = b.param('z', [37, 70]);
    const l = b.reduceSum(b.mul(b.layerNorm(z, b.param('g', [70]), b.param('h', [70])), b.logSoftmax(b.mul(z, 3))), [0, 1]);
    b.output('loss', l);
    const g = simplify(grad(b.build(), { loss: 'loss' }).graph);
    expect(kindsOf(g, 12)).toContain('rows');
    await expectGpuMatches(device, g, randomEnv(g, 6), 1e-5, { limits: { maxStorageBuffersPerShaderStage: 12 } });
  });
});

describe('binding limits on the adapter', () => {
  let device: GPUDevice;
  beforeAll(async () => { device = await getDevice({ quiet: true }); });
  afterAll(() => device?.destroy());

  /** The sum of 20 inputs, each through an elementwise op: one kernel of 21 bindings if unlimited. */
  function twenty(): ReturnType<GraphBuilder['build']> {
    const b = new GraphBuilder();
    let acc: Value | undefined;
    for (let i = 0; i < 20; i++) {
      const t = b.tanh(b.input(`x${i}`, [129]));
      acc = acc ? b.add_(acc, t) : t;
    }
    b.output('y', acc!);
    return b.build();
  }

  for (const limit of [8, 4]) {
    it(`fits 20 fused inputs into kernels of at most ${limit} storage buffers, and matches the interpreter`, async () => {
      const g = twenty();
      const a = emitArtifact(g, { limits: { maxStorageBuffersPerShaderStage: limit } });
      expect(Math.max(...a.dispatches.map((d) => d.bindings.length))).toBeLessThanOrEqual(limit);
      expect(a.dispatches.length).toBeGreaterThan(1);
      expect(emitArtifact(g, { limits: { maxStorageBuffersPerShaderStage: 32 } }).dispatches.length).toBe(1);
      const dev = await getDevice({ quiet: true, maxStorageBuffersPerShaderStage: limit });
      try {
        await expectGpuMatches(dev, g, randomEnv(g, 3), 2e-6, { limits: { maxStorageBuffersPerShaderStage: limit }, fuse: true });
      } finally {
        dev.destroy();
      }
    });
  }
});
