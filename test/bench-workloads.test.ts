/**
 * @file Tests of the benchmark's shared definitions (no adapter): seeded numbers are reproducible
 * and well distributed, initial weights respect their Glorot bounds, MNIST batches are real and
 * deterministic, the TF.js layout conversions move hand-picked elements where they belong, and the
 * IR model of the MLP workload computes the same loss as a plain float64 forward written here; a
 * step's matmul FLOPs are counted as by hand.
 */
import { describe, expect, it } from 'vitest';
import { stepFlops, workloadEnv, workloadModel } from '../bench/graphs.js';
import { chwRowsToHwc, oihwToHwio } from '../bench/peers/tfjs.js';
import { causalBias, initParams, makeBatches, mnistSamples, mulberry32, normals, subSeed, LENET, MLP, TRANSFORMER, WORKLOADS } from '../bench/workloads.js';
import { evaluate } from '../src/ir/interp.js';
import { verify } from '../src/ir/verify.js';

describe('seeded numbers', () => {
  it('mulberry32 repeats per seed, differs across seeds, stays in [0, 1)', () => {
    const a = mulberry32(7);
    const b = mulberry32(7);
    const c = mulberry32(8);
    const xs = Array.from({ length: 1000 }, () => a());
    expect(Array.from({ length: 1000 }, () => b())).toEqual(xs);
    expect(Array.from({ length: 1000 }, () => c())).not.toEqual(xs);
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...xs)).toBeLessThan(1);
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.03); // sd of the mean of 1000 U(0,1) is 0.009
  });

  it('subSeed gives distinct streams for distinct parameters', () => {
    const seeds = new Set(Array.from({ length: 100 }, (_, k) => subSeed(1, k)));
    expect(seeds.size).toBe(100);
  });

  it('normals have mean 0 and variance 1', () => {
    const n = 100_000;
    const xs = normals(3, n);
    const mean = xs.reduce((s, x) => s + x, 0) / n;
    const variance = xs.reduce((s, x) => s + (x - mean) ** 2, 0) / n;
    expect(Math.abs(mean)).toBeLessThan(0.015); // 4.7 sd of the mean
    expect(Math.abs(variance - 1)).toBeLessThan(0.03);
  });
});

describe('initial parameters', () => {
  it('are reproducible, Glorot-bounded, and zeros/ones where asked', () => {
    for (const w of WORKLOADS) {
      const p = initParams(w);
      const again = initParams(w);
      for (const spec of w.params) {
        const v = p.get(spec.name)!;
        expect(v.length).toBe(spec.shape.reduce((a, b) => a * b, 1));
        expect(Buffer.from(again.get(spec.name)!.buffer).equals(Buffer.from(v.buffer))).toBe(true);
        if (spec.init === 'zeros') expect(v.every((x) => x === 0)).toBe(true);
        if (spec.init === 'ones') expect(v.every((x) => x === 1)).toBe(true);
        if (spec.init === 'glorot_uniform') {
          const limit = Math.sqrt(6 / (spec.fanIn + spec.fanOut));
          const max = v.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
          expect(max).toBeLessThanOrEqual(limit);
          expect(max).toBeGreaterThan(0.95 * limit);
        }
      }
    }
  });

  it('LeNet conv fans count the 5x5 window: c2 has fanIn 6*25 and fanOut 16*25', () => {
    const c2 = LENET.params.find((p) => p.name === 'c2')!;
    expect([c2.fanIn, c2.fanOut]).toEqual([150, 400]);
  });
});

describe('data', () => {
  it('MNIST samples are real digits, deterministic, all ten classes', () => {
    const a = mnistSamples(200, 5);
    const b = mnistSamples(200, 5);
    expect(Buffer.from(b.x.buffer).equals(Buffer.from(a.x.buffer))).toBe(true);
    expect(Array.from(b.labels)).toEqual(Array.from(a.labels));
    expect(new Set(a.labels).size).toBe(10);
    expect(a.x.every((v) => v >= 0 && v <= 1)).toBe(true);
    for (let s = 0; s < 200; s++) {
      const img = a.x.subarray(s * 784, (s + 1) * 784);
      const ink = img.reduce((t, v) => t + v, 0);
      expect(ink).toBeGreaterThan(20); // a digit has tens of lit pixels; a blank image has none
      expect(img[0]).toBe(0); // MNIST corners are background
    }
    expect(Array.from(mnistSamples(200, 6).labels)).not.toEqual(Array.from(a.labels));
  });

  it('batches have the workload shapes', () => {
    const [m] = makeBatches(MLP);
    expect(m?.kind === 'class' && m.x.length === 128 * 784 && m.labels.length === 128).toBe(true);
    const [t] = makeBatches(TRANSFORMER);
    expect(t?.kind === 'target' && t.x.length === 8 * 64 * 128 && t.target.length === 8 * 64 * 128).toBe(true);
  });

  it('the causal bias masks exactly the future', () => {
    expect(Array.from(causalBias(3))).toEqual([0, -1e9, -1e9, 0, 0, -1e9, 0, 0, 0].map(Math.fround));
  });
});

