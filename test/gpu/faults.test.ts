/**
 * @file Device faults on the real adapter, each injected for real: (a) a shader corrupted by hand
 * is caught by an error scope and reported as a DeviceError naming its kernel, and a step that
 * fails validation on the GPU fails its reads instead of returning stale numbers; (b) a program
 * that exceeds the device's limits (a tensor over maxStorageBufferBindingSize, more storage
 * buffers than maxStorageBuffersPerShaderStage) is refused, naming the limit, before any GPU
 * object exists; (c) `device.destroy()` in the middle of a run makes the next step or read fail
 * with a DeviceError, in the runtime and in the trainer, without hanging; (d) the trainer with
 * `recover` gets a new device, reloads the last checkpoint and finishes with exactly the
 * parameters, losses and evaluation of an uninterrupted run of the same schedule.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emitArtifact } from '../../src/compile.js';
import { mnistSource } from '../../src/data/source.js';
import { GraphBuilder } from '../../src/ir/builder.js';
import { DeviceError } from '../../src/ir/errors.js';
import type { Artifact } from '../../src/runtime/artifact.js';
import { deviceHealth, deviceLimits, getDevice, type GetDeviceOptions } from '../../src/runtime/device.js';
import { Program } from '../../src/runtime/program.js';
import { loadCheckpointFile } from '../../src/train/checkpoint-file.js';
import { train, type TrainOptions } from '../../src/train/trainer.js';
import { expectGpuMatches, randomEnv } from './harness.js';

const devices: GPUDevice[] = [];
/** A device of its own for each test that breaks one (all destroyed at the end). */
async function freshDevice(opts: GetDeviceOptions = {}): Promise<GPUDevice> {
  const d = await getDevice({ quiet: true, ...opts });
  devices.push(d);
  return d;
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'adjoint-faults-'));
});
afterAll(() => {
  for (const d of devices) d.destroy();
  rmSync(dir, { recursive: true, force: true });
});

