/**
 * @file Differential testing on the real adapter: compile a graph, run it on the GPU, and compare
 * every output with the reference interpreter in float32.
 */
import { expect } from 'vitest';
import { emitArtifact, type EmitOptions } from '../../src/compile.js';
import { numel } from '../../src/ir/dtype.js';
import type { Graph } from '../../src/ir/graph.js';
import { evaluate } from '../../src/ir/interp.js';
import { tensor, type Tensor } from '../../src/ir/tensor.js';
import { Program } from '../../src/runtime/program.js';
import { rng } from '../../src/runtime/init.js';

/** Random inputs for every source of the graph (params and state included), seeded. */
export function randomEnv(g: Graph, seed = 1, gen?: (name: string, i: number, u: () => number) => number): Map<string, Tensor> {
  const u = rng(seed);
  const env = new Map<string, Tensor>();
  for (const n of g.nodes) {
    if (n.op !== 'input' && n.op !== 'param' && n.op !== 'state') continue;
    const len = numel(n.type.shape);
    const data = Array.from({ length: len }, (_, i) =>
      gen ? gen(n.attrs.name, i, u) : n.type.dtype === 'i32' ? Math.floor(u() * 4) : 2 * u() - 1);
    env.set(n.attrs.name, tensor(n.type.shape, data, n.type.dtype));
  }
  return env;
}

export interface GpuRun {
  readonly outputs: Map<string, Float32Array | Int32Array>;
  readonly program: Program;
}

/** Compiles and runs one step on the device with the env's values; returns every output. */
export async function runOnGpu(device: GPUDevice, g: Graph, env: ReadonlyMap<string, Tensor>, opts: EmitOptions & { poison?: boolean } = {}): Promise<GpuRun> {
  const artifact = emitArtifact(g, opts);
  const program = await Program.load(device, artifact, { strictShaders: true, poison: opts.poison ?? false });
  for (const [name, t] of env) {
    program.write(name, t.data instanceof Int32Array ? t.data : Float32Array.from(t.data));
  }
  const res = await program.step({}, g.outputs.map((o) => o.name));
  return { outputs: res!, program };
}

/** Max error relative to max(|ref|, floor), elementwise. */
export function maxRelError(got: ArrayLike<number>, want: ArrayLike<number>, floor = 1): number {
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    const w = want[i]!;
    const gv = got[i]!;
    if (Number.isNaN(w) && Number.isNaN(gv)) continue;
    const e = Math.abs(gv - w) / Math.max(Math.abs(w), floor);
    if (!(e <= worst)) worst = Number.isNaN(e) ? Infinity : e;
  }
  return worst;
}

/**
 * Runs on the GPU and in the interpreter (f32), and expects every output to agree, both fused and
 * unfused (unless `opts.fuse` picks one).
 */
export async function expectGpuMatches(device: GPUDevice, g: Graph, env: ReadonlyMap<string, Tensor>, tol = 1e-5, opts: EmitOptions & { poison?: boolean } = {}): Promise<void> {
  const want = evaluate(g, env, 'f32');
  for (const fuse of opts.fuse === undefined ? [true, false] : [opts.fuse]) {
    const { outputs, program } = await runOnGpu(device, g, env, { ...opts, fuse });
    try {
      for (const o of g.outputs) {
        const w = want.outputs.get(o.name)!;
        const got = outputs.get(o.name)!;
        expect(got.length, o.name).toBe(w.data.length);
        const err = maxRelError(got, w.data);
        expect(err, `${o.name} (${fuse ? 'fused' : 'unfused'}): max rel error ${err}`).toBeLessThanOrEqual(tol);
      }
    } finally {
      program.destroy();
    }
  }
}
