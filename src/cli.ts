/**
 * @file The `adjoint` command line. One table, {@link COMMANDS}, holds every command: its one-line
 * summary, its usage and description, its flags (node:util `parseArgs` options, each with its
 * help text) and its handler; `adjoint --help`, `adjoint <command> --help` and the flag checks are
 * all made from it, so a new command or flag is one entry. Commands: `compile` a model to an
 * artifact directory, `inspect` a model's IR after each pass and the compiled figures of a model
 * or an artifact, `train` a model or an artifact on MNIST or text. Exit codes: 0 ok, 1 failure
 * (no adapter, a lost device, an I/O error, a bug), 2 usage or model error. Every error prints one
 * line; nothing prints a stack trace unless ADJOINT_DEBUG=1.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { compile, STAGE_NAMES } from './compile.js';
import { AdjointError, DeviceError } from './ir/errors.js';
import type { Model } from './ir/model.js';
import { loadModel, modelSizeProblem } from './ir/schema.js';
import { bundleFiles, MANIFEST, parseBundle, type Bundle } from './runtime/bundle.js';
import { getDevice, deviceLimits, adapterInfo, selectAdapter, ADAPTER_NAMES } from './runtime/device.js';
import { ARTIFACT_FORMAT, type Artifact } from './runtime/artifact.js';
import { loadMnist } from './data/mnist.js';
import { mnistSource, textSource, type DataSource } from './data/source.js';
import { loadText, unigramBaseline } from './data/text.js';
import { train, optimizerOf, tuneLine } from './train/trainer.js';
import { writeReport } from './train/report.js';
import { loadWeightsFile, saveCheckpointFile } from './train/checkpoint-file.js';
import { matchTensors, weightsOf, type CheckpointData } from './runtime/checkpoint.js';
import { initTensor } from './runtime/init.js';
import { Program } from './runtime/program.js';
import { fileTuneCache } from './runtime/tune-file.js';
import { gpuWait } from './runtime/gpu-wait.js';
import { onnxExportCommand, onnxImportCommand } from './onnx/cli.js';

class UsageError extends AdjointError {
  override name = 'UsageError';
}

/** One flag of a command: a node:util `parseArgs` option and its help line. */
interface Flag {
  readonly type: 'string' | 'boolean';
  readonly short?: string;
  /** The flag may be given several times (its values come as a list). */
  readonly multiple?: boolean;
  /** The value's name in help, e.g. `<dir>` (string flags). */
  readonly arg?: string;
  readonly help: string;
}

/** What a handler gets: the positional arguments and the flags given (strings, or true). */
interface Parsed {
  readonly positionals: readonly string[];
  readonly values: Readonly<Record<string, string | boolean | readonly string[] | undefined>>;
}

interface Command {
  /** One line for `adjoint --help`. */
  readonly summary: string;
  /** What follows `adjoint ` in the usage line. */
  readonly usage: string;
  /** Paragraphs for `adjoint <command> --help`. */
  readonly description: string;
  readonly flags: Readonly<Record<string, Flag>>;
  readonly run: (args: Parsed) => Promise<void>;
}

const EXIT_CODES = `exit codes:
  0  ok
  1  failure: no WebGPU adapter, a lost device, an I/O error
  2  usage or model error: a bad flag, file, model or artifact
Every error is one line on stderr (ADJOINT_DEBUG=1 shows the stack).`;

/** This package's version, from the package.json above this file (in src/ or dist/src/). */
function version(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++, dir = dirname(dir)) {
    const p = join(dir, 'package.json');
    if (!existsSync(p)) continue;
    const pkg = JSON.parse(readFileSync(p, 'utf8')) as { name?: string; version?: string };
    if (pkg.name === 'adjoint' && pkg.version) return pkg.version;
  }
  return 'unknown';
}

/** A string flag's value (undefined when not given). */
function str(args: Parsed, key: string): string | undefined {
  const v = args.values[key];
  return typeof v === 'string' ? v : undefined;
}

function intFlag(args: Parsed, key: string, dflt?: number): number | undefined {
  const v = str(args, key);
  if (v === undefined) return dflt;
  if (!/^\d+$/.test(v)) throw new UsageError(`--${key} takes a whole number, got "${v}"`);
  return Number(v);
}

/** The one positional argument a command takes. */
function onePath(cmd: string, args: Parsed, what: string): string {
  const [path, ...extra] = args.positionals;
  if (!path) throw new UsageError(`${cmd} needs ${what} (adjoint ${cmd} --help)`);
  if (extra.length) throw new UsageError(`${cmd} takes one ${what.replace(/^an? /, '')}, got also "${extra[0]}"`);
  return path;
}

