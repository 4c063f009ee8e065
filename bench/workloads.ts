/**
 * @file The benchmark's workloads, shared by every library so that all of them train the same
 * model from the same initial weights on the same batches in the same order: MLP 784-256-10,
 * MLP 784-1024-1024-10, LeNet-5 and one pre-layernorm transformer block. Everything is float32 and
 * derived from a seeded mulberry32 generator (never `Math.random`), so a run is reproducible and
 * the libraries' losses after N steps must agree to rounding. The MNIST digits come from the
 * `mnist` package, picked deterministically (its own `mnist.set()` shuffles with `Math.random`).
 *
 * Canonical layouts (a library with other layouts converts on setup, see peers/tfjs.ts):
 * dense weights `[in, out]` (y = x W + b); conv weights OIHW and images NCHW; a flatten after a
 * conv stack takes (channel, row, column) order.
 */
import { createRequire } from 'node:module';
import { assertNever } from '../src/ir/errors.js';

// ---- seeded numbers --------------------------------------------------------------------------

/** mulberry32: a 32-bit-state generator, uniform in [0, 1). Small, fast, and the same everywhere. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A seed for stream `k` of `seed`, so that each parameter has its own stream (order-independent). */
export function subSeed(seed: number, k: number): number {
  let h = Math.imul((seed ^ 0x9e3779b9) >>> 0, 0x85ebca6b) ^ Math.imul(k + 1, 0xc2b2ae35);
  h ^= h >>> 16;
  h = Math.imul(h, 0x27d4eb2f);
  return (h ^ (h >>> 15)) >>> 0;
}

/** `n` standard normal samples (Box-Muller on mulberry32). */
export function normals(seed: number, n: number): Float32Array {
  const next = mulberry32(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = 1 - next(); // in (0, 1]: log(u) is finite
    const r = Math.sqrt(-2 * Math.log(u));
    const phi = 2 * Math.PI * next();
    out[i] = r * Math.cos(phi);
    if (i + 1 < n) out[i + 1] = r * Math.sin(phi);
  }
  return out;
}

// ---- workload definitions --------------------------------------------------------------------

/** A trainable parameter: name, shape and how its initial values are drawn. */
export interface ParamSpec {
  readonly name: string;
  readonly shape: readonly number[];
  /** `glorot_uniform` draws from U(-l, l), l = sqrt(6 / (fanIn + fanOut)). */
  readonly init: 'glorot_uniform' | 'zeros' | 'ones';
  readonly fanIn: number;
  readonly fanOut: number;
}

interface WorkloadCommon {
  /** Short id used by `BENCH_WORKLOADS` and in the report. */
  readonly id: string;
  readonly title: string;
  readonly batch: number;
  /** Plain SGD: p <- p - lr * dL/dp. */
  readonly lr: number;
  readonly seed: number;
  readonly params: readonly ParamSpec[];
  /** Distinct batches, used round-robin: step s (1-based) trains on batch (s - 1) mod count. */
  readonly batchCount: number;
}

/** Dense layers with ReLU between them; softmax cross-entropy (mean over the batch) on MNIST. */
export interface MlpWorkload extends WorkloadCommon {
  readonly kind: 'mlp';
  /** Layer widths, input first: [784, 256, 10]. Params w1, b1, w2, b2, … */
  readonly sizes: readonly number[];
}

/**
 * LeNet-5 on MNIST, NCHW: conv 5x5 6 (pad 2) -> relu -> maxpool 2 -> conv 5x5 16 -> relu ->
 * maxpool 2 -> flatten 400 -> dense 120 -> relu -> dense 84 -> relu -> dense 10; softmax
 * cross-entropy. The convolutions have no bias: with a bias of exactly 0 at the start, the blank
 * MNIST background gives pre-activations of exactly 0, where libraries disagree on relu'(0)
 * (TF.js 0, jax-js 1: its max(x, 0) sends a tie's gradient to x), and the bias gradient sums that
 * over the background. Without a bias those positions see all-zero input patches, so their
 * gradient contributes nothing and every library follows the same trajectory.
 */
export interface LenetWorkload extends WorkloadCommon {
  readonly kind: 'lenet';
}

/**
 * One pre-layernorm transformer block on random vectors, regressing a random target:
 * h = x + attn(ln1(x)); y = h + W2 gelu(W1 ln2(h) + b1) + b2; loss = mean((y - target)^2).
 * attn is causal multi-head attention with q, k, v, o projections (with biases); ln has gamma and
 * beta, eps 1e-5, biased variance; gelu is the tanh approximation. MSE keeps the loss expressible
 * identically in every library (no embedding gather, no vocabulary).
 */
