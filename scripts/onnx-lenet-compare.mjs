#!/usr/bin/env node
/**
 * The imported PyTorch LeNet against the zoo's LeNet on MNIST, like for like, over several seeds:
 *
 *   npm run train:onnx-lenet-compare
 *   node scripts/onnx-lenet-compare.mjs [--seeds 0,1,2] [--columns zoo,import/zoo,...] [--init-offset N] [--epochs 5]
 *
 * Both are the same network (test/fixtures/onnx/lenet-mnist.onnx is models/lenet-mnist.json
 * written as a torch module: conv 5x5 pad 2, ReLU, max pool 2, conv 5x5, ReLU, max pool 2, dense
 * 400-120-84-10 with ReLU; test/onnx/import.test.ts checks that both give the same loss and
 * gradients from the same weights), trained by `adjoint train` with the same recipe (Adam, lr
 * 0.001, batch 64, 5 epochs, softmax cross-entropy, the data order of `--seed`), evaluated on the
 * same held-out digits, kernels untuned on both sides. Columns, one run per seed each:
 *
 *   zoo                 models/lenet-mnist.json from its seeded initialization (He normal, Glorot
 *                       last): initial weights and data order from the same seed
 *   zoo/offset          the same model from its initialization at seed + N (a weights file): the
 *                       initial weights drawn apart from the data order's seed
 *   import/zoo          the imported model from the zoo's initialization at seed + N (the zoo's
 *                       tensors under the torch names: dense weights transposed, biases flat)
 *   import/torch        the imported model from the fixture's own weights (PyTorch's nn.init draw,
 *                       the same scheme: kaiming_normal_, xavier_uniform_ last, zero biases)
 *   import/torch-draws  the imported model from a fresh PyTorch draw at seed + N
 *                       (torch.manual_seed, the fixture script's LeNet; needs python3 with torch)
 *
 * then each column's mean and spread (sample standard deviation, min..max). Columns with different
 * `--columns` can run side by side in separate invocations.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { initValues } from '../dist/src/runtime/init.js';
import { saveCheckpointFile } from '../dist/src/train/checkpoint-file.js';

const { values: opt } = parseArgs({ options: { seeds: { type: 'string', default: '0,1,2' }, columns: { type: 'string', default: 'zoo,import/zoo,import/torch' }, 'init-offset': { type: 'string', default: '0' }, epochs: { type: 'string', default: '5' }, adapter: { type: 'string' } } });
const seeds = opt.seeds.split(',').map(Number);
const dir = mkdtempSync(join(tmpdir(), 'onnx-lenet-'));
// Kernels untuned on both sides (the tuner's timings under load would pick different kernels per run).
const env = { ...process.env, ADJOINT_TUNE: '0' };
const cli = (cmd, ...args) => execFileSync(process.execPath, ['bin/adjoint.js', cmd, ...args, ...(opt.adapter && cmd === 'train' ? ['--adapter', opt.adapter] : [])], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], env });
const columns = opt.columns.split(',');
// zoo/offset, import/zoo and import/torch-draws draw their weights at seed + offset (the data order stays the seed's).
const offset = Number(opt['init-offset']);
const accuracy = (out) => {
  const m = /held-out accuracy: ([\d.]+)%/.exec(out);
  if (!m) throw new Error(`no held-out accuracy in:\n${out}`);
  return Number(m[1]);
};

const imported = join(dir, 'lenet-onnx.json');
cli('import', 'test/fixtures/onnx/lenet-mnist.onnx', '-o', imported, '--loss', 'softmax-cross-entropy', '--labels', 'y', '--optimizer', 'adam:lr=0.001');
const zoo = JSON.parse(readFileSync('models/lenet-mnist.json', 'utf8'));
const imp = JSON.parse(readFileSync(imported, 'utf8'));
if (zoo.optimizer.kind !== imp.optimizer.kind || zoo.optimizer.lr !== imp.optimizer.lr) throw new Error(`optimizers differ: ${JSON.stringify(zoo.optimizer)} vs ${JSON.stringify(imp.optimizer)}`);
if (zoo.inputs[0].shape.join() !== imp.inputs[0].shape.join()) throw new Error('batch shapes differ');

/** The zoo's parameter -> the torch parameter it is (dense weights are [in, out] in the zoo, [out, in] in torch). */
const MAP = { c1: 'c1.weight', c1b: 'c1.bias', c2: 'c2.weight', c2b: 'c2.bias', f1: 'f1.weight', f1b: 'f1.bias', f2: 'f2.weight', f2b: 'f2.bias', f3: 'f3.weight', f3b: 'f3.bias' };
function zooInitAsTorch(seed) {
  const shapes = new Map(imp.params.map((p) => [p.name, p.shape]));
  const tensors = new Map();
  for (const p of zoo.params) {
    const v = initValues(p.init, p.shape, seed, p.name);
    const to = MAP[p.name];
    const shape = shapes.get(to);
    if (!shape || shape.reduce((a, b) => a * b, 1) !== v.length) throw new Error(`${p.name} -> ${to}: shapes differ`);
    if (p.shape.length === 2) {
      const [r, c] = p.shape;
      const t = new Float32Array(v.length);
      for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) t[j * r + i] = v[i * c + j];
      tensors.set(to, t);
    } else tensors.set(to, v);
  }
  const file = join(dir, `zoo-init-${seed}.safetensors`);
  saveCheckpointFile(file, { step: 0, model: imp.name, params: [...tensors.keys()], tensors, shapes, meta: { source: `models/lenet-mnist.json at seed ${seed}` } }, 'weights');
  return file;
}

