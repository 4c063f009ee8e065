/**
 * @file Training through ONNX imports on the GPU: a `light/` architecture of the onnx wheel
 * (SqueezeNet, its placeholder weights made trainable and re-drawn, at 64x64) and a
 * PyTorch-converted module (grouped convolutions) each train a few steps with their loss falling;
 * the PyTorch LeNet, imported with a cross-entropy loss, trains on MNIST through the trainer from
 * its imported weights (the short CI version of README's `adjoint import` + `adjoint train` run).
 * Gradients of imported networks are checked against finite differences in
 * test/onnx/import.test.ts.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compile } from '../../src/compile.js';
import { mnistSource } from '../../src/data/source.js';
import { getDevice } from '../../src/runtime/device.js';
import { Program } from '../../src/runtime/program.js';
import { rng } from '../../src/runtime/init.js';
import { saveCheckpointFile } from '../../src/train/checkpoint-file.js';
import { initValues } from '../../src/runtime/init.js';
import { train } from '../../src/train/trainer.js';
import { importOnnx } from '../../src/onnx/import.js';
import { onnxModel } from '../../src/onnx/model.js';
import { decodeModel } from '../../src/onnx/proto.js';

let device: GPUDevice;
beforeAll(async () => { device = await getDevice({ quiet: true }); });
afterAll(() => device?.destroy());

const FIX = 'test/fixtures/onnx';
const adam = (lr: number) => ({ kind: 'adam' as const, lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 });

/** Trains `steps` steps on fixed inputs and an mse target; returns the losses. */
async function fit(path: string, opts: { shapes?: Record<string, number[]>; trainConstants?: boolean; redraw?: boolean; steps: number; lr: number; classes?: boolean; outputs?: string[] }): Promise<number[]> {
  const imp = importOnnx(readFileSync(path), { where: path, ...(opts.shapes ? { shapes: opts.shapes } : {}), ...(opts.outputs ? { outputs: opts.outputs } : {}), trainConstants: opts.trainConstants ?? false });
  const model = onnxModel(imp, { loss: opts.classes ? 'softmax-cross-entropy' : 'mse', labels: 'target', optimizer: adam(opts.lr) });
  const c = compile(model);
  const prog = await Program.load(device, c.train!, { seed: 0 });
  const u = rng(5);
  try {
    for (const [k, v] of imp.values) prog.write(k, v);
    if (opts.redraw) {
      // Placeholder weights (one value each) re-drawn at He scale, so the channels differ.
      for (const p of imp.params) {
        const fanIn = p.shape.slice(1).reduce((a, b) => a * b, 1) || 1;
        const n = p.shape.reduce((a, b) => a * b, 1);
        prog.write(p.name, Float32Array.from({ length: n }, () => (p.shape.length > 1 ? (2 * u() - 1) * Math.sqrt(6 / fanIn) : 0)));
      }
    }
    const feeds: Record<string, Float32Array | Int32Array> = {};
    for (const slot of c.train!.inputs) {
      const n = slot.shape.reduce((a, b) => a * b, 1);
      feeds[slot.name] = slot.dtype === 'i32' ? Int32Array.from({ length: n }, () => Math.floor(u() * 3)) : Float32Array.from({ length: n }, () => (slot.name === 'target' ? u() : 2 * u() - 1));
    }
    const losses: number[] = [];
    for (let s = 0; s < opts.steps; s++) losses.push((await prog.step(feeds, ['loss']))!.get('loss')![0]!);
    return losses;
  } finally {
    prog.destroy();
  }
}

describe('training through ONNX imports', () => {
  it('SqueezeNet (light/) trains a few steps with the loss falling', async () => {
    // Cross-entropy on the logits before its final Softmax, against fixed labels.
    const path = join(FIX, 'wheel/light_squeezenet.onnx');
    const softmax = decodeModel(readFileSync(path)).graph!.node!.find((n) => n.opType === 'Softmax')!;
    const losses = await fit(path, { shapes: { data_0: [2, 3, 48, 48] }, outputs: [softmax.input![0]!], trainConstants: true, redraw: true, steps: 4, lr: 1e-3, classes: true });
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(losses.at(-1)!).toBeLessThan(losses[0]! * 0.99);
  }, 300_000); // most of it is compiling SqueezeNet's training step (shaders included) on the CPU

  it('a PyTorch-converted module (grouped convolutions) trains with the loss falling', async () => {
    const losses = await fit(join(FIX, 'wheel/test_Conv2d_groups/model.onnx'), { steps: 10, lr: 1e-2 });
    expect(losses.at(-1)!).toBeLessThan(losses[0]! * 0.8);
  });

  it('the PyTorch LeNet trains on MNIST from its imported weights', async () => {
    const imp = importOnnx(readFileSync(join(FIX, 'lenet-mnist.onnx')));
    const model = onnxModel(imp, { loss: 'softmax-cross-entropy', labels: 'y', optimizer: adam(1e-3) });
    const { train: t, forward } = compile(model);
    // The imported weights as a safetensors weights file (what `adjoint import` writes), trained from with --init.
    const weights = join(mkdtempSync(join(tmpdir(), 'adjoint-onnx-train-')), 'lenet.safetensors');
    const all = [...imp.params, ...imp.state];
    saveCheckpointFile(weights, {
      step: 0, params: imp.params.map((p) => p.name), shapes: new Map(all.map((p) => [p.name, p.shape])),
      tensors: new Map(all.map((p) => [p.name, imp.values.get(p.name) ?? initValues(p.init, p.shape, 0, p.name)])),
    }, 'weights');
    const r = await train(device, { train: t!, forward }, mnistSource(8000, 256), { epochs: 1, maxStepsPerEpoch: 40, readEvery: 1, init: weights, log: () => undefined });
    expect(r.losses[0]!.loss).toBeGreaterThan(2); // a fresh network's first step: about ln 10
    expect(r.losses.at(-1)!.loss).toBeLessThan(1.5);
    expect(r.accuracy).toBeGreaterThan(0.5);
  });
});