export interface TransformerWorkload extends WorkloadCommon {
  readonly kind: 'transformer';
  readonly seq: number;
  readonly dModel: number;
  readonly heads: number;
  /** Hidden width of the MLP (4 dModel). */
  readonly ffn: number;
}

export type Workload = MlpWorkload | LenetWorkload | TransformerWorkload;

function dense(name: string, fanIn: number, fanOut: number): ParamSpec {
  return { name, shape: [fanIn, fanOut], init: 'glorot_uniform', fanIn, fanOut };
}
function vector(name: string, n: number, init: 'zeros' | 'ones'): ParamSpec {
  return { name, shape: [n], init, fanIn: n, fanOut: n };
}
function conv(name: string, out: number, inp: number, k: number): ParamSpec {
  return { name, shape: [out, inp, k, k], init: 'glorot_uniform', fanIn: inp * k * k, fanOut: out * k * k };
}

function mlp(id: string, title: string, sizes: readonly number[], batch: number, seed: number): MlpWorkload {
  const params: ParamSpec[] = [];
  for (let i = 1; i < sizes.length; i++) {
    params.push(dense(`w${i}`, sizes[i - 1]!, sizes[i]!), vector(`b${i}`, sizes[i]!, 'zeros'));
  }
  return { kind: 'mlp', id, title, sizes, batch, lr: 0.1, seed, params, batchCount: 10 };
}

export const MLP: MlpWorkload = mlp('mlp', 'MLP 784-256-10, batch 128', [784, 256, 10], 128, 1);

export const MLP_WIDE: MlpWorkload = mlp('mlp-wide', 'MLP 784-1024-1024-10, batch 256', [784, 1024, 1024, 10], 256, 2);

export const LENET: LenetWorkload = {
  kind: 'lenet',
  id: 'lenet',
  title: 'LeNet-5 28x28x1, batch 64',
  batch: 64,
  lr: 0.1,
  seed: 3,
  batchCount: 10,
  params: [conv('c1', 6, 1, 5), conv('c2', 16, 6, 5), dense('w3', 400, 120), vector('b3', 120, 'zeros'), dense('w4', 120, 84), vector('b4', 84, 'zeros'), dense('w5', 84, 10), vector('b5', 10, 'zeros')],
};

function transformer(): TransformerWorkload {
  const d = 128;
  const ffn = 4 * d;
  return {
    kind: 'transformer',
    id: 'transformer',
    title: 'Transformer block d=128 h=4 seq 64, batch 8',
    batch: 8,
    lr: 0.1,
    seed: 4,
    batchCount: 4,
    seq: 64,
    dModel: d,
    heads: 4,
    ffn,
    params: [
      vector('ln1_g', d, 'ones'),
      vector('ln1_b', d, 'zeros'),
      dense('wq', d, d),
      vector('bq', d, 'zeros'),
      dense('wk', d, d),
      vector('bk', d, 'zeros'),
      dense('wv', d, d),
      vector('bv', d, 'zeros'),
      dense('wo', d, d),
      vector('bo', d, 'zeros'),
      vector('ln2_g', d, 'ones'),
      vector('ln2_b', d, 'zeros'),
      dense('w1', d, ffn),
      vector('b1', ffn, 'zeros'),
      dense('w2', ffn, d),
      vector('b2', d, 'zeros'),
    ],
  };
}
export const TRANSFORMER: TransformerWorkload = transformer();

/** Every workload, in report order. */
export const WORKLOADS: readonly Workload[] = [MLP, MLP_WIDE, LENET, TRANSFORMER];

/** Selects workloads by a comma-separated list of ids (e.g. `BENCH_WORKLOADS=mlp,lenet`). */
export function selectWorkloads(list: string | undefined): Workload[] {
  if (list === undefined || list.trim() === '') return [...WORKLOADS];
  const ids = list.split(',').map((s) => s.trim()).filter((s) => s !== '');
  return ids.map((id) => {
    const w = WORKLOADS.find((x) => x.id === id);
    if (!w) throw new Error(`BENCH_WORKLOADS: unknown workload "${id}" (known: ${WORKLOADS.map((x) => x.id).join(', ')})`);
    return w;
  });
}

// ---- initial parameters ----------------------------------------------------------------------

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** The initial value of every parameter, by name; parameter k draws from stream k of the seed. */
export function initParams(w: Workload): ReadonlyMap<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  w.params.forEach((p, k) => {
    const data = new Float32Array(numel(p.shape));
    if (p.init === 'ones') data.fill(1);
    if (p.init === 'glorot_uniform') {
      const limit = Math.sqrt(6 / (p.fanIn + p.fanOut));
      const next = mulberry32(subSeed(w.seed, k));
      for (let i = 0; i < data.length; i++) data[i] = (2 * next() - 1) * limit;
    }
    out.set(p.name, data);
  });
  return out;
}

