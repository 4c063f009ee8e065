/**
 * @file The command line's errors: a bad path, a bad file or a bad flag prints one line naming the
 * problem and exits with code 2, never a stack trace; `compile` writes an artifact that `train` and
 * the runtime can load.
 */
import { mkdtempSync, mkdirSync, readFileSync, readdirSync, writeFileSync, existsSync, openSync, closeSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseBundle } from '../src/runtime/bundle.js';
import { runCli } from './cli-run.js';

const run = runCli;

const tmp = mkdtempSync(join(tmpdir(), 'adjoint-cli-'));

describe('adjoint CLI errors', () => {
  const cases: [string, string[], string][] = [
    ['a missing file', ['compile', 'nope.json', '-o', tmp], 'adjoint: nope.json: no such file\n'],
    ['an unknown command', ['frobnicate'], 'adjoint: unknown command "frobnicate"'],
    ['an unknown flag', ['inspect', 'models/xor.json', '--colour'], 'adjoint: unknown flag --colour for inspect (adjoint inspect --help)\n'],
    ['an unknown short flag', ['train', 'models/xor.json', '-x'], 'adjoint: unknown flag -x for train (adjoint train --help)\n'],
    ['a flag without its value', ['compile', 'models/xor.json', '-o'], 'adjoint: flag -o needs a value\n'],
    ['a flag whose value is the next flag', ['compile', 'models/xor.json', '-o', '--device-limits'], 'adjoint: flag -o needs a value\n'],
    ['a value given to a switch', ['compile', 'models/xor.json', '-o', tmp, '--device-limits=yes'], 'adjoint: flag --device-limits takes no value\n'],
    ['a second model', ['inspect', 'models/xor.json', 'models/mlp-mnist.json'], 'adjoint: inspect takes one model file or an artifact directory, got also "models/mlp-mnist.json"\n'],
    ['no model', ['train'], 'adjoint: train needs a model file or an artifact directory (adjoint train --help)\n'],
    ['compile without -o', ['compile', 'models/xor.json'], 'adjoint: compile needs -o <dir> (adjoint compile --help)\n'],
    ['a non-numeric epoch count', ['train', 'models/xor.json', '--epochs', 'ten'], 'adjoint: --epochs takes a whole number, got "ten"\n'],
    ['an unknown data set', ['train', 'models/mlp-mnist.json', '--data', 'cifar'], 'adjoint: --data: "cifar" is not a data set (mnist, text)\n'],
    ['a directory given as a model', ['inspect', 'models'], 'adjoint: models is a directory, not a model file or an artifact directory (no manifest.json)\n'],
    ['an unknown adapter', ['inspect', 'models/xor.json', '--adapter', 'gpu0'], 'adjoint: --adapter: "gpu0" is not an adapter (default, swiftshader, lavapipe, or the path of a Vulkan ICD manifest *.json)\n'],
    ['an unknown stage to dump', ['inspect', 'models/xor.json', '--dump', 'nonsense'],
      'adjoint: --dump: no stage named "nonsense" (stages: mode, simplify-forward, autodiff, optimizer, simplify, fusion, lowering, schedule, variants, wgsl, memory, artifact, all)\n'],
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
    expect(i.out).toContain('== after autodiff (train program)\n');
    expect(i.out).toMatch(/temporaries: naive \d+ B >= planned \d+ B >= lower bound \d+ B/);
    expect(i.out).toMatch(/train step: \d+ dispatches per step/);
  });

  it('inspect --dump all prints every stage of both programs, plans as text', async () => {
    const r = await run('inspect', 'models/xor.json', '--dump', 'all');
    expect(r.code, r.err).toBe(0);
    const headers = r.out.split('\n').filter((l) => l.startsWith('== '));
    const forward = ['mode', 'simplify', 'fusion', 'lowering', 'schedule', 'variants', 'wgsl', 'memory', 'artifact'];
    const train = ['mode', 'simplify-forward', 'autodiff', 'optimizer', 'simplify', 'fusion', 'lowering', 'schedule', 'variants', 'wgsl', 'memory', 'artifact'];
    expect(headers).toEqual([...forward.map((s) => `== after ${s} (forward program)`), ...train.map((s) => `== after ${s} (train program)`)]);
    const section = (stage: string) => r.out.split(`== after ${stage} (train program)\n`)[1]!.split('\n== ')[0]!;
    expect(section('fusion')).toMatch(/^materialized: .*\nin place: .* over .*\nk0 [a-z]+:[a-z_0-9]+/);
    expect(section('schedule')).toMatch(/^k0 [a-z_0-9+]+: (map|reduce|matmul|rows) \[[\d,]+\].*; nodes [a-z ]+; reads [a-z ]+; writes [a-z ]+/);
    expect(section('variants')).toMatch(/^k0 [a-z_0-9+]+: [a-z0-9]+/);
    expect(section('wgsl')).toMatch(/^dispatch 0 [^:\n]+: shader 0 grid \d+x\d+x\d+/);
    expect(section('wgsl')).toContain('-- shader 0\n');
    expect(section('wgsl')).toContain('@compute');
    expect(section('memory')).toMatch(/^arena 0: (input|param|state) \d+ B\n/);
    expect(section('memory')).toMatch(/temporaries: naive \d+ B >= planned \d+ B >= lower bound \d+ B/);
    expect(JSON.parse(section('artifact').split('\n}\n')[0]! + '\n}').dispatches.length).toBeGreaterThan(0);
  });

  it('inspect --dump of a training stage on a model without a loss says so', async () => {
    const m = JSON.parse(readFileSync('models/xor.json', 'utf8'));
    delete m.loss;
    delete m.optimizer;
    const path = join(tmp, 'forward-only.json');
    writeFileSync(path, JSON.stringify(m));
    const r = await run('inspect', path, '--dump', 'autodiff');
    expect(r.code, r.err).toBe(0);
    expect(r.err).toMatch(/^note: --dump autodiff: the stage runs only in the training program/);
    expect(r.out).not.toContain('== after');
  });
});

