/**
 * @file Counterexamples found by the differential fuzzer (differential.test.ts), shrunk by
 * fast-check and kept as named tests, each with the bug it found and where it was fixed. Every
 * case runs on the real adapter fused and unfused, plain and in poison mode, against the
 * interpreter.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compile, trainingGraph } from '../../src/compile.js';
import { GraphBuilder } from '../../src/ir/builder.js';
import { evaluate } from '../../src/ir/interp.js';
import type { Model } from '../../src/ir/model.js';
import { zeros } from '../../src/ir/tensor.js';
import { getDevice } from '../../src/runtime/device.js';
import { Program } from '../../src/runtime/program.js';
import { maxRelError } from '../gpu/harness.js';
import { expectCaseMatches, fuzzEnv } from './check.js';
import { BASE_TOLERANCE } from './graphs.js';

let device: GPUDevice;
beforeAll(async () => { device = await getDevice({ quiet: true }); });
afterAll(() => device?.destroy());

/**
 * Compiles a model's training program for the spec's limits and runs one step on the adapter from
 * seeded inputs and parameters (state zero): the loss, every parameter and every state must match
 * the interpreter running the same training graph in float32.
 */
async function expectTrainingStepMatches(model: Model): Promise<void> {
  const { train } = compile(model);
  const graph = trainingGraph(model).graph;
  const env = new Map([...fuzzEnv(graph, 0)].map(([name, t]) => [name, train!.state.some((s) => s.name === name) ? zeros(t.type) : t]));
  const want = evaluate(graph, env, 'f32');
  const prog = await Program.load(device, train!, { strictShaders: true });
  try {
    for (const [name, t] of env) prog.write(name, Float32Array.from(t.data));
    const loss = (await prog.step({}, ['loss']))!.get('loss')!;
    expect(maxRelError(loss, want.outputs.get('loss')!.data), 'loss').toBeLessThanOrEqual(BASE_TOLERANCE);
    for (const [name, got] of await prog.snapshot()) {
      expect(maxRelError(got, want.updates.get(name)!.data), name).toBeLessThanOrEqual(BASE_TOLERANCE);
    }
  } finally {
    prog.destroy();
  }
}

/** Builds a graph with the builder and checks it like a fuzz case (8 storage buffers, input seed 0). */
async function expectMatches(build: (b: GraphBuilder) => void, bindings = 8): Promise<void> {
  const b = new GraphBuilder();
  build(b);
  await expectCaseMatches(device, { graph: b.build(), bindings, tolerance: BASE_TOLERANCE }, 0);
}