// ---- data ------------------------------------------------------------------------------------

/** A classification batch: images `[B, 784]` in [0, 1] (LeNet reads them as `[B, 1, 28, 28]`), labels 0..9. */
export interface ClassBatch {
  readonly kind: 'class';
  readonly x: Float32Array;
  readonly labels: Int32Array;
}

/** A regression batch: inputs and targets `[B, seq, dModel]`. */
export interface TargetBatch {
  readonly kind: 'target';
  readonly x: Float32Array;
  readonly target: Float32Array;
}

export type Batch = ClassBatch | TargetBatch;

/** The input shape of one batch (the canonical layout). */
export function inputShape(w: Workload): number[] {
  switch (w.kind) {
    case 'mlp':
      return [w.batch, w.sizes[0]!];
    case 'lenet':
      return [w.batch, 1, 28, 28];
    case 'transformer':
      return [w.batch, w.seq, w.dModel];
    default:
      return assertNever(w, 'workload');
  }
}

interface MnistDigit {
  readonly length: number;
  get(index: number): number[];
}

let digits: readonly MnistDigit[] | null = null;

/** The `mnist` package's ten digit classes (10,000 real MNIST images in all). */
function mnistDigits(): readonly MnistDigit[] {
  if (!digits) {
    const mnist = createRequire(import.meta.url)('mnist') as { readonly [d: number]: MnistDigit };
    digits = Array.from({ length: 10 }, (_, d) => {
      const digit = mnist[d];
      if (!digit || typeof digit.get !== 'function') throw new Error(`the mnist package has no digit ${d}`);
      return digit;
    });
  }
  return digits;
}

/**
 * `n` MNIST samples, deterministic: the first ceil(n/10)+1 images of every digit, shuffled by a
 * seeded Fisher-Yates, the first `n` kept.
 */
export function mnistSamples(n: number, seed: number): { x: Float32Array; labels: Int32Array } {
  const all = mnistDigits();
  const per = Math.ceil(n / 10) + 1;
  const pool: [number, number][] = [];
  for (let d = 0; d < 10; d++) {
    const count = Math.min(per, all[d]!.length);
    for (let i = 0; i < count; i++) pool.push([d, i]);
  }
  if (pool.length < n) throw new Error(`the mnist package has only ${pool.length} samples, ${n} wanted`);
  const next = mulberry32(seed);
  for (let i = pool.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [pool[i], pool[j]] = [pool[j]!, pool[i]!];
  }
  const x = new Float32Array(n * 784);
  const labels = new Int32Array(n);
  for (let s = 0; s < n; s++) {
    const [d, i] = pool[s]!;
    const img = all[d]!.get(i);
    if (img.length !== 784) throw new Error(`mnist digit ${d} sample ${i} has ${img.length} pixels, expected 784`);
    x.set(img, s * 784);
    labels[s] = d;
  }
  return { x, labels };
}

/** The workload's `batchCount` distinct batches, in the order the steps use them. */
export function makeBatches(w: Workload): Batch[] {
  if (w.kind === 'transformer') {
    const n = w.batch * w.seq * w.dModel;
    return Array.from({ length: w.batchCount }, (_, i) => ({
      kind: 'target' as const,
      x: normals(subSeed(w.seed, 1000 + 2 * i), n),
      target: normals(subSeed(w.seed, 1001 + 2 * i), n),
    }));
  }
  const { x, labels } = mnistSamples(w.batch * w.batchCount, subSeed(w.seed, 999));
  return Array.from({ length: w.batchCount }, (_, i) => ({
    kind: 'class' as const,
    x: x.slice(i * w.batch * 784, (i + 1) * w.batch * 784),
    labels: labels.slice(i * w.batch, (i + 1) * w.batch),
  }));
}

/** The batch step `s` (1-based) trains on. */
export function batchForStep(batches: readonly Batch[], s: number): Batch {
  const b = batches[(s - 1) % batches.length];
  if (!b) throw new Error('internal: no batches');
  return b;
}

/** Additive causal mask `[T, T]`: 0 where query t may see key s (s <= t), -1e9 elsewhere. */
export function causalBias(t: number): Float32Array {
  const m = new Float32Array(t * t);
  for (let i = 0; i < t; i++) for (let j = i + 1; j < t; j++) m[i * t + j] = -1e9;
  return m;
}
