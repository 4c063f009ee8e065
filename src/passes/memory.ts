/**
 * @file Memory planning: every temporary of a step (materialized values that are not inputs,
 * parameters or state, and the scratch of split reductions) gets an offset in one arena buffer.
 * Liveness runs over the dispatch schedule: a buffer is live from the dispatch that writes it to
 * the last one that reads it (outputs and update sources to the end of the step, since they are
 * copied out after the last dispatch). Buffers are placed by decreasing size at the lowest offset
 * that overlaps no buffer live at the same time (XLA's heap simulator, best fit), aligned to the
 * device's `minStorageBufferOffsetAlignment`; a buffer that would end past `maxBufferSize` opens
 * a new arena. Reported, so that naive >= planned >= lower bound always holds:
 * - naive: every buffer its own bytes, laid end to end at aligned offsets (the sizes rounded up to
 *   the alignment, summed): what no reuse at all costs;
 * - planned: the sum of the arenas' sizes;
 * - lower bound: at the busiest dispatch, the live buffers' sizes rounded up to the alignment, less
 *   the padding of the topmost buffer of each arena (an offset must be aligned, the arena's end
 *   need not be): no placement of those buffers in that many arenas takes less.
 */
import { numel } from '../ir/dtype.js';
import { DeviceError, internal } from '../ir/errors.js';
import type { Graph, ValueId } from '../ir/graph.js';
import { valueName } from '../ir/printer.js';
import { kernelOutputs, type BufferRef, type Kernel } from './kernel.js';

/** A buffer to place: its size and the dispatch indices where it is first written and last used. */
export interface Lifetime {
  readonly key: string;
  readonly bytes: number;
  readonly start: number;
  readonly end: number;
}

export interface Placement {
  readonly arena: number;
  readonly offset: number;
  readonly bytes: number;
}

export interface MemoryPlan {
  readonly placements: ReadonlyMap<string, Placement>;
  /** Size of each arena. */
  readonly arenas: readonly number[];
  readonly naiveBytes: number;
  readonly lowerBound: number;
  readonly plannedBytes: number;
}

export interface MemoryOptions {
  readonly alignment: number;
  readonly maxBufferSize: number;
}

const alignUp = (x: number, a: number) => Math.ceil(x / a) * a;

/** Placement orders tried (XLA's heap simulator tries several too); the smallest plan wins. */
const ORDERS: readonly ((a: Lifetime, b: Lifetime) => number)[] = [
  (a, b) => b.bytes - a.bytes || a.start - b.start,
  (a, b) => b.bytes * (b.end - b.start + 1) - a.bytes * (a.end - a.start + 1) || b.bytes - a.bytes,
  (a, b) => b.end - b.start - (a.end - a.start) || b.bytes - a.bytes,
  (a, b) => a.start - b.start || b.bytes - a.bytes,
];

const PERTURBATIONS = 48;

/** Places the buffers; never two buffers live at the same time in overlapping bytes. */
export function planMemory(buffers: readonly Lifetime[], opts: MemoryOptions): MemoryPlan {
  let best: MemoryPlan | undefined;
  const tryOrder = (order: readonly Lifetime[]) => {
    const plan = place(order, buffers, opts);
    if (!best || plan.plannedBytes < best.plannedBytes) best = plan;
  };
  const sorted = ORDERS.map((cmp) => [...buffers].sort((a, b) => cmp(a, b) || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)));
  sorted.forEach(tryOrder);
  // Then seeded perturbations of the size order: swap near neighbours, keep the best plan.
  let seed = 0x2545f491;
  const next = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296);
  for (let t = 0; t < PERTURBATIONS && best!.plannedBytes > best!.lowerBound; t++) {
    const order = [...sorted[t % sorted.length]!];
    for (let i = 0; i < order.length; i++) {
      const j = Math.min(order.length - 1, i + Math.floor(next() * 4));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    tryOrder(order);
  }
  return best!;
}

