/**
 * @file The trainer: runs a compiled training program over a data set for some epochs on a real
 * device, with a progress line (steps/s, loss, ETA), the loss read back every few steps without
 * stalling the GPU, checkpoints written atomically, a loss-curve PNG, and a held-out evaluation
 * (accuracy when the model has a `logits` output, and the mean held-out loss).
 */
import { writeFileSync, existsSync } from 'node:fs';
import { AdjointError } from '../ir/errors.js';
import type { Artifact, TensorSlot } from '../runtime/artifact.js';
import { Program, type HostArray } from '../runtime/program.js';
import { epochOrder, type Dataset } from '../data/mnist.js';
import { loadCheckpointFile, saveCheckpointFile } from './checkpoint-file.js';
import { lossPlotPng } from './plot.js';

export interface TrainData {
  readonly train: Dataset;
  readonly test: Dataset;
}

export interface TrainOptions {
  readonly epochs: number;
  readonly seed?: number;
  /** Stop an epoch after this many steps (short CI runs). */
  readonly maxStepsPerEpoch?: number;
  /** Read the loss back every N steps (default 10). */
  readonly readEvery?: number;
  /** Write a checkpoint here after every epoch, and resume from it if it exists. */
  readonly checkpoint?: string;
  /** Write the loss curve here as a PNG. */
  readonly plot?: string;
  /** Where progress lines go (default: stderr, redrawn in place on a terminal). */
  readonly log?: (line: string, final: boolean) => void;
}

export interface TrainResult {
  readonly losses: readonly { step: number; loss: number }[];
  readonly steps: number;
  readonly seconds: number;
  /** Held-out accuracy, when the model has a `logits` output. */
  readonly accuracy?: number;
  /** Mean of the loss output over the held-out set. */
  readonly testLoss: number;
}

/** How the data set feeds a program: the image input and, if any, the label input. */
interface Feed {
  readonly image: TensorSlot;
  readonly label?: TensorSlot;
  readonly batch: number;
}

function feedOf(a: Artifact): Feed {
  const image = a.inputs.find((s) => s.dtype === 'f32');
  if (!image) throw new AdjointError(`model "${a.name}" has no f32 input to feed images to`);
  const batch = image.shape[0] ?? 1;
  const per = image.shape.slice(1).reduce((p, q) => p * q, 1);
  if (per !== 784) throw new AdjointError(`model "${a.name}": input "${image.name}" takes ${per} values per sample; MNIST digits have 784`);
  const label = a.inputs.find((s) => s.dtype === 'i32');
  if (label && (label.shape.length !== 1 || label.shape[0] !== batch)) {
    throw new AdjointError(`model "${a.name}": label input "${label.name}" must be i32[${batch}]`);
  }
  const extra = a.inputs.filter((s) => s !== image && s !== label);
  if (extra.length) throw new AdjointError(`model "${a.name}": MNIST data cannot feed input "${extra[0]!.name}"`);
  return { image, batch, ...(label ? { label } : {}) };
}

class Batcher {
  readonly images: Float32Array;
  readonly labels: Int32Array;
  constructor(readonly feed: Feed, readonly data: Dataset) {
    this.images = new Float32Array(feed.batch * 784);
    this.labels = new Int32Array(feed.batch);
  }
  /** Fills the batch with samples order[start…] (wrapping around), returns the feeds. */
  fill(order: ArrayLike<number>, start: number): Record<string, HostArray> {
    for (let i = 0; i < this.feed.batch; i++) {
      const s = order[(start + i) % order.length]!;
      this.images.set(this.data.images.subarray(s * 784, (s + 1) * 784), i * 784);
      this.labels[i] = this.data.labels[s]!;
    }
    const f: Record<string, HostArray> = { [this.feed.image.name]: this.images };
    if (this.feed.label) f[this.feed.label.name] = this.labels;
    return f;
  }
}

function defaultLog(): (line: string, final: boolean) => void {
  const tty = process.stderr.isTTY;
  let last = 0;
  return (line, final) => {
    if (tty) process.stderr.write(`\r${line}\x1b[K${final ? '\n' : ''}`);
    else if (final || Date.now() - last > 2000) {
      last = Date.now();
      process.stderr.write(line + '\n');
    }
  };
}

function bar(frac: number, width = 20): string {
  const n = Math.round(frac * width);
  return `[${'#'.repeat(n)}${'-'.repeat(width - n)}]`;
}

