/**
 * @file The benchmark workloads as adjoint IR models (forward graph + loss + SGD config), built with
 * the IR's GraphBuilder from the same definitions as the peers (workloads.ts). Two users: the
 * adjoint library (bench/adjoint.ts) compiles these, and the harness evaluates them with the
 * reference interpreter to get each workload's first-step loss independently of every GPU library.
 * Inputs are `x` (canonical layout) and `y` (i32 labels, or the f32 regression target); the
 * output is `loss`.
 */
import { compile } from '../src/compile.js';
import { GraphBuilder, type Value } from '../src/ir/builder.js';
import { assertNever } from '../src/ir/errors.js';
import type { Init } from '../src/ir/ops.js';
import type { Model } from '../src/ir/model.js';
import type { Tensor } from '../src/ir/tensor.js';
import { tensor } from '../src/ir/tensor.js';
import type { Batch, LenetWorkload, MlpWorkload, ParamSpec, TransformerWorkload, Workload } from './workloads.js';
import { inputShape } from './workloads.js';

function initOf(p: ParamSpec): Init {
  return { kind: p.init };
}

function declareParams(b: GraphBuilder, w: Workload): Map<string, Value> {
  return new Map(w.params.map((p) => [p.name, b.param(p.name, [...p.shape], initOf(p))]));
}

function get(params: ReadonlyMap<string, Value>, name: string): Value {
  const v = params.get(name);
  if (!v) throw new Error(`internal: no parameter ${name}`);
  return v;
}

function mlp(b: GraphBuilder, w: MlpWorkload, ps: ReadonlyMap<string, Value>): Value {
  let h = b.input('x', inputShape(w));
  const layers = w.sizes.length - 1;
  for (let i = 1; i <= layers; i++) {
    h = b.linear(h, get(ps, `w${i}`), get(ps, `b${i}`));
    if (i < layers) h = b.relu(h);
  }
  return b.softmaxCrossEntropy(h, b.input('y', [w.batch], 'i32'));
}

function lenet(b: GraphBuilder, w: LenetWorkload, ps: ReadonlyMap<string, Value>): Value {
  const x = b.input('x', inputShape(w));
  const pool = { kernel: [2, 2], stride: [2, 2] } as const;
  let h = b.maxPool2d(b.relu(b.conv2d(x, get(ps, 'c1'), { padding: [2, 2] })), pool);
  h = b.maxPool2d(b.relu(b.conv2d(h, get(ps, 'c2'))), pool);
  h = b.reshape(h, [w.batch, 400]);
  h = b.relu(b.linear(h, get(ps, 'w3'), get(ps, 'b3')));
  h = b.relu(b.linear(h, get(ps, 'w4'), get(ps, 'b4')));
  return b.softmaxCrossEntropy(b.linear(h, get(ps, 'w5'), get(ps, 'b5')), b.input('y', [w.batch], 'i32'));
}

function transformer(b: GraphBuilder, w: TransformerWorkload, ps: ReadonlyMap<string, Value>): Value {
  const { batch: bs, seq: t, dModel: d, heads } = w;
  const dh = d / heads;
  const rows = bs * t;
  const p = (name: string): Value => get(ps, name);
  const x = b.reshape(b.input('x', inputShape(w)), [rows, d]);
  const splitHeads = (v: Value): Value => b.transpose(b.reshape(v, [bs, t, heads, dh]), [0, 2, 1, 3]);
  const a = b.layerNorm(x, p('ln1_g'), p('ln1_b'));
  const q = splitHeads(b.linear(a, p('wq'), p('bq')));
  const k = splitHeads(b.linear(a, p('wk'), p('bk')));
  const v = splitHeads(b.linear(a, p('wv'), p('bv')));
  const att = b.reshape(b.transpose(b.attention(q, k, v, true), [0, 2, 1, 3]), [rows, d]);
  const h = b.add_(x, b.linear(att, p('wo'), p('bo')));
  const f = b.gelu(b.linear(b.layerNorm(h, p('ln2_g'), p('ln2_b')), p('w1'), p('b1')));
  const y = b.add_(h, b.linear(f, p('w2'), p('b2')));
  return b.mse(y, b.reshape(b.input('y', inputShape(w)), [rows, d]));
}

/** The workload as an adjoint model: forward graph with output `loss`, plain SGD at the workload's lr. */
export function workloadModel(w: Workload): Model {
  const b = new GraphBuilder();
  const ps = declareParams(b, w);
  let loss: Value;
  switch (w.kind) {
    case 'mlp':
      loss = mlp(b, w, ps);
      break;
    case 'lenet':
      loss = lenet(b, w, ps);
      break;
    case 'transformer':
      loss = transformer(b, w, ps);
      break;
    default:
      return assertNever(w, 'workload');
  }
  b.output('loss', loss);
  return { name: w.id, graph: b.build(), loss: 'loss', optimizer: { kind: 'sgd', lr: w.lr, momentum: 0, weightDecay: 0 } };
}

/** The interpreter environment for one batch: params by name, `x` and `y`. */
export function workloadEnv(w: Workload, params: ReadonlyMap<string, Float32Array>, batch: Batch, precision: 'f32' | 'f64'): Map<string, Tensor> {
  const env = new Map<string, Tensor>();
  for (const p of w.params) {
    const value = params.get(p.name);
    if (!value) throw new Error(`internal: no initial value for ${p.name}`);
    env.set(p.name, tensor(p.shape, value, 'f32', precision));
  }
  env.set('x', tensor(inputShape(w), batch.x, 'f32', precision));
  env.set('y', batch.kind === 'class' ? tensor([w.batch], batch.labels, 'i32') : tensor(inputShape(w), batch.target, 'f32', precision));
  return env;
}

/**
 * Multiply-add FLOPs (2 per multiply-add) of one training step of the workload: every matmul of the
 * compiled training program (forward, backward; the convolutions and their gradients are matmuls
 * over index arithmetic), counted from its kernels' m x n x k and batch. The elementwise work,
 * reductions and the update are left out: this is the work an FMA ceiling bounds.
 */
export function stepFlops(w: Workload): number {
  let flops = 0;
  compile(workloadModel(w), {
    dump: (stage, _text, program, work) => {
      if (stage !== 'schedule' || program !== 'train') return;
      flops = 0;
      for (const k of work.kernels ?? []) {
        if (k.body.kind === 'matmul') flops += 2 * k.body.m * k.body.n * k.body.k * k.body.batch.reduce((a, b) => a * b, 1);
      }
    },
  });
  return flops;
}
