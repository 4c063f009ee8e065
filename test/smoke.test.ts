import { describe, expect, it } from 'vitest';
import { GraphBuilder, printGraph, verify, evaluate, tensor, loadModel, modelToJson, modelFromJson } from '../src/ir/index.js';

describe('smoke', () => {
  it('builds, prints, verifies, evaluates and round-trips an MLP', () => {
    const b = new GraphBuilder();
    const x = b.input('x', [2, 3]);
    const y = b.input('y', [2], 'i32');
    const w = b.param('w', [3, 4]);
    const bias = b.param('b', [4], { kind: 'zeros' });
    const h = b.relu(b.linear(x, w, bias));
    const loss = b.softmaxCrossEntropy(h, y);
    b.output('loss', loss);
    const g = b.build();
    verify(g);
    const text = printGraph(g);
    console.log(text);
    const env = new Map([
      ['x', tensor([2, 3], [1, 2, 3, 4, 5, 6])],
      ['y', tensor([2], [1, 3], 'i32')],
      ['w', tensor([3, 4], [0.1, 0.2, -0.3, 0.4, 0.5, -0.6, 0.7, 0.8, 0.9, 1.0, -1.1, 1.2])],
      ['b', tensor([4], [0, 0, 0, 0])],
    ]);
    const r = evaluate(g, env, 'f64');
    console.log(r.outputs.get('loss'));
    const m = { name: 'mlp', graph: g, loss: 'loss' };
    const j = modelToJson(m);
    const m2 = modelFromJson(JSON.parse(JSON.stringify(j)));
    expect(m2.graph).toEqual(g);
    expect(printGraph(m2.graph)).toBe(text);
    expect(() => loadModel('{"version":1, "nodes":[{"name":"a","op":"relu","inputs":["h2"]}], "outputs":{}}')).toThrowError('nodes[0].inputs[0]: unknown value "h2"');
  });
});
