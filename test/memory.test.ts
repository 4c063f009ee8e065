/**
 * @file Memory planning without a device: the invariant that no two buffers live at the same
 * time overlap, on random lifetimes and on the artifacts of every model; and the plan's bytes
 * against the liveness lower bound.
 */
import fc from 'fast-check';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { compile, emitArtifact } from '../src/compile.js';
import { specializeMode } from '../src/passes/mode.js';
import { transformerLm } from '../models/transformer-lm.js';
import { loadModel } from '../src/ir/schema.js';
import { findOverlap, planMemory, type Lifetime } from '../src/passes/memory.js';
import type { Artifact } from '../src/runtime/artifact.js';
import { rng } from '../src/runtime/init.js';
import type { OptimizerConfig } from '../src/ir/model.js';
import { printGraph } from '../src/ir/printer.js';
import { buildCase } from './fuzz/graphs.js';
import { buildGradCase, gradRecipeArb } from './fuzz/grad.js';

/**
 * Checks an artifact by itself, simulating one step: a dispatch's output region must not overlap
 * any temporary still live, its inputs must be live, and a region is dead after the dispatch where
 * the artifact frees it. Outputs and update sources are never freed.
 */
export function artifactOverlap(a: Artifact): string | undefined {
  const temp = new Set(a.arenas.filter((x) => x.role === 'temp').map((x) => x.id));
  const live: { arena: number; offset: number; bytes: number }[] = [];
  const same = (p: { arena: number; offset: number; bytes: number }, q: typeof p) => p.arena === q.arena && p.offset === q.offset && p.bytes === q.bytes;
  const freesAt = new Map(a.frees.map((f) => [f.after, f.regions]));
  for (const [i, d] of a.dispatches.entries()) {
    for (const r of d.bindings.slice(0, -d.outputs)) {
      if (temp.has(r.arena) && !live.some((l) => same(l, r))) return `dispatch ${i} (${d.label}) reads a dead temporary ${JSON.stringify(r)}`;
    }
    for (const out of d.bindings.slice(-d.outputs)) {
      if (!temp.has(out.arena) || live.some((l) => same(l, out))) continue;
      const clash = live.find((l) => l.arena === out.arena && l.offset < out.offset + out.bytes && out.offset < l.offset + l.bytes);
      if (clash) return `dispatch ${i} (${d.label}) writes ${JSON.stringify(out)} over live ${JSON.stringify(clash)}`;
      live.push(out);
    }
    for (const r of freesAt.get(i) ?? []) {
      const k = live.findIndex((l) => same(l, r));
      if (k < 0) return `dispatch ${i} frees ${JSON.stringify(r)}, which is not live`;
      live.splice(k, 1);
    }
  }
  return undefined;
}

