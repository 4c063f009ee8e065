/**
 * @file An outside oracle for autodiff: the float32 gradients of our adjoint graphs, evaluated by
 * the reference interpreter, against TensorFlow.js's CPU backend (its own gradient functions, not
 * ours) on the same seeded values, for an MLP with softmax cross-entropy, a small CNN (strided,
 * padded conv2d, relu, max pooling, dense, cross-entropy) and an attention block (q/k/v
 * projections, causal attention, residual, layernorm, GELU MLP, squared error). Layouts differ:
 * ours is NCHW / OIHW with symmetric padding, TF.js's NHWC / HWIO, so the TF.js model keeps the
 * variables in our layout and transposes inside the function; both get identical values.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { F32_LOWEST, GraphBuilder, type Value } from '../../src/ir/builder.js';
import { numel, type Shape } from '../../src/ir/dtype.js';
import type { Graph } from '../../src/ir/graph.js';
import { evaluate } from '../../src/ir/interp.js';
import type { Init } from '../../src/ir/ops.js';
import { tensor, type Tensor } from '../../src/ir/tensor.js';
import { verify } from '../../src/ir/verify.js';
import { grad } from '../../src/passes/autodiff.js';
import { initValues } from '../../src/runtime/init.js';

const SEED = 1234;
const uniform = (r: number): Init => ({ kind: 'uniform', low: -r, high: r });

/** One source of a model: its name, shape and seeded values (labels are class ids). */
interface Source {
  readonly name: string;
  readonly shape: Shape;
  readonly data: Float32Array;
  readonly labels?: Int32Array;
}

const seeded = (name: string, shape: Shape, init: Init = uniform(1)): Source => ({ name, shape, data: initValues(init, shape, SEED, name) });
const labels = (name: string, n: number, classes: number): Source => {
  const u = initValues(uniform(1), [n], SEED, name);
  return { name, shape: [n], data: u, labels: Int32Array.from(u, (x) => Math.min(classes - 1, Math.floor(((x + 1) / 2) * classes))) };
};

interface Model {
  readonly inputs: readonly Source[];
  readonly params: readonly Source[];
  /** Our graph; `p` and `x` are the params and inputs by name. */
  readonly ours: (b: GraphBuilder, p: Record<string, Value>, x: Record<string, Value>) => Value;
  /** The same loss in TF.js, from the params and inputs by name. */
  readonly theirs: (p: Record<string, tf.Tensor>, x: Record<string, tf.Tensor>) => tf.Scalar;
}

function oursGrads(m: Model): { loss: number; grads: Map<string, Float32Array> } {
  const b = new GraphBuilder();
  const x = Object.fromEntries(m.inputs.map((s) => [s.name, b.input(s.name, s.shape, s.labels ? 'i32' : 'f32')]));
  const p = Object.fromEntries(m.params.map((s) => [s.name, b.param(s.name, s.shape)]));
  b.output('loss', m.ours(b, p, x));
  const g: Graph = b.build();
  const r = grad(g, { loss: 'loss' });
  verify(r.graph, 'autodiff');
  expect(r.diagnostics).toEqual([]);
  const env = new Map<string, Tensor>();
  for (const s of [...m.inputs, ...m.params]) env.set(s.name, s.labels ? tensor(s.shape, s.labels, 'i32') : tensor(s.shape, s.data));
  const out = evaluate(r.graph, env, 'f32');
  const grads = new Map(m.params.map((s) => [s.name, Float32Array.from(out.outputs.get(`grad:${s.name}`)!.data)]));
  return { loss: out.outputs.get('loss')!.data[0]!, grads };
}

function theirGrads(m: Model): { loss: number; grads: Map<string, Float32Array> } {
  const [loss, ...gs] = tf.tidy(() => {
    const x = Object.fromEntries(m.inputs.map((s) => [s.name, s.labels ? tf.tensor(s.labels, [...s.shape], 'int32') : tf.tensor(s.data, [...s.shape])]));
    const ps = m.params.map((s) => tf.tensor(s.data, [...s.shape]));
    const f = (...args: tf.Tensor[]) => m.theirs(Object.fromEntries(m.params.map((s, i) => [s.name, args[i]!])), x);
    return [f(...ps), ...tf.grads(f)(ps)];
  });
  const out = { loss: loss!.dataSync()[0]!, grads: new Map(m.params.map((s, i) => [s.name, Float32Array.from(gs[i]!.dataSync())])) };
  tf.dispose([loss!, ...gs]);
  return out;
}

