/**
 * @file LSTM and GRU (builder composites, unrolled over the sequence): outputs and gradients
 * (backpropagation through time is autodiff over the unrolled graph) against PyTorch's
 * torch.nn.LSTM / torch.nn.GRU with the same weights (test/fixtures/recurrent/*.json, made by the
 * committed make-fixtures.py), against central finite differences in float64, with and without
 * the initial state and the biases; the JSON composites; the errors.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { GraphBuilder, type Value } from '../../src/ir/builder.js';
import type { Graph } from '../../src/ir/graph.js';
import { evaluate } from '../../src/ir/interp.js';
import { loadModel } from '../../src/ir/schema.js';
import { tensor, type Tensor } from '../../src/ir/tensor.js';
import { verify } from '../../src/ir/verify.js';
import { grad } from '../../src/passes/autodiff.js';
import { checkGrads, randomEnv, relError } from './gradcheck.js';

interface Fixture {
  B: number; T: number; I: number; H: number;
  x: number[]; h0: number[]; c0?: number[]; R: number[]; S: number[]; U?: number[];
  weight_ih: number[]; weight_hh: number[]; bias_ih: number[]; bias_hh: number[];
  y: number[]; h_n: number[]; c_n?: number[]; loss: number;
  grads: Record<string, number[]>;
}
type Kind = 'lstm' | 'gru';
const fixture = (kind: Kind): Fixture => JSON.parse(readFileSync(new URL(`../fixtures/recurrent/${kind}.json`, import.meta.url), 'utf8')) as Fixture;

interface Options { readonly initial?: boolean; readonly biases?: boolean }

/**
 * loss = sum(y R) + sum(h_n S) (+ sum(c_n U) for the LSTM), as the fixture script computes it;
 * x, h0, c0 and the weights are params, so every one of them gets a gradient.
 */
function recurrentLoss(kind: Kind, B: number, T: number, I: number, H: number, o: Options = {}): Graph {
  const b = new GraphBuilder();
  const G = kind === 'lstm' ? 4 : 3;
  const x = b.param('x', [B, T, I]);
  const h0 = o.initial === false ? undefined : b.param('h0', [B, H]);
  const c0 = o.initial === false || kind === 'gru' ? undefined : b.param('c0', [B, H]);
  const w = {
    weightIh: b.param('weight_ih', [G * H, I]),
    weightHh: b.param('weight_hh', [G * H, H]),
    ...(o.biases === false ? {} : { biasIh: b.param('bias_ih', [G * H]), biasHh: b.param('bias_hh', [G * H]) }),
  };
  const dot = (v: Value, name: string) => b.reduceSum(b.mul(v, b.input(name, v.type.shape)));
  let loss: Value;
  if (kind === 'lstm') {
    const r = b.lstm(x, w, h0, c0);
    loss = b.add_(b.add_(dot(r.y, 'R'), dot(r.h, 'S')), dot(r.c, 'U'));
    b.output('y', r.y);
    b.output('h_n', r.h);
    b.output('c_n', r.c);
  } else {
    const r = b.gru(x, w, h0);
    loss = b.add_(dot(r.y, 'R'), dot(r.h, 'S'));
    b.output('y', r.y);
    b.output('h_n', r.h);
  }
  b.output('loss', loss);
  const g = b.build();
  verify(g, 'builder');
  return g;
}

const KINDS: readonly Kind[] = ['lstm', 'gru'];

