/**
 * @file Real-adapter tests of the benchmark's GPU counters (bench/counters.ts): the prototypes the
 * `webgpu` package exports are the ones Dawn's objects use, so wrapping them counts a known piece
 * of work exactly — on a device of the benchmark's own GPU object and on one from the runtime's
 * getDevice(), which adjoint will use in the benchmark.
 */
import { describe, expect, it } from 'vitest';
import { checkCounters, resetCounts, snapshot } from '../../bench/counters.js';
import { dawnClasses, installGpu } from '../../bench/gpu.js';
import { getDevice } from '../../src/runtime/index.js';

describe('bench counters', () => {
  it('count dispatches, submits, buffers and bytes of a known workload on Dawn', async () => {
    const { gpu } = await installGpu();
    const adapter = await gpu.requestAdapter();
    const device = await adapter!.requestDevice();
    await checkCounters(device, dawnClasses());

    resetCounts();
    device.createBuffer({ size: 1024, usage: GPUBufferUsage.STORAGE }).destroy();
    device.createBuffer({ size: 4096, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    device.queue.submit([]);
    const c = snapshot();
    expect(c).toMatchObject({ buffers: 2, bufferBytes: 5120, buffersDestroyed: 1, bytesDestroyed: 1024, submits: 1, commandBuffers: 0, dispatches: 0 });
    device.destroy();
  });

  it('count the work of a device made by the runtime getDevice()', async () => {
    await installGpu();
    const device = await getDevice({ quiet: true });
    await checkCounters(device, dawnClasses());
    device.destroy();
  });
});
