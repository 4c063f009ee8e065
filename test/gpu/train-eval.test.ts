/**
 * @file Random numbers, dropout and batch normalization on the real adapter (issue 16). Same seed,
 * same program: the random values and dropout masks of the training program are bit-identical to
 * the reference interpreter's, step after step (the counter advancing on the device), fused and
 * unfused; run under each Vulkan driver (SwiftShader, lavapipe) this makes them identical across
 * adapters. Batch normalization: a training step (loss, updated running statistics, parameters)
 * and the forward (eval) program fed the training program's state agree with the interpreter.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compile, emitArtifact, trainingGraph } from '../../src/compile.js';
import { GraphBuilder, RNG_SEED, RNG_STEP } from '../../src/ir/builder.js';
import { evaluate } from '../../src/ir/interp.js';
import type { Model } from '../../src/ir/model.js';
import { tensor, type Tensor } from '../../src/ir/tensor.js';
import { specializeMode } from '../../src/passes/mode.js';
import { getDevice } from '../../src/runtime/device.js';
import { Program } from '../../src/runtime/program.js';
import { maxRelError, randomEnv } from './harness.js';

let device: GPUDevice;
beforeAll(async () => { device = await getDevice({ quiet: true }); });
afterAll(() => device?.destroy());

describe('same seed, same program: the same random values on the adapter as in the interpreter', () => {
  const SEED = 0x9e3779b9 | 0; // a seed with the sign bit set: all 32 bits reach the key
  const graph = () => {
    const b = new GraphBuilder();
    const x = b.input('x', [37, 53]);
    b.output('u', b.randomUniform([1000]));
    b.output('y', b.dropout(x, 0.5));
    b.output('z', b.dropout(b.transpose(x), 0.1));
    return specializeMode(b.build(), 'train');
  };

  for (const fuse of [true, false]) {
    it(`three steps, bit for bit (${fuse ? 'fused' : 'unfused'})`, async () => {
      const g = graph();
      const prog = await Program.load(device, emitArtifact(g, { fuse }), { seed: SEED, strictShaders: true });
      try {
        const x = Float32Array.from({ length: 37 * 53 }, (_, i) => 1 + (i % 7));
        for (let step = 0; step < 3; step++) {
          const got = (await prog.step({ x }, ['u', 'y', 'z']))!;
          const env = new Map<string, Tensor>([['x', tensor([37, 53], x)], [RNG_SEED, tensor([], [SEED], 'i32')], [RNG_STEP, tensor([], [step], 'i32')]]);
          const want = evaluate(g, env, 'f32', 'train').outputs;
          for (const name of ['u', 'y', 'z']) expect(got.get(name), `${name} at step ${step + 1}`).toEqual(want.get(name)!.data);
        }
        expect(Array.from(await prog.read(RNG_STEP))).toEqual([3]);
        expect(Array.from(await prog.read(RNG_SEED))).toEqual([SEED]);
      } finally {
        prog.destroy();
      }
    });
  }
});

describe('batch normalization: a training step and the eval program', () => {
  const model = (): Model => {
    const b = new GraphBuilder();
    const x = b.input('x', [8, 3, 5, 5]);
    const t = b.input('t', [8, 3, 5, 5]);
    const y = b.batchNorm(b.mul(x, b.param('s', [1, 3, 1, 1], { kind: 'ones' })), b.param('g', [3], { kind: 'uniform', low: 0.5, high: 1.5 }),
      b.param('h', [3], { kind: 'uniform', low: -0.5, high: 0.5 }), b.state('rm', [3]), b.state('rv', [3], { kind: 'ones' }), { momentum: 0.3 });
    b.output('y', y);
    b.output('loss', b.mse(b.dropout(y, 0.25), t));
    return { name: 'bn', graph: b.build(), loss: 'loss', optimizer: { kind: 'sgd', lr: 0.1, momentum: 0, weightDecay: 0 } };
  };

  it('the step matches the interpreter; the forward program reads the running statistics it left', async () => {
    const m = model();
    const c = compile(m);
    const train = await Program.load(device, c.train!, { seed: 5 });
    const fwd = await Program.load(device, c.forward, { seed: 5 });
    try {
      const env = randomEnv(trainingGraph(m).graph, 3);
      const init = await train.snapshot();
      for (const [k, v] of init) env.set(k, tensor(c.train!.params.concat(c.train!.state).find((s) => s.name === k)!.shape, v, v instanceof Int32Array ? 'i32' : 'f32'));
      const feeds = { x: Float32Array.from(env.get('x')!.data), t: Float32Array.from(env.get('t')!.data) };
      const got = (await train.step(feeds, ['loss']))!;
      const want = evaluate(trainingGraph(m).graph, env, 'f32', 'train');
      expect(maxRelError(got.get('loss')!, want.outputs.get('loss')!.data)).toBeLessThanOrEqual(1e-5);
      for (const name of ['rm', 'rv', 'g', 'h', 's']) {
        const err = maxRelError(await train.read(name), want.updates.get(name)!.data);
        expect(err, name).toBeLessThanOrEqual(1e-5);
      }
      // eval: the forward program, given the training program's parameters and state
      const after = await train.snapshot();
      for (const s of [...c.forward.params, ...c.forward.state]) fwd.write(s.name, after.get(s.name)!);
      const y = (await fwd.step(feeds, ['y']))!.get('y')!;
      const evalEnv = new Map(env);
      for (const [k, v] of after) evalEnv.set(k, tensor(env.get(k)!.type.shape, v, env.get(k)!.type.dtype));
      const yWant = evaluate(specializeMode(m.graph, 'eval'), evalEnv, 'f32').outputs.get('y')!.data;
      expect(maxRelError(y, yWant)).toBeLessThanOrEqual(1e-5);
      expect(c.forward.dispatches.length).toBeLessThan(c.train!.dispatches.length);
    } finally {
      train.destroy();
      fwd.destroy();
    }
  });
});