/** Fails the test instead of hanging when a promise never settles. */
function within<T>(p: Promise<T>, ms = 10_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hang = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms: a hang`)), ms)));
  return Promise.race([p, hang]).finally(() => clearTimeout(timer));
}

/** Counts GPU objects created and command buffers submitted while `f` runs. */
async function counting(f: () => Promise<unknown>): Promise<{ buffers: number; pipelines: number; submits: number }> {
  const dev = GPUDevice.prototype;
  const queue = GPUQueue.prototype;
  const orig = { b: dev.createBuffer, p: dev.createComputePipeline, s: queue.submit };
  const n = { buffers: 0, pipelines: 0, submits: 0 };
  dev.createBuffer = function (this: GPUDevice, d) { n.buffers++; return orig.b.call(this, d); };
  dev.createComputePipeline = function (this: GPUDevice, d) { n.pipelines++; return orig.p.call(this, d); };
  queue.submit = function (this: GPUQueue, c) { n.submits++; return orig.s.call(this, c); };
  try {
    await f();
  } finally {
    Object.assign(dev, { createBuffer: orig.b, createComputePipeline: orig.p });
    queue.submit = orig.s;
  }
  return n;
}

/** Two kernels: s = sum(x, 1) and y = x @ w. */
function twoKernels(): Artifact {
  const b = new GraphBuilder();
  const x = b.input('x', [4, 8]);
  b.output('s', b.reduceSum(x, 1));
  b.output('y', b.matmul(x, b.input('w', [8, 3])));
  return emitArtifact(b.build(), { name: 'two' });
}

/** p <- p + mean(x); s = sum(p) before the update. */
function accumulator(): Artifact {
  const b = new GraphBuilder();
  const x = b.input('x', [4]);
  const p = b.param('p', [3], { kind: 'constant', value: 1 });
  b.output('s', b.reduceSum(p));
  b.update('p', b.add_(p, b.reduceMean(x)));
  return emitArtifact(b.build(), { name: 'acc' });
}

describe('(a) GPU validation errors are caught and name the kernel', () => {
  it('a shader corrupted by hand: DeviceError naming its kernel, captured, the device still usable', async () => {
    const device = await freshDevice();
    const good = twoKernels();
    const reduce = good.dispatches.find((d) => d.label.startsWith('reduce_sum'))!;
    expect(reduce.label).toBe('reduce_sum reduce(serial)');
    const shaders = good.shaders.map((s, i) => (i === reduce.shader ? s.replace('out[i] = ', 'out[i] = undeclared_value + ') : s));
    expect(shaders[reduce.shader]).toContain('undeclared_value');
    const bad: Artifact = { ...good, shaders };

    for (const strictShaders of [false, true]) {
      const err = await Program.load(device, bad, { strictShaders }).then(() => undefined, (e: unknown) => e);
      expect(err, `strictShaders ${strictShaders}`).toBeInstanceOf(DeviceError);
      const msg = (err as Error).message;
      expect(msg).toMatch(new RegExp(`shader ${reduce.shader} \\(reduce_sum reduce\\(serial\\)\\)`));
      expect(msg).toContain('undeclared_value');
      expect(msg).not.toContain('matmul');
    }
    // Captured by the load's error scopes, not left to the device as uncaptured errors.
    expect(deviceHealth(device).errorCount).toBe(0);

    // The device is still usable: the good program loads and computes (hand-checked sums).
    const prog = await Program.load(device, good, { strictShaders: true });
    const x = Float32Array.from({ length: 32 }, (_, i) => i);
    const out = await prog.step({ x, w: new Float32Array(24).fill(1) }, ['s', 'y']);
    expect(Array.from(out!.get('s')!)).toEqual([28, 92, 156, 220]);
    expect(Array.from(out!.get('y')!)).toEqual([28, 28, 28, 92, 92, 92, 156, 156, 156, 220, 220, 220]);
    prog.destroy();
    // And no error scope was left open by the failed loads (it would swallow this error).
    device.createBuffer({ size: 4, usage: 0xffffff });
    await device.queue.onSubmittedWorkDone();
    await new Promise((r) => setTimeout(r, 50));
    expect(deviceHealth(device).errorCount).toBe(1);
  });

  it('a step that fails validation on the GPU rejects its read and every later call', async () => {
    const device = await freshDevice();
    const prog = await Program.load(device, accumulator(), { strictShaders: true });
    const x = new Float32Array([1, 2, 3, 4]);
    expect((await prog.step({ x }, ['s']))!.get('s')![0]).toBe(3);
    // Fault injection: the parameter's buffer is destroyed under the program.
    const buffers = (prog as unknown as { buffers: GPUBuffer[] }).buffers;
    buffers[prog.artifact.params[0]!.region.arena]!.destroy();
    const err = await within(prog.step({}, ['s'])!.then(() => undefined, (e: unknown) => e));
    expect(err).toBeInstanceOf(DeviceError);
    // Each dispatch that binds the buffer is named (found by validating each alone, running nothing).
    const labels = prog.artifact.dispatches.map((d, i) => `dispatch ${i}: ${d.label}`);
    expect(labels).toEqual(['dispatch 0: reduce_sum reduce(serial)', 'dispatch 1: reduce_mean reduce(serial)', 'dispatch 2: add map']);
    expect((err as Error).message).toMatch(/^program "acc": step 2 \(dispatch 0: reduce_sum reduce\(serial\); dispatch 2: add map\) failed: .*destroyed/s);
    expect(() => prog.step({ x }, ['s'])).toThrow((err as Error).message);
    await expect(prog.read('p')).rejects.toThrow(DeviceError);
    expect(deviceHealth(device).errorCount).toBe(0);
  });
});

describe('(b) a program over the device limits is refused before anything is created or dispatched', () => {
  const MIB = 1 << 20;

  it('a tensor bigger than maxStorageBufferBindingSize', async () => {
    const device = await freshDevice({ requiredLimits: { maxStorageBufferBindingSize: MIB } });
    expect(deviceLimits(device).maxStorageBufferBindingSize).toBe(MIB);
    const b = new GraphBuilder();
    b.output('y', b.mul(b.input('x', [512, 1024]), 2)); // 2 MiB
    const g = b.build();
    // Compiled for the device's limits: the compiler refuses.
    expect(() => emitArtifact(g, { limits: deviceLimits(device) })).toThrow(DeviceError);
    expect(() => emitArtifact(g, { limits: deviceLimits(device) })).toThrow(/exceeds the device's limits .*maxStorageBufferBindingSize 1048576/);
    // Compiled for the spec defaults and loaded anyway: the runtime refuses, creating nothing.
    const a = emitArtifact(g);
    let err: unknown;
    const n = await counting(() => Program.load(device, a).catch((e: unknown) => (err = e)));
    expect(err).toBeInstanceOf(DeviceError);
    expect((err as Error).message).toBe(`program "model" cannot run on this device: kernel "mul map" binds ${2 * MIB} bytes at once, but the device's maxStorageBufferBindingSize is ${MIB}`);
    expect(n).toEqual({ buffers: 0, pipelines: 0, submits: 0 });
  });

  it('an arena bigger than maxStorageBufferBindingSize whose bindings fit is not refused', async () => {
    const device = await freshDevice({ requiredLimits: { maxStorageBufferBindingSize: MIB } });
    const b = new GraphBuilder();
    const x = b.input('x', [192, 1024]); // 768 KiB; two such outputs share one 1.5 MiB arena
    b.output('a', b.mul(x, 2));
    b.output('b', b.add_(x, 1));
    const g = b.build();
    const a = emitArtifact(g, { limits: deviceLimits(device) });
    expect(Math.max(...a.arenas.map((r) => r.bytes))).toBeGreaterThan(MIB);
    await expectGpuMatches(device, g, randomEnv(g), 0, { limits: deviceLimits(device) });
  });

  it('more storage buffers in one kernel than maxStorageBuffersPerShaderStage', async () => {
    const device = await freshDevice({ maxStorageBuffersPerShaderStage: 4 });
    const b = new GraphBuilder();
    const xs = [0, 1, 2, 3, 4].map((i) => b.input(`x${i}`, [16]));
    b.output('y', xs.slice(1).reduce((acc, x) => b.add_(acc, x), xs[0]!));
    const g = b.build();
    // Compiled for the spec's 8: one kernel with 6 bindings, refused by the runtime.
    const a = emitArtifact(g);
    expect(a.dispatches.map((d) => d.bindings.length)).toEqual([6]);
    let err: unknown;
    const n = await counting(() => Program.load(device, a).catch((e: unknown) => (err = e)));
    expect(err).toBeInstanceOf(DeviceError);
    expect((err as Error).message).toBe(`program "model" cannot run on this device: kernel "add+add+add+add map" binds 6 storage buffers, but the device's maxStorageBuffersPerShaderStage is 4`);
    expect(n).toEqual({ buffers: 0, pipelines: 0, submits: 0 });
    // Compiled for the device: fusion splits the kernel to fit, and the result is right.
    await expectGpuMatches(device, g, randomEnv(g), 1e-6, { limits: deviceLimits(device) });
    // A single op that reads more buffers than the device allows cannot be split: the compiler refuses.
    const c = new GraphBuilder();
    c.output('y', c.concat([0, 1, 2, 3].map((i) => c.input(`x${i}`, [2])), 0));
    expect(() => emitArtifact(c.build(), { limits: deviceLimits(device) })).toThrow(/reads 4 buffers and cannot be split below the device's 4 storage buffers per shader stage/);
  });
});

