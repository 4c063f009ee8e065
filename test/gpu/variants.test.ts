/**
 * @file Every variant of every kernel kind, run on the adapter against the interpreter: each case
 * is compiled once per variant name its dispatches offer (the program then runs only that variant,
 * the default where it does not fit), and one step's outputs and in-place updates must agree.
 * The cases cover partial tiles, batches, transposed operands, fused epilogues, split K, column
 * sums, convolutions, reductions (serial, workgroup, split, subgroup) and row kernels; the last test
 * checks that every variant of every table ran in some case. Programs are compiled for the
 * device's `subgroups` feature (both CPU adapters have it), so the subgroup variants run too (where
 * the device's subgroups are wider than 4, also compiled for subgroups of 4: the variants offered
 * only there, and quadBroadcast, run on it as well); on a device without it they must be absent,
 * which the coverage test checks instead.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emitArtifact } from '../../src/compile.js';
import { VARIANTS } from '../../src/codegen/wgsl.js';
import { GraphBuilder } from '../../src/ir/builder.js';
import type { Graph } from '../../src/ir/graph.js';
import { evaluate } from '../../src/ir/interp.js';
import { grad } from '../../src/passes/autodiff.js';
import { simplify } from '../../src/passes/simplify.js';
import { deviceLimits, getDevice } from '../../src/runtime/device.js';
import { DeviceError } from '../../src/ir/errors.js';
import { Program } from '../../src/runtime/program.js';
import { maxRelError, randomEnv } from './harness.js';

let device: GPUDevice;
/** Whether the device has `subgroups`: the programs are compiled for it. */
let subgroups = false;
/** The device's smallest subgroup: the subgroup matmuls broadcast from that many lanes (up to 8). */
let subgroupMinSize: number | undefined;
beforeAll(async () => {
  device = await getDevice({ quiet: true });
  ({ subgroups, subgroupMinSize } = deviceLimits(device));
});
afterAll(() => device?.destroy());

const kindOf = (label: string): keyof typeof VARIANTS => (label.includes(' matmul') ? 'matmul' : label.includes(' reduce') ? 'reduce' : label.includes(' rows') ? 'rows' : 'map');

function graph(build: (b: GraphBuilder) => void): Graph {
  const b = new GraphBuilder();
  build(b);
  return b.build();
}