/** A model from a .json file, or a .ts/.js module whose default export is a Model (or returns one). */
export async function loadModelFile(path: string): Promise<Model> {
  if (!existsSync(path)) throw new UsageError(`${path}: no such file`);
  if (statSync(path).isDirectory()) throw new UsageError(`${path} is a directory, not a model file`);
  const ext = extname(path);
  if (ext === '.json') {
    // Refused before reading: a huge file never reaches memory.
    const tooBig = modelSizeProblem(statSync(path).size, path);
    if (tooBig) throw tooBig;
    return loadModel(readFileSync(path, 'utf8'), path);
  }
  if (ext === '.ts' || ext === '.js' || ext === '.mjs') {
    let url = pathToFileURL(resolve(path)).href;
    if (ext === '.ts') {
      const esbuild = await import('esbuild').catch(() => undefined);
      if (!esbuild) throw new UsageError(`${path}: loading a .ts model needs esbuild (npm install esbuild), or compile it to .js`);
      const out = await esbuild.build({ entryPoints: [path], bundle: true, format: 'esm', platform: 'node', write: false, logLevel: 'silent', packages: 'external' })
        .catch((e: Error) => { throw new UsageError(`${path}: ${e.message.split('\n')[0]}`); });
      const tmp = join(resolve(path, '..'), `.adjoint-${process.pid}.mjs`);
      writeFileSync(tmp, out.outputFiles[0]!.text);
      url = pathToFileURL(tmp).href;
      try {
        return await modelFromModule(await import(url), path);
      } finally {
        (await import('node:fs')).rmSync(tmp, { force: true });
      }
    }
    return modelFromModule(await import(url), path);
  }
  throw new UsageError(`${path}: a model is a .json, .ts or .js file`);
}

async function modelFromModule(mod: { default?: unknown }, path: string): Promise<Model> {
  let m = mod.default;
  if (typeof m === 'function') m = await (m as () => unknown)();
  if (!m || typeof m !== 'object' || !('graph' in m)) throw new UsageError(`${path}: the default export is not a Model`);
  return m as Model;
}

function loadBundleDir(dir: string): Bundle {
  if (!existsSync(join(dir, MANIFEST))) throw new UsageError(`${dir} is a directory, not a model file or an artifact directory (no ${MANIFEST})`);
  return parseBundle((f) => {
    const p = join(dir, f);
    return existsSync(p) ? readFileSync(p, 'utf8') : undefined;
  }, dir);
}

/** The memory figures' definitions, shared by `inspect --help` and docs. */
const MEMORY_HELP = `Memory figures (bytes of temporaries: values a step computes and then drops; parameters,
optimizer state and inputs are listed apart), so that naive >= planned >= lower bound:
  naive        every temporary its own bytes, laid end to end: each size rounded up to the
               device's storage-offset alignment (256 B by default), summed. No reuse at all.
  planned      what the memory plan allocates: the sum of its arenas' sizes, temporaries
               sharing bytes when their lifetimes do not overlap.
  lower bound  at the busiest dispatch, the sizes of the live temporaries rounded up to the
               alignment, less the padding of the topmost one in each arena: no plan of
               those lifetimes in that many arenas is smaller. "x bound" is planned / bound.`;

function figures(name: string, a: Artifact): string {
  const kinds = new Map<string, number>();
  for (const d of a.dispatches) kinds.set(d.label, (kinds.get(d.label) ?? 0) + 1);
  const bytes = (role: string) => a.arenas.filter((x) => x.role === role).reduce((s, x) => s + x.bytes, 0);
  const m = a.memory;
  return [
    `${name}: ${a.dispatches.length} dispatches per step, ${a.shaders.length} shaders, 1 submit per step`,
    `  buffers: ${a.arenas.length}; params ${bytes('param')} B, state ${bytes('state')} B, inputs ${bytes('input')} B`,
    `  temporaries: naive ${m.naiveBytes} B >= planned ${m.plannedBytes} B >= lower bound ${m.lowerBound} B (planned ${(m.plannedBytes / Math.max(1, m.lowerBound)).toFixed(3)} x bound)`,
    ...a.dispatches.map((d, i) => `  k${i}: ${d.label}  grid ${d.workgroups.join('x')}${variantList(d)}`),
  ].join('\n');
}

/** `  variants: a (default), b, c` when a dispatch has several. */
function variantList(d: Artifact['dispatches'][number]): string {
  if (!d.variants || d.variants.length < 2) return '';
  return `  variants: ${d.variants.map((v, i) => `${v.name}${i === 0 ? ' (default)' : ''}`).join(', ')}`;
}

/** The programs of a model file or an artifact directory (compiled for the device's limits). */
async function programsOf(path: string, device: GPUDevice): Promise<Bundle> {
  if (!existsSync(path)) throw new UsageError(`${path}: no such file or directory`);
  if (statSync(path).isDirectory()) return loadBundleDir(path);
  const model = await loadModelFile(path);
  const c = compile(model, { limits: deviceLimits(device) });
  return { name: model.name, forward: c.forward, ...(c.train ? { train: c.train } : {}) };
}

/** tune: kernel variants chosen by measurement on this device, the choices cached (runtime/tune.ts). */
async function runTune(args: Parsed): Promise<void> {
  const path = onePath('tune', args, 'a model file or an artifact directory');
  const device = await getDevice({ quiet: true });
  const cache = fileTuneCache(str(args, 'cache'));
  process.stdout.write(`device: ${adapterInfo(device)}\n`);
  const programs = await programsOf(path, device);
  for (const [name, a] of [['train', programs.train], ['forward', programs.forward]] as const) {
    if (!a) continue;
    const p = await Program.load(device, a, { tune: 'load', tuneCache: cache, retune: args.values.force === true });
    p.destroy();
    process.stdout.write(`${name}: load ${p.loadMs.toFixed(0)} ms, tuning ${p.tuneMs.toFixed(0)} ms, ${p.tuning.length} kernels with variants\n`);
    for (const k of p.tuning) {
      const times = k.variants.map((v) => `${v} ${k.times?.[v] !== undefined ? `${k.times[v]!.toFixed(3)} ms` : '-'}`).join(', ');
      process.stdout.write(`  k${k.dispatch}: ${k.label}: ${times} -> ${k.choice} (${k.source}${k.timer ? `, ${k.timer}` : ''})\n`);
    }
  }
  process.stdout.write(`cache: ${cache.where}\n`);
}

