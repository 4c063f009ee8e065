/**
 * @file The kernel description: what one compute dispatch computes, before it is WGSL. A kernel
 * reads some values (its input bindings, in order) and writes one: either a `map` (one output
 * element per thread, `expr` over the output coordinates o0, o1, …), a `reduce` (a combine over a
 * reduction space, `body` over output coordinates o* and reduction coordinates r*, then
 * `finalize` of the accumulator `acc`), or a `matmul` (register-tiled; operands are expressions,
 * so a transposed or broadcast operand costs nothing, and a convolution is a matmul whose operands
 * are index arithmetic over its input and filter: an implicit GEMM, with a `place` that puts
 * element (mi, ni) at its output coordinates). Expressions inline every value that is not
 * materialized, which is how fusion happens.
 */
import type { Graph, ValueId } from '../ir/graph.js';
import { valueName } from '../ir/printer.js';
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
      /**
       * Where element (z*, mi, ni) is in the output: its coordinates (expressions of z*, `mi`, `ni`)
       * in the output's shape. Absent: at [z*, mi, ni] of [batch, m, n].
       */
      readonly place?: { readonly shape: readonly number[]; readonly coords: readonly Expr[] };
      /** Applied to the accumulated `acc` (vars z*, `mi`, `ni` available). */
      readonly finalize: Expr;
      /**
       * The column sums of B over k, computed on the side of a 2-D matmul (a bias gradient next to
       * its weight gradient): `finalize` of their `acc` at column `ni`, written to `output`, with
       * further outputs computed from them (`w0`, `w1`, … and `ni`).
       */
      readonly side?: {
        readonly output: BufferRef;
        readonly dtype: 'f32' | 'i32';
        readonly finalize: Expr;
        readonly extras: readonly ExtraOutput[];
      };
    }
  | {
      /**
       * One workgroup per row: the output's shape is [...outer, ...inner] and each row (one
       * outer index) first computes its stages in order — row reductions over the inner
       * coordinates, or values of the row — then the elementwise `expr` at every element of the
       * row. Stage j's value is the variable `s<j>` in later stages and in `expr` (softmax: the
       * row's max, then its sum of exponentials, then every element).
       */
      readonly kind: 'rows';
      readonly shape: readonly number[];
      /** How many leading axes index the rows. */
      readonly outer: number;
      readonly stages: readonly RowStage[];
      /** The output at o0… (all axes), reading s0…. */
      readonly expr: Expr;
    };

/** A per-row value of a `rows` kernel. */
export interface RowStage {
  readonly dtype: 'f32' | 'i32';
  /** A reduction over the row (`body` over all o*, combined into `acc`); absent for a plain row value. */
  readonly reduce?: { readonly combine: Combine; readonly accType: 'f32' | 'i32'; readonly body: Expr };
  /** The stage's value from `acc` and the outer coordinates (and earlier stages). */
  readonly value: Expr;
  /** Where the value is stored (at the row's index), when other kernels read it. */
  readonly out?: BufferRef;
}

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

/** Every buffer a kernel writes, in binding order: the main output, further outputs, row stages. */
export function kernelOutputs(k: Kernel): BufferRef[] {
  const stages = k.body.kind === 'rows' ? k.body.stages.flatMap((s) => (s.out ? [s.out] : [])) : [];
  const side = k.body.kind === 'matmul' && k.body.side ? [k.body.side.output, ...k.body.side.extras.map((x) => x.ref)] : [];
  return [k.output, ...k.extras.map((x) => x.ref), ...stages, ...side];
}

/** Ops that are always inlined into their readers, fused or not: left out of kernel labels. */
const INLINE_ALWAYS = new Set(['full', 'iota', 'stop_gradient']);

/** The ops a kernel computes, in node order, joined by `+` (constants left out). */
export function kernelLabel(g: Graph, k: Kernel): string {
  const ops = k.nodes.map((id) => g.nodes[id]!.op).filter((op) => !INLINE_ALWAYS.has(op));
  return ops.length ? ops.join('+') : g.nodes[k.nodes.at(-1)!]!.op;
}

/**
 * Kernels as text (`--dump lowering`, `--dump schedule`), one line each in the given order: its
 * label and kind, the values it computes, the buffers it reads and writes (values by their
 * printer names), and the outputs written in place.
 */
export function printKernels(g: Graph, kernels: readonly Kernel[]): string {
  const ref = (r: BufferRef) => (r.kind === 'value' ? valueName(r.id) : `scratch${r.id}`);
  return kernels.map((k, i) => {
    const shape = k.body.kind === 'matmul' ? `[${[...k.body.batch, k.body.m, k.body.n].join(',')}] k=${k.body.k}` : `[${k.body.shape.join(',')}]`;
    const inPlace = k.inPlace?.length ? `; in place: ${k.inPlace.map((p) => `${ref(kernelOutputs(k)[p.slot]!)} over ${valueName(p.target)}`).join(', ')}` : '';
    return `k${i} ${kernelLabel(g, k)}: ${k.body.kind} ${shape}; nodes ${k.nodes.map(valueName).join(' ')}; reads ${k.inputs.map(ref).join(' ') || '-'}; writes ${kernelOutputs(k).map(ref).join(' ')}${inPlace}\n`;
  }).join('');
}
