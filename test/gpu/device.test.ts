/**
 * @file Real-adapter tests of the runtime's device setup (no mocked GPU): the device gets the
 * adapter's storage-buffer limit rather than the default, a WGSL compute shader with a
 * workgroup-memory reduction runs and reads back exact numbers, a caller can cap the storage-buffer
 * limit below the default (for binding-split tests), and errors and loss are recorded, not thrown.
 * Choosing the adapter (`ADJOINT_ADAPTER`, `selectAdapter`, `--adapter`): each named adapter is the
 * one the device runs on and runs a shader, `default` is the adapter Dawn offers first, and a bad
 * choice is one clear line.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { DeviceError } from '../../src/ir/errors.js';
import { adapterChoice, adapterInfo, adapterLabel, adapterName, assertDeviceHealthy, deviceHealth, deviceLimits, getDevice, selectAdapter } from '../../src/runtime/index.js';
import { takeAdapterFlag } from '../../src/runtime/device.js';

const devices: GPUDevice[] = [];
async function device(options?: Parameters<typeof getDevice>[0]): Promise<GPUDevice> {
  const d = await getDevice(options);
  devices.push(d);
  return d;
}

afterAll(() => {
  for (const d of devices) d.destroy();
});

/** An adapter of our own, as the oracle for the limits (getDevice has set up the driver by now). */
async function independentAdapter(): Promise<GPUAdapter> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) {
    const a = await nav.gpu.requestAdapter();
    if (!a) throw new Error('no adapter');
    return a;
  }
  const { create } = await import('webgpu');
  const a = await create([]).requestAdapter();
  if (!a) throw new Error('no adapter');
  return a;
}

const N = 1000;
const WG = 256;
const SHADER = /* wgsl */ `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> partial: array<f32>;
var<workgroup> scratch: array<f32, ${WG}>;

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(workgroup_id) wid: vec3u) {
  let i = gid.x;
  var v = 0.0;
  if (i < arrayLength(&x)) {
    v = x[i] * 2.0 + 1.0;
    y[i] = v;
  }
  scratch[lid.x] = v;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s = s >> 1u) {
    if (lid.x < s) {
      scratch[lid.x] = scratch[lid.x] + scratch[lid.x + s];
    }
    workgroupBarrier();
  }
  if (lid.x == 0u) {
    partial[wid.x] = scratch[0];
  }
}
`;

