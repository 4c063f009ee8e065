/**
 * @file Per-kernel profiling on the adapter: Program.profile times every dispatch of a step on its
 * own, with the variant the program runs, and leaves the program as it was (parameters, optimizer
 * state and step count; the next step matches a twin that never profiled and the interpreter);
 * `adjoint profile` prints the kernels slowest first and refuses bad flags with exit code 2.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emitArtifact, trainingGraph } from '../../src/compile.js';
import { GraphBuilder } from '../../src/ir/builder.js';
import type { Graph } from '../../src/ir/graph.js';
import { evaluate } from '../../src/ir/interp.js';
import { getDevice } from '../../src/runtime/device.js';
import { Program } from '../../src/runtime/program.js';
import { maxRelError, randomEnv } from './harness.js';
import { runCli } from '../cli-run.js';

let device: GPUDevice;
beforeAll(async () => { device = await getDevice({ quiet: true }); });
afterAll(() => device?.destroy());

/** A small MLP's training step with Adam: in-place updates of parameters and moments, which a dispatch run again and again would change. */
function mlpAdam(): Graph {
  const b = new GraphBuilder();
  const x = b.input('x', [16, 24]);
  const y = b.input('y', [16, 4]);
  const h = b.relu(b.linear(x, b.param('w1', [24, 32]), b.param('b1', [32])));
  const out = b.linear(h, b.param('w2', [32, 4]), b.param('b2', [4]));
  b.output('loss', b.mse(out, y));
  return trainingGraph({ name: 'mlp', graph: b.build(), loss: 'loss', optimizer: { kind: 'adam', lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 } }).graph;
}

const g = mlpAdam();
const artifact = emitArtifact(g, {});
const env = randomEnv(g, 11);

/** Loaded untuned: every kernel runs its default variant. */
async function loaded(): Promise<Program> {
  const p = await Program.load(device, artifact, { tune: false, strictShaders: true });
  for (const [n, t] of env) p.write(n, t.data instanceof Int32Array ? t.data : Float32Array.from(t.data));
  return p;
}

describe('Program.profile', () => {
  it('times every dispatch with the variant it runs, and leaves parameters, state and the next step as they were', async () => {
    const a = await loaded();
    const b = await loaded();
    try {
      const persistent = [...artifact.params, ...artifact.state].map((s) => s.name);
      expect(artifact.state.length).toBeGreaterThan(0); // Adam's moments
      const before = new Map<string, Float32Array | Int32Array>();
      for (const n of persistent) before.set(n, await a.read(n));

      const prof = await a.profile({ rounds: 2 });
      expect(prof.rounds).toBe(2);
      expect(['timestamp', 'wall']).toContain(prof.timer);
      expect(prof.dispatches.map((d) => d.dispatch)).toEqual(artifact.dispatches.map((_, i) => i));
      for (const d of prof.dispatches) {
        expect(d.label).toBe(artifact.dispatches[d.dispatch]!.label);
        expect(Number.isFinite(d.ms) && d.ms > 0, `k${d.dispatch} ${d.ms}`).toBe(true);
        expect(d.workgroups.every((n) => n >= 1)).toBe(true);
      }
      // Kernels with several variants name the one the program runs (untuned: the default).
      expect(a.tuning.length).toBeGreaterThan(0);
      for (const k of a.tuning) expect(prof.dispatches[k.dispatch]!.variant).toBe(k.choice);
      for (const k of a.tuning) expect(k.choice).toBe(k.variants[0]);
      for (const d of prof.dispatches) if ((artifact.dispatches[d.dispatch]!.variants?.length ?? 0) < 2) expect(d.variant).toBeUndefined();

      expect(a.steps).toBe(0);
      for (const n of persistent) expect(await a.read(n), n).toEqual(before.get(n));
      // The next step matches a twin that never profiled, bit for bit, and the interpreter.
      const want = evaluate(g, env, 'f32');
      const got = (await a.step({}, ['loss']))!;
      const twin = (await b.step({}, ['loss']))!;
      expect(got.get('loss')).toEqual(twin.get('loss'));
      expect(maxRelError(got.get('loss')!, want.outputs.get('loss')!.data)).toBeLessThanOrEqual(1e-5);
      for (const [name, t] of want.updates) {
        const v = await a.read(name);
        expect(v, name).toEqual(await b.read(name));
        expect(maxRelError(v, t.data), name).toBeLessThanOrEqual(1e-5);
      }
    } finally {
      a.destroy();
      b.destroy();
    }
  });

  it('a destroyed program refuses to profile', async () => {
    const p = await loaded();
    p.destroy();
    await expect(p.profile()).rejects.toThrow(/profile/);
  });
});

describe('adjoint profile', () => {
  const run = runCli;

  it('prints a step\'s time and every kernel slowest first, with its share, variant and grid', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'adjoint-profile-'));
    try {
      const r = await run('profile', 'models/logreg-mnist.json', '--cache', join(dir, 'tune.json'), '--steps', '2', '--rounds', '2');
      expect(r.err).toBe('');
      expect(r.code).toBe(0);
      const head = /^train: load \d+ ms(, tuning \d+ ms)?; a step ([\d.]+) ms \(median of 2, inputs zero, nothing read back\); (\d+) dispatches timed alone: ([\d.]+) ms in all \((timestamp queries|wall clock), median of 2 rounds\)$/m.exec(r.out);
      expect(head, r.out).not.toBeNull();
      const rows = [...r.out.matchAll(/^ {2}k(\d+) +([\d.]+) +([\d.]+)% +(\S+) +(\d+x\d+x\d+) +(.+)$/gm)];
      expect(rows.length).toBe(Number(head![3]));
      const ms = rows.map((m) => Number(m[2]));
      expect(ms).toEqual([...ms].sort((x, y) => y - x));
      const shares = rows.reduce((n, m) => n + Number(m[3]), 0);
      expect(shares).toBeGreaterThan(99);
      expect(shares).toBeLessThan(101);
      expect(rows.some((m) => /matmul/.test(m[6]!) && m[4] !== '-')).toBe(true);
      // The variants profiled are the tuner's choices, as the cache holds them (tune reads them back).
      const tuned = await run('tune', 'models/logreg-mnist.json', '--cache', join(dir, 'tune.json'));
      const train = tuned.out.slice(0, tuned.out.indexOf('forward:'));
      const trainChoices = [...train.matchAll(/^ {2}k(\d+): .* -> (\S+) \(cache, /gm)];
      expect(trainChoices.length).toBeGreaterThan(0);
      for (const c of trainChoices) expect(rows.find((m) => m[1] === c[1])?.[4], `k${c[1]}`).toBe(c[2]);
      const forward = await run('profile', 'models/logreg-mnist.json', '--forward', '--cache', join(dir, 'tune.json'), '--steps', '1', '--rounds', '1');
      expect(forward.code).toBe(0);
      expect(forward.out).toMatch(/^forward: load \d+ ms/m);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('bad flags and paths are one line and exit code 2', async () => {
    for (const [argv, msg] of [
      [['profile'], /profile needs a model file or an artifact directory/],
      [['profile', 'models/logreg-mnist.json', '--steps', 'x'], /--steps takes a whole number, got "x"/],
      [['profile', 'models/logreg-mnist.json', '--rounds', '0'], /--rounds must be at least 1/],
      [['profile', 'no/such/model.json'], /no\/such\/model.json: no such file or directory/],
    ] as const) {
      const r = await run(...argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.err.trim().split('\n')).toHaveLength(1);
      expect(r.err).toMatch(msg);
    }
  });
});
