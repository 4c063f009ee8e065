/**
 * @file The trainer: runs a compiled training program over a data set for some epochs on a real
 * device, with a progress line (steps/s, loss, ETA), the loss read back every few steps without
 * stalling the GPU, checkpoints (safetensors) written atomically, a start from given weights
 * (`init`), and a held-out evaluation (accuracy when the model has a `logits` output, and the mean
 * held-out loss) at the end, or after every epoch for the training report. With `recover`, a
 * lost device (driver reset, `device.destroy()`) does not end the run: the trainer gets a new
 * device, reloads the last checkpoint and continues, so the result is the uninterrupted run's.
 */
import { existsSync } from 'node:fs';
import { AdjointError, DeviceError } from '../ir/errors.js';
import type { Artifact } from '../runtime/artifact.js';
import { deviceHealth } from '../runtime/device.js';
import { Program, type HostArray } from '../runtime/program.js';
import type { DataSource } from '../data/source.js';
import { matchTensors, type TensorData } from '../runtime/checkpoint.js';
import { loadCheckpointFile, loadWeightsFile, saveCheckpointFile } from './checkpoint-file.js';

export interface TrainOptions {
  readonly epochs: number;
  readonly seed?: number;
  /** Stop an epoch after this many steps (short CI runs). */
  readonly maxStepsPerEpoch?: number;
  /** Read the loss back every N steps (default 10). */
  readonly readEvery?: number;
  /** Write a checkpoint here after every epoch, and resume from it if it exists. */
  readonly checkpoint?: string;
  /** Start from these weights (a safetensors file: ours or another tool's), not the seed's initialization. */
  readonly init?: string;
  /** Evaluate on the held-out set after every epoch (`TrainResult.epochs`), not only at the end. */
  readonly evalEachEpoch?: boolean;
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
  /** One record per epoch trained in this run (a resumed run starts at its checkpoint's epoch). */
  readonly epochs: readonly EpochRecord[];
  /** The training program's kernel tuning, when tuning was on (it runs in the background while steps run). */
  readonly tuning?: TuneSummary;
}

/** How background tuning of the training program went (runtime/program.ts, LoadOptions.tune). */
export interface TuneSummary {
  /** Kernels with several variants. */
  readonly kernels: number;
  /** Of those, timed in this run; the others' choices came from the cache (or stayed default: see error). */
  readonly timed: number;
  /** Kernels still waiting to be timed when training ended. */
  readonly pending: number;
  /** Milliseconds tuning took (or had taken when training ended). */
  readonly ms: number;
  /** The number of steps submitted when tuning finished (undefined: it had not finished). */
  readonly doneAtStep?: number;
  /** What went wrong, if anything (those kernels ran their default variant). */
  readonly error?: string;
}

/** The one line that says how tuning went. */
export function tuneLine(t: TuneSummary): string {
  if (t.error) return `tuning: ${t.error}`;
  if (t.doneAtStep === undefined) return `tuning: ${t.kernels - t.pending} of ${t.kernels} kernels' variants chosen when training ended (${(t.ms / 1000).toFixed(1)} s of background tuning); the rest are timed on the next run`;
  if (t.timed === 0) return `tuning: every kernel's variant (${t.kernels}) came from the tuning cache`;
  return `tuning: ${t.timed} of ${t.kernels} kernels timed in the background in ${(t.ms / 1000).toFixed(1)} s, done at step ${t.doneAtStep}; choices cached`;
}

export interface EpochRecord {
  /** 1-based. */
  readonly epoch: number;
  /** The step count at the epoch's end. */
  readonly step: number;
  /** Steps taken in this epoch. */
  readonly steps: number;
  /** Seconds from the start of the run to the epoch's end (training only, not evaluation). */
  readonly seconds: number;
  /** Steps per second over this epoch. */
  readonly stepsPerSecond: number;
  /** Held-out loss and accuracy after this epoch (with `evalEachEpoch`, and after the last). */
  readonly testLoss?: number;
  readonly accuracy?: number;
}

