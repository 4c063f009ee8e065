/**
 * @file The adapter's float32 arithmetic is within the WGSL spec's accuracy rules (§ "Floating
 * Point Accuracy"), which the GPU-vs-interpreter tolerances rest on (see training.test.ts): one
 * shader per operation over 16,384 seeded inputs, each result compared with the float64 value in
 * units of the float32 spacing at it. The bounds are the spec's, never one adapter's: `+ - *`
 * correctly rounded (0.5 ULP), `x / y` 2.5 ULP for |y| in [2^-126, 2^126], `inverseSqrt` 2 ULP,
 * `sqrt` inherited from 1.0 / inverseSqrt(x) (2 + 2.5 ULP), `exp` 3 + 2|x| ULP, `log` 3 ULP
 * outside [0.5, 2] and an absolute 2^-21 inside.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adapterName, getDevice } from '../../src/runtime/device.js';

let device: GPUDevice;
beforeAll(async () => {
  device = await getDevice({ quiet: true });
});
afterAll(() => device?.destroy());

const N = 16384;

/** The distance between |v| rounded to float32 and the next float32 up. */
function ulpAt(v: number): number {
  const f = new Float32Array([Math.abs(v)]);
  const bits = new Uint32Array(f.buffer);
  const lo = f[0]!;
  bits[0]! += 1;
  return f[0]! - lo;
}

/** A seeded generator of uniform floats in [0, 1) (xorshift32). */
function uniform(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
}

interface Case {
  readonly name: string;
  /** WGSL expression of `a` and `b` (f32). */
  readonly wgsl: string;
  readonly exact: (a: number, b: number) => number;
  /** Inputs, as float32 values. */
  readonly input: (u: () => number) => readonly [number, number];
  /** The spec's bound for this input: in ULP of the exact result, or absolute. */
  readonly bound: (a: number, b: number) => { readonly ulp: number } | { readonly abs: number };
}

const CASES: readonly Case[] = [
  { name: 'x * y (correctly rounded)', wgsl: 'a * b', exact: (a, b) => a * b, input: (u) => [u() * 200 - 100, u() * 200 - 100], bound: () => ({ ulp: 0.5 }) },
  { name: 'x / y', wgsl: 'a / b', exact: (a, b) => a / b, input: (u) => [u() * 200 - 100, (u() < 0.5 ? -1 : 1) * (u() * 100 + 1e-3)], bound: () => ({ ulp: 2.5 }) },
  { name: 'inverseSqrt', wgsl: 'inverseSqrt(a)', exact: (a) => 1 / Math.sqrt(a), input: (u) => [u() * 1e4 + 1e-6, 0], bound: () => ({ ulp: 2 }) },
  { name: 'sqrt', wgsl: 'sqrt(a)', exact: (a) => Math.sqrt(a), input: (u) => [u() * 1e4 + 1e-6, 0], bound: () => ({ ulp: 4.5 }) },
  { name: 'exp', wgsl: 'exp(a)', exact: (a) => Math.exp(a), input: (u) => [u() * 40 - 20, 0], bound: (a) => ({ ulp: 3 + 2 * Math.abs(a) }) },
  { name: 'log', wgsl: 'log(a)', exact: (a) => Math.log(a), input: (u) => [u() < 0.5 ? u() * 1.5 + 0.5 : u() * 1e4 + 2, 0], bound: (a) => (a >= 0.5 && a <= 2 ? { abs: 2 ** -21 } : { ulp: 3 }) },
];

async function run(c: Case, a: Float32Array, b: Float32Array): Promise<Float32Array> {
  const code = `
@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3u) {
  let a = A[g.x];
  let b = B[g.x];
  C[g.x] = ${c.wgsl};
}`;
  const input = (data: Float32Array): GPUBuffer => {
    const buf = device.createBuffer({ size: N * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
    device.queue.writeBuffer(buf, 0, data);
    return buf;
  };
  const out = device.createBuffer({ size: N * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  const staging = device.createBuffer({ size: N * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module: device.createShaderModule({ code }), entryPoint: 'main' } });
  const bindGroup = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [input(a), input(b), out].map((buffer, binding) => ({ binding, resource: { buffer } })) });
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bindGroup);
  pass.dispatchWorkgroups(N / 64);
  pass.end();
  enc.copyBufferToBuffer(out, 0, staging, 0, N * 4);
  device.queue.submit([enc.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const result = new Float32Array(staging.getMappedRange().slice(0));
  staging.unmap();
  return result;
}

describe("the adapter's float32 operations are within the WGSL spec's accuracy", () => {
  CASES.forEach((c, k) => {
    it(c.name, async () => {
      const u = uniform(1234 + k);
      const a = new Float32Array(N);
      const b = new Float32Array(N);
      for (let i = 0; i < N; i++) [a[i], b[i]] = c.input(u);
      const got = await run(c, a, b);
      let worst = 0;
      let worstAt = -1;
      for (let i = 0; i < N; i++) {
        const exact = c.exact(a[i]!, b[i]!);
        const bound = c.bound(a[i]!, b[i]!);
        const err = Math.abs(got[i]! - exact);
        // The share of the bound used; above 1 breaks the spec.
        const used = 'abs' in bound ? err / bound.abs : err / (bound.ulp * ulpAt(exact));
        if (used > worst) [worst, worstAt] = [used, i];
      }
      console.log(`${adapterName(device)}: ${c.name}: worst ${(100 * worst).toFixed(0)}% of the spec's bound`);
      expect(worst, `${c.name} at a=${a[worstAt]}, b=${b[worstAt]}: got ${got[worstAt]}, exact ${c.exact(a[worstAt]!, b[worstAt]!)}`).toBeLessThanOrEqual(1);
    });
  });
});
