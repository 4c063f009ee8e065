/**
 * @file Convolutions as implicit GEMMs on the tiled matmul kernel, run on the adapter against the
 * interpreter: shapes whose M, N and K are not multiples of the tile or the unroll (partial tiles,
 * a remainder loop), stride, padding and dilation, each convolution fused with an elementwise
 * epilogue or an in-place parameter update, a filter gradient whose long K is split over threads
 * (two kernels, the second binding only what its epilogue reads), a split matmul that also sums
 * its right operand's columns (a bias gradient), and the naive one-thread-per-output baseline.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compile, emitArtifact, type EmitOptions } from '../../src/compile.js';
import { GraphBuilder, type Value } from '../../src/ir/builder.js';
import type { Graph } from '../../src/ir/graph.js';
import { evaluate } from '../../src/ir/interp.js';
import { tensor, type Tensor } from '../../src/ir/tensor.js';
import { loadModel } from '../../src/ir/schema.js';
import { getDevice } from '../../src/runtime/device.js';
import { Program } from '../../src/runtime/program.js';
import { maxRelError, randomEnv } from './harness.js';

let device: GPUDevice;
beforeAll(async () => { device = await getDevice({ quiet: true }); });
afterAll(() => device?.destroy());

type Pair = [number, number];
interface ConvAttrs { readonly stride: Pair; readonly padding: Pair; readonly dilation: Pair }

/** The dispatch labels of a graph's program (fused, spec limits). */
const labels = (g: Graph, opts: EmitOptions = {}) => emitArtifact(g, opts).dispatches.map((d) => d.label);

/**
 * Runs two steps on the GPU (poisoning dead temporaries) and in the interpreter, carrying the
 * updates; every output and every updated value must agree.
 */
async function expectSteps(g: Graph, opts: EmitOptions = {}, tol = 1e-5, dev = device): Promise<void> {
  let env: Map<string, Tensor> = randomEnv(g, 11, (name, _, u) => (name.startsWith('corr') ? 0.5 + u() : 2 * u() - 1));
  const program = await Program.load(dev, emitArtifact(g, opts), { strictShaders: true, poison: true });
  try {
    for (const [name, t] of env) program.write(name, Float32Array.from(t.data));
    for (let s = 0; s < 2; s++) {
      const want = evaluate(g, env, 'f32');
      const got = (await program.step({}, g.outputs.map((o) => o.name)))!;
      for (const o of g.outputs) {
        const err = maxRelError(got.get(o.name)!, want.outputs.get(o.name)!.data);
        expect(err, `${o.name} at step ${s}`).toBeLessThanOrEqual(tol);
      }
      for (const [name, t] of want.updates) {
        expect(maxRelError(await program.read(name), t.data), `${name} after step ${s}`).toBeLessThanOrEqual(tol);
      }
      const next = new Map(env);
      for (const [name, t] of want.updates) next.set(name, tensor(t.type.shape, t.data));
      env = next;
    }
  } finally {
    program.destroy();
  }
}

const inputGrad = (b: GraphBuilder, dy: Value, w: Value, a: ConvAttrs, size: Pair) => b.add('conv2d_input_grad', { ...a, size }, [dy, w]);
const filterGrad = (b: GraphBuilder, x: Value, dy: Value, a: ConvAttrs, kernel: Pair) => b.add('conv2d_filter_grad', { ...a, kernel }, [x, dy]);

