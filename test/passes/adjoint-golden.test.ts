/**
 * @file A golden test of the adjoint IR after simplification, for the smallest interesting
 * training graph: a 2-layer MLP (batch 2, 3 -> 4 -> 3, relu) with softmax cross-entropy. The whole
 * printed graph is pinned as an inline string (reviewed line by line), and focused checks say
 * which parts of it are the textbook backward pass, so that a change to autodiff or simplify that
 * rewrites the text can be judged against them: the output error is (softmax - one_hot) / B, the
 * hidden error is (error @ W2^T) masked by relu' (a `where` on `gt(h, 0)`), the weight gradients
 * are input^T @ error, and every node is reachable from an output. The checks match the graph's
 * structure (Cranelift's check lines, on nodes rather than text) and evaluate the matched values
 * against the same quantities computed by hand.
 */
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../src/ir/builder.js';
import type { Graph, ValueId } from '../../src/ir/graph.js';
import { evaluate } from '../../src/ir/interp.js';
import type { Op } from '../../src/ir/ops.js';
import { printGraph, printNode } from '../../src/ir/printer.js';
import { tensor, type Tensor } from '../../src/ir/tensor.js';
import { verify } from '../../src/ir/verify.js';
import { grad } from '../../src/passes/autodiff.js';
import { simplify } from '../../src/passes/simplify.js';

const [B, IN, HID, OUT] = [2, 3, 4, 3];

function mlp(): Graph {
  const b = new GraphBuilder();
  const x = b.input('x', [B, IN]);
  const y = b.input('y', [B], 'i32');
  const h = b.relu(b.linear(x, b.param('w1', [IN, HID]), b.param('b1', [HID])));
  b.output('loss', b.softmaxCrossEntropy(b.linear(h, b.param('w2', [HID, OUT]), b.param('b2', [OUT])), y));
  return b.build();
}

const adjoint = simplify(grad(mlp(), { loss: 'loss' }).graph);

// ---- structural patterns -------------------------------------------------------------------

/** A node with this op (and these attributes and operands, if given); `ref` is a value bound
 *  earlier (by `as`, or a source by name); `full` a constant. */
type Pat =
  | { readonly op: Op; readonly attrs?: Readonly<Record<string, unknown>>; readonly args?: readonly Pat[]; readonly as?: string }
  | { readonly ref: string }
  | { readonly full: number }
  | { readonly shaped: Pat };

const op = (name: Op, ...args: Pat[]): Pat => ({ op: name, args });
const opA = (name: Op, attrs: Readonly<Record<string, unknown>>, ...args: Pat[]): Pat => ({ op: name, attrs, args });
const as = (name: string, p: Pat): Pat => ({ ...p, as: name });
const ref = (name: string): Pat => ({ ref: name });
const full = (value: number): Pat => ({ full: value });
/** `p`, possibly under reshapes and broadcasts (shape plumbing the checks do not pin). */
const shaped = (p: Pat): Pat => ({ shaped: p });

function matches(g: Graph, id: ValueId, p: Pat, bound: Map<string, ValueId>): boolean {
  const saved = new Map(bound);
  const ok = matchesAt(g, id, p, bound);
  if (!ok) {
    bound.clear();
    saved.forEach((v, k) => bound.set(k, v));
  }
  return ok;
}

function matchesAt(g: Graph, id: ValueId, p: Pat, bound: Map<string, ValueId>): boolean {
  const n = g.nodes[id]!;
  if ('ref' in p) return bound.get(p.ref) === id;
  if ('full' in p) return n.op === 'full' && n.attrs.value === p.full;
  if ('shaped' in p) {
    for (let at = id; ; at = g.nodes[at]!.inputs[0]!) {
      if (matches(g, at, p.shaped, bound)) return true;
      if (g.nodes[at]!.op !== 'reshape' && g.nodes[at]!.op !== 'broadcast_to') return false;
    }
  }
  if (n.op !== p.op) return false;
  const attrs = n.attrs as Readonly<Record<string, unknown>>;
  if (p.attrs && !Object.entries(p.attrs).every(([k, v]) => JSON.stringify(attrs[k]) === JSON.stringify(v))) return false;
  if (p.args && (p.args.length !== n.inputs.length || !p.args.every((a, i) => matches(g, n.inputs[i]!, a, bound)))) return false;
  if (p.as !== undefined) {
    if (bound.has(p.as) && bound.get(p.as) !== id) return false;
    bound.set(p.as, id);
  }
  return true;
}

