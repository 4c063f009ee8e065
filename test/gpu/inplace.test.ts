/**
 * @file Parameters and optimizer state updated in place: the training programs of the models copy
 * nothing at the end of a step (every update is written over the buffer it replaces), and graphs
 * whose updates read each other, or whose parameters are read after their update is computed, still
 * follow the interpreter step after step.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compile, emitArtifact } from '../../src/compile.js';
import { GraphBuilder } from '../../src/ir/builder.js';
import type { Graph } from '../../src/ir/graph.js';
import { evaluate } from '../../src/ir/interp.js';
import { loadModel } from '../../src/ir/schema.js';
import { tensor, type Tensor } from '../../src/ir/tensor.js';
import { getDevice } from '../../src/runtime/device.js';
import { Program } from '../../src/runtime/program.js';
import { maxRelError, randomEnv } from './harness.js';

let device: GPUDevice;
beforeAll(async () => { device = await getDevice({ quiet: true }); });
afterAll(() => device?.destroy());

/** Runs `steps` steps on the GPU and in the interpreter, carrying the updates; compares every output and update. */
async function expectSteps(g: Graph, steps: number, fuse: boolean): Promise<void> {
  let env = randomEnv(g, 3);
  const program = await Program.load(device, emitArtifact(g, { fuse }), { strictShaders: true, poison: true });
  try {
    for (const [name, t] of env) program.write(name, Float32Array.from(t.data));
    for (let s = 0; s < steps; s++) {
      const want = evaluate(g, env, 'f32');
      const got = (await program.step({}, g.outputs.map((o) => o.name)))!;
      for (const o of g.outputs) expect(maxRelError(got.get(o.name)!, want.outputs.get(o.name)!.data), `${o.name} at step ${s}`).toBeLessThan(1e-5);
      const next = new Map<string, Tensor>(env);
      for (const [name, t] of want.updates) next.set(name, tensor(t.type.shape, t.data));
      env = next;
      for (const [name, t] of want.updates) expect(maxRelError(await program.read(name), t.data), `${name} after step ${s}`).toBeLessThan(1e-5);
    }
  } finally {
    program.destroy();
  }
}

describe('updates in place', () => {
  it('the models\' training steps copy nothing: every update lives in the buffer it replaces', () => {
    for (const f of ['mlp-mnist.json', 'lenet-mnist.json', 'autoencoder-mnist.json', 'logreg-mnist.json']) {
      const { train } = compile(loadModel(readFileSync(`models/${f}`, 'utf8'), f));
      expect(train!.copies, f).toEqual([]);
      const temps = train!.arenas.filter((a) => a.role === 'temp').reduce((s, a) => s + a.bytes, 0);
      const params = train!.params.reduce((s, p) => s + p.region.bytes, 0);
      // Gradients and new values no longer need temporaries of their own next to the parameters.
      expect(temps, f).toBeLessThan(params + train!.memory.lowerBound + 1);
    }
  });

  for (const fuse of [true, false]) {
    it(`a parameter read by the forward pass after its new value is computed (${fuse ? 'fused' : 'unfused'})`, async () => {
      const b = new GraphBuilder();
      const x = b.input('x', [5, 7]);
      const w = b.param('w', [7, 3]);
      const y = b.matmul(x, w);
      b.output('y', y);
      // The new w does not depend on y, so the kernel that writes it could run first: it must not.
      b.update('w', b.mul(w, 0.5));
      b.output('s', b.reduceSum(b.mul(y, y), [0, 1]));
      await expectSteps(b.build(), 3, fuse);
    });

    it(`updates that read each other's old values (${fuse ? 'fused' : 'unfused'})`, async () => {
      const b = new GraphBuilder();
      const p = b.param('p', [4, 6]);
      const q = b.param('q', [4, 6]);
      const m = b.state('m', [4, 6]);
      b.update('p', b.add_(q, 1));
      b.update('q', b.mul(p, 2));
      // m' reads p's and q's old values away from its own element (a transpose-like reversal).
      const mm = b.add_(m, b.reduceSum(b.mul(p, q), [0], true));
      b.update('m', mm);
      b.output('sum', b.reduceSum(mm, [0, 1]));
      await expectSteps(b.build(), 3, fuse);
    });
  }
});
