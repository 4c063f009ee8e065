/**
 * @file Writes what the browser example fetches: the compiled artifact of an MNIST model
 * (manifest.json and WGSL files) and one fixed batch of real MNIST digits, the first B digits of
 * the fixed training split, as `<input>.f32` (pixels) and `<input>.i32` (labels), into
 * `examples/browser/out/` (or the directory given). Uses the compiled library in `dist/`, so run
 * `npm run build` first; the page itself needs only `npm run build:browser`.
 *
 * Usage: node examples/browser/prepare.mjs [model.json] [out-dir]
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '../..');
const modelPath = process.argv[2] ?? join(root, 'models/mlp-mnist.json');
const outDir = process.argv[3] ?? join(here, 'out');

async function library(path) {
  try {
    return await import(pathToFileURL(join(root, 'dist/src', path)).href);
  } catch (e) {
    console.error(`prepare: cannot load dist/src/${path} (${e.message}); run \`npm run build\` first`);
    process.exit(1);
  }
}

const { compile } = await library('compile.js');
const { loadModel } = await library('ir/schema.js');
const { bundleFiles } = await library('runtime/bundle.js');
const { loadMnist, MNIST_PIXELS } = await library('data/mnist.js');

const model = loadModel(readFileSync(modelPath, 'utf8'), modelPath);
const compiled = compile(model);
if (!compiled.train) {
  console.error(`prepare: ${modelPath} has no loss or optimizer, so it has no training program`);
  process.exit(1);
}
const images = compiled.train.inputs.find((s) => s.dtype === 'f32' && s.shape.length === 2 && s.shape[1] === MNIST_PIXELS);
const labels = compiled.train.inputs.find((s) => s.dtype === 'i32' && s.shape.length === 1);
if (!images || !labels || compiled.train.inputs.length !== 2 || images.shape[0] !== labels.shape[0]) {
  const got = compiled.train.inputs.map((s) => `${s.name}: ${s.dtype}[${s.shape.join(',')}]`).join(', ');
  console.error(`prepare: ${modelPath} must take MNIST images f32[B,${MNIST_PIXELS}] and labels i32[B]; its inputs are ${got}`);
  process.exit(1);
}
const n = images.shape[0];
const { train } = loadMnist();
const x = train.images.slice(0, n * MNIST_PIXELS);
const y = train.labels.slice(0, n);

mkdirSync(outDir, { recursive: true });
for (const [file, text] of bundleFiles({ name: model.name, train: compiled.train, forward: compiled.forward })) {
  writeFileSync(join(outDir, file), text);
}
writeFileSync(join(outDir, `${images.name}.f32`), new Uint8Array(x.buffer, x.byteOffset, x.byteLength));
writeFileSync(join(outDir, `${labels.name}.i32`), new Uint8Array(y.buffer, y.byteOffset, y.byteLength));
console.log(`wrote ${relative(process.cwd(), outDir) || '.'}: artifact of "${model.name}" and a batch of ${n} MNIST digits`);
