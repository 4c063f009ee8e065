/**
 * @file The training program of a model: the one graph that computes forward, loss, backward
 * (autodiff) and the optimizer's update, as the pass list of pipeline.ts makes it. A model needs a
 * loss and an optimizer to have one.
 */
import { AdjointError } from '../ir/errors.js';
import type { Graph } from '../ir/graph.js';
import type { Model } from '../ir/model.js';
import { runPipeline, trainingPasses, type PipelineOptions } from './pipeline.js';

/** The model cannot be trained as it is (no loss, no optimizer). */
export class TrainingError extends AdjointError {
  override name = 'TrainingError';
}

export interface TrainingProgram {
  readonly graph: Graph;
  /** Notes for the user, e.g. a parameter the loss does not depend on. */
  readonly diagnostics: readonly string[];
}

export function trainingGraph(model: Model, opts: PipelineOptions = {}): TrainingProgram {
  if (model.loss === undefined) {
    throw new TrainingError(`model "${model.name}" has no loss: set "loss" to the name of a scalar f32 output (outputs: ${model.graph.outputs.map((o) => o.name).join(', ') || 'none'})`);
  }
  if (model.optimizer === undefined) {
    throw new TrainingError(`model "${model.name}" has no optimizer: set "optimizer", e.g. { "kind": "sgd", "lr": 0.1 }`);
  }
  let diagnostics: readonly string[] = [];
  const graph = runPipeline(model.graph, trainingPasses(model.loss, model.optimizer, (notes) => (diagnostics = notes)), opts);
  return { graph, diagnostics };
}
