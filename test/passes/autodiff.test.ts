/**
 * @file The adjoint graph's gradients against central finite differences in float64, one row per
 * differentiable primitive and per composite, plus fan-out, shared weights, broadcasting, integer
 * inputs, stop_gradient and an unused parameter.
 */
import { describe, expect, it } from 'vitest';
import { GraphBuilder, type Value } from '../../src/ir/builder.js';
import { OPS } from '../../src/ir/ops.js';
import { ROWS } from './grad-rows.js';
import { evaluate } from '../../src/ir/interp.js';
import { grad } from '../../src/passes/autodiff.js';
import { checkGrads, randomEnv } from './gradcheck.js';

function withLoss(f: (b: GraphBuilder) => Value) {
  const b = new GraphBuilder();
  const y = f(b);
  const w = b.input('__weights', [...y.type.shape]);
  b.output('loss', b.reduceSum(b.mul(y, w)));
  return b.build();
}

describe('gradients match central finite differences (float64)', () => {
  it('every differentiable primitive has a row', () => {
    const covered = new Set(ROWS.flatMap((r) => r.covers));
    expect(OPS.filter((op) => !covered.has(op) && !['input', 'param', 'state'].includes(op))).toEqual([]);
  });
  for (const row of ROWS) {
    it(row.name, () => {
      const g = withLoss(row.f);
      const env = randomEnv(g, 11, (name, u) => (name === '__weights' ? 2 * u() - 1 : (row.gen ?? ((_, v) => 2 * v() - 1))(name, u)));
      const r = checkGrads(g, 'loss', env);
      expect(r.worst, r.where).toBeLessThanOrEqual(1e-6);
    });
  }
});

describe('autodiff structure', () => {
  it('stop_gradient blocks the gradient: d/dx sum(stop(x) * x) = x', () => {
    const b = new GraphBuilder();
    const x = b.param('x', [4]);
    b.output('loss', b.reduceSum(b.mul(b.stopGradient(x), x)));
    const r = grad(b.build(), { loss: 'loss' });
    const env = randomEnv(b.build(), 3);
    expect(Array.from(evaluate(r.graph, env, 'f64').outputs.get('grad:x')!.data)).toEqual(Array.from(env.get('x')!.data));
  });

  it('sums adjoints where a value fans out, and shares weights', () => {
    const b = new GraphBuilder();
    const x = b.input('x', [2, 3]);
    const w = b.param('w', [3, 3]);
    const h = b.tanh(b.matmul(x, w));
    const y = b.matmul(h, w);
    b.output('loss', b.reduceSum(b.mul(b.add_(y, h), b.add_(h, h))));
    const env = randomEnv(b.build(), 4);
    expect(checkGrads(b.build(), 'loss', env).worst).toBeLessThanOrEqual(1e-6);
  });

  it('gives no gradient to integer inputs, an explicit zero to an unused parameter, and says so', () => {
    const b = new GraphBuilder();
    const logits = b.param('w', [3, 4]);
    b.param('unused', [2]);
    b.output('loss', b.softmaxCrossEntropy(logits, b.input('y', [3], 'i32')));
    const r = grad(b.build(), { loss: 'loss' });
    expect([...r.grads.keys()]).toEqual(['w', 'unused']);
    expect(r.diagnostics).toEqual(['parameter "unused" does not affect the loss "loss": its gradient is zero']);
    const env = randomEnv(b.build(), 2);
    const out = evaluate(r.graph, env, 'f64');
    expect(Array.from(out.outputs.get('grad:unused')!.data)).toEqual([0, 0]);
  });

  it('refuses a loss that is not an f32 scalar, and an unknown parameter', () => {
    const b = new GraphBuilder();
    const w = b.param('w', [3]);
    b.output('v', b.mul(w, 2));
    expect(() => grad(b.build(), { loss: 'v' })).toThrow('autodiff: the loss "v" must be an f32 scalar, got f32[3]');
    expect(() => grad(b.build(), { loss: 'nope' })).toThrow('autodiff: the graph has no output "nope" (outputs: v)');
    b.output('l', b.reduceSum(w));
    expect(() => grad(b.build(), { loss: 'l', wrt: ['q'] })).toThrow('autodiff: "q" is not a parameter of the graph');
  });
});