const norm = (v: ArrayLike<number>) => Math.sqrt(Array.from(v).reduce((s, x) => s + x * x, 0));

/**
 * Per gradient: ||a - b|| / max(||b||, 1e-6) <= 1e-4, and per element |a - b| <= 1e-4 max(|b|, floor)
 * with floor = max|b| / 10, i.e. an absolute floor of 1e-5 of the gradient's largest element: small
 * elements that are differences of larger float32 terms carry errors of that size (measured here:
 * the norm-relative errors are 2e-8..3e-7, and the largest elementwise error is 3.4e-7 max|b|).
 */
function expectAgree(m: Model) {
  const ours = oursGrads(m);
  const theirs = theirGrads(m);
  expect(Math.abs(ours.loss - theirs.loss)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(theirs.loss)));
  for (const s of m.params) {
    const a = ours.grads.get(s.name)!;
    const b = theirs.grads.get(s.name)!;
    expect(a.length, s.name).toBe(numel(s.shape));
    expect(b.length, s.name).toBe(numel(s.shape));
    expect(norm(b), `${s.name}: TF.js gradient is zero`).toBeGreaterThan(1e-4);
    const diff = norm(a.map((x, i) => x - b[i]!));
    expect(diff / Math.max(norm(b), 1e-6), `${s.name}: norm-relative error`).toBeLessThanOrEqual(1e-4);
    const floor = 0.1 * Math.max(...Array.from(b, Math.abs));
    a.forEach((x, i) => expect(Math.abs(x - b[i]!), `${s.name}[${i}]: ours ${x}, TF.js ${b[i]}`).toBeLessThanOrEqual(1e-4 * Math.max(Math.abs(b[i]!), floor)));
  }
}

/** TF.js's softmax cross-entropy: mean over the batch of -log softmax at the label. */
const tfCrossEntropy = (logits: tf.Tensor, y: tf.Tensor): tf.Scalar =>
  tf.losses.softmaxCrossEntropy(tf.oneHot(y as tf.Tensor1D, logits.shape[1]!), logits) as tf.Scalar;

