/**
 * @file Gradient fuzzing: random differentiable problems (test/fuzz/grad.ts) — a random graph whose
 * f32 inputs are parameters, under a random weighted sum of its outputs and dead ends — go through
 * `grad` and `simplify`, and then:
 * 1. in float64 the interpreter's gradients match central finite differences of the loss, at a few
 *    coordinates of each parameter and along a random direction (relative error <= 1e-5 above a
 *    floor); probes with a kink or a jump within the step are skipped, counted, and may be at most
 *    2% of all;
 * 2. the gradient program, compiled fused for the real adapter and run plain and in poison mode,
 *    matches the interpreter in float32 within 1e-4 relative to max(|ref|, 1), plus twice the
 *    estimated effect of WGSL's sin and cos error (grad.ts sinCosSensitivity).
 * CI runs a fixed seed and recipes of at most 12 steps; `npm run fuzz` runs this file and the
 * forward one with a random seed, many more cases and recipes of up to 24 steps (FUZZ_SEED,
 * FUZZ_RUNS, FUZZ_MAX_STEPS). A counterexample is shrunk by fast-check and printed as a graph;
 * each one found so far is a named test in regressions.test.ts.
 *
 * Cost, measured here: compiling the adjoint graphs' shaders on SwiftShader is nearly all of it
 * (200 cases of at most 12 steps: about 1,250 distinct shaders, against the forward fuzz's 2,600);
 * the finite differences take about 3 s. 40 s with the 2 cores shared (load 7), where the forward
 * fuzz took 43 s; 16 steps took 52 s.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { printGraph } from '../../src/ir/printer.js';
import { getDevice } from '../../src/runtime/device.js';
import { expectCaseMatches, fuzzEnv } from './check.js';
import { buildGradCase, checkGradients, gradRecipeArb, sinCosSensitivity } from './grad.js';
import { BASE_TOLERANCE } from './graphs.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20261124);
const RUNS = Number(process.env.FUZZ_RUNS ?? 200);
/** The relative error a compared probe may have. */
const FD_TOLERANCE = 1e-5;
/** The largest share of probes that may be skipped near a kink. */
const MAX_SKIPPED = 0.02;
const MAX_STEPS = Number(process.env.FUZZ_MAX_STEPS ?? 12);

let device: GPUDevice;
beforeAll(async () => { device = await getDevice({ quiet: true }); });
afterAll(() => device?.destroy());

describe('random gradients match finite differences and run on the GPU', () => {
  it(`${RUNS} differentiable graphs (seed ${SEED})`, async () => {
    const totals = { cases: 0, probes: 0, skipped: 0, nonzero: 0 };
    await fc.assert(
      fc.asyncProperty(gradRecipeArb(MAX_STEPS), async (r) => {
        const c = buildGradCase(r);
        const env = fuzzEnv(c.graph, r.recipe.seed);
        const fd = checkGradients(c, env, r.recipe.seed);
        totals.cases++;
        totals.probes += fd.probes;
        totals.skipped += fd.skipped;
        totals.nonzero += fd.nonzero;
        if (!(fd.worst <= FD_TOLERANCE)) {
          throw new Error(`gradient vs finite differences, input seed ${r.recipe.seed}: ${fd.where} (relative error ${fd.worst})\n${printGraph(c.graph)}`);
        }
        const tolerance = BASE_TOLERANCE + 2 * sinCosSensitivity(c.graph, env, r.recipe.seed);
        await expectCaseMatches(device, { graph: c.graph, bindings: c.bindings, tolerance }, r.recipe.seed, true);
      }),
      { seed: SEED, numRuns: RUNS },
    );
    console.log(`gradient fuzz: ${totals.cases} cases, ${totals.probes} probes, ${totals.skipped} skipped near a kink, ${totals.nonzero} with a nonzero derivative`);
    expect(totals.skipped, `probes skipped near a kink, of ${totals.probes}`).toBeLessThanOrEqual(MAX_SKIPPED * totals.probes);
    // Not vacuous: most probes see a derivative (the rest go through integer values, or miss).
    expect(totals.nonzero, `probes with a nonzero derivative, of ${totals.probes}`).toBeGreaterThanOrEqual(0.5 * totals.probes);
  }, 30 * 60_000);
});
