/**
 * @file The artifact: everything the runtime needs to run a compiled program, and nothing of the
 * compiler. WGSL shader modules, the buffers (each a region of a GPU buffer: `arena` + `offset`),
 * the dispatch list of one step with its bindings and workgroup counts, the copies that write
 * updated parameters back at the end of the step, and the layout of inputs, outputs, parameters
 * and optimizer state. Serializable as `manifest.json` plus the shader files.
 */
import type { Init } from '../ir/ops.js';

export const ARTIFACT_FORMAT = 'adjoint-artifact';
export const ARTIFACT_VERSION = 1;
/** The compiler's version, recorded in every artifact (part of the tuning cache's key). */
export const COMPILER_VERSION = 'adjoint 0.1.0 (variants 1)';

export type ArtifactDType = 'f32' | 'i32';
export type BufferRole = 'input' | 'param' | 'state' | 'temp' | 'scratch';

/** One GPU buffer the runtime creates. */
export interface ArenaSpec {
  readonly id: number;
  readonly bytes: number;
  readonly role: BufferRole;
}

/** A tensor's place: `bytes` at `offset` inside arena `arena`. */
export interface Region {
  readonly arena: number;
  readonly offset: number;
  readonly bytes: number;
}

export interface TensorSlot {
  readonly name: string;
  readonly dtype: ArtifactDType;
  readonly shape: readonly number[];
  readonly region: Region;
}

export interface PersistentSlot extends TensorSlot {
  readonly init: Init;
}

export interface DispatchSpec {
  /** Index into `shaders`. */
  readonly shader: number;
  /** Bindings 0..n-1 in order; the last `outputs` of them are written. */
  readonly bindings: readonly Region[];
  readonly outputs: number;
  readonly workgroups: readonly [number, number, number];
  readonly label: string;
  /**
   * The ways to compute this dispatch, the default first (it equals `shader` and `workgroups`):
   * the same bindings, another shader and grid each. The runtime times them and runs the fastest
   * (see tune.ts). Absent: one way only.
   */
  readonly variants?: readonly DispatchVariantSpec[];
}

/** One variant of a dispatch: its stable name (a key of the tuning cache), shader and grid. */
export interface DispatchVariantSpec {
  readonly name: string;
  readonly shader: number;
  readonly workgroups: readonly [number, number, number];
  /** Built to compile fast: what the dispatch runs until tuning has timed it (at most one per dispatch). */
  readonly quick?: true;
}

export interface CopySpec {
  readonly from: Region;
  readonly to: Region;
}

export interface Requirements {
  readonly limits: {
    readonly maxStorageBuffersPerShaderStage: number;
    readonly maxStorageBufferBindingSize: number;
    readonly maxBufferSize: number;
    readonly maxComputeWorkgroupsPerDimension: number;
    readonly maxComputeInvocationsPerWorkgroup: number;
    readonly maxComputeWorkgroupStorageSize: number;
    /** A minimum: the device's alignment must divide this one. */
    readonly minStorageBufferOffsetAlignment: number;
    /**
     * Compiled for a device with the `subgroups` feature: shaders of subgroup variants (those that
     * say `enable subgroups;`) may be present. The runtime refuses such a shader on a device
     * without the feature. Absent: false.
     */
    readonly subgroups?: boolean;
    /**
     * The smallest subgroup the device may run (its adapter's `subgroupMinSize`, at least 4): the
     * subgroup matmuls broadcast a tile's rows from that many lanes (up to 8), so a device whose
     * subgroups may be smaller cannot run them. Absent: 4, WebGPU's minimum.
     */
    readonly subgroupMinSize?: number;
  };
  readonly features: readonly string[];
}

export interface Artifact {
  readonly format: typeof ARTIFACT_FORMAT;
  readonly version: typeof ARTIFACT_VERSION;
  readonly name: string;
  /** The compiler that made it (absent in older artifacts). */
  readonly compiler?: string;
  readonly requirements: Requirements;
  readonly shaders: readonly string[];
  readonly arenas: readonly ArenaSpec[];
  readonly inputs: readonly TensorSlot[];
  readonly outputs: readonly TensorSlot[];
  readonly params: readonly PersistentSlot[];
  readonly state: readonly PersistentSlot[];
  /** One step: these dispatches in order, then `copies`. */
  readonly dispatches: readonly DispatchSpec[];
  readonly copies: readonly CopySpec[];
  /** Name of the loss output when the program trains. */
  readonly loss?: string;
  /** After dispatch `after`, these temporaries are dead (their bytes may be reused). */
  readonly frees: readonly { readonly after: number; readonly regions: readonly Region[] }[];
  /** Bytes of temporaries: every buffer its own, the liveness lower bound, and the plan. */
  readonly memory: { readonly naiveBytes: number; readonly lowerBound: number; readonly plannedBytes: number };
}
