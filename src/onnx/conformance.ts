/**
 * @file The ONNX conformance run: every test case the `onnx` Python wheel ships
 * (onnx/backend/test/data/{pytorch-converted, pytorch-operator, simple, node, light}) whose
 * operators the importer knows is imported, compiled and run on the GPU (the WebGPU adapter), and
 * each output is compared with the case's expected output (|got - want| <= atol + rtol |want|,
 * the wheel runner's tolerances: rtol 1e-3, atol 1e-7, or a case's data.json, DenseNet's rtol
 * 2e-3). `light/` cases ship no
 * input: it is the wheel runner's dummy input, arange(n) / n, and dynamic dimensions are 1.
 *
 *   ONNX_DATA=<site-packages>/onnx/backend/test/data npm run onnx:conformance [-- <filter>]
 *
 * prints one line per case and then `onnx cases: P passed of N supported (M total)` and every
 * unsupported operator with the number of cases that use it.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { GraphBuilder } from '../ir/builder.js';
import { emitArtifact } from '../compile.js';
import { Program, type HostArray } from '../runtime/program.js';
import { deviceLimits } from '../runtime/device.js';
import { AdjointError } from '../ir/errors.js';
import { decodeModel, decodeTensor, tensorValues } from './proto.js';
import { importOnnx, modelOps, OnnxUnsupported } from './import.js';

export const SUITES = ['pytorch-converted', 'pytorch-operator', 'simple', 'node', 'light'] as const;

export interface OnnxCase {
  readonly name: string;
  readonly model: string;
  /** Data sets: input and expected output files, in order. */
  readonly sets: readonly { readonly inputs: readonly string[]; readonly outputs: readonly string[] }[];
  /** No input files: feed the wheel runner's dummy input. */
  readonly dummyInput: boolean;
  readonly rtol: number;
  readonly atol: number;
}

/** The onnx wheel's tolerances (onnx/backend/test/loader): rtol 1e-3, atol 1e-7, or the case's data.json. */
function tolerances(dir: string): { rtol: number; atol: number } {
  const t = { rtol: 1e-3, atol: 1e-7 };
  const f = join(dir, 'data.json');
  if (!existsSync(f)) return t;
  const d = JSON.parse(readFileSync(f, 'utf8')) as { rtol?: number; atol?: number };
  return { rtol: d.rtol ?? t.rtol, atol: d.atol ?? t.atol };
}

/** The cases under a data directory (a suite folder of the wheel, or a folder of copied cases). */
export function findCases(dir: string): OnnxCase[] {
  const out: OnnxCase[] = [];
  const pbs = (d: string, prefix: string) => readdirSync(d).filter((f) => f.startsWith(prefix) && f.endsWith('.pb')).sort((a, b) => Number(/(\d+)\.pb$/.exec(a)?.[1]) - Number(/(\d+)\.pb$/.exec(b)?.[1])).map((f) => join(d, f));
  for (const e of readdirSync(dir).sort()) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) {
      if (existsSync(join(p, 'model.onnx'))) {
        const sets = readdirSync(p).filter((s) => s.startsWith('test_data_set_')).sort().map((s) => ({ inputs: pbs(join(p, s), 'input_'), outputs: pbs(join(p, s), 'output_') }));
        out.push({ name: e, model: join(p, 'model.onnx'), sets, dummyInput: false, ...tolerances(p) });
      } else out.push(...findCases(p).map((c) => ({ ...c, name: `${e}/${c.name}` })));
    } else if (e.endsWith('.onnx') && existsSync(p.replace(/\.onnx$/, '_output_0.pb'))) {
      const outputs = pbs(dir, `${e.replace(/\.onnx$/, '')}_output_`);
      out.push({ name: e.replace(/\.onnx$/, ''), model: p, sets: [{ inputs: [], outputs }], dummyInput: true, rtol: e.includes('densenet') ? 2e-3 : 1e-3, atol: 1e-7 });
    }
  }
  return out;
}

export interface CaseResult {
  readonly name: string;
  readonly status: 'passed' | 'failed' | 'refused' | 'unsupported';
  readonly detail: string;
  /** Operators without a rule. */
  readonly unsupported: readonly string[];
  /** What else made the importer refuse it as unsupported (float64 tensors, a run-time shape). */
  readonly features?: readonly string[];
}


