/**
 * @file Matmul benchmark: GFLOP/s of the codegen's register-tiled matmul kernel and of a naive
 * one-thread-per-output kernel (the generic contraction), square sizes 256, 512 and 1024, side by
 * side on the same adapter, and the adapter's FMA ceiling: the count of FMAs of a 512^3 matmul on
 * register accumulators with no loads in the loop, the best over several accumulator tiles,
 * workgroup sizes and steps of K per loop iteration (what no matmul on this adapter can beat). Each figure is the median of several timed batches of dispatches.
 */
import { emitArtifact } from '../src/compile.js';
import { GraphBuilder } from '../src/ir/builder.js';
import { Program } from '../src/runtime/program.js';
import { deviceLimits } from '../src/runtime/device.js';
import { gpuWait } from '../src/runtime/gpu-wait.js';
import { memoryTuneCache } from '../src/runtime/tune.js';
import { VARIANTS } from '../src/codegen/wgsl.js';
import { median } from './report.js';

export interface MatmulRow {
  readonly n: number;
  readonly tiledGflops: number;
  readonly naiveGflops: number;
  readonly ratio: number;
}

/** A loaded kernel: `gflops(reps)` times `reps` runs of it (one batch) and returns its GFLOP/s. */
interface Runner {
  gflops(reps: number): Promise<number>;
  destroy(): void;
}

/** A loaded n^3 matmul program (tuned on this adapter, or the naive kernel); a run is one step, the batch's last one read back. */
async function matmulRunner(device: GPUDevice, n: number, naive: boolean): Promise<Runner> {
  const b = new GraphBuilder();
  b.output('c', b.matmul(b.input('a', [n, n]), b.input('b', [n, n])));
  const prog = await Program.load(device, emitArtifact(b.build(), { naiveMatmul: naive, limits: deviceLimits(device) }), { tuneCache: memoryTuneCache(), tune: 'load' });
  const data = Float32Array.from({ length: n * n }, (_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
  prog.write('a', data);
  prog.write('b', data);
  await prog.step({}, ['c']); // warm-up: pipeline compilation
  return {
    async gflops(reps: number): Promise<number> {
      const t0 = performance.now();
      for (let i = 0; i < reps - 1; i++) prog.step();
      await prog.step({}, ['c']);
      return (2 * n * n * n * reps) / ((performance.now() - t0) * 1e6);
    },
    destroy: () => prog.destroy(),
  };
}

/** A runner's GFLOP/s: the median of three timed batches of `reps` runs. */
async function medianGflops(runner: Runner, reps: number): Promise<number> {
  const figures: number[] = [];
  for (let r = 0; r < 3; r++) figures.push(await runner.gflops(reps));
  runner.destroy();
  return median(figures);
}

const gflops = async (device: GPUDevice, n: number, naive: boolean, reps: number): Promise<number> => medianGflops(await matmulRunner(device, n, naive), reps);

/** One shape of the FMA-ceiling kernel: accumulators per thread (rows x cols), threads per workgroup, steps of K per loop iteration. */
export interface FmaShape {
  readonly rows: number;
  readonly cols: number;
  readonly workgroup: number;
  readonly unroll: number;
  readonly gflops: number;
}

/** The adapter's FMA ceiling: the best of {@link FMA_SHAPES}, and every shape's figure. */
export interface FmaCeiling {
  readonly best: FmaShape;
  readonly shapes: readonly FmaShape[];
}

/**
 * Accumulator tiles x workgroup sizes x steps of K per loop iteration timed for the ceiling. A CPU
 * adapter runs 4 (SwiftShader, 128-bit) or 8 (lavapipe, 256-bit) invocations per vector register,
 * so 64 accumulators may spill where 16 fit; a GPU wants many threads. One FMA per accumulator per
 * iteration measures SwiftShader's loop (each loop-carried value is written back under the lanes'
 * mask every iteration) more than its FMAs: 4 and 8 steps per iteration read 2-3x higher there
 * (6.5-9.1 -> 17.5-25 GFLOP/s; lavapipe 53-83 -> 83-97, bench of 2026-12-03). The best is the
 * adapter's ceiling, not one kernel's.
 */
const FMA_SHAPES: readonly (readonly [rows: number, cols: number, workgroup: number, unroll: number])[] = [
  [8, 8, 64, 1], [4, 8, 64, 1], [4, 4, 64, 1], [2, 4, 64, 1], [8, 8, 256, 1], [4, 4, 256, 1], [2, 4, 256, 1],
  [8, 8, 64, 4], [8, 8, 64, 8], [4, 4, 64, 8],
];
/** The shapes a quick run times: the first of each kind. */
const QUICK_SHAPES: typeof FMA_SHAPES = [[8, 8, 64, 1], [8, 8, 64, 8]];

/** The ceiling kernel of one shape: rows x cols accumulators per thread doing a 512^3 matmul's FMAs on values held in registers, `unroll` steps of K per iteration; a run is one dispatch. */
function fmaKernel(device: GPUDevice, rows: number, cols: number, workgroup: number, unroll: number): Runner {
  const n = 512;
  const acc = Array.from({ length: rows * cols }, (_, e) => `c${e}`);
  const steps = Array.from({ length: unroll }, (_, u) => u);
  const code = [
    '@group(0) @binding(0) var<storage, read_write> buf: array<f32>;',
    `@compute @workgroup_size(${workgroup})`,
    'fn main(@builtin(global_invocation_id) gid: vec3<u32>) {',
    '  let seed = buf[gid.x % 4u];',
    ...acc.map((c) => `  var ${c}: f32 = 0.0;`),
    `  for (var k = 0i; k < ${n}i; k += ${unroll}i) {`,
    ...steps.flatMap((u) => [
      `    let f${u} = f32(k + ${u}i) * seed;`,
      ...Array.from({ length: rows }, (_, i) => `    let x${u}_${i} = f${u} + ${i}.0;`),
      ...Array.from({ length: cols }, (_, j) => `    let y${u}_${j} = f${u} * ${j + 1}.0;`),
    ]),
    // Each accumulator's steps one after another (as the matmuls do).
    ...acc.flatMap((c, e) => steps.map((u) => `    ${c} = fma(x${u}_${Math.floor(e / cols)}, y${u}_${e % cols}, ${c});`)),
    '  }',
    `  if (${acc.join(' + ')} == 12345.0) { buf[4u + gid.x % 1000u] = 1.0; }`,
    '}',
  ].join('\n');
  const buf = device.createBuffer({ size: 4 * 1024, usage: GPUBufferUsage.STORAGE });
  const pipe = device.createComputePipeline({ layout: 'auto', compute: { module: device.createShaderModule({ code }), entryPoint: 'main' } });
  const bind = device.createBindGroup({ layout: pipe.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: buf } }] });
  // n*n outputs, rows*cols per thread: the same FMA count (n^3) for every shape.
  const groups = (n * n) / (rows * cols) / workgroup;
  const gflops = async (reps: number): Promise<number> => {
    const t0 = performance.now();
    const enc = device.createCommandEncoder();
    for (let r = 0; r < reps; r++) {
      const pass = enc.beginComputePass();
      pass.setPipeline(pipe);
      pass.setBindGroup(0, bind);
      pass.dispatchWorkgroups(groups);
      pass.end();
    }
    device.queue.submit([enc.finish()]);
    // (as the runtime waits: without spinning a core the adapter's workers need, gpu-wait.ts)
    await gpuWait(device.queue.onSubmittedWorkDone());
    return (2 * n * n * n * reps) / ((performance.now() - t0) * 1e6);
  };
  return { gflops, destroy: () => buf.destroy() };
}

