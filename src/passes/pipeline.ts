/**
 * @file The shape of a graph pass: `{ name, run(graph) => graph }`, pure (each returns a new
 * graph, never changes its input). The passes are listed, in order and together with the stages
 * that follow them (fusion to artifact), in src/compile.ts `STAGES`, which runs them.
 */
import type { Graph } from '../ir/graph.js';

export interface Pass {
  readonly name: string;
  run(g: Graph): Graph;
}
