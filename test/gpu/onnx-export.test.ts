/**
 * @file Every model of models/ exported to ONNX gives, in ONNX Runtime (onnxruntime-node, CPU),
 * the outputs adjoint's forward program gives on the GPU for the same inputs and weights (the
 * initialization at seed 0, which the program also starts from), within float32 tolerance. And an
 * exported model imports back to the same outputs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readdirSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { compile, emitArtifact } from '../../src/compile.js';
import { loadModelFile } from '../../src/cli.js';
import type { Model } from '../../src/ir/model.js';
import { getDevice } from '../../src/runtime/device.js';
import { Program, type HostArray } from '../../src/runtime/program.js';
import { initValues, rng } from '../../src/runtime/init.js';
import { exportOnnx } from '../../src/onnx/export.js';
import { importOnnx } from '../../src/onnx/import.js';
import { GraphBuilder } from '../../src/ir/builder.js';

let device: GPUDevice;
beforeAll(async () => { device = await getDevice({ quiet: true }); });
afterAll(() => device?.destroy());

// Every model file of models/ (a new model is covered by being there).
const MODELS = readdirSync(new URL('../../models/', import.meta.url)).filter((f) => /\.(json|ts)$/.test(f)).sort();

function weights(model: Model): Map<string, Float32Array | Int32Array> {
  const w = new Map<string, Float32Array | Int32Array>();
  for (const n of model.graph.nodes) if (n.op === 'param' || n.op === 'state') w.set(n.attrs.name, initValues(n.attrs.init, n.attrs.shape, 0, n.attrs.name));
  return w;
}

/** Inputs: f32 in [-1, 1), i32 class ids below the smallest sensible depth. */
function feeds(model: Model): Record<string, HostArray> {
  const u = rng(7);
  const out: Record<string, HostArray> = {};
  for (const n of model.graph.nodes) {
    if (n.op !== 'input') continue;
    const len = n.attrs.shape.reduce((p, q) => p * q, 1);
    out[n.attrs.name] = n.attrs.dtype === 'i32' ? Int32Array.from({ length: len }, () => Math.floor(u() * 2)) : Float32Array.from({ length: len }, () => 2 * u() - 1);
  }
  return out;
}

function closeTo(got: ArrayLike<number>, want: ArrayLike<number>, what: string): void {
  expect(got.length, what).toBe(want.length);
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!) / (1e-3 + Math.abs(want[i]!)));
  expect(worst, what).toBeLessThan(2e-3);
}

describe('ONNX export of models/ matches the forward program in ONNX Runtime', () => {
  for (const file of MODELS) {
    it(file, async () => {
      const model = await loadModelFile(`models/${file}`);
      const names = model.graph.outputs.map((o) => o.name);
      const bytes = exportOnnx(model.graph, weights(model), { name: model.name, outputs: names });
      const x = feeds(model);
      const session = await ort.InferenceSession.create(bytes);
      const inputs: Record<string, ort.Tensor> = {};
      for (const n of model.graph.nodes) {
        if (n.op !== 'input' || !session.inputNames.includes(n.attrs.name)) continue;
        inputs[n.attrs.name] = new ort.Tensor(n.attrs.dtype === 'i32' ? 'int32' : 'float32', x[n.attrs.name]!, [...n.attrs.shape]);
      }
      const res = await session.run(inputs);
      const prog = await Program.load(device, compile(model).forward, { seed: 0 });
      try {
        const got = await prog.step(x, names);
        for (const nm of names) closeTo(res[nm]!.data as Float32Array, got!.get(nm)!, `${file} ${nm}`);
      } finally {
        prog.destroy();
      }
      await session.release();
    });
  }

  it('an exported LeNet imports back to the same logits on the GPU', async () => {
    const model = await loadModelFile('models/lenet-mnist.json');
    const w = weights(model);
    const bytes = exportOnnx(model.graph, w, { outputs: ['logits'] });
    const imp = importOnnx(bytes);
    const b = new GraphBuilder();
    const outs = imp.build(b);
    b.output('logits', outs.logits!);
    const x = feeds(model);
    const prog = await Program.load(device, emitArtifact(b.build()), { seed: 0 });
    const ref = await Program.load(device, compile(model).forward, { seed: 0 });
    try {
      for (const [k, v] of imp.values) prog.write(k, v);
      const got = await prog.step({ x: x.x! }, ['logits']);
      const want = await ref.step(x, ['logits']);
      closeTo(got!.get('logits')!, want!.get('logits')!, 'round trip');
    } finally {
      prog.destroy();
      ref.destroy();
    }
  });
});
