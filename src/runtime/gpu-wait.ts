/**
 * @file Waiting for the GPU in Node without spinning a core. Node's `webgpu` package (Dawn) learns
 * that GPU work is done by polling once per turn of the event loop (setImmediate) while a
 * mapAsync, onSubmittedWorkDone or pipeline creation is pending: a busy loop on one core for as
 * long as the GPU works. A CPU adapter (SwiftShader, lavapipe) runs its workgroups on worker
 * threads, one per core, and loses one to it: on this project's 2-core machine, steps that read
 * their loss ran 1.3-1.7x slower on SwiftShader and up to 1.4x on lavapipe (bench/results).
 *
 * While one of the runtime's waits is pending, `gpuWait` adds a turn to the loop that sleeps
 * (Atomics.wait) a tenth of the time waited so far, between 0.05 and 2 ms: Dawn then polls a few
 * hundred to a few thousand times a second instead of spinning, and a wait ends at most a tenth
 * (and 2 ms) late. Other callbacks still run between the sleeps. In a browser, whose event loop
 * does not spin (and whose main thread may not Atomics.wait), it does nothing.
 */
import { isNode } from './device.js';

/** A turn sleeps this share of the time waited so far, */
const SHARE = 0.1;
/** and at least this many milliseconds, */
const MIN_MS = 0.05;
/** and at most this many. */
const MAX_MS = 2;

let pending = 0;
let looping = false;
/** When the current run of waits began (performance.now()). */
let since = 0;
let cell: Int32Array | undefined;
let enabled: boolean | undefined;

function turn(): void {
  if (pending === 0) {
    looping = false;
    return;
  }
  Atomics.wait(cell!, 0, 0, Math.min(MAX_MS, Math.max(MIN_MS, SHARE * (performance.now() - since))));
  setImmediate(turn);
}

/**
 * Awaits `p`, a promise that Dawn resolves when GPU work is done, sleeping between Dawn's polls
 * (Node); in a browser, `p` itself.
 */
export async function gpuWait<T>(p: Promise<T>): Promise<T> {
  if (!gpuWaitSleeps()) return p;
  if (pending++ === 0) since = performance.now();
  if (!looping) {
    looping = true;
    cell ??= new Int32Array(new SharedArrayBuffer(4));
    setImmediate(turn);
  }
  try {
    return await p;
  } finally {
    pending--;
  }
}

/**
 * Whether waits sleep between Dawn's polls (default: in Node); `on` sets it (false: spin as
 * Dawn does, e.g. to measure the difference).
 */
export function gpuWaitSleeps(on?: boolean): boolean {
  if (on !== undefined) enabled = on && canSleep();
  return (enabled ??= canSleep());
}

/** Node, with setImmediate and SharedArrayBuffer (for Atomics.wait). */
function canSleep(): boolean {
  return isNode() && typeof setImmediate === 'function' && typeof SharedArrayBuffer === 'function';
}

/** How many waits are pending (tests). */
export function gpuWaitsPending(): number {
  return pending;
}
