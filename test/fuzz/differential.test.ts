/**
 * @file Differential fuzzing on the real adapter: random valid graphs (test/fuzz/graphs.ts) run
 * fused, unfused and in poison mode and must match the reference interpreter in float32 within
 * a tolerance for f32 reassociation (1e-4 relative to max(|ref|, 1), plus the error sin and cos
 * may carry). CI runs a fixed seed; `npm run fuzz` runs a random seed with many more cases
 * (FUZZ_SEED and FUZZ_RUNS set them). A counterexample is shrunk by fast-check and printed as a
 * graph; each one found so far is a named test in regressions.test.ts.
 *
 * Cost, measured here: SwiftShader compiling each distinct shader (~8 ms) is nearly all of it;
 * Dawn caches identical shaders, so the poisoned runs come almost free, and batching several
 * graphs into one program would save nothing. 200 cases take about 50 s on 2 cores.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { getDevice } from '../../src/runtime/device.js';
import { expectCaseMatches } from './check.js';
import { buildCase, recipeArb } from './graphs.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20261123);
const RUNS = Number(process.env.FUZZ_RUNS ?? 200);

let device: GPUDevice;
beforeAll(async () => { device = await getDevice({ quiet: true }); });
afterAll(() => device?.destroy());

describe('random graphs on the GPU match the interpreter', () => {
  it(`${RUNS} graphs, fused, unfused and poisoned (seed ${SEED})`, async () => {
    await fc.assert(
      fc.asyncProperty(recipeArb(), async (r) => expectCaseMatches(device, buildCase(r), r.seed)),
      { seed: SEED, numRuns: RUNS },
    );
  }, 30 * 60_000);
});
