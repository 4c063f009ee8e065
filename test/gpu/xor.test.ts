/**
 * @file The textbook case of backpropagation (models/xor.json: a 2-2-1 network of logistic units,
 * squared error, plain gradient descent). The adjoint graph's gradients equal the hand-derived
 * deltas — output delta (o - t) o (1 - o); hidden delta (sum over the next layer of w delta)
 * h (1 - h); weight gradient = delta of the receiving unit x output of the sending unit — and the
 * compiled program, trained on the GPU, gets all four cases within 0.1 of their targets.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compile } from '../../src/compile.js';
import { evaluate } from '../../src/ir/interp.js';
import { loadModel } from '../../src/ir/schema.js';
import { tensor } from '../../src/ir/tensor.js';
import { grad } from '../../src/passes/autodiff.js';
import { getDevice } from '../../src/runtime/device.js';
import { Program } from '../../src/runtime/program.js';

const model = loadModel(readFileSync('models/xor.json', 'utf8'), 'models/xor.json');
const X = [[0, 0], [0, 1], [1, 0], [1, 1]] as const;
const T = [0, 1, 1, 0] as const;
const sig = (z: number) => 1 / (1 + Math.exp(-z));

describe('xor', () => {
  it('the adjoint graph computes the textbook deltas', () => {
    const w1 = [[0.3, -0.8], [0.5, 0.6]];
    const b1 = [0.1, -0.2];
    const w2 = [0.7, -0.4];
    const b2 = 0.05;
    const env = new Map([
      ['x', tensor([4, 2], X.flat(), 'f32', 'f64')],
      ['t', tensor([4, 1], [...T], 'f32', 'f64')],
      ['w1', tensor([2, 2], w1.flat(), 'f32', 'f64')],
      ['b1', tensor([2], b1, 'f32', 'f64')],
      ['w2', tensor([2, 1], w2, 'f32', 'f64')],
      ['b2', tensor([1], [b2], 'f32', 'f64')],
    ]);
    const r = evaluate(grad(model.graph, { loss: 'loss' }).graph, env, 'f64');
    // By hand: forward, then the deltas, then the weight gradients summed over the four cases.
    const gw1 = [[0, 0], [0, 0]];
    const gb1 = [0, 0];
    const gw2 = [0, 0];
    let gb2 = 0;
    X.forEach((x, s) => {
      const h = [0, 1].map((j) => sig(x[0] * w1[0]![j]! + x[1] * w1[1]![j]! + b1[j]!));
      const o = sig(h[0]! * w2[0]! + h[1]! * w2[1]! + b2);
      const dOut = (o - T[s]!) * o * (1 - o);
      const dHid = [0, 1].map((j) => w2[j]! * dOut * h[j]! * (1 - h[j]!));
      [0, 1].forEach((j) => {
        gw2[j]! += dOut * h[j]!;
        gb1[j]! += dHid[j]!;
        [0, 1].forEach((i) => (gw1[i]![j]! += dHid[j]! * x[i]!));
      });
      gb2 += dOut;
    });
    const close = (name: string, want: number[]) => Array.from(r.outputs.get(`grad:${name}`)!.data).forEach((v, i) => expect(v, `${name}[${i}]`).toBeCloseTo(want[i]!, 12));
    close('w1', gw1.flat());
    close('b1', gb1);
    close('w2', gw2);
    close('b2', [gb2]);
  });

  let device: GPUDevice;
  beforeAll(async () => { device = await getDevice({ quiet: true }); });
  afterAll(() => device?.destroy());

  it('trains on the GPU: all four cases within 0.1 of their targets', async () => {
    const { train, forward } = compile(model);
    const prog = await Program.load(device, train!, { seed: 1 });
    const feeds = { x: Float32Array.from(X.flat()), t: Float32Array.from(T) };
    for (let s = 0; s < 1000; s++) prog.step(feeds);
    const params = await prog.snapshot();
    prog.destroy();
    const fwd = await Program.load(device, forward);
    for (const [k, v] of params) if (forward.params.some((p) => p.name === k)) fwd.write(k, v);
    const o = (await fwd.step(feeds, ['o']))!.get('o')!;
    fwd.destroy();
    Array.from(o).forEach((v, i) => expect(Math.abs(v - T[i]!), `case ${X[i]}: ${v}`).toBeLessThan(0.1));
  });
});