/**
 * profile: where a step's time goes on this device. Loads a program with the tuned variants (tuning
 * first what the cache lacks, as `tune` does), its parameters initialized and its inputs zero, times
 * whole steps, then each dispatch alone (Program.profile), and prints the kernels slowest first.
 */
async function runProfile(args: Parsed): Promise<void> {
  const path = onePath('profile', args, 'a model file or an artifact directory');
  const steps = intFlag(args, 'steps', 5)!;
  const rounds = intFlag(args, 'rounds', 5)!;
  if (steps < 1) throw new UsageError('--steps must be at least 1');
  if (rounds < 1) throw new UsageError('--rounds must be at least 1');
  const device = await getDevice({ quiet: true });
  const cache = fileTuneCache(str(args, 'cache'));
  process.stdout.write(`device: ${adapterInfo(device)}\n`);
  const programs = await programsOf(path, device);
  const forward = args.values.forward === true || !programs.train;
  const [name, a] = forward ? ['forward', programs.forward] as const : ['train', programs.train!] as const;
  const p = await Program.load(device, a, { tune: 'load', tuneCache: cache });
  try {
    p.initialize(0);
    const step = async () => {
      const t0 = performance.now();
      p.step();
      await gpuWait(device.queue.onSubmittedWorkDone());
      return performance.now() - t0;
    };
    await step(); // warm-up: every pipeline's first run (a driver may compile at first dispatch)
    const times: number[] = [];
    for (let i = 0; i < steps; i++) times.push(await step());
    const stepMs = [...times].sort((x, y) => x - y)[(times.length - 1) >> 1]!;
    const prof = await p.profile({ rounds });
    const sum = prof.dispatches.reduce((n, d) => n + d.ms, 0);
    const tuned = p.tuneMs > 0 ? `, tuning ${p.tuneMs.toFixed(0)} ms` : '';
    process.stdout.write(`${name}: load ${p.loadMs.toFixed(0)} ms${tuned}; a step ${stepMs.toFixed(3)} ms (median of ${steps}, inputs zero, nothing read back); ` +
      `${prof.dispatches.length} dispatches timed alone: ${sum.toFixed(3)} ms in all (${prof.timer === 'timestamp' ? 'timestamp queries' : 'wall clock'}, median of ${prof.rounds} rounds)\n`);
    const rows = [...prof.dispatches].sort((x, y) => y.ms - x.ms).map((d) => [`k${d.dispatch}`, d.ms.toFixed(3), `${((100 * d.ms) / Math.max(sum, 1e-9)).toFixed(1)}%`, d.variant ?? '-', d.workgroups.join('x'), d.label]);
    const head = ['kernel', 'ms', 'share', 'variant', 'grid', 'fused ops'];
    const w = head.map((h, j) => Math.max(h.length, ...rows.map((r) => r[j]!.length)));
    const line = (r: readonly string[]) => '  ' + r.map((c, j) => (j === r.length - 1 ? c : j === 1 || j === 2 ? c.padStart(w[j]!) : c.padEnd(w[j]!))).join('  ') + '\n';
    process.stdout.write(line(head));
    for (const r of rows) process.stdout.write(line(r));
  } finally {
    p.destroy();
  }
}

/** The files an artifact directory may hold: its manifest and its programs' shaders. */
const ARTIFACT_FILE = /^(manifest\.json|[a-z]+-\d+\.wgsl)$/;

/**
 * Refuses an output directory `compile -o` must not replace: one that exists and is not an
 * adjoint artifact (not a directory; files without an adjoint manifest; files an artifact has not).
 */
function checkReplaceable(out: string): void {
  if (!existsSync(out)) return;
  if (!statSync(out).isDirectory()) throw new UsageError(`-o ${out}: exists and is not a directory`);
  const entries = readdirSync(out);
  if (entries.length === 0) return;
  const refuse = (why: string) => new UsageError(`-o ${out}: ${why}, so it is not replaced (remove it or choose another directory)`);
  if (!entries.includes(MANIFEST)) throw refuse(`holds files and no ${MANIFEST}: not an adjoint artifact`);
  let format: unknown;
  try {
    format = (JSON.parse(readFileSync(join(out, MANIFEST), 'utf8')) as { format?: unknown })?.format;
  } catch {
    format = undefined;
  }
  if (format !== ARTIFACT_FORMAT) throw refuse(`its ${MANIFEST} is not an adjoint artifact's`);
  const other = entries.find((f) => !ARTIFACT_FILE.test(f) || !statSync(join(out, f)).isFile());
  if (other !== undefined) throw refuse(`"${other}" there is not part of an adjoint artifact`);
}

/**
 * Writes `files` as the directory `out`, holding exactly them: into a fresh directory beside it,
 * then renamed over it (the old one is renamed aside first and removed after), so a reader never
 * sees old and new files mixed; a crash in between leaves the old artifact as a hidden sibling.
 */