describe('adjoint CLI conventions', () => {
  it('--help lists every command; each command\'s --help lists its flags and the exit codes', async () => {
    const h = await run('--help');
    expect(h.code).toBe(0);
    for (const cmd of ['compile', 'inspect', 'train', 'export']) expect(h.out).toMatch(new RegExp(`^  ${cmd} +\\S`, 'm'));
    expect(h.out).toContain('exit codes:\n  0  ok\n  1  failure: ');
    const flags: Record<string, string[]> = {
      compile: ['-o, --out <dir>', '--device-limits'],
      inspect: ['--dump <stage>'],
      train: ['--data <name>', '--epochs <N>', '--seed <N>', '--steps-per-epoch <N>', '--read-every <N>', '--checkpoint <file.safetensors>', '--init <weights.safetensors>', '--report <file.html>'],
      export: ['-o, --out <weights.safetensors>', '--model <model|artifact-dir>', '--seed <N>'],
    };
    for (const [cmd, list] of Object.entries(flags)) {
      const r = await run(cmd, '--help');
      expect(r.code, cmd).toBe(0);
      expect(r.out.startsWith(`usage: adjoint ${cmd} `), cmd).toBe(true);
      for (const f of [...list, '-h, --help']) expect(r.out, `${cmd} ${f}`).toContain(f);
      expect(r.out).toContain('\n  2  usage or model error: ');
      expect((await run('help', cmd)).out).toBe(r.out);
      expect((await run(cmd, '-h')).out).toBe(r.out);
    }
  });

  it('inspect --help defines the three memory figures', async () => {
    const r = await run('inspect', '--help');
    expect(r.out).toContain('naive >= planned >= lower bound');
    for (const term of ['  naive ', '  planned ', '  lower bound ']) expect(r.out).toContain(term);
  });

  it('--version prints the package version; no command prints the help on stderr with exit code 2', async () => {
    const v = await run('--version');
    expect(v.code).toBe(0);
    expect(v.out).toBe(`${JSON.parse(readFileSync('package.json', 'utf8')).version}\n`);
    const none = await run();
    expect(none.code).toBe(2);
    expect(none.err).toContain('usage: adjoint <command>');
  });
});