function place(order: readonly Lifetime[], buffers: readonly Lifetime[], opts: MemoryOptions): MemoryPlan {
  const placed: { l: Lifetime; p: Placement }[] = [];
  const placements = new Map<string, Placement>();
  const arenas: number[] = [];
  for (const l of order) {
    if (l.bytes > opts.maxBufferSize) internal(`buffer ${l.key} of ${l.bytes} bytes exceeds maxBufferSize`);
    let done: Placement | undefined;
    for (let arena = 0; !done; arena++) {
      // Busy intervals of this arena among buffers whose lifetimes overlap l's, sorted by offset.
      const busy = placed
        .filter((x) => x.p.arena === arena && x.l.start <= l.end && l.start <= x.l.end)
        .map((x) => [x.p.offset, x.p.offset + x.p.bytes] as const)
        .sort((a, b) => a[0] - b[0]);
      // Best fit: the smallest gap that holds the buffer; else after the last busy byte.
      let best: number | undefined;
      let bestGap = Infinity;
      let cursor = 0;
      for (const [s, e] of busy) {
        const off = alignUp(cursor, opts.alignment);
        if (s - off >= l.bytes && s - off < bestGap) {
          best = off;
          bestGap = s - off;
        }
        cursor = Math.max(cursor, e);
      }
      const offset = best ?? alignUp(cursor, opts.alignment);
      if (offset + l.bytes <= opts.maxBufferSize) {
        done = { arena, offset, bytes: l.bytes };
        arenas[arena] = Math.max(arenas[arena] ?? 0, offset + l.bytes);
      }
    }
    placed.push({ l, p: done });
    placements.set(l.key, done);
  }
  // The lower bound: at the busiest dispatch, every live buffer takes at least its size rounded up
  // to the alignment (the next offset must be aligned), but the topmost one of each arena, whose
  // padding need not exist: so subtract the largest paddings, one per arena.
  const steps = Math.max(0, ...buffers.map((b) => b.end + 1));
  let lowerBound = 0;
  for (let t = 0; t < steps; t++) {
    const liveNow = buffers.filter((b) => b.start <= t && t <= b.end);
    const padded = liveNow.reduce((s, b) => s + alignUp(b.bytes, opts.alignment), 0);
    const slacks = liveNow.map((b) => alignUp(b.bytes, opts.alignment) - b.bytes).sort((a, b) => b - a);
    const slack = slacks.slice(0, Math.max(1, arenas.length)).reduce((s, x) => s + x, 0);
    lowerBound = Math.max(lowerBound, padded - slack);
  }
  return {
    placements,
    arenas,
    naiveBytes: buffers.reduce((s, b) => s + alignUp(b.bytes, opts.alignment), 0),
    lowerBound,
    plannedBytes: arenas.reduce((s, a) => s + a, 0),
  };
}

/** The invariant: no two buffers live at the same time share a byte. Returns the first violation. */
export function findOverlap(buffers: readonly Lifetime[], plan: MemoryPlan): string | undefined {
  for (let i = 0; i < buffers.length; i++) {
    for (let j = i + 1; j < buffers.length; j++) {
      const [a, b] = [buffers[i]!, buffers[j]!];
      if (a.end < b.start || b.end < a.start) continue;
      const [p, q] = [plan.placements.get(a.key)!, plan.placements.get(b.key)!];
      if (p.arena === q.arena && p.offset < q.offset + q.bytes && q.offset < p.offset + p.bytes) return `${a.key} and ${b.key}`;
    }
  }
  return undefined;
}

/** The limits the buffer plan respects (the device's, see codegen/emit.ts `SPEC_LIMITS`). */
export interface BufferLimits {
  readonly minStorageBufferOffsetAlignment: number;
  readonly maxBufferSize: number;
  readonly maxStorageBufferBindingSize: number;
}

/** What every buffer of a program is, and where it lives. */
export interface BufferPlan {
  /** Inputs, parameters and state each have their own arena (in value order); the temporaries share the rest. */
  readonly arenas: readonly { readonly bytes: number; readonly role: 'input' | 'param' | 'state' | 'temp' }[];
  /** Where each buffer lives, by `bufferKey` (`value:<id>`, `scratch:<id>`). */
  readonly regions: ReadonlyMap<string, Placement>;
  /** The temporaries' regions whose last use is dispatch `after` (the runtime's poison mode overwrites them). */
  readonly frees: readonly { readonly after: number; readonly regions: readonly Placement[] }[];
  /** The temporaries' plan (its figures are the artifact's `memory`). */
  readonly temporaries: MemoryPlan;
}

export const bufferKey = (r: BufferRef): string => `${r.kind}:${r.id}`;

/**
 * The memory stage: the buffers of a program's dispatches (in order: their input and output
 * buffers, and the bytes of each scratch buffer). Persistent values (inputs, parameters, state)
 * get an arena each, an update computed in place lives in the buffer of the value it replaces,
 * and the temporaries are placed by `planMemory` over their lifetimes (outputs and update values
 * live to the end of the step: they are read or copied after the last dispatch).
 */
