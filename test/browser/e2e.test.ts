/**
 * @file End to end in a real browser: models/mlp-mnist.json is compiled with compile(), and its
 * artifact is written to disk with a fixed batch of 128 real MNIST digits, served from 127.0.0.1
 * with the example page (`examples/browser`) and the runtime's browser bundle, and trained for 5
 * steps by headless Chromium on `navigator.gpu` (SwiftShader here). The same artifact, seed and
 * batch run for 5 steps in Node on Dawn, and the two loss curves must agree within 1e-4 relative
 * at every step. The first loss is also checked against the reference interpreter (float64), and
 * the loss must fall on the repeated batch.
 * Chromium is required: without `/usr/bin/chromium` this test fails and says what to install.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, describe, expect, it } from 'vitest';
import { compile } from '../../src/compile.js';
import { loadMnist, MNIST_PIXELS } from '../../src/data/mnist.js';
import { evaluate } from '../../src/ir/interp.js';
import type { Model } from '../../src/ir/model.js';
import { loadModel } from '../../src/ir/schema.js';
import { tensor, type Tensor } from '../../src/ir/tensor.js';
import { bundleFiles, type Bundle } from '../../src/runtime/bundle.js';
import { getDevice, loadArtifact } from '../../src/runtime/index.js';
import { initValues } from '../../src/runtime/init.js';
import { buildRuntimeBundle, REPO_ROOT } from './bundle.js';
import { serveStatic, type StaticServer } from './static-server.js';

const CHROMIUM = '/usr/bin/chromium';
/** The launch flags verified on this machine (see /work/shared/DESIGN.md). */
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--enable-unsafe-webgpu',
  '--enable-features=Vulkan',
  '--use-webgpu-adapter=swiftshader',
  '--use-angle=swiftshader',
];
const STEPS = 5;
const SEED = 0;
const BATCH = 128;
const REL_TOL = 1e-4;
const PAGE_TIMEOUT_MS = 240_000;

/** What the example page exposes on `window.__adjoint`. */
interface PageResult {
  readonly losses: number[];
  readonly stepMs: number[];
  readonly loadMs: number;
  readonly adapter: string;
  readonly done: boolean;
  readonly error: string | null;
}

/** models/mlp-mnist.json compiled: its training program and its forward graph (for the reference). */
async function mlpMnist(): Promise<{ model: Model; bundle: Bundle }> {
  const file = join(REPO_ROOT, 'models/mlp-mnist.json');
  const model = loadModel(await readFile(file, 'utf8'), file);
  const { train, forward } = compile(model);
  if (!train) throw new Error(`${file}: compile() gave no training program`);
  return { model, bundle: { name: model.name, train, forward } };
}

/** The first 128 digits of the fixed MNIST training split. */
function batch(): { x: Float32Array; y: Int32Array } {
  const { train } = loadMnist();
  return { x: train.images.slice(0, BATCH * MNIST_PIXELS), y: train.labels.slice(0, BATCH) };
}