describe('(c) a device destroyed mid-run is reported, not hung on or silently ignored', () => {
  it('the runtime: the next step and read fail with a DeviceError', async () => {
    const device = await freshDevice();
    const prog = await Program.load(device, accumulator());
    const x = new Float32Array([1, 2, 3, 4]);
    expect((await prog.step({ x }, ['s']))!.get('s')![0]).toBe(3);
    prog.step({ x });
    device.destroy();
    // Right away (the loss is not known yet): the step's read fails.
    const first = await within((async () => prog.step({ x }, ['s']))().then(() => undefined, (e: unknown) => e));
    expect(first).toBeInstanceOf(DeviceError);
    expect((first as Error).message).toMatch(/^program "acc": /);
    // Once the loss is known, every call says so.
    await within(device.lost);
    expect(() => prog.step({ x })).toThrow(/program "acc": cannot run step \d+: the WebGPU device was lost \(destroyed\b/);
    await expect(within(prog.read('p'))).rejects.toThrow(/cannot read "p": the WebGPU device was lost \(destroyed\b/);
    expect(() => prog.write('x', x)).toThrow(DeviceError);
    await expect(within(Program.load(device, accumulator()))).rejects.toThrow(/cannot load: the WebGPU device was lost/);
  });

  it('the trainer without recover: the run fails with a DeviceError', async () => {
    const device = await freshDevice();
    const { train: t, forward } = logregPrograms();
    const run = train(device, { train: t, forward }, data(), {
      ...schedule(join(dir, 'norecover.ckpt')),
      afterStep: (step, d) => { if (step === 6) d.destroy(); },
    });
    await expect(within(run, 60_000)).rejects.toThrow(DeviceError);
  });
});

describe('(d) the trainer recovers from a lost device', () => {
  it('new device, last checkpoint reloaded, same final parameters, losses and evaluation as without the fault', async () => {
    const programs = logregPrograms();
    const plain = await train(await freshDevice(), programs, data(), schedule(join(dir, 'plain.ckpt')));
    expect(plain.recoveries).toBe(0);

    const lines: string[] = [];
    let destroyedAt = 0;
    const faulty = await within(train(await freshDevice(), programs, data(), {
      ...schedule(join(dir, 'faulty.ckpt')),
      log: (line, final) => { if (final) lines.push(line); },
      // Step 7 is in the middle of epoch 2: the last checkpoint is epoch 1's (step 4).
      afterStep: (step, d) => {
        if (step === 7 && !destroyedAt) {
          destroyedAt = step;
          d.destroy();
        }
      },
      recover: { getDevice: () => freshDevice() },
    }), 60_000);

    expect(destroyedAt).toBe(7);
    expect(faulty.recoveries).toBe(1);
    expect(lines.some((l) => /device was lost \(destroyed: .*\); recovering on a new device from .*faulty\.ckpt/.test(l)), lines.join('\n')).toBe(true);
    expect(lines).toContain(`resumed from ${join(dir, 'faulty.ckpt')} at epoch 1`);
    expect(faulty.steps).toBe(12);

    // The very same numbers: the updates are deterministic, and nothing of the lost epoch remains.
    const a = loadCheckpointFile(join(dir, 'plain.ckpt'));
    const b = loadCheckpointFile(join(dir, 'faulty.ckpt'));
    expect(b.step).toBe(12);
    expect(Array.from(b.tensors.get('t')!)).toEqual([12]);
    for (const [name, t] of a.tensors) expect(Array.from(b.tensors.get(name)!), name).toEqual(Array.from(t));
    expect(faulty.losses).toEqual(plain.losses);
    expect(faulty.losses.map((l) => l.step)).toEqual([2, 4, 6, 8, 10, 12]);
    expect(faulty.testLoss).toBe(plain.testLoss);
    expect(faulty.accuracy).toBe(plain.accuracy);
    // It learned something: the loss went down from ln(10).
    expect(plain.losses.at(-1)!.loss).toBeLessThan(plain.losses[0]!.loss);
  });

  it('recover without a checkpoint file is refused up front', async () => {
    await expect(train(await freshDevice(), logregPrograms(), data(), { epochs: 1, recover: { getDevice: () => freshDevice() } }))
      .rejects.toThrow('recover needs a checkpoint file');
  });
});

const B = 16;

/** MNIST, a small split: 16 digits per batch, 10 held-out batches. */
const data = () => mnistSource(640, 160);

/** 3 epochs of 4 steps, the loss read every 2 steps, a checkpoint after each epoch. */
function schedule(checkpoint: string): TrainOptions {
  return { epochs: 3, maxStepsPerEpoch: 4, readEvery: 2, seed: 5, checkpoint, log: () => undefined };
}

/**
 * Logistic regression on MNIST with its gradient written by hand (no autodiff): logits = x w + b,
 * loss = mean cross-entropy, d loss / d logits = (softmax(logits) - onehot(y)) / B, plain SGD,
 * and a state `t` counting steps (so state is checkpointed and restored too).
 */
function logregPrograms(): { train: Artifact; forward: Artifact } {
  const graph = (training: boolean) => {
    const b = new GraphBuilder();
    const x = b.input('x', [B, 784]);
    const y = b.input('y', [B], 'i32');
    const w = b.param('w', [784, 10], { kind: 'glorot_uniform' });
    const bias = b.param('b', [10], { kind: 'zeros' });
    const logits = b.linear(x, w, bias);
    b.output('loss', b.softmaxCrossEntropy(logits, y));
    if (!training) {
      b.output('logits', logits);
      return b.build();
    }
    const t = b.state('t', [], { kind: 'zeros' });
    const g = b.mul(b.sub(b.softmax(logits), b.oneHot(y, 10)), 1 / B);
    const lr = 0.5;
    b.update('w', b.sub(w, b.mul(b.matmul(b.transpose(x), g), lr)));
    b.update('b', b.sub(bias, b.mul(b.reduceSum(g, 0), lr)));
    b.update('t', b.add_(t, 1));
    return b.build();
  };
  return {
    train: emitArtifact(graph(true), { name: 'logreg', loss: 'loss' }),
    forward: emitArtifact(graph(false), { name: 'logreg-forward', loss: 'loss' }),
  };
}
