/**
 * @file The one Dawn GPU object of a benchmark process. The peers (TF.js WebGPU, jax-js) look for
 * `navigator.gpu`, which Node 20 lacks, so this module creates Dawn's `gpu` through the `webgpu`
 * package, installs `globalThis.navigator = { gpu, userAgent, hardwareConcurrency }` and the WebGPU classes as globals, and wraps
 * the classes' prototypes with the counters of `counters.ts` — all before any peer is imported
 * (callers import peers with `import()` after {@link installGpu} resolved). The adapter is chosen
 * as src/runtime/device.ts chooses it (`ADJOINT_ADAPTER`: default, swiftshader, lavapipe or an ICD
 * path): the default is the first adapter Dawn finds, else Chromium's SwiftShader.
 */
import { existsSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { create, globals } from 'webgpu';
import { adapterLabel, applyAdapterChoice } from '../src/runtime/device.js';
import { installCounters, type WebGpuClasses } from './counters.js';

const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

/** What the benchmark knows about its GPU. */
export interface BenchGpu {
  /** Dawn's GPU object, also installed as `navigator.gpu`. */
  readonly gpu: GPU;
  /** One line for report headers: vendor / architecture / device / description. */
  readonly adapter: string;
  /** The adapter's short name: `swiftshader`, `lavapipe`, or a GPU's vendor and device. */
  readonly label: string;
}

let installed: Promise<BenchGpu> | null = null;
/** Kept referenced for the life of the process: Dawn's objects die with the last reference to it. */
let gpuObject: GPU | null = null;

/** The WebGPU classes of the `webgpu` package (its `globals` export is typed as a bare `Object`). */
export function dawnClasses(): WebGpuClasses {
  return globals as WebGpuClasses;
}

async function install(): Promise<BenchGpu> {
  // Dawn reads the Vulkan ICD list when the GPU object is created, so this must come first.
  const icd = await applyAdapterChoice();
  // Dawn prints "XDG_RUNTIME_DIR is invalid" twice per create() without it.
  process.env.XDG_RUNTIME_DIR ??= tmpdir();
  Object.assign(globalThis, globals);
  installCounters(dawnClasses());
  let gpu = create([]);
  let adapter = await gpu.requestAdapter();
  const userChose = icd !== null || process.env.VK_ICD_FILENAMES !== undefined || process.env.VK_DRIVER_FILES !== undefined;
  if (!adapter && !userChose && existsSync(SWIFTSHADER_ICD)) {
    // No adapter from the machine's drivers: a fresh GPU object with SwiftShader alone.
    process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
    gpu = create([]);
    adapter = await gpu.requestAdapter();
  }
  gpuObject = gpu;
  // jax-js also reads navigator.userAgent (Firefox and mobile tuning) and hardwareConcurrency.
  const navigator = { gpu, userAgent: `Node.js/${process.versions.node}`, hardwareConcurrency: availableParallelism() };
  Object.defineProperty(globalThis, 'navigator', { value: navigator, configurable: true, writable: true });
  if (!adapter) {
    throw new Error(
      `no WebGPU adapter (VK_ICD_FILENAMES=${process.env.VK_ICD_FILENAMES ?? 'unset'}): install a Vulkan driver, e.g. apt-get install -y libvulkan1 chromium for SwiftShader`,
    );
  }
  const info = adapter.info;
  const name = [info.vendor, info.architecture, info.device, info.description].filter((s) => s !== '').join(' / ');
  return { gpu, adapter: name === '' ? 'unknown adapter' : name, label: adapterLabel(info) };
}

/**
 * Creates the GPU once per process, installs `navigator.gpu` and the counters, and describes the
 * adapter. Import the peers only after this resolved.
 */
export function installGpu(): Promise<BenchGpu> {
  installed ??= install();
  return installed;
}

/** The GPU object, once {@link installGpu} resolved. */
export function benchGpu(): GPU {
  if (!gpuObject) throw new Error('internal: installGpu() has not run');
  return gpuObject;
}
