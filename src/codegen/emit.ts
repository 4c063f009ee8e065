/**
 * @file Graph -> artifact. Chooses which values are materialized (the rest are inlined into the
 * kernels that read them), lowers one kernel per materialized node, emits its WGSL dispatches,
 * gives every buffer its place, and lists the copies that write updated parameters and state back
 * at the end of a step. Without fusion every op is its own kernel except constants, `iota` and
 * `stop_gradient`, which are always inlined.
 */
import { numel } from '../ir/dtype.js';
import { AdjointError, DeviceError, internal } from '../ir/errors.js';
import type { Graph, ValueId } from '../ir/graph.js';
import {
  ARTIFACT_FORMAT, ARTIFACT_VERSION, COMPILER_VERSION, type ArenaSpec, type DispatchVariantSpec, type Artifact, type BufferRole, type CopySpec, type DispatchSpec,
  type PersistentSlot, type Region, type Requirements, type TensorSlot,
} from '../runtime/artifact.js';
import { kernelOutputs, type BufferRef, type Kernel } from '../passes/kernel.js';
import { planFusion, lowerGroup, type FusionPlan } from '../passes/fusion.js';
import { planMemory } from '../passes/memory.js';
import { ScheduleCycle, scheduleKernels } from '../passes/schedule.js';
import { DEFAULT_LIMITS, emitKernel, type CodegenLimits } from './wgsl.js';

export type DeviceLimits = Requirements['limits'];

/** The WebGPU spec defaults: what a program may assume of any device. */
export const SPEC_LIMITS: DeviceLimits = {
  maxStorageBuffersPerShaderStage: 8,
  maxStorageBufferBindingSize: 134217728,
  maxBufferSize: 268435456,
  maxComputeWorkgroupsPerDimension: 65535,
  maxComputeInvocationsPerWorkgroup: 256,
  maxComputeWorkgroupStorageSize: 16384,
  minStorageBufferOffsetAlignment: 256,
};

export interface EmitOptions {
  readonly name?: string;
  /** The limits of the device the program will run on (default: the spec defaults). */
  readonly limits?: Partial<DeviceLimits>;
  /** Fuse kernels (default true); false gives one kernel per op, the baseline. */
  readonly fuse?: boolean;
  /** Name of the loss output, recorded in the artifact. */
  readonly loss?: string;
  /** Lower matmul and the convolutions as one-thread-per-output contractions (benchmark baseline). */
  readonly naiveMatmul?: boolean;
  /**
   * Emit only these kernel variants (by name, see codegen/wgsl.ts; a kernel none of them fits
   * keeps its default). Absent: every variant that fits, for the runtime to choose from.
   */
  readonly variants?: readonly string[];
}

/** Ops that are always inlined into their readers, fused or not. */
const INLINE_ALWAYS = new Set(['full', 'iota', 'stop_gradient']);

