/**
 * @file Simplification: tiny golden cases, one rewrite each, input and expected printed IR side by
 * side; and a differential check that simplified graphs compute the same outputs.
 */
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../src/ir/builder.js';
import { evaluate } from '../../src/ir/interp.js';
import { printGraph } from '../../src/ir/printer.js';
import { verify } from '../../src/ir/verify.js';
import { simplify } from '../../src/passes/simplify.js';
import { grad } from '../../src/passes/autodiff.js';
import { randomEnv } from './gradcheck.js';

const simplified = (build: (b: GraphBuilder) => void) => {
  const b = new GraphBuilder();
  build(b);
  const g = simplify(b.build());
  verify(g, 'simplify');
  return printGraph(g);
};

describe('simplify', () => {
  it('x * 1 + 0 -> x', () => {
    expect(simplified((b) => { const x = b.input('x', [3]); b.output('y', b.add_(b.mul(x, 1), 0)); })).toBe(
      'a:f32[3] = input[name="x"]\noutputs y=a\n');
  });
  it('folds constants: (2 + 3) * x', () => {
    expect(simplified((b) => { const x = b.input('x', [3]); b.output('y', b.mul(b.add_(b.full(2), b.full(3)), x)); })).toBe(
      'a:f32[3] = input[name="x"]\nb:f32[] = full[value=5]\nc:f32[3] = mul b a\noutputs y=c\n');
  });
  it('x * 0 -> 0, and the dead input stays (it is the interface)', () => {
    expect(simplified((b) => { const x = b.input('x', [2]); b.output('y', b.mul(b.exp(x), 0)); })).toBe(
      'a:f32[2] = input[name="x"]\nb:f32[2] = full[value=0]\noutputs y=b\n');
  });
  it('transpose of transpose composes to the identity', () => {
    expect(simplified((b) => { const x = b.input('x', [2, 3, 4]); b.output('y', b.transpose(b.transpose(x, [1, 2, 0]), [2, 0, 1])); })).toBe(
      'a:f32[2,3,4] = input[name="x"]\noutputs y=a\n');
  });
  it('common subexpressions are computed once', () => {
    expect(simplified((b) => { const x = b.input('x', [2]); b.output('y', b.add_(b.exp(x), b.exp(x))); })).toBe(
      'a:f32[2] = input[name="x"]\nb:f32[2] = exp a\nc:f32[2] = add b b\noutputs y=c\n');
  });
  it('dead code is removed', () => {
    expect(simplified((b) => { const x = b.input('x', [2]); b.tanh(x); b.output('y', b.neg(b.neg(b.sin(x)))); })).toBe(
      'a:f32[2] = input[name="x"]\nb:f32[2] = sin a\noutputs y=b\n');
  });
  it('nested reductions become one: mean(sum(x, 1), 0) -> sum(x, [0,1]) / 4', () => {
    expect(simplified((b) => { const x = b.input('x', [4, 3]); b.output('y', b.reduceMean(b.reduceSum(x, 1))); })).toBe(
      'a:f32[4,3] = input[name="x"]\nb:f32[] = reduce_sum[axes=[0,1],keepdims=false] a\nc:f32[] = full[value=0.25]\nd:f32[] = mul b c\noutputs y=d\n');
  });

  it('keeps every output of an MLP training graph the same', () => {
    const b = new GraphBuilder();
    const x = b.input('x', [4, 5]);
    const h = b.relu(b.linear(x, b.param('w1', [5, 6]), b.param('b1', [6])));
    b.output('loss', b.softmaxCrossEntropy(b.linear(h, b.param('w2', [6, 3]), b.param('b2', [3])), b.input('y', [4], 'i32')));
    const g = grad(b.build(), { loss: 'loss' }).graph;
    const s = simplify(g);
    verify(s, 'simplify');
    expect(s.nodes.length).toBeLessThan(g.nodes.length);
    const env = randomEnv(g, 5);
    const [want, got] = [evaluate(g, env, 'f64'), evaluate(s, env, 'f64')];
    for (const [name, t] of want.outputs) {
      const u = got.outputs.get(name)!;
      t.data.forEach((v, i) => expect(u.data[i]).toBeCloseTo(v, 12));
    }
  });
});
