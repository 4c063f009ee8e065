/**
 * @file Scheduling: a deterministic topological order of the kernels that keeps the peak of live
 * bytes low. Greedy list scheduling: among the kernels whose inputs are ready, run the one that
 * frees the most bytes net of what it allocates (ties: graph order), so a branch that ends a value's
 * life goes first and a large temporary is produced as late as possible. A kernel that writes a
 * parameter or state in place waits for every reader of the old value.
 */
import { numel } from '../ir/dtype.js';
import type { Graph, ValueId } from '../ir/graph.js';
import { kernelOutputs, type Kernel } from './kernel.js';

/**
 * The kernels' dependencies (with the in-place orderings) form a cycle: no order exists. `targets`:
 * the values overwritten in place by the kernels left unscheduled that wait for a reader of the old
 * value (writing those out of place breaks the cycles).
 */
export class ScheduleCycle extends Error {
  constructor(readonly targets: readonly ValueId[]) {
    super('the kernels, with the orderings their in-place updates need, admit no order');
  }
}

export function scheduleKernels(g: Graph, kernels: readonly Kernel[]): Kernel[] {
  const bytes = (id: ValueId) => numel(g.nodes[id]!.type.shape) * 4;
  const producer = new Map<ValueId, number>();
  const written = (k: Kernel) => kernelOutputs(k).flatMap((r) => (r.kind === 'value' ? [r.id] : []));
  kernels.forEach((k, i) => {
    for (const id of written(k)) producer.set(id, i);
  });
  const reads = kernels.map((k) => [...new Set(k.inputs.filter((r) => r.kind === 'value').map((r) => r.id))]);
  const deps = reads.map((rs) => new Set(rs.map((id) => producer.get(id)).filter((p): p is number => p !== undefined)));
  // A kernel that overwrites a value in place runs after every other kernel that reads the old value.
  const waitsFor = kernels.map(() => new Map<number, ValueId>());
  kernels.forEach((k, i) => {
    for (const { target } of k.inPlace ?? []) {
      reads.forEach((rs, j) => {
        if (j === i || !rs.includes(target)) return;
        deps[i]!.add(j);
        waitsFor[i]!.set(j, target);
      });
    }
  });
  const pendingReaders = new Map<ValueId, number>();
  for (const rs of reads) for (const id of rs) pendingReaders.set(id, (pendingReaders.get(id) ?? 0) + 1);
  const kept = new Set<ValueId>([...g.outputs.map((o) => o.value), ...g.updates.map((u) => u.value)]);
  const temp = (id: ValueId) => producer.has(id) && !kept.has(id);

  const done = new Set<number>();
  const order: Kernel[] = [];
  while (order.length < kernels.length) {
    let best = -1;
    let bestScore = -Infinity;
    kernels.forEach((k, i) => {
      if (done.has(i) || [...deps[i]!].some((d) => !done.has(d))) return;
      const freed = reads[i]!.filter((id) => temp(id) && pendingReaders.get(id) === 1).reduce((s, id) => s + bytes(id), 0);
      const alloc = written(k).reduce((s, id) => s + bytes(id), 0);
      const score = freed - alloc;
      if (score > bestScore) {
        best = i;
        bestScore = score;
      }
    });
    if (best < 0) {
      const left = kernels.map((_, i) => i).filter((i) => !done.has(i));
      throw new ScheduleCycle([...new Set(left.flatMap((i) => [...waitsFor[i]!].filter(([j]) => !done.has(j)).map(([, t]) => t)))]);
    }
    done.add(best);
    order.push(kernels[best]!);
    for (const id of reads[best]!) pendingReaders.set(id, pendingReaders.get(id)! - 1);
  }
  return order;
}
