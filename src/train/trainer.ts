/**
 * @file The trainer: runs a compiled training program over a data set for some epochs on a real
 * device, with a progress line (steps/s, loss, ETA), the loss read back every few steps without
 * stalling the GPU, checkpoints written atomically, a loss-curve PNG, and a held-out evaluation
 * (accuracy when the model has a `logits` output, and the mean held-out loss). With `recover`, a
 * lost device (driver reset, `device.destroy()`) does not end the run: the trainer gets a new
 * device, reloads the last checkpoint and continues, so the result is the uninterrupted run's.
 */
import { writeFileSync, existsSync } from 'node:fs';
import { AdjointError, DeviceError } from '../ir/errors.js';
import type { Artifact } from '../runtime/artifact.js';
import { deviceHealth } from '../runtime/device.js';
import { Program, type HostArray } from '../runtime/program.js';
import type { DataSource } from '../data/source.js';
import { loadCheckpointFile, saveCheckpointFile } from './checkpoint-file.js';
import { lossPlotPng } from './plot.js';

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
  /**
   * Survive a lost device: take a new one from `getDevice`, reload the last checkpoint (so
   * `checkpoint` is required; before the first one, start over from the seed's initialization)
   * and continue, at most `attempts` times (default 3). The caller owns the devices it returns.
   */
  readonly recover?: { readonly getDevice: () => Promise<GPUDevice>; readonly attempts?: number };
  /** Called after each step is submitted, with its 1-based number and the device (fault-injection tests). */
  readonly afterStep?: (step: number, device: GPUDevice) => void;
  /** Time kernel variants on load and run the fastest (default: Program.load's; see runtime/tune.ts). */
  readonly tune?: boolean;
}

export interface TrainResult {
  readonly losses: readonly { step: number; loss: number }[];
  readonly steps: number;
  readonly seconds: number;
  /** Held-out accuracy, when the model has a `logits` output. */
  readonly accuracy?: number;
  /** Mean of the loss output over the held-out set's full batches. */
  readonly testLoss: number;
  /** How many held-out items (label entries: digits, characters) those full batches hold. */
  readonly testLossItems: number;
  /** How many times a lost device was replaced (see `recover`). */
  readonly recoveries: number;
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
export async function train(device: GPUDevice, programs: { train: Artifact; forward: Artifact }, data: DataSource, opts: TrainOptions): Promise<TrainResult> {
  if (opts.recover && !opts.checkpoint) throw new AdjointError('recover needs a checkpoint file to resume from (the checkpoint option)');
  const log = opts.log ?? defaultLog();
  const losses: { step: number; loss: number }[] = [];
  let recoveries = 0;
  for (let dev = device; ;) {
    try {
      return { ...(await trainOn(dev, programs, data, { ...opts, log }, losses)), recoveries };
    } catch (e) {
      if (!opts.recover || recoveries >= (opts.recover.attempts ?? 3) || !(e instanceof DeviceError) || !(await isLost(dev))) throw e;
      recoveries++;
      log(`${e.message}; recovering on a new device from ${opts.checkpoint}`, true);
      dev = await opts.recover.getDevice();
    }
  }
}

/** Whether the device is lost; its `lost` promise settles just after a loss, so wait a moment for it. */
async function isLost(device: GPUDevice): Promise<boolean> {
  if (deviceHealth(device).lost) return true;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), 1000)));
  const lost = await Promise.race([device.lost.then(() => true), late]);
  clearTimeout(timer);
  return lost;
}

/**
 * One attempt of a run on one device: loads the program, resumes from the checkpoint if there is
 * one (dropping the losses recorded after it), trains the remaining epochs and evaluates.
 */
