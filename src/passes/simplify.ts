/**
 * @file Simplification, to a fixed point: constant folding (an op whose operands are uniform
 * constants becomes a `full`), algebraic identities (written below as pattern -> replacement
 * rules, the identity as a comment on each), common-subexpression elimination (same op, same
 * attributes, same operands: one node), and dead-code elimination (nodes that no output or update
 * needs; inputs, parameters and state are kept, as they are the program's interface). Pure: the
 * input graph is never changed, and surviving nodes keep their relative order.
 */
import { GraphBuilder, copyNode, type Value } from '../ir/builder.js';
import { shapeEq } from '../ir/dtype.js';
import type { Graph, Node, ValueId } from '../ir/graph.js';
import { evaluate } from '../ir/interp.js';
import { isElementwise, isSource } from '../ir/ops.js';

/** A rule sees the node about to be added (operands already rewritten) and may return a replacement. */
type Rule = (n: Node, xs: readonly Value[], b: GraphBuilder) => Value | undefined;

const constOf = (b: GraphBuilder, v: Value): number | undefined => {
  const n = b.node(v.id);
  return n.op === 'full' ? n.attrs.value : undefined;
};
const is = (b: GraphBuilder, v: Value | undefined, c: number) => v !== undefined && constOf(b, v) === c;
/** `v` if it already has the node's type, else undefined (a rewrite must keep the type). */
const same = (n: Node, v: Value | undefined) => (v && shapeEq(v.type.shape, n.type.shape) && v.type.dtype === n.type.dtype ? v : undefined);
const full = (b: GraphBuilder, n: Node, value: number) => b.full(value, n.type.shape, n.type.dtype);

const RULES: readonly Rule[] = [
  // op(full a, full b, …) -> full(op(a, b, …)) for elementwise ops
  (n, xs, b) => {
    if (!isElementwise(n.op) || n.op === 'stop_gradient' || !xs.every((x) => constOf(b, x) !== undefined)) return undefined;
    const sb = new GraphBuilder();
    const args = xs.map((x) => sb.full(constOf(b, x)!, [], x.type.dtype));
    sb.output('v', sb.add(n.op, n.attrs as never, args));
    const v = evaluate(sb.build(), new Map(), 'f32').outputs.get('v')!.data[0]!;
    return Number.isFinite(v) ? full(b, n, v) : undefined;
  },
  // broadcast_to / reshape / transpose / slice of a full -> full
  (n, [x], b) => (['broadcast_to', 'reshape', 'transpose', 'slice'].includes(n.op) && x && constOf(b, x) !== undefined ? full(b, n, constOf(b, x)!) : undefined),
  // reduce_sum(full v) -> full v·count; reduce_mean(full v), reduce_max(full v) -> full v
  (n, [x], b) => {
    if (!x || constOf(b, x) === undefined || (n.op !== 'reduce_sum' && n.op !== 'reduce_mean' && n.op !== 'reduce_max')) return undefined;
    const count = n.attrs.axes.reduce((p, a) => p * x.type.shape[a]!, 1);
    return full(b, n, n.op === 'reduce_sum' ? constOf(b, x)! * count : constOf(b, x)!);
  },
  // x + 0 -> x, 0 + x -> x, x - 0 -> x
  (n, [x, y], b) => (n.op === 'add' || n.op === 'sub') && is(b, y, 0) ? same(n, x) : n.op === 'add' && is(b, x, 0) ? same(n, y) : undefined,
  // x * 1 -> x, 1 * x -> x, x / 1 -> x
  (n, [x, y], b) => (n.op === 'mul' || n.op === 'div') && is(b, y, 1) ? same(n, x) : n.op === 'mul' && is(b, x, 1) ? same(n, y) : undefined,
  // x * 0 -> 0, 0 * x -> 0 (as ML compilers do: NaN and Inf in x are not propagated)
  (n, [x, y], b) => (n.op === 'mul' && (is(b, x, 0) || is(b, y, 0)) ? full(b, n, 0) : undefined),
  // 0 - x -> neg x
  (n, [x, y], b) => (n.op === 'sub' && is(b, x, 0) && y ? same(n, b.neg(y)) : undefined),
  // neg(neg x) -> x
  (n, [x], b) => (n.op === 'neg' && x && b.node(x.id).op === 'neg' ? b.value(b.node(x.id).inputs[0]!) : undefined),
  // where(full c, a, b) -> a or b
  (n, [c, x, y], b) => (n.op === 'where' && c && constOf(b, c) !== undefined ? same(n, constOf(b, c) !== 0 ? x : y) : undefined),
  // transpose(transpose(x, p), q) -> transpose(x, p∘q); transpose by the identity -> x
  (n, [x], b) => {
    if (n.op !== 'transpose' || !x) return undefined;
    const inner = b.node(x.id);
    if (inner.op === 'transpose') return b.transpose(b.value(inner.inputs[0]!), n.attrs.perm.map((q) => inner.attrs.perm[q]!));
    return n.attrs.perm.every((p, i) => p === i) ? x : undefined;
  },
  // reshape(reshape x) -> reshape x; reshape to its own shape -> x
  (n, [x], b) => {
    if (n.op !== 'reshape' || !x) return undefined;
    if (shapeEq(x.type.shape, n.type.shape)) return x;
    const inner = b.node(x.id);
    return inner.op === 'reshape' ? b.reshape(b.value(inner.inputs[0]!), n.type.shape) : undefined;
  },
  // broadcast_to its own shape, slice of everything, pad by nothing, cast to its own dtype, reduce over no axes -> x
  (n, [x]) => {
    if (!x) return undefined;
    switch (n.op) {
      case 'broadcast_to': return same(n, x);
      case 'slice': return n.attrs.steps.every((s) => s === 1) ? same(n, x) : undefined;
      case 'pad': return same(n, x);
      case 'cast': return same(n, x);
      case 'reduce_sum': case 'reduce_mean': case 'reduce_max': return n.attrs.axes.length === 0 ? same(n, x) : undefined;
      default: return undefined;
    }
  },
  // reduce_sum(reduce_sum(x, A), B) -> reduce_sum(x, A ∪ B), and likewise with means (scaled) and maxima
  (n, [x], b) => {
    if (!x || (n.op !== 'reduce_sum' && n.op !== 'reduce_mean' && n.op !== 'reduce_max')) return undefined;
    const inner = b.node(x.id);
    if (inner.op !== 'reduce_sum' && inner.op !== 'reduce_mean' && inner.op !== 'reduce_max') return undefined;
    if ((inner.op === 'reduce_max') !== (n.op === 'reduce_max')) return undefined;
    const src = b.value(inner.inputs[0]!);
    const rank = src.type.shape.length;
    const kept = [...Array(rank).keys()].filter((a) => inner.attrs.keepdims || !inner.attrs.axes.includes(a));
    const axes = [...new Set([...inner.attrs.axes, ...n.attrs.axes.map((a) => kept[a]!)])].sort((p, q) => p - q);
    const count = (as: readonly number[], s: readonly number[]) => as.reduce((p, a) => p * s[a]!, 1);
    let v = b.reduce(n.op === 'reduce_max' ? 'reduce_max' : 'reduce_sum', src, axes, false);
    const scale = (inner.op === 'reduce_mean' ? 1 / count(inner.attrs.axes, src.type.shape) : 1) * (n.op === 'reduce_mean' ? 1 / count(n.attrs.axes, x.type.shape) : 1);
    if (scale !== 1) v = b.mul(v, scale);
    return shapeEq(v.type.shape, n.type.shape) ? v : b.reshape(v, n.type.shape);
  },
];

