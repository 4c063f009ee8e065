/**
 * @file `npm run bench`: the benchmark (index.ts) on every adapter the machine offers, one child
 * process per adapter, one after the other (two at once would share the CPU). Each child gets its
 * adapter by `ADJOINT_ADAPTER` and `VK_ICD_FILENAMES` (Dawn reads the Vulkan driver list once per
 * GPU object, and TF.js and jax-js make their own devices, so one process cannot serve two), and
 * `MESA_SHADER_CACHE_DISABLE=true` unless set, so that lavapipe's first steps are cold (Mesa keeps
 * compiled shaders on disk between runs). Each child prints its tables and writes
 * bench/results/latest-<adapter>.md and .jsonl.
 *
 * Which adapters: `--adapter a,b` (or BENCH_ADAPTERS=a,b, or ADJOINT_ADAPTER=a) names them; otherwise every one present
 * of SwiftShader, lavapipe and, when it is neither, the adapter Dawn offers first (a real GPU).
 * Other arguments and every BENCH_* variable pass through to each child.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { adapterIcd, adapterLabel } from '../src/runtime/device.js';

const log = (msg: string): void => void process.stderr.write(`bench: ${msg}\n`);

/** The adapter Dawn offers first with the environment as it is, by its short name; null if none. */
async function defaultAdapter(): Promise<string | null> {
  process.env.XDG_RUNTIME_DIR ??= (await import('node:os')).tmpdir();
  const { create } = await import('webgpu');
  const adapter = await create([]).requestAdapter();
  return adapter ? adapterLabel(adapter.info) : null;
}

/** The adapters to run: asked for, or every one present. */
async function adapters(asked: string | undefined): Promise<string[]> {
  if (asked) return asked.split(',').map((s) => s.trim()).filter((s) => s !== '');
  const found: string[] = [];
  for (const name of ['swiftshader', 'lavapipe']) {
    try {
      await adapterIcd(name);
      found.push(name);
    } catch (e) {
      log(`${name} left out: ${(e as Error).message}`);
    }
  }
  const first = await defaultAdapter();
  if (first !== null && !found.includes(first)) found.push('default');
  return found;
}

/** Runs index.js on one adapter; resolves with its exit code. */
async function runOne(adapter: string, args: readonly string[], command: string): Promise<number> {
  const icd = await adapterIcd(adapter);
  const env: NodeJS.ProcessEnv = { ...process.env, ADJOINT_ADAPTER: adapter, BENCH_COMMAND: command };
  if (icd !== null) {
    env.VK_ICD_FILENAMES = icd;
    delete env.VK_DRIVER_FILES;
  }
  env.MESA_SHADER_CACHE_DISABLE ??= 'true';
  const script = fileURLToPath(new URL(`./index${import.meta.url.endsWith('.mjs') ? '.mjs' : '.js'}`, import.meta.url));
  const child = spawn(process.execPath, [script, ...args], { stdio: 'inherit', env });
  return new Promise((resolve) => {
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
    child.on('error', (e) => {
      log(`${adapter}: cannot start ${script}: ${e.message}`);
      resolve(1);
    });
  });
}

async function main(): Promise<number> {
  const args: string[] = [];
  let asked = process.env.BENCH_ADAPTERS ?? process.env.ADJOINT_ADAPTER;
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--adapter') asked = argv[++i];
    else if (a.startsWith('--adapter=')) asked = a.slice('--adapter='.length);
    else args.push(a);
  }
  const list = await adapters(asked);
  if (list.length === 0) {
    log('no adapter found: install a Vulkan driver (see README, "Adapters")');
    return 2;
  }
  log(`adapters: ${list.join(', ')} (one process each, one after the other)`);
  const knobs = ['BENCH_QUICK', 'BENCH_WORKLOADS', 'BENCH_FUSION', 'BENCH_AGREE'].filter((k) => process.env[k] !== undefined).map((k) => `${k}=${process.env[k]}`);
  const npm = process.env.npm_lifecycle_event;
  const base = npm === 'bench' || npm === 'bench:agree' ? `npm run ${npm}` : `node ${process.argv[1] ?? 'bench/all.js'}`;
  const codes: string[] = [];
  let worst = 0;
  for (const adapter of list) {
    log(`=== ${adapter}`);
    const t0 = performance.now();
    const code = await runOne(adapter, args, [...knobs, base, '--adapter', adapter].join(' '));
    codes.push(`${adapter}: ${code === 0 ? 'ok' : `exit ${code}`} in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
    worst = Math.max(worst, code);
  }
  log(codes.join('; '));
  return worst;
}

process.exitCode = await main();