describe('float32 gradients agree with TensorFlow.js (CPU backend)', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it('MLP 6 -> 8 -> 8 -> 3, relu, softmax cross-entropy, batch 5', () => {
    expectAgree({
      inputs: [seeded('x', [5, 6]), labels('y', 5, 3)],
      params: [
        seeded('w1', [6, 8], { kind: 'glorot_uniform' }), seeded('b1', [8], uniform(0.1)),
        seeded('w2', [8, 8], { kind: 'glorot_uniform' }), seeded('b2', [8], uniform(0.1)),
        seeded('w3', [8, 3], { kind: 'glorot_uniform' }), seeded('b3', [3], uniform(0.1)),
      ],
      ours: (b, p, x) => {
        const h1 = b.relu(b.linear(x.x!, p.w1!, p.b1));
        const h2 = b.relu(b.linear(h1, p.w2!, p.b2));
        return b.softmaxCrossEntropy(b.linear(h2, p.w3!, p.b3), x.y!);
      },
      theirs: (p, x) => {
        const h1 = tf.relu(tf.add(tf.matMul(x.x!, p.w1!), p.b1!));
        const h2 = tf.relu(tf.add(tf.matMul(h1, p.w2!), p.b2!));
        return tfCrossEntropy(tf.add(tf.matMul(h2, p.w3!), p.b3!), x.y!);
      },
    });
  });

  it('CNN: conv2d 3x3 stride [2,1] padding [1,2], relu, 2x2 max pool, dense, cross-entropy', () => {
    // [2,2,7,6] -conv-> [2,3,4,8] -pool-> [2,3,2,4] -flatten-> [2,24] -dense-> [2,4]
    expectAgree({
      inputs: [seeded('x', [2, 2, 7, 6]), labels('y', 2, 4)],
      params: [
        seeded('w', [3, 2, 3, 3], { kind: 'glorot_uniform' }), seeded('cb', [3, 1, 1], uniform(0.1)),
        seeded('wd', [24, 4], { kind: 'glorot_uniform' }), seeded('bd', [4], uniform(0.1)),
      ],
      ours: (b, p, x) => {
        const c = b.relu(b.add_(b.conv2d(x.x!, p.w!, { stride: [2, 1], padding: [1, 2] }), p.cb!));
        const pooled = b.maxPool2d(c, { kernel: [2, 2] });
        return b.softmaxCrossEntropy(b.linear(b.reshape(pooled, [2, 24]), p.wd!, p.bd), x.y!);
      },
      theirs: (p, x) => {
        const nhwc = tf.transpose(x.x!, [0, 2, 3, 1]) as tf.Tensor4D;
        const hwio = tf.transpose(p.w!, [2, 3, 1, 0]) as tf.Tensor4D;
        const conv = tf.conv2d(nhwc, hwio, [2, 1], [[0, 0], [1, 1], [2, 2], [0, 0]]);
        const c = tf.relu(tf.add(conv, tf.reshape(p.cb!, [3])));
        const pooled = tf.maxPool(c as tf.Tensor4D, 2, 2, 'valid');
        const flat = tf.reshape(tf.transpose(pooled, [0, 3, 1, 2]), [2, 24]);
        return tfCrossEntropy(tf.add(tf.matMul(flat, p.wd!), p.bd!), x.y!);
      },
    });
  });

  it('attention block: q/k/v projections, causal attention, residual, layernorm, GELU MLP, squared error', () => {
    const [B, T, D, H] = [2, 4, 8, 16];
    const glorot: Init = { kind: 'glorot_uniform' };
    expectAgree({
      inputs: [seeded('x', [B, T, D]), seeded('target', [B, T, D])],
      params: [
        seeded('wq', [D, D], glorot), seeded('wk', [D, D], glorot), seeded('wv', [D, D], glorot), seeded('wo', [D, D], glorot),
        seeded('gamma', [D], { kind: 'uniform', low: 0.5, high: 1.5 }), seeded('beta', [D], uniform(0.1)),
        seeded('w1', [D, H], glorot), seeded('b1', [H], uniform(0.1)), seeded('w2', [H, D], glorot), seeded('b2', [D], uniform(0.1)),
      ],
      ours: (b, p, x) => {
        const a = b.attention(b.matmul(x.x!, p.wq!), b.matmul(x.x!, p.wk!), b.matmul(x.x!, p.wv!), true);
        const h = b.layerNorm(b.add_(x.x!, b.matmul(a, p.wo!)), p.gamma, p.beta);
        const y = b.linear(b.gelu(b.linear(h, p.w1!, p.b1)), p.w2!, p.b2);
        return b.mse(y, x.target!);
      },
      theirs: (p, x) => {
        // TF.js's BatchMatMul gradient does not sum over broadcast batch dims ([B,T,D] @ [D,N] fails
        // with "gradient of input 'b' has shape '2,16,8'"), so projections go through [B*T, D].
        const proj = (v: tf.Tensor, w: tf.Tensor) => tf.reshape(tf.matMul(tf.reshape(v, [B * T, w.shape[0]!]), w), [B, T, w.shape[1]!]);
        const [q, k, v] = [p.wq!, p.wk!, p.wv!].map((w) => proj(x.x!, w));
        const scores = tf.mul(tf.matMul(q!, k!, false, true), 1 / Math.sqrt(D));
        const causal = tf.greaterEqual(tf.range(0, T).reshape([T, 1]), tf.range(0, T).reshape([1, T]));
        const a = tf.matMul(tf.softmax(tf.where(causal, scores, tf.fill([B, T, T], F32_LOWEST))), v!);
        const z = tf.add(x.x!, proj(a, p.wo!));
        const { mean, variance } = tf.moments(z, -1, true);
        const h = tf.add(tf.mul(tf.mul(tf.sub(z, mean), tf.rsqrt(tf.add(variance, 1e-5))), p.gamma!), p.beta!);
        const u = tf.add(proj(h, p.w1!), p.b1!);
        const gelu = tf.mul(tf.mul(u, 0.5), tf.add(1, tf.tanh(tf.mul(tf.add(u, tf.mul(tf.pow(u, 3), 0.044715)), Math.sqrt(2 / Math.PI)))));
        const y = tf.add(proj(gelu, p.w2!), p.b2!);
        return tf.losses.meanSquaredError(x.target!, y) as tf.Scalar;
      },
    });
  });
});