/** One rewrite sweep: rules, then CSE; returns the new graph. */
function sweep(g: Graph): Graph {
  const b = new GraphBuilder();
  const map: Value[] = [];
  const seen = new Map<string, Value>();
  g.nodes.forEach((n, i) => {
    const xs = n.inputs.map((x) => map[x]!);
    let v: Value | undefined;
    const external = n.op === 'input' || n.op === 'param' || n.op === 'state';
    if (!isSource(n.op)) for (const rule of RULES) if ((v = rule(n, xs, b))) break;
    if (!v) {
      const key = external ? undefined : `${n.op}|${JSON.stringify(n.attrs)}|${xs.map((x) => x.id).join(',')}`;
      v = key !== undefined ? seen.get(key) : undefined;
      if (!v) {
        v = copyNode(b, n, xs);
        if (key !== undefined) seen.set(key, v);
      }
    }
    map[i] = v;
  });
  for (const o of g.outputs) b.output(o.name, map[o.value]!);
  for (const u of g.updates) b.update(u.target, map[u.value]!);
  return dce(b.build());
}

/** Drops what no output or update needs; keeps sources; keeps order. */
export function dce(g: Graph): Graph {
  const live = g.nodes.map((n) => isSource(n.op) && n.op !== 'full' && n.op !== 'iota');
  for (const o of g.outputs) live[o.value] = true;
  for (const u of g.updates) live[u.value] = true;
  for (let i = g.nodes.length - 1; i >= 0; i--) if (live[i]) for (const x of g.nodes[i]!.inputs) live[x] = true;
  const b = new GraphBuilder();
  const map: ValueId[] = [];
  g.nodes.forEach((n, i) => {
    if (live[i]) map[i] = copyNode(b, n, n.inputs.map((x) => b.value(map[x]!))).id;
  });
  for (const o of g.outputs) b.output(o.name, b.value(map[o.value]!));
  for (const u of g.updates) b.update(u.target, b.value(map[u.value]!));
  return b.build();
}

export function simplify(g: Graph): Graph {
  let cur = g;
  for (let i = 0; i < 20; i++) {
    const next = sweep(cur);
    if (next.nodes.length === cur.nodes.length && JSON.stringify(next) === JSON.stringify(cur)) return next;
    cur = next;
  }
  return cur;
}

export const simplifyPass = { name: 'simplify', run: simplify };
