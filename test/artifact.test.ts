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
    // Kernel variants (runtime/tune.ts): the default first, every shader present, names unique.
    ['a variant naming no shader', tampered((m) => { (m.programs.train.dispatches[0] as unknown as { variants: { shader: number }[] }).variants[1]!.shader = 999; }), 'out/manifest.json: programs.train.dispatches[0].variants[1].shader: shader 999 does not exist'],
    ['variants not led by the default', tampered((m) => { const v = (m.programs.train.dispatches[0] as unknown as { variants: unknown[] }).variants; v.reverse(); }), "out/manifest.json: programs.train.dispatches[0].variants[0]: is not the default"],
    ['a variant named twice', tampered((m) => { const v = (m.programs.train.dispatches[0] as unknown as { variants: { name: string }[] }).variants; v[1]!.name = v[0]!.name; }), 'out/manifest.json: programs.train.dispatches[0].variants[1].name: "reg8x8" appears twice'],
    ['two quick variants', tampered((m) => { const v = (m.programs.train.dispatches[0] as unknown as { variants: { quick?: true }[] }).variants; v[0]!.quick = true; v[1]!.quick = true; }), 'out/manifest.json: programs.train.dispatches[0].variants: has more than one quick variant'],
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

describe('nothing from a model file reaches shader text', () => {
  it('names, labels and the model name appear in no WGSL module, fused or not', () => {
    // Every string a model file can carry into the compiler, made distinctive.
    const json = JSON.parse(readFileSync('models/mlp-mnist.json', 'utf8')) as Record<string, unknown> & {
      inputs: { name: string }[]; params: { name: string }[]; nodes: { name: string; label?: string }[];
    };
    const strings: string[] = [];
    const mark = (s: string) => (strings.push(`zq${strings.length}q${s.replace(/[^A-Za-z0-9_]/g, '')}`), strings.at(-1)!);
    json.name = mark('model');
    const rename = new Map<string, string>();
    for (const x of [...json.inputs, ...json.params, ...json.nodes]) rename.set(x.name, mark(x.name));
    const text = JSON.stringify(json).replace(/"([A-Za-z0-9_./-]+)"(?!:)/g, (m, s: string) => (rename.has(s) ? `"${rename.get(s)}"` : m));
    // Output names are keys, and the loss names an output: rename those too.
    const renamed = JSON.parse(text) as { outputs: Record<string, string>; loss: string };
    const outNames = new Map(Object.keys(renamed.outputs).map((k) => [k, mark(k)]));
    renamed.outputs = Object.fromEntries(Object.entries(renamed.outputs).map(([k, v]) => [outNames.get(k)!, v]));
    renamed.loss = outNames.get(json.loss as string)!;
    const model = loadModel(JSON.stringify(renamed), 'renamed.json');
    for (const fuse of [true, false]) {
      const out = compile(model, { fuse });
      for (const a of [out.train!, out.forward]) {
        for (const wgsl of a.shaders) for (const s of strings) expect(wgsl).not.toContain(s);
        for (const d of a.dispatches) for (const s of strings) expect(d.label).not.toContain(s);
      }
    }
    expect(strings.length).toBeGreaterThan(10);
  });
});
