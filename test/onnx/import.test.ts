/**
 * @file ONNX import without an adapter: the PyTorch-exported fixtures (test/fixtures/onnx/torch,
 * made by scripts/onnx-fixtures.py) evaluate on the reference interpreter to PyTorch's outputs;
 * gradients through imported networks match central finite differences (float64) on a slice of
 * every weight; `adjoint import` writes a model and checkpoint that load; and a file with an
 * unsupported operator, a dynamic shape, a truncated file or a file that is not ONNX is refused
 * with one line and exit code 2.
 */
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../src/ir/builder.js';
import { evaluate } from '../../src/ir/interp.js';
import { tensor, type Tensor } from '../../src/ir/tensor.js';
import { loadModel } from '../../src/ir/schema.js';
import { verify } from '../../src/ir/verify.js';
import { grad } from '../../src/passes/autodiff.js';
import { loadWeightsFile } from '../../src/train/checkpoint-file.js';
import { findCases } from '../../src/onnx/conformance.js';
import { importOnnx, OnnxError, OnnxUnsupported } from '../../src/onnx/import.js';
import { decodeTensor, encodeModel, tensorValues, floatTensor, int64Tensor, type ModelProto, type ValueInfoProto } from '../../src/onnx/proto.js';
import { onnxModel } from '../../src/onnx/model.js';
import { prng, withValue } from '../passes/gradcheck.js';
import { initValues } from '../../src/runtime/init.js';
import { runCli } from '../cli-run.js';

const FIX = 'test/fixtures/onnx';

const run = runCli;

/** The imported network's graph with its values as a float64 environment. */
function imported(path: string) {
  const imp = importOnnx(readFileSync(path), { where: path });
  const b = new GraphBuilder();
  const outs = imp.build(b);
  for (const [k, v] of Object.entries(outs)) b.output(k, v);
  const g = b.build();
  verify(g, 'import');
  const env = new Map<string, Tensor>();
  for (const n of g.nodes) {
    if (n.op !== 'param' && n.op !== 'state') continue;
    const v = imp.values.get(n.attrs.name);
    env.set(n.attrs.name, tensor(n.type.shape, v ?? new Float64Array(n.type.shape.reduce((p, q) => p * q, 1)).fill(n.attrs.init.kind === 'constant' ? n.attrs.init.value : 0), n.type.dtype, 'f64'));
  }
  return { imp, g, env };
}

describe('PyTorch modules exported with torch.onnx.export', () => {
  for (const c of findCases(join(FIX, 'torch'))) {
    it(`${c.name} gives PyTorch's outputs on the interpreter`, () => {
      const { imp, g, env } = imported(c.model);
      const set = c.sets[0]!;
      imp.inputs.forEach((x, i) => env.set(x.name, tensor(x.shape, tensorValues(decodeTensor(readFileSync(set.inputs[i]!), 'in'), 'in'), x.dtype, 'f64')));
      const r = evaluate(g, env, 'f32');
      set.outputs.forEach((f, i) => {
        const want = tensorValues(decodeTensor(readFileSync(f), f), f);
        const got = r.outputs.get(imp.outputs[i]!.name)!.data;
        expect(got.length).toBe(want.length);
        let worst = 0;
        for (let k = 0; k < want.length; k++) worst = Math.max(worst, Math.abs(got[k]! - want[k]!) - 1e-3 * Math.abs(want[k]!));
        expect(worst).toBeLessThan(1e-5);
      });
    });
  }
});