const cases: { name: string; g: Graph; tol?: number }[] = [
  {
    // One program of several matmuls: each variant's program compiles them at once.
    name: 'partial tiles with a bias + relu epilogue, batches, transposed operands, a convolution',
    g: graph((b) => {
      b.output('tiles', b.relu(b.add_(b.matmul(b.input('a', [37, 45]), b.input('b', [45, 33])), b.input('c', [33]))));
      b.output('batched', b.matmul(b.transpose(b.input('f', [2, 3, 16, 33]), [0, 1, 3, 2]), b.input('h', [2, 3, 16, 34])));
      b.output('transposed', b.matmul(b.transpose(b.input('p', [24, 40])), b.transpose(b.input('q', [36, 24]))));
      b.output('conv', b.relu(b.conv2d(b.input('x', [2, 3, 12, 12]), b.input('w', [40, 3, 3, 3]), { stride: [1, 1], padding: [1, 1], dilation: [1, 1] })));
    }),
  },
  {
    name: 'split K: [32,2048] x [2048,32] and [4,4096] x [4096,4]', tol: 1e-4,
    g: graph((b) => {
      b.output('y', b.matmul(b.input('a', [32, 2048]), b.input('b', [2048, 32])));
      b.output('z', b.matmul(b.input('c', [4, 4096]), b.input('d', [4096, 4])));
    }),
  },
  {
    name: 'column sums with in-place SGD on weights and biases, whole K (x[64,40]) and split K (x[1500,40])', tol: 1e-4,
    g: graph((b) => {
      for (const [i, batch] of [[1, 64], [2, 1500]] as const) {
        const [x, dy, w, bias] = [b.input(`x${i}`, [batch, 40]), b.input(`dy${i}`, [batch, 36]), b.param(`w${i}`, [40, 36]), b.param(`bias${i}`, [36])];
        b.update(`w${i}`, b.sub(w, b.mul(b.matmul(b.transpose(x), dy), 0.1)));
        b.update(`bias${i}`, b.sub(bias, b.mul(b.reduceSum(dy, 0), 0.1)));
      }
    }),
  },
  {
    name: 'reductions (sum [8,300] over 1, max [300,10] over 1, a split sum of [70000]), rows (softmax of [6,200] and [300,10]) and a map', tol: 1e-4,
    g: graph((b) => {
      b.output('s', b.reduceSum(b.input('x', [8, 300]), 1));
      b.output('m', b.add('reduce_max', { axes: [1], keepdims: false }, [b.input('z', [300, 10])]));
      b.output('t', b.reduceSum(b.input('u', [70000]), 0));
      b.output('p', b.softmax(b.input('v', [6, 200]), -1));
      b.output('q', b.softmax(b.input('w', [300, 10]), -1));
      b.output('e', b.exp(b.input('y', [7, 9])));
    }),
  },
  {
    // Sizes below the subgroup size (4 on SwiftShader, 8 on lavapipe), odd sizes, not multiples of
    // the workgroup (64), over the last and the first axis, i32 sums and maxima.
    name: 'odd and sub-subgroup sizes: f32 sums over 3, 7, 65, 1000 and down columns of 301, max over 2 and 65, i32 sum and max, softmax rows of 3 and 1000, log-softmax and layernorm rows of 77', tol: 1e-4,
    g: graph((b) => {
      for (const r of [3, 7, 65, 1000]) b.output(`sum${r}`, b.reduceSum(b.input(`a${r}`, [5, r]), 1));
      for (const r of [2, 65]) b.output(`max${r}`, b.reduceMax(b.input(`m${r}`, [3, r]), 1));
      b.output('isum', b.reduceSum(b.input('i', [2, 130], 'i32'), 1));
      b.output('imax', b.reduceMax(b.input('j', [2, 5], 'i32'), 1));
      b.output('cols', b.reduceSum(b.input('c', [301, 7]), 0));
      b.output('softmax3', b.softmax(b.input('s3', [3, 3])));
      b.output('softmax1000', b.softmax(b.input('s1000', [2, 1000])));
      b.output('logsoftmax77', b.logSoftmax(b.input('l77', [2, 77])));
      b.output('layernorm77', b.layerNorm(b.input('n77', [2, 77]), b.input('g77', [77]), b.input('b77', [77])));
    }),
  },
  {
    // Maps: four lanes in a row (last dimension 12), four lanes each with its own coordinates
    // (300 = 5 x 6 x 10), one thread each (63 elements); further outputs of one kernel, i32 values,
    // broadcast and strided reads, in-place updates.
    name: 'maps: row4 ([6,12] with a broadcast row, two outputs), flat4 ([5,6,10] strided, i32), thread ([7,9]), in-place updates of [9,4] and [2,6]',
    g: graph((b) => {
      const e = b.exp(b.add_(b.input('r', [6, 12]), b.input('rb', [12])));
      b.output('row', e);
      b.output('row2', b.mul(e, b.input('r2', [6, 12])));
      b.output('flat', b.relu(b.slice(b.input('f', [5, 6, 20]), [0, 0, 1], [5, 6, 20], [1, 1, 2])));
      b.output('int', b.add_(b.input('n', [5, 6, 10], 'i32'), b.input('m', [5, 6, 10], 'i32')));
      b.output('thread', b.sigmoid(b.input('t', [7, 9])));
      for (const [name, shape] of [['w', [9, 4]], ['u', [2, 6]]] as const) b.update(name, b.sub(b.param(name, [...shape]), b.mul(b.input(`g${name}`, [...shape]), 0.1)));
    }),
  },
  {
    // Row kernels of several stages (mean, variance and the gradient's sums): the subgroup
    // variant alternates its workgroup arrays between stages.
    name: 'the gradients of softmax rows of 5 and layernorm rows of 300', tol: 5e-5,
    g: (() => {
      const b = new GraphBuilder();
      const ln = b.layerNorm(b.param('x', [3, 300]), b.param('gamma', [300]), b.param('beta', [300]));
      const sm = b.softmax(b.param('z', [4, 5]));
      const loss = b.add_(b.reduceSum(b.mul(ln, b.input('wl', [3, 300]))), b.reduceSum(b.mul(sm, b.input('ws', [4, 5]))));
      b.output('loss', loss);
      return simplify(grad(b.build(), { loss: 'loss' }).graph);
    })(),
  },
  {
    // Max-pool gradients: maps of padded, strided reads whose parity row4fold folds per lane
    // (2x2 stride 2 over rows of 8; 3x3 stride 2 padded over rows of 12).
    name: 'the gradients of max pools: 2x2 stride 2 over [2,3,8,8], 3x3 stride 2 padding 1 over [2,2,12,12]', tol: 1e-5,
    g: (() => {
      const b = new GraphBuilder();
      const p1 = b.maxPool2d(b.relu(b.param('x', [2, 3, 8, 8])), { kernel: [2, 2], stride: [2, 2] });
      const p2 = b.maxPool2d(b.param('z', [2, 2, 12, 12]), { kernel: [3, 3], stride: [2, 2], padding: [1, 1] });
      const loss = b.add_(b.reduceSum(b.mul(p1, b.input('r1', [2, 3, 4, 4]))), b.reduceSum(b.mul(p2, b.input('r2', [2, 2, 6, 6]))));
      b.output('loss', loss);
      return simplify(grad(b.build(), { loss: 'loss' }).graph);
    })(),
  },
  {
    // Window variants: a convolution's input and filter gradients (stride 1, padded: rows aligned
    // to image rows of 8, taps of 5; the filter gradient's K of 1024 split) and a strided one.
    name: 'the gradients of convolutions: 5x5 padded over [16,2,8,8] (split K), 3x3 stride 2 over [2,4,9,9]', tol: 1e-4,
    g: (() => {
      const b = new GraphBuilder();
      const c1 = b.conv2d(b.param('x', [16, 2, 8, 8]), b.param('w', [4, 2, 5, 5]), { stride: [1, 1], padding: [2, 2], dilation: [1, 1] });
      const c2 = b.conv2d(b.param('u', [2, 4, 9, 9]), b.param('v', [6, 4, 3, 3]), { stride: [2, 2], padding: [1, 1], dilation: [1, 1] });
      const loss = b.add_(b.reduceSum(b.mul(c1, b.input('r1', [16, 4, 8, 8]))), b.reduceSum(b.mul(c2, b.input('r2', [2, 6, 5, 5]))));
      b.output('loss', loss);
      return simplify(grad(b.build(), { loss: 'loss' }).graph);
    })(),
  },
];

