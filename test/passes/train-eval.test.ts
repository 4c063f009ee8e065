/**
 * @file Train and eval modes, dropout and batch normalization (issue 16), without an adapter:
 * the mode pass makes the training program (random masks, batch statistics, running statistics
 * and the random number counter updated) and the forward program (dropout the identity, running
 * statistics, nothing of theirs updated); gradients of dropout with its mask held fixed and of
 * batch normalization in both modes agree with central finite differences in float64; and batch
 * normalization agrees with PyTorch's BatchNorm2d / BatchNorm1d (test/fixtures/batchnorm-torch.json,
 * made by scripts/batchnorm-fixture.py): output, input, weight and bias gradients and the updated
 * running statistics in training, the output in eval.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { GraphBuilder, RNG_SEED, RNG_STEP, type Value } from '../../src/ir/builder.js';
import type { Graph } from '../../src/ir/graph.js';
import { evaluate } from '../../src/ir/interp.js';
import { loadModel } from '../../src/ir/schema.js';
import { tensor, type Tensor } from '../../src/ir/tensor.js';
import { verify } from '../../src/ir/verify.js';
import { grad } from '../../src/passes/autodiff.js';
import { specializeMode } from '../../src/passes/mode.js';
import { emitArtifact, trainingGraph } from '../../src/compile.js';
import { checkGrads, randomEnv, relError, uniform } from './gradcheck.js';

/** loss = sum(f * w) with fixed random weights w, so every output element matters. */
function withLoss(f: (b: GraphBuilder) => Value): Graph {
  const b = new GraphBuilder();
  const y = f(b);
  b.output('y', y);
  b.output('loss', b.reduceSum(b.mul(y, b.input('__weights', y.type.shape))));
  return b.build();
}

const ops = (g: Graph) => g.nodes.map((n) => n.op as string);

describe('the mode pass', () => {
  const model = () => {
    const b = new GraphBuilder();
    const x = b.input('x', [4, 3, 2, 2]);
    const y = b.batchNorm(x, b.param('g', [3], { kind: 'ones' }), b.param('h', [3], { kind: 'zeros' }), b.state('m', [3]), b.state('v', [3], { kind: 'ones' }));
    b.output('y', b.dropout(y, 0.5));
    return b.build();
  };

  it('the training program draws masks and updates the running statistics and the counter', () => {
    const g = specializeMode(model(), 'train');
    verify(g, 'mode-train');
    expect(ops(g)).not.toContain('is_training');
    expect(ops(g)).toContain('random_uniform');
    expect(g.updates.map((u) => u.target).sort()).toEqual(['m', RNG_STEP, 'v'].sort());
  });

  it('the forward program has no mask, no batch statistics and no updates', () => {
    const g = specializeMode(model(), 'eval');
    verify(g, 'mode-eval');
    expect(ops(g)).not.toContain('is_training');
    expect(ops(g)).not.toContain('random_uniform');
    expect(ops(g)).not.toContain('reduce_mean');
    expect(g.updates).toEqual([]);
  });

  it('the interpreter reads is_training from its mode', () => {
    const b = new GraphBuilder();
    b.output('t', b.isTraining());
    const g = b.build();
    expect(evaluate(g, new Map()).outputs.get('t')!.data[0]).toBe(0);
    expect(evaluate(g, new Map(), 'f32', 'train').outputs.get('t')!.data[0]).toBe(1);
    // The unspecialized graph in each mode equals the specialized one.
    const m = model();
    const env = randomEnv(m, 3);
    env.set(RNG_SEED, tensor([], [12345], 'i32', 'f64')).set(RNG_STEP, tensor([], [7], 'i32', 'f64'));
    for (const mode of ['train', 'eval'] as const) {
      const a = evaluate(m, env, 'f64', mode).outputs.get('y')!.data;
      const s = evaluate(specializeMode(m, mode), env, 'f64', mode).outputs.get('y')!.data;
      expect(Array.from(s)).toEqual(Array.from(a));
    }
  });

  it('two dropouts draw from different streams; the counter advances only in training', () => {
    const b = new GraphBuilder();
    const x = b.input('x', [64]);
    b.output('a', b.dropout(x, 0.5));
    b.output('b', b.dropout(x, 0.5));
    const g = specializeMode(b.build(), 'train');
    const env = new Map<string, Tensor>([['x', tensor([64], Array(64).fill(1))], [RNG_SEED, tensor([], [1], 'i32')], [RNG_STEP, tensor([], [0], 'i32')]]);
    const r = evaluate(g, env, 'f32', 'train');
    expect(Array.from(r.outputs.get('a')!.data)).not.toEqual(Array.from(r.outputs.get('b')!.data));
    expect(r.updates.get(RNG_STEP)!.data[0]).toBe(1);
  });

  it('the seed init is refused where it makes no sense, in one line naming the place', () => {
    const file = (state: object, params: object[] = []) => JSON.stringify({ version: 1, params, state: [state], nodes: [], outputs: {} });
    expect(() => loadModel(file({ name: 's', shape: [], init: { kind: 'seed' } }), 'm.json')).toThrow(/^m\.json: state\[0\]\.init: the "seed" init needs dtype "i32"$/);
    expect(() => loadModel(file({ name: 's', shape: [], dtype: 'i32', init: { kind: 'seed' } }, [{ name: 'p', shape: [2], init: { kind: 'seed' } }]), 'm.json'))
      .toThrow(/^m\.json: params\[0\]\.init: the "seed" init is for i32 state only$/);
  });

  it('a model file with dropout and batch_norm compiles to both programs', () => {
    const m = loadModel(readFileSync('models/lenet-bn-mnist.json', 'utf8'), 'lenet-bn-mnist.json');
    const t = trainingGraph(m, { verify: true });
    expect(t.graph.updates.map((u) => u.target)).toEqual(expect.arrayContaining(['bn1m', 'bn1v', 'bn2m', 'bn2v', RNG_STEP, 'c1']));
    expect(ops(specializeMode(m.graph, 'eval'))).not.toContain('random_uniform');
  });
});

