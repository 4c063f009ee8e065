/**
 * @file The ONNX commands of the command line, one function each (wired into src/cli.ts):
 *
 *   adjoint import model.onnx -o model.json [--shape x=1,3,28,28] [--loss softmax-cross-entropy|mse]
 *       [--labels y] [--output name] [--optimizer adam:lr=0.001] [--train-constants]
 *   adjoint export <model.json|model.ts> --onnx out.onnx [--checkpoint file] [--seed N] [--outputs a,b]
 *
 * `import` writes the model and, beside it, `<model>.safetensors`: a weights file with the imported
 * parameters (and the non-trainable tensors, e.g. batch-norm statistics, as further tensors), which
 * `adjoint train <model.json> --init <model>.safetensors` starts from. `export` writes the forward
 * graph with a checkpoint's or weights file's tensors (or the seed's initialization) as
 * initializers. The flags are parsed by src/cli.ts's command table. User errors are
 * AdjointErrors: one line, exit 2.
 */
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { modelToJson } from '../ir/serialize.js';
import type { Model } from '../ir/model.js';
import { initTensor } from '../runtime/init.js';
import { loadWeightsFile, saveCheckpointFile } from '../train/checkpoint-file.js';
import { OnnxError } from './proto.js';
import { importOnnx } from './import.js';
import { onnxModel, parseOptimizer, LOSSES, type LossKind } from './model.js';
import { exportOnnx, EXPORT_OPSET } from './export.js';

/** `--shape x=1,3,28,28` (repeatable) -> { x: [1, 3, 28, 28] }. */
function parseShapes(list: readonly string[] | undefined): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const s of list ?? []) {
    const m = /^([^=]+)=(\d+(?:,\d+)*)$/.exec(s);
    if (!m) throw new OnnxError(`--shape: "${s}" is not name=d1,d2,... with whole numbers`);
    const dims = m[2]!.split(',').map(Number);
    if (dims.some((d) => d < 1)) throw new OnnxError(`--shape: "${s}": sizes must be >= 1`);
    out[m[1]!] = dims;
  }
  return out;
}

const weightsPath = (jsonPath: string) => jsonPath.replace(/\.json$/, '') + '.safetensors';

/** The flags of `adjoint import` (parsed by src/cli.ts). */
export interface ImportFlags {
  readonly out?: string;
  readonly shape?: readonly string[];
  readonly loss?: string;
  readonly labels?: string;
  readonly output?: string;
  readonly optimizer?: string;
  readonly 'train-constants'?: boolean;
}

