/**
 * @file WGSL emission: kernel description -> WGSL dispatches, through one typed table of variants
 * per kernel kind (wgsl/map.ts, reduce.ts, rows.ts, matmul.ts; shared pieces in wgsl/common.ts).
 * Every variant that fits the kernel and the device limits is emitted; they give the same
 * dispatches with the same bindings, so each dispatch carries its variants (the default first) and
 * the runtime picks one by measurement. Shapes are baked into the shader as constants. Every
 * identifier is generated here: nothing from a model file reaches the text.
 */
import { internal } from '../ir/errors.js';
import type { ScalarType } from '../passes/expr.js';
import type { BufferRef, Kernel } from '../passes/kernel.js';
import { simplifyKernel } from './ranges.js';
import type { CodegenLimits, Dispatch, DispatchVariant, EmitContext, KernelOf, VariantTable } from './wgsl/common.js';
import { MAP_VARIANTS } from './wgsl/map.js';
import { MATMUL_VARIANTS } from './wgsl/matmul.js';
import { REDUCE_VARIANTS } from './wgsl/reduce.js';
import { ROWS_VARIANTS } from './wgsl/rows.js';

export { DEFAULT_LIMITS, grid, wgslType } from './wgsl/common.js';
export type { CodegenLimits, Dispatch, DispatchVariant, ScratchRequest, Variant, VariantTable } from './wgsl/common.js';
export { serialSums } from './wgsl/reduce.js';
export { tilePlan } from './wgsl/matmul.js';

type Kind = Kernel['body']['kind'];

/** The variants of every kernel kind: a missing kind fails to compile. */
export const VARIANTS: { readonly [K in Kind]: VariantTable<K> } = {
  map: MAP_VARIANTS,
  reduce: REDUCE_VARIANTS,
  rows: ROWS_VARIANTS,
  matmul: MATMUL_VARIANTS,
};

/** Options of {@link emitKernel}. */
export interface EmitKernelOptions {
  /** Only these variants (by name; the default when none of them fits); all that fit when absent. */
  readonly variants?: readonly string[];
}

/** The variants of a kernel that fit these limits, the default first. */
export function fittingVariants<K extends Kind>(k: KernelOf<K>, limits: CodegenLimits): { name: string; emit: (ctx: EmitContext) => Dispatch[] }[] {
  const table = VARIANTS[k.body.kind] as unknown as VariantTable<K>;
  const fit = table.variants.filter((v) => v.fits(k, limits));
  const first = table.preferred?.(k, limits);
  const ordered = first ? [...fit.filter((v) => v.name === first), ...fit.filter((v) => v.name !== first)] : fit;
  if (!ordered.length) internal(`no ${k.body.kind} variant fits the kernel`);
  return ordered.map((v) => ({ name: v.name, emit: (ctx: EmitContext) => v.emit(k, ctx) }));
}

const sameRef = (a: BufferRef, b: BufferRef) => a.kind === b.kind && a.id === b.id;

/**
 * Compiles one kernel to its dispatches (two for a split reduction or split matmul), each with the
 * variants that fit (default first; a variant whose WGSL and grid equal an earlier one's is left
 * out). `inputTypes` gives the dtype of each input binding; `scratch` allocates scratch buffers
 * (once per kernel: every variant uses the same ones).
 */
export function emitKernel(
  k: Kernel,
  inputTypes: readonly ScalarType[],
  limits: CodegenLimits,
  scratch: (bytes: number) => number,
  label: string,
  /** Elements of each input binding (NaN for scratch); without them no operand is vectorized. */
  inputSizes?: readonly number[],
  opts: EmitKernelOptions = {},
): Dispatch[] {
  k = simplifyKernel(k);
  const all = fittingVariants(k as KernelOf<Kind>, limits);
  const chosen = opts.variants ? all.filter((v) => opts.variants!.includes(v.name)) : all;
  const list = chosen.length ? chosen : all.slice(0, 1);
  const allocated: { id: number; bytes: number }[] = [];
  const emitted = list.map((v) => {
    let n = 0;
    const shared = (bytes: number) => {
      const i = n++;
      const a = allocated[i];
      if (a) return a.bytes >= bytes ? a.id : internal(`variant ${v.name} asks for more scratch than the default`);
      allocated.push({ id: scratch(bytes), bytes });
      return allocated[i]!.id;
    };
    return { name: v.name, dispatches: v.emit({ inputTypes, limits, scratch: shared, label, ...(inputSizes ? { inputSizes } : {}) }) };
  });
  const base = emitted[0]!.dispatches;
  for (const e of emitted) {
    const same = e.dispatches.length === base.length && e.dispatches.every((d, i) => {
      const b = base[i]!;
      return d.inputs.length === b.inputs.length && d.inputs.every((r, j) => sameRef(r, b.inputs[j]!)) && sameRef(d.output, b.output) &&
        d.extraOutputs.length === b.extraOutputs.length && d.extraOutputs.every((r, j) => sameRef(r, b.extraOutputs[j]!));
    });
    if (!same) internal(`variant ${e.name} of a ${k.body.kind} kernel binds other buffers than its default`);
  }
  return base.map((d, i) => {
    const variants: DispatchVariant[] = [];
    for (const e of emitted) {
      const x = e.dispatches[i]!;
      if (!variants.some((v) => v.wgsl === x.wgsl && v.workgroups.every((w, j) => w === x.workgroups[j]))) variants.push({ name: e.name, wgsl: x.wgsl, workgroups: x.workgroups });
    }
    return variants.length > 1 ? { ...d, variants } : d;
  });
}