/** Trains on the device; `train` and `forward` are the compiled programs of one model. */
export async function train(device: GPUDevice, programs: { train: Artifact; forward: Artifact }, data: TrainData, opts: TrainOptions): Promise<TrainResult> {
  const seed = opts.seed ?? 0;
  const log = opts.log ?? defaultLog();
  const readEvery = Math.max(1, opts.readEvery ?? 10);
  const lossName = programs.train.loss;
  if (!lossName) throw new AdjointError(`"${programs.train.name}" is not a training program (no loss)`);
  const prog = await Program.load(device, programs.train, { seed });
  const feed = feedOf(programs.train);
  const batcher = new Batcher(feed, data.train);
  const stepsPerEpoch = Math.min(Math.floor(data.train.n / feed.batch), opts.maxStepsPerEpoch ?? Infinity);
  if (stepsPerEpoch < 1) throw new AdjointError(`the batch (${feed.batch}) is larger than the training set (${data.train.n})`);

  let startEpoch = 0;
  if (opts.checkpoint && existsSync(opts.checkpoint)) {
    const c = loadCheckpointFile(opts.checkpoint);
    for (const [name, t] of c.tensors) prog.write(name, t);
    startEpoch = Number(c.meta?.epoch ?? 0);
    log(`resumed from ${opts.checkpoint} at epoch ${startEpoch}`, true);
  }

  const losses: { step: number; loss: number }[] = [];
  const pending: Promise<void>[] = [];
  const t0 = performance.now();
  let step = startEpoch * stepsPerEpoch;
  const total = opts.epochs * stepsPerEpoch;
  let lastLoss = NaN;
  for (let epoch = startEpoch; epoch < opts.epochs; epoch++) {
    const order = epochOrder(data.train.n, epoch, seed);
    for (let s = 0; s < stepsPerEpoch; s++) {
      const feeds = batcher.fill(order, s * feed.batch);
      const read = (step + 1) % readEvery === 0 || s === stepsPerEpoch - 1;
      const at = step + 1;
      const r = prog.step(feeds, read ? [lossName] : []);
      if (r) {
        pending.push(r.then((m) => {
          lastLoss = m.get(lossName)![0]!;
          losses.push({ step: at, loss: lastLoss });
        }));
        if (pending.length >= 2) await pending.shift();
      }
      step++;
      const secs = (performance.now() - t0) / 1000;
      const rate = (step - startEpoch * stepsPerEpoch) / Math.max(secs, 1e-9);
      const eta = (total - step) / Math.max(rate, 1e-9);
      log(`epoch ${epoch + 1}/${opts.epochs} ${bar((s + 1) / stepsPerEpoch)} ${s + 1}/${stepsPerEpoch}  ${rate.toFixed(1)} steps/s  loss ${lastLoss.toFixed(4)}  ETA ${eta.toFixed(0)}s`, s === stepsPerEpoch - 1);
    }
    await Promise.all(pending.splice(0));
    if (!losses.every((l) => Number.isFinite(l.loss))) throw new AdjointError(`training diverged: the loss became ${losses.find((l) => !Number.isFinite(l.loss))!.loss} (lower the learning rate)`);
    if (opts.checkpoint) {
      saveCheckpointFile(opts.checkpoint, { step, tensors: await prog.snapshot(), meta: { epoch: epoch + 1, model: programs.train.name } });
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  losses.sort((a, b) => a.step - b.step);
  if (opts.plot) writeFileSync(opts.plot, lossPlotPng(losses));
  const params = await prog.snapshot();
  prog.destroy();
  const ev = await evaluate(device, programs.forward, params, data.test, lossName);
  return { losses, steps: step, seconds, ...ev };
}

/** Runs the forward program over a data set; the last partial batch is padded and its padding ignored. */
export async function evaluate(device: GPUDevice, forward: Artifact, params: ReadonlyMap<string, HostArray>, data: Dataset, lossName: string): Promise<{ accuracy?: number; testLoss: number }> {
  const prog = await Program.load(device, forward);
  try {
    for (const p of forward.params) {
      const v = params.get(p.name);
      if (v) prog.write(p.name, v);
    }
    const feed = feedOf(forward);
    const batcher = new Batcher(feed, data);
    const order = Int32Array.from({ length: data.n }, (_, i) => i);
    const logits = forward.outputs.find((o) => o.name === 'logits');
    const hasLoss = forward.outputs.some((o) => o.name === lossName);
    let correct = 0;
    let lossSum = 0;
    let lossCount = 0;
    for (let start = 0; start < data.n; start += feed.batch) {
      const real = Math.min(feed.batch, data.n - start);
      const want = [...(logits ? ['logits'] : []), ...(hasLoss && real === feed.batch ? [lossName] : [])];
      const r = await prog.step(batcher.fill(order, start), want);
      if (!r) continue;
      if (logits) {
        const l = r.get('logits')!;
        const k = logits.shape.at(-1)!;
        for (let i = 0; i < real; i++) {
          let best = 0;
          for (let j = 1; j < k; j++) if (l[i * k + j]! > l[i * k + best]!) best = j;
          if (best === batcher.labels[i]) correct++;
        }
      }
      const lv = r.get(lossName);
      if (lv) {
        lossSum += lv[0]!;
        lossCount++;
      }
    }
    return { ...(logits ? { accuracy: correct / data.n } : {}), testLoss: lossCount ? lossSum / lossCount : NaN };
  } finally {
    prog.destroy();
  }
}