export function planBuffers(
  g: Graph, materialized: ReadonlySet<ValueId>, kernels: readonly Kernel[],
  dispatches: readonly { readonly inputs: readonly BufferRef[]; readonly outputs: readonly BufferRef[] }[],
  scratchBytes: readonly number[], limits: BufferLimits,
): BufferPlan {
  const arenas: { bytes: number; role: 'input' | 'param' | 'state' | 'temp' }[] = [];
  const regions = new Map<string, Placement>();
  const bytesOf = (t: { shape: readonly number[] }) => Math.max(4, numel(t.shape) * 4);
  for (const id of [...materialized].sort((a, b) => a - b)) {
    const op = g.nodes[id]!.op;
    if (op !== 'input' && op !== 'param' && op !== 'state') continue;
    const bytes = bytesOf(g.nodes[id]!.type);
    checkSize(bytes, limits);
    arenas.push({ bytes, role: op });
    regions.set(`value:${id}`, { arena: arenas.length - 1, offset: 0, bytes });
  }
  // Updates computed in place live in the buffer of the value they replace.
  for (const k of kernels) {
    for (const { slot, target } of k.inPlace ?? []) {
      const out = kernelOutputs(k)[slot] ?? internal(`kernel has no output ${slot}`);
      regions.set(bufferKey(out), regions.get(`value:${target}`) ?? internal(`in-place target ${target} has no buffer`));
    }
  }
  const end = dispatches.length;
  const live = new Map<string, { bytes: number; start: number; end: number }>();
  const kept = new Set([...g.outputs.map((o) => `value:${o.value}`), ...g.updates.map((u) => `value:${u.value}`)]);
  dispatches.forEach((d, i) => {
    for (const r of [...d.inputs, ...d.outputs]) {
      const key = bufferKey(r);
      if (regions.has(key)) continue;
      const bytes = r.kind === 'value' ? bytesOf(g.nodes[r.id]!.type) : Math.max(4, scratchBytes[r.id]!);
      const l = live.get(key) ?? { bytes, start: i, end: i };
      l.end = kept.has(key) ? end : i;
      live.set(key, l);
    }
  });
  const lifetimes = [...live].map(([key, l]) => ({ key, ...l }));
  for (const l of lifetimes) checkSize(l.bytes, limits);
  const mem = planMemory(lifetimes, { alignment: limits.minStorageBufferOffsetAlignment, maxBufferSize: limits.maxBufferSize });
  const base = arenas.length;
  mem.arenas.forEach((bytes) => arenas.push({ bytes: Math.max(4, alignUp(bytes, 4)), role: 'temp' }));
  for (const [key, p] of mem.placements) regions.set(key, { arena: base + p.arena, offset: p.offset, bytes: p.bytes });
  const freeAt = new Map<number, Placement[]>();
  for (const l of lifetimes) {
    if (l.end >= end) continue;
    const list = freeAt.get(l.end) ?? [];
    list.push(regions.get(l.key)!);
    freeAt.set(l.end, list);
  }
  const frees = [...freeAt].sort((a, b) => a[0] - b[0]).map(([after, rs]) => ({ after, regions: rs }));
  return { arenas, regions, frees, temporaries: mem };
}

function checkSize(bytes: number, limits: BufferLimits): void {
  if (bytes > limits.maxBufferSize || bytes > limits.maxStorageBufferBindingSize) {
    throw new DeviceError(`a tensor of ${bytes} bytes exceeds the device's limits (maxBufferSize ${limits.maxBufferSize}, maxStorageBufferBindingSize ${limits.maxStorageBufferBindingSize})`);
  }
}

/** The plan as text (`--dump memory`): the arenas, then where each buffer lives. */
export function printBufferPlan(p: BufferPlan): string {
  const name = (key: string) => (key.startsWith('value:') ? valueName(Number(key.slice(6))) : key);
  const lines = p.arenas.map((a, i) => `arena ${i}: ${a.role} ${a.bytes} B`);
  const byArena = [...p.regions].sort(([ka, a], [kb, b]) => a.arena - b.arena || a.offset - b.offset || (ka < kb ? -1 : 1));
  for (const [key, r] of byArena) lines.push(`  ${name(key)} -> arena ${r.arena} @ ${r.offset} (${r.bytes} B)`);
  for (const f of p.frees) lines.push(`free after dispatch ${f.after}: ${f.regions.map((r) => `arena ${r.arena} @ ${r.offset}`).join(', ')}`);
  const t = p.temporaries;
  lines.push(`temporaries: naive ${t.naiveBytes} B >= planned ${t.plannedBytes} B >= lower bound ${t.lowerBound} B`);
  return lines.join('\n') + '\n';
}
