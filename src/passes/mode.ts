/**
 * @file The mode pass: specializes a model's graph for one program. A model is one graph whose
 * mode-dependent composites (dropout, batch normalization) read the `is_training` flag; the
 * training program is the graph with the flag 1 (random masks, batch statistics, running
 * statistics and the random number counter updated), the forward program the graph with the flag
 * 0 (the eval mode: dropout is the identity, batch normalization uses the running statistics, and
 * nothing they own is updated). The pass replaces the flag with that constant, simplifies (so
 * `where(1, a, b)` is `a` and the other branch is dead), and drops the updates left writing a
 * state's own value back (`running' = where(0, next, running)` is `running`). It runs first in
 * both pipelines (src/compile.ts `STAGES`), so no later pass sees `is_training`.
 */
import { GraphBuilder, copyNode, type Value } from '../ir/builder.js';
import type { Graph } from '../ir/graph.js';
import type { Mode } from '../ir/interp.js';
import type { Pass } from './pipeline.js';
import { simplify } from './simplify.js';

export function specializeMode(g: Graph, mode: Mode): Graph {
  if (!g.nodes.some((n) => n.op === 'is_training')) return g;
  const b = new GraphBuilder();
  const map: Value[] = [];
  for (const n of g.nodes) {
    map.push(n.op === 'is_training' ? b.full(mode === 'train' ? 1 : 0) : copyNode(b, n, n.inputs.map((x) => map[x]!)));
  }
  for (const o of g.outputs) b.output(o.name, map[o.value]!);
  for (const u of g.updates) b.update(u.target, map[u.value]!);
  const s = simplify(b.build());
  // An update whose value is its own target's source node changes nothing.
  const updates = s.updates.filter((u) => {
    const n = s.nodes[u.value]!;
    return !((n.op === 'state' || n.op === 'param') && n.attrs.name === u.target);
  });
  return updates.length === s.updates.length ? s : simplify({ ...s, updates });
}

export const modePass = (mode: Mode): Pass => ({ name: `mode-${mode}`, run: (g) => specializeMode(g, mode) });
