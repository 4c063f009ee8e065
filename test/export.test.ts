/**
 * @file `adjoint export` without an adapter: an old ADJCKPT1 checkpoint converted to a safetensors
 * weights file with the shapes its model gives (the old format has none), values bit for bit, and
 * the usage errors of the command (one line, exit code 2).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadWeightsFile } from '../src/train/checkpoint-file.js';
import { runCli } from './cli-run.js';

const run = runCli;

const dir = mkdtempSync(join(tmpdir(), 'adjoint-export-'));
const LEGACY = 'test/fixtures/safetensors/legacy-adjckpt1.ckpt';

/** The model the legacy fixture was saved from: w[2,2] and b[2], SGD with momentum. */
const TINY = {
  version: 1, name: 'tiny',
  inputs: [{ name: 'x', shape: [1, 2] }, { name: 'y', shape: [1], dtype: 'i32' }],
  params: [{ name: 'w', shape: [2, 2] }, { name: 'b', shape: [2], init: { kind: 'zeros' } }],
  nodes: [{ name: 'logits', op: 'linear', inputs: ['x', 'w', 'b'] }, { name: 'loss', op: 'softmax_cross_entropy', inputs: ['logits', 'y'] }],
  outputs: { loss: 'loss', logits: 'logits' }, loss: 'loss', optimizer: { kind: 'sgd', lr: 0.1, momentum: 0.9 },
};

describe('adjoint export', () => {
  it('converts an old ADJCKPT1 checkpoint to safetensors weights, shaped by its model', async () => {
    const model = join(dir, 'tiny.json');
    writeFileSync(model, JSON.stringify(TINY));
    const r = await run('export', LEGACY, '--model', model, '-o', join(dir, 'w.safetensors'));
    expect(r.code, r.err).toBe(0);
    expect(r.out).toBe(`wrote ${join(dir, 'w.safetensors')}: 2 tensors, 6 values (tiny, step 62)\n`);
    const w = loadWeightsFile(join(dir, 'w.safetensors'));
    expect(w.kind).toBe('weights');
    expect(w.shapes).toEqual(new Map([['w', [2, 2]], ['b', [2]]]));
    expect(Array.from(w.tensors.get('w')!)).toEqual([0.5, -1.25, 3, 1e-45].map(Math.fround));
    expect(Array.from(w.tensors.get('b')!)).toEqual([7, 8]);
    expect(w.tensors.has('w@m')).toBe(false);
  });

  const cases: [string, string[], RegExp][] = [
    ['no -o', ['export', LEGACY], /^adjoint: export needs a checkpoint, model or artifact directory and -o <weights\.safetensors>\n$/],
    ['a missing file', ['export', 'nope.safetensors', '-o', 'x.safetensors'], /^adjoint: nope\.safetensors: no such file or directory\n$/],
    ['an old checkpoint without --model', ['export', LEGACY, '-o', 'x.safetensors'], /^adjoint: .*an old ADJCKPT1 checkpoint has no shapes: add --model <model\|artifact-dir> to export it/],
    ['a model that does not fit', ['export', LEGACY, '--model', 'models/logreg-mnist.json', '-o', 'x.safetensors'], /^adjoint: .*legacy-adjckpt1\.ckpt: tensor "w" is 4 values, the model's parameter is \[784,10\]\n$/],
    ['not a weights file', ['export', 'README.md', '-o', 'x.safetensors'], /^adjoint: README\.md: not a safetensors file/],
  ];
  for (const [what, argv, message] of cases) {
    it(`${what}: one line, exit code 2`, async () => {
      const r = await run(...argv);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(message);
    });
  }
});
