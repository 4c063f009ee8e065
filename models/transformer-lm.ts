/**
 * @file transformer-lm: a character-level language model. Token and position embeddings, two
 * pre-layernorm blocks of multi-head causal self-attention and a GELU MLP with residuals, a final
 * layernorm and a projection to the vocabulary; softmax cross-entropy against the next character;
 * Adam. Trained on the Moby-Dick text in models/data (`adjoint train models/transformer-lm.ts
 * --data text`).
 */
import { GraphBuilder, type Value } from '../src/ir/builder.js';
import type { Model } from '../src/ir/model.js';

export interface LmConfig {
  readonly batch: number;
  readonly seq: number;
  readonly vocab: number;
  readonly dim: number;
  readonly heads: number;
  readonly layers: number;
  readonly lr: number;
}

export const DEFAULT_LM: LmConfig = { batch: 16, seq: 64, vocab: 80, dim: 64, heads: 4, layers: 2, lr: 3e-3 };

export function transformerLm(c: LmConfig = DEFAULT_LM): Model {
  const b = new GraphBuilder();
  const { batch: B, seq: T, vocab: V, dim: D, heads: H } = c;
  const dh = D / H;
  const small = { kind: 'normal', std: 0.02 } as const;
  const tokens = b.input('tokens', [B, T], 'i32');
  const targets = b.input('targets', [B, T], 'i32');
  let x = b.add_(b.gather(b.param('tok_emb', [V, D], small), tokens), b.param('pos_emb', [T, D], small));
  const ln = (v: Value, name: string) => b.layerNorm(v, b.param(`${name}.g`, [D], { kind: 'ones' }), b.param(`${name}.b`, [D], { kind: 'zeros' }));
  /** [B,T,D] -> [B,H,T,dh] */
  const split = (v: Value) => b.transpose(b.reshape(v, [B, T, H, dh]), [0, 2, 1, 3]);
  for (let l = 0; l < c.layers; l++) {
    const p = `block${l}`;
    const h = ln(x, `${p}.ln1`);
    const [q, k, v] = ['q', 'k', 'v'].map((n) => split(b.matmul(h, b.param(`${p}.w${n}`, [D, D]))));
    const att = b.attention(q!, k!, v!, true);
    const merged = b.reshape(b.transpose(att, [0, 2, 1, 3]), [B, T, D]);
    x = b.add_(x, b.matmul(merged, b.param(`${p}.wo`, [D, D])));
    const h2 = ln(x, `${p}.ln2`);
    const up = b.gelu(b.linear(h2, b.param(`${p}.w1`, [D, 4 * D]), b.param(`${p}.b1`, [4 * D], { kind: 'zeros' })));
    x = b.add_(x, b.linear(up, b.param(`${p}.w2`, [4 * D, D]), b.param(`${p}.b2`, [D], { kind: 'zeros' })));
  }
  const logits = b.label(b.linear(ln(x, 'ln_f'), b.param('w_out', [D, V]), b.param('b_out', [V], { kind: 'zeros' })), 'logits');
  b.output('loss', b.softmaxCrossEntropy(logits, targets));
  b.output('logits', logits);
  return { name: 'transformer-lm', graph: b.build(), loss: 'loss', optimizer: { kind: 'adam', lr: c.lr, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0 } };
}

export default transformerLm;
