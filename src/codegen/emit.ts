/**
 * @file Graph -> artifact. Chooses which values are materialized (the rest are inlined into the
 * kernels that read them), lowers one kernel per materialized node, emits its WGSL dispatches,
 * gives every buffer its place, and lists the copies that write updated parameters and state back
 * at the end of a step. Without fusion every op is its own kernel except constants, `iota` and
 * `stop_gradient`, which are always inlined.
 */
import { numel } from '../ir/dtype.js';
import { AdjointError, DeviceError } from '../ir/errors.js';
import type { Graph, ValueId } from '../ir/graph.js';
import {
  ARTIFACT_FORMAT, ARTIFACT_VERSION, type ArenaSpec, type Artifact, type BufferRole, type CopySpec, type DispatchSpec,
  type PersistentSlot, type Region, type Requirements, type TensorSlot,
} from '../runtime/artifact.js';
import type { BufferRef, Kernel } from './kernel.js';
import { planFusion, lowerGroup } from '../passes/fusion.js';
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
};

export interface EmitOptions {
  readonly name?: string;
  /** The limits of the device the program will run on (default: the spec defaults). */
  readonly limits?: Partial<DeviceLimits>;
  /** Fuse kernels (default true); false gives one kernel per op, the baseline. */
  readonly fuse?: boolean;
  /** Name of the loss output, recorded in the artifact. */
  readonly loss?: string;
  /** Lower matmul as a one-thread-per-output contraction (benchmark baseline). */
  readonly naiveMatmul?: boolean;
}

/** Ops that are always inlined into their readers, fused or not. */
const INLINE_ALWAYS = new Set(['full', 'iota', 'stop_gradient']);

export function emitArtifact(g: Graph, opts: EmitOptions = {}): Artifact {
  const limits: DeviceLimits = { ...SPEC_LIMITS, ...opts.limits };
  const cg: CodegenLimits = { ...DEFAULT_LIMITS, ...limits };
  const plan = planFusion(g, { maxBindings: limits.maxStorageBuffersPerShaderStage, fuse: opts.fuse ?? true });
  const materialized = plan.materialized;
  const kernels = plan.kernels.map((k) => lowerGroup(g, k, materialized, opts.naiveMatmul ?? false));

  const arenas: ArenaSpec[] = [];
  const valueRegion = new Map<ValueId, Region>();
  const scratchRegion = new Map<number, Region>();
  const newArena = (bytes: number, role: BufferRole): Region => {
    const size = Math.max(4, Math.ceil(bytes / 4) * 4);
    if (size > limits.maxBufferSize || size > limits.maxStorageBufferBindingSize) {
      throw new DeviceError(`a buffer of ${size} bytes exceeds the device's limits (maxBufferSize ${limits.maxBufferSize}, maxStorageBufferBindingSize ${limits.maxStorageBufferBindingSize})`);
    }
    arenas.push({ id: arenas.length, bytes: size, role });
    return { arena: arenas.length - 1, offset: 0, bytes: size };
  };
  const roleOf = (id: ValueId): BufferRole => {
    const op = g.nodes[id]!.op;
    return op === 'input' || op === 'param' || op === 'state' ? op : 'temp';
  };
  for (const id of [...materialized].sort((a, b) => a - b)) {
    valueRegion.set(id, newArena(numel(g.nodes[id]!.type.shape) * 4, roleOf(id)));
  }
  let nextScratch = 0;
  const scratch = (bytes: number) => {
    const id = nextScratch++;
    scratchRegion.set(id, newArena(bytes, 'scratch'));
    return id;
  };
  const regionOf = (r: BufferRef): Region => {
    const reg = r.kind === 'value' ? valueRegion.get(r.id) : scratchRegion.get(r.id);
    if (!reg) throw new AdjointError(`internal: no buffer for ${r.kind} ${r.id}`);
    return reg;
  };

  const shaders: string[] = [];
  const shaderIndex = new Map<string, number>();
  const dispatches: DispatchSpec[] = [];
  for (const k of kernels) {
    const root = g.nodes[k.output.kind === 'value' ? k.output.id : k.nodes[0]!]!;
    const label = kernelLabel(g, k);
    const inputTypes = k.inputs.map((r) => (r.kind === 'value' ? g.nodes[r.id]!.type.dtype : 'f32'));
    if (k.inputs.length + 1 > limits.maxStorageBuffersPerShaderStage) {
      throw new DeviceError(`a ${root.op} kernel needs ${k.inputs.length + 1} storage buffers but the device allows ${limits.maxStorageBuffersPerShaderStage} per shader stage`);
    }
    for (const d of emitKernel(k, inputTypes, cg, scratch, label)) {
      let s = shaderIndex.get(d.wgsl);
      if (s === undefined) {
        s = shaders.length;
        shaders.push(d.wgsl);
        shaderIndex.set(d.wgsl, s);
      }
      dispatches.push({ shader: s, bindings: [...d.inputs, d.output].map(regionOf), workgroups: d.workgroups, label: d.label });
    }
  }

  const slot = (name: string, id: ValueId): TensorSlot => {
    const n = g.nodes[id]!;
    return { name, dtype: n.type.dtype, shape: [...n.type.shape], region: valueRegion.get(id)! };
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
    const from = valueRegion.get(u.value);
    if (!to || !from) throw new AdjointError(`internal: update of "${u.target}" has no buffer`);
    if (from.arena !== to.arena || from.offset !== to.offset) copies.push({ from, to });
  }
  return {
    format: ARTIFACT_FORMAT,
    version: ARTIFACT_VERSION,
    name: opts.name ?? 'model',
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
  };
}

/** The ops a kernel computes, in node order, joined by `+` (constants left out). */
export function kernelLabel(g: Graph, k: Kernel): string {
  const ops = k.nodes.map((id) => g.nodes[id]!.op).filter((op) => !INLINE_ALWAYS.has(op));
  return ops.length ? ops.join('+') : g.nodes[k.nodes.at(-1)!]!.op;
}

/** Bytes of every buffer of an artifact. */
export const artifactBytes = (a: Artifact): number => a.arenas.reduce((s, x) => s + x.bytes, 0);
export { numel };
