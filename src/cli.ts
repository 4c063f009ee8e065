/**
 * @file The `adjoint` command line: `compile` a model to an artifact directory, `inspect` a
 * model's IR after each pass and its compiled figures, `train` a model or an artifact on MNIST.
 * Every user error prints one line and exits with code 2; nothing prints a stack trace unless
 * ADJOINT_DEBUG=1.
 */
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve, extname } from 'node:path';
import { pathToFileURL } from 'node:url';
import { compile } from './compile.js';
import { AdjointError } from './ir/errors.js';
import type { Model } from './ir/model.js';
import { loadModel, modelSizeProblem } from './ir/schema.js';
import { printGraph } from './ir/printer.js';
import { bundleFiles, parseBundle, type Bundle } from './runtime/bundle.js';
import { getDevice, deviceLimits, adapterInfo, takeAdapterFlag } from './runtime/device.js';
import type { Artifact } from './runtime/artifact.js';
import { loadMnist } from './data/mnist.js';
import { mnistSource, textSource, type DataSource } from './data/source.js';
import { loadText, unigramBaseline } from './data/text.js';
import { train } from './train/trainer.js';

class UsageError extends AdjointError {
  override name = 'UsageError';
}

const USAGE = `usage:
  adjoint compile <model.json|model.ts> -o <dir>    write an artifact (manifest.json + WGSL)
  adjoint inspect <model> [--dump <pass>]            kernels, dispatches and bytes; IR after a pass
  adjoint train <model|artifact-dir> --data mnist --epochs N
        [--checkpoint <file>] [--plot <file.png>] [--seed N] [--steps-per-epoch N]
  any command: --adapter default|swiftshader|lavapipe|<icd.json>   the WebGPU adapter (also ADJOINT_ADAPTER)`;

interface Args {
  readonly positional: string[];
  readonly flags: Map<string, string>;
}

function parseArgs(argv: readonly string[], known: Record<string, 'value' | 'bool'>): Args {
  const positional: string[] = [];
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('-') || a === '-') {
      positional.push(a);
      continue;
    }
    const [key, inline] = a.replace(/^--?/, '').split('=', 2) as [string, string | undefined];
    const kind = known[key];
    if (!kind) throw new UsageError(`unknown flag ${a}`);
    if (kind === 'bool') flags.set(key, 'true');
    else {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new UsageError(`flag ${a} needs a value`);
      flags.set(key, v);
    }
  }
  return { positional, flags };
}

function intFlag(args: Args, key: string, dflt?: number): number | undefined {
  const v = args.flags.get(key);
  if (v === undefined) return dflt;
  if (!/^\d+$/.test(v)) throw new UsageError(`--${key} takes a whole number, got "${v}"`);
  return Number(v);
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
  return parseBundle((f) => {
    const p = join(dir, f);
    return existsSync(p) ? readFileSync(p, 'utf8') : undefined;
  }, dir);
}

function figures(name: string, a: Artifact): string {
  const kinds = new Map<string, number>();
  for (const d of a.dispatches) kinds.set(d.label, (kinds.get(d.label) ?? 0) + 1);
  const bytes = (role: string) => a.arenas.filter((x) => x.role === role).reduce((s, x) => s + x.bytes, 0);
  return [
    `${name}: ${a.dispatches.length} dispatches per step, ${a.shaders.length} shaders, 1 submit per step`,
    `  buffers: ${a.arenas.length}; params ${bytes('param')} B, state ${bytes('state')} B, inputs ${bytes('input')} B`,
    `  temporaries: naive ${a.memory.naiveBytes} B, lower bound ${a.memory.lowerBound} B, planned ${a.memory.plannedBytes} B (${(a.memory.plannedBytes / Math.max(1, a.memory.lowerBound)).toFixed(3)} x bound)`,
    ...a.dispatches.map((d, i) => `  k${i}: ${d.label}  grid ${d.workgroups.join('x')}`),
  ].join('\n');
}