describe('TF.js layouts', () => {
  it('OIHW -> HWIO moves w[o][i][y][x] to [y][x][i][o]', () => {
    const o = 3;
    const i = 2;
    const k = 2;
    const w = Float32Array.from({ length: o * i * k * k }, (_, n) => n);
    const h = oihwToHwio(w, o, i, k);
    // w[2][1][0][1] sits at ((2*2+1)*2+0)*2+1 = 21 in OIHW and at ((0*2+1)*2+1)*3+2 = 11 in HWIO
    expect(h[11]).toBe(21);
    // w[1][0][1][0]: OIHW ((1*2+0)*2+1)*2+0 = 10; HWIO ((1*2+0)*2+0)*3+1 = 13
    expect(h[13]).toBe(10);
  });

  it('dense rows move from (c, h, w) to (h, w, c) order', () => {
    // c=2, h=1, w=2, n=1: CHW rows are (c0,w0) (c0,w1) (c1,w0) (c1,w1); HWC: (w0,c0) (w0,c1) (w1,c0) (w1,c1)
    expect(Array.from(chwRowsToHwc(Float32Array.of(10, 11, 20, 21), 2, 1, 2, 1))).toEqual([10, 20, 11, 21]);
  });
});

describe('IR models of the workloads', () => {
  it('all verify and have a scalar loss', () => {
    for (const w of WORKLOADS) {
      const m = workloadModel(w);
      verify(m.graph);
      const out = m.graph.outputs.find((o) => o.name === 'loss')!;
      expect(m.graph.nodes[out.value]!.type.shape).toEqual([]);
    }
  });

  it('the MLP loss equals a plain float64 forward pass', () => {
    const params = initParams(MLP);
    const batch = makeBatches(MLP)[0]!;
    if (batch.kind !== 'class') throw new Error('expected a classification batch');
    const got = evaluate(workloadModel(MLP).graph, workloadEnv(MLP, params, batch, 'f64'), 'f64').outputs.get('loss')!.data[0]!;

    const [w1, b1, w2, b2] = ['w1', 'b1', 'w2', 'b2'].map((n) => params.get(n)!) as [Float32Array, Float32Array, Float32Array, Float32Array];
    let total = 0;
    for (let s = 0; s < 128; s++) {
      const hidden = new Float64Array(256);
      for (let j = 0; j < 256; j++) {
        let acc = b1[j]!;
        for (let i = 0; i < 784; i++) acc += batch.x[s * 784 + i]! * w1[i * 256 + j]!;
        hidden[j] = Math.max(acc, 0);
      }
      const logits = Array.from({ length: 10 }, (_, c) => {
        let acc = b2[c]!;
        for (let j = 0; j < 256; j++) acc += hidden[j]! * w2[j * 10 + c]!;
        return acc;
      });
      const max = Math.max(...logits);
      const lse = max + Math.log(logits.reduce((t, l) => t + Math.exp(l - max), 0));
      total += lse - logits[batch.labels[s]!]!;
    }
    expect(got).toBeCloseTo(total / 128, 10);
  });
});

describe('matmul FLOPs per step', () => {
  it('the MLP 784-256-10: forward and weight gradients of both layers, the input gradient of the second only; LeNet counts its convolutions', () => {
    const b = MLP.batch;
    const [i, h, o] = MLP.sizes as [number, number, number];
    const forward = 2 * b * (i * h + h * o);
    expect(stepFlops(MLP)).toBe(2 * forward + 2 * b * o * h);
    // conv1 alone (6 filters of 5x5 over 28x28 with padding 2) is 2 * 64 * 28 * 28 * 6 * 25 FLOPs forward.
    expect(stepFlops(LENET)).toBeGreaterThan(2 * LENET.batch * 28 * 28 * 6 * 25);
  });
});