function writeArtifactDir(out: string, files: ReadonlyMap<string, string>): void {
  const abs = resolve(out);
  mkdirSync(dirname(abs), { recursive: true });
  const tmp = join(dirname(abs), `.${basename(abs)}.adjoint-new-${process.pid}`);
  const old = join(dirname(abs), `.${basename(abs)}.adjoint-old-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  try {
    mkdirSync(tmp);
    for (const [f, text] of files) writeFileSync(join(tmp, f), text);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  if (!existsSync(abs)) {
    renameSync(tmp, abs);
    return;
  }
  renameSync(abs, old);
  try {
    renameSync(tmp, abs);
  } catch (e) {
    renameSync(old, abs);
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  rmSync(old, { recursive: true, force: true });
}

async function runCompile(args: Parsed): Promise<void> {
  const path = onePath('compile', args, 'a model file');
  const out = str(args, 'out');
  if (!out) throw new UsageError('compile needs -o <dir> (adjoint compile --help)');
  checkReplaceable(out);
  const model = await loadModelFile(path);
  const limits = args.values['device-limits'] ? deviceLimits(await getDevice({ quiet: true })) : undefined;
  const c = compile(model, limits ? { limits } : {});
  const files = bundleFiles({ name: model.name, forward: c.forward, ...(c.train ? { train: c.train } : {}) });
  writeArtifactDir(out, files);
  for (const d of c.diagnostics) process.stderr.write(`note: ${d}\n`);
  process.stdout.write(`wrote ${out}/manifest.json and ${files.size - 1} shaders (${c.train ? 'train + forward' : 'forward'}; ${(c.train ?? c.forward).dispatches.length} dispatches per step)\n`);
}

async function runInspect(args: Parsed): Promise<void> {
  const path = onePath('inspect', args, 'a model file or an artifact directory');
  const want = str(args, 'dump');
  // ---- issue 14: --dump takes any stage of src/compile.ts STAGES ----
  if (want !== undefined && want !== 'all' && !(STAGE_NAMES as readonly string[]).includes(want)) {
    throw new UsageError(`--dump: no stage named "${want}" (stages: ${STAGE_NAMES.join(', ')}, all)`);
  }
  if (existsSync(path) && statSync(path).isDirectory()) {
    if (want !== undefined) throw new UsageError(`--dump needs a model file: the artifact ${path} holds compiled programs, not IR`);
    const b = loadBundleDir(path);
    process.stdout.write(`artifact ${b.name} (${path})\n`);
    if (b.train) process.stdout.write(figures('train step', b.train) + '\n');
    process.stdout.write(figures('forward', b.forward) + '\n');
    return;
  }
  const model = await loadModelFile(path);
  let dumped = false;
  const c = compile(model, {
    dump: (stage, text, program) => {
      if (want !== stage && want !== 'all') return;
      dumped = true;
      process.stdout.write(`== after ${stage} (${program} program)\n${text()}`);
    },
  });
  if (want !== undefined && !dumped) process.stderr.write(`note: --dump ${want}: the stage runs only in the training program, and ${model.name} has none (no loss or optimizer)\n`);
  // ---- end issue 14 ----
  process.stdout.write(`model ${model.name}: ${model.graph.nodes.length} nodes\n`);
  if (c.train) process.stdout.write(figures('train step', c.train) + '\n');
  process.stdout.write(figures('forward', c.forward) + '\n');
}

async function runTrain(args: Parsed): Promise<void> {
  const path = onePath('train', args, 'a model file or an artifact directory');
  const dataName = str(args, 'data') ?? 'mnist';
  const sources: Record<string, () => DataSource> = { mnist: () => mnistSource(), text: () => textSource() };
  const makeSource = Object.hasOwn(sources, dataName) ? sources[dataName] : undefined;
  if (!makeSource) throw new UsageError(`--data: "${dataName}" is not a data set (mnist, text)`);
  const epochs = intFlag(args, 'epochs', 1)!;
  if (!existsSync(path)) throw new UsageError(`${path}: no such file or directory`);
  let programs: Bundle;
  if (statSync(path).isDirectory()) programs = loadBundleDir(path);
  else {
    const model = await loadModelFile(path);
    const c = compile(model);
    if (!c.train) throw new UsageError(`${path}: the model has no loss and optimizer, so it cannot be trained`);
    for (const d of c.diagnostics) process.stderr.write(`note: ${d}\n`);
    programs = { name: model.name, train: c.train, forward: c.forward };
  }
  if (!programs.train) throw new UsageError(`${path}: the artifact has no training program`);
  const device = await getDevice({ quiet: true });
  process.stderr.write(`device: ${adapterInfo(device)}\n`);
  const r = await train(device, { train: programs.train, forward: programs.forward }, makeSource(), {
    epochs,
    seed: intFlag(args, 'seed', 0)!,
    ...(args.values['steps-per-epoch'] !== undefined ? { maxStepsPerEpoch: intFlag(args, 'steps-per-epoch')! } : {}),
    ...(args.values['read-every'] !== undefined ? { readEvery: intFlag(args, 'read-every')! } : {}),
    ...(str(args, 'checkpoint') !== undefined ? { checkpoint: str(args, 'checkpoint')! } : {}),
    ...(str(args, 'init') !== undefined ? { init: str(args, 'init')! } : {}),
    evalEachEpoch: str(args, 'report') !== undefined,
    ...(args.values['no-tune'] === true ? { tune: false } : {}),
  });
  const last = r.losses.at(-1)?.loss;
  process.stdout.write(`trained ${programs.name}: ${r.steps} steps in ${r.seconds.toFixed(1)} s (${(r.steps / r.seconds).toFixed(1)} steps/s), final loss ${last?.toFixed(4)}\n`);
  // Kernel variants were timed in the background while the steps ran (runtime/program.ts): when that ended.
  if (r.tuning) process.stderr.write(`${tuneLine(r.tuning)}\n`);
  if (r.accuracy !== undefined) {
    const what = dataName === 'mnist' ? ` on ${loadMnist().test.n} digits` : ' (the next character, top 1)';
    process.stdout.write(`held-out accuracy: ${(100 * r.accuracy).toFixed(2)}%${what}\n`);
  }
  if (dataName === 'text') {
    const base = unigramBaseline(loadText());
    process.stdout.write(`held-out cross-entropy: ${r.testLoss.toFixed(4)} nats/char over ${r.testLossItems} held-out characters\n`);
    process.stdout.write(`unigram baseline: ${base.toFixed(4)} nats/char; held-out / baseline = ${((100 * r.testLoss) / base).toFixed(1)}%\n`);
  } else {
    const loss = programs.train.loss ?? 'loss';
    process.stdout.write(`held-out loss: ${r.testLoss.toFixed(4)} (the "${loss}" output, the mean over ${r.testLossItems} held-out digits: the full batches)\n`);
  }
  const report = str(args, 'report');
  if (report) {
    const flag = (k: string, dflt: string) => str(args, k) ?? dflt;
    writeReport(report, {
      model: programs.name, createdAt: new Date().toISOString(), adapter: adapterInfo(device), result: r, train: programs.train, forward: programs.forward,
      ...(r.accuracy !== undefined ? { accuracyOf: dataName === 'mnist' ? `${loadMnist().test.n.toLocaleString('en-US')} held-out digits` : 'the next character, top 1' } : {}),
      ...(dataName === 'text' ? { notes: [`Held-out cross-entropy ${r.testLoss.toFixed(4)} nats/char; the unigram baseline is ${unigramBaseline(loadText()).toFixed(4)}.`] } : {}),
      settings: [
        ['model', path], ['data', dataName], ['epochs', String(epochs)], ['steps per epoch', flag('steps-per-epoch', 'all batches')],
        ['batch', String(programs.train.inputs[0]?.shape[0] ?? '?')], ['optimizer', optimizerOf(programs.train)], ['seed', flag('seed', '0')],
        ['loss read back', `every ${flag('read-every', '10')} steps`], ['initial weights', flag('init', `seeded initialization`)],
        ['checkpoint', flag('checkpoint', 'none')], ['command', ['adjoint', ...commandLine].map((a) => (/^[\w./@:=-]+$/.test(a) ? a : JSON.stringify(a))).join(' ')], ['Node.js', process.version],
      ],
    });
    process.stdout.write(`report: ${report}\n`);
  }
}

/** The string flags named, those given. */
function pick<K extends string>(args: Parsed, keys: readonly K[]): { [k in K]?: string } {
  const out: { [k in K]?: string } = {};
  for (const k of keys) {
    const v = str(args, k);
    if (v !== undefined) out[k] = v;
  }
  return out;
}

/** import: an ONNX model as an adjoint model file and a weights file (src/onnx). */
async function runImport(args: Parsed): Promise<void> {
  const path = onePath('import', args, 'an ONNX file');
  const shape = args.values.shape;
  await onnxImportCommand(path, {
    ...pick(args, ['out', 'loss', 'labels', 'output', 'optimizer']),
    ...(Array.isArray(shape) ? { shape } : {}),
    ...(args.values['train-constants'] === true ? { 'train-constants': true } : {}),
  });
}

/** export: the weights of a checkpoint, or a model's initial ones, as safetensors. */
async function runExport(args: Parsed): Promise<void> {
  const path = onePath('export', args, 'a checkpoint, a model file or an artifact directory');
  const onnx = str(args, 'onnx');
  if (onnx !== undefined) {
    if (str(args, 'out') !== undefined) throw new UsageError('export writes either safetensors weights (-o) or an ONNX model (--onnx), not both');
    return onnxExportCommand(path, { onnx, ...pick(args, ['checkpoint', 'seed', 'outputs']) }, loadModelFile);
  }
  for (const k of ['checkpoint', 'outputs']) if (str(args, k) !== undefined) throw new UsageError(`--${k} goes with --onnx (safetensors export: adjoint export --help)`);
  const out = str(args, 'out');
  if (!out) throw new UsageError('export needs a checkpoint, model or artifact directory and -o <weights.safetensors>');
  if (!existsSync(path)) throw new UsageError(`${path}: no such file or directory`);
  /** The training program of a model file or artifact directory: its parameters' names, shapes and inits. */
  const trainOf = async (p: string): Promise<Artifact> => {
    if (!existsSync(p)) throw new UsageError(`${p}: no such file or directory`);
    const t = statSync(p).isDirectory() ? loadBundleDir(p).train : compile(await loadModelFile(p)).train;
    if (!t) throw new UsageError(`${p}: the model has no training program, so no parameters to export`);
    return t;
  };
  let w: CheckpointData;
  if (statSync(path).isDirectory() || ['.json', '.ts', '.js', '.mjs'].includes(extname(path))) {
    const a = await trainOf(path);
    const seed = intFlag(args, 'seed', 0)!;
    w = { step: 0, model: a.name, params: a.params.map((p) => p.name), shapes: new Map(a.params.map((p) => [p.name, p.shape])),
      tensors: new Map(a.params.map((p) => [p.name, initTensor(p.init, p.shape, p.dtype, seed, p.name)])) };
  } else {
    const file = loadWeightsFile(path);
    const model = str(args, 'model');
    if (model) {
      // Checked against the model, and shaped by it (an old ADJCKPT1 file has no shapes).
      const a = await trainOf(model);
      const { params: _all, ...rest } = weightsOf(file);
      w = { ...rest, params: a.params.map((p) => p.name), tensors: matchTensors(file, a.params, path), shapes: new Map(a.params.map((p) => [p.name, p.shape])) };
    } else if (file.kind === 'adjckpt1') {
      throw new UsageError(`${path}: an old ADJCKPT1 checkpoint has no shapes: add --model <model|artifact-dir> to export it (resuming training from it with --checkpoint also rewrites it as safetensors)`);
    } else w = weightsOf(file);
  }
  saveCheckpointFile(out, w, 'weights');
  const values = [...w.tensors.values()].reduce((n, t) => n + t.length, 0);
  process.stdout.write(`wrote ${out}: ${w.tensors.size} tensors, ${values.toLocaleString('en-US')} values (${w.model ?? 'weights'}, step ${w.step})\n`);
}

// ---- The command table: one entry per command (summary, usage, description, flags, handler). ----
const COMMANDS: Readonly<Record<string, Command>> = {
  compile: {
    summary: 'compile a model to an artifact directory (manifest.json + WGSL)',
    usage: 'compile <model.json|model.ts|model.js> -o <dir> [flags]',
    description: `Compiles a model (the JSON format of docs/model-format.md, or a module whose default export
is a Model) to an artifact directory: manifest.json and one .wgsl file per shader, loadable
by \`adjoint train\` and by the runtime alone (adjoint/runtime). The directory ends up holding
exactly the new artifact: it is written beside <dir> and renamed over it. An existing <dir>
that holds anything but an adjoint artifact is refused (exit 2), never overwritten.`,
    flags: {
      out: { type: 'string', short: 'o', arg: '<dir>', help: 'the artifact directory to write (required)' },
      'device-limits': { type: 'boolean', help: "compile for this machine's adapter limits instead of WebGPU's defaults" },
    },
    run: runCompile,
  },
  inspect: {
    summary: "print a model's or an artifact's kernels, dispatches and memory; the IR after a pass",
    usage: 'inspect <model file | artifact dir> [--dump <stage>|all]',
    description: `Compiles a model file (or reads an artifact directory written by \`adjoint compile\`) and
prints, for the training step and the forward program: dispatches per step, shaders,
buffer sizes, the memory figures below, and each kernel with its grid.

${MEMORY_HELP}`,
    flags: {
      dump: { type: 'string', arg: '<stage>', help: `print the result of that compiler stage ("all": of every stage): the IR after a graph pass, the plan, kernels, WGSL or artifact after a later one; model files only. Stages: ${STAGE_NAMES.join(', ')}` },
    },
    run: runInspect,
  },
  train: {
    summary: 'train a model file or an artifact on MNIST or text on the WebGPU adapter',
    usage: 'train <model file | artifact dir> [--data mnist|text] [--epochs N] [flags]',
    description: `Trains on this machine's WebGPU adapter (one queue.submit per step), then prints the
held-out loss and accuracy (evaluated with the forward program, the eval mode) and, with
--report, writes a self-contained HTML training report. MNIST: the fixed 8,000/2,000 split of
the mnist package's digits; text: models/data/moby-dick.txt, the last 10% held out.`,
    flags: {
      data: { type: 'string', arg: '<name>', help: 'the data set: mnist (default) or text' },
      epochs: { type: 'string', arg: '<N>', help: 'passes over the training set (default 1)' },
      seed: { type: 'string', arg: '<N>', help: 'seed of the initial weights and the shuffling (default 0)' },
      'steps-per-epoch': { type: 'string', arg: '<N>', help: 'stop each epoch after N steps' },
      'read-every': { type: 'string', arg: '<N>', help: 'read the loss back every N steps' },
      checkpoint: { type: 'string', arg: '<file.safetensors>', help: 'resume from this checkpoint if it exists; save to it after each epoch (safetensors)' },
      init: { type: 'string', arg: '<weights.safetensors>', help: 'start from these weights (names and shapes checked against the model)' },
      report: { type: 'string', arg: '<file.html>', help: 'write a self-contained HTML training report (losses, accuracy, speed, kernels, settings)' },
      'no-tune': { type: 'boolean', help: "run every kernel's default variant (no tuning in the background, no tuning cache)" },
    },
    run: runTrain,
  },
  tune: {
    summary: "time every kernel's variants on this device and cache the choices",
    usage: 'tune <model file | artifact dir> [--cache <file>] [--force]',
    description: `Loads the programs of a model (compiled for this adapter's limits) or an artifact directory,
times each kernel's variants on this adapter (timestamp queries where offered, else the wall
clock) and stores the choices in the tuning cache, keyed by the adapter, its limits, the
compiler version and the kernel, so a later load does no tuning. Prints per kernel the variants,
their times and the choice. The cache: --cache, else ADJOINT_TUNE_CACHE, else
$XDG_CACHE_HOME/adjoint/tune.json or ~/.cache/adjoint/tune.json. (train tunes the same way in
the background while it steps; tune does it ahead of time and waits for it.)`,
    flags: {
      cache: { type: 'string', arg: '<file>', help: 'the tuning cache file to fill' },
      force: { type: 'boolean', help: 'time again even the kernels the cache knows' },
    },
    run: runTune,
  },
  profile: {
    summary: "time each kernel of a step on this device: where the step's time goes",
    usage: 'profile <model file | artifact dir> [--forward] [--steps N] [--rounds N] [--cache <file>]',
    description: `Loads the training step of a model (compiled for this adapter's limits) or an artifact
directory, with the variants the tuning cache chose (tuning first the kernels it lacks, as
\`adjoint tune\` does), the parameters initialized (seed 0) and the inputs zero. Times whole
steps, then each dispatch alone on the program's own buffers (timestamp queries where offered,
else the wall clock; the median of several rounds), and prints the kernels slowest first: time
per dispatch, share of the kernels' sum, the variant run, the grid and the ops fused into it.
A step takes longer than its kernels' sum by the gaps between dispatches and the submit.`,
    flags: {
      forward: { type: 'boolean', help: 'profile the forward program instead of the training step' },
      steps: { type: 'string', arg: '<N>', help: 'whole steps timed (default 5, after one warm-up step)' },
      rounds: { type: 'string', arg: '<N>', help: 'rounds of timing each kernel (default 5)' },
      cache: { type: 'string', arg: '<file>', help: 'the tuning cache file (as for tune)' },
    },
    run: runProfile,
  },
  import: {
    summary: 'read an ONNX model into an adjoint model file and a safetensors weights file',
    usage: 'import <model.onnx> -o <model.json> [flags]',
    description: `Reads an ONNX model (86 operators at their opsets; docs/onnx.md) and writes it as an adjoint
model (docs/model-format.md) and, beside it, <model>.safetensors with the imported weights.
With --loss (and --labels, --optimizer) the model is trainable:
  adjoint train <model.json> --init <model>.safetensors
An unsupported operator, a dynamic shape (give it with --shape) or a file that is not ONNX is
refused with one line naming the node, its operator and the opset (exit 2).`,
    flags: {
      out: { type: 'string', short: 'o', arg: '<model.json>', help: 'the model file to write (required); the weights go beside it' },
      shape: { type: 'string', multiple: true, arg: '<name=d1,d2,...>', help: 'the static shape of an input whose shape is dynamic (repeatable)' },
      loss: { type: 'string', arg: '<kind>', help: 'add a loss: softmax-cross-entropy or mse' },
      labels: { type: 'string', arg: '<name>', help: 'the name of the loss\'s labels input (default y)' },
      output: { type: 'string', arg: '<name>', help: 'the graph value the loss reads (e.g. the logits before a final Softmax)' },
      optimizer: { type: 'string', arg: '<kind:k=v,...>', help: 'the optimizer, e.g. adam:lr=0.001 or sgd:lr=0.1,momentum=0.9' },
      'train-constants': { type: 'boolean', help: 'train the float constants too (default: only initializers are parameters)' },
    },
    run: runImport,
  },
  export: {
    summary: 'write the weights as a safetensors file, or the forward graph as an ONNX model',
    usage: 'export <checkpoint | model file | artifact dir> (-o <weights.safetensors> | --onnx <model.onnx>) [flags]',
    description: `Writes the parameters as a safetensors file that PyTorch, Hugging Face safetensors, candle
and others read. From a checkpoint: its trained weights (an old ADJCKPT1 checkpoint needs
--model for the shapes). From a model file or an artifact directory: its seeded initial weights.
With --onnx <file>: the forward graph of a model file at opset 17, its weights from --checkpoint
(a checkpoint or weights file) or the seeded initialization, as initializers.`,
    flags: {
      onnx: { type: 'string', arg: '<model.onnx>', help: 'write the model\'s forward graph as ONNX (opset 17) instead' },
      checkpoint: { type: 'string', arg: '<file.safetensors>', help: 'with --onnx: the weights to write (a checkpoint or weights file)' },
      outputs: { type: 'string', arg: '<a,b>', help: 'with --onnx: the outputs to export (default: every output but the loss)' },
      out: { type: 'string', short: 'o', arg: '<weights.safetensors>', help: 'the file to write (required)' },
      model: { type: 'string', arg: '<model|artifact-dir>', help: 'check (and shape) the checkpoint\'s tensors against this model' },
      seed: { type: 'string', arg: '<N>', help: 'seed of the initial weights, for a model or artifact (default 0)' },
    },
    run: runExport,
  },
};

