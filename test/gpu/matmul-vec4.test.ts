/**
 * @file Matmul operands read as vec4s (four steps of K of a row, or four rows of a step), on the
 * adapter against the interpreter: row-major and transposed operands on both sides, partial tiles
 * (rows and columns past the end clamp to the last whole group of four), batches, a split K, one
 * tensor as both operands, an epilogue that reads a vectorized binding one element at a time, and
 * the fallback to scalar loads when K or a tensor's size is not a multiple of 4. Each case checks
 * that its matmul took the path it covers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emitArtifact, trainingGraph } from '../../src/compile.js';
import { GraphBuilder, type Value } from '../../src/ir/builder.js';
import type { Graph } from '../../src/ir/graph.js';
import { getDevice } from '../../src/runtime/device.js';
import { evaluate } from '../../src/ir/interp.js';
import { expectGpuMatches, maxRelError, randomEnv, runOnGpu } from './harness.js';

let device: GPUDevice;
beforeAll(async () => { device = await getDevice({ quiet: true }); });
afterAll(() => device?.destroy());

/** The WGSL and labels of the fused program's matmul dispatches. */
function matmulDispatches(g: Graph): { wgsl: string; label: string }[] {
  const a = emitArtifact(g, {});
  return a.dispatches.filter((d) => d.label.includes('matmul')).map((d) => ({ wgsl: a.shaders[d.shader]!, label: d.label }));
}

function graph(build: (b: GraphBuilder) => Value): Graph {
  const b = new GraphBuilder();
  b.output('y', build(b));
  return b.build();
}

interface Case {
  readonly name: string;
  readonly g: Graph;
  /** Whether the first matmul dispatch reads vec4s. */
  readonly vec4: boolean;
  /** Part of the first matmul dispatch's label (the path taken). */
  readonly label?: string;
}

const cases: Case[] = [
  // A along k (row-major), B along its rows (row-major); 12 x 20 leaves partial tiles.
  { name: 'A[12,8] B[8,20]', vec4: true, g: graph((b) => b.matmul(b.input('a', [12, 8]), b.input('b', [8, 20]))) },
  // A transposed: contiguous along rows.
  { name: 'A^T: a[8,12]', vec4: true, g: graph((b) => b.matmul(b.transpose(b.input('a', [8, 12])), b.input('b', [8, 20]))) },
  // B transposed: contiguous along k.
  { name: 'B^T: b[20,8]', vec4: true, g: graph((b) => b.matmul(b.input('a', [12, 8]), b.transpose(b.input('b', [20, 8])))) },
  { name: 'A^T and B^T', vec4: true, g: graph((b) => b.matmul(b.transpose(b.input('a', [16, 12])), b.transpose(b.input('b', [20, 16])))) },
  { name: 'batched [2,3] x [2,3]', vec4: true, g: graph((b) => b.matmul(b.input('a', [2, 3, 12, 8]), b.input('b', [2, 3, 8, 20]))) },
  { name: 'batch broadcast [3] x []', vec4: true, g: graph((b) => b.matmul(b.input('a', [3, 4, 8]), b.input('b', [8, 4]))) },
  // Few tiles and a long K: split over threads, chunks of multiples of 4.
  { name: 'split K: [4,4096] x [4096,4]', vec4: true, label: 'split-k', g: graph((b) => b.matmul(b.input('a', [4, 4096]), b.input('b', [4096, 4]))) },
  // One tensor as both operands (x^T x): both read through the same vec4 binding.
  { name: 'x^T x', vec4: true, g: graph((b) => { const x = b.input('x', [16, 12]); return b.matmul(b.transpose(x), x); }) },
  // The epilogue reads the vectorized A element by element.
  { name: 'epilogue reads A', vec4: true, g: graph((b) => { const a = b.input('a', [8, 8]); return b.add('add', {}, [b.matmul(a, b.input('b', [8, 8])), a]); }) },
  // K = 6: scalar loads; N = 6 with K = 8: B cannot be read by rows, A still can.
  { name: 'K not a multiple of 4', vec4: false, g: graph((b) => b.matmul(b.input('a', [12, 6]), b.input('b', [6, 20]))) },
  { name: 'N = 6', vec4: true, g: graph((b) => b.matmul(b.input('a', [12, 8]), b.input('b', [8, 6]))) },
  // Operands read through reshaped transposes whose index is not linear (x[m % 3, m / 3, k]): scalar loads.
  {
    name: 'operands through reshaped transposes', vec4: false,
    g: graph((b) => b.matmul(
      b.reshape(b.transpose(b.input('a', [3, 4, 8]), [1, 0, 2]), [12, 8]),
      b.reshape(b.transpose(b.input('b', [2, 4, 20]), [1, 0, 2]), [8, 20]),
    )),
  },
];

describe('matmul operands read as vec4', () => {
  for (const c of cases) {
    it(`${c.name}: ${c.vec4 ? 'vec4 loads' : 'scalar loads'}, matches the interpreter`, async () => {
      const [first] = matmulDispatches(c.g);
      expect(first, 'a matmul dispatch').toBeDefined();
      expect(first!.wgsl.includes('array<vec4<f32>>')).toBe(c.vec4);
      if (c.label) expect(first!.label).toContain(c.label);
      await expectGpuMatches(device, c.g, randomEnv(c.g, 3), 1e-5, { fuse: true });
    });
  }

  it('training a linear layer: the bias gradient summed beside a vectorized weight gradient, updated in place', async () => {
    const b = new GraphBuilder();
    const x = b.input('x', [16, 12]);
    const y = b.linear(x, b.param('w', [12, 8], { kind: 'zeros' }), b.param('bias', [8], { kind: 'zeros' }));
    b.output('loss', b.reduceSum(b.add('mul', {}, [y, y])));
    const { graph } = trainingGraph({ name: 'linear', graph: b.build(), loss: 'loss', optimizer: { kind: 'sgd', lr: 0.1, momentum: 0, weightDecay: 0 } });
    expect(matmulDispatches(graph).some((d) => d.label.includes('colsum') && d.wgsl.includes('array<vec4<f32>>'))).toBe(true);
    const env = randomEnv(graph, 5);
    const want = evaluate(graph, env, 'f32');
    const { outputs, program } = await runOnGpu(device, graph, env);
    try {
      expect(maxRelError(outputs.get('loss')!, want.outputs.get('loss')!.data)).toBeLessThanOrEqual(1e-5);
      for (const [name, t] of want.updates) expect(maxRelError(await program.read(name), t.data), name).toBeLessThanOrEqual(1e-5);
    } finally {
      program.destroy();
    }
  });
});
