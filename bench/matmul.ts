/**
 * @file Matmul benchmark: GFLOP/s of the codegen's register-tiled matmul kernel and of a naive
 * one-thread-per-output kernel (the generic contraction), square sizes 256, 512 and 1024, side by
 * side on the same adapter. Each figure is the median of several timed batches of dispatches.
 */
import { emitArtifact } from '../src/codegen/emit.js';
import { GraphBuilder } from '../src/ir/builder.js';
import { Program } from '../src/runtime/program.js';

export interface MatmulRow {
  readonly n: number;
  readonly tiledGflops: number;
  readonly naiveGflops: number;
  readonly ratio: number;
}

async function gflops(device: GPUDevice, n: number, naive: boolean, reps: number): Promise<number> {
  const b = new GraphBuilder();
  b.output('c', b.matmul(b.input('a', [n, n]), b.input('b', [n, n])));
  const prog = await Program.load(device, emitArtifact(b.build(), { naiveMatmul: naive }));
  const data = Float32Array.from({ length: n * n }, (_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
  prog.write('a', data);
  prog.write('b', data);
  await prog.step({}, ['c']); // warm-up: pipeline compilation
  const times: number[] = [];
  for (let r = 0; r < 3; r++) {
    const t0 = performance.now();
    for (let i = 0; i < reps - 1; i++) prog.step();
    await prog.step({}, ['c']);
    times.push((performance.now() - t0) / reps);
  }
  prog.destroy();
  times.sort((x, y) => x - y);
  return (2 * n * n * n) / (times[1]! * 1e6);
}

export async function benchMatmul(device: GPUDevice, sizes = [256, 512, 1024]): Promise<MatmulRow[]> {
  const rows: MatmulRow[] = [];
  for (const n of sizes) {
    const reps = n >= 1024 ? 2 : n >= 512 ? 3 : 6;
    const tiled = await gflops(device, n, false, reps);
    const naive = await gflops(device, n, true, reps);
    rows.push({ n, tiledGflops: tiled, naiveGflops: naive, ratio: tiled / naive });
  }
  return rows;
}

export function matmulTable(rows: readonly MatmulRow[]): string {
  return [
    '| matmul n x n | codegen (tiled) GFLOP/s | naive GFLOP/s | ratio |',
    '|---|---|---|---|',
    ...rows.map((r) => `| ${r.n} | ${r.tiledGflops.toFixed(2)} | ${r.naiveGflops.toFixed(2)} | ${r.ratio.toFixed(1)}x |`),
  ].join('\n');
}