describe('pooling', () => {
  /** Naive pooling of x [1, C, H, W] over 2-D windows; padded positions are left out. */
  function reference(x: Float64Array, [ch, h, w]: [number, number, number], k: number[], st: number[], dl: number[], pads: number[], kind: 'max' | 'avg', includePad: boolean): number[] {
    const oh = Math.floor((h + pads[0]! + pads[2]! - ((k[0]! - 1) * dl[0]! + 1)) / st[0]!) + 1;
    const ow = Math.floor((w + pads[1]! + pads[3]! - ((k[1]! - 1) * dl[1]! + 1)) / st[1]!) + 1;
    const out: number[] = [];
    for (let c = 0; c < ch; c++) for (let i = 0; i < oh; i++) for (let j = 0; j < ow; j++) {
      let acc = kind === 'max' ? -Infinity : 0;
      let n = 0;
      for (let a = 0; a < k[0]!; a++) for (let b = 0; b < k[1]!; b++) {
        const [y, z] = [i * st[0]! + a * dl[0]! - pads[0]!, j * st[1]! + b * dl[1]! - pads[1]!];
        if (y < 0 || y >= h || z < 0 || z >= w) continue;
        const v = x[(c * h + y) * w + z]!;
        acc = kind === 'max' ? Math.max(acc, v) : acc + v;
        n++;
      }
      out.push(kind === 'max' ? acc : acc / (includePad ? k[0]! * k[1]! : n));
    }
    return out;
  }
  const ints = (name: string, v: number[]) => ({ name, type: 7, ints: v });
  const cases = [
    { op: 'MaxPool', k: [3, 4], st: [2, 3], dl: [2, 1], pads: [1, 2, 1, 0], includePad: false },
    { op: 'MaxPool', k: [6, 8], st: [1, 1], dl: [1, 1], pads: [0, 0, 0, 0], includePad: false },
    { op: 'AveragePool', k: [3, 4], st: [2, 3], dl: [1, 1], pads: [1, 2, 1, 0], includePad: false },
    { op: 'AveragePool', k: [3, 4], st: [2, 3], dl: [1, 1], pads: [1, 2, 1, 0], includePad: true },
  ];
  for (const t of cases) {
    it(`${t.op} ${t.k.join('x')} (strides ${t.st}, dilations ${t.dl}, pads ${t.pads}${t.includePad ? ', count_include_pad' : ''}) gives naive pooling's values with KH + KW slices`, () => {
      const shape = [1, 2, 11, 13];
      const attribute = [ints('kernel_shape', t.k), ints('strides', t.st), ints('pads', t.pads), ...(t.op === 'MaxPool' ? [ints('dilations', t.dl)] : [{ name: 'count_include_pad', type: 2, i: t.includePad ? 1 : 0 }])];
      const m: ModelProto = {
        irVersion: 8,
        opsetImport: [{ domain: '', version: 17 }],
        graph: {
          name: 'pool',
          node: [{ opType: t.op, input: ['x'], output: ['y'], name: 'pool', attribute }],
          input: [{ name: 'x', type: { tensorType: { elemType: 1, shape: { dim: shape.map((d) => ({ dimValue: d })) } } } }],
          output: [{ name: 'y', type: { tensorType: { elemType: 1 } } }],
        },
      };
      const imp = importOnnx(encodeModel(m));
      const b = new GraphBuilder();
      for (const [k, v] of Object.entries(imp.build(b))) b.output(k, v);
      const g = b.build();
      // Separable: KH + KW strided slices (and as many again for an average's in-bounds counts).
      const slices = g.nodes.filter((n) => n.op === 'slice').length;
      expect(slices).toBe((t.k[0]! + t.k[1]!) * (t.op === 'AveragePool' && !t.includePad ? 2 : 1));
      const r = prng(7);
      const x = Float64Array.from({ length: 2 * 11 * 13 }, () => r() * 2 - 1);
      const got = [...evaluate(g, new Map([['x', tensor(shape, x, 'f32', 'f64')]]), 'f64').outputs.get('y')!.data];
      const want = reference(x, [2, 11, 13], t.k, t.st, t.dl, t.pads, t.op === 'MaxPool' ? 'max' : 'avg', t.includePad);
      expect(got.length).toBe(want.length);
      for (let i = 0; i < want.length; i++) expect(got[i]).toBeCloseTo(want[i]!, 12);
    });
  }
});