export async function onnxImportCommand(path: string, flags: ImportFlags, log = (s: string) => process.stdout.write(s + '\n')): Promise<void> {
  const a = { values: flags };
  const out = flags.out;
  if (!out) throw new OnnxError('import needs an ONNX file and -o <model.json>');
  if (!out.endsWith('.json')) throw new OnnxError(`-o ${out}: the model is written as JSON (give a .json name)`);
  if (!existsSync(path)) throw new OnnxError(`${path}: no such file`);
  if (statSync(path).isDirectory()) throw new OnnxError(`${path} is a directory, not an ONNX file`);
  const loss = a.values.loss;
  if (loss !== undefined && !(LOSSES as readonly string[]).includes(loss)) throw new OnnxError(`--loss: "${loss}" is not a loss (${LOSSES.join(', ')})`);
  if (loss === undefined && (a.values.optimizer || a.values.labels)) throw new OnnxError('--optimizer and --labels need --loss');
  const bytes = readFileSync(path);
  const shapes = parseShapes(a.values.shape);
  const trainConstants = a.values['train-constants'] ?? false;
  let imp = importOnnx(bytes, { where: path, shapes, trainConstants });
  // --output may name any value of the graph (the logits before a final Softmax): add it.
  const want = a.values.output;
  if (want !== undefined && !imp.outputs.some((o) => o.name === want || o.onnxName === want)) {
    imp = importOnnx(bytes, { where: path, shapes, trainConstants, outputs: [...imp.outputs.map((o) => o.onnxName), want] });
  }
  const net = onnxModel(imp, {
    ...(loss ? { loss: loss as LossKind } : {}),
    ...(a.values.labels ? { labels: a.values.labels } : {}),
    ...(a.values.output ? { output: a.values.output } : {}),
    ...(a.values.optimizer ? { optimizer: parseOptimizer(a.values.optimizer) } : {}),
  });
  const model = { ...net, name: basename(out, '.json') };
  writeFileSync(out, JSON.stringify(modelToJson(model), null, 1) + '\n');
  const ops = [...imp.ops].sort((p, q) => q[1] - p[1]).map(([k, n]) => `${k} ${n}`).join(', ');
  log(`wrote ${out}: ${imp.inputs.length} inputs, ${imp.params.length} params, ${imp.state.length} constants, opset ${imp.opset} (${ops})`);
  // Every param and state with its value (a uniform one's init gives it): the parameters are the
  // file's params, the non-trainable tensors (batch-norm statistics, constants) further tensors.
  const all = [...imp.params, ...imp.state];
  const tensors = new Map(all.map((t) => {
    const v = imp.values.get(t.name);
    return [t.name, v === undefined ? initTensor(t.init, t.shape, t.dtype, 0, t.name) : t.dtype === 'i32' && !(v instanceof Int32Array) ? Int32Array.from(v) : v] as const;
  }));
  const wp = weightsPath(out);
  saveCheckpointFile(wp, {
    step: 0, model: model.name, params: imp.params.map((t) => t.name), tensors,
    shapes: new Map(all.map((t) => [t.name, t.shape])), meta: { source: basename(path) },
  }, 'weights');
  const n = [...tensors.values()].reduce((s, v) => s + v.length, 0);
  log(`wrote ${wp}: the imported weights (${n} values); start from them with --init ${wp}`);
}

/** The forward graph's weights: from a checkpoint, or each param's and state's init at `seed`. */
function weightsOf(model: Model, checkpoint: string | undefined, seed: number): Map<string, Float32Array | Int32Array> {
  const w = new Map<string, Float32Array | Int32Array>();
  for (const n of model.graph.nodes) {
    if (n.op !== 'param' && n.op !== 'state') continue;
    w.set(n.attrs.name, initTensor(n.attrs.init, n.attrs.shape, n.attrs.dtype, seed, n.attrs.name));
  }
  if (checkpoint) {
    const c = loadWeightsFile(checkpoint);
    for (const [name, t] of c.tensors) if (w.has(name)) w.set(name, t);
  }
  return w;
}

/** The flags of `adjoint export --onnx` (parsed by src/cli.ts). */
export interface OnnxExportFlags {
  readonly onnx: string;
  readonly checkpoint?: string;
  readonly seed?: string;
  readonly outputs?: string;
}

export async function onnxExportCommand(path: string, flags: OnnxExportFlags, loadModelFile: (p: string) => Promise<Model>, log = (s: string) => process.stdout.write(s + '\n')): Promise<void> {
  const a = { values: flags };
  const out = flags.onnx;
  if (existsSync(path) && statSync(path).isDirectory()) throw new OnnxError(`${path}: an artifact holds kernels, not the graph; export the model file it was compiled from (with --checkpoint for trained weights)`);
  const seed = a.values.seed === undefined ? 0 : Number(a.values.seed);
  if (!Number.isInteger(seed) || seed < 0) throw new OnnxError(`--seed takes a whole number, got "${a.values.seed}"`);
  const model = await loadModelFile(path);
  const outputs = a.values.outputs?.split(',') ?? model.graph.outputs.map((o) => o.name).filter((n) => n !== model.loss);
  const bytes = exportOnnx(model.graph, weightsOf(model, a.values.checkpoint, seed), { name: model.name, outputs: outputs.length ? outputs : undefined });
  writeFileSync(out, bytes);
  log(`wrote ${out}: opset ${EXPORT_OPSET}, outputs ${outputs.join(', ') || 'all'}, weights from ${a.values.checkpoint ?? `the initialization at seed ${seed}`}`);
}
