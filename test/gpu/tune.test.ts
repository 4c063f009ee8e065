/**
 * @file Kernel variants chosen by measurement on the adapter: a first load times every kernel's
 * variants and caches the choices, a second load with the same cache times nothing, loading with
 * tuning off runs the defaults; tuning leaves no trace in the parameters (a training step with
 * in-place Adam updates gives the same values tuned or not, and matches the interpreter); the
 * JSON file cache survives a new process's reading of it. Background tuning (the default): load()
 * resolves with the defaults compiled, steps before, during and after tuning match a program that
 * never tunes, the choices land in the cache, destroy() during tuning is clean, and a variant the
 * device rejects is reported once while the steps go on.
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
import { runCli } from '../cli-run.js';

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
    const first = await oneStep({ tune: 'load', tuneCache: cache });
    const second = await oneStep({ tune: 'load', tuneCache: cache });
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
      const a = await Program.load(device, artifact, { tune: 'load', tuneCache: fileTuneCache(file) });
      a.destroy();
      const saved = JSON.parse(readFileSync(file, 'utf8')) as Record<string, { choice: string; times: Record<string, number> }>;
      expect(Object.keys(saved).length).toBeGreaterThan(0);
      const b = await Program.load(device, artifact, { tune: 'load', tuneCache: fileTuneCache(file) });
      b.destroy();
      expect(b.tuning.every((k) => k.source === 'cache')).toBe(true);
      expect(b.tuning.map((k) => k.choice)).toEqual(a.tuning.map((k) => k.choice));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('adjoint tune prints every kernel\'s variants, times and choice and fills the cache; a second run reads it; inspect lists the variants', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'adjoint-tune-cli-'));
    const run = runCli;
    try {
      const cache = join(dir, 'tune.json');
      const first = await run('tune', 'models/logreg-mnist.json', '--cache', cache);
      expect(first.code).toBe(0);
      expect(first.out).toMatch(/^train: load \d+ ms, tuning \d+ ms, \d+ kernels with variants$/m);
      expect(first.out).toMatch(/^ {2}k\d+: .*matmul.*: reg8x8 [\d.]+ ms, reg4x4 [\d.]+ ms.* -> (reg|subgroup|subgroupcols|subgroupcompact|compact)\d+x\d+ \(tuned, (timestamp|wall)\)$/m);
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

describe('tuning in the background', () => {
  /** Feeds of step `s` (the same for every program): the random env's inputs, scaled per step. */
  const feedsOf = (s: number): Record<string, Float32Array> => {
    const out: Record<string, Float32Array> = {};
    for (const inp of artifact.inputs) out[inp.name] = Float32Array.from(env.get(inp.name)!.data, (v) => v * (1 + 0.1 * s));
    return out;
  };
  const startFrom = (p: Program) => {
    for (const s of [...artifact.params, ...artifact.state]) {
      const t = env.get(s.name);
      if (t) p.write(s.name, t.data instanceof Int32Array ? t.data : Float32Array.from(t.data));
    }
  };
  /** Loss and every updated value after one step of `p`. */
  const stepValues = async (p: Program, s: number) => {
    const values = new Map((await p.step(feedsOf(s), ['loss']))!);
    for (const u of g.updates) values.set(u.target, await p.read(u.target));
    return values;
  };

  it('load() resolves before tuning; steps before, during and after tuning match a program that never tunes; the choices land in the cache; a second load tunes nothing', async () => {
    const cache = memoryTuneCache();
    const bg = await Program.load(device, artifact, { tune: 'background', tuneCache: cache, strictShaders: true });
    // Until timed, each kernel runs its variant built to compile fast (the compact matmuls), else
    // one without workgroup barriers.
    const kernels = artifact.dispatches.filter((d) => (d.variants?.length ?? 0) > 1).length;
    const barriers = (v: { shader: number }) => (artifact.shaders[v.shader]!.match(/workgroupBarrier/g) ?? []).length;
    const firstLoad = (i: number, choice: string) => {
      const vs = artifact.dispatches[i]!.variants!;
      const quick = vs.find((v) => v.quick);
      return quick ? choice === quick.name : barriers(vs.find((v) => v.name === choice)!) === Math.min(...vs.map(barriers));
    };
    const atLoad = bg.tuning;
    const off = await Program.load(device, artifact, { tune: false });
    try {
      expect(atLoad.length).toBe(kernels);
      expect(atLoad.every((k) => k.source === 'pending' && firstLoad(k.dispatch, k.choice))).toBe(true);
      expect(artifact.dispatches.some((d) => d.variants?.some((v) => v.quick))).toBe(true);
      // Tuning waits for the first step (or for `tuned`, or a second): nothing is timed yet.
      await new Promise((r) => setTimeout(r, 300));
      expect(bg.tuning.every((k) => k.source === 'pending')).toBe(true);
      let done = false;
      void bg.tuned.then(() => (done = true));
      startFrom(bg);
      startFrom(off);
      const phases = { before: 0, during: 0, after: 0 };
      for (let s = 0; s < 200 && !(done && phases.after >= 3); s++) {
        const phase = s === 0 ? 'before' : done ? 'after' : 'during';
        phases[phase]++;
        const [got, want] = [await stepValues(bg, s), await stepValues(off, s)];
        for (const [name, t] of want) expect(maxRelError(got.get(name)!, t), `step ${s + 1} (${phase} tuning): ${name}`).toBeLessThanOrEqual(1e-4);
      }
      await bg.tuned;
      expect(phases.before).toBe(1);
      expect(phases.after).toBeGreaterThanOrEqual(3);
      expect(bg.tuneError).toBeUndefined();
      expect(bg.tuneMs).toBeGreaterThan(0);
      for (const k of bg.tuning) {
        expect(k.source).toBe('tuned');
        expect(k.times![k.choice]).toBe(Math.min(...k.variants.map((v) => k.times![v]!)));
      }
      // The choices are in the cache: a second load runs them at once and times nothing.
      const again = await Program.load(device, artifact, { tune: 'background', tuneCache: cache });
      try {
        expect(again.tuning.every((k) => k.source === 'cache')).toBe(true);
        expect(again.tuning.map((k) => k.choice)).toEqual(bg.tuning.map((k) => k.choice));
        await again.tuned;
        expect(again.tuneMs).toBeLessThan(0.05 * bg.tuneMs);
      } finally {
        again.destroy();
      }
    } finally {
      bg.destroy();
      off.destroy();
    }
  });

  it('with scratch memory for one kernel at a time, the kernels are timed one by one, each choice swapped in before the next is timed', async () => {
    const cache = memoryTuneCache();
    const p = await Program.load(device, artifact, { tune: 'background', tuneCache: cache, tuneScratchBytes: 1 });
    const off = await Program.load(device, artifact, { tune: false });
    try {
      startFrom(p);
      startFrom(off);
      // Between chunks, some kernels are tuned and others still pending.
      const seen = new Set<string>();
      let done = false;
      void p.tuned.then(() => (done = true));
      for (let s = 0; s < 400 && !done; s++) {
        const sources = p.tuning.map((k) => k.source);
        if (sources.includes('tuned') && sources.includes('pending')) seen.add('partly');
        const [got, want] = [await stepValues(p, s), await stepValues(off, s)];
        for (const [name, t] of want) expect(maxRelError(got.get(name)!, t), `step ${s + 1}: ${name}`).toBeLessThanOrEqual(1e-4);
      }
      await p.tuned;
      expect(p.tuneError).toBeUndefined();
      expect(p.tuning.every((k) => k.source === 'tuned')).toBe(true);
      expect(seen.has('partly')).toBe(true);
    } finally {
      p.destroy();
      off.destroy();
    }
  });

  it('destroy() during tuning stops it cleanly: tuned resolves, nothing is reported, the device still works', async () => {
    const cache = memoryTuneCache();
    const p = await Program.load(device, artifact, { tune: 'background', tuneCache: cache });
    startFrom(p);
    void p.step(feedsOf(0));
    p.destroy();
    await p.tuned;
    expect(p.tuneError).toBeUndefined();
    expect(p.tuning.some((k) => k.source === 'tuned')).toBe(false);
    expect(() => p.step(feedsOf(1))).toThrow(/destroyed/);
    // The device is unharmed: a fresh program steps and matches the interpreter.
    const fresh = await oneStep({ tune: false });
    fresh.program.destroy();
    expect(maxRelError(fresh.values.get('loss')!, evaluate(g, env, 'f32').outputs.get('loss')!.data)).toBeLessThanOrEqual(1e-5);
  });

  it('a variant the device rejects is reported once; its kernel keeps a working variant and the steps go on', async () => {
    // A copy of the artifact where one kernel's second variant is a shader that does not compile
    // (with the most storage reads and the longest of all, so that it is not the variant that runs
    // until tuning: see quickest()).
    const at = artifact.dispatches.findIndex((d) => (d.variants?.length ?? 0) > 1);
    const d = artifact.dispatches[at]!;
    const broken = `${'// not a kernel: in0[0]\n'.repeat(Math.max(...artifact.shaders.map((x) => x.length)) / 8)}fn main( {`;
    const bad = { ...artifact, shaders: [...artifact.shaders, broken], dispatches: artifact.dispatches.map((x, i) => (i === at ? { ...d, variants: d.variants!.map((v, j) => (j === 1 ? { ...v, shader: artifact.shaders.length } : v)) } : x)) };
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    const uncaptured: string[] = [];
    const onError = (e: Event) => uncaptured.push((e as GPUUncapturedErrorEvent).error.message);
    device.addEventListener('uncapturederror', onError);
    const p = await Program.load(device, bad, { tune: 'background', tuneCache: memoryTuneCache() });
    const off = await Program.load(device, artifact, { tune: false });
    try {
      startFrom(p);
      startFrom(off);
      for (let s = 0; s < 3; s++) {
        const [got, want] = [await stepValues(p, s), await stepValues(off, s)];
        for (const [name, t] of want) expect(maxRelError(got.get(name)!, t), name).toBeLessThanOrEqual(1e-4);
      }
      await p.tuned;
      expect(p.tuneError?.message).toMatch(/tuning kernel variants failed: pipeline\d+ \(.*\):/);
      expect(warn).toHaveBeenCalledTimes(1);
      expect(String(warn.mock.calls[0]![0])).toContain(p.tuneError!.message);
      const k = p.tuning.find((x) => x.dispatch === at)!;
      expect(k.choice).not.toBe(d.variants![1]!.name);
      const after = [await stepValues(p, 3), await stepValues(off, 3)];
      for (const [name, t] of after[1]!) expect(maxRelError(after[0]!.get(name)!, t), name).toBeLessThanOrEqual(1e-4);
      expect(uncaptured).toEqual([]);
    } finally {
      device.removeEventListener('uncapturederror', onError);
      warn.mockRestore();
      p.destroy();
      off.destroy();
    }
  });
});

