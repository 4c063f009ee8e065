/**
 * @file Fusion on the models of models/: each model's training step compiled fused and unfused
 * (one kernel per op) for the same device, run on the same adapter with the same feeds, the loss
 * read back every step. Per model: median step time of each, the ratio, dispatches per step and
 * planned temporary bytes of each. What fusion buys, model by model.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { compile } from '../src/compile.js';
import { numel } from '../src/ir/dtype.js';
import type { Model } from '../src/ir/model.js';
import { loadModel } from '../src/ir/schema.js';
import type { Artifact } from '../src/runtime/artifact.js';
import { deviceLimits } from '../src/runtime/device.js';
import { Program } from '../src/runtime/program.js';
import { rng } from '../src/runtime/init.js';
import { transformerLm } from '../models/transformer-lm.js';

export interface FusionRow {
  readonly model: string;
  readonly steps: number;
  readonly fusedMs: number;
  readonly unfusedMs: number;
  readonly speedup: number;
  readonly fusedDispatches: number;
  readonly unfusedDispatches: number;
  readonly fusedTempBytes: number;
  readonly unfusedTempBytes: number;
}

/** The repository's models/ (or the bench bundle's), found upwards from this file (bench/ or dist/bench/). */
function modelsDir(): URL {
  let dir = new URL('./', import.meta.url);
  for (let i = 0; i < 5; i++) {
    const m = new URL('models/', dir);
    if (existsSync(new URL('mlp-mnist.json', m))) return m;
    dir = new URL('../', dir);
  }
  throw new Error(`no models/ directory above ${fileURLToPath(import.meta.url)}`);
}

/** Every model of models/ (the JSON files and the transformer built in TypeScript). */
export function zoo(): { readonly file: string; readonly model: () => Model }[] {
  const dir = modelsDir();
  return [
    ...readdirSync(dir).filter((f) => f.endsWith('.json')).sort().map((file) => ({ file, model: () => loadModel(readFileSync(new URL(file, dir), 'utf8'), file) })),
    { file: 'transformer-lm.ts', model: () => transformerLm() },
  ];
}

/** Feeds of the right types: uniform floats, and integer inputs at 0 (a valid label and token). */
function feedsFor(a: Artifact): Record<string, Float32Array | Int32Array> {
  const u = rng(7);
  return Object.fromEntries(a.inputs.map((s) => [s.name, s.dtype === 'i32' ? new Int32Array(numel(s.shape)) : Float32Array.from({ length: numel(s.shape) }, () => u())]));
}

async function msPerStep(device: GPUDevice, a: Artifact, steps: number): Promise<number> {
  const prog = await Program.load(device, a, { seed: 1 });
  try {
    const feeds = feedsFor(a);
    const read = a.loss !== undefined ? [a.loss] : [];
    await prog.step(feeds, read); // pipelines compiled, buffers warm
    const times: number[] = [];
    for (let s = 0; s < steps; s++) {
      const t0 = performance.now();
      await prog.step(feeds, read);
      times.push(performance.now() - t0);
    }
    times.sort((x, y) => x - y);
    return times[Math.floor(times.length / 2)]!;
  } finally {
    prog.destroy();
  }
}

const temps = (a: Artifact) => a.arenas.filter((x) => x.role === 'temp').reduce((s, x) => s + x.bytes, 0);

export async function benchFusion(device: GPUDevice, quick: boolean, log: (m: string) => void): Promise<FusionRow[]> {
  const rows: FusionRow[] = [];
  for (const { file, model } of zoo()) {
    const m = model();
    const limits = deviceLimits(device);
    const fused = compile(m, { limits }).train;
    const unfused = compile(m, { limits, fuse: false }).train;
    if (!fused || !unfused) continue;
    // Few steps for the slow models; the median of them.
    const steps = quick ? 2 : fused.dispatches.length > 20 ? 2 : 7;
    const fusedMs = await msPerStep(device, fused, steps);
    const unfusedMs = await msPerStep(device, unfused, steps);
    const row: FusionRow = {
      model: file.replace(/\.(json|ts)$/, ''), steps, fusedMs, unfusedMs, speedup: unfusedMs / fusedMs,
      fusedDispatches: fused.dispatches.length, unfusedDispatches: unfused.dispatches.length,
      fusedTempBytes: temps(fused), unfusedTempBytes: temps(unfused),
    };
    log(`fusion: ${row.model}: fused ${fusedMs.toFixed(1)} ms (${row.fusedDispatches} dispatches), unfused ${unfusedMs.toFixed(1)} ms (${row.unfusedDispatches})`);
    rows.push(row);
  }
  return rows;
}

export function fusionTable(rows: readonly FusionRow[]): string {
  const kb = (b: number) => (b / 1024).toFixed(0);
  return [
    '| model | fused ms/step | unfused ms/step | fused speed-up | dispatches fused · unfused | temporaries KB fused · unfused |',
    '|---|---:|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.model} | ${r.fusedMs.toFixed(1)} | ${r.unfusedMs.toFixed(1)} | ${r.speedup.toFixed(2)}x | ${r.fusedDispatches} · ${r.unfusedDispatches} | ${kb(r.fusedTempBytes)} · ${kb(r.unfusedTempBytes)} |`),
  ].join('\n');
}
