/**
 * @file Fusion: structure (kernel counts and which nodes share a kernel, not WGSL text), and
 * kernels that must be split to fit the device's storage-buffer limit, run on the adapter.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emitArtifact } from '../../src/codegen/emit.js';
import { GraphBuilder, type Value } from '../../src/ir/builder.js';
import { planFusion } from '../../src/passes/fusion.js';
import { lowerGroup } from '../../src/passes/fusion.js';
import { getDevice } from '../../src/runtime/device.js';
import { expectGpuMatches, randomEnv } from './harness.js';

const kernelsOf = (b: GraphBuilder, maxBindings = 8) => {
  const g = b.build();
  const plan = planFusion(g, { maxBindings });
  return plan.kernels.map((k) => lowerGroup(g, k, plan.materialized).nodes.map((id) => g.nodes[id]!.op).filter((op) => op !== 'full'));
};

describe('fusion structure', () => {
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