describe('adjoint train with background tuning', () => {
  it('steps start at once and one line says when tuning finished; a second run takes every choice from the cache', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'adjoint-tune-train-'));
    const saved = { tune: process.env.ADJOINT_TUNE, cache: process.env.ADJOINT_TUNE_CACHE };
    process.env.ADJOINT_TUNE = '1';
    process.env.ADJOINT_TUNE_CACHE = join(dir, 'tune.json');
    const run = async () => {
      let err = '';
      const o = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
      const e = vi.spyOn(process.stderr, 'write').mockImplementation((x) => ((err += String(x)), true));
      try {
        return { code: await main(['train', 'models/logreg-mnist.json', '--epochs', '1', '--steps-per-epoch', '20']), err };
      } finally {
        o.mockRestore();
        e.mockRestore();
      }
    };
    try {
      const first = await run();
      expect(first.code).toBe(0);
      const line = first.err.split('\n').filter((l) => l.startsWith('tuning: '));
      expect(line).toHaveLength(1);
      expect(line[0]).toMatch(/^tuning: (4 of 4 kernels timed in the background in [\d.]+ s, done at step \d+; choices cached|\d of 4 kernels' variants chosen when training ended .*)$/);
      const second = await run();
      expect(second.code).toBe(0);
      expect(second.err).toMatch(/^tuning: every kernel's variant \(4\) came from the tuning cache$/m);
    } finally {
      for (const [k, v] of [['ADJOINT_TUNE', saved.tune], ['ADJOINT_TUNE_CACHE', saved.cache]] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('pruning variants that never come near', () => {
  it('a variant slower than the best on the first kernels of its table is not timed on the later ones; every kernel keeps a choice', async () => {
    // Six distinct matmuls, each timed alone (tiny scratch budget: one kernel per chunk), each with
    // an extra variant last: its default's WGSL spinning 200,000 steps per thread first (the same
    // result, far slower).
    const b = new GraphBuilder();
    for (let i = 0; i < 6; i++) b.output(`y${i}`, b.matmul(b.input(`a${i}`, [16 + 4 * i, 32]), b.input(`b${i}`, [32, 24])));
    const base = emitArtifact(b.build(), {});
    const spin = (w: string) => w.replace(/(fn main\(.*\) \{\n)/, '$1  var spin_s = 1u;\n  for (var spin_i = 0u; spin_i < 200000u; spin_i++) { spin_s = spin_s * 1664525u + 1013904223u; }\n  if (spin_s == 0u) { return; }\n');
    const shaders = [...base.shaders];
    const dispatches = base.dispatches.map((d) => {
      if (!d.variants) return d;
      shaders.push(spin(base.shaders[d.shader]!));
      return { ...d, variants: [...d.variants, { name: 'spin', shader: shaders.length - 1, workgroups: d.workgroups }] };
    });
    const a = { ...base, shaders, dispatches };
    expect(shaders.slice(base.shaders.length).every((w) => w.includes('spin_s'))).toBe(true);
    const p = await Program.load(device, a, { tune: 'load', tuneCache: memoryTuneCache(), tuneScratchBytes: 1, strictShaders: true });
    try {
      const ks = p.tuning;
      expect(ks.length).toBe(6);
      const timed = ks.map((k) => k.times?.spin !== undefined);
      // Timed (and lost) on the first four, not compiled for the two after.
      expect(timed).toEqual([true, true, true, true, false, false]);
      for (const k of ks) {
        expect(k.choice).not.toBe('spin');
        expect(Object.keys(k.times ?? {}).length).toBeGreaterThanOrEqual(2);
      }
    } finally {
      p.destroy();
    }
  }, 300_000);
});
