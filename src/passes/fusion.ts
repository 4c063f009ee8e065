/**
 * @file Fusion: decides which values are materialized (written to memory) and which are inlined
 * as expressions into the kernels that read them, and which contraction each kernel is built
 * around. The rules:
 * - sources, outputs and update values are materialized; a contraction (reduction, matmul,
 *   convolution, scatter_add) ends a kernel, unless its only reader is an elementwise op of the
 *   same shape: then that op, and the single-use elementwise ops after it, become the
 *   contraction's epilogue, computed from the accumulator (bias, activation, masks, updates);
 * - movement ops cost nothing: they are index arithmetic in whatever reads them;
 * - any other value is inlined unless materializing it moves fewer bytes: recomputing costs its
 *   leaves' bytes once per read (a matmul operand is read once per output column or row), storing
 *   costs a write plus a read per use;
 * - a kernel that would bind more storage buffers than the device allows gets its largest inlined
 *   producer materialized, until it fits (tinygrad's `_limit_bufs`).
 * The plan is data for the stages after it (src/compile.ts): lowering, then the schedule. Fusion
 * lowers candidate kernels itself (lower.ts `lowerGroup`) to count the buffers they would bind.
 */
import { numel } from '../ir/dtype.js';
import { DeviceError } from '../ir/errors.js';
import { usesOf, type Graph, type ValueId } from '../ir/graph.js';
import { valueName } from '../ir/printer.js';
import { isElementwise, isMovement } from '../ir/ops.js';
import { isContraction, isSourceOp, lowerGroup, lowerRows, type RowsPlan } from './lower.js';
import { kernelOutputs } from './kernel.js';

export interface KernelGroup {
  /** The value the kernel writes. */
  readonly root: ValueId;
  /** When the kernel is a contraction with an epilogue: the contraction. */
  readonly contraction?: ValueId;
  /** Further values of the root's shape computed at each output element (e.g. an optimizer update). */
  readonly extras?: readonly ValueId[];
  /** A row kernel: per-row stages (row reductions and row values) computed before the root. */
  readonly rows?: Omit<RowsPlan, 'root'>;
  /** A matmul's column sums of its right operand, computed on the side (a bias gradient), with their epilogue. */
  readonly side?: { readonly root: ValueId; readonly contraction: ValueId; readonly extras?: readonly ValueId[] };
}

export interface FusionPlan {
  readonly materialized: ReadonlySet<ValueId>;
  readonly kernels: readonly KernelGroup[];
  /** Update values that may be computed in place over the parameter or state they replace. */
  readonly inPlace: ReadonlyMap<ValueId, ValueId>;
}

export interface FusionOptions {
  /** `maxStorageBuffersPerShaderStage` of the device: inputs + 1 output per kernel. */
  readonly maxBindings: number;
  /** false: every op its own kernel (the unfused baseline). */
  readonly fuse?: boolean;
  /** false: no update in place (when the kernels' in-place orderings admit no schedule). */
  readonly inPlace?: boolean;
  /** Parameters and state whose updates are written out of place (they were in a schedule cycle). */
  readonly outOfPlace?: ReadonlySet<ValueId>;
}

const CHEAP = new Set(['full', 'iota', 'stop_gradient']);

/** Elements of each operand a reader combines per output element (its reduction size). */
function reductionSize(g: Graph, reader: ValueId): number {
  const r = g.nodes[reader]!;
  const shape = (i: number) => g.nodes[r.inputs[i]!]!.type.shape;
  switch (r.op) {
    case 'matmul': return shape(0).at(-1)!;
    case 'conv2d': return numel(shape(1).slice(1));
    case 'conv2d_input_grad': return shape(1)[0]! * numel(shape(1).slice(2));
    case 'conv2d_filter_grad': return shape(1)[0]! * numel(shape(1).slice(2));
    case 'scatter_add': return numel(shape(0));
    case 'reduce_sum': case 'reduce_max': case 'reduce_mean': return numel(shape(0)) / numel(r.type.shape);
    default: return 1;
  }
}

