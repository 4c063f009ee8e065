/**
 * @file Verifier tests: hand-broken graphs, one defect each, and the exact VerifyError each gives.
 * Every message starts with the pass name and names the offending node in printer form.
 */
import { describe, expect, it } from 'vitest';
import { GraphBuilder, VerifyError, verify, type Graph, type Node } from '../../src/ir/index.js';

/** x:f32[2], w param f32[2], h = relu x, y = mul h w; output y. */
function small(): Graph {
  const b = new GraphBuilder();
  const x = b.input('x', [2]);
  const w = b.param('w', [2], { kind: 'zeros' });
  const h = b.relu(x);
  b.output('y', b.mul(h, w));
  return b.build();
}

const withNode = (g: Graph, id: number, f: (n: Node) => Node): Graph => ({ ...g, nodes: g.nodes.map((n, i) => (i === id ? f(n) : n)) });

function verifyError(g: Graph, after = 'simplify'): string {
  try {
    verify(g, after);
  } catch (e) {
    expect(e).toBeInstanceOf(VerifyError);
    return (e as Error).message;
  }
  throw new Error('verify accepted the graph');
}

describe('verify', () => {
  it('accepts a well-formed graph with updates', () => {
    const b = new GraphBuilder();
    const w = b.param('w', [2], { kind: 'zeros' });
    b.output('loss', b.reduceSum(w));
    b.update('w', b.mul(w, 0.5));
    expect(() => verify(b.build())).not.toThrow();
  });

  it('an input that refers to a later node', () => {
    const g = withNode(small(), 2, (n) => ({ ...n, inputs: [3] }) as Node);
    expect(verifyError(g)).toBe('simplify: node c:f32[2] = relu d: input 3 is not an earlier node');
  });

  it('an input that refers to the node itself', () => {
    const g = withNode(small(), 2, (n) => ({ ...n, inputs: [2] }) as Node);
    expect(verifyError(g)).toBe('simplify: node c:f32[2] = relu c: input 2 is not an earlier node');
  });

  it('a stored type that the shape rule does not give', () => {
    const g = withNode(small(), 2, (n) => ({ ...n, type: { dtype: 'f32', shape: [3] } }));
    expect(verifyError(g)).toBe('simplify: node c:f32[3] = relu a: stored type f32[3] but the rule gives f32[2]');
    const h = withNode(small(), 3, (n) => ({ ...n, type: { dtype: 'i32', shape: [2] } }));
    expect(verifyError(h)).toBe('simplify: node d:i32[2] = mul c b: stored type i32[2] but the rule gives f32[2]');
  });

  it('operands the shape rule rejects', () => {
    const b = new GraphBuilder();
    const x = b.input('x', [2, 3]);
    b.matmul(x, b.mT(x));
    const g = withNode(b.build(), 2, (n) => ({ ...n, inputs: [0, 0] }) as Node);
    expect(verifyError(g)).toBe('simplify: node c:f32[2,2] = matmul a a: matmul: inner dims differ: [2,3] @ [2,3]');
  });

  it('two sources with the same name', () => {
    const b = new GraphBuilder();
    b.input('x', [2]);
    b.param('w', [2], { kind: 'zeros' });
    const g = b.build();
    const dup = withNode(g, 1, (n) => ({ ...n, op: 'state', attrs: { name: 'x', shape: [2], dtype: 'f32', init: { kind: 'zeros' } } }) as Node);
    expect(verifyError(dup)).toBe('simplify: node b:f32[2] = state[name="x",init=zeros]: name "x" is used twice');
  });

  it('an unknown op', () => {
    const g = withNode(small(), 2, (n) => ({ ...n, op: 'frobnicate' }) as unknown as Node);
    expect(verifyError(g)).toBe('simplify: node c:f32[2] = frobnicate a: unknown op "frobnicate"');
  });

  it('an update whose target is not a param or state', () => {
    const g = { ...small(), updates: [{ target: 'x', value: 2 }] };
    expect(verifyError(g)).toBe('simplify: update "x" <- c:f32[2] = relu a: the target is not a param or state');
    const none = { ...small(), updates: [{ target: 'nope', value: 2 }] };
    expect(verifyError(none)).toBe('simplify: update "nope" <- c:f32[2] = relu a: the target is not a param or state');
  });

  it('an update whose value has the wrong type', () => {
    const b = new GraphBuilder();
    const w = b.param('w', [2], { kind: 'zeros' });
    b.update('w', b.reduceSum(w));
    expect(verifyError(b.build())).toBe(
      'simplify: update "w" <- b:f32[] = reduce_sum[axes=[0],keepdims=false] a: type f32[] does not match a:f32[2] = param[name="w",init=zeros]');
  });

  it('a target updated twice', () => {
    const g = { ...small(), updates: [{ target: 'w', value: 2 }, { target: 'w', value: 3 }] };
    expect(verifyError(g)).toBe('simplify: update "w" <- d:f32[2] = mul c b: "w" is updated twice');
  });

  it('an update or output that refers to no node', () => {
    expect(verifyError({ ...small(), updates: [{ target: 'w', value: 9 }] })).toBe('simplify: update "w" <- 9: refers to no node');
    expect(verifyError({ ...small(), outputs: [{ name: 'y', value: -1 }] })).toBe('simplify: output "y" refers to no node');
  });

  it('an output defined twice', () => {
    const g = { ...small(), outputs: [{ name: 'y', value: 3 }, { name: 'y', value: 2 }] };
    expect(verifyError(g)).toBe('simplify: output "y" is defined twice');
  });

  it('names the pass it ran after, "graph" by default', () => {
    const g = withNode(small(), 2, (n) => ({ ...n, inputs: [3] }) as Node);
    expect(() => verify(g)).toThrowError(/^graph: node c:f32\[2\] = relu d: /);
    expect(verifyError(g, 'autodiff')).toMatch(/^autodiff: /);
  });
});
