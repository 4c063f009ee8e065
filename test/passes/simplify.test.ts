/**
 * @file Simplification: tiny golden cases, one behaviour each and named after it, the input built
 * with the GraphBuilder next to the expected printed IR after `simplify` (Cranelift's
 * precise-output tests); then properties (the input graph is not changed, a second run changes
 * nothing); then a differential check: graphs from a few ops up to a transformer's training step
 * compute the same outputs and updates in the interpreter before and after simplification.
 */
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../src/ir/builder.js';
import { numel } from '../../src/ir/dtype.js';
import type { Graph } from '../../src/ir/graph.js';
import { evaluate } from '../../src/ir/interp.js';
import { printGraph } from '../../src/ir/printer.js';
import { loadModel } from '../../src/ir/schema.js';
import { tensor, type Tensor } from '../../src/ir/tensor.js';
import { verify } from '../../src/ir/verify.js';
import { grad } from '../../src/passes/autodiff.js';
import { simplify } from '../../src/passes/simplify.js';
import { readFileSync } from 'node:fs';
import { transformerLm } from '../../models/transformer-lm.js';

interface Case {
  readonly name: string;
  readonly build: (b: GraphBuilder) => void;
  /** The printed IR after simplify (with a leading newline, for readability). */
  readonly want: string;
}

