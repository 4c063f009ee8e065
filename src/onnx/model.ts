/**
 * @file An imported ONNX network as a trainable adjoint model: the network's graph, plus (when
 * asked) a loss on one of its outputs against a labels input and an optimizer, so `adjoint
 * import` writes a model.json that `adjoint train` runs. The imported weights travel beside it in
 * an adjoint checkpoint (step 0, epoch 0), which `adjoint train --checkpoint` starts from.
 */
import { GraphBuilder } from '../ir/builder.js';
import type { Model, OptimizerConfig } from '../ir/model.js';
import { OnnxError, type OnnxImport } from './import.js';

export const LOSSES = ['softmax-cross-entropy', 'mse'] as const;
export type LossKind = (typeof LOSSES)[number];

export interface TrainSpec {
  readonly loss?: LossKind;
  /** Name of the labels input the loss compares with (default `labels`). */
  readonly labels?: string;
  /** The network output the loss is taken on (IR or ONNX name; default the first). */
  readonly output?: string;
  readonly optimizer?: OptimizerConfig;
}

/** `adam:lr=0.001,beta1=0.9` or `sgd:lr=0.1,momentum=0.9` -> an optimizer config. */
export function parseOptimizer(text: string): OptimizerConfig {
  const [kind, rest = ''] = text.split(':', 2) as [string, string?];
  const kv = new Map<string, number>();
  for (const part of rest.split(',').filter(Boolean)) {
    const [k, v] = part.split('=', 2);
    const n = Number(v);
    if (!k || v === undefined || !Number.isFinite(n)) throw new OnnxError(`--optimizer: "${part}" is not key=number`);
    kv.set(k.trim(), n);
  }
  const take = (k: string, d: number | undefined, ok: (v: number) => boolean, what: string): number => {
    const v = kv.get(k) ?? d;
    kv.delete(k);
    if (v === undefined) throw new OnnxError(`--optimizer: ${kind} needs ${k}=<number>`);
    if (!ok(v)) throw new OnnxError(`--optimizer: ${k} must be ${what}, got ${v}`);
    return v;
  };
  const pos = (v: number) => v > 0;
  const rate = (v: number) => v >= 0 && v < 1;
  const nonneg = (v: number) => v >= 0;
  let opt: OptimizerConfig;
  if (kind === 'adam') {
    opt = { kind, lr: take('lr', undefined, pos, '> 0'), beta1: take('beta1', 0.9, rate, 'in [0, 1)'), beta2: take('beta2', 0.999, rate, 'in [0, 1)'), eps: take('eps', 1e-8, pos, '> 0'), weightDecay: take('weightDecay', 0, nonneg, '>= 0') };
  } else if (kind === 'sgd') {
    opt = { kind, lr: take('lr', undefined, pos, '> 0'), momentum: take('momentum', 0, rate, 'in [0, 1)'), weightDecay: take('weightDecay', 0, nonneg, '>= 0') };
  } else throw new OnnxError(`--optimizer: "${kind}" is not an optimizer (adam, sgd)`);
  const left = [...kv.keys()];
  if (left.length) throw new OnnxError(`--optimizer: ${kind} has no setting "${left[0]}"`);
  return opt;
}

/** The imported network as a model, with a loss and an optimizer when `spec.loss` is given. */
export function onnxModel(imp: OnnxImport, spec: TrainSpec = {}): Model {
  const b = new GraphBuilder();
  const outs = imp.build(b);
  for (const [name, v] of Object.entries(outs)) b.output(name, v);
  if (!spec.loss) return { name: imp.name, graph: b.build() };
  const pick = spec.output === undefined ? imp.outputs[0] : imp.outputs.find((o) => o.name === spec.output || o.onnxName === spec.output);
  if (!pick) throw new OnnxError(`--output: the model has no output "${spec.output}" (outputs: ${imp.outputs.map((o) => o.name).join(', ')})`);
  let y = outs[pick.name]!;
  const labelName = spec.labels ?? 'labels';
  if (imp.inputs.some((x) => x.name === labelName) || Object.hasOwn(outs, labelName)) throw new OnnxError(`--labels: "${labelName}" is already a name in the model; choose another`);
  let loss;
  if (spec.loss === 'softmax-cross-entropy') {
    // Classifiers that end in a 1x1 global pooling ([N, classes, 1, 1]) score their classes axis.
    while (y.type.shape.length > 2 && y.type.shape.at(-1) === 1) y = b.reshape(y, y.type.shape.slice(0, -1));
    if (y.type.shape.length < 2) throw new OnnxError(`--loss softmax-cross-entropy needs an output with a class axis; "${pick.name}" is [${y.type.shape.join(',')}]`);
    const labels = b.input(labelName, y.type.shape.slice(0, -1), 'i32');
    loss = b.softmaxCrossEntropy(y, labels);
    // The trainer scores accuracy on an output called "logits".
    if (!Object.hasOwn(outs, 'logits')) b.output('logits', y);
  } else {
    const labels = b.input(labelName, y.type.shape, 'f32');
    loss = b.mse(y, labels);
  }
  if (Object.hasOwn(outs, 'loss')) throw new OnnxError('the model already has an output named "loss"');
  b.output('loss', loss);
  return { name: imp.name, graph: b.build(), loss: 'loss', optimizer: spec.optimizer ?? { kind: 'adam', lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 } };
}