describe('dropout', () => {
  const rate = 0.3;
  const g = () => {
    const b = new GraphBuilder();
    b.output('y', b.dropout(b.input('x', [4000]), rate));
    return b.build();
  };
  const env = (step: number) => new Map<string, Tensor>([['x', tensor([4000], Array(4000).fill(2))], [RNG_SEED, tensor([], [99], 'i32')], [RNG_STEP, tensor([], [step], 'i32')]]);

  it('training zeroes about `rate` of the elements and scales the rest by 1 / (1 - rate); new mask each step', () => {
    const t = specializeMode(g(), 'train');
    const y0 = evaluate(t, env(0), 'f64', 'train').outputs.get('y')!.data;
    const y1 = evaluate(t, env(1), 'f64', 'train').outputs.get('y')!.data;
    const zeros = Array.from(y0).filter((v) => v === 0).length / y0.length;
    expect(Math.abs(zeros - rate)).toBeLessThan(0.03);
    expect(new Set(Array.from(y0).filter((v) => v !== 0))).toEqual(new Set([2 / (1 - rate)]));
    expect(Array.from(y1)).not.toEqual(Array.from(y0));
  });

  it('eval is the identity', () => {
    const y = evaluate(specializeMode(g(), 'eval'), env(0), 'f64').outputs.get('y')!.data;
    expect(Array.from(y)).toEqual(Array(4000).fill(2));
  });

  it('rejects a rate outside [0, 1)', () => {
    const b = new GraphBuilder();
    expect(() => b.dropout(b.input('x', [3]), 1)).toThrow(/dropout: rate must be >= 0 and < 1, got 1/);
  });

  it('its gradient (mask held fixed: same seed and step) matches central differences in float64', () => {
    const f = specializeMode(withLoss((b) => b.dropout(b.tanh(b.param('x', [5, 7])), 0.4)), 'train');
    const e = randomEnv(f, 5, uniform);
    e.set(RNG_SEED, tensor([], [2024], 'i32', 'f64')).set(RNG_STEP, tensor([], [3], 'i32', 'f64'));
    const r = checkGrads(f, 'loss', e);
    expect(r.worst, r.where).toBeLessThanOrEqual(1e-6);
    expect(r.scale).toBeGreaterThan(1e-2);
    // Some elements were dropped: their gradient is exactly 0.
    const ad = grad(f, { loss: 'loss' });
    const dx = evaluate(ad.graph, e, 'f64').values[ad.grads.get('x')!]!.data;
    expect(Array.from(dx).filter((v) => v === 0).length).toBeGreaterThan(0);
  });
});