const CASES: readonly Case[] = [
  // ---- constant folding ----
  {
    name: 'add of two constants folds to a full of the broadcast shape',
    build: (b) => b.output('y', b.add_(b.full(2, [2, 1]), b.full(3, [3]))),
    want: `
a:f32[2,3] = full[value=5]
outputs y=a
`,
  },
  {
    name: 'folded f32 constants are rounded to f32 as at run time',
    build: (b) => b.output('y', b.add_(b.full(0.1), b.full(0.2))),
    want: `
a:f32[] = full[value=${Math.fround(Math.fround(0.1) + Math.fround(0.2))}]
outputs y=a
`,
  },
  {
    name: 'i32 division folds with truncation',
    build: (b) => b.output('y', b.div(b.full(-7, [], 'i32'), b.full(2, [], 'i32'))),
    want: `
a:i32[] = full[value=-3]
outputs y=a
`,
  },
  {
    name: 'unary of a constant folds',
    build: (b) => b.output('y', b.exp(b.full(0, [4]))),
    want: `
a:f32[4] = full[value=1]
outputs y=a
`,
  },
  {
    name: 'cast of a constant folds (f32 -> i32 truncates)',
    build: (b) => b.output('y', b.cast(b.full(2.75, [2]), 'i32')),
    want: `
a:i32[2] = full[value=2]
outputs y=a
`,
  },
  {
    name: 'comparison of constants folds to 1 or 0',
    build: (b) => b.output('y', b.lt(b.full(1), b.full(2))),
    want: `
a:f32[] = full[value=1]
outputs y=a
`,
  },
  {
    name: 'a constant that would not be finite is not folded',
    build: (b) => b.output('y', b.log(b.full(0))),
    want: `
a:f32[] = full[value=0]
b:f32[] = log a
outputs y=b
`,
  },
  {
    name: 'broadcast_to, reshape and transpose of a constant fold',
    build: (b) => b.output('y', b.transpose(b.reshape(b.broadcastTo(b.full(1.5), [2, 3]), [3, 2]))),
    want: `
a:f32[2,3] = full[value=1.5]
outputs y=a
`,
  },
  {
    name: 'reduce_sum of a constant is the value times the count',
    build: (b) => b.output('y', b.reduceSum(b.full(0.5, [4, 3]), 1)),
    want: `
a:f32[4] = full[value=1.5]
outputs y=a
`,
  },
  {
    name: 'reduce_mean and reduce_max of a constant are the value',
    build: (b) => {
      b.output('m', b.reduceMean(b.full(2, [4, 3])));
      b.output('x', b.reduceMax(b.full(-2, [4, 3]), 0, true));
    },
    want: `
a:f32[] = full[value=2]
b:f32[1,3] = full[value=-2]
outputs m=a x=b
`,
  },
  {
    name: 'matmul with a zero operand is zero',
    build: (b) => b.output('y', b.matmul(b.input('x', [2, 3]), b.full(0, [3, 4]))),
    want: `
a:f32[2,3] = input[name="x"]
b:f32[2,4] = full[value=0]
outputs y=b
`,
  },
  // ---- algebraic identities ----
  {
    name: 'x * 1 -> x',
    build: (b) => b.output('y', b.mul(b.input('x', [3]), 1)),
    want: `
a:f32[3] = input[name="x"]
outputs y=a
`,
  },
  {
    name: '1 * x -> x',
    build: (b) => b.output('y', b.mul(1, b.input('x', [3]))),
    want: `
a:f32[3] = input[name="x"]
outputs y=a
`,
  },
  {
    name: 'x + 0 -> x',
    build: (b) => b.output('y', b.add_(b.input('x', [3]), 0)),
    want: `
a:f32[3] = input[name="x"]
outputs y=a
`,
  },
  {
    name: '0 + x -> x',
    build: (b) => b.output('y', b.add_(0, b.input('x', [3]))),
    want: `
a:f32[3] = input[name="x"]
outputs y=a
`,
  },
  {
    name: 'x - 0 -> x',
    build: (b) => b.output('y', b.sub(b.input('x', [3]), 0)),
    want: `
a:f32[3] = input[name="x"]
outputs y=a
`,
  },
  {
    name: 'x / 1 -> x',
    build: (b) => b.output('y', b.div(b.input('x', [3]), 1)),
    want: `
a:f32[3] = input[name="x"]
outputs y=a
`,
  },
  {
    name: 'x + zeros of a larger shape -> x broadcast (the type is kept)',
    build: (b) => b.output('y', b.add_(b.input('x', [3]), b.full(0, [2, 3]))),
    want: `
a:f32[3] = input[name="x"]
b:f32[2,3] = broadcast_to[shape=[2,3]] a
outputs y=b
`,
  },
  {
    name: 'x * 0 -> 0, and the unused input stays (it is the interface)',
    build: (b) => b.output('y', b.mul(b.exp(b.input('x', [2])), 0)),
    want: `
a:f32[2] = input[name="x"]
b:f32[2] = full[value=0]
outputs y=b
`,
  },
  {
    name: '0 - x -> neg x',
    build: (b) => b.output('y', b.sub(0, b.input('x', [2]))),
    want: `
a:f32[2] = input[name="x"]
b:f32[2] = neg a
outputs y=b
`,
  },
  {
    name: 'neg(neg x) -> x',
    build: (b) => b.output('y', b.neg(b.neg(b.input('x', [2])))),
    want: `
a:f32[2] = input[name="x"]
outputs y=a
`,
  },
  {
    name: 'where on a constant condition picks a branch',
    build: (b) => {
      const x = b.input('x', [2]);
      b.output('t', b.where(b.full(1), x, b.exp(x)));
      b.output('f', b.where(b.full(0), x, b.exp(x)));
    },
    want: `
a:f32[2] = input[name="x"]
b:f32[2] = exp a
outputs t=a f=b
`,
  },
  {
    name: 'where with equal branches -> the branch',
    build: (b) => {
      const x = b.input('x', [2]);
      b.output('y', b.where(b.gt(x, 0), x, x));
    },
    want: `
a:f32[2] = input[name="x"]
outputs y=a
`,
  },
  {
    name: 'transpose of transpose composes the permutations',
    build: (b) => b.output('y', b.transpose(b.transpose(b.input('x', [2, 3, 4]), [1, 2, 0]), [1, 0, 2])),
    want: `
a:f32[2,3,4] = input[name="x"]
b:f32[4,3,2] = transpose[perm=[2,1,0]] a
outputs y=b
`,
  },
  {
    name: 'transpose of transpose that composes to the identity -> x',
    build: (b) => b.output('y', b.transpose(b.transpose(b.input('x', [2, 3, 4]), [1, 2, 0]), [2, 0, 1])),
    want: `
a:f32[2,3,4] = input[name="x"]
outputs y=a
`,
  },
  {
    name: 'identity transpose -> x',
    build: (b) => b.output('y', b.transpose(b.input('x', [2, 3]), [0, 1])),
    want: `
a:f32[2,3] = input[name="x"]
outputs y=a
`,
  },
  {
    name: 'reshape of reshape -> one reshape',
    build: (b) => b.output('y', b.reshape(b.reshape(b.input('x', [2, 3]), [6]), [3, 2])),
    want: `
a:f32[2,3] = input[name="x"]
b:f32[3,2] = reshape[shape=[3,2]] a
outputs y=b
`,
  },
  {
    name: 'reshape to the same shape -> x',
    build: (b) => b.output('y', b.reshape(b.input('x', [2, 3]), [2, 3])),
    want: `
a:f32[2,3] = input[name="x"]
outputs y=a
`,
  },
  {
    name: 'broadcast_to the same shape -> x',
    build: (b) => b.output('y', b.broadcastTo(b.input('x', [2, 3]), [2, 3])),
    want: `
a:f32[2,3] = input[name="x"]
outputs y=a
`,
  },
  {
    name: 'broadcast_to of broadcast_to -> one broadcast_to',
    build: (b) => b.output('y', b.broadcastTo(b.broadcastTo(b.input('x', [3]), [2, 3]), [4, 2, 3])),
    want: `
a:f32[3] = input[name="x"]
b:f32[4,2,3] = broadcast_to[shape=[4,2,3]] a
outputs y=b
`,
  },
  {
    name: 'slice that takes everything -> x; a strided slice stays',
    build: (b) => {
      const x = b.input('x', [2, 3]);
      b.output('all', b.slice(x, [0, 0], [2, 3]));
      b.output('odd', b.slice(x, [0, 1], [2, 3], [1, 2]));
    },
    want: `
a:f32[2,3] = input[name="x"]
b:f32[2,1] = slice[starts=[0,1],ends=[2,3],steps=[1,2]] a
outputs all=a odd=b
`,
  },
  {
    name: 'pad by nothing -> x',
    build: (b) => b.output('y', b.pad(b.input('x', [2, 3]), [0, 0], [0, 0], 7)),
    want: `
a:f32[2,3] = input[name="x"]
outputs y=a
`,
  },
  {
    name: 'cast to the same dtype -> x',
    build: (b) => b.output('y', b.cast(b.input('x', [2], 'i32'), 'i32')),
    want: `
a:i32[2] = input[name="x"]
outputs y=a
`,
  },
  {
    name: 'stop_gradient is kept',
    build: (b) => b.output('y', b.stopGradient(b.input('x', [2]))),
    want: `
a:f32[2] = input[name="x"]
b:f32[2] = stop_gradient a
outputs y=b
`,
  },
  {
    name: 'reduce over no axes -> x; over an axis of size 1 -> reshape',
    build: (b) => {
      const x = b.input('x', [2, 1]);
      b.output('none', b.reduceSum(x, []));
      b.output('one', b.reduceMax(x, 1));
    },
    want: `
a:f32[2,1] = input[name="x"]
b:f32[2] = reshape[shape=[2]] a
outputs none=a one=b
`,
  },
  {
    name: 'nested reductions become one: mean(sum(x, 1), 0) -> sum(x, [0,1]) * 1/4',
    build: (b) => b.output('y', b.reduceMean(b.reduceSum(b.input('x', [4, 3]), 1))),
    want: `
a:f32[4,3] = input[name="x"]
b:f32[] = reduce_sum[axes=[0,1],keepdims=false] a
c:f32[] = full[value=0.25]
d:f32[] = mul b c
outputs y=d
`,
  },
  // ---- CSE ----
  {
    name: 'common subexpressions are computed once',
    build: (b) => {
      const x = b.input('x', [2]);
      b.output('y', b.add_(b.exp(x), b.exp(x)));
    },
    want: `
a:f32[2] = input[name="x"]
b:f32[2] = exp a
c:f32[2] = add b b
outputs y=c
`,
  },
  {
    name: 'CSE matches commutative operands in either order, not others',
    build: (b) => {
      const [x, y] = [b.input('x', [2]), b.input('y', [2])];
      b.output('s', b.mul(b.add_(x, y), b.add_(y, x)));
      b.output('d', b.mul(b.sub(x, y), b.sub(y, x)));
    },
    want: `
a:f32[2] = input[name="x"]
b:f32[2] = input[name="y"]
c:f32[2] = add a b
d:f32[2] = mul c c
e:f32[2] = sub a b
f:f32[2] = sub b a
g:f32[2] = mul e f
outputs s=d d=g
`,
  },
  {
    name: 'CSE needs equal attributes',
    build: (b) => {
      const x = b.input('x', [2, 3]);
      b.output('p', b.reduceSum(x, 0));
      b.output('q', b.reduceSum(x, 1));
      b.output('r', b.reduceSum(x, 0));
    },
    want: `
a:f32[2,3] = input[name="x"]
b:f32[3] = reduce_sum[axes=[0],keepdims=false] a
c:f32[2] = reduce_sum[axes=[1],keepdims=false] a
outputs p=b q=c r=b
`,
  },
  {
    name: 'equal constants are one node',
    build: (b) => {
      const x = b.input('x', [2]);
      b.output('y', b.mul(b.add_(x, 2), b.sub(x, 2)));
    },
    want: `
a:f32[2] = input[name="x"]
b:f32[] = full[value=2]
c:f32[2] = add a b
d:f32[2] = sub a b
e:f32[2] = mul c d
outputs y=e
`,
  },
  // ---- DCE, order, updates ----
  {
    name: 'dead code is removed; unused input, param and state stay',
    build: (b) => {
      const x = b.input('x', [2]);
      b.input('unused', [3]);
      b.param('w', [2], { kind: 'zeros' });
      b.state('s', [], { kind: 'zeros' });
      b.tanh(x);
      b.output('y', b.sin(x));
    },
    want: `
a:f32[2] = input[name="x"]
b:f32[3] = input[name="unused"]
c:f32[2] = param[name="w",init=zeros]
d:f32[] = state[name="s",init=zeros]
e:f32[2] = sin a
outputs y=e
`,
  },
  {
    name: 'surviving nodes keep their order, and updates follow their values',
    build: (b) => {
      const w = b.param('w', [2], { kind: 'zeros' });
      const s = b.state('s', [], { kind: 'zeros' });
      const x = b.input('x', [2]);
      const dead = b.cos(x);
      const t = b.add_(s, 1);
      b.output('y', b.mul(b.mul(w, x), 1));
      b.update('w', b.sub(w, b.add_(b.mul(x, 0.5), b.mul(dead, 0))));
      b.update('s', t);
    },
    want: `
a:f32[2] = param[name="w",init=zeros]
b:f32[] = state[name="s",init=zeros]
c:f32[2] = input[name="x"]
d:f32[] = full[value=1]
e:f32[] = add b d
f:f32[2] = mul a c
g:f32[] = full[value=0.5]
h:f32[2] = mul c g
i:f32[2] = sub a h
outputs y=f
update "w" <- i
update "s" <- e
`,
  },
];

