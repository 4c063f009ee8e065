/**
 * @file The jax-js peer: every workload in `@jax-js/jax` on its `webgpu` device (Dawn through
 * `navigator.gpu`, see ../gpu.ts). A step is one `jit`-compiled function of (params, x, y) that
 * runs `valueAndGrad` of the loss and returns the loss and the SGD-updated parameters, the way
 * jax-js's own MNIST demo trains. jax-js arrays are reference-counted: every function consumes its
 * array arguments, so a value used twice is passed once as `.ref` (see its README).
 */
import type * as JAX from '@jax-js/jax';
import { assertNever } from '../../src/ir/errors.js';
import { installGpu } from '../gpu.js';
import { NotAvailableError, paramValue, type Library, type Session } from '../library.js';
import type { Batch, LenetWorkload, MlpWorkload, TransformerWorkload, Workload } from '../workloads.js';
import { causalBias, inputShape } from '../workloads.js';

type Jax = typeof JAX;
type Arr = JAX.Array;
type Params = { [name: string]: Arr };
/** loss(params, x, y) where y is the labels (int32) or the regression target. */
type LossFn = (params: Params, x: Arr, y: Arr) => Arr;

let loaded: Promise<Jax> | null = null;

/** Imports jax-js after navigator.gpu exists and makes `webgpu` the default device (once). */
async function loadJax(): Promise<Jax> {
  await installGpu();
  const jax = await import('@jax-js/jax');
  const devices = await jax.init('webgpu');
  if (!devices.includes('webgpu')) throw new NotAvailableError(`jax-js found no webgpu device (has: ${devices.join(', ') || 'none'})`);
  jax.defaultDevice('webgpu');
  return jax;
}

function p(params: Params, name: string): Arr {
  const x = params[name];
  if (!x) throw new Error(`internal: no parameter ${name}`);
  return x;
}

/** mean over the batch of -sum(onehot(labels) * log_softmax(logits)); consumes both. */
function crossEntropy(jax: Jax, logits: Arr, labels: Arr): Arr {
  const depth = logits.shape.at(-1) ?? 0;
  return jax.nn.logSoftmax(logits).mul(jax.nn.oneHot(labels, depth)).sum(-1).mean().neg();
}

function mlpLoss(jax: Jax, w: MlpWorkload): LossFn {
  const np = jax.numpy;
  return (params, x, y) => {
    let h = x;
    const layers = w.sizes.length - 1;
    for (let i = 1; i <= layers; i++) {
      h = np.matmul(h, p(params, `w${i}`)).add(p(params, `b${i}`));
      if (i < layers) h = jax.nn.relu(h);
    }
    return crossEntropy(jax, h, y);
  };
}

function lenetLoss(jax: Jax, w: LenetWorkload): LossFn {
  const { numpy: np, lax, nn } = jax;
  const pool = (x: Arr): Arr => lax.reduceWindow(x, np.max, [2, 2], [2, 2]);
  return (params, x, y) => {
    let h = pool(nn.relu(lax.convGeneralDilated(x, p(params, 'c1'), [1, 1], [[2, 2], [2, 2]])));
    h = pool(nn.relu(lax.convGeneralDilated(h, p(params, 'c2'), [1, 1], 'VALID')));
    h = h.reshape([w.batch, 400]);
    h = nn.relu(np.matmul(h, p(params, 'w3')).add(p(params, 'b3')));
    h = nn.relu(np.matmul(h, p(params, 'w4')).add(p(params, 'b4')));
    return crossEntropy(jax, np.matmul(h, p(params, 'w5')).add(p(params, 'b5')), y);
  };
}