/** GFLOP/s of one shape of the ceiling kernel: after a warm-up dispatch, the median of three timed batches. */
async function fmaShape(device: GPUDevice, rows: number, cols: number, workgroup: number, unroll: number): Promise<number> {
  const k = fmaKernel(device, rows, cols, workgroup, unroll);
  await k.gflops(1);
  return medianGflops(k, 3);
}

/** The adapter's FMA ceiling over several kernel shapes; quote the best. */
export async function fmaCeiling(device: GPUDevice, quick = false): Promise<FmaCeiling> {
  const shapes: FmaShape[] = [];
  for (const [rows, cols, workgroup, unroll] of quick ? QUICK_SHAPES : FMA_SHAPES) {
    if (workgroup > device.limits.maxComputeInvocationsPerWorkgroup) continue;
    shapes.push({ rows, cols, workgroup, unroll, gflops: await fmaShape(device, rows, cols, workgroup, unroll) });
  }
  const best = shapes.reduce((a, b) => (b.gflops > a.gflops ? b : a));
  return { best, shapes };
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

/** The 512^3 matmul timed alternately with the ceiling's best kernel. */
export interface PairedCeiling {
  readonly n: number;
  readonly pairs: number;
  /** Medians of the matmul's and of the ceiling kernel's figures. */
  readonly matmulGflops: number;
  readonly ceilingGflops: number;
  /** The median of the pairs' ratios (matmul / ceiling kernel). */
  readonly ratio: number;
}

/**
 * The tuned n^3 matmul and the ceiling's best shape timed alternately, `pairs` times. On a shared
 * 2-core CPU a figure moves by up to half over minutes, so a ratio of figures taken apart (and of a
 * ceiling that is the best of seven noisy figures) says more about the drift than about the
 * kernel: each pair is taken within a second, and the median of the pairs' ratios is quoted.
 */
export async function pairedCeiling(device: GPUDevice, best: FmaShape, n = 512, pairs = 7): Promise<PairedCeiling> {
  const mm = await matmulRunner(device, n, false);
  const fma = fmaKernel(device, best.rows, best.cols, best.workgroup, best.unroll);
  await fma.gflops(1);
  const m: number[] = [];
  const c: number[] = [];
  for (let p = 0; p < pairs; p++) {
    m.push(await mm.gflops(3));
    c.push(await fma.gflops(3));
  }
  mm.destroy();
  fma.destroy();
  return { n, pairs, matmulGflops: median(m), ceilingGflops: median(c), ratio: median(m.map((x, i) => x / c[i]!)) };
}

export function matmulTable(rows: readonly MatmulRow[], fma?: FmaCeiling, paired?: PairedCeiling): string {
  const ceiling = fma?.best.gflops;
  const shape = (s: FmaShape): string => `${s.rows}x${s.cols} x ${s.workgroup} threads${s.unroll > 1 ? ` x ${s.unroll} steps` : ''} ${s.gflops.toFixed(2)}`;
  return [
    `| matmul n x n | codegen (tiled) GFLOP/s | naive GFLOP/s | ratio |${ceiling ? ' tiled / FMA ceiling |' : ''}`,
    `|---|---|---|---|${ceiling ? '---|' : ''}`,
    ...rows.map((r) => `| ${r.n} | ${r.tiledGflops.toFixed(2)} | ${r.naiveGflops.toFixed(2)} | ${r.ratio.toFixed(1)}x |${ceiling ? ` ${((100 * r.tiledGflops) / ceiling).toFixed(0)}% |` : ''}`),
    ...(fma
      ? ['', `FMA ceiling of this adapter: ${fma.best.gflops.toFixed(2)} GFLOP/s, the best of ${fma.shapes.length} kernels doing a 512^3 matmul's FMAs on register accumulators, no loads ` +
          `(accumulators per thread x threads per workgroup [x steps of K per iteration], GFLOP/s: ${fma.shapes.map(shape).join('; ')}).`]
      : []),
    ...(paired
      ? ['', `${paired.n}^3 beside the ceiling's best kernel, timed alternately ${paired.pairs} times (medians): matmul ${paired.matmulGflops.toFixed(2)} GFLOP/s, ` +
          `ceiling kernel ${paired.ceilingGflops.toFixed(2)} GFLOP/s; the median of the pairs' ratios: **${(100 * paired.ratio).toFixed(0)}%** of the ceiling.`]
      : []),
  ].join('\n');
}

/** One matmul variant at one size: its GFLOP/s, and how long its program took to load (pipeline compilation). */
export interface VariantRow {
  readonly n: number;
  readonly variant: string;
  readonly gflops: number;
  readonly loadMs: number;
}

/** Every matmul variant the device is offered, on an n x n x n matmul, each compiled alone and run untuned. */
export async function benchVariants(device: GPUDevice, n = 512, reps = 3): Promise<VariantRow[]> {
  const b = new GraphBuilder();
  b.output('c', b.matmul(b.input('a', [n, n]), b.input('b', [n, n])));
  const g = b.build();
  const rows: VariantRow[] = [];
  const limits = deviceLimits(device);
  // The variants this device is offered (others fall back to the default: not theirs to report).
  const offered = new Set(emitArtifact(g, { limits }).dispatches.flatMap((d) => (d.variants ?? []).map((x) => x.name)));
  for (const v of VARIANTS.matmul.variants) {
    if (!offered.has(v.name)) continue;
    const prog = await Program.load(device, emitArtifact(g, { variants: [v.name], limits }), { tune: false });
    const data = Float32Array.from({ length: n * n }, (_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
    prog.write('a', data);
    prog.write('b', data);
    await prog.step({}, ['c']);
    const times: number[] = [];
    for (let r = 0; r < 3; r++) {
      const t0 = performance.now();
      for (let i = 0; i < reps - 1; i++) prog.step();
      await prog.step({}, ['c']);
      times.push((performance.now() - t0) / reps);
    }
    rows.push({ n, variant: v.name, gflops: (2 * n * n * n) / (times.sort((x, y) => x - y)[1]! * 1e6), loadMs: prog.loadMs });
    prog.destroy();
  }
  return rows;
}

export function variantTable(rows: readonly VariantRow[], ceiling?: number): string {
  return [
    `| matmul n^3 | variant | GFLOP/s |${ceiling ? ' / FMA ceiling |' : ''} load (compile) ms |`,
    `|---|---|---|${ceiling ? '---|' : ''}---|`,
    ...rows.map((r) => `| ${r.n} | ${r.variant} | ${r.gflops.toFixed(2)} |${ceiling ? ` ${((100 * r.gflops) / ceiling).toFixed(0)}% |` : ''} ${r.loadMs.toFixed(0)} |`),
  ].join('\n');
}