/**
 * Flags every command takes (listed in each command's help); `apply` runs with the flag's value
 * before the command does (e.g. choosing the WebGPU adapter). Empty until one is needed.
 */
const GLOBAL_FLAGS: Readonly<Record<string, Flag & { readonly apply: (value: string | boolean) => void }>> = {
  adapter: {
    type: 'string',
    arg: '<name>',
    help: `the WebGPU adapter: ${ADAPTER_NAMES.join(', ')} or a Vulkan ICD manifest *.json (also ADJOINT_ADAPTER; default: the first the machine offers)`,
    apply: (v) => {
      try {
        selectAdapter(String(v));
      } catch (e) {
        // A name that is no adapter is a usage error; a missing driver shows at getDevice (exit 1).
        throw e instanceof DeviceError ? new UsageError(e.message) : e;
      }
    },
  },
};

function mainHelp(): string {
  const w = Math.max(...Object.keys(COMMANDS).map((k) => k.length));
  return [
    `adjoint ${version()}: compiles static model graphs to fused WGSL training pipelines on WebGPU`,
    '',
    'usage: adjoint <command> [flags]',
    '',
    'commands:',
    ...Object.entries(COMMANDS).map(([k, c]) => `  ${k.padEnd(w)}  ${c.summary}`),
    '',
    'adjoint <command> --help   the command\'s flags',
    'adjoint --version          the version',
    '',
    EXIT_CODES,
  ].join('\n') + '\n';
}

