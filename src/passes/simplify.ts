/**
 * @file Simplification to a fixed point: constant folding (an op whose operands are uniform
 * constants becomes a `full`, its value computed by the reference interpreter so that f32 rounding
 * is the same as at run time), algebraic identities (the array `RULES` below: pattern ->
 * replacement, the identity as a comment above each rule, in the manner of tinygrad's
 * PatternMatcher and Cranelift's ISLE), common-subexpression elimination (same op, deep-equal
 * attributes, same operands — in either order for commutative ops — are one node) and dead-code
 * elimination (nodes that no output or update needs; `input`, `param` and `state` are always kept,
 * as they are the program's interface). Nodes are rebuilt in order through a rewriter that
 * simplifies each node as it is added (hash-consing with peephole rules), so a rule's replacement
 * is itself simplified. A replacement always has exactly the type of the node it replaces (a
 * value of a smaller shape, as `x` in `x:[3] + zeros:[2,3]`, is broadcast). Pure: the input graph
 * is never changed, and surviving nodes keep their relative order, so printed IR stays readable.
 *
 * Two decisions worth knowing: `x * 0 -> 0` (and a contraction with a zero operand -> 0) is
 * folded, as XLA and TVM do and JAX does not, so NaN and ±Inf in `x` are not propagated — the
 * adjoint graph makes many products with zero seeds, and training with a NaN in it is lost anyway.
 * A constant whose value would not be finite (`log 0`) is not folded: WGSL has no literal for it.
 * `stop_gradient` is kept (an identity at run time, but later differentiation needs it).
 */
import { GraphBuilder, type Value } from '../ir/builder.js';
import { typeEq, type DType, type Shape, type TensorType } from '../ir/dtype.js';
import { assertNever, internal } from '../ir/errors.js';
import type { Graph, ValueId } from '../ir/graph.js';
import { evaluate } from '../ir/interp.js';
import { BINARY_OPS, COMPARE_OPS, UNARY_OPS, type Op, type OpAttrs, type ReduceOp } from '../ir/ops.js';
import { printNode } from '../ir/printer.js';
import { inferType } from '../ir/shape.js';
import { scalar } from '../ir/tensor.js';
import type { Pass } from './pipeline.js';

/** What a rule sees: the node about to be added, its operands already simplified. */
type SiteOf<K extends Op> = {
  [J in K]: { readonly op: J; readonly attrs: OpAttrs[J]; readonly type: TensorType; readonly xs: readonly Value[] };
}[K];

interface Rule {
  readonly ops: readonly Op[];
  /** A value equal to the node (of its type, or broadcastable to it), or undefined. */
  readonly rewrite: (s: SiteOf<Op>, r: Rewriter) => Value | undefined;
}

/** A rule for the ops `ops`; `rewrite` sees a site typed by those ops. */
const rule = <K extends Op>(ops: readonly K[], rewrite: (s: SiteOf<K>, r: Rewriter) => Value | undefined): Rule =>
  ({ ops, rewrite: rewrite as Rule['rewrite'] });

const ELEMENTWISE = [...UNARY_OPS, ...BINARY_OPS, ...COMPARE_OPS, 'where', 'cast', 'stop_gradient'] as const;
const REDUCE: readonly ReduceOp[] = ['reduce_sum', 'reduce_mean', 'reduce_max'];
/** Ops linear in each operand: a zero operand makes a zero result. */
const CONTRACTIONS = ['matmul', 'conv2d', 'conv2d_input_grad', 'conv2d_filter_grad'] as const;
/** Ops whose operands commute (CSE matches them in either order). */
const COMMUTATIVE = new Set<Op>(['add', 'mul', 'max', 'min', 'eq', 'ne']);

/** The number of elements folded into each output element of a reduction. */
const reducedCount = (axes: readonly number[], shape: Shape) => axes.reduce((p, a) => p * shape[a]!, 1);

/** Evaluates a scalar elementwise op on constants with the reference interpreter in f32. */
function foldScalar(s: SiteOf<(typeof ELEMENTWISE)[number]>, values: readonly number[]): number {
  const b = new GraphBuilder();
  const args = s.xs.map((x, i) => b.full(values[i]!, [], x.type.dtype));
  b.output('v', b.add(s.op, s.attrs as never, args));
  return scalar(evaluate(b.build(), new Map(), 'f32').outputs.get('v')!);
}

