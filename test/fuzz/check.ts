/**
 * @file The check every fuzz case goes through: the graph runs on the real adapter fused and
 * unfused, then again in poison mode (dead temporaries NaN-filled after each dispatch, so a memory
 * plan that reuses bytes too early shows up), and every output is compared with the reference
 * interpreter in float32. A failure names the mode and prints the graph, so a shrunk
 * counterexample can be read and turned into a regression test.
 */
import type { Graph } from '../../src/ir/graph.js';
import { printGraph } from '../../src/ir/printer.js';
import type { Tensor } from '../../src/ir/tensor.js';
import { expectGpuMatches, randomEnv } from '../gpu/harness.js';
import { inputValue, type FuzzCase } from './graphs.js';

/** Values for every input of the graph, seeded: f32 in [-1, 1), i32 in -3..3. */
export function fuzzEnv(g: Graph, seed: number): Map<string, Tensor> {
  const dtypes = new Map<string, 'f32' | 'i32'>();
  for (const n of g.nodes) if (n.op === 'input') dtypes.set(n.attrs.name, n.type.dtype);
  return randomEnv(g, seed, (name, _, u) => inputValue(dtypes.get(name) ?? 'f32', u));
}

/**
 * Runs the case fused and unfused (or only as `fuse` says), plain and poisoned; throws with the
 * printed graph on a mismatch.
 */
export async function expectCaseMatches(device: GPUDevice, c: FuzzCase, seed: number, fuse?: boolean): Promise<void> {
  const env = fuzzEnv(c.graph, seed);
  for (const poison of [false, true]) {
    try {
      const limits = { maxStorageBuffersPerShaderStage: c.bindings };
      await expectGpuMatches(device, c.graph, env, c.tolerance, { poison, limits, ...(fuse === undefined ? {} : { fuse }) });
    } catch (e) {
      const mode = poison ? 'in poison mode' : 'in plain mode';
      throw new Error(`${mode}, ${c.bindings} bindings, tolerance ${c.tolerance}, input seed ${seed}: ${(e as Error).message}\n${printGraph(c.graph)}`, { cause: e });
    }
  }
}