function transformerLoss(jax: Jax, w: TransformerWorkload, mask: Arr): LossFn {
  const np = jax.numpy;
  const { batch: bs, seq: t, dModel: d, heads } = w;
  const dh = d / heads;
  const rows = bs * t;
  const layerNorm = (x: Arr, g: Arr, b: Arr): Arr => {
    const xc = x.ref.sub(x.mean(-1, { keepdims: true }));
    const inv = np.reciprocal(np.sqrt(np.square(xc.ref).mean(-1, { keepdims: true }).add(1e-5)));
    return xc.mul(inv).mul(g).add(b);
  };
  const splitHeads = (x: Arr): Arr => x.reshape([bs, t, heads, dh]).transpose([0, 2, 1, 3]);
  const gelu = (x: Arr): Arr => {
    const inner = x.ref.add(np.square(x.ref).mul(x.ref).mul(0.044715)).mul(Math.sqrt(2 / Math.PI));
    return x.mul(0.5).mul(np.tanh(inner).add(1));
  };
  return (params, x0, target) => {
    const x = x0.reshape([rows, d]);
    const a = layerNorm(x.ref, p(params, 'ln1_g'), p(params, 'ln1_b'));
    const q = splitHeads(np.matmul(a.ref, p(params, 'wq')).add(p(params, 'bq')));
    const k = splitHeads(np.matmul(a.ref, p(params, 'wk')).add(p(params, 'bk')));
    const v = splitHeads(np.matmul(a, p(params, 'wv')).add(p(params, 'bv')));
    const scores = np.matmul(q, k.transpose([0, 1, 3, 2])).mul(1 / Math.sqrt(dh)).add(mask.ref);
    const att = np.matmul(jax.nn.softmax(scores, -1), v).transpose([0, 2, 1, 3]).reshape([rows, d]);
    const h = x.add(np.matmul(att, p(params, 'wo')).add(p(params, 'bo')));
    const m = layerNorm(h.ref, p(params, 'ln2_g'), p(params, 'ln2_b'));
    const f = gelu(np.matmul(m, p(params, 'w1')).add(p(params, 'b1')));
    const out = h.add(np.matmul(f, p(params, 'w2')).add(p(params, 'b2')));
    return np.square(out.sub(target.reshape([rows, d]))).mean();
  };
}

export const jaxjs: Library = {
  name: 'jax-js',
  description: '@jax-js/jax 0.1.25, webgpu device, jit(valueAndGrad + SGD update)',
  async init() {
    loaded ??= loadJax();
    await loaded;
  },
  async setup(w: Workload, init): Promise<Session> {
    loaded ??= loadJax();
    const jax = await loaded;
    const np = jax.numpy;
    let params: Params = {};
    for (const spec of w.params) params[spec.name] = np.array(paramValue(init, spec.name), { shape: [...spec.shape] });
    const mask = w.kind === 'transformer' ? np.array(causalBias(w.seq), { shape: [w.seq, w.seq] }) : null;
    let loss: LossFn;
    switch (w.kind) {
      case 'mlp':
        loss = mlpLoss(jax, w);
        break;
      case 'lenet':
        loss = lenetLoss(jax, w);
        break;
      case 'transformer':
        loss = transformerLoss(jax, w, mask!);
        break;
      default:
        return assertNever(w, 'workload');
    }
    const lr = w.lr;
    const trainStep = jax.jit((ps: Params, x: Arr, y: Arr): [Arr, Params] => {
      const [value, grads] = jax.valueAndGrad(loss)(jax.tree.ref(ps), x, y);
      const next: Params = {};
      for (const name of Object.keys(ps)) next[name] = p(ps, name).sub(p(grads, name).mul(lr));
      return [value, next];
    });
    const xShape = inputShape(w);
    return {
      async step(batch: Batch, readLoss) {
        const x = np.array(batch.x, { shape: xShape });
        const y = batch.kind === 'class' ? np.array(batch.labels, { dtype: np.int32 }) : np.array(batch.target, { shape: xShape });
        const [value, next] = trainStep(params, x, y);
        params = next;
        if (!readLoss) {
          value.dispose();
          return undefined;
        }
        const data = await value.data();
        return data[0];
      },
      async dispose() {
        jax.tree.dispose(params);
        mask?.dispose();
        trainStep.dispose();
      },
    };
  },
};
