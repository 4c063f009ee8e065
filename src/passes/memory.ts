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
import { internal } from '../ir/errors.js';

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
