/**
 * @file The artifact on disk: a compiled model round-trips through its files, and a tampered,
 * truncated or foreign manifest is refused with an error naming the field.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { compile } from '../src/compile.js';
import { ArtifactError } from '../src/ir/errors.js';
import { loadModel } from '../src/ir/schema.js';
import { bundleFiles, parseBundle } from '../src/runtime/bundle.js';

const c = compile(loadModel(readFileSync('models/mlp-mnist.json', 'utf8'), 'mlp-mnist.json'));
const files = bundleFiles({ name: 'mlp-mnist', train: c.train!, forward: c.forward });
const read = (fs: Map<string, string>) => (f: string) => fs.get(f);

function tampered(edit: (m: { programs: { train: Record<string, unknown> & { dispatches: { shader: number; bindings: { arena: number; offset: number; bytes: number }[] }[] } } } & Record<string, unknown>) => void): Map<string, string> {
  const fs = new Map(files);
  const m = JSON.parse(fs.get('manifest.json')!);
  edit(m);
  fs.set('manifest.json', JSON.stringify(m));
  return fs;
}

describe('artifact files', () => {
  it('round-trip exactly', () => {
    const b = parseBundle(read(files), 'out');
    expect(b.train).toEqual(c.train);
    expect(b.forward).toEqual(c.forward);
  });

  const cases: [string, Map<string, string>, string][] = [
    ['a newer artifact version', tampered((m) => { m.version = 2; }), 'out/manifest.json: artifact version 2, this runtime reads version 1; recompile the model'],
    ['another format', tampered((m) => { m.format = 'onnx'; }), 'out/manifest.json: not an adjoint artifact (format "onnx")'],
    ['a dispatch naming no shader', tampered((m) => { m.programs.train.dispatches[0]!.shader = 999; }), 'out/manifest.json: programs.train.dispatches[0].shader: shader 999 does not exist'],
    ['a binding past its arena', tampered((m) => { m.programs.train.dispatches[1]!.bindings[0]!.bytes = 1 << 30; }), 'out/manifest.json: programs.train.dispatches[1].bindings[0]: region ends past arena'],
    ['a misaligned offset', tampered((m) => { m.programs.train.dispatches[1]!.bindings[0]!.offset = 4; }), 'out/manifest.json: programs.train.dispatches[1].bindings[0]: offset 4 is not aligned'],
    ['a field of the wrong type', tampered((m) => { m.programs.train.dispatches = 'x' as never; }), 'out/manifest.json: programs.train.dispatches: expected array'],
    ['a missing shader file', (() => { const fs = new Map(files); fs.delete('train-0.wgsl'); return fs; })(), 'out: missing shader file train-0.wgsl'],
    ['a truncated manifest', (() => { const fs = new Map(files); fs.set('manifest.json', files.get('manifest.json')!.slice(0, 100)); return fs; })(), 'out/manifest.json: invalid JSON'],
    ['no manifest', new Map(), 'out: no manifest.json'],
  ];
  for (const [what, fs, message] of cases) {
    it(`refuses ${what}`, () => {
      let err: unknown;
      try {
        parseBundle(read(fs), 'out');
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ArtifactError);
      expect((err as Error).message.startsWith(message), (err as Error).message).toBe(true);
      expect((err as Error).message).not.toContain('\n');
    });
  }
});
