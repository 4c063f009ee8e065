/**
 * @file The kernel description: what one compute dispatch computes, before it is WGSL. A kernel
 * reads some values (its input bindings, in order) and writes one: either a `map` (one output
 * element per thread, `expr` over the output coordinates o0, o1, …), a `reduce` (a combine over a
 * reduction space, `body` over output coordinates o* and reduction coordinates r*, then
 * `finalize` of the accumulator `acc`), or a `matmul` (register-tiled; operands are expressions,
 * so a transposed or broadcast operand costs nothing). Expressions inline every value that is not
 * materialized, which is how fusion happens.
 */
import type { ValueId } from '../ir/graph.js';
import type { Expr } from './expr.js';

export type Combine = 'sum' | 'max';

export type KernelBody =
  | { readonly kind: 'map'; readonly shape: readonly number[]; readonly expr: Expr }
  | {
      readonly kind: 'reduce';
      /** The output's shape (its coordinates are o0, o1, …). */
      readonly shape: readonly number[];
      /** The reduction space (its coordinates are r0, r1, …). */
      readonly rshape: readonly number[];
      readonly combine: Combine;
      /** The accumulator's type (the contraction's dtype; the output's may differ after an epilogue). */
      readonly accType: 'f32' | 'i32';
      readonly body: Expr;
      /** Applied to the accumulator `acc` (and may use o*). */
      readonly finalize: Expr;
    }
  | {
      readonly kind: 'matmul';
      readonly batch: readonly number[];
      readonly m: number;
      readonly n: number;
      readonly k: number;
      /** A[b*, m, k] over vars z0…, `mi`, `ki`. */
      readonly lhs: Expr;
      /** B[b*, k, n] over vars z0…, `ki`, `ni`. */
      readonly rhs: Expr;
      /** Applied to the accumulated `acc` (vars z*, `mi`, `ni` available). */
      readonly finalize: Expr;
    };

/** Where a kernel reads or writes: a value of the graph, or a scratch buffer of the program. */
export type BufferRef = { readonly kind: 'value'; readonly id: ValueId } | { readonly kind: 'scratch'; readonly id: number };

/**
 * A further output computed per output element from the main one: `expr` over the same
 * coordinates and `v0`, `v1`, … (the values of the outputs before it at this element).
 */
export interface ExtraOutput {
  readonly ref: BufferRef;
  readonly dtype: 'f32' | 'i32';
  readonly expr: Expr;
}

export interface Kernel {
  /** Bindings read, in binding order. */
  readonly inputs: readonly BufferRef[];
  /** The main written binding, after the inputs. */
  readonly output: BufferRef;
  readonly dtype: 'f32' | 'i32';
  readonly body: KernelBody;
  /** Further outputs of the same shape, written after the main one (bindings after it). */
  readonly extras: readonly ExtraOutput[];
  /** The graph nodes this kernel computes (for `inspect` and tests). */
  readonly nodes: readonly ValueId[];
  /**
   * Outputs written over the buffer of the value they update (a parameter or optimizer state):
   * output `slot` (0 main, i the i-th further output) lives in `target`'s buffer, and the kernel
   * reads the old value through that output's binding (loads with binding -1 - slot).
   */
  readonly inPlace?: readonly { readonly slot: number; readonly target: ValueId }[];
}
