/**
 * @file The random number generator (src/ir/random.ts): Threefry-2x32-20 against the known-answer
 * vectors of Random123 (the same ones JAX's tests use), the float conversion, and the interpreter's
 * random_uniform as a function of (seed, stream, index, counter) only.
 */
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../src/ir/builder.js';
import { evaluate } from '../../src/ir/interp.js';
import { NUMBER_WORDS, threefry2x32, uniformAt } from '../../src/ir/random.js';
import { tensor } from '../../src/ir/tensor.js';

describe('Threefry-2x32-20', () => {
  // Random123 kat_vectors, "threefry2x32 20": counter, key -> result
  it.each([
    [[0, 0], [0, 0], [0x6b200159, 0x99ba4efe]],
    [[0xffffffff, 0xffffffff], [0xffffffff, 0xffffffff], [0x1cb996fc, 0xbb002be7]],
    [[0x243f6a88, 0x85a308d3], [0x13198a2e, 0x03707344], [0xc4923a9c, 0x483df7a0]],
  ])('counter %j, key %j', (ctr, key, want) => {
    expect(threefry2x32(NUMBER_WORDS, key[0]!, key[1]!, ctr[0]!, ctr[1]!)).toEqual(want);
  });

  it('the float keeps the top 24 bits: (x0 >>> 8) * 2^-24, in [0, 1)', () => {
    const [x0] = threefry2x32(NUMBER_WORDS, 5, 6, 7, 8);
    expect(uniformAt(5, 6, 7, 8)).toBe((x0 >>> 8) / 2 ** 24);
    let lo = 1;
    let hi = 0;
    let sum = 0;
    for (let i = 0; i < 20000; i++) {
      const u = uniformAt(1, 0, i, 0);
      lo = Math.min(lo, u);
      hi = Math.max(hi, u);
      sum += u;
    }
    expect(lo).toBeGreaterThanOrEqual(0);
    expect(hi).toBeLessThan(1);
    expect(Math.abs(sum / 20000 - 0.5)).toBeLessThan(0.01);
  });
});

describe('random_uniform in the interpreter', () => {
  const run = (seed: number, counter: number, stream: number) => {
    const b = new GraphBuilder();
    b.output('u', b.add('random_uniform', { shape: [3, 4], stream }, [b.input('s', [], 'i32'), b.input('k', [], 'i32')]));
    return Array.from(evaluate(b.build(), new Map([['s', tensor([], [seed], 'i32')], ['k', tensor([], [counter], 'i32')]])).outputs.get('u')!.data);
  };

  it('element i is uniformAt(seed, stream, i, counter), the same in float32 and float64', () => {
    expect(run(-7, 3, 2)).toEqual(Array.from({ length: 12 }, (_, i) => uniformAt(-7, 2, i, 3)));
  });

  it('seed, counter and stream each change every value', () => {
    const base = run(1, 0, 0);
    for (const other of [run(2, 0, 0), run(1, 1, 0), run(1, 0, 1)]) {
      expect(other.filter((v, i) => v === base[i])).toEqual([]);
    }
  });
});
