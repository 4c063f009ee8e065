/**
 * @file The random number generator of the IR: Threefry-2x32 with 20 rounds (Salmon et al.,
 * "Parallel random numbers: as easy as 1, 2, 3", SC 2011; Random123's `threefry2x32`, the
 * generator JAX uses), a counter-based generator: element i of `random_uniform` is a pure function
 * of the key (the program's seed, the op's stream) and the counter (i, the step counter), so the
 * values of a step do not depend on which thread computes which element, on the adapter, or on
 * any state on the host. Threefry rather than Philox-4x32-10: it needs only 32-bit addition,
 * rotation and xor, which WGSL and JavaScript compute exactly alike (Philox needs the high half of
 * a 32x32-bit product, which WGSL lacks and must emulate with 16-bit halves). The algorithm is
 * written once over an abstract word type, so the interpreter (numbers) and the WGSL lowering
 * (expression trees) run the same text. The float is (x0 >>> 8) * 2^-24: 24 random bits, exact
 * in f32, in [0, 1).
 */

/** The 32-bit word operations Threefry needs. */
export interface WordOps<W> {
  readonly word: (v: number) => W;
  /** a + b mod 2^32 */
  readonly add: (a: W, b: W) => W;
  readonly xor: (a: W, b: W) => W;
  /** Rotation left by a constant 0 < r < 32. */
  readonly rotl: (a: W, r: number) => W;
}

/** Rotation constants of Threefry-2x32 (Random123 R_32x2). */
const ROTATIONS = [13, 15, 26, 6, 17, 29, 16, 24] as const;
/** The key schedule parity constant of Threefish-32. */
const PARITY = 0x1bd11bda;

/** Threefry-2x32-20 of counter (c0, c1) under key (k0, k1). */
export function threefry2x32<W>(o: WordOps<W>, k0: W, k1: W, c0: W, c1: W): [W, W] {
  const ks = [k0, k1, o.xor(o.xor(o.word(PARITY), k0), k1)] as const;
  let x0 = o.add(c0, ks[0]);
  let x1 = o.add(c1, ks[1]);
  for (let r = 0; r < 20; r++) {
    x0 = o.add(x0, x1);
    x1 = o.xor(o.rotl(x1, ROTATIONS[r % 8]!), x0);
    if (r % 4 === 3) {
      // key injection s = 1..5: x0 += ks[s % 3]; x1 += ks[(s + 1) % 3] + s
      const s = (r + 1) / 4;
      x0 = o.add(x0, ks[s % 3]!);
      x1 = o.add(o.add(x1, ks[(s + 1) % 3]!), o.word(s));
    }
  }
  return [x0, x1];
}

/** Words as JavaScript numbers in [0, 2^32). */
export const NUMBER_WORDS: WordOps<number> = {
  word: (v) => v >>> 0,
  add: (a, b) => (a + b) >>> 0,
  xor: (a, b) => (a ^ b) >>> 0,
  rotl: (a, r) => ((a << r) | (a >>> (32 - r))) >>> 0,
};

/** 2^-24: the weight of the lowest of the 24 bits kept. */
export const UNIT = 2 ** -24;

/** The uniform [0, 1) value of element `index` (see OpAttrs['random_uniform']). */
export function uniformAt(seed: number, stream: number, index: number, counter: number): number {
  const [x0] = threefry2x32(NUMBER_WORDS, seed >>> 0, stream >>> 0, index >>> 0, counter >>> 0);
  return (x0 >>> 8) * UNIT;
}