describe.each(KINDS)('%s against PyTorch (torch.nn fixtures, float64)', (kind) => {
  const f = fixture(kind);
  const g = recurrentLoss(kind, f.B, f.T, f.I, f.H);
  const env = new Map<string, Tensor>();
  for (const n of g.nodes) {
    if (n.op !== 'param' && n.op !== 'input') continue;
    env.set(n.attrs.name, tensor(n.type.shape, (f as unknown as Record<string, number[]>)[n.attrs.name]!, 'f32', 'f64'));
  }

  it('the same outputs: every step\'s hidden state, the last h (and c)', () => {
    const r = evaluate(g, env, 'f64');
    for (const name of ['y', 'h_n', ...(kind === 'lstm' ? ['c_n'] : [])]) {
      const m = relError(r.outputs.get(name)!.data, (f as unknown as Record<string, number[]>)[name]!, 1e-6, name);
      expect(m.worst, m.where).toBeLessThan(1e-12);
    }
    expect(r.outputs.get('loss')!.data[0]).toBeCloseTo(f.loss, 11);
  });

  it('the same gradients with respect to the input, the initial state and every weight (BPTT)', () => {
    const r = grad(g, { loss: 'loss' });
    verify(r.graph, 'autodiff');
    const values = evaluate(r.graph, env, 'f64').values;
    expect([...r.grads.keys()].sort()).toEqual(Object.keys(f.grads).sort());
    for (const [name, id] of r.grads) {
      const m = relError(values[id]!.data, f.grads[name]!, 1e-6, `grad:${name}`);
      expect(m.worst, m.where).toBeLessThan(1e-10);
    }
  });
});

describe.each(KINDS)('%s gradients against central finite differences (float64)', (kind) => {
  it.each([
    ['with an initial state and biases', {}],
    ['from the zero state, without biases', { initial: false, biases: false }],
  ] as const)('%s', (_, o) => {
    const g = recurrentLoss(kind, 2, 4, 3, 3, o);
    const m = checkGrads(g, 'loss', randomEnv(g, kind === 'lstm' ? 11 : 12));
    expect(m.scale).toBeGreaterThan(0.1);
    expect(m.worst, m.where).toBeLessThan(1e-6);
  });
});

describe('lstm and gru in the model format', () => {
  const model = (op: Kind, G: number, inputs: string[]) => JSON.stringify({
    version: 1,
    inputs: [{ name: 'x', shape: [2, 3, 4] }],
    params: [
      { name: 'wih', shape: [G * 5, 4] }, { name: 'whh', shape: [G * 5, 5] },
      { name: 'bih', shape: [G * 5], init: { kind: 'uniform', low: -0.5, high: 0.5 } },
      { name: 'bhh', shape: [G * 5], init: { kind: 'uniform', low: -0.5, high: 0.5 } },
    ],
    nodes: [{ name: 'y', op, inputs }],
    outputs: { y: 'y' },
  });

  it.each([['lstm', 4], ['gru', 3]] as const)('%s: the sequence y [B,T,H] the builder computes', (op, G) => {
    const m = loadModel(model(op, G, ['x', 'wih', 'whh', 'bih', 'bhh']), 'm.json');
    const y = m.graph.nodes[m.graph.outputs[0]!.value]!;
    expect(y.type.shape).toEqual([2, 3, 5]);
    const b = new GraphBuilder();
    const x = b.input('x', [2, 3, 4]);
    const w = { weightIh: b.param('wih', [G * 5, 4]), weightHh: b.param('whh', [G * 5, 5]), biasIh: b.param('bih', [G * 5]), biasHh: b.param('bhh', [G * 5]) };
    b.output('y', op === 'lstm' ? b.lstm(x, w).y : b.gru(x, w).y);
    const direct = b.build();
    const env = randomEnv(direct, 5);
    expect(Array.from(evaluate(m.graph, env, 'f64').outputs.get('y')!.data)).toEqual(Array.from(evaluate(direct, env, 'f64').outputs.get('y')!.data));
  });

  it('a weight of the wrong shape is one line naming the node and the shape wanted', () => {
    expect(() => loadModel(model('lstm', 3, ['x', 'wih', 'whh']), 'm.json')).toThrow(/^m\.json: nodes\[0\] \("y"\): lstm x:f32\[2,3,4\] wih:f32\[15,4\] whh:f32\[15,5\]: weight_hh must be \[4\*H, H\], got f32\[15,5\]$/);
    expect(() => loadModel(model('gru', 3, ['x', 'whh', 'whh']), 'm.json')).toThrow(/: weight_ih must be \[15,4\] \(3 gates of hidden size 5\), got f32\[15,5\]/);
    expect(() => loadModel(model('gru', 3, ['x', 'wih']), 'm.json')).toThrow(/nodes\[0\]\.inputs: gru takes 3 to 5 inputs, got 2/);
  });
});
