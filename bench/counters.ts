/**
 * @file GPU work counters for the benchmark: compute dispatches, `queue.submit` calls, buffers and
 * bytes allocated, pipelines, bind groups, uploads and readbacks. They work by wrapping methods on
 * the WebGPU classes' prototypes (the classes the `webgpu` package exports as `globals`, which are
 * the prototypes of the objects Dawn hands out — {@link checkCounters} verifies both the identity
 * and the counts on a real device). Every library in the process is counted, whichever device it
 * made, so the harness runs one library at a time between {@link resetCounts} and {@link snapshot}.
 */

/** The WebGPU classes whose prototypes are wrapped. */
export interface WebGpuClasses {
  readonly GPUDevice: { readonly prototype: GPUDevice };
  readonly GPUQueue: { readonly prototype: GPUQueue };
  readonly GPUComputePassEncoder: { readonly prototype: GPUComputePassEncoder };
  readonly GPUBuffer: { readonly prototype: GPUBuffer };
}

/** Counts since the last {@link resetCounts}. */
export interface Counts {
  /** `dispatchWorkgroups` + `dispatchWorkgroupsIndirect` calls. */
  readonly dispatches: number;
  /** `queue.submit` calls. */
  readonly submits: number;
  /** Command buffers passed to `queue.submit`. */
  readonly commandBuffers: number;
  /** `createBuffer` calls. */
  readonly buffers: number;
  /** Sum of the sizes passed to `createBuffer`. */
  readonly bufferBytes: number;
  /** `GPUBuffer.destroy` calls and the sizes of the buffers destroyed. */
  readonly buffersDestroyed: number;
  readonly bytesDestroyed: number;
  readonly bindGroups: number;
  /** `createComputePipeline` + `createComputePipelineAsync` calls. */
  readonly pipelines: number;
  readonly shaderModules: number;
  /** `queue.writeBuffer` calls and bytes written (uploads). */
  readonly writeBuffers: number;
  readonly writeBytes: number;
  /** `GPUBuffer.mapAsync` calls (readbacks). */
  readonly mapAsyncs: number;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

const ZERO: Counts = {
  dispatches: 0,
  submits: 0,
  commandBuffers: 0,
  buffers: 0,
  bufferBytes: 0,
  buffersDestroyed: 0,
  bytesDestroyed: 0,
  bindGroups: 0,
  pipelines: 0,
  shaderModules: 0,
  writeBuffers: 0,
  writeBytes: 0,
  mapAsyncs: 0,
};

const counts: Mutable<Counts> = { ...ZERO };
const WRAPPED = Symbol.for('adjoint.bench.counted');

/** Replaces `proto[name]` by a function that calls `count` and then the original. */
function wrap(proto: object, name: string, count: (self: unknown, args: readonly unknown[]) => void): void {
  const original: unknown = Reflect.get(proto, name);
  if (typeof original !== 'function') throw new Error(`internal: WebGPU prototype has no method ${name}`);
  if ((original as { [WRAPPED]?: boolean })[WRAPPED]) return;
  const fn = original as (...args: unknown[]) => unknown;
  const wrapped = function (this: unknown, ...args: unknown[]): unknown {
    count(this, args);
    return fn.apply(this, args);
  };
  Object.defineProperty(wrapped, WRAPPED, { value: true });
  Object.defineProperty(proto, name, { value: wrapped, writable: true, configurable: true, enumerable: true });
}

function sizeOf(descriptor: unknown): number {
  const size = (descriptor as { size?: unknown } | undefined)?.size;
  return typeof size === 'number' ? size : 0;
}

/** Bytes `queue.writeBuffer(buffer, offset, data, dataOffset?, size?)` writes; sizes count elements of typed arrays. */
function writeSize(args: readonly unknown[]): number {
  const data = args[2];
  if (!ArrayBuffer.isView(data) && !(data instanceof ArrayBuffer)) return 0;
  const unit = ArrayBuffer.isView(data) && 'BYTES_PER_ELEMENT' in data ? Number(data.BYTES_PER_ELEMENT) : 1;
  const total = ArrayBuffer.isView(data) ? data.byteLength / unit : data.byteLength;
  const offset = typeof args[3] === 'number' ? args[3] : 0;
  const size = typeof args[4] === 'number' ? args[4] : total - offset;
  return size * unit;
}

/** Wraps the prototypes once (later calls do nothing). Call before any library creates a device. */
export function installCounters(classes: WebGpuClasses): void {
  const device = classes.GPUDevice.prototype;
  wrap(device, 'createBuffer', (_self, args) => {
    counts.buffers++;
    counts.bufferBytes += sizeOf(args[0]);
  });
  wrap(device, 'createBindGroup', () => void counts.bindGroups++);
  wrap(device, 'createComputePipeline', () => void counts.pipelines++);
  wrap(device, 'createComputePipelineAsync', () => void counts.pipelines++);
  wrap(device, 'createShaderModule', () => void counts.shaderModules++);
  const queue = classes.GPUQueue.prototype;
  wrap(queue, 'submit', (_self, args) => {
    counts.submits++;
    const list = args[0];
    counts.commandBuffers += Array.isArray(list) ? list.length : 0;
  });
  wrap(queue, 'writeBuffer', (_self, args) => {
    counts.writeBuffers++;
    counts.writeBytes += writeSize(args);
  });
  const pass = classes.GPUComputePassEncoder.prototype;
  wrap(pass, 'dispatchWorkgroups', () => void counts.dispatches++);
  wrap(pass, 'dispatchWorkgroupsIndirect', () => void counts.dispatches++);
  const buffer = classes.GPUBuffer.prototype;
  wrap(buffer, 'destroy', (self) => {
    counts.buffersDestroyed++;
    const size = (self as { size?: unknown }).size;
    counts.bytesDestroyed += typeof size === 'number' ? size : 0;
  });
  wrap(buffer, 'mapAsync', () => void counts.mapAsyncs++);
}

/** Sets every count to zero. */
export function resetCounts(): void {
  Object.assign(counts, ZERO);
}

/** A copy of the counts since the last reset. */
export function snapshot(): Counts {
  return { ...counts };
}

/** `b - a`, field by field. */
export function diffCounts(a: Counts, b: Counts): Counts {
  const out: Mutable<Counts> = { ...ZERO };
  for (const k of Object.keys(ZERO) as (keyof Counts)[]) out[k] = b[k] - a[k];
  return out;
}

const CHECK_WGSL = /* wgsl */ `
@group(0) @binding(0) var<storage, read_write> data: array<u32>;
@compute @workgroup_size(1) fn main() { data[0] = data[0] + 1u; }
`;

/**
 * Proves the wrapping counts Dawn's real objects: the device, queue and pass encoder must have the
 * wrapped prototypes, and a known piece of work (one 256-byte buffer, one pipeline, one bind group,
 * three dispatches in one pass, one submit, one readback) must be counted exactly, and must have
 * run (the shader increments a counter three times). Throws on any mismatch; restores the counts.
 */
export async function checkCounters(device: GPUDevice, classes: WebGpuClasses): Promise<void> {
  const saved = snapshot();
  const fail = (what: string): never => {
    Object.assign(counts, saved);
    throw new Error(`bench counters: ${what}`);
  };
  if (Object.getPrototypeOf(device) !== classes.GPUDevice.prototype) fail('the device is not an instance of the wrapped GPUDevice');
  if (Object.getPrototypeOf(device.queue) !== classes.GPUQueue.prototype) fail('the queue is not an instance of the wrapped GPUQueue');
  resetCounts();
  const buffer = device.createBuffer({ size: 256, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
  const readback = device.createBuffer({ size: 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const module = device.createShaderModule({ code: CHECK_WGSL });
  const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
  const group = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer } }] });
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  if (Object.getPrototypeOf(pass) !== classes.GPUComputePassEncoder.prototype) fail('the pass is not an instance of the wrapped GPUComputePassEncoder');
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, group);
  for (let i = 0; i < 3; i++) pass.dispatchWorkgroups(1);
  pass.end();
  encoder.copyBufferToBuffer(buffer, 0, readback, 0, 4);
  device.queue.submit([encoder.finish()]);
  await readback.mapAsync(GPUMapMode.READ);
  const value = new Uint32Array(readback.getMappedRange().slice(0))[0];
  readback.unmap();
  buffer.destroy();
  readback.destroy();
  const got = snapshot();
  const want: Partial<Counts> = {
    dispatches: 3,
    submits: 1,
    commandBuffers: 1,
    buffers: 2,
    bufferBytes: 260,
    buffersDestroyed: 2,
    bytesDestroyed: 260,
    bindGroups: 1,
    pipelines: 1,
    shaderModules: 1,
    mapAsyncs: 1,
  };
  for (const [k, v] of Object.entries(want)) {
    if (got[k as keyof Counts] !== v) fail(`${k} counted ${got[k as keyof Counts]}, expected ${v}`);
  }
  if (value !== 3) fail(`the check shader ran ${value ?? 'no'} times, expected 3`);
  Object.assign(counts, saved);
}
