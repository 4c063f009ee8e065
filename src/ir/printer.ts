/**
 * @file The one canonical printer. Values are named a, b, …, z, aa, ab, … in node order (which is
 * the order of first definition), one line per node with its type:
 * `c:f32[128,10] = matmul a b`. Tests, debug dumps and error messages all use it.
 */
import { fmtType } from './dtype.js';
import type { Graph, Node, ValueId } from './graph.js';
import type { Init } from './ops.js';

/** a, b, …, z, aa, ab, … */
export function valueName(id: ValueId): string {
  let s = '';
  let n = id;
  do {
    s = String.fromCharCode(97 + (n % 26)) + s;
    n = Math.floor(n / 26) - 1;
  } while (n >= 0);
  return s;
}

function fmtInit(i: Init): string {
  switch (i.kind) {
    case 'zeros': case 'ones': case 'glorot_uniform': case 'he_normal': case 'seed': return i.kind;
    case 'constant': return `constant(${i.value})`;
    case 'uniform': return `uniform(${i.low},${i.high})`;
    case 'normal': return `normal(${i.std})`;
  }
}

function fmtAttr(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(fmtAttr).join(',')}]`;
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : v > 0 ? 'inf' : v < 0 ? '-inf' : 'nan';
  if (v && typeof v === 'object' && 'kind' in v) return fmtInit(v as Init);
  return String(v);
}

/** Attributes shown after the op; shape and dtype of sources are already in the type. */
function fmtAttrs(n: Node): string {
  const skip = n.op === 'input' || n.op === 'param' || n.op === 'state' || n.op === 'full' || n.op === 'iota'
    ? new Set(['shape', 'dtype'])
    : new Set<string>();
  const parts = Object.entries(n.attrs)
    .filter(([k]) => !skip.has(k))
    .map(([k, v]) => `${k}=${fmtAttr(v)}`);
  return parts.length ? `[${parts.join(',')}]` : '';
}

/** One node in printer form, e.g. `c:f32[128,10] = matmul a b`. */
export function printNode(n: Node, id: ValueId): string {
  const args = n.inputs.map(valueName).join(' ');
  const lhs = `${valueName(id)}:${fmtType(n.type)}`;
  const rhs = `${n.op}${fmtAttrs(n)}${args ? ' ' + args : ''}`;
  const label = n.label && !('name' in n.attrs && n.attrs.name === n.label) ? `  # ${n.label}` : '';
  return `${lhs} = ${rhs}${label}`;
}

export function printGraph(g: Graph): string {
  const lines = g.nodes.map((n, i) => printNode(n, i));
  if (g.outputs.length) lines.push(`outputs ${g.outputs.map((o) => `${o.name}=${valueName(o.value)}`).join(' ')}`);
  for (const u of g.updates) lines.push(`update ${JSON.stringify(u.target)} <- ${valueName(u.value)}`);
  return lines.join('\n') + '\n';
}
