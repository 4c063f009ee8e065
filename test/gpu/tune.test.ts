/**
 * @file Kernel variants chosen by measurement on the adapter: a first load times every kernel's
 * variants and caches the choices, a second load with the same cache times nothing, loading with
 * tuning off runs the defaults; tuning leaves no trace in the parameters (a training step with
 * in-place Adam updates gives the same values tuned or not, and matches the interpreter); the
 * JSON file cache survives a new process's reading of it.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emitArtifact, trainingGraph } from '../../src/compile.js';
import { GraphBuilder } from '../../src/ir/builder.js';
import type { Graph } from '../../src/ir/graph.js';
import { evaluate } from '../../src/ir/interp.js';
import { getDevice } from '../../src/runtime/device.js';
import { Program } from '../../src/runtime/program.js';
import { memoryTuneCache } from '../../src/runtime/tune.js';
import { fileTuneCache } from '../../src/runtime/tune-file.js';
import { maxRelError, randomEnv } from './harness.js';
import { vi } from 'vitest';
import { main } from '../../src/cli.js';

let device: GPUDevice;
beforeAll(async () => { device = await getDevice({ quiet: true }); });
afterAll(() => device?.destroy());

/** A small MLP's training step with Adam (updates in place); its matmuls are too small for workgroup tiles. */
function mlpAdam(): Graph {
  const b = new GraphBuilder();
  const x = b.input('x', [8, 12]);
  const y = b.input('y', [8, 4]);
  const h = b.relu(b.linear(x, b.param('w1', [12, 12]), b.param('b1', [12])));
  const out = b.linear(h, b.param('w2', [12, 4]), b.param('b2', [4]));
  b.output('loss', b.mse(out, y));
  return trainingGraph({ name: 'mlp', graph: b.build(), loss: 'loss', optimizer: { kind: 'adam', lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 } }).graph;
}

const g = mlpAdam();
const artifact = emitArtifact(g, {});
const env = randomEnv(g, 7);

/** One step on a program loaded with these options; returns the loss and every updated value. */
async function oneStep(opts: Parameters<typeof Program.load>[2]): Promise<{ program: Program; values: Map<string, Float32Array | Int32Array> }> {
  const program = await Program.load(device, artifact, { strictShaders: true, ...opts });
  for (const [n, t] of env) program.write(n, t.data instanceof Int32Array ? t.data : Float32Array.from(t.data));
  const got = (await program.step({}, ['loss']))!;
  const values = new Map(got);
  for (const u of g.updates) values.set(u.target, await program.read(u.target));
  return { program, values };
}

describe('tuning kernel variants', () => {
  it('the program has kernels with several variants', () => {
    expect(artifact.dispatches.filter((d) => (d.variants?.length ?? 0) > 1).length).toBeGreaterThanOrEqual(3);
  });

  it('a first load times every variant, a second load with the same cache times none; tuned, untuned and the interpreter agree', async () => {
    const cache = memoryTuneCache();
    const want = evaluate(g, env, 'f32');
    const first = await oneStep({ tune: true, tuneCache: cache });
    const second = await oneStep({ tune: true, tuneCache: cache });
    const off = await oneStep({ tune: false });
    try {
      expect(first.program.tuning.length).toBe(artifact.dispatches.filter((d) => (d.variants?.length ?? 0) > 1).length);
      for (const k of first.program.tuning) {
        expect(k.source).toBe('tuned');
        expect(k.variants).toContain(k.choice);
        // Every variant has a time; the choice is the fastest of those kept.
        for (const v of k.variants) expect(k.times![v]).toBeGreaterThan(0);
        expect(k.times![k.choice]).toBe(Math.min(...k.variants.map((v) => k.times![v]!)));
      }
      expect(second.program.tuning.every((k) => k.source === 'cache')).toBe(true);
      expect(second.program.tuning.map((k) => k.choice)).toEqual(first.program.tuning.map((k) => k.choice));
      expect(second.program.tuneMs).toBeLessThan(first.program.tuneMs);
      expect(off.program.tuning.every((k) => k.source === 'default' && k.choice === k.variants[0])).toBe(true);
      // Timing runs updated parameters in place: the step after tuning must start from the same values.
      for (const run of [first, second, off]) {
        expect(maxRelError(run.values.get('loss')!, want.outputs.get('loss')!.data)).toBeLessThanOrEqual(1e-5);
        for (const [name, t] of want.updates) expect(maxRelError(run.values.get(name)!, t.data), name).toBeLessThanOrEqual(1e-5);
      }
    } finally {
      for (const r of [first, second, off]) r.program.destroy();
    }
  });

  it('the JSON file cache keeps the choices for a later reader', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'adjoint-tune-'));
    try {
      const file = join(dir, 'sub', 'tune.json');
      const a = await Program.load(device, artifact, { tune: true, tuneCache: fileTuneCache(file) });
      a.destroy();
      const saved = JSON.parse(readFileSync(file, 'utf8')) as Record<string, { choice: string; times: Record<string, number> }>;
      expect(Object.keys(saved).length).toBeGreaterThan(0);
      const b = await Program.load(device, artifact, { tune: true, tuneCache: fileTuneCache(file) });
      b.destroy();
      expect(b.tuning.every((k) => k.source === 'cache')).toBe(true);
      expect(b.tuning.map((k) => k.choice)).toEqual(a.tuning.map((k) => k.choice));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('adjoint tune prints every kernel\'s variants, times and choice and fills the cache; a second run reads it; inspect lists the variants', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'adjoint-tune-cli-'));
    const run = async (...argv: string[]) => {
      let out = '';
      const o = vi.spyOn(process.stdout, 'write').mockImplementation((x) => ((out += String(x)), true));
      const e = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
      try {
        return { code: await main(argv), out };
      } finally {
        o.mockRestore();
        e.mockRestore();
      }
    };
    try {
      const cache = join(dir, 'tune.json');
      const first = await run('tune', 'models/logreg-mnist.json', '--cache', cache);
      expect(first.code).toBe(0);
      expect(first.out).toMatch(/^train: load \d+ ms, tuning \d+ ms, \d+ kernels with variants$/m);
      expect(first.out).toMatch(/^ {2}k\d+: .*matmul.*: reg8x8 [\d.]+ ms, reg4x4 [\d.]+ ms.* -> reg\dx\d \(tuned, (timestamp|wall)\)$/m);
      const second = await run('tune', 'models/logreg-mnist.json', '--cache', cache);
      expect(second.out).not.toMatch(/\(tuned/);
      expect(second.out).toMatch(/\(cache, /);
      const inspect = await run('inspect', 'models/logreg-mnist.json');
      expect(inspect.out).toMatch(/matmul.* variants: reg8x8 \(default\), reg4x4, reg8x4/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
