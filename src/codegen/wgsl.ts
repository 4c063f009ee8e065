/**
 * @file WGSL emission: kernel description -> WGSL dispatches, through one typed table of variants
 * per kernel kind (wgsl/map.ts, reduce.ts, rows.ts, matmul.ts; shared pieces in wgsl/common.ts).
 * Every variant that fits the kernel and the device limits is emitted; they give the same
 * dispatches with the same bindings, so each dispatch carries its variants (the default first) and
 * the runtime picks one by measurement. Shapes are baked into the shader as constants. Every
 * identifier is generated here: nothing from a model file reaches the text.
 */
import { numel } from '../ir/dtype.js';
import { DeviceError, internal } from '../ir/errors.js';
import type { Graph } from '../ir/graph.js';
import type { ScalarType } from '../passes/expr.js';
import { kernelLabel, kernelOutputs, type BufferRef, type Kernel } from '../passes/kernel.js';
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
export function fittingVariants<K extends Kind>(k: KernelOf<K>, limits: CodegenLimits): { name: string; quick?: true; emit: (ctx: EmitContext) => Dispatch[] }[] {
  const table = VARIANTS[k.body.kind] as unknown as VariantTable<K>;
  const fit = table.variants.filter((v) => v.fits(k, limits));
  const first = table.preferred?.(k, limits);
  const ordered = first ? [...fit.filter((v) => v.name === first), ...fit.filter((v) => v.name !== first)] : fit;
  if (!ordered.length) internal(`no ${k.body.kind} variant fits the kernel`);
  const quick = ordered.find((v) => v.quick)?.name;
  return ordered.map((v) => ({ name: v.name, ...(v.name === quick ? { quick: true as const } : {}), emit: (ctx: EmitContext) => v.emit(k, ctx) }));
}

const sameRef = (a: BufferRef, b: BufferRef) => a.kind === b.kind && a.id === b.id;

/** A kernel ready to emit: its index arithmetic simplified for its ranges, and its variants (the default first). */
export interface KernelVariants {
  readonly kernel: Kernel;
  readonly variants: readonly { readonly name: string; readonly quick?: true; readonly emit: (ctx: EmitContext) => Dispatch[] }[];
}

/**
 * The variants stage for one kernel: its index expressions simplified (ranges.ts), then the
 * variants that fit it and the limits, the default first; with `opts.variants`, only those named
 * (the default when none of them fits).
 */
export function kernelVariants(k: Kernel, limits: CodegenLimits, opts: EmitKernelOptions = {}): KernelVariants {
  const kernel = simplifyKernel(k);
  const all = fittingVariants(kernel as KernelOf<Kind>, limits);
  const chosen = opts.variants ? all.filter((v) => opts.variants!.includes(v.name)) : all;
  return { kernel, variants: chosen.length ? chosen : all.slice(0, 1) };
}

/**
 * Compiles one kernel to its dispatches (two for a split reduction or split matmul), each with the
 * variants (default first; a variant whose WGSL and grid equal an earlier one's is left out).
 * `inputTypes` gives the dtype of each input binding; `scratch` allocates scratch buffers (once
 * per kernel: every variant uses the same ones).
 */
export function emitKernel(
  kv: KernelVariants,
  inputTypes: readonly ScalarType[],
  limits: CodegenLimits,
  scratch: (bytes: number) => number,
  label: string,
  /** Elements of each input binding (NaN for scratch); without them no operand is vectorized. */
  inputSizes?: readonly number[],
): Dispatch[] {
  const { kernel: k, variants: list } = kv;
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
    return { name: v.name, quick: v.quick, dispatches: v.emit({ inputTypes, limits, scratch: shared, label, ...(inputSizes ? { inputSizes } : {}) }) };
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
      if (!variants.some((v) => v.wgsl === x.wgsl && v.workgroups.every((w, j) => w === x.workgroups[j]))) variants.push({ name: e.name, wgsl: x.wgsl, workgroups: x.workgroups, ...(e.quick ? { quick: true as const } : {}) });
    }
    return variants.length > 1 ? { ...d, variants } : d;
  });
}

// ---- the variants and WGSL stages (src/compile.ts lists them) ----

/**
 * The variants stage: every kernel with the variants it is emitted in. A kernel that binds more
 * storage buffers than the device allows fits none: that is the user's device, so a DeviceError.
 */
