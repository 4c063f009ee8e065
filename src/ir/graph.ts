/**
 * @file The graph: a readonly list of nodes in topological order (a node's inputs are earlier
 * nodes, so the list order is an execution order and the graph is acyclic by construction), the
 * named outputs, and the updates that write new values into persistent parameters and state at
 * the end of a training step. A value is the single output of a node and is named by the node's
 * index. Passes never mutate a graph; they build a new one.
 */
import type { TensorType } from './dtype.js';
import type { Op, OpAttrs } from './ops.js';

export type ValueId = number;

interface NodeOf<K extends Op> {
  readonly op: K;
  readonly attrs: OpAttrs[K];
  readonly inputs: readonly ValueId[];
  readonly type: TensorType;
  /** The model file's name for this value, if it had one (printed as a comment, never in WGSL). */
  readonly label?: string;
}

/** A node: a discriminated union over `op`, so `attrs` is typed by the op. */
export type Node = { [K in Op]: NodeOf<K> }[Op];
export type NodeOfOp<K extends Op> = NodeOf<K>;

export interface Output {
  readonly name: string;
  readonly value: ValueId;
}

/** At the end of a step, the persistent source named `target` (a param or state) takes `value`. */
export interface Update {
  readonly target: string;
  readonly value: ValueId;
}

export interface Graph {
  readonly nodes: readonly Node[];
  readonly outputs: readonly Output[];
  readonly updates: readonly Update[];
}

export function outputValue(g: Graph, name: string): ValueId | undefined {
  return g.outputs.find((o) => o.name === name)?.value;
}

/** Node ids of the persistent sources (params and state), by name. */
export function persistentByName(g: Graph): Map<string, ValueId> {
  const m = new Map<string, ValueId>();
  g.nodes.forEach((n, i) => {
    if (n.op === 'param' || n.op === 'state') m.set(n.attrs.name, i);
  });
  return m;
}

/** For every value, the ids of the nodes that read it (with repeats when read twice). */
export function usesOf(g: Graph): ValueId[][] {
  const uses: ValueId[][] = g.nodes.map(() => []);
  g.nodes.forEach((n, i) => {
    for (const x of n.inputs) uses[x]!.push(i);
  });
  return uses;
}
