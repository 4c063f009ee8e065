/**
 * @file The artifact stage: assembles what the earlier stages made (the dispatches and shaders of
 * the WGSL stage, the buffer plan of the memory stage) into an artifact: every dispatch's bindings
 * as regions of arenas, the input, output, parameter and state slots, and the copies that write
 * updated parameters and state back at the end of a step when they were not computed in place.
 * It decides nothing: the stages in src/compile.ts run before it.
 */
import { internal } from '../ir/errors.js';
import type { Graph, ValueId } from '../ir/graph.js';
import { bufferKey, type BufferPlan } from '../passes/memory.js';
import type { BufferRef } from '../passes/kernel.js';
import {
  ARTIFACT_FORMAT, ARTIFACT_VERSION, COMPILER_VERSION, type Artifact, type CopySpec, type DispatchSpec, type PersistentSlot, type Region,
  type Requirements, type TensorSlot,
} from '../runtime/artifact.js';
import type { EmittedProgram } from './wgsl.js';

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

export interface AssembleOptions {
  readonly name: string;
  readonly limits: DeviceLimits;
  /** Name of the loss output, recorded in the artifact. */
  readonly loss?: string;
}

/** The artifact of a graph from its emitted program and its buffer plan. */
export function assembleArtifact(g: Graph, program: EmittedProgram, buffers: BufferPlan, opts: AssembleOptions): Artifact {
  const regionOf = (r: BufferRef): Region => buffers.regions.get(bufferKey(r)) ?? internal(`no buffer for ${bufferKey(r)}`);
  const dispatches: DispatchSpec[] = program.dispatches.map((d) => ({
    shader: d.shader, bindings: [...d.inputs, ...d.outputs].map(regionOf), outputs: d.outputs.length, workgroups: d.workgroups, label: d.label,
    ...(d.variants ? { variants: d.variants.map((v) => ({ ...v })) } : {}),
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
    const to = persistent.get(u.target) ?? internal(`update of "${u.target}" has no buffer`);
    const from = regionOf({ kind: 'value', id: u.value });
    if (from.arena !== to.arena || from.offset !== to.offset) copies.push({ from, to });
  }
  const mem = buffers.temporaries;
  return {
    format: ARTIFACT_FORMAT,
    version: ARTIFACT_VERSION,
    name: opts.name,
    compiler: COMPILER_VERSION,
    requirements: { limits: opts.limits, features: program.shaders.some((s) => /^enable subgroups;/m.test(s)) ? ['subgroups'] : [] },
    shaders: [...program.shaders],
    arenas: buffers.arenas.map((a, id) => ({ id, bytes: a.bytes, role: a.role })),
    inputs,
    outputs: g.outputs.map((o) => slot(o.name, o.value)),
    params,
    state,
    dispatches,
    copies,
    ...(opts.loss !== undefined ? { loss: opts.loss } : {}),
    frees: buffers.frees.map((f) => ({ after: f.after, regions: [...f.regions] })),
    memory: { naiveBytes: mem.naiveBytes, lowerBound: mem.lowerBound, plannedBytes: mem.plannedBytes },
  };
}

/** The artifact as text (`--dump artifact`): its manifest fields, shaders counted rather than printed. */
export function printArtifact(a: Artifact): string {
  return JSON.stringify({ ...a, shaders: `${a.shaders.length} shaders (--dump wgsl prints them)` }, null, 1) + '\n';
}

/** Bytes of every buffer of an artifact. */
export const artifactBytes = (a: Artifact): number => a.arenas.reduce((s, x) => s + x.bytes, 0);
