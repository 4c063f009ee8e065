/**
 * @file The adjoint graph's gradients against central finite differences in float64, one row per
 * differentiable primitive and per composite (test/passes/grad-rows.ts); then one behaviour each:
 * broadcasting, fan-out, shared weights, integer values, stop_gradient, unused parameters, ties,
 * pruning (no dead adjoint nodes), the printed adjoint of matmul / bias / relu, and the errors.
 * Every adjoint graph goes through the verifier.
 */
import { describe, expect, it } from 'vitest';
import { GraphBuilder, type Value } from '../../src/ir/builder.js';
import type { Graph } from '../../src/ir/graph.js';
import { evaluate } from '../../src/ir/interp.js';
import { OPS, type Op } from '../../src/ir/ops.js';
import { printGraph } from '../../src/ir/printer.js';
import { tensor, type Tensor } from '../../src/ir/tensor.js';
import { verify } from '../../src/ir/verify.js';
import { autodiff, grad, type GradOptions } from '../../src/passes/autodiff.js';
import { checkGrads, randomEnv, relError, uniform } from './gradcheck.js';
import { ROWS } from './grad-rows.js';

/** Ops that carry no gradient by definition: sources, comparisons, one_hot, stop_gradient. */
const NO_GRADIENT: readonly Op[] = ['input', 'param', 'state', 'full', 'iota', 'eq', 'ne', 'lt', 'le', 'gt', 'ge', 'one_hot', 'stop_gradient', 'random_uniform', 'is_training'];
/** Ops with finite-difference checks of their own: dropout and batch norm, per mode (test/passes/train-eval.test.ts). */
const OWN_FILE: readonly Op[] = ['random_uniform', 'is_training'];

/** f(params) with the loss sum(f * w), w a random input of f's shape: every output element matters. */
function withLoss(f: (b: GraphBuilder) => Value): Graph {
  const b = new GraphBuilder();
  const y = f(b);
  b.output('loss', b.reduceSum(b.mul(y, b.input('__weights', [...y.type.shape]))));
  return b.build();
}

/** grad, then the verifier on its result. */
function differentiate(g: Graph, opts: GradOptions) {
  const r = grad(g, opts);
  verify(r.graph, 'autodiff');
  return r;
}

const f64 = (shape: number[], data: number[], dtype: 'f32' | 'i32' = 'f32') => tensor(shape, data, dtype, 'f64');
const outputsOf = (g: Graph, env: Map<string, Tensor>) => {
  const out = evaluate(g, env, 'f64').outputs;
  return (name: string) => Array.from(out.get(name)!.data);
};
const expectNear = (got: number[], want: number[]) => {
  const m = relError(got, want, 1);
  expect(m.worst, m.where).toBeLessThanOrEqual(1e-14);
};

describe('gradients match central finite differences (float64)', () => {
  it('every differentiable primitive has its own row, and every op appears in some row', () => {
    const opsOf = (f: (b: GraphBuilder) => Value) => new Set(withLoss(f).nodes.map((n) => n.op));
    const differentiable = OPS.filter((op) => !NO_GRADIENT.includes(op));
    expect(differentiable.filter((op) => !ROWS.some((r) => r.op === op && opsOf(r.f).has(op)))).toEqual([]);
    const seen = new Set(ROWS.flatMap((r) => [...opsOf(r.f)]));
    // `state` is a source like `param` that no gradient test needs; it has its own test below.
    expect(OPS.filter((op) => !seen.has(op) && op !== 'state' && !OWN_FILE.includes(op))).toEqual([]);
  });

  for (const row of ROWS) {
    it(row.name, () => {
      const g = withLoss(row.f);
      const gen = row.gen ?? uniform;
      const env = randomEnv(g, 11, (name, u) => (name === '__weights' ? uniform(name, u) : gen(name, u)));
      const r = checkGrads(g, 'loss', env);
      expect(r.worst, r.where).toBeLessThanOrEqual(1e-6);
      expect(r.scale, 'the gradient is not all zero').toBeGreaterThan(1e-2);
    });
  }
});