describe('simplify: one rewrite each', () => {
  it.each(CASES)('$name', ({ build, want }) => {
    const b = new GraphBuilder();
    build(b);
    const g = simplify(b.build());
    verify(g, 'simplify');
    expect('\n' + printGraph(g)).toBe(want);
  });
});

// ---- differential ----------------------------------------------------------------------------

/** mulberry32, the test's own seeded generator. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Random values for every input, param and state: f32 uniform in [-1, 1), i32 in [0, 3). */
function randomEnv(g: Graph, seed: number): Map<string, Tensor> {
  const u = prng(seed);
  const env = new Map<string, Tensor>();
  for (const n of g.nodes) {
    if (n.op !== 'input' && n.op !== 'param' && n.op !== 'state') continue;
    const data = Array.from({ length: numel(n.type.shape) }, () => (n.type.dtype === 'i32' ? Math.floor(u() * 3) : 2 * u() - 1));
    env.set(n.attrs.name, tensor(n.type.shape, data, n.type.dtype, 'f64'));
  }
  return env;
}

/** Every output and update of `after` equals that of `before`, elementwise within `tol` (relative to the tensor's largest magnitude). */
function expectSameResults(before: Graph, after: Graph, seed: number, tol = 1e-6): void {
  const env = randomEnv(before, seed);
  const [want, got] = [evaluate(before, env, 'f64'), evaluate(after, env, 'f64')];
  const pairs = [...[...want.outputs].map(([k, t]) => [k, t, got.outputs.get(k)] as const), ...[...want.updates].map(([k, t]) => [k, t, got.updates.get(k)] as const)];
  expect(pairs.length).toBe(before.outputs.length + before.updates.length);
  for (const [name, t, u] of pairs) {
    expect(u, name).toBeDefined();
    expect(u!.type, name).toEqual(t.type);
    const scale = Math.max(1, ...Array.from(t.data, Math.abs));
    t.data.forEach((v, i) => expect(Math.abs(u!.data[i]! - v), `${name}[${i}]`).toBeLessThanOrEqual(tol * scale));
  }
}