/** The zoo's own seeded initialization at `seed`, as a weights file for the zoo model. */
function zooInit(seed) {
  const tensors = new Map(zoo.params.map((p) => [p.name, initValues(p.init, p.shape, seed, p.name)]));
  const file = join(dir, `zoo-own-init-${seed}.safetensors`);
  saveCheckpointFile(file, { step: 0, model: zoo.name, params: [...tensors.keys()], tensors, shapes: new Map(zoo.params.map((p) => [p.name, p.shape])), meta: { source: `models/lenet-mnist.json at seed ${seed}` } }, 'weights');
  return file;
}

const train = (what, model, seed, init) => {
  if (!columns.includes(what)) return {};
  const t0 = Date.now();
  const a = accuracy(cli('train', model, '--data', 'mnist', '--epochs', opt.epochs, '--seed', String(seed), ...(init ? ['--init', init()] : [])));
  process.stdout.write(`  ${what} seed ${seed}: ${a.toFixed(2)}% (${((Date.now() - t0) / 1000).toFixed(0)} s)\n`);
  return { [what]: a };
};
/** A fresh PyTorch draw: `torch.manual_seed(seed); LeNet()` of scripts/onnx-fixtures.py, its state dict as safetensors (needs python3 with torch). */
function torchDraw(seed) {
  const file = join(dir, `torch-init-${seed}.safetensors`);
  execFileSync('python3', ['-c', `
import importlib.util, sys, torch
from safetensors.torch import save_file
spec = importlib.util.spec_from_file_location("fx", "scripts/onnx-fixtures.py")
fx = importlib.util.module_from_spec(spec); spec.loader.exec_module(fx)
torch.manual_seed(${Number(seed)})
save_file({n: t.detach().contiguous() for n, t in fx.LeNet().state_dict().items()}, sys.argv[1])
`, file], { stdio: ['ignore', 'ignore', 'inherit'] });
  return file;
}

const cols = { zoo: [], 'zoo/offset': [], 'import/zoo': [], 'import/torch': [], 'import/torch-draws': [] };
for (const seed of seeds) {
  const row = {
    ...train('zoo', 'models/lenet-mnist.json', seed),
    ...train('zoo/offset', 'models/lenet-mnist.json', seed, () => zooInit(seed + offset)),
    ...train('import/zoo', imported, seed, () => zooInitAsTorch(seed + offset)),
    ...train('import/torch', imported, seed, () => imported.replace(/\.json$/, '.safetensors')),
    ...train('import/torch-draws', imported, seed, () => torchDraw(seed + offset)),
  };
  for (const k of Object.keys(row)) cols[k].push(row[k]);
  process.stdout.write(`seed ${seed}: ${Object.entries(row).map(([k, v]) => `${k} ${v.toFixed(2)}%`).join(', ')}\n`);
}
const stats = (xs) => {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1)) : 0;
  return `${mean.toFixed(2)}% (sd ${sd.toFixed(2)}, ${Math.min(...xs).toFixed(2)}..${Math.max(...xs).toFixed(2)})`;
};
process.stdout.write(`held-out accuracy over seeds ${seeds.join(',')}, ${opt.epochs} epochs: ${Object.entries(cols).filter(([, v]) => v.length).map(([k, v]) => `${k} ${stats(v)}`).join('; ')}\n`);