async function trainOn(
  device: GPUDevice, programs: { train: Artifact; forward: Artifact }, data: DataSource,
  opts: TrainOptions & { readonly log: (line: string, final: boolean) => void }, losses: { step: number; loss: number }[],
): Promise<Omit<TrainResult, 'recoveries'>> {
  const seed = opts.seed ?? 0;
  const log = opts.log;
  const readEvery = Math.max(1, opts.readEvery ?? 10);
  const lossName = programs.train.loss;
  if (!lossName) throw new AdjointError(`"${programs.train.name}" is not a training program (no loss)`);
  const prog = await Program.load(device, programs.train, { seed, ...(opts.tune !== undefined ? { tune: opts.tune } : {}) });
  const pending: Promise<void>[] = [];
  let params: Map<string, HostArray>;
  let step: number;
  const t0 = performance.now();
  try {
    const bound = data.bind(programs.train, seed);
    const stepsPerEpoch = Math.min(bound.stepsPerEpoch, opts.maxStepsPerEpoch ?? Infinity);

    let startEpoch = 0;
    if (opts.checkpoint && existsSync(opts.checkpoint)) {
      const c = loadCheckpointFile(opts.checkpoint);
      for (const [name, t] of c.tensors) prog.write(name, t);
      startEpoch = Number(c.meta?.epoch ?? 0);
      log(`resumed from ${opts.checkpoint} at epoch ${startEpoch}`, true);
    }

    step = startEpoch * stepsPerEpoch;
    const resumedAt = step;
    losses.splice(0, losses.length, ...losses.filter((l) => l.step <= resumedAt));
    const total = opts.epochs * stepsPerEpoch;
    let lastLoss = NaN;
    for (let epoch = startEpoch; epoch < opts.epochs; epoch++) {
      for (let s = 0; s < stepsPerEpoch; s++) {
        const feeds = bound.trainFeeds(epoch, s);
        const read = (step + 1) % readEvery === 0 || s === stepsPerEpoch - 1;
        const at = step + 1;
        const r = prog.step(feeds, read ? [lossName] : []);
        opts.afterStep?.(at, device);
        if (r) {
          const done = r.then((m) => {
            lastLoss = m.get(lossName)![0]!;
            losses.push({ step: at, loss: lastLoss });
          });
          done.catch(() => undefined); // awaited below; this only keeps a failure from being "unhandled" meanwhile
          pending.push(done);
          if (pending.length >= 2) await pending.shift();
        }
        step++;
        const secs = (performance.now() - t0) / 1000;
        const rate = (step - startEpoch * stepsPerEpoch) / Math.max(secs, 1e-9);
        const eta = (total - step) / Math.max(rate, 1e-9);
        log(`epoch ${epoch + 1}/${opts.epochs} ${bar((s + 1) / stepsPerEpoch)} ${s + 1}/${stepsPerEpoch}  ${rate.toFixed(1)} steps/s  loss ${Number.isNaN(lastLoss) ? '   -  ' : lastLoss.toFixed(4)}  ETA ${eta.toFixed(0)}s`, s === stepsPerEpoch - 1);
      }
      await Promise.all(pending.splice(0));
      if (!losses.every((l) => Number.isFinite(l.loss))) throw new AdjointError(`training diverged: the loss became ${losses.find((l) => !Number.isFinite(l.loss))!.loss} (lower the learning rate)`);
      if (opts.checkpoint) {
        saveCheckpointFile(opts.checkpoint, { step, tensors: await prog.snapshot(), meta: { epoch: epoch + 1, model: programs.train.name } });
      }
    }
    params = await prog.snapshot();
  } finally {
    // After a failure, let in-flight reads settle (they reject on a lost device) before freeing.
    await Promise.allSettled(pending.splice(0));
    prog.destroy();
  }
  const seconds = (performance.now() - t0) / 1000;
  losses.sort((a, b) => a.step - b.step);
  if (opts.plot) writeFileSync(opts.plot, lossPlotPng(losses));
  const ev = await evaluate(device, programs.forward, params, data, lossName, seed, opts.tune);
  return { losses: [...losses], steps: step, seconds, ...ev };
}

/**
 * Runs the forward program over the held-out batches: the mean of the loss output over full
 * batches (a padded last batch would count its padding), and the accuracy of the `logits` output's argmax against the batch labels.
 */
export async function evaluate(
  device: GPUDevice, forward: Artifact, params: ReadonlyMap<string, HostArray>, data: DataSource, lossName: string, seed = 0, tune?: boolean,
): Promise<{ accuracy?: number; testLoss: number; testLossItems: number }> {
  const prog = await Program.load(device, forward, tune !== undefined ? { tune } : {});
  try {
    for (const p of forward.params) {
      const v = params.get(p.name);
      if (v) prog.write(p.name, v);
    }
    const bound = data.bind(forward, seed);
    const logits = forward.outputs.find((o) => o.name === 'logits');
    const hasLoss = forward.outputs.some((o) => o.name === lossName);
    let correct = 0;
    let scored = 0;
    let lossSum = 0;
    let lossCount = 0;
    let lossItems = 0;
    for (const batch of bound.testBatches()) {
      const want = [...(logits && batch.labels ? ['logits'] : []), ...(hasLoss && batch.real === batch.size ? [lossName] : [])];
      const r = await prog.step(batch.feeds, want);
      if (!r) continue;
      const l = r.get('logits');
      if (l && logits && batch.labels) {
        const k = logits.shape.at(-1)!;
        for (let i = 0; i < batch.real; i++) {
          let best = 0;
          for (let j = 1; j < k; j++) if (l[i * k + j]! > l[i * k + best]!) best = j;
          if (best === batch.labels[i]) correct++;
        }
        scored += batch.real;
      }
      const lv = r.get(lossName);
      if (lv) {
        lossSum += lv[0]!;
        lossCount++;
        lossItems += batch.size;
      }
    }
    return { ...(scored ? { accuracy: correct / scored } : {}), testLoss: lossCount ? lossSum / lossCount : NaN, testLossItems: lossItems };
  } finally {
    prog.destroy();
  }
}