function mlp(): Graph {
  const b = new GraphBuilder();
  const x = b.input('x', [4, 5]);
  const h = b.relu(b.linear(x, b.param('w1', [5, 6]), b.param('b1', [6])));
  const logits = b.linear(h, b.param('w2', [6, 3]), b.param('b2', [3]));
  b.output('loss', b.softmaxCrossEntropy(logits, b.input('y', [4], 'i32')));
  b.output('probs', b.softmax(logits));
  return b.build();
}

function cnn(): Graph {
  const b = new GraphBuilder();
  const x = b.input('x', [2, 1, 6, 6]);
  const c = b.relu(b.add_(b.conv2d(x, b.param('k', [3, 1, 3, 3]), { padding: [1, 1] }), b.param('kb', [1, 3, 1, 1])));
  const p = b.reshape(b.maxPool2d(c, { kernel: [2, 2] }), [2, 27]);
  b.output('loss', b.mse(b.linear(p, b.param('w', [27, 2])), b.input('t', [2, 2])));
  return b.build();
}

/** Many identities and constants at once, with broadcasting, fan-out and an update. */
function identities(): Graph {
  const b = new GraphBuilder();
  const x = b.input('x', [3, 4]);
  const w = b.param('w', [4], { kind: 'zeros' });
  const zero = b.full(0, [3, 4]);
  const y = b.add_(b.mul(b.add_(w, zero), b.div(b.full(2, [3, 1]), b.full(2))), b.neg(b.neg(x)));
  const t = b.transpose(b.transpose(b.reshape(b.reshape(y, [12]), [4, 3]), [1, 0]), [1, 0]);
  const s = b.reduceMean(b.reduceSum(b.broadcastTo(t, [2, 4, 3]), 0, true), [1, 2]);
  b.output('s', s);
  b.output('t', b.where(b.full(1), b.slice(t, [0, 0], [4, 3]), b.exp(t)));
  b.update('w', b.sub(w, b.mul(b.reduceSum(y, 0), b.sub(b.full(1), b.full(0.9)))));
  return b.build();
}

