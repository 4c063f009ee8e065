/**
 * @file Deterministic parameter initialization, shared by the runtime (Node and browser) and the
 * reference tests: a seeded PRNG (splitmix32 seeded from the seed and the parameter's name) so a
 * parameter's initial values depend only on (seed, name, shape, init), never on load order.
 */
import type { Init } from '../ir/ops.js';

/** 32-bit FNV-1a of a string. */
function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** A uniform [0, 1) generator (splitmix32). */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    z ^= z >>> 16;
    return (z >>> 0) / 4294967296;
  };
}

/** Fan-in and fan-out: matrices [in, out]; convolution filters [out, in, kh, kw]. */
function fans(shape: readonly number[]): [number, number] {
  if (shape.length === 0) return [1, 1];
  if (shape.length === 1) return [shape[0]!, shape[0]!];
  if (shape.length === 2) return [shape[0]!, shape[1]!];
  const rf = shape.slice(2).reduce((p, q) => p * q, 1);
  return [shape[1]! * rf, shape[0]! * rf];
}

export function initValues(init: Init, shape: readonly number[], seed: number, name: string): Float32Array {
  const n = shape.reduce((p, q) => p * q, 1);
  const out = new Float32Array(n);
  const u = rng(seed ^ hash(name));
  const normal = () => {
    const a = Math.max(u(), 1e-12);
    return Math.sqrt(-2 * Math.log(a)) * Math.cos(2 * Math.PI * u());
  };
  const [fanIn, fanOut] = fans(shape);
  switch (init.kind) {
    case 'zeros': break;
    case 'ones': out.fill(1); break;
    case 'constant': out.fill(init.value); break;
    case 'uniform': for (let i = 0; i < n; i++) out[i] = init.low + (init.high - init.low) * u(); break;
    case 'normal': for (let i = 0; i < n; i++) out[i] = init.std * normal(); break;
    case 'glorot_uniform': {
      const l = Math.sqrt(6 / (fanIn + fanOut));
      for (let i = 0; i < n; i++) out[i] = (2 * u() - 1) * l;
      break;
    }
    // The seed itself (an i32 state: initData in program.ts writes it exactly; here, as a float).
    case 'seed': out.fill(seed >>> 0); break;
    case 'he_normal': {
      const s = Math.sqrt(2 / fanIn);
      for (let i = 0; i < n; i++) out[i] = s * normal();
      break;
    }
  }
  return out;
}

/**
 * A parameter's or state's initial value in its dtype's array: `initValues`, as i32 for an i32
 * tensor; the random number generator's key (`seed` init, src/ir/random.ts) is the seed's 32 bits
 * exactly. The runtime, `adjoint export` and `adjoint import` all initialize through this.
 */
export function initTensor(init: Init, shape: readonly number[], dtype: 'f32' | 'i32', seed: number, name: string): Float32Array | Int32Array {
  if (init.kind === 'seed') return new Int32Array(shape.reduce((p, q) => p * q, 1)).fill(seed | 0);
  const v = initValues(init, shape, seed, name);
  return dtype === 'i32' ? Int32Array.from(v) : v;
}