const covered = new Set<string>();

describe('kernel variants', () => {
  for (const c of cases) {
    it(`${c.name}: every variant matches the interpreter`, async () => {
      // Compiled for the device's limits; where its subgroups are wider than 4, also for
      // subgroups of 4 (valid on any: quads), for the variants offered only there.
      const own = { subgroups, ...(subgroupMinSize ? { subgroupMinSize } : {}) };
      const limitSets = subgroups && (subgroupMinSize ?? 4) > 4 ? [own, { subgroups, subgroupMinSize: 4 }] : [own];
      const names = new Map<string, { name: string; limits: typeof own }>();
      for (const limits of limitSets) {
        const full = emitArtifact(c.g, { limits });
        const add = (key: string, name: string) => { if (!names.has(key)) names.set(key, { name, limits }); };
        for (const d of full.dispatches) for (const v of d.variants ?? [{ name: '' }]) if (v.name) add(`${kindOf(d.label)}:${v.name}`, v.name);
        // Kernels with one variant only (the split reduction) are their own default.
        for (const d of full.dispatches) {
          if (d.variants) continue;
          const t = VARIANTS[kindOf(d.label)];
          for (const v of t.variants) if (t.variants.length === 1 || d.label.includes(`(${v.name}`)) add(`${kindOf(d.label)}:${v.name}`, v.name);
        }
      }
      const env = randomEnv(c.g, 5);
      const want = evaluate(c.g, env, 'f32');
      for (const [key, { name, limits }] of names) {
        const a = emitArtifact(c.g, { variants: [name], limits });
        const program = await Program.load(device, a, { strictShaders: true, poison: true, tune: false });
        try {
          for (const [n, t] of env) program.write(n, t.data instanceof Int32Array ? t.data : Float32Array.from(t.data));
          const got = (await program.step({}, c.g.outputs.map((o) => o.name)))!;
          for (const o of c.g.outputs) {
            expect(maxRelError(got.get(o.name)!, want.outputs.get(o.name)!.data), `${o.name} with ${key}`).toBeLessThanOrEqual(c.tol ?? 1e-5);
          }
          for (const [n, t] of want.updates) expect(maxRelError(await program.read(n), t.data), `${n} with ${key}`).toBeLessThanOrEqual(c.tol ?? 1e-5);
        } finally {
          program.destroy();
        }
        covered.add(key);
      }
      // SwiftShader compiles the workgroup-memory matmuls slowly (barriers): seconds per kernel.
    }, 600_000);
  }

  it('ran every variant of every kernel kind (the subgroup ones where the device has subgroups)', () => {
    const all = Object.entries(VARIANTS).flatMap(([kind, t]) => t.variants.map((v) => `${kind}:${v.name}`));
    const isSubgroup = (x: string) => x.split(':')[1]!.startsWith('subgroup');
    expect(all.filter((x) => !covered.has(x) && (subgroups || !isSubgroup(x)))).toEqual([]);
    if (!subgroups) expect([...covered].filter(isSubgroup)).toEqual([]);
  });
});