function commandHelp(name: string, c: Command): string {
  const rows = Object.entries({ ...c.flags, ...GLOBAL_FLAGS }).map(([k, f]) => [`${f.short ? `-${f.short}, ` : '    '}--${k}${f.arg ? ` ${f.arg}` : ''}`, f.help] as const);
  rows.push(['-h, --help', 'this help']);
  const w = Math.max(...rows.map((r) => r[0].length));
  return [`usage: adjoint ${c.usage}`, '', c.description, '', 'flags:', ...rows.map(([a, h]) => `  ${a.padEnd(w)}  ${h}`), '', EXIT_CODES].join('\n') + '\n';
}

/** Parses a command's flags with node:util's parseArgs; a bad flag is one line naming it. */
function parseFlags(name: string, c: Command, argv: readonly string[]): Parsed {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = { help: { type: 'boolean', short: 'h' } };
  for (const [k, f] of Object.entries({ ...c.flags, ...GLOBAL_FLAGS })) options[k] = { type: f.type, ...(f.short ? { short: f.short } : {}), ...(f.multiple ? { multiple: true } : {}) };
  // strict: false so that the tokens come back and each problem gets its own line below.
  const { values, positionals, tokens } = parseArgs({ args: [...argv], options, strict: false, allowPositionals: true, tokens: true });
  for (const t of tokens) {
    if (t.kind !== 'option') continue;
    const spec = Object.hasOwn(options, t.name) ? options[t.name] : undefined;
    if (!spec) throw new UsageError(`unknown flag ${t.rawName} for ${name} (adjoint ${name} --help)`);
    const missing = t.value === undefined || (!t.inlineValue && t.value.startsWith('-') && t.value !== '-');
    if (spec.type === 'string' && missing) throw new UsageError(`flag ${t.rawName} needs a value`);
    if (spec.type === 'boolean' && t.value !== undefined) throw new UsageError(`flag ${t.rawName} takes no value`);
  }
  return { positionals, values };
}