const RULES: readonly Rule[] = [
  // ---- constant folding -----------------------------------------------------------------------

  // op(full a, full b, …) -> full op(a, b, …), for every elementwise op (stop_gradient too: a
  // constant has no gradient anyway)
  rule(ELEMENTWISE, (s, r) => {
    const cs = s.xs.map((x) => r.constant(x));
    return cs.every((c) => c !== undefined) ? r.full(foldScalar(s, cs), s.type) : undefined;
  }),
  // reshape / transpose / broadcast_to / slice (full v) -> full v
  rule(['reshape', 'transpose', 'broadcast_to', 'slice'], (s, r) => r.fullIf(r.constant(s.xs[0]), s.type)),
  // pad(full v) with value v -> full v
  rule(['pad'], (s, r) => (r.constant(s.xs[0]) === s.attrs.value ? r.full(s.attrs.value, s.type) : undefined)),
  // concat(full v, full v, …) -> full v
  rule(['concat'], (s, r) => {
    const v = r.constant(s.xs[0]);
    return s.xs.every((x) => r.constant(x) === v) ? r.fullIf(v, s.type) : undefined;
  }),
  // reduce_sum(full v) -> full v·n, n the number of elements summed into each result
  rule(['reduce_sum'], (s, r) => {
    const v = r.constant(s.xs[0]);
    return v === undefined ? undefined : r.full(roundTo(s.type.dtype, v) * reducedCount(s.attrs.axes, s.xs[0]!.type.shape), s.type);
  }),
  // reduce_mean(full v) -> full v;  reduce_max(full v) -> full v
  rule(['reduce_mean', 'reduce_max'], (s, r) => r.fullIf(r.constant(s.xs[0]), s.type)),
  // matmul / conv2d / conv2d_input_grad / conv2d_filter_grad with a zero operand -> 0 (see @file)
  rule(CONTRACTIONS, (s, r) => (s.xs.some((x) => r.constant(x) === 0) ? r.full(0, s.type) : undefined)),
  // gather(zeros, i) -> 0 (out-of-range rows read zeros too)
  rule(['gather'], (s, r) => (r.constant(s.xs[0]) === 0 ? r.full(0, s.type) : undefined)),
  // scatter_add(i, zeros) -> 0
  rule(['scatter_add'], (s, r) => (r.constant(s.xs[1]) === 0 ? r.full(0, s.type) : undefined)),

  // ---- algebraic identities -------------------------------------------------------------------

  // x + 0 -> x;  x - 0 -> x
  rule(['add', 'sub'], (s, r) => (r.constant(s.xs[1]) === 0 ? s.xs[0] : undefined)),
  // 0 + x -> x
  rule(['add'], (s, r) => (r.constant(s.xs[0]) === 0 ? s.xs[1] : undefined)),
  // x * 1 -> x;  x / 1 -> x
  rule(['mul', 'div'], (s, r) => (r.constant(s.xs[1]) === 1 ? s.xs[0] : undefined)),
  // 1 * x -> x
  rule(['mul'], (s, r) => (r.constant(s.xs[0]) === 1 ? s.xs[1] : undefined)),
  // x * 0 -> 0;  0 * x -> 0 (see @file: NaN and ±Inf in x are not propagated)
  rule(['mul'], (s, r) => (s.xs.some((x) => r.constant(x) === 0) ? r.full(0, s.type) : undefined)),
  // 0 - x -> neg x
  rule(['sub'], (s, r) => (r.constant(s.xs[0]) === 0 ? r.emit('neg', {}, [s.xs[1]!]) : undefined)),
  // neg(neg x) -> x
  rule(['neg'], (s, r) => r.operandOf(s.xs[0], 'neg')),
  // where(full c, a, b) -> a if c != 0, else b
  rule(['where'], (s, r) => {
    const c = r.constant(s.xs[0]);
    return c === undefined ? undefined : c !== 0 ? s.xs[1] : s.xs[2];
  }),
  // where(c, a, a) -> a
  rule(['where'], (s) => (s.xs[1]!.id === s.xs[2]!.id ? s.xs[1] : undefined)),
  // cast(x) to its own dtype -> x
  rule(['cast'], (s) => (s.xs[0]!.type.dtype === s.attrs.dtype ? s.xs[0] : undefined)),
  // transpose(x, identity) -> x
  rule(['transpose'], (s) => (s.attrs.perm.every((p, i) => p === i) ? s.xs[0] : undefined)),
  // transpose(transpose(x, p), q) -> transpose(x, p∘q), where (p∘q)[i] = p[q[i]]
  rule(['transpose'], (s, r) => {
    const inner = r.def(s.xs[0]);
    if (inner.op !== 'transpose') return undefined;
    return r.emit('transpose', { perm: s.attrs.perm.map((q) => inner.attrs.perm[q]!) }, [inner.xs[0]!]);
  }),
  // reshape / broadcast_to / slice / pad / concat that leave their operand as it is -> x (the same
  // type means: reshape to its own shape, broadcast to its own shape, a slice of everything, a pad
  // by nothing, a concat of one value)
  rule(['reshape', 'broadcast_to', 'slice', 'pad', 'concat'], (s) =>
    (s.xs.length === 1 && typeEq(s.xs[0]!.type, s.type) ? s.xs[0] : undefined)),
  // reshape(reshape(x)) -> reshape(x)
  rule(['reshape'], (s, r) => {
    const x = r.operandOf(s.xs[0], 'reshape');
    return x && r.emit('reshape', { shape: s.type.shape }, [x]);
  }),
  // broadcast_to(broadcast_to(x)) -> broadcast_to(x)
  rule(['broadcast_to'], (s, r) => {
    const x = r.operandOf(s.xs[0], 'broadcast_to');
    return x && r.emit('broadcast_to', { shape: s.type.shape }, [x]);
  }),
  // reduce(x) over no axes, or over axes of size 1 only -> reshape(x)
  rule(REDUCE, (s, r) => {
    const x = s.xs[0]!;
    return s.attrs.axes.every((a) => x.type.shape[a] === 1) ? r.emit('reshape', { shape: s.type.shape }, [x]) : undefined;
  }),
  // reduce_sum(reduce_sum(x, A), B) -> reduce_sum(x, A ∪ B), and likewise for means (a mean is a
  // sum times 1/n) and for max of max (rules see no use counts: if the inner reduction has other
  // uses, x is now reduced twice, in two kernels that fusion can run side by side)
  rule(REDUCE, (s, r) => {
    const inner = r.def(s.xs[0]);
    if (inner.op !== 'reduce_sum' && inner.op !== 'reduce_mean' && inner.op !== 'reduce_max') return undefined;
    if ((inner.op === 'reduce_max') !== (s.op === 'reduce_max')) return undefined;
    const src = inner.xs[0]!;
    // Axes of the inner result, named by the source's axes.
    const rank = src.type.shape.length;
    const kept = [...Array(rank).keys()].filter((a) => inner.attrs.keepdims || !inner.attrs.axes.includes(a));
    const axes = [...new Set([...inner.attrs.axes, ...s.attrs.axes.map((a) => kept[a]!)])].sort((p, q) => p - q);
    const meanCount = (inner.op === 'reduce_mean' ? reducedCount(inner.attrs.axes, src.type.shape) : 1) *
      (s.op === 'reduce_mean' ? reducedCount(s.attrs.axes, s.xs[0]!.type.shape) : 1);
    if (meanCount !== 1 && s.type.dtype !== 'f32') return undefined;
    const keepdims = inner.attrs.keepdims && s.attrs.keepdims;
    let v = r.emit(s.op === 'reduce_max' ? 'reduce_max' : 'reduce_sum', { axes, keepdims }, [src]);
    if (meanCount !== 1) v = r.emit('mul', {}, [v, r.full(1 / meanCount, { dtype: 'f32', shape: [] })!]);
    return r.emit('reshape', { shape: s.type.shape }, [v]);
  }),
];

