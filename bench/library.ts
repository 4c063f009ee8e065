/**
 * @file The interface every benchmarked library implements (adjoint, TF.js, jax-js): set a
 * workload up from given initial parameters, then run training steps on given batches. The
 * harness owns the data, the order of batches and the clock; a library owns only its model.
 */
import { AdjointError } from '../src/ir/errors.js';
import type { Profile } from '../src/runtime/program.js';
import type { Batch, Workload } from './workloads.js';

/** A workload set up in one library: its parameters live on the device between steps. */
export interface Session {
  /**
   * One training step on `batch`: upload the batch, forward, backward, SGD update of every
   * parameter. With `readLoss` the step's loss (computed before its update) is read back to the
   * host and returned; since it is read through the device queue, the returned promise resolves
   * only after all work submitted so far has finished. Without `readLoss` it returns undefined
   * and may leave work queued.
   */
  step(batch: Batch, readLoss: boolean): Promise<number | undefined>;
  /** Frees the session's device memory. */
  dispose(): Promise<void>;
  /** Where the library can tell: the setup's compile and load (pipeline creation) times, ms. */
  readonly phases?: { readonly compileMs: number; readonly loadMs: number };
  /**
   * adjoint: waits for the kernel tuning that runs in the background after load (steps run
   * meanwhile), then loads the program a second time with the same tuning cache; resolves with
   * both loads' tuning times.
   */
  tuning?(): Promise<Tuning>;
  /** adjoint: every dispatch of a step timed alone (Program.profile; the session's state is left as it was). */
  profile?(): Promise<Profile>;
}

/** Kernel tuning of a session (adjoint): the first load's, in the background, and a second load's. */
export interface Tuning {
  /** Kernels with several variants, and how many of them were timed. */
  readonly kernels: number;
  readonly timed: number;
  /** Milliseconds of background tuning after the first load (the cache was empty). */
  readonly tuneMs: number;
  /** Milliseconds a second load of the same program spent on tuning (every choice cached). */
  readonly secondTuneMs: number;
  readonly secondLoadMs: number;
}

/** A library under benchmark. */
export interface Library {
  /** Name in the report. */
  readonly name: string;
  /** What runs, e.g. "jit(valueAndGrad), WebGPU", for the report. */
  readonly description: string;
  /**
   * Loads the library and gets its device, once per process, before any clock runs (importing a
   * library is not part of defining a model). Throws {@link NotAvailableError} if it cannot run here.
   */
  init(): Promise<void>;
  /**
   * Builds the workload's model with these initial parameters (canonical layouts, see
   * workloads.ts), compiling whatever the library compiles. Throws {@link NotAvailableError} when
   * the library cannot express the workload or cannot run here; the report then shows "n/a" and
   * the reason.
   */
  setup(workload: Workload, params: ReadonlyMap<string, Float32Array>): Promise<Session>;
}

/** The library cannot run this workload; `reason` goes into the report. */
export class NotAvailableError extends AdjointError {
  override name = 'NotAvailableError';
  constructor(readonly reason: string) {
    super(`not available: ${reason}`);
  }
}

/** The initial value of parameter `name`, or an error naming it. */
export function paramValue(params: ReadonlyMap<string, Float32Array>, name: string): Float32Array {
  const v = params.get(name);
  if (!v) throw new Error(`internal: no initial value for parameter ${name}`);
  return v;
}