/** Imports, compiles and runs one case on `device`, comparing every output. */
export async function runCase(device: GPUDevice, c: OnnxCase): Promise<CaseResult> {
  const bytes = readFileSync(c.model);
  const { unsupported } = modelOps(bytes, c.name);
  if (unsupported.length) return { name: c.name, status: 'unsupported', detail: unsupported.join(', '), unsupported };
  let imp;
  const shapes: Record<string, number[]> = {};
  if (c.dummyInput) {
    const m = decodeModel(bytes, c.name);
    const inits = new Set((m.graph!.initializer ?? []).map((t) => t.name));
    for (const x of m.graph!.input ?? []) if (!inits.has(x.name)) shapes[x.name] = (x.type?.tensorType?.shape?.dim ?? []).map((d) => d.dimValue || 1);
  }
  try {
    imp = importOnnx(bytes, { where: c.name, shapes });
  } catch (e) {
    // Something adjoint does not do at all (float64, a shape computed at run time) makes the case
    // unsupported; any other refusal of a model whose operators are supported is a failure.
    if (e instanceof OnnxUnsupported) return { name: c.name, status: 'unsupported', detail: e.message, unsupported: [], features: [e.feature] };
    if (e instanceof AdjointError) return { name: c.name, status: 'refused', detail: e.message, unsupported: [] };
    throw e;
  }
  const b = new GraphBuilder();
  const outs = imp.build(b);
  for (const [k, v] of Object.entries(outs)) b.output(k, v);
  const g = b.build();
  let prog: Program;
  try {
    prog = await Program.load(device, emitArtifact(g, { name: c.name, limits: deviceLimits(device) }), { strictShaders: true });
  } catch (e) {
    if (e instanceof AdjointError) return { name: c.name, status: 'failed', detail: `compile: ${e.message.split('\n')[0]}`, unsupported: [] };
    throw e;
  }
  try {
    for (const [name, v] of imp.values) prog.write(name, v);
    for (const [si, set] of c.sets.entries()) {
      const feeds: Record<string, HostArray> = {};
      imp.inputs.forEach((x, i) => {
        const n = x.shape.reduce((p, q) => p * q, 1);
        let data: Float64Array;
        if (c.dummyInput) data = Float64Array.from({ length: n }, (_, k) => Math.fround(k / n));
        else {
          const f = set.inputs[i];
          if (!f) throw new AdjointError(`data set ${si} has no input ${i}`);
          data = tensorValues(decodeTensor(readFileSync(f), f), f);
        }
        feeds[x.name] = x.dtype === 'i32' ? Int32Array.from(data) : Float32Array.from(data);
      });
      const got = await prog.step(feeds, imp.outputs.map((o) => o.name));
      for (const [oi, f] of set.outputs.entries()) {
        const want = decodeTensor(readFileSync(f), f);
        const o = imp.outputs[oi];
        if (!o) return { name: c.name, status: 'failed', detail: `no output ${oi}`, unsupported: [] };
        const shape = g.nodes[g.outputs.find((x) => x.name === o.name)!.value]!.type.shape;
        const wshape = (want.dims ?? []).map(Number);
        if (shape.join() !== wshape.join()) return { name: c.name, status: 'failed', detail: `output ${o.onnxName}: shape [${shape.join(',')}], expected [${wshape.join(',')}]`, unsupported: [] };
        const wv = tensorValues(want, f);
        const gv = got!.get(o.name)!;
        let worst = 0;
        let at = -1;
        for (let k = 0; k < wv.length; k++) {
          if (Number.isNaN(gv[k]!) && Number.isNaN(wv[k]!)) continue;
          const err = gv[k] === wv[k] ? 0 : Math.abs(gv[k]! - wv[k]!) - (c.atol + c.rtol * Math.abs(wv[k]!));
          if (!(err <= worst)) {
            worst = Number.isNaN(err) ? Infinity : err;
            at = k;
          }
        }
        if (at >= 0) return { name: c.name, status: 'failed', detail: `output ${o.onnxName}[${at}]: got ${gv[at]}, expected ${wv[at]}`, unsupported: [] };
      }
    }
  } finally {
    prog.destroy();
  }
  return { name: c.name, status: 'passed', detail: '', unsupported: [] };
}

/** Runs every case under `dirs` and prints the report; returns the results. */
export async function runConformance(
  device: GPUDevice, dirs: readonly string[], filter?: string, log = (s: string): void => void process.stdout.write(s + '\n'), keep: (name: string) => boolean = () => true,
): Promise<CaseResult[]> {
  const cases = dirs.flatMap((d) => (existsSync(d) ? findCases(d) : [])).filter((c) => (!filter || c.name.includes(filter)) && keep(c.name));
  const results: CaseResult[] = [];
  for (const c of cases) {
    const t0 = performance.now();
    let r: CaseResult;
    try {
      r = await runCase(device, c);
    } catch (e) {
      // A crash of the compiler or runtime is a failed case, reported, not the end of the run.
      r = { name: c.name, status: 'failed', detail: `crash: ${e instanceof Error ? `${e.name}: ${e.message.split('\n')[0]}` : String(e)}`, unsupported: [] };
    }
    results.push(r);
    log(`${r.status.padEnd(11)} ${c.name}${r.detail ? `: ${r.detail}` : ''} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  }
  const supported = results.filter((r) => r.status !== 'unsupported');
  const passed = results.filter((r) => r.status === 'passed');
  log(`onnx cases: ${passed.length} passed of ${supported.length} supported (${results.length} total)`);
  const count = new Map<string, number>();
  for (const r of results) for (const op of r.unsupported) count.set(op, (count.get(op) ?? 0) + 1);
  const list = [...count].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  log(`unsupported operators (cases using each): ${list.map(([op, n]) => `${op} ${n}`).join(', ') || 'none'}`);
  const fcount = new Map<string, number>();
  for (const r of results) for (const f of r.features ?? []) fcount.set(f, (fcount.get(f) ?? 0) + 1);
  if (fcount.size) log(`unsupported features (cases using each): ${[...fcount].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).map(([f, n]) => `${f} ${n}`).join(', ')}`);
  return results;
}

async function main(): Promise<void> {
  const base = process.env.ONNX_DATA;
  if (!base) {
    process.stderr.write('set ONNX_DATA to the onnx wheel\'s test data (python3 -c "import onnx,os;print(os.path.dirname(onnx.__file__)+\'/backend/test/data\')")\n');
    process.exit(2);
  }
  const { getDevice, adapterInfo } = await import('../runtime/device.js');
  const device = await getDevice({ quiet: true });
  process.stdout.write(`device: ${adapterInfo(device)}\n`);
  const dirs = existsSync(join(base, 'model.onnx')) ? [base] : SUITES.map((s) => join(base, s)).filter(existsSync);
  const results = await runConformance(device, dirs.length ? dirs : [base], process.argv[2]);
  const bad = results.filter((r) => r.status === 'failed');
  process.exitCode = bad.length ? 1 : 0;
  device.destroy();
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) await main();