const RULES_BY_OP = new Map<Op, Rule[]>();
for (const rl of RULES) for (const op of rl.ops) RULES_BY_OP.set(op, [...(RULES_BY_OP.get(op) ?? []), rl]);

/** Rounds a computed constant to what its dtype stores (as the interpreter and the GPU do). */
function roundTo(dtype: DType, v: number): number {
  switch (dtype) {
    case 'f32': return Math.fround(v);
    case 'i32': return v | 0;
    default: return assertNever(dtype, 'dtype');
  }
}

/** `from` broadcasts to `to` (NumPy rules) without changing `to`. */
const broadcastsTo = (from: Shape, to: Shape) =>
  from.length <= to.length && from.every((d, i) => d === 1 || d === to[to.length - from.length + i]);

/** Attributes as text with sorted keys, so that deep-equal attributes give equal text. */
function attrKey(attrs: unknown): string {
  return JSON.stringify(attrs, (_, v: unknown) => {
    // JSON would write -0 as 0 and NaN, ±Inf as null: keep them apart.
    if (typeof v === 'number') return Object.is(v, -0) ? '-0' : Number.isFinite(v) ? v : String(v);
    if (v && typeof v === 'object' && !Array.isArray(v)) return Object.fromEntries(Object.entries(v).sort(([p], [q]) => (p < q ? -1 : 1)));
    return v;
  });
}

/**
 * Builds a graph in which every added node is simplified on the way in: a rule's replacement, a
 * node already built with the same op, attributes and operands, or a new node.
 */
class Rewriter {
  readonly b = new GraphBuilder();
  private readonly seen = new Map<string, Value>();

  /** The site that defines `v` in the graph being built. */
  def(v: Value | undefined): SiteOf<Op> {
    if (!v) internal('simplify: a rule read a missing operand');
    const n = this.b.node(v.id);
    return { op: n.op, attrs: n.attrs, type: n.type, xs: n.inputs.map((x) => this.b.value(x)) } as SiteOf<Op>;
  }

  /** The value of `v` if it is a constant fill, else undefined. */
  constant(v: Value | undefined): number | undefined {
    const n = v && this.b.node(v.id);
    return n?.op === 'full' ? n.attrs.value : undefined;
  }

