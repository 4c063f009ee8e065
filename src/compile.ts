/**
 * @file The library's compile step: model -> artifacts. A model with a loss and an optimizer gets a
 * training program (forward, loss, backward and update in one step: the pass pipeline of
 * src/passes/pipeline.ts) and a forward program (for evaluation); both are plain artifacts that the
 * runtime runs without the compiler.
 */
import { emitArtifact, SPEC_LIMITS, type DeviceLimits } from './codegen/emit.js';
import type { Graph } from './ir/graph.js';
import type { Model } from './ir/model.js';
import type { Artifact } from './runtime/artifact.js';
import { trainingGraph } from './passes/training.js';
import { simplify } from './passes/simplify.js';
import { specializeMode } from './passes/mode.js';

export interface CompileOptions {
  /** Limits of the device the artifacts must run on; default: the WebGPU spec defaults. */
  readonly limits?: Partial<DeviceLimits>;
  /** Called with the graph after every pass (for `--dump`). */
  readonly dump?: (pass: string, g: Graph) => void;
  /** Fuse kernels (default true); false: one kernel per op, the baseline fusion is measured against. */
  readonly fuse?: boolean;
}

export interface Compiled {
  readonly model: Model;
  /** The one training program: forward, loss, backward, optimizer update. */
  readonly train?: Artifact;
  /** Forward only (the eval mode: no dropout, batch norm's running statistics): every output of the model. */
  readonly forward: Artifact;
  /** Notes for the user (e.g. a parameter the loss does not depend on). */
  readonly diagnostics: readonly string[];
}

export function compile(model: Model, opts: CompileOptions = {}): Compiled {
  const limits = { ...SPEC_LIMITS, ...opts.limits };
  // The forward program is the eval mode: is_training -> 0 (no dropout, running statistics).
  const fwdGraph = simplify(specializeMode(model.graph, 'eval'));
  opts.dump?.('forward', fwdGraph);
  const fuse = opts.fuse ?? true;
  const forward = emitArtifact(fwdGraph, { name: model.name, limits, fuse });
  if (model.loss === undefined || model.optimizer === undefined) return { model, forward, diagnostics: [] };
  const t = trainingGraph(model, opts.dump ? { dump: opts.dump } : {});
  const train = emitArtifact(t.graph, { name: model.name, limits, loss: model.loss, fuse });
  return { model, train, forward, diagnostics: t.diagnostics };
}