describe('autodiff structure', () => {
  it('keeps the forward nodes with their ids, appends the adjoint, and adds grad:<param> outputs', () => {
    const g = withLoss((b) => b.tanh(b.matmul(b.input('x', [2, 3]), b.param('w', [3, 2]))));
    const before = JSON.stringify(g);
    const r = differentiate(g, { loss: 'loss' });
    expect(JSON.stringify(g), 'the input graph is unchanged').toBe(before);
    expect(r.graph.nodes.slice(0, g.nodes.length)).toEqual(g.nodes);
    expect(r.graph.outputs.map((o) => o.name)).toEqual(['loss', 'grad:w']);
    expect(r.graph.outputs[1]!.value).toBe(r.grads.get('w'));
    expect(r.grads.get('w')).toBeGreaterThanOrEqual(g.nodes.length);
    expect(r.diagnostics).toEqual([]);
    expect(printGraph(autodiff('loss').run(g))).toBe(printGraph(r.graph));
  });

  it('matmul: two matmuls with transposed operands, and only the operand that needs one', () => {
    const b = new GraphBuilder();
    const y = b.matmul(b.input('x', [2, 3]), b.param('w', [3, 4]));
    b.output('loss', b.reduceSum(b.mul(y, b.input('r', [2, 4]))));
    expect(printGraph(differentiate(b.build(), { loss: 'loss' }).graph)).toBe(`a:f32[2,3] = input[name="x"]
b:f32[3,4] = param[name="w",init=glorot_uniform]
c:f32[2,4] = matmul a b
d:f32[2,4] = input[name="r"]
e:f32[2,4] = mul c d
f:f32[] = reduce_sum[axes=[0,1],keepdims=false] e
g:f32[] = full[value=1]
h:f32[2,4] = broadcast_to[shape=[2,4]] g
i:f32[2,4] = mul h d
j:f32[3,2] = transpose[perm=[1,0]] a
k:f32[3,4] = matmul j i
outputs loss=f grad:w=k
`);
  });

  it('matmul with a broadcast batch: the weight gradient sums over the batch', () => {
    const b = new GraphBuilder();
    const y = b.matmul(b.param('x', [5, 2, 3]), b.param('w', [3, 4]));
    b.output('loss', b.reduceSum(y));
    const text = printGraph(differentiate(b.build(), { loss: 'loss' }).graph);
    expect(text).toContain('= matmul f g\n'); // dx = g @ w^T: [5,2,4] @ [4,3]
    expect(text).toMatch(/:f32\[5,3,4\] = matmul .*\n.*:f32\[3,4\] = reduce_sum\[axes=\[0\],keepdims=false\]/);
  });

  it('bias add [B,N] + [N]: the bias gradient is the cotangent summed over the batch', () => {
    const b = new GraphBuilder();
    const y = b.add_(b.matmul(b.input('x', [2, 3]), b.param('w', [3, 4])), b.param('bias', [4]));
    b.output('loss', b.reduceSum(b.mul(y, b.input('r', [2, 4]))));
    const r = differentiate(b.build(), { loss: 'loss' });
    const R = [1, 2, 3, 4, -5, 6, -7, 8.5];
    const X = [0.5, -1, 2, 3, 0.25, -2];
    const env = new Map([['x', f64([2, 3], X)], ['w', f64([3, 4], Array(12).fill(0.1))], ['bias', f64([4], [0, 0, 0, 0])], ['r', f64([2, 4], R)]]);
    const out = outputsOf(r.graph, env);
    expectNear(out('grad:bias'), [1 - 5, 2 + 6, 3 - 7, 4 + 8.5]);
    expectNear(out('grad:w'), [0, 1, 2].flatMap((i) => [0, 1, 2, 3].map((j) => X[i]! * R[j]! + X[3 + i]! * R[4 + j]!)));
    expect(printGraph(r.graph)).toContain('f32[4] = reduce_sum[axes=[0],keepdims=false]');
  });

  it('mul [B,1] * [1,N]: each operand gets the cotangent times the other, summed over what it was stretched along', () => {
    const b = new GraphBuilder();
    b.output('loss', b.reduceSum(b.mul(b.mul(b.param('u', [2, 1]), b.param('v', [1, 3])), b.input('r', [2, 3]))));
    const r = differentiate(b.build(), { loss: 'loss' });
    const [U, V, R] = [[2, -3], [1, 0.5, -4], [1, 2, 3, -1, 5, 0.25]];
    const out = outputsOf(r.graph, new Map([['u', f64([2, 1], U)], ['v', f64([1, 3], V)], ['r', f64([2, 3], R)]]));
    expectNear(out('grad:u'), [0, 1].map((i) => [0, 1, 2].reduce((s, j) => s + R[i * 3 + j]! * V[j]!, 0)));
    expectNear(out('grad:v'), [0, 1, 2].map((j) => [0, 1].reduce((s, i) => s + R[i * 3 + j]! * U[i]!, 0)));
  });

  it('sums adjoints where a value fans out: d/dx sum(x * x + sin x) = 2x + cos x', () => {
    const b = new GraphBuilder();
    const x = b.param('x', [4]);
    b.output('loss', b.reduceSum(b.add_(b.mul(x, x), b.sin(x))));
    const X = [0.3, -1.2, 2, 0];
    const out = outputsOf(differentiate(b.build(), { loss: 'loss' }).graph, new Map([['x', f64([4], X)]]));
    expectNear(out('grad:x'), X.map((v) => 2 * v + Math.cos(v)));
  });

  it('shares weights: a parameter used in two layers gets both contributions', () => {
    const b = new GraphBuilder();
    const w = b.param('w', [3, 3]);
    const h = b.tanh(b.matmul(b.input('x', [2, 3]), w));
    b.output('loss', b.reduceSum(b.mul(b.tanh(b.matmul(h, w)), b.input('r', [2, 3]))));
    const r = checkGrads(b.build(), 'loss', randomEnv(b.build(), 4));
    expect(r.worst, r.where).toBeLessThanOrEqual(1e-6);
    expect(r.scale).toBeGreaterThan(1e-2);
  });

  it('integer values carry no gradient: labels, and a parameter reaching the loss only through a cast to i32', () => {
    const b = new GraphBuilder();
    const logits = b.param('w', [3, 4]);
    const q = b.param('q', [3]);
    const labels = b.minimum(b.cast(b.mul(b.abs(q), 2), 'i32'), b.input('y', [3], 'i32'));
    b.output('loss', b.softmaxCrossEntropy(logits, labels));
    const r = differentiate(b.build(), { loss: 'loss' });
    expect([...r.grads.keys()]).toEqual(['w', 'q']);
    expect(r.diagnostics).toEqual(['parameter "q" reaches the loss only through stop_gradient or integer values "loss": its gradient is zero']);
    const adjoint = r.graph.nodes.slice(b.build().nodes.length);
    expect(adjoint.filter((n) => n.type.dtype === 'i32')).toEqual([]);
    const out = outputsOf(r.graph, randomEnv(b.build(), 2));
    expect(out('grad:q')).toEqual([0, 0, 0]);
  });

  it('state and inputs get no gradient, even when the loss depends on them', () => {
    const b = new GraphBuilder();
    const w = b.param('w', [2]);
    b.output('loss', b.reduceSum(b.mul(b.mul(w, b.state('s', [2])), b.input('x', [2]))));
    const r = differentiate(b.build(), { loss: 'loss' });
    expect([...r.grads.keys()]).toEqual(['w']);
    const out = outputsOf(r.graph, new Map([['w', f64([2], [1, 2])], ['s', f64([2], [3, 4])], ['x', f64([2], [5, 6])]]));
    expectNear(out('grad:w'), [15, 24]);
  });

  it('stop_gradient blocks the gradient: d/dx sum(stop(x) * x) = x, and a parameter only behind it gets zero', () => {
    const b = new GraphBuilder();
    const x = b.param('x', [4]);
    const k = b.param('k', [4]);
    b.output('loss', b.reduceSum(b.mul(b.add_(b.stopGradient(x), b.stopGradient(k)), x)));
    const r = differentiate(b.build(), { loss: 'loss' });
    expect(r.diagnostics).toEqual(['parameter "k" reaches the loss only through stop_gradient or integer values "loss": its gradient is zero']);
    const X = [1, -2, 3.5, 0.25];
    const K = [0.5, 0.5, -1, 2];
    const out = outputsOf(r.graph, new Map([['x', f64([4], X)], ['k', f64([4], K)]]));
    expectNear(out('grad:x'), X.map((v, i) => v + K[i]!));
    expect(out('grad:k')).toEqual([0, 0, 0, 0]);
  });

  it('an unused parameter gets an explicit zero gradient of its shape, and a diagnostic naming it', () => {
    const b = new GraphBuilder();
    b.param('unused', [2, 3]);
    b.output('loss', b.reduceSum(b.exp(b.param('w', [2]))));
    const r = differentiate(b.build(), { loss: 'loss' });
    expect(r.diagnostics).toEqual(['parameter "unused" does not affect the loss "loss": its gradient is zero']);
    const out = evaluate(r.graph, new Map([['w', f64([2], [0, 1])], ['unused', f64([2, 3], [1, 2, 3, 4, 5, 6])]]), 'f64').outputs;
    expect(out.get('grad:unused')!.type).toEqual({ dtype: 'f32', shape: [2, 3] });
    expect(Array.from(out.get('grad:unused')!.data)).toEqual([0, 0, 0, 0, 0, 0]);
    expectNear(Array.from(out.get('grad:w')!.data), [1, Math.E]);
  });

  it('reduce_max shares the gradient equally among ties; max and min give ties to the first operand', () => {
    const b = new GraphBuilder();
    const x = b.param('x', [2, 3]);
    const y = b.param('y', [3]);
    const m = b.reduceMax(x, 1);
    b.output('loss', b.add_(b.reduceSum(b.mul(m, b.input('r', [2]))), b.reduceSum(b.add_(b.maximum(y, 1), b.minimum(y, 1)))));
    const r = differentiate(b.build(), { loss: 'loss' });
    const out = outputsOf(r.graph, new Map([['x', f64([2, 3], [1, 3, 3, 5, 5, 5])], ['y', f64([3], [1, 0, 2])], ['r', f64([2], [2, 3])]]));
    expectNear(out('grad:x'), [0, 1, 1, 1, 1, 1]);
    expectNear(out('grad:y'), [2, 1, 1]);
  });

  it('builds no dead adjoint nodes: nothing for inputs, labels or unrequested parameters', () => {
    const b = new GraphBuilder();
    const h = b.relu(b.linear(b.input('x', [4, 5]), b.param('w1', [5, 6]), b.param('b1', [6])));
    b.output('loss', b.softmaxCrossEntropy(b.linear(h, b.param('w2', [6, 3]), b.param('b2', [3])), b.input('y', [4], 'i32')));
    const g = b.build();
    for (const wrt of [undefined, ['w2'], ['w1', 'b2']]) {
      const r = differentiate(g, { loss: 'loss', ...(wrt ? { wrt } : {}) });
      const live = r.graph.nodes.map(() => false);
      for (const o of r.graph.outputs) live[o.value] = true;
      for (let i = r.graph.nodes.length - 1; i >= 0; i--) if (live[i]) for (const x of r.graph.nodes[i]!.inputs) live[x] = true;
      const dead = r.graph.nodes.flatMap((n, i) => (i >= g.nodes.length && !live[i] ? [`${i}: ${n.op}`] : []));
      expect(dead, `wrt ${wrt}`).toEqual([]);
      expect([...r.grads.keys()]).toEqual(wrt ?? ['w1', 'b1', 'w2', 'b2']);
    }
    // Three matmuls in the full adjoint: dW2 = h^T d, dh = d W2^T, dW1 = x^T dh; none for dx.
    const full = differentiate(g, { loss: 'loss' }).graph;
    expect(full.nodes.slice(g.nodes.length).filter((n) => n.op === 'matmul').length).toBe(3);
  });

  it('refuses a loss that is not an f32 scalar, an unknown parameter, and a second grad:<param> output', () => {
    const b = new GraphBuilder();
    const w = b.param('w', [3]);
    b.output('v', b.mul(w, 2));
    expect(() => grad(b.build(), { loss: 'v' })).toThrow('autodiff: the loss "v" must be an f32 scalar, got f32[3] (c:f32[3] = mul a b)');
    expect(() => grad(b.build(), { loss: 'nope' })).toThrow('autodiff: the graph has no output "nope" (outputs: v)');
    b.output('l', b.reduceSum(w));
    expect(() => grad(b.build(), { loss: 'l', wrt: ['q'] })).toThrow('autodiff: "q" is not a parameter of the graph (parameters: w)');
    const once = grad(b.build(), { loss: 'l' }).graph;
    expect(() => grad(once, { loss: 'l' })).toThrow('autodiff: the graph already has an output "grad:w"; drop or rename it before differentiating again');
  });
});
