/**
 * @file The compiler pipeline: one flat ordered list of graph-to-graph passes that reads top to
 * bottom (tinygrad's `full_rewrite_to_sink`, QBE's `main.c`), and the driver that runs such a
 * list, verifying the graph after every pass when asked and handing it to a `dump` callback (the
 * CLI's `--dump <pass>` prints the IR after the pass of that name). Passes are pure: each returns
 * a new graph.
 */
import type { Graph } from '../ir/graph.js';
import type { OptimizerConfig } from '../ir/model.js';
import { verify } from '../ir/verify.js';
import { grad } from './autodiff.js';
import { modePass } from './mode.js';
import { optimizerPass } from './optimizer.js';
import { simplifyPass } from './simplify.js';

export interface Pass {
  readonly name: string;
  run(g: Graph): Graph;
}

export interface PipelineOptions {
  /** Run the verifier after every pass (tests do). */
  readonly verify?: boolean;
  /** Called with the graph after every pass, with the pass's name. */
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

/**
 * The passes that turn a forward graph with a scalar loss into one training step: forward, loss,
 * backward and the optimizer's update. `onDiagnostics` receives autodiff's notes (a parameter the
 * loss does not depend on, …).
 */
export function trainingPasses(loss: string, optimizer: OptimizerConfig, onDiagnostics: (notes: readonly string[]) => void): Pass[] {
  return [
    modePass('train'), // first: is_training -> 1 (random masks, batch statistics, running-statistic updates)
    { ...simplifyPass, name: 'simplify-forward' }, // before autodiff, so no adjoint is built for x*1, dead code, …
    {
      name: 'autodiff', // adds the outputs grad:<param>
      run: (g) => {
        const r = grad(g, { loss });
        onDiagnostics(r.diagnostics);
        return r.graph;
      },
    },
    optimizerPass(optimizer), // after autodiff: reads and drops its grad:<param> outputs
    simplifyPass, // after the optimizer: folds its constants, shares work between forward, backward and update, drops the dead
    // Fusion, scheduling and memory planning come next. They produce plans rather than graphs, so
    // they are not in this list: src/codegen/emit.ts runs planFusion -> scheduleKernels -> planMemory
    // on the graph this list returns, in that order (each needs the one before).
  ];
}
