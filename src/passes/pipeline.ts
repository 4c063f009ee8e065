/**
 * @file The compiler pipeline, as one flat ordered list of passes that reads top to bottom. A
 * training program is: autodiff (adjoint graph) -> optimizer (updates in IR) -> simplify. Fusion,
 * scheduling and memory planning run in codegen (src/codegen/emit.ts) on the final graph, in that
 * order: planFusion -> scheduleKernels -> planMemory.
 */
import type { Graph } from '../ir/graph.js';
import type { Model } from '../ir/model.js';
import { AdjointError } from '../ir/errors.js';
import { verify } from '../ir/verify.js';
import { grad } from './autodiff.js';
import { applyOptimizer } from './optimizer.js';
import { simplify } from './simplify.js';

export interface Pass {
  readonly name: string;
  run(g: Graph): Graph;
}

export interface PipelineOptions {
  /** Run the verifier after every pass (tests do). */
  readonly verify?: boolean;
  /** Called with the graph after every pass (`--dump <pass>`). */
  readonly dump?: (pass: string, g: Graph) => void;
}

export function runPipeline(g: Graph, passes: readonly Pass[], opts: PipelineOptions = {}): Graph {
  let cur = g;
  for (const p of passes) {
    cur = p.run(cur);
    if (opts.verify) verify(cur, p.name);
    opts.dump?.(p.name, cur);
  }
  return cur;
}

export interface TrainingProgram {
  readonly graph: Graph;
  readonly diagnostics: readonly string[];
}

/** The one training program of a model: forward, loss, backward and the optimizer's update. */
export function trainingGraph(model: Model, opts: PipelineOptions = {}): TrainingProgram {
  if (model.loss === undefined) throw new AdjointError(`model "${model.name}" has no loss: set "loss" to the name of a scalar output`);
  if (model.optimizer === undefined) throw new AdjointError(`model "${model.name}" has no optimizer: set "optimizer"`);
  const loss = model.loss;
  const optimizer = model.optimizer;
  let diagnostics: readonly string[] = [];
  const passes: Pass[] = [
    { name: 'simplify-forward', run: simplify },
    {
      name: 'autodiff',
      run: (g) => {
        const r = grad(g, { loss });
        diagnostics = r.diagnostics;
        return r.graph; // outputs grad:<param>, which the optimizer consumes and drops
      },
    },
    {
      name: 'optimizer', // needs the grad:<param> outputs of autodiff
      run: (g) => {
        const grads = new Map(g.outputs.filter((o) => o.name.startsWith('grad:')).map((o) => [o.name.slice(5), o.value]));
        const withUpdates = applyOptimizer(g, grads, optimizer);
        return { ...withUpdates, outputs: withUpdates.outputs.filter((o) => !o.name.startsWith('grad:')) };
      },
    },
    { name: 'simplify', run: simplify }, // after the optimizer: folds its constants, drops what the step does not need
  ];
  return { graph: runPipeline(model.graph, passes, opts), diagnostics };
}
