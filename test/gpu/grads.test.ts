/**
 * @file The adjoint graph of every differentiable primitive and composite, run on the adapter
 * (fused and unfused) and compared with the interpreter: every gradient, in float32.
 */
import { afterAll, beforeAll, describe, it } from 'vitest';
import { GraphBuilder } from '../../src/ir/builder.js';
import { grad } from '../../src/passes/autodiff.js';
import { simplify } from '../../src/passes/simplify.js';
import { getDevice } from '../../src/runtime/device.js';
import { ROWS } from '../passes/grad-rows.js';
import { expectGpuMatches, randomEnv } from './harness.js';

let device: GPUDevice;
beforeAll(async () => { device = await getDevice({ quiet: true }); });
afterAll(() => device?.destroy());

describe('gradients on the GPU match the interpreter', () => {
  for (const row of ROWS) {
    it(row.name, async () => {
      const b = new GraphBuilder();
      const y = row.f(b);
      b.output('loss', b.reduceSum(b.mul(y, b.input('__weights', [...y.type.shape]))));
      const adj = grad(b.build(), { loss: 'loss' });
      const g = simplify(adj.graph);
      const env = randomEnv(g, 13, (name, i, u) => {
        const n = g.nodes.find((x) => (x.op === 'input' || x.op === 'param') && x.attrs.name === name)!;
        if (n.type.dtype === 'i32') return Math.floor(u() * 3);
        return name === '__weights' ? 2 * u() - 1 : (row.gen ?? ((_, v) => 2 * v() - 1))(name, u);
      });
      // Gradients are sums of products: f32 reassociation across kernels allows a few ulps more.
      await expectGpuMatches(device, g, env, row.gpuTol ?? 5e-5);
    });
  }
});