async function readBack(d: GPUDevice, src: GPUBuffer, size: number): Promise<Float32Array> {
  const staging = d.createBuffer({ size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const enc = d.createCommandEncoder();
  enc.copyBufferToBuffer(src, 0, staging, 0, size);
  d.queue.submit([enc.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const out = new Float32Array(staging.getMappedRange().slice(0));
  staging.unmap();
  staging.destroy();
  return out;
}

describe('getDevice', () => {
  it("gets the adapter's storage-buffer limit, not the default", async () => {
    const d = await device();
    const adapter = await independentAdapter();
    expect(d.limits.maxStorageBuffersPerShaderStage).toBe(adapter.limits.maxStorageBuffersPerShaderStage);
    expect(d.limits.maxStorageBufferBindingSize).toBe(adapter.limits.maxStorageBufferBindingSize);
    expect(d.limits.maxComputeWorkgroupStorageSize).toBe(adapter.limits.maxComputeWorkgroupStorageSize);
    expect(deviceLimits(d).maxStorageBuffersPerShaderStage).toBe(adapter.limits.maxStorageBuffersPerShaderStage);
    // The subgroups feature is requested where offered: the compiler's subgroup variants need it.
    expect(deviceLimits(d).subgroups).toBe(adapter.features.has('subgroups'));
    const info = adapterInfo(d);
    expect(info).toContain(`storage buffers/stage ${adapter.limits.maxStorageBuffersPerShaderStage}`);
    console.log(info);
  });

  it('runs a compute shader with a workgroup reduction and reads back exact numbers', async () => {
    const d = await device();
    const module = d.createShaderModule({ code: SHADER });
    const compilation = await module.getCompilationInfo();
    expect(compilation.messages.map((m) => `${m.type}: ${m.message}`)).toEqual([]);
    d.pushErrorScope('validation');
    const pipeline = d.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
    const groups = Math.ceil(N / WG);
    const x = new Float32Array(N).map((_, i) => i);
    const xBuf = d.createBuffer({ size: N * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
    d.queue.writeBuffer(xBuf, 0, x);
    const yBuf = d.createBuffer({ size: N * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
    const pBuf = d.createBuffer({ size: groups * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
    const bindGroup = d.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [xBuf, yBuf, pBuf].map((buffer, binding) => ({ binding, resource: { buffer } })),
    });
    const enc = d.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(groups);
    pass.end();
    d.queue.submit([enc.finish()]);
    expect(await d.popErrorScope()).toBeNull();

    const y = await readBack(d, yBuf, N * 4);
    const partial = await readBack(d, pBuf, groups * 4);
    // Integers below 2^24 are exact in f32, whatever the order of the additions.
    expect(Array.from(y)).toEqual(Array.from(x, (v) => v * 2 + 1));
    const expected = Array.from({ length: groups }, (_, g) => {
      let s = 0;
      for (let i = g * WG; i < Math.min(N, (g + 1) * WG); i++) s += 2 * i + 1;
      return s;
    });
    expect(Array.from(partial)).toEqual(expected);
    expect(expected.reduce((a, b) => a + b)).toBe(N * N);
    assertDeviceHealthy(d);
  });

  it('caps maxStorageBuffersPerShaderStage at 4 when asked', async () => {
    const d = await device({ maxStorageBuffersPerShaderStage: 4 });
    expect(deviceLimits(d).maxStorageBuffersPerShaderStage).toBe(4);
    // WebGPU never reports a limit below the spec default (8); deviceLimits carries the cap.
    expect(d.limits.maxStorageBuffersPerShaderStage).toBeGreaterThanOrEqual(4);
    expect(adapterInfo(d)).toContain('storage buffers/stage 4');
  });

  it('refuses limits above the adapter with a DeviceError', async () => {
    const adapter = await independentAdapter();
    const tooMany = adapter.limits.maxStorageBuffersPerShaderStage + 1;
    await expect(getDevice({ maxStorageBuffersPerShaderStage: tooMany })).rejects.toThrowError(DeviceError);
    await expect(getDevice({ requiredLimits: { noSuchLimit: 1 } })).rejects.toThrowError(/no such limit/);
  });

  it('records uncaptured errors and loss instead of throwing', async () => {
    const d = await getDevice({ quiet: true });
    d.createBuffer({ size: 4, usage: 0xffffff }); // invalid usage: an uncaptured validation error
    await d.queue.onSubmittedWorkDone();
    await new Promise((r) => setTimeout(r, 50));
    expect(deviceHealth(d).errorCount).toBe(1);
    expect(() => assertDeviceHealthy(d)).toThrowError(DeviceError);
    d.destroy();
    await d.lost;
    expect(deviceHealth(d).lost?.reason).toBe('destroyed');
  });
});

/** Runs the reduction shader on 1000 values and checks the exact doubled values come back. */
async function runsShader(d: GPUDevice): Promise<void> {
  const pipeline = d.createComputePipeline({ layout: 'auto', compute: { module: d.createShaderModule({ code: SHADER }), entryPoint: 'main' } });
  const x = new Float32Array(N).map((_, i) => i);
  const xBuf = d.createBuffer({ size: N * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
  d.queue.writeBuffer(xBuf, 0, x);
  const yBuf = d.createBuffer({ size: N * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  const pBuf = d.createBuffer({ size: Math.ceil(N / WG) * 4, usage: GPUBufferUsage.STORAGE });
  const bindGroup = d.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [xBuf, yBuf, pBuf].map((buffer, binding) => ({ binding, resource: { buffer } })) });
  const enc = d.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bindGroup);
  pass.dispatchWorkgroups(Math.ceil(N / WG));
  pass.end();
  d.queue.submit([enc.finish()]);
  expect(Array.from(await readBack(d, yBuf, N * 4))).toEqual(Array.from(x, (v) => v * 2 + 1));
  assertDeviceHealthy(d);
}

const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';
const LAVAPIPE_ICD = '/usr/share/vulkan/icd.d/lvp_icd.json';

describe('choosing the adapter', () => {
  // This file's process keeps the choice it started with for the tests above; restored after.
  const startChoice = adapterChoice();
  afterAll(() => selectAdapter(startChoice));

  it('swiftshader by name: the device runs on SwiftShader', async () => {
    selectAdapter('swiftshader');
    const d = await device();
    expect(adapterName(d)).toBe('swiftshader');
    expect(adapterInfo(d)).toMatch(/^swiftshader: google \/ swiftshader/);
    await runsShader(d);
  });

  it('lavapipe by name: the device runs on lavapipe (or, where Mesa 25 is missing, one line saying what to install)', async () => {
    selectAdapter('lavapipe');
    if (existsSync(LAVAPIPE_ICD)) {
      const d = await device();
      expect(adapterName(d)).toBe('lavapipe');
      expect(adapterInfo(d)).toContain('llvmpipe');
      await runsShader(d);
    } else {
      await expect(getDevice({ quiet: true })).rejects.toThrowError(/adapter lavapipe: no ICD manifest .*bookworm-backports mesa-vulkan-drivers/);
    }
  });

  it('an ICD manifest by path, and the devices made before stay usable', async () => {
    selectAdapter('swiftshader');
    const before = await device();
    selectAdapter(SWIFTSHADER_ICD);
    const d = await device();
    expect(adapterName(d)).toBe('swiftshader');
    await runsShader(d);
    await runsShader(before);
  });

  it('default: the adapter Dawn offers first with the environment as the user set it', async () => {
    selectAdapter('default');
    const d = await device();
    // The oracle: a GPU object of our own, made with the environment getDevice restored.
    const plain = await (await import('webgpu')).create([]).requestAdapter();
    expect(adapterName(d)).toBe(plain ? adapterLabel(plain.info) : 'swiftshader');
    await runsShader(d);
  });

  it('a bad choice is one line naming it', async () => {
    expect(() => selectAdapter('nvidia')).toThrowError(/--adapter: "nvidia" is not an adapter \(default, swiftshader, lavapipe, or the path of a Vulkan ICD manifest \*\.json\)/);
    selectAdapter('/no/such/icd.json');
    await expect(getDevice({ quiet: true })).rejects.toThrowError(/adapter \/no\/such\/icd\.json: no such ICD manifest/);
    selectAdapter(startChoice);
  });

  it('--adapter is taken out of a command line', () => {
    expect(takeAdapterFlag(['train', 'm.json', '--adapter', 'swiftshader', '--epochs', '1'])).toEqual(['train', 'm.json', '--epochs', '1']);
    expect(adapterChoice()).toBe('swiftshader');
    expect(takeAdapterFlag(['inspect', '--adapter=lavapipe'])).toEqual(['inspect']);
    expect(adapterChoice()).toBe('lavapipe');
    expect(() => takeAdapterFlag(['train', '--adapter'])).toThrowError(/flag --adapter needs a value/);
    expect(() => takeAdapterFlag(['--adapter', 'gpu0'])).toThrowError(DeviceError);
    selectAdapter(startChoice);
  });
});
