/**
 * @file Waiting for the GPU without spinning (runtime/gpu-wait.ts), against a stand-in for Dawn's
 * poller: like Node's `webgpu` package, it polls once per turn of the event loop (setImmediate)
 * while its promise is pending. No GPU here; every test in test/gpu reads through gpuWait.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { gpuWait, gpuWaitSleeps, gpuWaitsPending } from '../src/runtime/gpu-wait.js';

/** A promise settled after `ms` by a poller that spins on setImmediate, as dawn.node does; `polls` counts its turns. */
function dawnLike<T>(ms: number, settle: () => T): { promise: Promise<T>; polls: () => number } {
  let polls = 0;
  const end = performance.now() + ms;
  const promise = new Promise<T>((resolve, reject) => {
    const poll = () => {
      polls++;
      if (performance.now() < end) return void setImmediate(poll);
      try {
        resolve(settle());
      } catch (e) {
        reject(e as Error);
      }
    };
    setImmediate(poll);
  });
  return { promise, polls: () => polls };
}

afterEach(() => void gpuWaitSleeps(true));

describe('gpuWait', () => {
  it('is on in Node, resolves and rejects as the promise does, and leaves nothing pending', async () => {
    expect(gpuWaitSleeps()).toBe(true);
    expect(await gpuWait(dawnLike(5, () => 42).promise)).toBe(42);
    await expect(gpuWait(dawnLike(5, () => { throw new Error('device lost'); }).promise)).rejects.toThrow('device lost');
    const both = await Promise.all([gpuWait(dawnLike(10, () => 'a').promise), gpuWait(dawnLike(3, () => 'b').promise)]);
    expect(both).toEqual(['a', 'b']);
    expect(gpuWaitsPending()).toBe(0);
  });

  it('lets the poller turn about a hundred times in 100 ms instead of spinning, and other callbacks still run', async () => {
    const slept = dawnLike(100, () => undefined);
    let timerRan = false;
    setTimeout(() => (timerRan = true), 20);
    await gpuWait(slept.promise);
    expect(timerRan).toBe(true);
    gpuWaitSleeps(false);
    const spun = dawnLike(100, () => undefined);
    await gpuWait(spun.promise);
    // Sleeping a tenth of the time waited so far (0.05-2 ms): ~10 ln(100 / 0.5) + 10 turns.
    expect(slept.polls()).toBeLessThan(400);
    expect(spun.polls()).toBeGreaterThan(10 * slept.polls());
  });
});
