/**
 * @file LeNet training-step timing (`node dist/bench/lenet-step.js [model.json]` after
 * `npm run build`): compiles the model's training program, runs a few warm-up steps, then times
 * 10 steps (the loss read back on the last) and, per kernel, each dispatch alone (its own program
 * over the same buffers, several dispatches per submit). Much quicker than the full benchmark;
 * used to measure convolution lowering changes. PROFILE=0 skips the per-kernel table.
 */
import { readFileSync } from 'node:fs';
import { compile } from '../src/compile.js';
import { loadModel } from '../src/ir/schema.js';
import { deviceLimits, getDevice } from '../src/runtime/device.js';
import { Program } from '../src/runtime/program.js';
import type { Artifact } from '../src/runtime/artifact.js';

const STEPS = 10;
const WARMUP = 3;

/** Random-ish feeds for every input of the program (labels in 0..9). */
function feedsOf(a: Artifact): Record<string, Float32Array | Int32Array> {
  const out: Record<string, Float32Array | Int32Array> = {};
  for (const s of a.inputs) {
    const n = s.shape.reduce((p, q) => p * q, 1);
    out[s.name] = s.dtype === 'i32' ? Int32Array.from({ length: n }, (_, i) => (i * 7) % 10) : Float32Array.from({ length: n }, (_, i) => ((i * 7919) % 1000) / 1000);
  }
  return out;
}

/** Median milliseconds of one run of dispatch `i` alone (repeated `reps` times per submit). */
async function timeDispatch(device: GPUDevice, a: Artifact, i: number, reps: number): Promise<number> {
  const d = a.dispatches[i]!;
  const one: Artifact = {
    ...a, shaders: [a.shaders[d.shader]!], dispatches: Array.from({ length: reps }, () => ({ ...d, shader: 0 })), copies: [], frees: [],
  };
  const prog = await Program.load(device, one);
  const out = a.outputs[0]!.name;
  await prog.step({}, [out]);
  const times: number[] = [];
  for (let r = 0; r < 3; r++) {
    const t0 = performance.now();
    await prog.step({}, [out]);
    times.push((performance.now() - t0) / reps);
  }
  prog.destroy();
  return times.sort((x, y) => x - y)[1]!;
}

async function main(): Promise<void> {
  const path = process.argv[2] ?? 'models/lenet-mnist.json';
  const device = await getDevice({ quiet: true });
  const c = compile(loadModel(readFileSync(path, 'utf8'), path), { limits: deviceLimits(device) });
  const a = c.train;
  if (!a) throw new Error(`${path} does not train`);
  const tl = performance.now();
  const prog = await Program.load(device, a);
  const feeds = feedsOf(a);
  const loss = a.loss ?? a.outputs[0]!.name;
  await prog.step(feeds, [loss]);
  const firstMs = performance.now() - tl;
  for (let i = 1; i < WARMUP; i++) await prog.step(feeds, [loss]);
  const t0 = performance.now();
  for (let i = 0; i < STEPS - 1; i++) prog.step(feeds);
  const last = await prog.step(feeds, [loss]);
  const ms = (performance.now() - t0) / STEPS;
  prog.destroy();
  const wgslBytes = a.shaders.reduce((s, x) => s + x.length, 0);
  console.log(`${path}: ${a.dispatches.length} dispatches, ${(wgslBytes / 1024).toFixed(0)} KiB of WGSL, load + first step ${firstMs.toFixed(0)} ms`);
  console.log(`${ms.toFixed(1)} ms/step (${(1000 / ms).toFixed(2)} steps/s) over ${STEPS} steps, loss ${last!.get(loss)![0]!.toFixed(4)}`);
  if (process.env.PROFILE === '0') return;
  const rows = [];
  for (let i = 0; i < a.dispatches.length; i++) rows.push({ i, label: a.dispatches[i]!.label, wg: a.dispatches[i]!.workgroups.join('x'), ms: await timeDispatch(device, a, i, 3) });
  const total = rows.reduce((s, r) => s + r.ms, 0);
  for (const r of [...rows].sort((p, q) => q.ms - p.ms)) {
    console.log(`${r.ms.toFixed(2).padStart(9)} ms ${((100 * r.ms) / total).toFixed(1).padStart(5)}%  #${r.i} ${r.label} [${r.wg}]`);
  }
  console.log(`${total.toFixed(1).padStart(9)} ms total of dispatches alone`);
}

await main();
