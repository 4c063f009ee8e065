/**
 * @file Weights in and out of `adjoint train` through the command line, on a real adapter, bit for
 * bit (the first run also writes the HTML report): a trained checkpoint exported (`adjoint export`) holds exactly its parameters; those weights
 * given to `train --init` are exactly what the program starts from (a run of 0 steps checkpoints
 * them back); weights written by the Python `safetensors` package (test/fixtures/safetensors) go
 * in and come back out unchanged; a model's exported initial weights are the seeded ones the
 * program makes. A file that does not fit the model (a missing tensor, a wrong shape, a weights
 * file given as a checkpoint) is refused with one line and exit code 2.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeWeightsFile, encodeCheckpoint } from '../../src/runtime/checkpoint.js';
import { loadCheckpointFile, loadWeightsFile } from '../../src/train/checkpoint-file.js';
import { writeFileSync } from 'node:fs';
import { runCli } from '../cli-run.js';

const run = runCli;

const dir = mkdtempSync(join(tmpdir(), 'adjoint-weights-'));
const at = (f: string) => join(dir, f);
const PY_LOGREG = 'test/fixtures/safetensors/python-logreg.safetensors';
const bits = (a: Float32Array | Int32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('hex');

/** Runs the CLI and expects success. */
async function ok(...argv: string[]): Promise<string> {
  const r = await run(...argv);
  expect(r.code, r.err).toBe(0);
  return r.out;
}

/** Runs the CLI and expects exit code 2 with one line on stderr. */
async function refused(...argv: string[]): Promise<string> {
  const r = await run(...argv);
  expect(r.code, r.err).toBe(2);
  expect(r.err.trimEnd().split('\n').filter((l) => l.startsWith('adjoint: ')), r.err).toHaveLength(1);
  return r.err.split('\n').find((l) => l.startsWith('adjoint: '))!;
}

describe('adjoint export and train --init round-trip exactly', () => {
  it('checkpoint -> export -> --init -> checkpoint: the parameters bit for bit, the optimizer state fresh', async () => {
    const trained = await ok('train', 'models/mlp-mnist.json', '--epochs', '1', '--steps-per-epoch', '5', '--checkpoint', at('a.safetensors'), '--report', at('a.html'));
    // The CLI's report (rendered in a browser by test/gpu/report.test.ts): the run's settings and figures.
    expect(trained).toContain(`report: ${at('a.html')}`);
    const html = readFileSync(at('a.html'), 'utf8');
    expect(html).toContain('<title>mlp-mnist: training report</title>');
    expect(html).toContain(`adjoint train models/mlp-mnist.json --epochs 1 --steps-per-epoch 5 --checkpoint ${at('a.safetensors')}`);
    expect(html).toContain('<th>optimizer</th><td>sgd+momentum</td>');
    const a = loadCheckpointFile(at('a.safetensors'));
    expect(a.step).toBe(5);
    expect(a.params).toEqual(['w1', 'b1', 'w2', 'b2']);
    expect(a.optimizer).toBe('sgd+momentum');
    expect([...a.tensors.keys()].sort()).toEqual(['b1', 'b1@m', 'b2', 'b2@m', 'w1', 'w1@m', 'w2', 'w2@m']);

    const out = await ok('export', at('a.safetensors'), '-o', at('w.safetensors'));
    expect(out).toContain('4 tensors, 203,530 values (mlp-mnist, step 5)');
    const w = loadWeightsFile(at('w.safetensors'));
    expect(w.kind).toBe('weights');
    expect([...w.tensors.keys()].sort()).toEqual(['b1', 'b2', 'w1', 'w2']);
    expect(w.shapes!.get('w1')).toEqual([784, 256]);
    for (const [name, t] of w.tensors) expect(bits(t), name).toBe(bits(a.tensors.get(name)!));

    // 0 steps: the checkpoint holds what the program started from.
    await ok('train', 'models/mlp-mnist.json', '--epochs', '1', '--steps-per-epoch', '0', '--init', at('w.safetensors'), '--checkpoint', at('b.safetensors'));
    const b = loadCheckpointFile(at('b.safetensors'));
    for (const [name, t] of w.tensors) expect(bits(b.tensors.get(name)!), name).toBe(bits(t));
    expect(b.tensors.get('w1@m')!.every((v) => v === 0)).toBe(true);
  });

  it('weights Python wrote go into the program and come back out unchanged', async () => {
    await ok('train', 'models/logreg-mnist.json', '--epochs', '1', '--steps-per-epoch', '0', '--init', PY_LOGREG, '--checkpoint', at('c.safetensors'));
    await ok('export', at('c.safetensors'), '-o', at('c-weights.safetensors'));
    const py = decodeWeightsFile(new Uint8Array(readFileSync(PY_LOGREG)), PY_LOGREG);
    const back = loadWeightsFile(at('c-weights.safetensors'));
    for (const name of ['w', 'b']) expect(bits(back.tensors.get(name)!), name).toBe(bits(py.tensors.get(name)!));
    // And they are the weights Python's formula gives: the model really starts from them.
    expect(Array.from(back.tensors.get('b')!)).toEqual(Array.from({ length: 10 }, (_, j) => Math.fround(j / 10)));
  });

  it("a model's exported initial weights are the seeded ones the program makes", async () => {
    await ok('export', 'models/mlp-mnist.json', '--seed', '3', '-o', at('init.safetensors'));
    await ok('train', 'models/mlp-mnist.json', '--seed', '3', '--epochs', '1', '--steps-per-epoch', '0', '--checkpoint', at('d.safetensors'));
    const w = loadWeightsFile(at('init.safetensors'));
    const d = loadCheckpointFile(at('d.safetensors'));
    for (const [name, t] of w.tensors) expect(bits(t), name).toBe(bits(d.tensors.get(name)!));
  });

  it('a file that does not fit the model is refused in one line, exit 2', async () => {
    expect(await refused('train', 'models/mlp-mnist.json', '--init', PY_LOGREG)).toBe(
      `adjoint: ${PY_LOGREG}: no tensor "w1" (the model's parameter w1[784,256]); the file has b, w`,
    );
    writeFileSync(at('shape.safetensors'), encodeCheckpoint({ step: 0, tensors: new Map([['w', new Float32Array(7850)], ['b', new Float32Array(10)]]), shapes: new Map([['w', [785, 10]]]) }, 'weights'));
    expect(await refused('train', 'models/logreg-mnist.json', '--init', at('shape.safetensors'))).toBe(
      `adjoint: ${at('shape.safetensors')}: tensor "w" is [785,10], the model's parameter is [784,10]`,
    );
    writeFileSync(at('extra.safetensors'), encodeCheckpoint({ step: 0, tensors: new Map([['w', new Float32Array(7840)], ['b', new Float32Array(10)], ['bias2', new Float32Array(1)]]), shapes: new Map([['w', [784, 10]]]) }, 'weights'));
    expect(await refused('train', 'models/logreg-mnist.json', '--init', at('extra.safetensors'))).toBe(
      `adjoint: ${at('extra.safetensors')}: tensor "bias2" is not a parameter of the model`,
    );
    expect(await refused('train', 'models/logreg-mnist.json', '--checkpoint', PY_LOGREG)).toBe(
      `adjoint: ${PY_LOGREG}: a safetensors file from another tool, not an adjoint checkpoint: start from its weights with --init`,
    );
    expect(await refused('export', 'test/fixtures/safetensors/legacy-adjckpt1.ckpt', '-o', at('x.safetensors'))).toMatch(
      /an old ADJCKPT1 checkpoint has no shapes: add --model <model\|artifact-dir> to export it/,
    );
  });
});
