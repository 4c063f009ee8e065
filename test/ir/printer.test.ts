/**
 * @file Printer goldens: tiny graphs, one behaviour each, with the printed IR inline. Together they
 * print every op with its attributes (a last test checks that no op was left out), labels, outputs
 * and updates, and value names past z.
 */
import { describe, expect, it } from 'vitest';
import { F32_LOWEST, GraphBuilder, OPS, printGraph, printNode, valueName, type Graph } from '../../src/ir/index.js';

const printed = new Set<string>();

/** Prints the graph and remembers which ops were shown. */
function show(b: GraphBuilder): string {
  const g: Graph = b.build();
  for (const n of g.nodes) printed.add(n.op);
  return printGraph(g);
}

describe('printer', () => {
  it('sources show their name and init; shape and dtype are in the type', () => {
    const b = new GraphBuilder();
    b.input('x', [2, 3]);
    b.input('labels', [2], 'i32');
    b.param('w0', [3, 4]);
    b.param('w1', [4], { kind: 'zeros' });
    b.param('w2', [4], { kind: 'ones' });
    b.param('w3', [4], { kind: 'constant', value: 0.5 });
    b.param('w4', [4], { kind: 'uniform', low: -0.1, high: 0.1 });
    b.param('w5', [4], { kind: 'normal', std: 0.02 });
    b.param('w6', [4, 4], { kind: 'he_normal' });
    b.state('step', [], { kind: 'zeros' }, 'i32');
    expect(show(b)).toMatchInlineSnapshot(`
      "a:f32[2,3] = input[name="x"]
      b:i32[2] = input[name="labels"]
      c:f32[3,4] = param[name="w0",init=glorot_uniform]
      d:f32[4] = param[name="w1",init=zeros]
      e:f32[4] = param[name="w2",init=ones]
      f:f32[4] = param[name="w3",init=constant(0.5)]
      g:f32[4] = param[name="w4",init=uniform(-0.1,0.1)]
      h:f32[4] = param[name="w5",init=normal(0.02)]
      i:f32[4,4] = param[name="w6",init=he_normal]
      j:i32[] = state[name="step",init=zeros]
      "
    `);
  });

  it('full shows its value and iota its axis', () => {
    const b = new GraphBuilder();
    b.full(0.5);
    b.full(-3, [2, 2], 'i32');
    b.iota([2, 3], 1);
    b.iota([4], 0, 'f32');
    expect(show(b)).toMatchInlineSnapshot(`
      "a:f32[] = full[value=0.5]
      b:i32[2,2] = full[value=-3]
      c:i32[2,3] = iota[axis=1]
      d:f32[4] = iota[axis=0]
      "
    `);
  });

  it('elementwise ops show no attributes, except cast its dtype', () => {
    const b = new GraphBuilder();
    const x = b.input('x', [2]);
    for (const op of ['neg', 'abs', 'exp', 'log', 'sqrt', 'rsqrt', 'reciprocal', 'tanh', 'sigmoid', 'relu', 'sin', 'cos'] as const) b.unary(op, x);
    for (const op of ['add', 'sub', 'mul', 'div', 'max', 'min', 'pow', 'eq', 'ne', 'lt', 'le', 'gt', 'ge'] as const) b.binary(op, x, x);
    b.where(x, x, x);
    b.cast(x, 'i32');
    b.stopGradient(x);
    expect(show(b)).toMatchInlineSnapshot(`
      "a:f32[2] = input[name="x"]
      b:f32[2] = neg a
      c:f32[2] = abs a
      d:f32[2] = exp a
      e:f32[2] = log a
      f:f32[2] = sqrt a
      g:f32[2] = rsqrt a
      h:f32[2] = reciprocal a
      i:f32[2] = tanh a
      j:f32[2] = sigmoid a
      k:f32[2] = relu a
      l:f32[2] = sin a
      m:f32[2] = cos a
      n:f32[2] = add a a
      o:f32[2] = sub a a
      p:f32[2] = mul a a
      q:f32[2] = div a a
      r:f32[2] = max a a
      s:f32[2] = min a a
      t:f32[2] = pow a a
      u:f32[2] = eq a a
      v:f32[2] = ne a a
      w:f32[2] = lt a a
      x:f32[2] = le a a
      y:f32[2] = gt a a
      z:f32[2] = ge a a
      aa:f32[2] = where a a a
      ab:i32[2] = cast[dtype="i32"] a
      ac:f32[2] = stop_gradient a
      "
    `);
  });

  it('reductions show axes and keepdims', () => {
    const b = new GraphBuilder();
    const x = b.input('x', [2, 3, 4]);
    b.reduceSum(x, [0, 2]);
    b.reduceMax(x, -1, true);
    b.reduceMean(x);
    expect(show(b)).toMatchInlineSnapshot(`
      "a:f32[2,3,4] = input[name="x"]
      b:f32[3] = reduce_sum[axes=[0,2],keepdims=false] a
      c:f32[2,3,1] = reduce_max[axes=[2],keepdims=true] a
      d:f32[] = reduce_mean[axes=[0,1,2],keepdims=false] a
      "
    `);
  });

  it('movement ops show their attributes', () => {
    const b = new GraphBuilder();
    const x = b.input('x', [2, 3]);
    b.reshape(x, [3, 2]);
    b.transpose(x);
    b.broadcastTo(x, [4, 2, 3]);
    b.slice(x, [0, 1], [2, 3], [1, 2]);
    b.pad(x, [1, 0], [0, 2], 0, [1, 1]);
    b.pad(x, [0, 1], [0, 1], F32_LOWEST);
    b.pad(x, [1, 1], [0, 0], -Infinity);
    b.concat([x, x], -1);
    expect(show(b)).toMatchInlineSnapshot(`
      "a:f32[2,3] = input[name="x"]
      b:f32[3,2] = reshape[shape=[3,2]] a
      c:f32[3,2] = transpose[perm=[1,0]] a
      d:f32[4,2,3] = broadcast_to[shape=[4,2,3]] a
      e:f32[2,1] = slice[starts=[0,1],ends=[2,3],steps=[1,2]] a
      f:f32[4,7] = pad[low=[1,0],high=[0,2],interior=[1,1],value=0] a
      g:f32[2,5] = pad[low=[0,1],high=[0,1],interior=[0,0],value=-3.4028234663852886e+38] a
      h:f32[3,4] = pad[low=[1,1],high=[0,0],interior=[0,0],value=-inf] a
      i:f32[2,6] = concat[axis=1] a a
      "
    `);
  });

  it('contractions and indexing', () => {
    const b = new GraphBuilder();
    const t = b.input('table', [5, 3]);
    const i = b.input('i', [2], 'i32');
    b.matmul(t, b.mT(t));
    const rows = b.gather(t, i);
    b.scatterAdd(i, rows, 5);
    b.oneHot(i, 10);
    expect(show(b)).toMatchInlineSnapshot(`
      "a:f32[5,3] = input[name="table"]
      b:i32[2] = input[name="i"]
      c:f32[3,5] = transpose[perm=[1,0]] a
      d:f32[5,5] = matmul a c
      e:f32[2,3] = gather a b
      f:f32[5,3] = scatter_add[rows=5] b e
      g:f32[2,10] = one_hot[depth=10] b
      "
    `);
  });

  it('convolutions show stride, padding, dilation, and the size or kernel of their gradients', () => {
    const b = new GraphBuilder();
    const x = b.input('x', [1, 2, 8, 8]);
    const w = b.input('w', [4, 2, 3, 3]);
    const y = b.conv2d(x, w, { stride: [2, 2], padding: [1, 1] });
    b.add('conv2d_input_grad', { stride: [2, 2], padding: [1, 1], dilation: [1, 1], size: [8, 8] }, [y, w]);
    b.add('conv2d_filter_grad', { stride: [2, 2], padding: [1, 1], dilation: [1, 1], kernel: [3, 3] }, [x, y]);
    expect(show(b)).toMatchInlineSnapshot(`
      "a:f32[1,2,8,8] = input[name="x"]
      b:f32[4,2,3,3] = input[name="w"]
      c:f32[1,4,4,4] = conv2d[stride=[2,2],padding=[1,1],dilation=[1,1]] a b
      d:f32[1,2,8,8] = conv2d_input_grad[stride=[2,2],padding=[1,1],dilation=[1,1],size=[8,8]] c b
      e:f32[4,2,3,3] = conv2d_filter_grad[stride=[2,2],padding=[1,1],dilation=[1,1],kernel=[3,3]] a c
      "
    `);
  });

  it('labels print as comments, but a source is not labelled with its own name', () => {
    const b = new GraphBuilder();
    const x = b.input('x', [2]);
    b.label(b.relu(x), 'h1');
    b.label(x, 'x');
    expect(show(b)).toMatchInlineSnapshot(`
      "a:f32[2] = input[name="x"]
      b:f32[2] = relu a  # h1
      "
    `);
  });

  it('outputs and updates print after the nodes', () => {
    const b = new GraphBuilder();
    const w = b.param('w', [2], { kind: 'zeros' });
    const s = b.state('step', [], { kind: 'zeros' }, 'i32');
    b.output('loss', b.reduceSum(w));
    b.output('w_out', w);
    b.update('w', b.mul(w, 0.5));
    b.update('step', b.add_(s, 1));
    expect(show(b)).toMatchInlineSnapshot(`
      "a:f32[2] = param[name="w",init=zeros]
      b:i32[] = state[name="step",init=zeros]
      c:f32[] = reduce_sum[axes=[0],keepdims=false] a
      d:f32[] = full[value=0.5]
      e:f32[2] = mul a d
      f:i32[] = full[value=1]
      g:i32[] = add b f
      outputs loss=c w_out=a
      update "w" <- e
      update "step" <- g
      "
    `);
  });

  it('value names go on past z: aa, ab, …, az, ba, …, zz, aaa', () => {
    expect([0, 1, 25, 26, 27, 51, 52, 701, 702, 703].map(valueName)).toEqual(
      ['a', 'b', 'z', 'aa', 'ab', 'az', 'ba', 'zz', 'aaa', 'aab']);
    const b = new GraphBuilder();
    let v = b.input('x', [1]);
    for (let i = 0; i < 28; i++) v = b.neg(v);
    const lines = show(b).trimEnd().split('\n');
    expect(lines.slice(24)).toEqual([
      'y:f32[1] = neg x',
      'z:f32[1] = neg y',
      'aa:f32[1] = neg z',
      'ab:f32[1] = neg aa',
      'ac:f32[1] = neg ab',
    ]);
  });

  it('printNode prints one node under a given id', () => {
    const b = new GraphBuilder();
    const x = b.input('x', [2, 3]);
    b.matmul(x, b.mT(x));
    const g = b.build();
    expect(printNode(g.nodes[2]!, 2)).toBe('c:f32[2,2] = matmul a b');
    expect(printNode(g.nodes[2]!, 27)).toBe('ab:f32[2,2] = matmul a b');
  });

  it('random_uniform shows its shape and stream; is_training takes nothing', () => {
    const b = new GraphBuilder();
    b.output('y', b.mul(b.randomUniform([2, 3]), b.isTraining()));
    expect(show(b)).toMatchInlineSnapshot(`
      "a:i32[] = state[name="rng:seed",init=seed]
      b:i32[] = state[name="rng:step",init=zeros]
      c:f32[] = is_training
      d:i32[] = full[value=1]
      e:i32[] = add b d
      f:i32[] = where c e b
      g:f32[2,3] = random_uniform[shape=[2,3],stream=0] a b
      h:f32[] = is_training
      i:f32[2,3] = mul g h
      outputs y=i
      update "rng:step" <- f
      "
    `);
  });

  it('every op was printed by some test above', () => {
    expect(OPS.filter((op) => !printed.has(op))).toEqual([]);
  });
});