/** The exit code of an error: 2 for usage and model errors, 1 for failures (see EXIT_CODES). */
function exitCode(e: unknown): 1 | 2 {
  if (!(e instanceof AdjointError) || e instanceof DeviceError || e.message.startsWith('internal:')) return 1;
  return 2;
}

/** The command line being run (without `node adjoint`), for the training report's settings. */
let commandLine: readonly string[] = [];

/** Runs the command line `argv` (without `node adjoint`); returns the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  commandLine = argv;
  const [cmd, ...rest] = argv;
  try {
    if (cmd === undefined) {
      process.stderr.write(mainHelp());
      return 2;
    }
    if (cmd === '--help' || cmd === '-h' || cmd === 'help') {
      const sub = rest[0] !== undefined && Object.hasOwn(COMMANDS, rest[0]) ? rest[0] : undefined;
      process.stdout.write(sub ? commandHelp(sub, COMMANDS[sub]!) : mainHelp());
      return 0;
    }
    if (cmd === '--version' || cmd === '-v') {
      process.stdout.write(`${version()}\n`);
      return 0;
    }
    const c = Object.hasOwn(COMMANDS, cmd) ? COMMANDS[cmd] : undefined;
    if (!c) throw new UsageError(`unknown command "${cmd}" (commands: ${Object.keys(COMMANDS).join(', ')}; adjoint --help)`);
    const args = parseFlags(cmd, c, rest);
    if (args.values.help) {
      process.stdout.write(commandHelp(cmd, c));
      return 0;
    }
    for (const [k, f] of Object.entries(GLOBAL_FLAGS)) {
      const v = args.values[k];
      if (v !== undefined && !Array.isArray(v)) f.apply(v as string | boolean);
    }
    await c.run(args);
    return 0;
  } catch (e) {
    if (process.env.ADJOINT_DEBUG) throw e;
    const msg = e instanceof Error ? e.message : String(e);
    process.stderr.write(`adjoint: ${msg.split('\n')[0]}\n`);
    return exitCode(e);
  }
}