describe('batch normalization', () => {
  const bn = (shape: number[]) => (b: GraphBuilder) => {
    const c = shape[1]!;
    return b.batchNorm(b.param('x', shape), b.param('g', [c]), b.param('h', [c]), b.state('m', [c]), b.state('v', [c]), { momentum: 0.2, eps: 1e-3 });
  };
  /** Running variances must be positive. */
  const gen = (name: string, u: () => number) => (name === 'v' ? 0.5 + u() : 2 * u() - 1);

  for (const shape of [[3, 2, 3, 2], [6, 4]]) {
    for (const mode of ['train', 'eval'] as const) {
      it(`${mode} mode, x ${JSON.stringify(shape)}: gradients of x, gamma, beta match central differences (float64)`, () => {
        const f = specializeMode(withLoss(bn(shape)), mode);
        const r = checkGrads(f, 'loss', randomEnv(f, 9, gen));
        expect(r.worst, r.where).toBeLessThanOrEqual(1e-6);
        expect(r.scale).toBeGreaterThan(1e-2);
      });
    }
  }

  it('rejects statistics of the wrong size', () => {
    const b = new GraphBuilder();
    const x = b.input('x', [2, 3, 4, 4]);
    expect(() => b.batchNorm(x, b.param('g', [3]), b.param('h', [3]), b.state('m', [4]), b.state('v', [3]))).toThrow(/batch_norm: running_mean must be f32\[3\] \(x has 3 channels\), got f32\[4\]/);
  });

  interface Case {
    name: string; shape: number[]; momentum: number; eps: number;
    x: number[]; r: number[]; weight: number[]; bias: number[]; running_mean: number[]; running_var: number[];
    train: { y: number[]; dx: number[]; dweight: number[]; dbias: number[]; running_mean: number[]; running_var: number[] };
    eval: { y: number[] };
  }
  const fixture = JSON.parse(readFileSync('test/fixtures/batchnorm-torch.json', 'utf8')) as { cases: Case[] };

  for (const c of fixture.cases) {
    it(`agrees with PyTorch ${c.name === 'nchw' ? 'BatchNorm2d' : 'BatchNorm1d'} (${c.name}): train output, gradients, running statistics; eval output`, () => {
      const ch = c.shape[1]!;
      const b = new GraphBuilder();
      const y = b.batchNorm(b.param('x', c.shape), b.param('weight', [ch]), b.param('bias', [ch]), b.state('rm', [ch]), b.state('rv', [ch]), { momentum: c.momentum, eps: c.eps });
      b.output('y', y);
      b.output('loss', b.reduceSum(b.mul(y, b.input('r', c.shape))));
      const g = b.build();
      const env = new Map<string, Tensor>([
        ['x', tensor(c.shape, c.x, 'f32', 'f64')], ['r', tensor(c.shape, c.r, 'f32', 'f64')],
        ['weight', tensor([ch], c.weight, 'f32', 'f64')], ['bias', tensor([ch], c.bias, 'f32', 'f64')],
        ['rm', tensor([ch], c.running_mean, 'f32', 'f64')], ['rv', tensor([ch], c.running_var, 'f32', 'f64')],
      ]);
      const close = (got: ArrayLike<number>, want: number[], what: string) => {
        const m = relError(got, want, 1, what);
        expect(m.worst, m.where).toBeLessThanOrEqual(1e-9);
      };
      const t = specializeMode(g, 'train');
      const ad = grad(t, { loss: 'loss' });
      const r = evaluate(ad.graph, env, 'f64');
      close(r.outputs.get('y')!.data, c.train.y, 'y');
      close(r.values[ad.grads.get('x')!]!.data, c.train.dx, 'dx');
      close(r.values[ad.grads.get('weight')!]!.data, c.train.dweight, 'dweight');
      close(r.values[ad.grads.get('bias')!]!.data, c.train.dbias, 'dbias');
      close(r.updates.get('rm')!.data, c.train.running_mean, 'running_mean');
      close(r.updates.get('rv')!.data, c.train.running_var, 'running_var');
      const e = evaluate(specializeMode(g, 'eval'), env, 'f64');
      close(e.outputs.get('y')!.data, c.eval.y, 'eval y');
      expect(e.updates.size).toBe(0);
    });
  }
});

describe('fusion', () => {
  const labels = (g: Graph) => emitArtifact(g).dispatches.map((d) => d.label);

  it('dropout is elementwise on its index: the mask is computed inside its consumer\'s kernel', () => {
    const b = new GraphBuilder();
    b.output('y', b.relu(b.dropout(b.input('x', [64, 84]), 0.5)));
    // one kernel for the output, one for the counter's update
    expect(labels(specializeMode(b.build(), 'train'))).toEqual(['random_uniform+ge+mul+mul+relu map', 'add map']);
  });

  it('batch norm: eval is a per-channel kernel and one map; training reduces each statistic in one kernel', () => {
    const b = new GraphBuilder();
    const x = b.input('x', [16, 6, 12, 12]);
    b.output('y', b.relu(b.batchNorm(x, b.param('g', [6]), b.param('h', [6]), b.state('m', [6]), b.state('v', [6]))));
    const g = b.build();
    expect(labels(specializeMode(g, 'eval'))).toEqual(['reshape+add+rsqrt map', 'reshape+sub+mul+reshape+mul+reshape+add+relu map']);
    const train = labels(specializeMode(g, 'train'));
    // mean; variance with (x - mean)^2 in its body and rsqrt(var + eps) after it; the normalization,
    // affine and relu in one map; one map per running statistic
    expect(train.filter((l) => l.includes('reduce'))).toEqual(['reduce_mean reduce(workgroup)', 'sub+mul+reduce_mean+add+rsqrt reduce(workgroup)']);
    expect(train).toContain('sub+mul+reshape+mul+reshape+add+relu map');
    expect(train).toHaveLength(5);
  });
});