/** How many times a reader reads each element of its operand `x` (broadcasts and contractions re-read). */
function readsPerElement(g: Graph, reader: ValueId, x: ValueId): number {
  const out = numel(g.nodes[reader]!.type.shape);
  return Math.max(1, (out * reductionSize(g, reader)) / numel(g.nodes[x]!.type.shape));
}

/**
 * Updates that can overwrite the buffer of what they update (parameters and optimizer state updated
 * in place): the new value is computed by a kernel, and nothing that reads the old value depends on
 * the new one, so every reader of the old value can run before the kernel that overwrites it.
 */
export function inPlaceUpdates(g: Graph, uses: readonly (readonly ValueId[])[], exclude: ReadonlySet<ValueId> = new Set()): Map<ValueId, ValueId> {
  const out = new Map<ValueId, ValueId>();
  const taken = new Set<ValueId>();
  for (const u of g.updates) {
    const target = g.nodes.findIndex((n) => (n.op === 'param' || n.op === 'state') && n.attrs.name === u.target);
    if (target < 0 || exclude.has(target) || isSourceOp(g.nodes[u.value]!.op) || out.has(u.value) || taken.has(target)) continue;
    const after = readyAfter(g, uses, [], [u.value]);
    if (uses[target]!.some((r) => r !== u.value && after.has(r))) continue;
    out.set(u.value, target);
    taken.add(target);
  }
  return out;
}

/** Plans the kernels of a graph. */
export function planFusion(g: Graph, opts: FusionOptions): FusionPlan {
  const fuse = opts.fuse ?? true;
  const uses = usesOf(g);
  const inPlace = opts.inPlace === false ? new Map<ValueId, ValueId>() : inPlaceUpdates(g, uses, opts.outOfPlace);
  const must = new Set<ValueId>([...g.outputs.map((o) => o.value), ...g.updates.map((u) => u.value)]);
  const forced = new Set<ValueId>();

  for (;;) {
    const mat = new Set<ValueId>();
    const contractionOf = new Map<ValueId, ValueId>();
    /** Materialized leaves (id -> elements) an inlined value's expression reads, and its op count. */
    const leaves: Map<ValueId, number>[] = [];
    const ops: number[] = [];
    g.nodes.forEach((n, i) => {
      const src = isSourceOp(n.op);
      let m: boolean;
      if (src || must.has(i) || forced.has(i)) m = true;
      else if (!fuse) m = !CHEAP.has(n.op);
      else if (isContraction(n.op)) m = true;
      else if (CHEAP.has(n.op) || isMovement(n.op)) m = false;
      else {
        const lb = [...leafMap(n.inputs, leaves, mat, g).values()].reduce((s, v) => s + v, 0);
        const size = numel(n.type.shape);
        const opc = 1 + n.inputs.reduce((s, x) => s + (mat.has(x) ? 0 : ops[x] ?? 0), 0);
        const reads = uses[i]!.reduce((s, u) => s + readsPerElement(g, u, i), 0);
        // Inlined, the expression is evaluated once per read; stored, once, plus a write and the reads.
        const recompute = reads * lb + (reads - 1) * size * opc * 0.25;
        const store = lb + size + reads * size;
        m = uses[i]!.length > 0 && store < recompute;
      }
      if (m) mat.add(i);
      leaves[i] = mat.has(i) ? new Map([[i, numel(n.type.shape)]]) : leafMap(n.inputs, leaves, mat, g);
      ops[i] = mat.has(i) ? 0 : 1 + n.inputs.reduce((s, x) => s + (ops[x] ?? 0), 0);
    });

    // Epilogues: a contraction read only by a same-shape elementwise chain is computed in the chain's kernel.
    if (fuse) {
      const claimed = new Set<ValueId>();
      g.nodes.forEach((n, c) => {
        if (!isContraction(n.op) || must.has(c) || forced.has(c)) return;
        let end = c;
        for (;;) {
          const us = uses[end]!;
          if (us.length !== 1) break;
          const u = us[0]!;
          const un = g.nodes[u]!;
          if (!isElementwise(un.op) || un.type.shape.join() !== n.type.shape.join()) break;
          if (un.inputs.filter((x) => x === end).length !== 1) break;
          if (end !== c && (must.has(end) || forced.has(end))) break;
          end = u;
          if (must.has(end) || forced.has(end)) break;
        }
        if (end === c) return;
        // A chain belongs to one contraction: another contraction feeding it stays materialized.
        const chain: ValueId[] = [];
        for (let v = uses[c]![0]!; ; v = uses[v]![0]!) {
          chain.push(v);
          if (v === end) break;
        }
        if (chain.some((v) => claimed.has(v))) return;
        for (const v of chain) claimed.add(v);
        // Everything between the contraction and the end is inlined; the end is the kernel's output.
        for (let v = c; v !== end; v = uses[v]![0]!) mat.delete(v);
        mat.add(end);
        contractionOf.set(end, c);
      });
    }

    const kernels: KernelGroup[] = [];
    g.nodes.forEach((n, i) => {
      if (!mat.has(i) || isSourceOp(n.op)) return;
      const c = contractionOf.get(i);
      kernels.push(c === undefined ? { root: i } : { root: i, contraction: c });
    });

    // Binding limit: materialize the inlined producer that brings in the most buffers.
    let fixed = true;
    for (const k of kernels) {
      const lowered = lowerGroup(g, k, mat, { inPlace });
      if (lowered.inputs.length + 1 <= opts.maxBindings) continue;
      const candidate = lowered.nodes
        .filter((id) => id !== k.root && id !== k.contraction && !mat.has(id) && !CHEAP.has(g.nodes[id]!.op))
        .map((id) => ({ id, n: leafMap([id], leaves, mat, g).size }))
        .filter((x) => x.n > 1 && x.n < lowered.inputs.length)
        .sort((p, q) => q.n - p.n || p.id - q.id)[0];
      if (!candidate) {
        throw new DeviceError(`a ${g.nodes[k.root]!.op} kernel reads ${lowered.inputs.length} buffers and cannot be split below the device's ${opts.maxBindings} storage buffers per shader stage`);
      }
      forced.add(candidate.id);
      fixed = false;
      break;
    }
    if (!fixed) continue;
    if (!fuse) return { materialized: mat, kernels, inPlace };
    const rows = formRows(g, kernels, mat, must, uses, opts.maxBindings, inPlace);
    const merged = mergeSiblings(g, rows, mat, uses, opts.maxBindings, inPlace);
    return { materialized: mat, kernels: absorbColumnSums(g, merged, mat, uses, opts.maxBindings, inPlace), inPlace };
  }
}