describe('adjoint compile -o', () => {
  const files = (dir: string) => readdirSync(dir).sort();
  const manifestFiles = (dir: string) => {
    const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { programs: Record<string, { shaders: string[] }> };
    return ['manifest.json', ...Object.values(m.programs).flatMap((p) => p.shaders)].sort();
  };

  it('a directory used before by a bigger model ends up holding exactly the new artifact', async () => {
    const out = join(tmp, 'reused');
    expect((await run('compile', 'models/lenet-mnist.json', '-o', out)).code).toBe(0);
    const before = files(out).length;
    const r = await run('compile', 'models/xor.json', '-o', out);
    expect(r.code, r.err).toBe(0);
    expect(files(out)).toEqual(manifestFiles(out));
    expect(files(out).length).toBeLessThan(before);
    expect(r.out).toBe(`wrote ${out}/manifest.json and ${files(out).length - 1} shaders (train + forward; ${parseBundle((f) => (existsSync(join(out, f)) ? readFileSync(join(out, f), 'utf8') : undefined)).train!.dispatches.length} dispatches per step)\n`);
    // Nothing left beside it: no temporary or old directory.
    expect(readdirSync(tmp).filter((f) => f.includes('.adjoint-'))).toEqual([]);
  });

  it('an empty directory is filled', async () => {
    const out = join(tmp, 'empty');
    mkdirSync(out);
    expect((await run('compile', 'models/xor.json', '-o', out)).code).toBe(0);
    expect(files(out)).toEqual(manifestFiles(out));
  });

  it('a directory that holds something else is refused with one line, exit code 2, and left as it was', async () => {
    const cases: [string, (d: string) => void, string][] = [
      ['other files', (d) => writeFileSync(join(d, 'notes.txt'), 'mine'), 'holds files and no manifest.json: not an adjoint artifact'],
      ['another tool\'s manifest', (d) => writeFileSync(join(d, 'manifest.json'), '{"format": "webpack"}'), 'its manifest.json is not an adjoint artifact\'s'],
      ['an artifact and a file of its own', (d) => {
        writeFileSync(join(d, 'manifest.json'), '{"format": "adjoint-artifact"}');
        writeFileSync(join(d, 'train-0.wgsl'), '');
        writeFileSync(join(d, 'thesis.tex'), 'mine');
      }, '"thesis.tex" there is not part of an adjoint artifact'],
      ['an artifact and a folder', (d) => {
        writeFileSync(join(d, 'manifest.json'), '{"format": "adjoint-artifact"}');
        mkdirSync(join(d, 'forward-9.wgsl'));
      }, '"forward-9.wgsl" there is not part of an adjoint artifact'],
    ];
    for (const [what, fill, why] of cases) {
      const out = mkdtempSync(join(tmp, 'taken-'));
      fill(out);
      const before = files(out);
      const r = await run('compile', 'models/xor.json', '-o', out);
      expect(r.code, what).toBe(2);
      expect(r.err, what).toBe(`adjoint: -o ${out}: ${why}, so it is not replaced (remove it or choose another directory)\n`);
      expect(files(out), what).toEqual(before);
    }
    const file = join(tmp, 'a-file');
    writeFileSync(file, 'x');
    const r = await run('compile', 'models/xor.json', '-o', file);
    expect([r.code, r.err]).toEqual([2, `adjoint: -o ${file}: exists and is not a directory\n`]);
  });

  it('a directory that cannot be made is a failure, not a usage error: one line, exit code 1', async () => {
    const file = join(tmp, 'not-a-folder');
    writeFileSync(file, 'x');
    const r = await run('compile', 'models/xor.json', '-o', join(file, 'out'));
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^adjoint: E[A-Z]+: [^\n]*'[^']*not-a-folder[^']*'\n$/);
  });
});

describe('adjoint inspect', () => {
  /** The figure lines (everything after the first line) of `inspect`. */
  const figureLines = (out: string) => out.split('\n').slice(1).join('\n');

  it('takes an artifact directory and prints the same figures as for the model', async () => {
    const out = join(tmp, 'inspect-mlp');
    expect((await run('compile', 'models/mlp-mnist.json', '-o', out)).code).toBe(0);
    const fromDir = await run('inspect', out);
    expect(fromDir.code, fromDir.err).toBe(0);
    expect(fromDir.out.split('\n')[0]).toBe(`artifact mlp-mnist (${out})`);
    const fromModel = await run('inspect', 'models/mlp-mnist.json');
    expect(figureLines(fromDir.out)).toBe(figureLines(fromModel.out));
    const dump = await run('inspect', out, '--dump', 'autodiff');
    expect([dump.code, dump.err]).toEqual([2, `adjoint: --dump needs a model file: the artifact ${out} holds compiled programs, not IR\n`]);
    const notArtifact = await run('inspect', 'test');
    expect(notArtifact.code).toBe(2);
    expect(notArtifact.err).toBe('adjoint: test is a directory, not a model file or an artifact directory (no manifest.json)\n');
  });

  it('the memory figures read naive >= planned >= lower bound for every model of the zoo', async () => {
    for (const f of readdirSync('models').filter((x) => /\.(json|ts)$/.test(x))) {
      const r = await run('inspect', `models/${f}`);
      expect(r.code, f).toBe(0);
      const lines = [...r.out.matchAll(/temporaries: naive (\d+) B >= planned (\d+) B >= lower bound (\d+) B/g)];
      expect(lines.length, f).toBeGreaterThan(0);
      for (const [, naive, planned, bound] of lines) {
        expect(Number(naive), f).toBeGreaterThanOrEqual(Number(planned));
        expect(Number(planned), f).toBeGreaterThanOrEqual(Number(bound));
      }
    }
  });
});