describe('gradients through imported networks match finite differences', () => {
  for (const name of ['cnn-batchnorm', 'transformer-block', 'depthwise']) {
    it(name, () => {
      const { imp, g: fwd, env } = imported(join(FIX, 'torch', name, 'model.onnx'));
      const model = onnxModel(imp, { loss: 'mse', labels: 'target' });
      const g = model.graph;
      const u = prng(3);
      for (const n of g.nodes) {
        if (n.op !== 'input') continue;
        const len = n.type.shape.reduce((p, q) => p * q, 1);
        env.set(n.attrs.name, tensor(n.type.shape, Array.from({ length: len }, () => 2 * u() - 1), n.type.dtype, 'f64'));
      }
      void fwd;
      const r = grad(g, { loss: 'loss' });
      verify(r.graph, 'autodiff');
      const analytic = evaluate(r.graph, env, 'f64');
      const f = (e: ReadonlyMap<string, Tensor>) => evaluate(g, e, 'f64').outputs.get('loss')!.data[0]!;
      let checked = 0;
      let worst = 0;
      for (const [param, id] of r.grads) {
        const p = Float64Array.from(env.get(param)!.data);
        // A slice: four elements of every weight.
        for (let t = 0; t < 4; t++) {
          const i = Math.floor(u() * p.length);
          const at = (d: number) => {
            const q = Float64Array.from(p);
            q[i] = p[i]! + d;
            return f(withValue(env, param, q));
          };
          const numeric = (at(1e-6) - at(-1e-6)) / 2e-6;
          const got = analytic.values[id]!.data[i]!;
          worst = Math.max(worst, Math.abs(got - numeric) / Math.max(Math.abs(numeric), 1e-4));
          checked++;
        }
      }
      expect(checked).toBeGreaterThanOrEqual(16);
      // The erf approximation's derivative is not erf's exactly, but it is the derivative of what is computed.
      expect(worst).toBeLessThan(1e-4);
    });
  }
});

describe('the imported PyTorch LeNet is the zoo\'s LeNet', () => {
  it('from the zoo\'s seeded weights it gives the zoo\'s loss and gradients (float64 interpreter)', () => {
    // Both at batch 4 (the zoo's batch of 64 and its flatten's reshape made 4; the ONNX input given
    // as [4,1,28,28]), to keep the interpreter quick.
    const B = 4;
    const json = JSON.parse(readFileSync('models/lenet-mnist.json', 'utf8')) as { inputs: { shape: number[] }[]; nodes: { op: string; attrs?: { shape?: number[] } }[] };
    for (const i of json.inputs) i.shape[0] = B;
    for (const n of json.nodes) if (n.op === 'reshape') n.attrs!.shape![0] = B;
    const zoo = loadModel(JSON.stringify(json), 'models/lenet-mnist.json');
    const imp = importOnnx(readFileSync(join(FIX, 'lenet-mnist.onnx')), { shapes: { input_0: [B, 1, 28, 28] } });
    const net = onnxModel(imp, { loss: 'softmax-cross-entropy', labels: 'y' });
    // The zoo's parameters under the torch names: dense weights [in, out] -> [out, in], biases flat.
    const torchName: Record<string, string> = { c1: 'c1.weight', c1b: 'c1.bias', c2: 'c2.weight', c2b: 'c2.bias', f1: 'f1.weight', f1b: 'f1.bias', f2: 'f2.weight', f2b: 'f2.bias', f3: 'f3.weight', f3b: 'f3.bias' };
    const t2 = (v: ArrayLike<number>, [r, c]: readonly number[]) => Float64Array.from({ length: v.length }, (_, k) => v[(k % r!) * c! + Math.floor(k / r!)]!);
    const u = prng(11);
    const x = Float64Array.from({ length: B * 28 * 28 }, () => u());
    const y = Float64Array.from({ length: B }, () => Math.floor(u() * 10));
    const zEnv = new Map<string, Tensor>([['x', tensor([B, 1, 28, 28], x, 'f32', 'f64')], ['y', tensor([B], y, 'i32', 'f64')]]);
    const iEnv = new Map<string, Tensor>([[imp.inputs[0]!.name, tensor([B, 1, 28, 28], x, 'f32', 'f64')], ['y', tensor([B], y, 'i32', 'f64')]]);
    const zShapes = new Map<string, readonly number[]>();
    for (const n of zoo.graph.nodes) {
      if (n.op !== 'param') continue;
      const v = initValues(n.attrs.init, n.attrs.shape, 0, n.attrs.name);
      zShapes.set(n.attrs.name, n.attrs.shape);
      zEnv.set(n.attrs.name, tensor(n.attrs.shape, v, 'f32', 'f64'));
      const to = imp.params.find((p) => p.name === torchName[n.attrs.name])!;
      iEnv.set(to.name, tensor(to.shape, n.attrs.shape.length === 2 ? t2(v, n.attrs.shape) : Float64Array.from(v), 'f32', 'f64'));
    }
    const zr = grad(zoo.graph, { loss: 'loss' });
    const ir = grad(net.graph, { loss: 'loss' });
    const ze = evaluate(zr.graph, zEnv, 'f64');
    const ie = evaluate(ir.graph, iEnv, 'f64');
    const zLoss = ze.outputs.get('loss')!.data[0]!;
    expect(zLoss).toBeGreaterThan(1);
    expect(Math.abs(ie.outputs.get('loss')!.data[0]! - zLoss)).toBeLessThan(1e-12 * zLoss);
    expect(zr.grads.size).toBe(10);
    for (const [name, id] of zr.grads) {
      const want = ze.values[id]!.data;
      const shape = zShapes.get(name)!;
      const got = ie.values[ir.grads.get(torchName[name]!)!]!.data;
      // The torch [out, in] gradient back to the zoo's [in, out].
      const back = shape.length === 2 ? t2(got, [shape[1]!, shape[0]!]) : got;
      let worst = 0;
      let scale = 0;
      for (let k = 0; k < want.length; k++) {
        worst = Math.max(worst, Math.abs(back[k]! - want[k]!));
        scale = Math.max(scale, Math.abs(want[k]!));
      }
      expect(scale, name).toBeGreaterThan(0);
      expect(worst, name).toBeLessThan(1e-10 * scale);
    }
  });
});