/**
 * Multi-output kernels: a plain elementwise kernel whose reads of another kernel's outputs are all
 * at its own output element (same shape, elementwise path) is computed by that kernel, at each of
 * its output elements, and written as a further output. The optimizer's update p' = p - lr m'
 * thus joins the kernel that makes m' (itself the epilogue of the gradient's matmul).
 */
function mergeSiblings(
  g: Graph, groups: readonly KernelGroup[], mat: ReadonlySet<ValueId>, uses: readonly ValueId[][], maxBindings: number, inPlace: ReadonlyMap<ValueId, ValueId>,
): KernelGroup[] {
  const ks = groups.map((k) => ({ ...k, extras: [...(k.extras ?? [])] }));
  const shape = (id: ValueId) => g.nodes[id]!.type.shape.join();
  for (let j = 0; j < ks.length; j++) {
    const k2 = ks[j]!;
    if (k2.contraction !== undefined || k2.extras.length || k2.rows || isContraction(g.nodes[k2.root]!.op)) continue;
    const l2 = lowerGroup(g, k2, mat, { inPlace });
    const reads = l2.inputs.filter((r) => r.kind === 'value').map((r) => r.id);
    // Hosts: kernels whose outputs K2 reads, of K2's shape; the last one in graph order first.
    const hosts = ks
      .map((k, i) => ({ k, i, outs: [k.root, ...k.extras] }))
      .filter(({ k, i, outs }) => i !== j && !k.rows && shape(k.root) === shape(k2.root) && outs.some((o) => reads.includes(o)))
      .sort((p, q) => q.k.root - p.k.root);
    for (const { k: k1, i, outs } of hosts) {
      const own = new Set(outs);
      // Every inlined node of K2 on a path from a host output is elementwise at K2's shape.
      const tainted = new Set<ValueId>(outs);
      let ok = true;
      for (const id of l2.nodes) {
        const n = g.nodes[id]!;
        if (own.has(id) || !n.inputs.some((x) => tainted.has(x))) continue;
        tainted.add(id);
        if (!isElementwise(n.op) || shape(id) !== shape(k2.root)) ok = false;
      }
      if (!ok) continue;
      // K2's other inputs must be ready before K1 runs: none may depend on K1's outputs.
      const after = readyAfter(g, uses, ks, outs);
      if (reads.some((r) => !own.has(r) && after.has(r))) continue;
      const merged = lowerGroup(g, { ...k1, extras: [...k1.extras, k2.root] }, mat, { inPlace });
      if (merged.inputs.length + outs.length + 1 > maxBindings) continue;
      k1.extras.push(k2.root);
      ks.splice(j, 1);
      j--;
      void i;
      break;
    }
  }
  return ks.map(({ extras, ...k }) => (extras.length ? { ...k, extras } : k));
}

