/**
 * @file The browser example: fetches a compiled artifact (manifest.json and its WGSL files), gets
 * a WebGPU device from navigator.gpu, loads the training program, fetches one fixed batch (one
 * binary file per program input, `<name>.f32` or `<name>.i32`, little-endian) and runs a few
 * training steps on it, reading the loss back after each. The results go on the page and on
 * `window.__adjoint` ({ losses, stepMs, loadMs, adapter, done, error }) for automated tests.
 *
 * Plain ES module, no build step: it imports the runtime bundle made by `npm run build:browser`.
 */
import { MANIFEST, adapterInfo, assertDeviceHealthy, getDevice, loadArtifact, parseBundle } from '../../dist/browser/adjoint-runtime.js';

const state = { losses: [], stepMs: [], loadMs: 0, adapter: '', done: false, error: null };
window.__adjoint = state;

const statusEl = document.getElementById('status');
const rowsEl = document.getElementById('losses');

const query = new URLSearchParams(location.search);

function withSlash(dir) {
  return dir.endsWith('/') ? dir : `${dir}/`;
}

function integer(name, fallback) {
  const text = query.get(name);
  if (text === null) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) throw new Error(`query parameter ${name}=${text} is not a non-negative integer`);
  return n;
}

function status(text) {
  statusEl.textContent = text;
}

async function fetchOk(url) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`fetching ${url}: HTTP ${res.status} ${res.statusText}`);
  return res;
}

/**
 * Fetches every file of an artifact directory, then parses it. `parseBundle` reads synchronously,
 * so the shader files the manifest lists are fetched first.
 */
async function fetchBundle(dir) {
  const manifestText = await (await fetchOk(new URL(MANIFEST, dir))).text();
  let manifest;
  try {
    manifest = JSON.parse(manifestText);
  } catch (e) {
    throw new Error(`${new URL(MANIFEST, dir)}: invalid JSON (${e.message})`);
  }
  const names = new Set();
  for (const program of Object.values(manifest?.programs ?? {})) {
    for (const f of program?.shaders ?? []) if (typeof f === 'string') names.add(f);
  }
  const files = new Map([[MANIFEST, manifestText]]);
  await Promise.all([...names].map(async (f) => {
    // Only plain file names are fetched; parseBundle rejects anything else by name.
    if (/^[a-z]+-\d+\.wgsl$/.test(f)) files.set(f, await (await fetchOk(new URL(f, dir))).text());
  }));
  return parseBundle((f) => files.get(f), dir.href);
}

/** One typed array per program input, read from `<name>.<dtype>` in the data directory. */
async function fetchBatch(program, dir) {
  const feeds = {};
  for (const slot of program.inputs) {
    const url = new URL(`${slot.name}.${slot.dtype}`, dir);
    const bytes = await (await fetchOk(url)).arrayBuffer();
    const n = slot.shape.reduce((p, q) => p * q, 1);
    if (bytes.byteLength !== n * 4) {
      throw new Error(`${url}: ${bytes.byteLength} bytes, input "${slot.name}" (${slot.dtype}[${slot.shape.join(',')}]) needs ${n * 4}`);
    }
    feeds[slot.name] = slot.dtype === 'i32' ? new Int32Array(bytes) : new Float32Array(bytes);
  }
  return feeds;
}

function addRow(step, loss, ms) {
  const tr = document.createElement('tr');
  for (const text of [String(step), loss.toPrecision(7), ms.toFixed(1)]) {
    const td = document.createElement('td');
    td.textContent = text;
    tr.append(td);
  }
  rowsEl.append(tr);
}

async function main() {
  const artifactUrl = new URL(withSlash(query.get('artifact') ?? 'out/'), location.href);
  const dataUrl = new URL(withSlash(query.get('data') ?? artifactUrl.href), location.href);
  const steps = integer('steps', 5);
  const seed = integer('seed', 0);
  if (!navigator.gpu) throw new Error('this browser has no WebGPU (navigator.gpu is missing)');
  status(`fetching the artifact from ${artifactUrl.href}…`);
  const bundle = await fetchBundle(artifactUrl);
  const train = bundle.train;
  if (!train) throw new Error(`${artifactUrl.href}: model "${bundle.name}" has no training program (no loss or optimizer)`);
  const lossName = train.loss;
  if (lossName === undefined) throw new Error(`${artifactUrl.href}: the training program names no loss output`);

  const t0 = performance.now();
  const device = await getDevice();
  state.adapter = adapterInfo(device);
  const program = await loadArtifact(device, train, { seed });
  state.loadMs = performance.now() - t0;
  const feeds = await fetchBatch(train, dataUrl);

  status(`training "${bundle.name}" for ${steps} steps on ${state.adapter}…`);
  for (let i = 0; i < steps; i++) {
    const t = performance.now();
    const read = await program.step(feeds, [lossName]);
    const loss = read.get(lossName)[0];
    const ms = performance.now() - t;
    state.losses.push(loss);
    state.stepMs.push(ms);
    addRow(i + 1, loss, ms);
  }
  assertDeviceHealthy(device);
  program.destroy();
  device.destroy();
  status(`done: ${steps} steps of "${bundle.name}" (load ${state.loadMs.toFixed(0)} ms) on ${state.adapter}`);
}

main().catch((e) => {
  state.error = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  status(state.error);
  statusEl.className = 'error';
}).finally(() => {
  state.done = true;
});