  /** The operand of `v` if `v` is made by the unary op `op`, else undefined. */
  operandOf(v: Value | undefined, op: Op): Value | undefined {
    const n = v && this.b.node(v.id);
    return n?.op === op ? this.b.value(n.inputs[0]!) : undefined;
  }

  /** A constant fill of type `t` with `value` rounded to the dtype; undefined if not finite. */
  full(value: number, t: TensorType): Value | undefined {
    const v = roundTo(t.dtype, value);
    return Number.isFinite(v) ? this.emit('full', { value: v, shape: t.shape, dtype: t.dtype }, []) : undefined;
  }

  /** A fill of `value` (kept as it is) if there is one. */
  fullIf(value: number | undefined, t: TensorType): Value | undefined {
    return value === undefined ? undefined : this.emit('full', { value, shape: t.shape, dtype: t.dtype }, []);
  }

  /** Adds op(xs), simplified. */
  emit<K extends Op>(op: K, attrs: OpAttrs[K], xs: readonly Value[], label?: string): Value {
    const type = inferType(op, attrs, xs.map((x) => x.type));
    const site = { op, attrs, type, xs } as SiteOf<Op>;
    for (const rl of RULES_BY_OP.get(op) ?? []) {
      const v = rl.rewrite(site, this);
      if (v) return this.fit(v, type, site);
    }
    const ids = xs.map((x) => x.id);
    if (COMMUTATIVE.has(op)) ids.sort((p, q) => p - q);
    const key = `${op}|${attrKey(attrs)}|${ids.join(',')}`;
    const seen = this.seen.get(key);
    if (seen) return seen;
    const v = this.b.add(op, attrs, xs, label);
    this.seen.set(key, v);
    return v;
  }

  /** `v` with exactly the type `t`: `v` itself, or `v` broadcast to `t`'s shape (`x + 0` with x:[3], 0:[2,3]). */
  private fit(v: Value, t: TensorType, site: SiteOf<Op>): Value {
    if (typeEq(v.type, t)) return v;
    if (v.type.dtype === t.dtype && broadcastsTo(v.type.shape, t.shape)) return this.emit('broadcast_to', { shape: t.shape }, [v]);
    const node = { ...site, inputs: site.xs.map((x) => x.id) };
    return internal(`simplify: a rule replaced ${printNode(node as never, this.b.size)} by a value of type ${v.type.dtype}[${v.type.shape.join(',')}]`);
  }
}

/** One rebuild of the graph through the rewriter, then dead-code elimination. */
function sweep(g: Graph): Graph {
  const r = new Rewriter();
  const map: Value[] = [];
  for (const n of g.nodes) {
    const xs = n.inputs.map((x) => map[x] ?? internal(`simplify: operand ${x} is not an earlier node`));
    const external = n.op === 'input' || n.op === 'param' || n.op === 'state';
    map.push(external ? r.b.add(n.op, n.attrs as never, [], n.label) : r.emit(n.op, n.attrs as never, xs, n.label));
  }
  for (const o of g.outputs) r.b.output(o.name, map[o.value]!);
  for (const u of g.updates) r.b.update(u.target, map[u.value]!);
  return dce(r.b.build());
}

/** Drops every node that no output or update needs, except inputs, params and state; keeps order. */
export function dce(g: Graph): Graph {
  const live = g.nodes.map((n) => n.op === 'input' || n.op === 'param' || n.op === 'state');
  for (const o of g.outputs) live[o.value] = true;
  for (const u of g.updates) live[u.value] = true;
  for (let i = g.nodes.length - 1; i >= 0; i--) if (live[i]) for (const x of g.nodes[i]!.inputs) live[x] = true;
  const b = new GraphBuilder();
  const map: ValueId[] = [];
  g.nodes.forEach((n, i) => {
    if (live[i]) map[i] = b.add(n.op, n.attrs as never, n.inputs.map((x) => b.value(map[x]!)), n.label).id;
  });
  for (const o of g.outputs) b.output(o.name, b.value(map[o.value]!));
  for (const u of g.updates) b.update(u.target, b.value(map[u.value]!));
  return b.build();
}

/** More sweeps than this means two rules undo each other: a bug in the rules. */
const MAX_SWEEPS = 32;

export function simplify(g: Graph): Graph {
  let cur = g;
  let text = JSON.stringify(cur);
  for (let i = 0; i < MAX_SWEEPS; i++) {
    const next = sweep(cur);
    const nextText = JSON.stringify(next);
    if (nextText === text) return next;
    [cur, text] = [next, nextText];
  }
  return internal(`simplify: no fixed point after ${MAX_SWEEPS} sweeps`);
}

export const simplifyPass: Pass = { name: 'simplify', run: simplify };