const ROW_REDUCTIONS = new Set(['reduce_sum', 'reduce_max', 'reduce_mean']);

/**
 * Row kernels: an elementwise kernel over [...outer, ...inner] that reads reductions over the inner
 * axes of values of its own shape (softmax's max and sum, layernorm's mean and variance, the
 * backward pass's row sums) computes them itself, one workgroup per row, together with the small
 * per-row values between them (log of the sum). A stage another kernel reads is still stored.
 */
function formRows(
  g: Graph, kernels: readonly KernelGroup[], mat: Set<ValueId>, must: ReadonlySet<ValueId>, uses: readonly (readonly ValueId[])[],
  maxBindings: number, inPlace: ReadonlyMap<ValueId, ValueId>,
): KernelGroup[] {
  const shape = (id: ValueId) => g.nodes[id]!.type.shape;
  const result: KernelGroup[] = [...kernels];
  const absorbed = new Set<number>();
  const groupOf = new Map(kernels.map((k, i) => [k.root, i]));
  const lowered = kernels.map((k) => lowerGroup(g, k, mat, { inPlace }));
  const reads = (i: number) => lowered[i]!.inputs.flatMap((r) => (r.kind === 'value' ? [r.id] : []));
  const plain = (k: KernelGroup) => k.contraction === undefined && !k.extras?.length && !isContraction(g.nodes[k.root]!.op);
  /** The number of outer axes when group `k` reduces a value of shape `s` over its trailing axes. */
  const reduceStage = (k: KernelGroup, s: readonly number[]): number | undefined => {
    const c = g.nodes[k.contraction ?? k.root]!;
    if (k.extras?.length || !ROW_REDUCTIONS.has(c.op)) return undefined;
    if (shape(c.inputs[0]!).join() !== s.join()) return undefined;
    const axes = [...(c.attrs as { axes: readonly number[] }).axes].sort((a, b) => a - b);
    const outer = s.length - axes.length;
    return outer >= 1 && axes.every((a, i) => a === outer + i) ? outer : undefined;
  };
  const rowShaped = (id: ValueId, s: readonly number[], outer: number) => {
    const t = shape(id);
    return t.slice(0, outer).join() === s.slice(0, outer).join() && t.slice(outer).every((d) => d === 1) && t.length <= s.length;
  };

  kernels.forEach((m, mi) => {
    if (absorbed.has(mi) || !plain(m) || shape(m.root).length < 2) return;
    const s = shape(m.root);
    let outer: number | undefined;
    const stages = new Set<number>();
    // Reductions (and row values) the root reads, transitively.
    for (let grew = true; grew;) {
      grew = false;
      const frontier = [mi, ...stages].flatMap(reads);
      for (const v of frontier) {
        const gi = groupOf.get(v);
        if (gi === undefined || gi === mi || stages.has(gi) || absorbed.has(gi)) continue;
        const k = kernels[gi]!;
        const o = reduceStage(k, s);
        if (o !== undefined && (outer === undefined || o === outer)) outer = o;
        else if (!(outer !== undefined && plain(k) && rowShaped(k.root, s, outer))) continue;
        stages.add(gi);
        grew = true;
      }
      // Row values computed from the stages (the log of a softmax's sum, read by the loss).
      if (outer === undefined) continue;
      const roots = new Set([...stages].map((i) => kernels[i]!.root));
      kernels.forEach((k, gi) => {
        if (gi === mi || stages.has(gi) || absorbed.has(gi) || !plain(k) || !rowShaped(k.root, s, outer!)) return;
        if (reads(gi).some((v) => roots.has(v))) (stages.add(gi), (grew = true));
      });
    }
    if (outer === undefined || !stages.size) return;
    const order = [...stages].sort((a, b) => kernels[a]!.root - kernels[b]!.root);
    const inGroup = new Set([mi, ...order]);
    const otherReads = new Set(kernels.flatMap((_, i) => (inGroup.has(i) || absorbed.has(i) ? [] : reads(i))));
    const written = order.map((i) => kernels[i]!.root).filter((r) => must.has(r) || otherReads.has(r));
    const plan: RowsPlan = {
      root: m.root,
      outer,
      stages: order.map((i) => {
        const k = kernels[i]!;
        const c = k.contraction ?? (isContraction(g.nodes[k.root]!.op) ? k.root : undefined);
        return c === undefined ? { root: k.root } : { root: k.root, contraction: c };
      }),
      written,
    };
    const kernel = lowerRows(g, plan, (id) => mat.has(id));
    if (!kernel || kernel.inputs.length + kernelOutputs(kernel).length > maxBindings) return;
    // Every value the row kernel reads must be ready before it: none may come from its own stages.
    const produced = new Set<ValueId>(plan.stages.map((st) => st.root));
    const after = readyAfter(g, uses, result.filter((_, i) => !absorbed.has(i)), [...produced, m.root]);
    if (kernel.inputs.some((r) => r.kind === 'value' && after.has(r.id))) return;
    const { root, ...rows } = plan;
    result[mi] = { root, rows };
    for (const i of order) absorbed.add(i);
    for (const st of plan.stages) if (!written.includes(st.root)) mat.delete(st.root);
  });
  return result.filter((_, i) => !absorbed.has(i));
}