/** Sources by name, then the value of output `out` matched against `p`; returns the bindings. */
function check(g: Graph, out: string, p: Pat, bound = new Map<string, ValueId>()): Map<string, ValueId> {
  g.nodes.forEach((n, i) => {
    if (n.op === 'input' || n.op === 'param') bound.set(n.attrs.name, i);
  });
  const id = g.outputs.find((o) => o.name === out)!.value;
  expect(matches(g, id, p, bound), `${out} = ${printNode(g.nodes[id]!, id)} does not match ${JSON.stringify(p)} in\n${printGraph(g)}`).toBe(true);
  return bound;
}

// The forward pass, as the patterns below refer to it.
const hidden = as('h', op('relu', op('add', op('matmul', ref('x'), ref('w1')), ref('b1'))));
const logits = as('logits', op('add', op('matmul', ref('h'), ref('w2')), ref('b2')));
const expShifted = as('p', op('exp', op('sub', logits, op('stop_gradient', opA('reduce_max', { axes: [1] }, ref('logits'))))));
const rowSum = as('q', opA('reduce_sum', { axes: [1], keepdims: true }, expShifted));
/** -1/B one_hot: the cotangent of log_softmax at the labels. */
const scaledOneHot = as('-onehot/B', op('mul', full(-1 / B), as('onehot', op('one_hot', ref('y')))));
/**
 * The output error, as simplify leaves it: -onehot/B + p * (sum_j onehot/B) / q. As each row of
 * one_hot sums to 1 (for labels in range), this is (p / q - onehot) / B = (softmax - one_hot) / B.
 */
const outputError = as('delta2', op('add', scaledOneHot,
  op('mul', shaped(op('div', shaped(opA('reduce_sum', { axes: [1] }, op('neg', ref('-onehot/B')))), rowSum)), ref('p'))));
/** relu' read from the output h: where(h > 0, delta2 @ W2^T, 0). */
const hiddenError = as('delta1', op('where', op('gt', ref('h'), full(0)), op('matmul', ref('delta2'), op('transpose', ref('w2'))), full(0)));

// ---- values by hand ------------------------------------------------------------------------

const ENV = new Map<string, Tensor>([
  ['x', tensor([B, IN], [0.5, -1.2, 0.8, -0.3, 0.9, 1.1], 'f32', 'f64')],
  ['y', tensor([B], [2, 0], 'i32')],
  ['w1', tensor([IN, HID], [0.2, -0.5, 0.7, 0.1, -0.4, 0.3, 0.6, -0.8, 0.9, 0.05, -0.2, 0.4], 'f32', 'f64')],
  ['b1', tensor([HID], [0.1, -0.1, 0.05, 0.2], 'f32', 'f64')],
  ['w2', tensor([HID, OUT], [0.3, -0.6, 0.2, 0.5, 0.4, -0.7, -0.2, 0.8, 0.1, 0.6, -0.3, 0.9], 'f32', 'f64')],
  ['b2', tensor([OUT], [0.05, -0.05, 0.1], 'f32', 'f64')],
]);
const rows = (name: string, cols: number): number[][] => {
  const d = Array.from(ENV.get(name)!.data);
  return Array.from({ length: d.length / cols }, (_, i) => d.slice(i * cols, (i + 1) * cols));
};
const matmul = (a: number[][], b: number[][]) => a.map((r) => b[0]!.map((_, j) => r.reduce((s, v, k) => s + v * b[k]![j]!, 0)));
const T = (a: number[][]) => a[0]!.map((_, j) => a.map((r) => r[j]!));
const [X, W1, W2] = [rows('x', IN), rows('w1', HID), rows('w2', OUT)];
const [B1, B2] = [rows('b1', HID)[0]!, rows('b2', OUT)[0]!];
const H = matmul(X, W1).map((r) => r.map((v, j) => Math.max(0, v + B1[j]!)));
const LOGITS = matmul(H, W2).map((r) => r.map((v, j) => v + B2[j]!));
const LABELS = Array.from(ENV.get('y')!.data);
/** (softmax(logits) - one_hot(y)) / B */
const DELTA2 = LOGITS.map((r, i) => {
  const z = r.reduce((s, v) => s + Math.exp(v), 0);
  return r.map((v, j) => (Math.exp(v) / z - (LABELS[i] === j ? 1 : 0)) / B);
});
/** (delta2 @ W2^T) * [h > 0] */
const DELTA1 = matmul(DELTA2, T(W2)).map((r, i) => r.map((v, j) => (H[i]![j]! > 0 ? v : 0)));

const values = evaluate(adjoint, ENV, 'f64').values;
const expectValue = (id: ValueId, want: number[][]) => {
  const got = Array.from(values[id]!.data);
  want.flat().forEach((w, i) => expect(Math.abs(got[i]! - w), `[${i}]: ${got[i]} vs ${w}`).toBeLessThanOrEqual(1e-14));
  expect(got.length).toBe(want.flat().length);
};

