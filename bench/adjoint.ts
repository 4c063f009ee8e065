/**
 * @file EXTENSION POINT: adjoint in the benchmark. This file will be filled in when the compiler
 * pipeline and the runtime land; until then `setup` throws {@link NotAvailableError} and the
 * harness leaves adjoint out of the table (ratios show "-"). No number is ever made up for it.
 *
 * How to fill it in (everything else is ready):
 * - `workloadModel(w)` (graphs.ts) is the workload as an IR model: params named as in
 *   `w.params` (canonical layouts: dense `[in, out]`, conv OIHW, images NCHW), inputs `x` and `y`
 *   (`y` = i32 labels `[B]` or the f32 target), output `loss`, optimizer SGD with `w.lr`.
 * - `setup`: compile that model for training, get a device with `getDevice()` from
 *   src/runtime/device.ts (the GPU classes are already wrapped by the counters, so dispatches,
 *   submits and buffers are counted like the peers'), load the initial values from `params`.
 * - `step(batch, readLoss)`: upload `batch.x` and the labels/target, run one training step
 *   (one submit), and when `readLoss` read the loss back and return it.
 */
import { NotAvailableError, type Library, type Session } from './library.js';
import type { Workload } from './workloads.js';

export const adjoint: Library = {
  name: 'adjoint',
  description: 'adjoint: compiled WGSL training step (not available yet)',
  async setup(_w: Workload, _params: ReadonlyMap<string, Float32Array>): Promise<Session> {
    throw new NotAvailableError('the adjoint runtime has not landed yet (bench/adjoint.ts is the extension point)');
  },
};
