/**
 * @file Model -> JSON in the model format. Every node is written as a primitive, so a model loaded
 * from JSON with composites serializes to its decomposition; loading that JSON gives back the same
 * graph. Unlabeled nodes get the anonymous name `%<id>`, which the loader does not keep as a label;
 * so do nodes whose label is not a valid name or is already taken.
 */
import type { Node } from './graph.js';
import { MODEL_FORMAT_VERSION, type Model } from './model.js';
import { NAME_PATTERN, type ModelJson } from './schema.js';

export function modelToJson(model: Model): ModelJson {
  const g = model.graph;
  const names: string[] = [];
  // Source names are taken first: a label may not claim a name that a later source declares.
  const used = new Set<string>();
  for (const n of g.nodes) if (n.op === 'input' || n.op === 'param' || n.op === 'state') used.add(n.attrs.name);
  const inputs: NonNullable<ModelJson['inputs']> = [];
  const params: NonNullable<ModelJson['params']> = [];
  const state: NonNullable<ModelJson['state']> = [];
  const nodes: ModelJson['nodes'] = [];
  g.nodes.forEach((n: Node, i) => {
    let nm: string;
    if (n.op === 'input' || n.op === 'param' || n.op === 'state') nm = n.attrs.name;
    else nm = n.label !== undefined && !used.has(n.label) && !n.label.startsWith('%') && NAME_PATTERN.test(n.label) ? n.label : `%${i}`;
    used.add(nm);
    names.push(nm);
    switch (n.op) {
      case 'input':
        inputs.push({ name: nm, shape: [...n.attrs.shape], dtype: n.attrs.dtype });
        return;
      case 'param':
        params.push({ name: nm, shape: [...n.attrs.shape], init: n.attrs.init });
        return;
      case 'state':
        state.push({ name: nm, shape: [...n.attrs.shape], dtype: n.attrs.dtype, init: n.attrs.init });
        return;
      default:
        nodes.push({ name: nm, op: n.op, inputs: n.inputs.map((x) => names[x]!), attrs: { ...n.attrs } as Record<string, unknown> });
    }
  });
  // fromEntries defines own keys, so no output name can reach an object's prototype.
  const outputs: Record<string, string> = Object.fromEntries(g.outputs.map((o) => [o.name, names[o.value]!]));
  return {
    version: MODEL_FORMAT_VERSION,
    name: model.name,
    inputs,
    params,
    ...(state.length ? { state } : {}),
    nodes,
    outputs,
    ...(g.updates.length ? { updates: g.updates.map((u) => ({ target: u.target, value: names[u.value]! })) } : {}),
    ...(model.loss !== undefined ? { loss: model.loss } : {}),
    ...(model.optimizer ? { optimizer: model.optimizer } : {}),
  };
}
