/**
 * @file The runtime on a real adapter: one program, many steps. Updates persist across steps,
 * reads of a step's output do not block later steps and see that step's value, parameters are
 * read and written by name, and after warm-up a step creates no buffer, bind group or pipeline.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compile, emitArtifact } from '../../src/compile.js';
import { GraphBuilder } from '../../src/ir/builder.js';
import { DeviceError } from '../../src/ir/errors.js';
import { getDevice } from '../../src/runtime/device.js';
import { Program } from '../../src/runtime/program.js';

let device: GPUDevice;
beforeAll(async () => { device = await getDevice({ quiet: true }); });
afterAll(() => device?.destroy());

/** p <- p + mean(x); output s = sum(p) before the update. */
function accumulator() {
  const b = new GraphBuilder();
  const x = b.input('x', [4]);
  const p = b.param('p', [3], { kind: 'constant', value: 1 });
  b.output('s', b.reduceSum(p));
  b.update('p', b.add_(p, b.reduceMean(x)));
  return emitArtifact(b.build(), { name: 'acc' });
}

describe('runtime program', () => {
  it('keeps updates across steps and reads each step\'s output without blocking', async () => {
    const prog = await Program.load(device, accumulator(), { strictShaders: true });
    const x = new Float32Array([1, 2, 3, 4]); // mean 2.5
    const reads = [prog.step({ x }, ['s']), prog.step({ x }, ['s']), prog.step({ x }, ['s'])];
    const got = await Promise.all(reads.map(async (r) => (await r!).get('s')![0]));
    expect(got).toEqual([3, 3 + 7.5, 3 + 15]);
    expect(Array.from(await prog.read('p'))).toEqual([8.5, 8.5, 8.5]);
    prog.write('p', new Float32Array([0, 0, 1]));
    expect((await prog.step({ x }, ['s']))!.get('s')![0]).toBe(1);
    expect(() => prog.write('nope', new Float32Array(1))).toThrow(/no input, output, parameter or state named "nope"/);
    expect(() => prog.write('p', new Float32Array(2))).toThrow(/"p" takes 3 values/);
    prog.destroy();
  });

  it('creates no GPU buffer, bind group or pipeline in 100 training steps after warm-up', async () => {
    const b = new GraphBuilder();
    const h = b.relu(b.linear(b.input('x', [8, 16]), b.param('w1', [16, 32]), b.param('b1', [32])));
    b.output('loss', b.softmaxCrossEntropy(b.linear(h, b.param('w2', [32, 4]), b.param('b2', [4])), b.input('y', [8], 'i32')));
    const { train } = compile({ name: 'mlp', graph: b.build(), loss: 'loss', optimizer: { kind: 'adam', lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 } });
    const prog = await Program.load(device, train!);
    const feeds = { x: Float32Array.from({ length: 128 }, (_, i) => Math.sin(i)), y: Int32Array.from({ length: 8 }, (_, i) => i % 4) };
    const first = (await prog.step(feeds, ['loss']))!.get('loss')![0]!;
    const counts = { buffer: 0, bindGroup: 0, pipeline: 0 };
    const proto = Object.getPrototypeOf(device) as GPUDevice;
    const orig = { b: proto.createBuffer, g: proto.createBindGroup, p: proto.createComputePipeline, pa: proto.createComputePipelineAsync };
    proto.createBuffer = function (this: GPUDevice, d) { counts.buffer++; return orig.b.call(this, d); };
    proto.createBindGroup = function (this: GPUDevice, d) { counts.bindGroup++; return orig.g.call(this, d); };
    proto.createComputePipeline = function (this: GPUDevice, d) { counts.pipeline++; return orig.p.call(this, d); };
    proto.createComputePipelineAsync = function (this: GPUDevice, d) { counts.pipeline++; return orig.pa.call(this, d); };
    try {
      const pending: Promise<unknown>[] = [];
      for (let i = 0; i < 100; i++) {
        const r = prog.step(feeds, i % 10 === 9 ? ['loss'] : []);
        if (r) pending.push(r);
        if (pending.length >= 2) await pending.shift();
      }
      await Promise.all(pending);
      // The wrapper itself is live: a deliberate creation is counted.
      device.createBuffer({ size: 4, usage: GPUBufferUsage.STORAGE }).destroy();
    } finally {
      Object.assign(proto, { createBuffer: orig.b, createBindGroup: orig.g, createComputePipeline: orig.p, createComputePipelineAsync: orig.pa });
    }
    expect(counts).toEqual({ buffer: 1, bindGroup: 0, pipeline: 0 });
    // The 100 steps did train: the same batch's loss fell.
    expect((await prog.step(feeds, ['loss']))!.get('loss')![0]!).toBeLessThan(first * 0.5);
    prog.destroy();
  });

  it('refuses, before any dispatch, a program that needs more than the device allows', async () => {
    const b = new GraphBuilder();
    b.output('y', b.add_(b.input('x', [4]), 1));
    const a = emitArtifact(b.build(), { limits: { maxComputeWorkgroupStorageSize: 1 << 30 } });
    await expect(Program.load(device, a)).rejects.toThrow(DeviceError);
    await expect(Program.load(device, a)).rejects.toThrow(/maxComputeWorkgroupStorageSize/);
  });
});