describe('adjoint import', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'adjoint-onnx-'));

  it('writes a trainable model and a safetensors file of the imported weights', async () => {
    const out = join(tmp, 'lenet.json');
    const r = await run('import', join(FIX, 'lenet-mnist.onnx'), '-o', out, '--loss', 'softmax-cross-entropy', '--labels', 'y', '--optimizer', 'adam:lr=0.001');
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toContain('10 params');
    const model = loadModel(readFileSync(out, 'utf8'), out);
    expect(model.loss).toBe('loss');
    expect(model.optimizer).toMatchObject({ kind: 'adam', lr: 0.001 });
    expect(model.graph.outputs.map((o) => o.name)).toContain('logits');
    const ck = loadWeightsFile(join(tmp, 'lenet.safetensors'));
    expect(ck.kind).toBe('weights');
    const params = model.graph.nodes.filter((n) => n.op === 'param');
    expect(params.length).toBe(10);
    expect([...(ck.params ?? [])].sort()).toEqual(params.map((p) => (p.op === 'param' ? p.attrs.name : '')).sort());
    // Every weight is in the file with its shape; a uniform one (the zero biases) holds its init's values.
    for (const p of params) {
      if (p.op !== 'param') continue;
      expect(ck.shapes?.get(p.attrs.name), p.attrs.name).toEqual(p.type.shape);
      if (p.attrs.init.kind === 'constant') expect([...ck.tensors.get(p.attrs.name)!].every((v) => v === (p.attrs.init as { value: number }).value)).toBe(true);
    }
    expect([...ck.tensors.values()].reduce((n, t) => n + t.length, 0)).toBe(61706);
  });

  const bad = (what: string, file: () => string, message: RegExp) =>
    it(`refuses ${what} with one line and exit code 2`, async () => {
      const r = await run('import', file(), '-o', join(tmp, 'x.json'));
      expect(r.code).toBe(2);
      expect(r.err.trimEnd().split('\n')).toHaveLength(1);
      expect(r.err).toMatch(message);
    });
  const write = (name: string, bytes: Uint8Array) => {
    const p = join(tmp, name);
    writeFileSync(p, bytes);
    return p;
  };
  const tiny = (op: string, dims: ValueInfoProto[]): ModelProto => ({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    graph: {
      name: 'tiny',
      node: [{ opType: op, input: ['x', 'w'], output: ['y'], name: 'the_node' }],
      initializer: [floatTensor('w', [2], [1, 2])],
      input: dims,
      output: [{ name: 'y', type: { tensorType: { elemType: 1, shape: { dim: [{ dimValue: 2 }] } } } }],
    },
  });
  const x2 = [{ name: 'x', type: { tensorType: { elemType: 1, shape: { dim: [{ dimValue: 2 }] } } } }];
  bad('an unsupported operator', () => write('nms.onnx', encodeModel(tiny('NonMaxSuppression', x2))), /node "the_node" \(NonMaxSuppression, opset 17\): this operator is not supported/);
  bad('a dynamic shape', () => write('dyn.onnx', encodeModel(tiny('Add', [{ name: 'x', type: { tensorType: { elemType: 1, shape: { dim: [{ dimParam: 'batch' }] } } } }]))), /input "x" has a dynamic dimension "batch" \(axis 0 of \[batch\]\); give it a size with --shape x=/);
  bad('a truncated file', () => write('cut.onnx', readFileSync(join(FIX, 'lenet-mnist.onnx')).subarray(0, 100_000)), /cut\.onnx: not an ONNX model, or the file is truncated/);
  bad('a file that is not ONNX', () => 'package.json', /package\.json: not an ONNX model, or the file is truncated/);
  bad('an empty file', () => write('empty.onnx', new Uint8Array(0)), /the file is empty, not an ONNX model/);
  bad('a missing file', () => join(tmp, 'nope.onnx'), /nope\.onnx: no such file/);

  it('accepts a dynamic shape given with --shape', async () => {
    const p = write('dyn2.onnx', encodeModel(tiny('Add', [{ name: 'x', type: { tensorType: { elemType: 1, shape: { dim: [{ dimParam: 'batch' }] } } } }])));
    const r = await run('import', p, '-o', join(tmp, 'dyn2.json'), '--shape', 'x=2');
    expect(r.err).toBe('');
    expect(existsSync(join(tmp, 'dyn2.json'))).toBe(true);
  });

  it('is an OnnxError from the library', () => {
    expect(() => importOnnx(new Uint8Array([1, 2, 3]))).toThrow(OnnxError);
  });

  // What adjoint does not do at all is an OnnxUnsupported naming the feature (the conformance run
  // counts such a case as unsupported); a malformed model is a plain OnnxError (a failure there).
  const expandOf = (shapeInput: boolean): ModelProto => ({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    graph: {
      name: 'expand',
      node: [{ opType: 'Expand', input: ['x', 'shape'], output: ['y'], name: 'the_node' }],
      initializer: shapeInput ? [] : [int64Tensor('shape', [2], [3, 2])],
      input: [
        { name: 'x', type: { tensorType: { elemType: 1, shape: { dim: [{ dimValue: 1 }, { dimValue: 2 }] } } } },
        ...(shapeInput ? [{ name: 'shape', type: { tensorType: { elemType: 7, shape: { dim: [{ dimValue: 2 }] } } } }] : []),
      ],
      output: [{ name: 'y', type: { tensorType: { elemType: 1 } } }],
    },
  });
  const f64 = [{ name: 'x', type: { tensorType: { elemType: 11, shape: { dim: [{ dimValue: 2 }] } } } }];
  bad('a float64 input', () => write('f64.onnx', encodeModel(tiny('Add', f64))), /input "x" has element type double, which is not supported \(adjoint computes in float32 and int32\)/);
  bad('an Expand to a shape given at run time', () => write('expand.onnx', encodeModel(expandOf(true))), /node "the_node" \(Expand, opset 17\): shape must be a constant \(it is computed at run time, a dynamic shape\)/);

  it('refuses what it does not do as OnnxUnsupported, naming the feature', () => {
    const feature = (m: ModelProto): string => {
      try {
        importOnnx(encodeModel(m));
      } catch (e) {
        if (e instanceof OnnxUnsupported) return e.feature;
        throw e;
      }
      return 'imported';
    };
    expect(feature(tiny('NonMaxSuppression', x2))).toBe('NonMaxSuppression');
    expect(feature(tiny('Add', f64))).toBe('double tensors');
    expect(feature(expandOf(true))).toBe('Expand with a run-time shape');
    expect(feature(tiny('Add', [{ name: 'x', type: { tensorType: { elemType: 1, shape: { dim: [{ dimParam: 'batch' }] } } } }]))).toBe('inputs with a dynamic dimension');
    // The same Expand with its shape a constant imports; a malformed model is no OnnxUnsupported.
    expect(feature(expandOf(false))).toBe('imported');
    expect(() => importOnnx(new Uint8Array([1, 2, 3]))).toThrow(OnnxError);
    expect(() => importOnnx(new Uint8Array([1, 2, 3]))).not.toThrow(OnnxUnsupported);
  });
});