describe('memory plan', () => {
  it('never overlaps two live buffers, on 200 random lifetime sets', () => {
    const u = rng(42);
    for (let t = 0; t < 200; t++) {
      const n = 1 + Math.floor(u() * 40);
      const bufs: Lifetime[] = Array.from({ length: n }, (_, i) => {
        const start = Math.floor(u() * 30);
        return { key: `b${i}`, bytes: 4 * (1 + Math.floor(u() * 5000)), start, end: start + Math.floor(u() * 10) };
      });
      const plan = planMemory(bufs, { alignment: 256, maxBufferSize: 1 << 30 });
      expect(findOverlap(bufs, plan)).toBeUndefined();
      expect(plan.plannedBytes).toBeGreaterThanOrEqual(plan.lowerBound);
      for (const p of plan.placements.values()) expect(p.offset % 256).toBe(0);
    }
  });

  it('reads consistently: naive >= planned >= lower bound, in one arena and in several', () => {
    const u = rng(7);
    for (let t = 0; t < 200; t++) {
      const n = 1 + Math.floor(u() * 30);
      const bufs: Lifetime[] = Array.from({ length: n }, (_, i) => {
        const start = Math.floor(u() * 20);
        return { key: `b${i}`, bytes: 4 * (1 + Math.floor(u() * 3000)), start, end: start + Math.floor(u() * 8) };
      });
      // Every other case with a small maxBufferSize, so that the plan opens several arenas.
      const plan = planMemory(bufs, { alignment: 256, maxBufferSize: t % 2 ? 1 << 30 : 12_288 });
      const what = `case ${t}: naive ${plan.naiveBytes}, planned ${plan.plannedBytes}, bound ${plan.lowerBound}, ${plan.arenas.length} arenas`;
      expect(plan.naiveBytes, what).toBeGreaterThanOrEqual(plan.plannedBytes);
      expect(plan.plannedBytes, what).toBeGreaterThanOrEqual(plan.lowerBound);
    }
    // Tiny buffers all live at once: padding dominates, and still naive >= planned >= bound.
    const tiny: Lifetime[] = [0, 1, 2].map((i) => ({ key: `t${i}`, bytes: 8, start: 0, end: 0 }));
    const p = planMemory(tiny, { alignment: 256, maxBufferSize: 1 << 30 });
    expect([p.naiveBytes, p.plannedBytes, p.lowerBound]).toEqual([768, 520, 520]);
  });

  it('opens a new arena instead of exceeding maxBufferSize', () => {
    const bufs: Lifetime[] = [0, 1, 2].map((i) => ({ key: `b${i}`, bytes: 600, start: 0, end: 1 }));
    const plan = planMemory(bufs, { alignment: 4, maxBufferSize: 1300 });
    expect(plan.arenas.length).toBe(2);
    expect(Math.max(...plan.arenas)).toBeLessThanOrEqual(1300);
    expect(findOverlap(bufs, plan)).toBeUndefined();
  });

  const models = [
    ...readdirSync('models').filter((x) => x.endsWith('.json')).map((f) => ({ f, m: () => loadModel(readFileSync(`models/${f}`, 'utf8'), f) })),
    { f: 'transformer-lm.ts', m: () => transformerLm() },
  ];
  for (const { f, m } of models) {
    it(`${f}: forward and training programs never overlap live buffers, and plan within 5% of the lower bound`, () => {
      const model = m();
      const c = compile(model);
      for (const a of [emitArtifact(specializeMode(model.graph, 'eval'), { fuse: false }), c.forward, c.train!]) {
        expect(artifactOverlap(a)).toBeUndefined();
        expect(a.memory.plannedBytes).toBeLessThanOrEqual(1.05 * a.memory.lowerBound);
      }
    });
  }

  // Random graphs of the fuzzer (test/fuzz/graphs.ts, differentiable recipes so that each also
  // gives a gradient and a training program, test/fuzz/grad.ts): the forward graph fused and
  // unfused for the recipe's binding limit, its adjoint graph, and `compile`'s forward and
  // training programs (SGD with momentum or Adam, alternately).
  //
  // The plan may exceed 1.05 x the lower bound by one offset alignment (256 bytes) here. The bound
  // assumes that at the busiest dispatch the topmost buffer is the one that wastes the most of its
  // alignment, which tiny buffers often cannot all be: of 6,000 random programs (4 seeds), 4 —
  // all unfused and under 4 KB — planned 52-256 bytes more than the bound (up to 1.10x); in 2 of
  // them no placement order does better (none of 50,000 random orders, placed first fit), in the
  // other 2 the planner's orders missed one that meets the bound. Every model in models/ must meet
  // 1.05x exactly (above).
  it('never overlaps two live buffers on 300 random graphs, their gradients and training programs', () => {
    const optimizers: OptimizerConfig[] = [
      { kind: 'sgd', lr: 0.1, momentum: 0.9, weightDecay: 0 },
      { kind: 'adam', lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 },
    ];
    const cases = fc.sample(gradRecipeArb(), { seed: 20261125, numRuns: 300 });
    const overBound: string[] = [];
    let artifacts = 0;
    cases.forEach((r, i) => {
      const limits = { maxStorageBuffersPerShaderStage: r.recipe.bindings };
      const fwd = buildCase(r.recipe).graph;
      const c = buildGradCase(r);
      const compiled = compile({ name: `fuzz${i}`, graph: c.loss, loss: 'loss', optimizer: optimizers[i % 2]! }, { limits });
      const programs: [string, Artifact, string][] = [
        ['forward, fused', emitArtifact(fwd, { limits }), printGraph(fwd)],
        ['forward, unfused', emitArtifact(fwd, { limits, fuse: false }), printGraph(fwd)],
        ['gradient', emitArtifact(c.graph, { limits }), printGraph(c.graph)],
        ['compiled forward', compiled.forward, printGraph(c.loss)],
        ['training', compiled.train!, printGraph(c.loss)],
      ];
      for (const [what, a, graph] of programs) {
        artifacts++;
        const overlap = artifactOverlap(a);
        if (overlap) expect.fail(`case ${i} (${what}): ${overlap}\n${graph}`);
        const { lowerBound, plannedBytes } = a.memory;
        const alignment = a.requirements.limits.minStorageBufferOffsetAlignment;
        if (plannedBytes > 1.05 * lowerBound + alignment) overBound.push(`case ${i} (${what}): planned ${plannedBytes} bytes, lower bound ${lowerBound}`);
      }
    });
    expect(artifacts).toBe(1500);
    expect(overBound).toEqual([]);
  });
});
