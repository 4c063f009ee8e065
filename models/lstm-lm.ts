/**
 * @file lstm-lm: a character-level LSTM language model. A token embedding, one LSTM layer
 * (PyTorch's gate layout, unrolled over the window: backpropagation through time is autodiff over
 * the unrolled graph), a projection of every step's hidden state to the vocabulary; softmax
 * cross-entropy against the next character; Adam. Trained on
 * the Moby-Dick text in models/data (`adjoint train models/lstm-lm.ts --data text`). Every LSTM
 * weight starts uniform in ±1/sqrt(H), as torch.nn.LSTM's do.
 */
import { GraphBuilder } from '../src/ir/builder.js';
import type { Model } from '../src/ir/model.js';

export interface LstmLmConfig {
  readonly batch: number;
  readonly seq: number;
  readonly vocab: number;
  readonly embed: number;
  readonly hidden: number;
  readonly lr: number;
}

export const DEFAULT_LSTM_LM: LstmLmConfig = { batch: 32, seq: 32, vocab: 80, embed: 32, hidden: 128, lr: 5e-3 };

export function lstmLm(c: LstmLmConfig = DEFAULT_LSTM_LM): Model {
  const b = new GraphBuilder();
  const { batch: B, seq: T, vocab: V, embed: E, hidden: H } = c;
  const k = 1 / Math.sqrt(H);
  const u = { kind: 'uniform', low: -k, high: k } as const;
  const tokens = b.input('tokens', [B, T], 'i32');
  const targets = b.input('targets', [B, T], 'i32');
  const x = b.gather(b.param('emb', [V, E], { kind: 'normal', std: 0.1 }), tokens);
  const { y } = b.lstm(x, {
    weightIh: b.param('lstm.weight_ih', [4 * H, E], u),
    weightHh: b.param('lstm.weight_hh', [4 * H, H], u),
    biasIh: b.param('lstm.bias_ih', [4 * H], u),
    biasHh: b.param('lstm.bias_hh', [4 * H], u),
  });
  const logits = b.label(b.linear(y, b.param('w_out', [H, V]), b.param('b_out', [V], { kind: 'zeros' })), 'logits');
  b.output('loss', b.softmaxCrossEntropy(logits, targets));
  b.output('logits', logits);
  return { name: 'lstm-lm', graph: b.build(), loss: 'loss', optimizer: { kind: 'adam', lr: c.lr, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0 } };
}

export default lstmLm;
