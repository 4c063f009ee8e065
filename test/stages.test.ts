/**
 * @file The compiler's stage list (src/compile.ts `STAGES`): the stages run in the listed order
 * for each program (the forward program skips the training ones), each adds its result to the
 * work and prints it for `--dump`, a schedule cycle sends the work back to fusion, and the entry
 * points that run part of the list (`trainingGraph`, `emitArtifact`) agree with `compile`.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { compile, emitArtifact, STAGE_NAMES, trainingGraph, type StageName, type Work } from '../src/compile.js';
import { GraphBuilder } from '../src/ir/builder.js';
import type { Model } from '../src/ir/model.js';
import { loadModel } from '../src/ir/schema.js';

const TRAIN_ONLY = ['simplify-forward', 'autodiff', 'optimizer'];
/** The field of the work each plan stage adds. */
const FIELD: Partial<Record<StageName, keyof Work>> = {
  fusion: 'fusion', lowering: 'kernels', schedule: 'kernels', variants: 'variants', wgsl: 'wgsl', memory: 'memory', artifact: 'artifact',
};

const modelFile = (name: string): Model => loadModel(readFileSync(`models/${name}.json`, 'utf8'), `models/${name}.json`);

describe('the stages', () => {
  it('are one list, in order', () => {
    expect(STAGE_NAMES).toEqual(['mode', 'simplify-forward', 'autodiff', 'optimizer', 'simplify', 'fusion', 'lowering', 'schedule', 'variants', 'wgsl', 'memory', 'artifact']);
  });

  it('run in that order for both programs of lenet-bn, each adding its result and printing it', () => {
    const seen: string[] = [];
    const texts = new Map<string, string>();
    const works = new Map<string, Work>();
    const c = compile(modelFile('lenet-bn-mnist'), {
      dump: (stage, text, program, w) => {
        seen.push(`${program} ${stage}`);
        texts.set(`${program} ${stage}`, text());
        works.set(`${program} ${stage}`, w);
        const field = FIELD[stage];
        if (field) expect(w[field], `${program} ${stage}`).toBeDefined();
      },
    });
    expect(seen).toEqual([
      ...STAGE_NAMES.filter((s) => !TRAIN_ONLY.includes(s)).map((s) => `forward ${s}`),
      ...STAGE_NAMES.map((s) => `train ${s}`),
    ]);
    for (const program of ['forward', 'train'] as const) {
      const artifact = program === 'train' ? c.train! : c.forward;
      expect(works.get(`${program} artifact`)!.artifact).toBe(artifact);
      const kernels = works.get(`${program} schedule`)!.kernels!;
      // One line per kernel in the kernel stages; every shader of the artifact in the WGSL dump.
      for (const stage of ['fusion', 'lowering', 'schedule', 'variants']) {
        expect(texts.get(`${program} ${stage}`)!.split('\n').filter((l) => /^k\d+ /.test(l)).length, stage).toBe(kernels.length);
      }
      for (const s of artifact.shaders) expect(texts.get(`${program} wgsl`)).toContain(s.trimEnd());
      expect(texts.get(`${program} memory`)).toContain(`planned ${artifact.memory!.plannedBytes} B`);
      expect(JSON.parse(texts.get(`${program} artifact`)!).dispatches).toEqual(JSON.parse(JSON.stringify(artifact.dispatches)));
    }
    // A row kernel (softmax) and a convolution show up in the plans.
    expect(texts.get('train fusion')).toMatch(/rows \(outer 1\) stages/);
    expect(texts.get('train lowering')).toMatch(/: matmul \[[\d,]+\] k=\d+; nodes/);
  });

  it('a schedule cycle sends the work back to fusion, with the cycle\'s updates out of place', () => {
    // Adam on three parameters: the updates of x0 and x1 admit no order in place (test/fuzz/regressions.test.ts).
    const b = new GraphBuilder();
    const x0 = b.param('x0', [1]);
    const x1 = b.param('x1', []);
    const x2 = b.param('x2', [3]);
    const cyclic = b.reduceSum(b.mul(b.mul(x0, x1), b.input('w0', [1])));
    b.output('loss', b.add_(cyclic, b.reduceSum(b.mul(x2, b.input('w1', [3])))));
    const model: Model = { name: 'three-params', graph: b.build(), loss: 'loss', optimizer: { kind: 'adam', lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 } };
    const seen: string[] = [];
    const outOfPlace: number[] = [];
    compile(model, {
      dump: (stage, _text, program, w) => {
        if (program !== 'train') return;
        seen.push(stage);
        if (stage === 'fusion') outOfPlace.push(w.outOfPlace.size);
      },
    });
    const plan = seen.slice(seen.indexOf('fusion'));
    expect(plan.slice(0, 3)).toEqual(['fusion', 'lowering', 'fusion']); // the schedule found a cycle: nothing dumped for it
    expect(plan.slice(-7)).toEqual(['fusion', 'lowering', 'schedule', 'variants', 'wgsl', 'memory', 'artifact']);
    expect(outOfPlace[0]).toBe(0);
    expect(outOfPlace.at(-1)).toBeGreaterThan(0);
  });

  it('trainingGraph runs the graph passes and emitArtifact the rest: together they make compile\'s training program', () => {
    const m = modelFile('mlp-mnist');
    const passes: string[] = [];
    const { graph } = trainingGraph(m, { verify: true, dump: (stage) => passes.push(stage) });
    expect(passes).toEqual(STAGE_NAMES.slice(0, STAGE_NAMES.indexOf('fusion')));
    expect(emitArtifact(graph, { name: m.name, loss: m.loss! })).toEqual(compile(m).train);
  });
});