export function programVariants(g: Graph, kernels: readonly Kernel[], limits: CodegenLimits, opts: EmitKernelOptions = {}): KernelVariants[] {
  return kernels.map((k) => {
    const bindings = k.inputs.length + kernelOutputs(k).length;
    if (bindings > limits.maxStorageBuffersPerShaderStage) {
      const root = g.nodes[k.output.kind === 'value' ? k.output.id : k.nodes[0]!]!;
      throw new DeviceError(`a ${root.op} kernel needs ${bindings} storage buffers but the device allows ${limits.maxStorageBuffersPerShaderStage} per shader stage`);
    }
    return kernelVariants(k, limits, opts);
  });
}

/** The variants as text (`--dump variants`): per kernel, its label and its variants' names, the default first. */
export function printVariants(g: Graph, kernels: readonly KernelVariants[]): string {
  return kernels.map((kv, i) => `k${i} ${kernelLabel(g, kv.kernel)}: ${kv.variants.map((v) => v.name).join(' ')}\n`).join('');
}


/** A program's dispatches in order, with their bindings as buffers and their shaders by number. */
export interface EmittedProgram {
  /** Distinct WGSL modules; dispatches and variants refer to them by index. */
  readonly shaders: readonly string[];
  readonly dispatches: readonly {
    readonly shader: number;
    readonly inputs: readonly BufferRef[];
    /** The main output, then the further ones. */
    readonly outputs: readonly BufferRef[];
    readonly workgroups: readonly [number, number, number];
    readonly label: string;
    readonly variants?: readonly { readonly name: string; readonly shader: number; readonly workgroups: readonly [number, number, number]; readonly quick?: true }[];
  }[];
  /** Bytes of each scratch buffer (`{ kind: 'scratch', id }` is the id-th). */
  readonly scratchBytes: readonly number[];
}

/** The WGSL stage: every kernel (in schedule order, with its variants) to dispatches, identical shaders shared. */
export function emitProgram(g: Graph, kernels: readonly KernelVariants[], limits: CodegenLimits): EmittedProgram {
  const scratchBytes: number[] = [];
  const scratch = (bytes: number) => scratchBytes.push(bytes) - 1;
  const shaders: string[] = [];
  const shaderIndex = new Map<string, number>();
  const shaderOf = (wgsl: string): number => {
    let s = shaderIndex.get(wgsl);
    if (s === undefined) {
      s = shaders.length;
      shaders.push(wgsl);
      shaderIndex.set(wgsl, s);
    }
    return s;
  };
  const dispatches: EmittedProgram['dispatches'][number][] = [];
  for (const kv of kernels) {
    const k = kv.kernel;
    const inputTypes = k.inputs.map((r) => (r.kind === 'value' ? g.nodes[r.id]!.type.dtype : 'f32'));
    const inputSizes = k.inputs.map((r) => (r.kind === 'value' ? numel(g.nodes[r.id]!.type.shape) : NaN));
    for (const d of emitKernel(kv, inputTypes, limits, scratch, kernelLabel(g, k), inputSizes)) {
      const shader = shaderOf(d.wgsl);
      const variants = d.variants?.map((v) => ({ name: v.name, shader: shaderOf(v.wgsl), workgroups: v.workgroups, ...(v.quick ? { quick: v.quick } : {}) }));
      dispatches.push({ shader, inputs: d.inputs, outputs: [d.output, ...d.extraOutputs], workgroups: d.workgroups, label: d.label, ...(variants ? { variants } : {}) });
    }
  }
  return { shaders, dispatches, scratchBytes };
}

/** The emitted program as text (`--dump wgsl`): each dispatch's label, grid and variants, then each shader once. */
export function printProgram(p: EmittedProgram): string {
  const grid = (w: readonly number[]) => w.join('x');
  const lines = p.dispatches.map((d, i) => {
    const vs = d.variants?.map((v) => `${v.name}: shader ${v.shader} grid ${grid(v.workgroups)}`).join('; ');
    return `dispatch ${i} ${d.label}: shader ${d.shader} grid ${grid(d.workgroups)}${vs ? ` (variants ${vs})` : ''}`;
  });
  p.shaders.forEach((s, i) => lines.push(`-- shader ${i}`, s.trimEnd()));
  return lines.join('\n') + '\n';
}
