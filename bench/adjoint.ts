/**
 * @file EXTENSION POINT: adjoint in the benchmark. This file will be filled in when the compiler
 * pipeline and the runtime land; until then `setup` throws {@link NotAvailableError} and the
 * harness leaves adjoint out of the table (ratios show "-"). No number is ever made up for it.
 *
 * How to fill it in (everything else is ready):
 * - `workloadModel(w)` (graphs.ts) is the workload as an IR model: params named as in
 *   `w.params` (canonical layouts: dense `[in, out]`, conv OIHW, images NCHW), inputs `x` and `y`
 *   (`y` = i32 labels `[B]` or the f32 target), output `loss`, optimizer SGD with `w.lr`.
 * - `init` (not timed): get a device with `getDevice()` from src/runtime/device.ts; it finds the
 *   benchmark's `navigator.gpu`, and the GPU classes are already wrapped by the counters, so
 *   dispatches, submits and buffers are counted like the peers'.
 * - `setup` (timed up to the end of the first step): compile that model for training and load the
 *   initial values from `params`.
 * - `step(batch, readLoss)`: upload `batch.x` and the labels/target, run one training step
 *   (one submit), and when `readLoss` read the loss back and return it.
 */
import { NotAvailableError, type Library, type Session } from './library.js';
import type { Workload } from './workloads.js';

export const adjoint: Library = {
  name: 'adjoint',
  description: 'adjoint: compiled WGSL training step (not available yet)',
  async init() {
    // Nothing to load yet; when the runtime lands, get the device here (getDevice()).
  },
  async setup(_w: Workload, _params: ReadonlyMap<string, Float32Array>): Promise<Session> {
    throw new NotAvailableError('the adjoint runtime has not landed yet (bench/adjoint.ts is the extension point)');
  },
};
