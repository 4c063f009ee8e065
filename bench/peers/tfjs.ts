/**
 * @file The TF.js peer: every workload in `@tensorflow/tfjs` on the `webgpu` backend
 * (`@tensorflow/tfjs-backend-webgpu`) running on Dawn through `navigator.gpu` (see ../gpu.ts).
 * The union package is imported, not tfjs-core alone, because only it registers the gradient
 * functions. A step is `optimizer.minimize` (variableGrads + SGD applyGradients) on variables.
 * TF.js convolutions are NHWC / HWIO only, so the canonical OIHW weights are transposed on setup
 * and the rows of the first dense weight after the conv stack are permuted from (c, h, w) to
 * (h, w, c) order — the same model, laid out for TF.js.
 */
import type * as TF from '@tensorflow/tfjs';
import { assertNever } from '../../src/ir/errors.js';
import { installGpu } from '../gpu.js';
import { NotAvailableError, paramValue, type Library, type Session } from '../library.js';
import { causalBias, type Batch, type LenetWorkload, type MlpWorkload, type TransformerWorkload, type Workload } from '../workloads.js';

type Tf = typeof TF;
type Tensor = TF.Tensor;

let loaded: Promise<Tf> | null = null;

/** Imports TF.js after navigator.gpu exists and selects the WebGPU backend (once per process). */
async function loadTf(): Promise<Tf> {
  await installGpu();
  const tf = await import('@tensorflow/tfjs');
  await import('@tensorflow/tfjs-backend-webgpu');
  if (!(await tf.setBackend('webgpu'))) throw new NotAvailableError('TF.js could not initialize its webgpu backend');
  await tf.ready();
  if (tf.getBackend() !== 'webgpu') throw new NotAvailableError(`TF.js runs on ${tf.getBackend()}, not webgpu`);
  return tf;
}

/** OIHW -> HWIO (TF.js conv2d filter layout). */
export function oihwToHwio(w: Float32Array, o: number, i: number, k: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let a = 0; a < o; a++) {
    for (let b = 0; b < i; b++) {
      for (let y = 0; y < k; y++) {
        for (let x = 0; x < k; x++) out[((y * k + x) * i + b) * o + a] = w[((a * i + b) * k + y) * k + x]!;
      }
    }
  }
  return out;
}

/** Reorders the rows of a dense weight `[c*h*w, n]` from (c, h, w) to (h, w, c) flatten order. */
export function chwRowsToHwc(w: Float32Array, c: number, h: number, wd: number, n: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let ci = 0; ci < c; ci++) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < wd; x++) {
        const from = (ci * h + y) * wd + x;
        const to = (y * wd + x) * c + ci;
        out.set(w.subarray(from * n, (from + 1) * n), to * n);
      }
    }
  }
  return out;
}

type Vars = ReadonlyMap<string, TF.Variable>;
type LossFn = (batch: Batch) => TF.Scalar;

function v(vars: Vars, name: string): TF.Variable {
  const x = vars.get(name);
  if (!x) throw new Error(`internal: no variable ${name}`);
  return x;
}

/** mean over the batch of -sum(onehot(labels) * log_softmax(logits)). */
function crossEntropy(tf: Tf, logits: Tensor, labels: Int32Array): TF.Scalar {
  const depth = logits.shape.at(-1) ?? 0;
  const onehot = tf.cast(tf.oneHot(tf.tensor1d(labels, 'int32'), depth), 'float32');
  return tf.neg(tf.mean(tf.sum(tf.mul(onehot, tf.logSoftmax(logits)), -1)));
}

function classBatch(batch: Batch): Extract<Batch, { kind: 'class' }> {
  if (batch.kind !== 'class') throw new Error('internal: a classification workload got a regression batch');
  return batch;
}

function mlpLoss(tf: Tf, w: MlpWorkload, vars: Vars): LossFn {
  return (batch) => {
    const b = classBatch(batch);
    let h: Tensor = tf.tensor2d(b.x, [w.batch, w.sizes[0]!]);
    const layers = w.sizes.length - 1;
    for (let i = 1; i <= layers; i++) {
      h = tf.add(tf.matMul(h, v(vars, `w${i}`)), v(vars, `b${i}`));
      if (i < layers) h = tf.relu(h);
    }
    return crossEntropy(tf, h, b.labels);
  };
}

function lenetLoss(tf: Tf, w: LenetWorkload, vars: Vars): LossFn {
  return (batch) => {
    const b = classBatch(batch);
    const x = tf.tensor4d(b.x, [w.batch, 28, 28, 1]); // NCHW with C = 1 has the same memory order as NHWC
    let h: Tensor = tf.maxPool(tf.relu(tf.conv2d(x, v(vars, 'c1') as TF.Tensor4D, 1, 'same')), 2, 2, 'valid');
    h = tf.maxPool(tf.relu(tf.conv2d(h as TF.Tensor4D, v(vars, 'c2') as TF.Tensor4D, 1, 'valid')), 2, 2, 'valid');
    h = tf.reshape(h, [w.batch, 400]);
    h = tf.relu(tf.add(tf.matMul(h, v(vars, 'w3')), v(vars, 'b3')));
    h = tf.relu(tf.add(tf.matMul(h, v(vars, 'w4')), v(vars, 'b4')));
    return crossEntropy(tf, tf.add(tf.matMul(h, v(vars, 'w5')), v(vars, 'b5')), b.labels);
  };
}