/**
 * A sum over the rows of a matmul's right operand — the bias gradient, db = sum over the batch of
 * dy, next to the weight gradient dW = x^T dy — is computed by the matmul kernel, which already
 * loads every element of dy: one kernel instead of two, with the bias update as its epilogue.
 */
function absorbColumnSums(
  g: Graph, kernels: readonly KernelGroup[], mat: ReadonlySet<ValueId>, uses: readonly (readonly ValueId[])[], maxBindings: number,
  inPlace: ReadonlyMap<ValueId, ValueId>,
): KernelGroup[] {
  const result: (KernelGroup | undefined)[] = [...kernels];
  const matmulOf = (k: KernelGroup) => {
    const c = g.nodes[k.contraction ?? k.root]!;
    return c.op === 'matmul' && c.type.shape.length === 2 && !k.side && !k.rows ? c : undefined;
  };
  kernels.forEach((r, ri) => {
    const cid = r.contraction ?? r.root;
    const c = g.nodes[cid]!;
    if (r.rows || r.side || c.op !== 'reduce_sum' || c.attrs.axes.join() !== '0' || g.nodes[c.inputs[0]!]!.type.shape.length !== 2) return;
    const hi = result.findIndex((k) => k !== undefined && matmulOf(k)?.inputs[1] === c.inputs[0]);
    if (hi < 0) return;
    const host = result[hi]!;
    // Neither part may read what the other writes, directly or through other kernels: not in its
    // expressions (the side's epilogue adding the matmul's result cannot be lowered), nor as a buffer.
    const groups = result.filter((k): k is KernelGroup => k !== undefined);
    const reads = (a: KernelGroup, b: KernelGroup) => groupOutputs(a).some((id) => readyAfter(g, uses, groups, groupOutputs(b)).has(id));
    if (reads(r, host) || reads(host, r)) return;
    const side = { root: r.root, contraction: cid, ...(r.extras?.length ? { extras: r.extras } : {}) };
    const joined: KernelGroup = { ...host, side };
    const kernel = lowerGroup(g, joined, mat, { inPlace });
    const outs = kernelOutputs(kernel);
    if (kernel.inputs.length + outs.length > maxBindings) return;
    const written = outs.flatMap((o) => (o.kind === 'value' ? [o.id] : []));
    const after = readyAfter(g, uses, groups, written);
    if (kernel.inputs.some((x) => x.kind === 'value' && (after.has(x.id) || written.includes(x.id)))) return;
    result[hi] = joined;
    result[ri] = undefined;
  });
  return result.filter((k): k is KernelGroup => k !== undefined);
}

