/**
 * @file The runtime's public surface (`adjoint/runtime`): getting a WebGPU device in Node or a
 * browser. The runtime needs none of the compiler, so a browser bundle can import only this.
 */
// The declarations use WebGPU's types (GPUDevice, …): a package consumer gets them from here.
/// <reference types="@webgpu/types" preserve="true" />
export {
  getDevice,
  deviceLimits,
  adapterInfo,
  adapterName,
  adapterLabel,
  selectAdapter,
  adapterChoice,
  ADAPTER_ENV,
  ADAPTER_NAMES,
  isSoftwareFallback,
  deviceHealth,
  assertDeviceHealthy,
  COMPUTE_LIMITS,
  MAX_RECORDED_ERRORS,
} from './device.js';
export type { AdapterName, GetDeviceOptions, ComputeLimitName, ComputeLimits, DeviceHealth } from './device.js';
export { Program } from './program.js';
export { gpuWaitSleeps } from './gpu-wait.js';
export type { HostArray, LoadOptions, KernelChoice, Profile, DispatchProfile } from './program.js';
export type { Artifact, TensorSlot, PersistentSlot, DispatchSpec, Region } from './artifact.js';
export { parseBundle, bundleFiles, ArtifactError, MANIFEST } from './bundle.js';
export type { Bundle } from './bundle.js';
export { encodeCheckpoint, decodeCheckpoint, decodeWeightsFile, CheckpointError } from './checkpoint.js';
export type { CheckpointData, CheckpointKind } from './checkpoint.js';
export { encodeSafetensors, decodeSafetensors } from './safetensors.js';
export type { NamedTensor, SafetensorsFile, TensorData } from './safetensors.js';
export { initValues } from './init.js';

import type { Artifact } from './artifact.js';
import { Program, type LoadOptions } from './program.js';

/** Loads an artifact onto a device: creates its buffers, pipelines and bind groups once. */
export function loadArtifact(device: GPUDevice, artifact: Artifact, opts: LoadOptions = {}): Promise<Program> {
  return Program.load(device, artifact, opts);
}