describe('adjoint IR of a 2-layer MLP with softmax cross-entropy, after simplify', () => {
  it('prints as reviewed', () => {
    verify(adjoint, 'simplify');
    expect(printGraph(adjoint)).toBe(`a:f32[2,3] = input[name="x"]
b:i32[2] = input[name="y"]
c:f32[3,4] = param[name="w1",init=glorot_uniform]
d:f32[4] = param[name="b1",init=glorot_uniform]
e:f32[2,4] = matmul a c
f:f32[2,4] = add e d
g:f32[2,4] = relu f
h:f32[4,3] = param[name="w2",init=glorot_uniform]
i:f32[3] = param[name="b2",init=glorot_uniform]
j:f32[2,3] = matmul g h
k:f32[2,3] = add j i
l:f32[2,3] = one_hot[depth=3] b
m:f32[2,1] = reduce_max[axes=[1],keepdims=true] k
n:f32[2,1] = stop_gradient m
o:f32[2,3] = sub k n
p:f32[2,3] = exp o
q:f32[2,1] = reduce_sum[axes=[1],keepdims=true] p
r:f32[2,1] = log q
s:f32[2,3] = sub o r
t:f32[2,3] = mul l s
u:f32[] = reduce_sum[axes=[0,1],keepdims=false] t
v:f32[] = full[value=0.5]
w:f32[] = mul u v
x:f32[] = neg w
y:f32[2,3] = full[value=-0.5]
z:f32[2,3] = mul y l
aa:f32[2,3] = neg z
ab:f32[2,1] = reduce_sum[axes=[1],keepdims=true] aa
ac:f32[2,1] = div ab q
ad:f32[2,3] = broadcast_to[shape=[2,3]] ac
ae:f32[2,3] = mul ad p
af:f32[2,3] = add z ae
ag:f32[3] = reduce_sum[axes=[0],keepdims=false] af
ah:f32[3,4] = transpose[perm=[1,0]] h
ai:f32[2,4] = matmul af ah
aj:f32[4,2] = transpose[perm=[1,0]] g
ak:f32[4,3] = matmul aj af
al:f32[] = full[value=0]
am:f32[2,4] = gt g al
an:f32[2,4] = where am ai al
ao:f32[4] = reduce_sum[axes=[0],keepdims=false] an
ap:f32[3,2] = transpose[perm=[1,0]] a
aq:f32[3,4] = matmul ap an
outputs loss=x grad:w1=aq grad:b1=ao grad:w2=ak grad:b2=ag
`);
  });

  it('the output error is (softmax - one_hot) / B, built from exp of the shifted logits, their row sum and one_hot', () => {
    const bound = check(adjoint, 'grad:w2', op('matmul', op('transpose', hidden), outputError));
    expectValue(bound.get('delta2')!, DELTA2);
    expectValue(bound.get('logits')!, LOGITS);
  });

  it("the hidden error is (error @ W2^T) masked by relu' read from h", () => {
    const bound = check(adjoint, 'grad:w2', op('matmul', op('transpose', hidden), outputError));
    check(adjoint, 'grad:w1', op('matmul', op('transpose', ref('x')), hiddenError), bound);
    const dead = H.flat().filter((v) => v === 0).length;
    expect(dead > 0 && dead < B * HID, `${dead} of ${B * HID} hidden units are 0: the mask should be mixed`).toBe(true);
    expectValue(bound.get('delta1')!, DELTA1);
  });

  it('weight gradients are input^T @ error; bias gradients are the error summed over the batch', () => {
    const bound = check(adjoint, 'grad:w2', op('matmul', op('transpose', hidden), outputError));
    check(adjoint, 'grad:w1', op('matmul', op('transpose', ref('x')), hiddenError), bound);
    check(adjoint, 'grad:b2', shaped(opA('reduce_sum', { axes: [0] }, ref('delta2'))), bound);
    check(adjoint, 'grad:b1', shaped(opA('reduce_sum', { axes: [0] }, ref('delta1'))), bound);
    const out = (name: string) => adjoint.outputs.find((o) => o.name === name)!.value;
    expectValue(out('grad:w2'), matmul(T(H), DELTA2));
    expectValue(out('grad:w1'), matmul(T(X), DELTA1));
  });

  it('has no dead nodes: every node is reachable from an output', () => {
    const live = adjoint.nodes.map(() => false);
    for (const o of adjoint.outputs) live[o.value] = true;
    for (let i = adjoint.nodes.length - 1; i >= 0; i--) if (live[i]) for (const x of adjoint.nodes[i]!.inputs) live[x] = true;
    expect(adjoint.nodes.map((n, i) => printNode(n, i)).filter((_, i) => !live[i])).toEqual([]);
  });
});