/** Every value a kernel group writes. */
const groupOutputs = (k: KernelGroup): ValueId[] =>
  [k.root, ...(k.extras ?? []), ...(k.rows?.written ?? []), ...(k.side ? [k.side.root, ...(k.side.extras ?? [])] : [])];

/**
 * The values that cannot be ready before a kernel writing `from` has run: their descendants and,
 * since a kernel writes all its outputs in one dispatch, every output of a kernel of `groups` that
 * writes one of those (and their descendants in turn). A kernel joined to the one that writes
 * `from` may read none of them, or the two kernels would wait on each other. (Descendants alone
 * are not enough: with K1 = {m, f(o)} and K2 = {o, h(m)}, o does not depend on m, yet K2 must
 * follow K1 — found by the gradient fuzzer, test/fuzz/regressions.test.ts.)
 */
function readyAfter(g: Graph, uses: readonly (readonly ValueId[])[], groups: readonly KernelGroup[], from: readonly ValueId[]): Set<ValueId> {
  const partners = new Map<ValueId, readonly ValueId[]>();
  for (const k of groups) {
    const outs = groupOutputs(k);
    for (const o of outs) partners.set(o, outs);
  }
  const seen = new Set<ValueId>();
  const stack = [...from];
  const reach = (v: ValueId) => void (!seen.has(v) && (seen.add(v), stack.push(v)));
  while (stack.length) {
    for (const u of uses[stack.pop()!]!) {
      reach(u);
      for (const p of partners.get(u) ?? []) reach(p);
    }
  }
  return seen;
}

function leafMap(inputs: readonly ValueId[], leaves: readonly Map<ValueId, number>[], mat: ReadonlySet<ValueId>, g: Graph): Map<ValueId, number> {
  const out = new Map<ValueId, number>();
  for (const x of inputs) {
    const l = mat.has(x) ? new Map([[x, numel(g.nodes[x]!.type.shape)]]) : leaves[x] ?? new Map<ValueId, number>();
    for (const [k, v] of l) out.set(k, v);
  }
  return out;
}

/**
 * A fusion plan as text (`--dump fusion`): the materialized values, the updates computed in
 * place, then one line per kernel: the value it writes (with its op), the contraction it is built
 * around, further outputs, row stages and column sums.
 */
export function printFusionPlan(g: Graph, plan: FusionPlan): string {
  const v = (id: ValueId) => `${valueName(id)}:${g.nodes[id]!.op}`;
  const lines = [`materialized: ${[...plan.materialized].sort((a, b) => a - b).map(valueName).join(' ')}`];
  if (plan.inPlace.size) lines.push(`in place: ${[...plan.inPlace].map(([u, t]) => `${valueName(u)} over ${valueName(t)}`).join(', ')}`);
  plan.kernels.forEach((k, i) => {
    const parts = [`k${i} ${v(k.root)}`];
    if (k.contraction !== undefined) parts.push(`epilogue of ${v(k.contraction)}`);
    if (k.extras?.length) parts.push(`also ${k.extras.map(v).join(' ')}`);
    if (k.rows) parts.push(`rows (outer ${k.rows.outer}) stages ${k.rows.stages.map((st) => v(st.root)).join(' ')}${k.rows.written.length ? ` stored ${k.rows.written.map(valueName).join(' ')}` : ''}`);
    if (k.side) parts.push(`column sums ${v(k.side.root)}${k.side.extras?.length ? ` also ${k.side.extras.map(v).join(' ')}` : ''}`);
    lines.push(parts.join('; '));
  });
  return lines.join('\n') + '\n';
}
