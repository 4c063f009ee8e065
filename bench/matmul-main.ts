/**
 * @file The matmul part of the benchmark alone (`npm run bench:matmul`): on the adapter the
 * process gets (choose it with VK_ICD_FILENAMES), the FMA ceiling, every matmul variant's GFLOP/s
 * at 512^3 (and 1024^3 with BENCH_MATMUL_BIG=1), then, per model (MLP, LeNet, transformer), each
 * kernel's tuned choice, with the load and tuning times of a first load (empty cache) and of a
 * second load (choices cached).
 */
import { compile } from '../src/compile.js';
import { adapterInfo, deviceLimits, getDevice } from '../src/runtime/device.js';
import { Program } from '../src/runtime/program.js';
import { memoryTuneCache } from '../src/runtime/tune.js';
import { benchVariants, fmaCeiling, pairedCeiling, variantTable } from './matmul.js';
import { zoo } from './models.js';

const log = (s: string) => console.log(s);

async function main(): Promise<void> {
  const device = await getDevice({ quiet: true });
  log(`adapter: ${adapterInfo(device)}`);
  log(`date: ${new Date().toISOString()}; command: ${process.env.ADJOINT_ADAPTER ? `ADJOINT_ADAPTER=${process.env.ADJOINT_ADAPTER} ` : ''}npm run bench:matmul`);
  const fma = await fmaCeiling(device);
  const ceiling = fma.best.gflops;
  log(`FMA ceiling: ${ceiling.toFixed(2)} GFLOP/s (the best of ${fma.shapes.length} accumulator/workgroup/unroll shapes, no loads: ${fma.best.rows}x${fma.best.cols} x ${fma.best.workgroup} threads x ${fma.best.unroll} steps)\n`);
  const sizes = process.env.BENCH_MATMUL_BIG === '1' ? [512, 1024] : [512];
  const rows = [];
  for (const n of sizes) rows.push(...(await benchVariants(device, n)));
  log(variantTable(rows, ceiling) + '\n');
  const paired = await pairedCeiling(device, fma.best);
  log(`512^3 tuned, timed alternately with the ceiling's best kernel ${paired.pairs} times (medians): ${paired.matmulGflops.toFixed(2)} against ${paired.ceilingGflops.toFixed(2)} GFLOP/s; the median of the pairs' ratios ${(100 * paired.ratio).toFixed(0)}%\n`);
  const wanted = (process.env.BENCH_MODELS ?? 'mlp-mnist.json,lenet-mnist.json,transformer-lm.ts').split(',');
  for (const m of zoo().filter((z) => wanted.includes(z.file))) {
    const c = compile(m.model(), { limits: deviceLimits(device) });
    if (!c.train) continue;
    const cache = memoryTuneCache();
    const first = await Program.load(device, c.train, { tune: 'load', tuneCache: cache });
    first.destroy();
    const second = await Program.load(device, c.train, { tune: 'load', tuneCache: cache });
    second.destroy();
    log(`### ${m.file}: first load ${first.loadMs.toFixed(0)} ms + tuning ${first.tuneMs.toFixed(0)} ms; second load ${second.loadMs.toFixed(0)} ms + tuning ${second.tuneMs.toFixed(0)} ms`);
    log('| kernel | variants (ms per dispatch) | choice |\n|---|---|---|');
    for (const k of first.tuning) {
      const times = k.variants.map((v) => `${v} ${k.times?.[v] !== undefined ? k.times[v]!.toFixed(3) : '-'}`).join(', ');
      log(`| ${k.label} | ${times} | **${k.choice}** |`);
    }
    log('');
  }
  device.destroy();
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