function transformerLoss(tf: Tf, w: TransformerWorkload, vars: Vars, mask: Tensor): LossFn {
  const { batch: bs, seq: t, dModel: d, heads } = w;
  const dh = d / heads;
  const rows = bs * t;
  const layerNorm = (x: Tensor, g: string, b: string): Tensor => {
    const xc = tf.sub(x, tf.mean(x, -1, true));
    const inv = tf.rsqrt(tf.add(tf.mean(tf.square(xc), -1, true), 1e-5));
    return tf.add(tf.mul(tf.mul(xc, inv), v(vars, g)), v(vars, b));
  };
  const linear = (x: Tensor, wn: string, bn: string): Tensor => tf.add(tf.matMul(x, v(vars, wn)), v(vars, bn));
  const splitHeads = (x: Tensor): Tensor => tf.transpose(tf.reshape(x, [bs, t, heads, dh]), [0, 2, 1, 3]);
  const gelu = (x: Tensor): Tensor => {
    const inner = tf.mul(tf.add(x, tf.mul(tf.mul(tf.square(x), x), 0.044715)), Math.sqrt(2 / Math.PI));
    return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1));
  };
  return (batch) => {
    if (batch.kind !== 'target') throw new Error('internal: the transformer got a classification batch');
    const x = tf.tensor2d(batch.x, [rows, d]);
    const a = layerNorm(x, 'ln1_g', 'ln1_b');
    const q = splitHeads(linear(a, 'wq', 'bq'));
    const k = splitHeads(linear(a, 'wk', 'bk'));
    const vv = splitHeads(linear(a, 'wv', 'bv'));
    const scores = tf.add(tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(dh)), mask);
    const att = tf.reshape(tf.transpose(tf.matMul(tf.softmax(scores), vv), [0, 2, 1, 3]), [rows, d]);
    const h = tf.add(x, linear(att, 'wo', 'bo'));
    const y = tf.add(h, linear(gelu(linear(layerNorm(h, 'ln2_g', 'ln2_b'), 'w1', 'b1')), 'w2', 'b2'));
    return tf.mean(tf.square(tf.sub(y, tf.tensor2d(batch.target, [rows, d]))));
  };
}

/** The initial value of `name` in TF.js layout. */
function tfLayout(w: Workload, name: string, value: Float32Array): Float32Array {
  if (w.kind !== 'lenet') return value;
  if (name === 'c1') return oihwToHwio(value, 6, 1, 5);
  if (name === 'c2') return oihwToHwio(value, 16, 6, 5);
  if (name === 'w3') return chwRowsToHwc(value, 16, 5, 5, 120);
  return value;
}

function tfShape(w: Workload, name: string, shape: readonly number[]): number[] {
  if (w.kind === 'lenet' && shape.length === 4) {
    const [o, i, kh, kw] = shape as [number, number, number, number];
    return [kh, kw, i, o];
  }
  return [...shape];
}

export const tfjs: Library = {
  name: 'tfjs',
  description: '@tensorflow/tfjs 4.22 + tfjs-backend-webgpu, eager, optimizer.minimize (SGD)',
  async init() {
    loaded ??= loadTf();
    await loaded;
  },
  async setup(w, params): Promise<Session> {
    loaded ??= loadTf();
    const tf = await loaded;
    const vars = new Map<string, TF.Variable>();
    for (const p of w.params) {
      const init = tf.tensor(tfLayout(w, p.name, paramValue(params, p.name)), tfShape(w, p.name, p.shape), 'float32');
      vars.set(p.name, tf.variable(init, true));
      init.dispose();
    }
    const mask = w.kind === 'transformer' ? tf.tensor2d(causalBias(w.seq), [w.seq, w.seq]) : null;
    let loss: LossFn;
    switch (w.kind) {
      case 'mlp':
        loss = mlpLoss(tf, w, vars);
        break;
      case 'lenet':
        loss = lenetLoss(tf, w, vars);
        break;
      case 'transformer':
        loss = transformerLoss(tf, w, vars, mask!);
        break;
      default:
        return assertNever(w, 'workload');
    }
    const optimizer = tf.train.sgd(w.lr);
    const varList = [...vars.values()];
    return {
      async step(batch, readLoss) {
        const cost = optimizer.minimize(() => loss(batch), true, varList);
        if (!cost) throw new Error('internal: optimizer.minimize returned no cost');
        if (!readLoss) {
          cost.dispose();
          return undefined;
        }
        const value = (await cost.data())[0];
        cost.dispose();
        return value;
      },
      async dispose() {
        optimizer.dispose();
        for (const x of varList) x.dispose();
        mask?.dispose();
      },
    };
  },
};