describe('fuzzer regressions', () => {
  // Found with seed 20261123, shrunk to:
  //   a:i32[] = input "x0"; b:i32[] = input "x1"; c:i32[] = full 0; d:i32[] = where c a b; out0 = d
  // Lowering took a binding for `a` before the constant condition folded the select to `b`, so
  // the shader declared a binding it never read; WebGPU's 'auto' layout leaves such a binding
  // out and the program's bind group was rejected ("binding index 0 not present in the bind
  // group layout"). Fixed in src/runtime/program.ts: pipelines use explicit layouts that declare
  // every binding the artifact lists.
  it('where with a constant condition: the untaken operand is bound but never read', async () => {
    await expectMatches((b) => {
      const a = b.input('x0', [], 'i32');
      const y = b.input('x1', [], 'i32');
      b.output('out0', b.where(b.full(0, [], 'i32'), a, y));
    });
    await expectMatches((b) => {
      const a = b.input('x0', [3, 4]);
      const y = b.input('x1', [4]);
      b.output('out0', b.where(b.full(1, [], 'i32'), b.exp(a), y));
    });
  });

  // Found by the gradient fuzzer (gradients.test.ts, seed 20261124) in an adjoint graph, after
  // 6 cases, and reduced by hand to its forward form: m = exp(x) and o = sin(x) are both stored;
  // m + o^T joins m's kernel (o is read transposed, so not o's), then o * m joined o's kernel
  // because m does not depend on o. Each kernel now read the other's output: no order existed
  // ("the in-place updates of this kernel list admit no order", with no update in the graph).
  // Fixed in src/passes/fusion.ts: a kernel may join another only if it reads nothing that is
  // ready after it, counting every output of a kernel that writes one (readyAfter).
  it('two multi-output kernels that would each read the other\'s output', async () => {
    await expectMatches((b) => {
      const x = b.input('x0', [2, 2]);
      const m = b.exp(x);
      const o = b.sin(x);
      b.output('out0', m);
      b.output('out1', o);
      b.output('out2', b.add_(m, b.transpose(o, [1, 0])));
      b.output('out3', b.mul(o, m));
    });
  });

  // Found by the gradient fuzzer (seed 7) in an adjoint graph (a weight gradient next to a bias
  // gradient), reduced by hand: r = colsum(n) takes r + v as its epilogue, so v = u @ n is stored,
  // and the column sum was then put into v's matmul kernel as its side output, whose epilogue
  // reads the matmul's own result: "internal: value … (matmul) must be materialized to be read".
  // Fixed in src/passes/fusion.ts (absorbColumnSums): the two parts of a joined kernel may not
  // read each other's outputs, checked before the joined kernel is lowered.
  it('a column sum whose epilogue reads the matmul it would join', async () => {
    await expectMatches((b) => {
      const n = b.input('x0', [3, 4]);
      const u = b.input('x1', [1, 3]);
      const r = b.reduceSum(n, 0, true);
      b.output('out0', b.add_(r, b.matmul(u, n)));
    });
  });

  // Found compiling the gradient fuzzer's random problems for training with Adam (the random
  // graphs of test/memory.test.ts), shrunk to loss = sum(x0 * x1 * w0). Fusion joined x0's update
  // (written over x0) to the kernel of dloss/dx0 = w0 * x1, which reads x1, and x1's update
  // (written over x1) to a kernel that recomputes dloss/dx1 = w0 * x0: each kernel had to run
  // before the other, so emit dropped every update in place — but the first kernel fit the 8
  // bindings only with them: "a mul kernel needs 10 storage buffers". Fixed in
  // src/codegen/emit.ts: without updates in place, fusion is planned again (`inPlace: false`).
  it('Adam on two parameters whose in-place updates admit no order', async () => {
    const b = new GraphBuilder();
    const x0 = b.param('x0', [1]);
    const x1 = b.param('x1', []);
    b.output('loss', b.reduceSum(b.mul(b.mul(x0, x1), b.input('w0', [1]))));
    await expectTrainingStepMatches({
      name: 'two-params', graph: b.build(), loss: 'loss', optimizer: { kind: 'adam', lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 },
    });
  });

  // The same cycle next to a parameter outside it: only the cycle's updates (x0, x1 and their Adam
  // state) are written out of place and copied back; x2 and its state stay in place.
  it('a schedule cycle of in-place updates sends only its own updates out of place', async () => {
    const b = new GraphBuilder();
    const x0 = b.param('x0', [1]);
    const x1 = b.param('x1', []);
    const x2 = b.param('x2', [3]);
    const cyclic = b.reduceSum(b.mul(b.mul(x0, x1), b.input('w0', [1])));
    b.output('loss', b.add_(cyclic, b.reduceSum(b.mul(x2, b.input('w1', [3])))));
    const model: Model = {
      name: 'three-params', graph: b.build(), loss: 'loss', optimizer: { kind: 'adam', lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 },
    };
    const { train } = compile(model);
    const slots = [...train!.params, ...train!.state];
    const copied = train!.copies.map((c) => slots.find((p) => p.region.arena === c.to.arena && p.region.offset === c.to.offset)?.name);
    expect(copied.length).toBeGreaterThan(0);
    expect(copied.every((name) => name !== undefined && !name.includes('x2')), copied.join(', ')).toBe(true);
    expect(slots.filter((p) => p.name.includes('x2')).length).toBeGreaterThan(1);
    await expectTrainingStepMatches(model);
  });

  // The same defect through another folding rule: i32 `x * 0` folds to 0 and drops x's load.
  it('an i32 product with the constant 0: the operand is bound but never read', async () => {
    await expectMatches((b) => {
      const a = b.input('x0', [5], 'i32');
      b.output('out0', b.add_(b.mul(a, b.full(0, [], 'i32')), b.input('x1', [5], 'i32')));
    });
  });
});
