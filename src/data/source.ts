/**
 * @file How a data set feeds a compiled program: a `DataSource` checks the program's inputs and
 * returns the feeds of every training step and the held-out batches. MNIST feeds an image input
 * (and labels, when the model has an i32 input); the text corpus feeds token windows and their
 * next characters.
 */
import { AdjointError } from '../ir/errors.js';
import type { Artifact, TensorSlot } from '../runtime/artifact.js';
import type { HostArray } from '../runtime/program.js';
import { epochOrder, loadMnist, MNIST_PIXELS } from './mnist.js';
import { loadText, type TextCorpus } from './text.js';
import { rng } from '../runtime/init.js';

export interface TestBatch {
  readonly feeds: Readonly<Record<string, HostArray>>;
  /** The labels the `logits` output is scored against (row-major over its leading dims). */
  readonly labels?: Int32Array;
  /** How many leading label entries are real (the last batch is padded). */
  readonly real: number;
  /** How many label entries a full batch has. */
  readonly size: number;
}

export interface BoundData {
  readonly stepsPerEpoch: number;
  trainFeeds(epoch: number, step: number): Readonly<Record<string, HostArray>>;
  testBatches(): Iterable<TestBatch>;
}

export interface DataSource {
  readonly name: string;
  bind(a: Artifact, seed: number): BoundData;
}

const fail = (a: Artifact, msg: string): never => {
  throw new AdjointError(`model "${a.name}": ${msg}`);
};
const per = (s: TensorSlot) => s.shape.slice(1).reduce((p, q) => p * q, 1);

/** MNIST: the f32 input takes 784 pixels per sample; an i32 input of shape [batch] takes labels. */
export function mnistSource(nTrain = 8000, nTest = 2000): DataSource {
  return {
    name: 'mnist',
    bind(a, seed) {
      const data = loadMnist(nTrain, nTest);
      const image = a.inputs.find((s) => s.dtype === 'f32') ?? fail(a, 'no f32 input to feed MNIST images to');
      const batch = image.shape[0] ?? 1;
      if (per(image) !== MNIST_PIXELS) fail(a, `input "${image.name}" takes ${per(image)} values per sample; MNIST digits have 784`);
      const label = a.inputs.find((s) => s.dtype === 'i32');
      if (label && (label.shape.length !== 1 || label.shape[0] !== batch)) fail(a, `label input "${label.name}" must be i32[${batch}]`);
      const extra = a.inputs.find((s) => s !== image && s !== label);
      if (extra) fail(a, `MNIST cannot feed input "${extra.name}"`);
      const images = new Float32Array(batch * MNIST_PIXELS);
      const labels = new Int32Array(batch);
      const fill = (set: typeof data.train, order: ArrayLike<number>, start: number) => {
        for (let i = 0; i < batch; i++) {
          const s = order[(start + i) % order.length]!;
          images.set(set.images.subarray(s * MNIST_PIXELS, (s + 1) * MNIST_PIXELS), i * MNIST_PIXELS);
          labels[i] = set.labels[s]!;
        }
        return { [image.name]: images, ...(label ? { [label.name]: labels } : {}) };
      };
      const stepsPerEpoch = Math.floor(data.train.n / batch);
      if (stepsPerEpoch < 1) fail(a, `the batch (${batch}) is larger than the training set (${data.train.n})`);
      let orderEpoch = -1;
      let order: Int32Array = new Int32Array(0);
      return {
        stepsPerEpoch,
        trainFeeds(epoch, step) {
          if (epoch !== orderEpoch) {
            order = epochOrder(data.train.n, epoch, seed);
            orderEpoch = epoch;
          }
          return fill(data.train, order, step * batch);
        },
        *testBatches() {
          const order = Int32Array.from({ length: data.test.n }, (_, i) => i);
          for (let start = 0; start < data.test.n; start += batch) {
            const feeds = fill(data.test, order, start);
            yield { feeds, labels: labels.slice(), real: Math.min(batch, data.test.n - start), size: batch };
          }
        },
      };
    },
  };
}

/** A character corpus: i32 inputs `tokens` and `targets` of shape [batch, T] (targets = tokens shifted by one). */
export function textSource(corpus: TextCorpus = loadText()): DataSource {
  return {
    name: 'text',
    bind(a, seed) {
      const tokens = a.inputs.find((s) => s.name === 'tokens') ?? fail(a, 'a text model needs an i32 input "tokens" [batch, T]');
      const targets = a.inputs.find((s) => s.name === 'targets') ?? fail(a, 'a text model needs an i32 input "targets" [batch, T]');
      const [b, t] = tokens.shape as [number, number];
      if (tokens.dtype !== 'i32' || targets.dtype !== 'i32' || tokens.shape.length !== 2 || targets.shape.join() !== tokens.shape.join()) {
        fail(a, '"tokens" and "targets" must both be i32 [batch, T]');
      }
      const extra = a.inputs.find((s) => s !== tokens && s !== targets);
      if (extra) fail(a, `the text corpus cannot feed input "${extra.name}"`);
      const x = new Int32Array(b * t);
      const y = new Int32Array(b * t);
      const window = (ids: Int32Array, row: number, start: number) => {
        x.set(ids.subarray(start, start + t), row * t);
        y.set(ids.subarray(start + 1, start + t + 1), row * t);
      };
      const windows = Math.floor((corpus.train.length - 1) / t);
      return {
        stepsPerEpoch: Math.max(1, Math.floor(windows / b)),
        trainFeeds(epoch, step) {
          const u = rng((seed * 1000003 + epoch * 7919 + step) >>> 0);
          for (let r = 0; r < b; r++) window(corpus.train, r, Math.floor(u() * (corpus.train.length - t - 1)));
          return { [tokens.name]: x, [targets.name]: y };
        },
        *testBatches() {
          const n = Math.floor((corpus.test.length - 1) / t);
          for (let w = 0; w < n; w += b) {
            for (let r = 0; r < b; r++) window(corpus.test, r, Math.min(w + r, n - 1) * t);
            yield { feeds: { [tokens.name]: x, [targets.name]: y }, labels: y.slice(), real: Math.min(b, n - w) * t, size: b * t };
          }
        },
      };
    },
  };
}