/** The optimizer, as its state shows it (Adam keeps a step counter, momentum a buffer per parameter). */
export function optimizerOf(a: Artifact): string {
  if (a.state.some((s) => s.name === '@step')) return 'adam';
  return a.state.some((s) => s.name.endsWith('@m')) ? 'sgd+momentum' : 'sgd';
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

/**
 * The tensors of a weights file to start from: every parameter (names, shapes and dtypes checked),
 * and the model's non-trainable state the file also holds under its name (an imported model's
 * batch-norm statistics); optimizer state and counters are not taken from it.
 */
function initTensors(path: string, a: Artifact): Map<string, HostArray> {
  const file = loadWeightsFile(path);
  const out = matchTensors(file, a.params, path);
  const states = a.state.filter((s) => file.tensors.has(s.name) && !(file.params ?? []).includes(s.name));
  for (const [name, t] of matchTensors({ ...file, params: states.map((s) => s.name) }, states, path, 'state')) out.set(name, t);
  return out;
}

/** Trains on the device; `train` and `forward` are the compiled programs of one model. */
export async function train(device: GPUDevice, programs: { train: Artifact; forward: Artifact }, data: DataSource, opts: TrainOptions): Promise<TrainResult> {
  if (opts.recover && !opts.checkpoint) throw new AdjointError('recover needs a checkpoint file to resume from (the checkpoint option)');
  const log = opts.log ?? defaultLog();
  const losses: { step: number; loss: number }[] = [];
  // Checked before any device work: a wrong file is refused at once, naming the mismatch.
  const init = opts.init ? initTensors(opts.init, programs.train) : undefined;
  let recoveries = 0;
  for (let dev = device; ;) {
    try {
      return { ...(await trainOn(dev, programs, data, { ...opts, log }, losses, init)), recoveries };
    } catch (e) {
      if (!opts.recover || recoveries >= (opts.recover.attempts ?? 3) || !(e instanceof DeviceError) || !(await isLost(dev))) throw e;
      recoveries++;
      log(`${e.message}; recovering on a new device from ${opts.checkpoint}`, true);
      dev = await opts.recover.getDevice();
    }
  }
}

/**
 * The parameters, and the state the forward program also has (batch norm's running statistics),
 * read back one after another (reads share a staging buffer); optimizer state is not read.
 */
async function paramsOf(prog: Program, a: Artifact, forward: Artifact): Promise<Map<string, HostArray>> {
  const out = new Map<string, HostArray>();
  const inForward = new Set(forward.state.map((s) => s.name));
  for (const p of [...a.params, ...a.state.filter((s) => inForward.has(s.name))]) out.set(p.name, await prog.read(p.name));
  return out;
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
  init: ReadonlyMap<string, TensorData> | undefined,
): Promise<Omit<TrainResult, 'recoveries'>> {
  const seed = opts.seed ?? 0;
  const log = opts.log;
  const readEvery = Math.max(1, opts.readEvery ?? 10);
  const lossName = programs.train.loss;
  if (!lossName) throw new AdjointError(`"${programs.train.name}" is not a training program (no loss)`);
  const prog = await Program.load(device, programs.train, { seed, ...(opts.tune !== undefined ? { tune: opts.tune } : {}) });
  // Kernel variants are timed in the background while the steps run: note the step at which that ends.
  let stepsSubmitted = 0;
  let tuneDoneAt: number | undefined;
  let trained = false;
  const tunes = prog.tuning.some((k) => k.source !== 'default');
  void prog.tuned.then(() => {
    if (!trained) tuneDoneAt = stepsSubmitted;
  });
  const summary = (): TuneSummary => ({
    kernels: prog.tuning.length,
    timed: prog.tuning.filter((k) => k.source === 'tuned').length,
    pending: prog.tuning.filter((k) => k.source === 'pending').length,
    ms: prog.tuneMs,
    ...(tuneDoneAt !== undefined ? { doneAtStep: tuneDoneAt } : {}),
    ...(prog.tuneError ? { error: prog.tuneError.message } : {}),
  });
  let tuning: TuneSummary | undefined;
  const pending: Promise<void>[] = [];
  const epochs: EpochRecord[] = [];
  let evaluator: Evaluator | undefined;
  let ev: Awaited<ReturnType<Evaluator['run']>> | undefined;
  let step: number;
  const t0 = performance.now();
  let trainSeconds = 0;
  try {
    evaluator = await Evaluator.open(device, programs.forward, data, lossName, seed, opts.tune);
    const bound = data.bind(programs.train, seed);
    const stepsPerEpoch = Math.min(bound.stepsPerEpoch, opts.maxStepsPerEpoch ?? Infinity);

    let startEpoch = 0;
    if (opts.checkpoint && existsSync(opts.checkpoint)) {
      const { params: _params, ...c } = loadCheckpointFile(opts.checkpoint);
      // Every parameter and state tensor, by name and shape; nothing else.
      for (const [name, t] of matchTensors(c, [...programs.train.params, ...programs.train.state], opts.checkpoint, 'parameter or state')) prog.write(name, t);
      startEpoch = Number(c.meta?.epoch ?? 0);
      log(`resumed from ${opts.checkpoint} at epoch ${startEpoch}`, true);
    } else if (init) {
      for (const [name, t] of init) prog.write(name, t);
    }

    step = startEpoch * stepsPerEpoch;
    const resumedAt = step;
    losses.splice(0, losses.length, ...losses.filter((l) => l.step <= resumedAt));
    const total = opts.epochs * stepsPerEpoch;
    let lastLoss = NaN;
    for (let epoch = startEpoch; epoch < opts.epochs; epoch++) {
      const epochStart = performance.now();
      const epochStep = step;
      for (let s = 0; s < stepsPerEpoch; s++) {
        const feeds = bound.trainFeeds(epoch, s);
        const read = (step + 1) % readEvery === 0 || s === stepsPerEpoch - 1;
        const at = step + 1;
        const r = prog.step(feeds, read ? [lossName] : []);
        stepsSubmitted = at;
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
      const epochSeconds = (performance.now() - epochStart) / 1000;
      trainSeconds += epochSeconds;
      if (opts.checkpoint) {
        const a = programs.train;
        saveCheckpointFile(opts.checkpoint, {
          step, tensors: await prog.snapshot(), shapes: new Map([...a.params, ...a.state].map((x) => [x.name, x.shape])),
          model: a.name, optimizer: optimizerOf(a), params: a.params.map((x) => x.name), meta: { epoch: epoch + 1 },
        });
      }
      ev = opts.evalEachEpoch || epoch === opts.epochs - 1 ? await evaluator.run(await paramsOf(prog, programs.train, programs.forward)) : undefined;
      epochs.push({
        epoch: epoch + 1, step, steps: step - epochStep, seconds: trainSeconds, stepsPerSecond: (step - epochStep) / Math.max(epochSeconds, 1e-9),
        ...(ev ? { testLoss: ev.testLoss } : {}), ...(ev?.accuracy !== undefined ? { accuracy: ev.accuracy } : {}),
      });
    }
    // A run resumed after its last epoch trains nothing, and is still evaluated.
    ev ??= await evaluator.run(await paramsOf(prog, programs.train, programs.forward));
  } finally {
    // After a failure, let in-flight reads settle (they reject on a lost device) before freeing.
    await Promise.allSettled(pending.splice(0));
    trained = true;
    if (tunes) tuning = summary();
    prog.destroy();
    evaluator?.destroy();
  }
  const seconds = (performance.now() - t0) / 1000;
  losses.sort((a, b) => a.step - b.step);
  return { losses: [...losses], steps: step, seconds, epochs, ...ev, ...(tuning ? { tuning } : {}) };
}

/**
 * Runs the forward program (the eval mode) over the held-out batches, with the parameters and
 * state in `params` (a training program's snapshot): the mean of the loss output over full
 * batches (a padded last batch would count its padding), and the accuracy of the `logits` output's argmax against the batch labels.
 */
export async function evaluate(
  device: GPUDevice, forward: Artifact, params: ReadonlyMap<string, HostArray>, data: DataSource, lossName: string, seed = 0, tune?: boolean,
): Promise<{ accuracy?: number; testLoss: number; testLossItems: number }> {
  const ev = await Evaluator.open(device, forward, data, lossName, seed, tune);
  try {
    return await ev.run(params);
  } finally {
    ev.destroy();
  }
}

/** The forward program loaded once, evaluated on the held-out set for each set of parameters given. */
class Evaluator {
  private constructor(private readonly prog: Program, private readonly forward: Artifact, private readonly data: DataSource, private readonly lossName: string, private readonly seed: number) {}

  static async open(device: GPUDevice, forward: Artifact, data: DataSource, lossName: string, seed: number, tune?: boolean): Promise<Evaluator> {
    return new Evaluator(await Program.load(device, forward, tune !== undefined ? { tune } : {}), forward, data, lossName, seed);
  }

  destroy(): void {
    this.prog.destroy();
  }

  async run(params: ReadonlyMap<string, HostArray>): Promise<{ accuracy?: number; testLoss: number; testLossItems: number }> {
    const { prog, forward, lossName } = this;
    // Parameters and state (batch norm's running statistics) come from the training program: the
    // forward program is its eval mode and reads what training left.
    for (const p of [...forward.params, ...forward.state]) {
      const v = params.get(p.name);
      if (v) prog.write(p.name, v);
    }
    const bound = this.data.bind(forward, this.seed);
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
  }
}