async function cmdCompile(argv: readonly string[]): Promise<void> {
  const args = parseArgs(argv, { o: 'value', out: 'value', 'device-limits': 'bool' });
  const [path] = args.positional;
  const out = args.flags.get('o') ?? args.flags.get('out');
  if (!path || !out) throw new UsageError('compile needs a model and -o <dir>');
  const model = await loadModelFile(path);
  const limits = args.flags.has('device-limits') ? deviceLimits(await getDevice({ quiet: true })) : undefined;
  const c = compile(model, limits ? { limits } : {});
  mkdirSync(out, { recursive: true });
  for (const [f, text] of bundleFiles({ name: model.name, forward: c.forward, ...(c.train ? { train: c.train } : {}) })) writeFileSync(join(out, f), text);
  for (const d of c.diagnostics) process.stderr.write(`note: ${d}\n`);
  process.stdout.write(`wrote ${out}/manifest.json (${c.train ? 'train + forward' : 'forward'}; ${(c.train ?? c.forward).dispatches.length} dispatches per step)\n`);
}

async function cmdInspect(argv: readonly string[]): Promise<void> {
  const args = parseArgs(argv, { dump: 'value' });
  const [path] = args.positional;
  if (!path) throw new UsageError('inspect needs a model');
  const model = await loadModelFile(path);
  const want = args.flags.get('dump');
  const seen: string[] = [];
  const c = compile(model, {
    dump: (pass, g) => {
      seen.push(pass);
      if (want === pass || want === 'all') process.stdout.write(`== IR after ${pass}\n${printGraph(g)}`);
    },
  });
  if (want !== undefined && want !== 'all' && !seen.includes(want)) throw new UsageError(`--dump: no pass named "${want}" (passes: ${seen.join(', ')})`);
  process.stdout.write(`model ${model.name}: ${model.graph.nodes.length} nodes\n`);
  if (c.train) process.stdout.write(figures('train step', c.train) + '\n');
  process.stdout.write(figures('forward', c.forward) + '\n');
}

async function cmdTrain(argv: readonly string[]): Promise<void> {
  const args = parseArgs(argv, { data: 'value', epochs: 'value', checkpoint: 'value', plot: 'value', seed: 'value', 'steps-per-epoch': 'value', 'read-every': 'value' });
  const [path] = args.positional;
  if (!path) throw new UsageError('train needs a model or an artifact directory');
  const dataName = args.flags.get('data') ?? 'mnist';
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
    ...(args.flags.has('steps-per-epoch') ? { maxStepsPerEpoch: intFlag(args, 'steps-per-epoch')! } : {}),
    ...(args.flags.has('read-every') ? { readEvery: intFlag(args, 'read-every')! } : {}),
    ...(args.flags.has('checkpoint') ? { checkpoint: args.flags.get('checkpoint')! } : {}),
    plot: args.flags.get('plot') ?? `${programs.name}-loss.png`,
  });
  const last = r.losses.at(-1)?.loss;
  process.stdout.write(`trained ${programs.name}: ${r.steps} steps in ${r.seconds.toFixed(1)} s (${(r.steps / r.seconds).toFixed(1)} steps/s), final loss ${last?.toFixed(4)}\n`);
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
  process.stdout.write(`loss plot: ${args.flags.get('plot') ?? `${programs.name}-loss.png`}\n`);
}

export async function main(argv: readonly string[]): Promise<number> {
  let [cmd, ...rest] = argv;
  try {
    // --adapter applies to every command (src/runtime/device.ts selectAdapter).
    [cmd, ...rest] = takeAdapterFlag(argv);
    switch (cmd) {
      case 'compile': await cmdCompile(rest); break;
      case 'inspect': await cmdInspect(rest); break;
      case 'train': await cmdTrain(rest); break;
      case undefined: case 'help': case '--help': case '-h':
        process.stdout.write(USAGE + '\n');
        return cmd === undefined ? 2 : 0;
      default: throw new UsageError(`unknown command "${cmd}"\n${USAGE}`);
    }
    return 0;
  } catch (e) {
    if (process.env.ADJOINT_DEBUG) throw e;
    const msg = e instanceof Error ? e.message : String(e);
    const line = e instanceof UsageError && msg.includes('\n') ? msg : msg.split('\n')[0];
    process.stderr.write(`adjoint: ${line}\n`);
    return e instanceof AdjointError ? 2 : 1;
  }
}
