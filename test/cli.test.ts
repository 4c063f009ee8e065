/**
 * @file The command line's errors: a bad path, a bad file or a bad flag prints one line naming the
 * problem and exits with code 2, never a stack trace; `compile` writes an artifact that `train` and
 * the runtime can load.
 */
import { mkdtempSync, readFileSync, readdirSync, writeFileSync, existsSync, openSync, closeSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { main } from '../src/cli.js';
import { parseBundle } from '../src/runtime/bundle.js';

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((s) => ((out += String(s)), true));
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((s) => ((err += String(s)), true));
  try {
    const code = await main(argv);
    return { code, out, err };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}

const tmp = mkdtempSync(join(tmpdir(), 'adjoint-cli-'));

describe('adjoint CLI errors', () => {
  const cases: [string, string[], string][] = [
    ['a missing file', ['compile', 'nope.json', '-o', tmp], 'adjoint: nope.json: no such file\n'],
    ['an unknown command', ['frobnicate'], 'adjoint: unknown command "frobnicate"'],
    ['an unknown flag', ['inspect', 'models/xor.json', '--colour'], 'adjoint: unknown flag --colour\n'],
    ['a flag without its value', ['compile', 'models/xor.json', '-o'], 'adjoint: flag -o needs a value\n'],
    ['a non-numeric epoch count', ['train', 'models/xor.json', '--epochs', 'ten'], 'adjoint: --epochs takes a whole number, got "ten"\n'],
    ['an unknown data set', ['train', 'models/mlp-mnist.json', '--data', 'cifar'], 'adjoint: --data: "cifar" is not a data set (mnist, text)\n'],
    ['a directory given as a model', ['inspect', 'models'], 'adjoint: models is a directory, not a model file\n'],
    ['an unknown adapter', ['inspect', 'models/xor.json', '--adapter', 'gpu0'], 'adjoint: --adapter: "gpu0" is not an adapter (default, swiftshader, lavapipe, or the path of a Vulkan ICD manifest *.json)\n'],
    ['an unknown pass to dump', ['inspect', 'models/xor.json', '--dump', 'nonsense'], 'adjoint: --dump: no pass named "nonsense"'],
  ];
  for (const [what, argv, message] of cases) {
    it(`${what}: one line, exit code 2`, async () => {
      const r = await run(...argv);
      expect(r.code).toBe(2);
      expect(r.err.startsWith(message), r.err).toBe(true);
      expect(r.err).not.toMatch(/\n\s+at /);
    });
  }

  it('a malformed model file: the loader\'s one line, exit code 2', async () => {
    const bad = join(tmp, 'bad.json');
    writeFileSync(bad, '{"version": 1, "nodes": [{"op": "relu", "inputs": ["h2"]}], "outputs": {}}');
    const r = await run('compile', bad, '-o', join(tmp, 'x'));
    expect(r.code).toBe(2);
    expect(r.err).toBe(`adjoint: ${bad}: nodes[0].inputs[0]: unknown value "h2"\n`);
  });

  it('every file of test/bad-models: exit code 2, one line, the loader\'s message, no shader written', async () => {
    const expected = JSON.parse(readFileSync('test/bad-models/expected.json', 'utf8')) as Record<string, string>;
    for (const f of readdirSync('test/bad-models').filter((x) => x !== 'expected.json')) {
      const path = `test/bad-models/${f}`;
      const out = join(tmp, `bad-${f}`);
      const r = await run('compile', path, '-o', out);
      expect(r.code, f).toBe(2);
      expect(r.err, f).toBe(`adjoint: test/bad-models/${expected[f]}\n`);
      expect(existsSync(out), f).toBe(false);
    }
  });

  it('a 100 MB model file is refused by its size, before it is read', async () => {
    const big = join(tmp, 'big.json');
    const fd = openSync(big, 'w');
    const chunk = Buffer.alloc(2 ** 20, 0x20);
    writeSync(fd, '{"version": 1, "nodes": [], "name": "');
    for (let i = 0; i < 100; i++) writeSync(fd, chunk);
    writeSync(fd, '"}');
    closeSync(fd);
    const r = await run('inspect', big);
    expect(r.code).toBe(2);
    expect(r.err).toBe(`adjoint: ${big}: the file is 100.0 MB, more than the 64.0 MB a model file may have (weights belong in a checkpoint)\n`);
  });

  it('compile writes an artifact the runtime loads, and inspect prints the figures and a pass', async () => {
    const out = join(tmp, 'xor');
    const r = await run('compile', 'models/xor.json', '-o', out);
    expect(r.code, r.err).toBe(0);
    expect(existsSync(join(out, 'manifest.json'))).toBe(true);
    const b = parseBundle((f) => (existsSync(join(out, f)) ? readFileSync(join(out, f), 'utf8') : undefined), out);
    expect(b.train!.dispatches.length).toBeGreaterThan(0);
    const i = await run('inspect', 'models/xor.json', '--dump', 'autodiff');
    expect(i.code).toBe(0);
    expect(i.out).toContain('== IR after autodiff');
    expect(i.out).toMatch(/temporaries: naive \d+ B, lower bound \d+ B, planned \d+ B/);
    expect(i.out).toMatch(/train step: \d+ dispatches per step/);
  });
});
