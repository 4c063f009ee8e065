/**
 * @file The model zoo's short runs, in CI: each model of models/ trains on its real data through
 * the trainer (the path `adjoint train` takes) for a few seconds and must reach a lower bar than
 * its full run, but one that only learning reaches. Logistic regression and the MLP: one epoch of
 * MNIST, held-out accuracy far above chance; the autoencoder: a held-out reconstruction error well
 * below that of always answering the mean training digit; LeNet (its step is the slowest): a few
 * dozen steps, the loss well below its start and accuracy far above chance; the transformer LM
 * (the same builder at a smaller batch and window): a held-out cross-entropy below the unigram
 * baseline, and so does the LSTM LM. xor trains in its own file. The full runs are the `npm run train:*` scripts (README).
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compile } from '../../src/compile.js';
import { loadMnist, MNIST_PIXELS } from '../../src/data/mnist.js';
import { mnistSource, textSource, type DataSource } from '../../src/data/source.js';
import { loadText, unigramBaseline } from '../../src/data/text.js';
import type { Model } from '../../src/ir/model.js';
import { loadModel } from '../../src/ir/schema.js';
import { getDevice } from '../../src/runtime/device.js';
import { train, type TrainResult } from '../../src/train/trainer.js';
import { DEFAULT_LM, transformerLm } from '../../models/transformer-lm.js';
import { DEFAULT_LSTM_LM, lstmLm } from '../../models/lstm-lm.js';

let device: GPUDevice;
beforeAll(async () => { device = await getDevice({ quiet: true }); });
afterAll(() => device?.destroy());

const modelFile = (name: string) => loadModel(readFileSync(`models/${name}.json`, 'utf8'), `models/${name}.json`);

/** Compiles the model and trains it, seed 0, quietly; `steps` caps each epoch. */
async function run(model: Model, data: DataSource, o: { epochs: number; steps?: number; readEvery?: number }): Promise<TrainResult> {
  const { train: t, forward } = compile(model);
  return train(device, { train: t!, forward }, data, {
    epochs: o.epochs, readEvery: o.readEvery ?? 10, log: () => undefined, ...(o.steps ? { maxStepsPerEpoch: o.steps } : {}),
  });
}

/** The held-out digits the short runs score on: all 2,000 of the fixed split, or its first n. */
const mnist = (nTest = 2000) => mnistSource(8000, nTest);

/** The MSE of answering every held-out digit with the mean training digit (whose first `n` count). */
function meanDigitMse(n: number): number {
  const { train: tr, test } = loadMnist();
  const mean = new Float64Array(MNIST_PIXELS);
  for (let i = 0; i < tr.images.length; i++) mean[i % MNIST_PIXELS]! += tr.images[i]! / tr.n;
  let se = 0;
  for (let i = 0; i < n * MNIST_PIXELS; i++) se += (test.images[i]! - mean[i % MNIST_PIXELS]!) ** 2;
  return se / (n * MNIST_PIXELS);
}

describe('models/ trained briefly on real data reach a lower bar', () => {
  it('logreg-mnist: one epoch, >= 85% on the 2,000 held-out digits', async () => {
    const r = await run(modelFile('logreg-mnist'), mnist(), { epochs: 1 });
    expect(r.steps).toBe(62);
    expect(r.accuracy!).toBeGreaterThanOrEqual(0.85);
  });

  it('mlp-mnist: one epoch, >= 90% on the 2,000 held-out digits', async () => {
    const r = await run(modelFile('mlp-mnist'), mnist(), { epochs: 1 });
    expect(r.steps).toBe(62);
    expect(r.accuracy!).toBeGreaterThanOrEqual(0.9);
  });

  it('autoencoder-mnist: one epoch, held-out MSE under 70% of the mean digit\'s', async () => {
    const r = await run(modelFile('autoencoder-mnist'), mnist(), { epochs: 1 });
    expect(r.testLossItems).toBe(1920);
    expect(r.testLoss).toBeLessThan(0.7 * meanDigitMse(1920));
  });

  it('lenet-mnist: 20 steps, the loss under half its start, >= 50% on 512 held-out digits', async () => {
    const r = await run(modelFile('lenet-mnist'), mnist(512), { epochs: 1, steps: 20, readEvery: 1 });
    const first = r.losses[0]!.loss; // step 1: the initial parameters' loss
    const last = r.losses.at(-1)!.loss;
    expect(last, `loss ${first} -> ${last}`).toBeLessThan(0.5 * first);
    expect(r.accuracy!).toBeGreaterThanOrEqual(0.5);
  });

  // issue 16: batch norm after the convolutions, dropout before the last layer; the held-out
  // accuracy is the forward program's (eval mode: running statistics, no dropout)
  it('lenet-bn-mnist: 20 steps, the loss under half its start, >= 50% on 512 held-out digits in eval mode', async () => {
    const r = await run(modelFile('lenet-bn-mnist'), mnist(512), { epochs: 1, steps: 20, readEvery: 1 });
    const first = r.losses[0]!.loss;
    const last = r.losses.at(-1)!.loss;
    expect(last, `loss ${first} -> ${last}`).toBeLessThan(0.5 * first);
    expect(r.accuracy!).toBeGreaterThanOrEqual(0.5);
  }, 300_000); // lenet-mnist's run takes as long: both needed ~110 s with 7 sessions sharing 2 cores

  it('transformer-lm (batch 8, window 32): 30 steps, held-out cross-entropy below the unigram baseline', async () => {
    // The first 4,096 held-out characters, and the baseline on the same characters.
    const full = loadText();
    const corpus = { ...full, test: full.test.subarray(0, 4096) };
    const r = await run(transformerLm({ ...DEFAULT_LM, batch: 8, seq: 32 }), textSource(corpus), { epochs: 1, steps: 30 });
    expect(r.testLoss).toBeLessThan(unigramBaseline(corpus));
  });

  // issue 16: the LSTM LM (backpropagation through time over the unrolled window), smaller and faster.
  it('lstm-lm (batch 16, window 8, hidden 64): 80 steps, held-out cross-entropy below the unigram baseline', async () => {
    const full = loadText();
    const corpus = { ...full, test: full.test.subarray(0, 4096) };
    const r = await run(lstmLm({ ...DEFAULT_LSTM_LM, batch: 16, seq: 8, embed: 16, hidden: 64, lr: 1e-2 }), textSource(corpus), { epochs: 1, steps: 80 });
    expect(r.testLoss).toBeLessThan(unigramBaseline(corpus));
  }, 300_000);
});