export function emitArtifact(g: Graph, opts: EmitOptions = {}): Artifact {
  const limits: DeviceLimits = { ...SPEC_LIMITS, ...opts.limits };
  const cg: CodegenLimits = { ...DEFAULT_LIMITS, ...limits };
  const fusion = { maxBindings: limits.maxStorageBuffersPerShaderStage, fuse: opts.fuse ?? true };
  /** Fusion, lowering and the schedule; the values of a cycle when the kernels admit no order. */
  const planned = (inPlace: boolean, outOfPlace: ReadonlySet<ValueId>): { plan: FusionPlan; kernels: Kernel[] } | ScheduleCycle => {
    const plan = planFusion(g, { ...fusion, inPlace, outOfPlace });
    const lowered = plan.kernels.map((k) => lowerGroup(g, k, plan.materialized, { naiveMatmul: opts.naiveMatmul ?? false, inPlace: plan.inPlace }));
    try {
      return { plan, kernels: scheduleKernels(g, lowered) };
    } catch (e) {
      if (e instanceof ScheduleCycle) return e;
      throw e;
    }
  };
  // Kernel boundaries may make a reader of an old value depend on its new value: then fusion is
  // planned again with the updates of the cycle written out of place (the others stay in place),
  // as kernels joined on the bindings that updates in place save may not fit without them (found
  // by the gradient fuzzer: Adam on two parameters); as a last resort with none in place.
  const outOfPlace = new Set<ValueId>();
  let attempt = planned(true, outOfPlace);
  while (attempt instanceof ScheduleCycle && attempt.targets.some((t) => !outOfPlace.has(t))) {
    for (const t of attempt.targets) outOfPlace.add(t);
    attempt = planned(true, outOfPlace);
  }
  if (attempt instanceof ScheduleCycle) attempt = planned(false, outOfPlace);
  if (attempt instanceof ScheduleCycle) internal('the kernels read each other\'s outputs: no order exists');
  const { plan, kernels } = attempt;
  const materialized = plan.materialized;

  // Dispatches first (a split reduction asks for scratch), buffers placed after.
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
  const emitted: {
    s: number; inputs: readonly BufferRef[]; outputs: readonly BufferRef[]; workgroups: readonly [number, number, number]; label: string;
    variants?: DispatchVariantSpec[];
  }[] = [];
  for (const k of kernels) {
    const root = g.nodes[k.output.kind === 'value' ? k.output.id : k.nodes[0]!]!;
    const inputTypes = k.inputs.map((r) => (r.kind === 'value' ? g.nodes[r.id]!.type.dtype : 'f32'));
    const bindings = k.inputs.length + kernelOutputs(k).length;
    if (bindings > limits.maxStorageBuffersPerShaderStage) {
      throw new DeviceError(`a ${root.op} kernel needs ${bindings} storage buffers but the device allows ${limits.maxStorageBuffersPerShaderStage} per shader stage`);
    }
    const inputSizes = k.inputs.map((r) => (r.kind === 'value' ? numel(g.nodes[r.id]!.type.shape) : NaN));
    for (const d of emitKernel(k, inputTypes, cg, scratch, kernelLabel(g, k), inputSizes, opts.variants ? { variants: opts.variants } : {})) {
      const s = shaderOf(d.wgsl);
      const variants = d.variants?.map((v) => ({ name: v.name, shader: shaderOf(v.wgsl), workgroups: v.workgroups }));
      emitted.push({ s, inputs: d.inputs, outputs: [d.output, ...d.extraOutputs], workgroups: d.workgroups, label: d.label, ...(variants ? { variants } : {}) });
    }
  }

  // Persistent buffers (inputs, params, state) each have their own arena; temporaries share arenas.
  const arenas: ArenaSpec[] = [];
  const regions = new Map<string, Region>();
  const keyOf = (r: BufferRef) => `${r.kind}:${r.id}`;
  const bytesOf = (t: { shape: readonly number[] }) => Math.max(4, numel(t.shape) * 4);
  const persistentRole = (id: ValueId): BufferRole | undefined => {
    const op = g.nodes[id]!.op;
    return op === 'input' || op === 'param' || op === 'state' ? op : undefined;
  };
  for (const id of [...materialized].sort((a, b) => a - b)) {
    const role = persistentRole(id);
    if (!role) continue;
    const bytes = bytesOf(g.nodes[id]!.type);
    checkSize(bytes, limits);
    arenas.push({ id: arenas.length, bytes, role });
    regions.set(`value:${id}`, { arena: arenas.length - 1, offset: 0, bytes });
  }
  // Updates computed in place live in the buffer of the value they replace.
  for (const k of kernels) {
    for (const { slot, target } of k.inPlace ?? []) {
      const out = kernelOutputs(k)[slot] ?? internal(`kernel has no output ${slot}`);
      regions.set(keyOf(out), regions.get(`value:${target}`) ?? internal(`in-place target ${target} has no buffer`));
    }
  }
  const end = emitted.length;
  const live = new Map<string, { bytes: number; start: number; end: number }>();
  const kept = new Set([...g.outputs.map((o) => `value:${o.value}`), ...g.updates.map((u) => `value:${u.value}`)]);
  emitted.forEach((d, i) => {
    for (const r of [...d.inputs, ...d.outputs]) {
      const key = keyOf(r);
      if (regions.has(key)) continue;
      const bytes = r.kind === 'value' ? bytesOf(g.nodes[r.id]!.type) : Math.max(4, scratchBytes[r.id]!);
      const l = live.get(key) ?? { bytes, start: i, end: i };
      l.end = kept.has(key) ? end : i;
      live.set(key, l);
    }
  });
  const lifetimes = [...live].map(([key, l]) => ({ key, ...l }));
  for (const l of lifetimes) checkSize(l.bytes, limits);
  const mem = planMemory(lifetimes, { alignment: limits.minStorageBufferOffsetAlignment, maxBufferSize: limits.maxBufferSize });
  const base = arenas.length;
  mem.arenas.forEach((bytes) => arenas.push({ id: arenas.length, bytes: Math.max(4, alignUp4(bytes)), role: 'temp' }));
  for (const [key, p] of mem.placements) regions.set(key, { arena: base + p.arena, offset: p.offset, bytes: p.bytes });

  const regionOf = (r: BufferRef): Region => {
    const reg = regions.get(keyOf(r));
    if (!reg) throw new AdjointError(`internal: no buffer for ${keyOf(r)}`);
    return reg;
  };
  const freeAt = new Map<number, Region[]>();
  for (const l of lifetimes) {
    if (l.end >= end) continue;
    const list = freeAt.get(l.end) ?? [];
    list.push(regions.get(l.key)!);
    freeAt.set(l.end, list);
  }
  const frees = [...freeAt].sort((a, b) => a[0] - b[0]).map(([after, rs]) => ({ after, regions: rs }));
  const dispatches: DispatchSpec[] = emitted.map((d) => ({
    shader: d.s, bindings: [...d.inputs, ...d.outputs].map(regionOf), outputs: d.outputs.length, workgroups: d.workgroups, label: d.label,
    ...(d.variants ? { variants: d.variants } : {}),
  }));
  const slot = (name: string, id: ValueId): TensorSlot => {
    const n = g.nodes[id]!;
    return { name, dtype: n.type.dtype, shape: [...n.type.shape], region: regionOf({ kind: 'value', id }) };
  };
  const inputs: TensorSlot[] = [];
  const params: PersistentSlot[] = [];
  const state: PersistentSlot[] = [];
  g.nodes.forEach((n, i) => {
    if (n.op === 'input') inputs.push(slot(n.attrs.name, i));
    else if (n.op === 'param') params.push({ ...slot(n.attrs.name, i), init: n.attrs.init });
    else if (n.op === 'state') state.push({ ...slot(n.attrs.name, i), init: n.attrs.init });
  });
  const persistent = new Map([...params, ...state].map((p) => [p.name, p.region]));
  const copies: CopySpec[] = [];
  for (const u of g.updates) {
    const to = persistent.get(u.target);
    const from = regionOf({ kind: 'value', id: u.value });
    if (!to) throw new AdjointError(`internal: update of "${u.target}" has no buffer`);
    if (from.arena !== to.arena || from.offset !== to.offset) copies.push({ from, to });
  }
  return {
    format: ARTIFACT_FORMAT,
    version: ARTIFACT_VERSION,
    name: opts.name ?? 'model',
    compiler: COMPILER_VERSION,
    requirements: { limits, features: [] },
    shaders,
    arenas,
    inputs,
    outputs: g.outputs.map((o) => slot(o.name, o.value)),
    params,
    state,
    dispatches,
    copies,
    ...(opts.loss !== undefined ? { loss: opts.loss } : {}),
    frees,
    memory: { naiveBytes: mem.naiveBytes, lowerBound: mem.lowerBound, plannedBytes: mem.plannedBytes },
  };
}

const alignUp4 = (x: number) => Math.ceil(x / 4) * 4;

function checkSize(bytes: number, limits: DeviceLimits): void {
  if (bytes > limits.maxBufferSize || bytes > limits.maxStorageBufferBindingSize) {
    throw new DeviceError(`a tensor of ${bytes} bytes exceeds the device's limits (maxBufferSize ${limits.maxBufferSize}, maxStorageBufferBindingSize ${limits.maxStorageBufferBindingSize})`);
  }
}

/** The ops a kernel computes, in node order, joined by `+` (constants left out). */
export function kernelLabel(g: Graph, k: Kernel): string {
  const ops = k.nodes.map((id) => g.nodes[id]!.op).filter((op) => !INLINE_ALWAYS.has(op));
  return ops.length ? ops.join('+') : g.nodes[k.nodes.at(-1)!]!.op;
}

/** Bytes of every buffer of an artifact. */
export const artifactBytes = (a: Artifact): number => a.arenas.reduce((s, x) => s + x.bytes, 0);
export { numel };
