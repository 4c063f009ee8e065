/**
 * @file The runtime's public surface (`adjoint/runtime`): getting a WebGPU device in Node or a
 * browser. The runtime needs none of the compiler, so a browser bundle can import only this.
 */
export {
  getDevice,
  deviceLimits,
  adapterInfo,
  isSoftwareFallback,
  deviceHealth,
  assertDeviceHealthy,
  COMPUTE_LIMITS,
  MAX_RECORDED_ERRORS,
} from './device.js';
export type { GetDeviceOptions, ComputeLimitName, ComputeLimits, DeviceHealth } from './device.js';