function bytesOf(a: Float32Array | Int32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function relErr(got: number, want: number): number {
  return Math.abs(got - want) / Math.max(Math.abs(want), 1e-12);
}

let tmp: string;
let server: StaticServer | undefined;
let browser: Browser | undefined;

afterAll(async () => {
  await browser?.close();
  await server?.close();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('browser end to end', () => {
  it(`trains ${STEPS} steps in headless Chromium with the same losses as Node`, async () => {
    // Checked in the test itself (not a hook) so that a missing browser counts as a failed test.
    if (!existsSync(CHROMIUM)) {
      throw new Error(`${CHROMIUM} not found: the browser end-to-end test needs Debian's Chromium (apt-get install -y chromium)`);
    }
    const t0 = performance.now();
    const { model, bundle } = await mlpMnist();
    const train = bundle.train!;
    const { x, y } = batch();

    tmp = await mkdtemp(join(tmpdir(), 'adjoint-browser-'));
    await mkdir(join(tmp, 'artifact'));
    await mkdir(join(tmp, 'data'));
    for (const [file, text] of bundleFiles(bundle)) await writeFile(join(tmp, 'artifact', file), text);
    await writeFile(join(tmp, 'data', 'x.f32'), bytesOf(x));
    await writeFile(join(tmp, 'data', 'y.i32'), bytesOf(y));
    const runtime = await buildRuntimeBundle();
    server = await serveStatic(new Map([
      ['/examples/browser/', { dir: join(REPO_ROOT, 'examples/browser') }],
      ['/dist/browser/', { files: new Map([['adjoint-runtime.js', runtime.code]]) }],
      ['/artifact/', { dir: join(tmp, 'artifact') }],
      ['/data/', { dir: join(tmp, 'data') }],
    ]));
    const tPrep = performance.now();

    // Node: the same artifact, seed and batch on Dawn.
    const device = await getDevice({ quiet: true });
    const program = await loadArtifact(device, train, { seed: SEED });
    const nodeLosses: number[] = [];
    for (let i = 0; i < STEPS; i++) {
      const read = await program.step({ x, y }, ['loss']);
      nodeLosses.push(read!.get('loss')![0]!);
    }
    program.destroy();
    device.destroy();
    const tNode = performance.now();

    // The browser.
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
    const page = await browser.newPage();
    const consoleLines: string[] = [];
    page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));
    const url = `${server.origin}/examples/browser/index.html?artifact=/artifact/&data=/data/&steps=${STEPS}&seed=${SEED}`;
    await page.goto(url);
    const tLoaded = performance.now();
    const context = (): string => `\nconsole:\n${consoleLines.join('\n')}\nrequests:\n${server!.log.join('\n')}`;
    try {
      await page.waitForFunction(() => (window as unknown as { __adjoint?: PageResult }).__adjoint?.done === true, undefined, { timeout: PAGE_TIMEOUT_MS });
    } catch (e) {
      throw new Error(`the page did not finish within ${PAGE_TIMEOUT_MS} ms (${(e as Error).message})${context()}`);
    }
    const res = await page.evaluate(() => (window as unknown as { __adjoint: PageResult }).__adjoint);
    const shown = await page.$$eval('#losses tr td:nth-child(2)', (tds) => tds.map((td) => td.textContent));
    const tDone = performance.now();
    expect(res.error, `the page reported an error${context()}`).toBeNull();

    // Reference: the first step's loss from the model's forward graph in the interpreter (float64)
    // with the same initial parameter values.
    const env = new Map<string, Tensor>([
      ['x', tensor([BATCH, MNIST_PIXELS], x)],
      ['y', tensor([BATCH], y, 'i32')],
    ]);
    for (const p of train.params) env.set(p.name, tensor(p.shape, initValues(p.init, p.shape, SEED, p.name)));
    const refLoss = evaluate(model.graph, env, 'f64').outputs.get('loss')!.data[0]!;

    const rows = nodeLosses.map((l, i) => `step ${i + 1}: node ${l.toPrecision(8)}  browser ${res.losses[i]?.toPrecision(8)}  rel ${relErr(res.losses[i] ?? NaN, l).toExponential(2)}  (${res.stepMs[i]?.toFixed(0)} ms in the page)`);
    console.log([
      `adapter in the page: ${res.adapter}`,
      `reference loss at step 1 (interpreter, f64): ${refLoss.toPrecision(8)}`,
      ...rows,
      `timings: prepare ${(tPrep - t0).toFixed(0)} ms, node ${STEPS} steps incl. load ${(tNode - tPrep).toFixed(0)} ms, ` +
        `chromium launch + page load ${(tLoaded - tNode).toFixed(0)} ms, page run ${(tDone - tLoaded).toFixed(0)} ms (device + program load ${res.loadMs.toFixed(0)} ms)`,
    ].join('\n'));

    expect(res.losses).toHaveLength(STEPS);
    expect(nodeLosses).toHaveLength(STEPS);
    for (let i = 0; i < STEPS; i++) {
      const got = res.losses[i]!;
      expect(Number.isFinite(got), `browser loss at step ${i + 1} is ${got}`).toBe(true);
      expect(relErr(got, nodeLosses[i]!), `step ${i + 1}: browser ${got} vs node ${nodeLosses[i]}`).toBeLessThanOrEqual(REL_TOL);
    }
    // The page shows what it computed.
    expect(shown).toEqual(res.losses.map((l) => l.toPrecision(7)));
    expect(relErr(nodeLosses[0]!, refLoss), `step 1: node ${nodeLosses[0]} vs interpreter ${refLoss}`).toBeLessThanOrEqual(REL_TOL);
    expect(nodeLosses[STEPS - 1]!).toBeLessThan(nodeLosses[0]!);
    // Every request the page made was served (no 404 for a shader, the bundle or the batch).
    expect(server.log.filter((l) => !l.startsWith('200 ')), context()).toEqual([]);
  }, 300_000);
});