const tinyLm = () => transformerLm({ batch: 2, seq: 4, vocab: 5, dim: 4, heads: 2, layers: 1, lr: 1e-3 });
const xor = () => loadModel(readFileSync(new URL('../../models/xor.json', import.meta.url), 'utf8'), 'models/xor.json');

describe('simplify: same results before and after', () => {
  const graphs: readonly (readonly [string, () => Graph])[] = [
    ['identities', identities],
    ['MLP forward and loss', mlp],
    ['MLP gradients', () => grad(mlp(), { loss: 'loss' }).graph],
    ['CNN gradients', () => grad(cnn(), { loss: 'loss' }).graph],
    ['xor.json gradients', () => grad(xor().graph, { loss: 'loss' }).graph],
    ['transformer LM forward', () => tinyLm().graph],
    ['transformer LM gradients', () => grad(tinyLm().graph, { loss: 'loss' }).graph],
  ];
  it.each(graphs)('%s', (_, make) => {
    const g = make();
    const s = simplify(g);
    verify(s, 'simplify');
    expect(s.nodes.length).toBeLessThanOrEqual(g.nodes.length);
    for (const seed of [1, 2, 3]) expectSameResults(g, s, seed);
  });

  it('shrinks the adjoint graph of an MLP', () => {
    const g = grad(mlp(), { loss: 'loss' }).graph;
    expect(simplify(g).nodes.length).toBeLessThan(g.nodes.length);
  });
});

describe('simplify: properties', () => {
  it('does not change its input graph', () => {
    const g = identities();
    const text = JSON.stringify(g);
    simplify(g);
    expect(JSON.stringify(g)).toBe(text);
  });

  it('is at a fixed point: a second run changes nothing', () => {
    for (const g of [identities(), grad(cnn(), { loss: 'loss' }).graph, grad(tinyLm().graph, { loss: 'loss' }).graph]) {
      const once = simplify(g);
      expect(printGraph(simplify(once))).toBe(printGraph(once));
    }
  });
});