describe('the subgroups feature', () => {
  const g = graph((b) => {
    b.output('s', b.reduceSum(b.input('x', [4, 300]), 1));
    b.output('p', b.softmax(b.input('v', [3, 200])));
  });

  it('a program compiled for a device without subgroups has no shader that enables them', () => {
    const a = emitArtifact(g, {});
    expect(a.shaders.filter((w) => w.includes('enable subgroups;'))).toEqual([]);
    expect(a.dispatches.flatMap((d) => (d.variants ?? []).map((v) => v.name))).not.toContain('subgroup');
    const b = emitArtifact(g, { limits: { subgroups: true } });
    expect(b.dispatches.map((d) => d.variants?.some((v) => v.name === 'subgroup'))).toEqual([true, true]);
  });

  it('a device without the feature refuses a program that has subgroup variants, in one line', async () => {
    const d = await getDevice({ quiet: true, subgroups: false });
    try {
      expect(d.features.has('subgroups')).toBe(false);
      expect(deviceLimits(d).subgroups).toBe(false);
      const load = Program.load(d, emitArtifact(g, { limits: { subgroups: true } }), { tune: false });
      await expect(load).rejects.toThrow(DeviceError);
      await expect(load).rejects.toThrow(/^program "model" cannot run on this device: shader \d+ \(kernel "reduce_sum reduce\(\w+\)", variant subgroup\) needs the "subgroups" feature, which the device lacks \(compile for this device's limits, see deviceLimits\)$/);
      // Compiled for this device, the same graph loads and runs.
      const p = await Program.load(d, emitArtifact(g, { limits: deviceLimits(d) }), { tune: false, strictShaders: true });
      p.destroy();
    } finally {
      d.destroy();
    }
  });

  it('a program whose subgroup matmuls broadcast from more lanes than the device\'s smallest subgroup is refused, in one line', async () => {
    if (!subgroups) return;
    const mm = graph((b) => b.output('y', b.matmul(b.input('a', [40, 32]), b.input('b', [32, 24]))));
    const have = subgroupMinSize ?? 4;
    expect(have).toBeGreaterThanOrEqual(4);
    // The matmul broadcasts from min(8, subgroupMinSize) lanes; the requirement is the size compiled for.
    const over = emitArtifact(mm, { variants: ['subgroup16x4'], limits: { subgroups: true, subgroupMinSize: have * 2 } });
    expect(over.requirements.limits.subgroupMinSize).toBe(have * 2);
    const load = Program.load(device, over, { tune: false });
    await expect(load).rejects.toThrow(DeviceError);
    await expect(load).rejects.toThrow(new RegExp(`^program "model" cannot run on this device: its subgroup shaders were compiled for subgroups of at least ${have * 2} invocations, but the device's subgroupMinSize is ${have} \\(compile for this device's limits, see deviceLimits\\)$`));
  });
});