describe('convolutions on the tiled matmul kernel', () => {
  it('conv2d + bias + relu in one kernel: M = 507, N = 11, K = 45 (partial tiles, a remainder step)', async () => {
    const b = new GraphBuilder();
    const y = b.conv2d(b.input('x', [3, 5, 13, 11]), b.input('w', [11, 5, 3, 3]), { padding: [1, 2] });
    b.output('y', b.relu(b.add_(y, b.input('bias', [1, 11, 1, 1]))));
    const g = b.build();
    expect(labels(g)).toEqual(['conv2d+add+relu matmul']);
    await expectSteps(g);
  });

  it('conv2d with stride 2, padding and dilation, a tanh epilogue and a second output from the same kernel', async () => {
    const b = new GraphBuilder();
    const y = b.conv2d(b.input('x', [2, 3, 17, 14]), b.input('w', [9, 3, 3, 2]), { stride: [2, 1], padding: [2, 1], dilation: [2, 1] });
    const t = b.tanh(b.mul(y, b.input('s', [1, 9, 1, 1])));
    b.output('t', t);
    b.output('u', b.neg(t));
    const g = b.build();
    expect(labels(g).every((l) => l.endsWith('matmul'))).toBe(true);
    await expectSteps(g);
  });

  it('conv2d_input_grad with stride 2, padding 1, dilation [1, 2] and a relu-mask epilogue: M = 198, N = 5, K = 90', async () => {
    const b = new GraphBuilder();
    const a: ConvAttrs = { stride: [2, 2], padding: [1, 1], dilation: [1, 2] };
    const x = b.input('x', [2, 5, 11, 9]);
    const w = b.input('w', [10, 5, 3, 3]);
    const dy = b.input('dy', [2, 10, 6, 4]);
    const dx = inputGrad(b, dy, w, a, [11, 9]);
    b.output('dx', b.where(b.gt(x, 0), dx, 0));
    const g = b.build();
    expect(labels(g).some((l) => l.startsWith('conv2d_input_grad') && l.includes('where') && l.endsWith('matmul'))).toBe(true);
    await expectSteps(g);
  });

  it('conv2d_filter_grad fused with an in-place SGD update: M = 10, N = 45, K = 50', async () => {
    const b = new GraphBuilder();
    const a: ConvAttrs = { stride: [2, 1], padding: [0, 1], dilation: [1, 1] };
    const x = b.input('x', [2, 5, 11, 9]);
    const w = b.param('w', [10, 5, 3, 3]);
    const dy = b.input('dy', [2, 10, 5, 9]);
    b.update('w', b.sub(w, b.mul(filterGrad(b, x, dy, a, [3, 3]), 0.1)));
    const g = b.build();
    expect(labels(g)).toEqual(['conv2d_filter_grad+mul+sub matmul']);
    await expectSteps(g);
  });

  it('conv2d_filter_grad over K = 5985 splits K over threads, then sums the chunks and runs the momentum update in place', async () => {
    const b = new GraphBuilder();
    const a: ConvAttrs = { stride: [1, 1], padding: [1, 1], dilation: [1, 1] };
    const x = b.input('x', [15, 3, 19, 21]);
    const w = b.param('w', [10, 3, 3, 3]);
    const m = b.state('w@m', [10, 3, 3, 3]);
    const dy = b.input('dy', [15, 10, 19, 21]);
    const m2 = b.add_(b.mul(m, 0.9), filterGrad(b, x, dy, a, [3, 3]));
    b.update('w@m', m2);
    b.update('w', b.sub(w, b.mul(m2, 0.01)));
    const g = b.build();
    expect(labels(g)).toEqual(['mul+conv2d_filter_grad+add+mul+sub matmul(split-k 1/2)', 'mul+conv2d_filter_grad+add+mul+sub matmul(split-k 2/2)']);
    // 5985 terms summed in f32 in another order (chunk by chunk) than the interpreter's.
    await expectSteps(g, {}, 5e-5);
  });

  it('a split filter gradient whose Adam epilogue reads two more inputs fits 7 storage buffers: its second kernel binds only what the epilogue reads', async () => {
    const b = new GraphBuilder();
    const a: ConvAttrs = { stride: [1, 1], padding: [0, 0], dilation: [1, 1] };
    const x = b.input('x', [12, 2, 12, 12]);
    const dy = b.input('dy', [12, 6, 10, 10]);
    const w = b.param('w', [6, 2, 3, 3]);
    const m = b.state('w@m', [6, 2, 3, 3]);
    const v = b.state('w@v', [6, 2, 3, 3]);
    const gw = filterGrad(b, x, dy, a, [3, 3]);
    const m2 = b.add_(b.mul(m, 0.9), b.mul(gw, 0.1));
    const v2 = b.add_(b.mul(v, 0.999), b.mul(b.mul(gw, gw), 0.001));
    const step = b.div(b.div(m2, b.input('corr1', [1])), b.add_(b.sqrt(b.div(v2, b.input('corr2', [1]))), 1e-8));
    b.update('w@m', m2);
    b.update('w@v', v2);
    b.update('w', b.sub(w, b.mul(step, 0.001)));
    const g = b.build();
    const limits = { maxStorageBuffersPerShaderStage: 7 };
    const art = emitArtifact(g, { limits });
    const conv = art.dispatches.filter((d) => d.label.includes('conv2d_filter_grad')).map((d) => d.label.split(' ').slice(1).join(' '));
    expect(conv).toEqual(['matmul(split-k 1/2)', 'matmul(split-k 2/2)']);
    expect(Math.max(...art.dispatches.map((d) => d.bindings.length))).toBeLessThanOrEqual(7);
    const dev = await getDevice({ quiet: true, maxStorageBuffersPerShaderStage: 7 });
    try {
      await expectSteps(g, { limits }, 5e-5, dev);
    } finally {
      dev.destroy();
    }
  });

  it('at the spec\'s 8 storage buffers, LeNet\'s training program splits its filter gradients and no dispatch binds more than 8', () => {
    const { train } = compile(loadModel(readFileSync('models/lenet-mnist.json', 'utf8'), 'lenet-mnist.json'));
    expect(train!.dispatches.filter((d) => d.label.startsWith('conv2d_filter_grad') && d.label.endsWith('(split-k 2/2)')).length).toBe(2);
    expect(Math.max(...train!.dispatches.map((d) => d.bindings.length))).toBeLessThanOrEqual(8);
  });

  it('a split matmul with its column sums (weight and bias gradients over a batch of 1500) updates both in place', async () => {
    const b = new GraphBuilder();
    const x = b.input('x', [1500, 20]);
    const dy = b.input('dy', [1500, 12]);
    const w = b.param('w', [20, 12]);
    const bias = b.param('bias', [12]);
    b.update('w', b.sub(w, b.mul(b.matmul(b.transpose(x), dy), 0.1)));
    b.update('bias', b.sub(bias, b.mul(b.reduceSum(dy, 0), 0.1)));
    const g = b.build();
    expect(labels(g)).toEqual(['transpose+matmul+mul+sub+reduce_sum+mul+sub matmul+colsum(split-k 1/2)', 'transpose+matmul+mul+sub+reduce_sum+mul+sub matmul+colsum(split-k 2/2)']);
    await expectSteps(g, {}, 5e-5);
  });

  it('the naive baseline lowers the three convolutions to one-thread-per-output reductions, and they agree', async () => {
    const b = new GraphBuilder();
    const a: ConvAttrs = { stride: [2, 1], padding: [1, 0], dilation: [1, 1] };
    const x = b.input('x', [2, 3, 9, 7]);
    const w = b.input('w', [5, 3, 3, 3]);
    const y = b.conv2d(x, w, a);
    const dy = b.input('dy', [...y.type.shape]);
    b.output('y', b.relu(y));
    b.output('dx', inputGrad(b, dy, w, a, [9, 7]));
    b.output('dw', filterGrad(b, x, dy, a, [3, 3]));
    const g = b.build();
    expect(labels(g, { naiveMatmul: true }).every((l) => l.includes('reduce'))).toBe(true);
    expect(labels(g).every((l) => l.includes('matmul'))).toBe(true);
    await expectSteps(g, { naiveMatmul: true });
    await expectSteps(g);
  });
});
