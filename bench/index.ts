/**
 * @file The benchmark harness (`npm run bench`): trains every workload of workloads.ts in every
 * available library (adjoint when bench/adjoint.ts can set it up, TF.js WebGPU, jax-js WebGPU) on
 * the same initial weights and batches, in one process on one adapter, alternating between the
 * libraries rep by rep so that a machine's drift hits all of them alike. Per library x workload it
 * reports the median step time with the loss read back every step and every k steps, the ratio to
 * adjoint, dispatches / submits / buffers per step (counters.ts), GPU bytes allocated by setup,
 * the time from model definition to the end of the first step, and the loss at step 50 (or the
 * last step all read), checking that the libraries agree and that their step-1 loss matches the IR
 * reference interpreter. Writes bench/results/latest-<adapter>.jsonl and .md (quick-<adapter> with
 * BENCH_QUICK=1); prints the markdown.
 * One process benchmarks one adapter (`--adapter` or ADJOINT_ADAPTER, default: the first Dawn
 * offers); `npm run bench` runs bench/all.ts, which starts one such process per adapter. That
 * process runs each workload in a child process of its own, so every first step is cold.
 *
 * Also: the matmul kernel against a naive one (matmul.ts) and every model of models/ fused against
 * unfused (models.ts).
 *
 * Knobs: BENCH_WORKLOADS=mlp,lenet (ids in workloads.ts), BENCH_QUICK=1 (a few steps each),
 * BENCH_FUSION=0 (no models table), BENCH_AGREE=1 (every library to step 50 on every workload,
 * short timing, no kernel tables; writes agree-<adapter>.md: `npm run bench:agree`),
 * BENCH_RESULTS_DIR (where to write; default bench/results), BENCH_ONE_PROCESS=1 (every workload
 * in this process: first steps after the first workload find the libraries' caches warm).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { getDevice, takeAdapterFlag } from '../src/runtime/device.js';
import { gpuWait, gpuWaitSleeps } from '../src/runtime/gpu-wait.js';
import { benchMatmul, fmaCeiling, matmulTable, pairedCeiling } from './matmul.js';
import { benchFusion, fusionTable } from './models.js';
import { cpus, tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { evaluate } from '../src/ir/interp.js';
import { adjoint } from './adjoint.js';
import { checkCounters, resetCounts, snapshot, type Counts } from './counters.js';
import { dawnClasses, installGpu } from './gpu.js';
import { stepFlops, workloadEnv, workloadModel } from './graphs.js';
import { NotAvailableError, type Library, type Session, type Tuning } from './library.js';
import { jaxjs } from './peers/jaxjs.js';
import { tfjs } from './peers/tfjs.js';
import { markdown, maxRelDiff, median, type Agreement, type PerStep, type Result, type RunMeta } from './report.js';
import { batchForStep, initParams, makeBatches, selectWorkloads, type Batch, type Workload } from './workloads.js';

/** The slowest kernels of adjoint's step listed per workload. */
const KERNELS_SHOWN = 4;

/** How many steps a workload runs in each phase. */
interface Schedule {
  /** Steps before timing; the first is timed separately as "first step". */
  readonly warmup: number;
  /** Phase A: reps x steps, loss read every step, each step timed. */
  readonly repsEach: number;
  readonly stepsEach: number;
  /** Phase B: reps x k steps, loss read on the last step of each rep, timed per rep. */
  readonly repsBatch: number;
  readonly syncEvery: number;
  /**
   * Then, untimed, these libraries (by name) run on to step CHECK_STEP and read its loss; the
   * others stop after timing (on the big workloads 50 TF.js steps would take most of the budget).
   */
  readonly carry: 'all' | readonly string[];
}

/**
 * The big workloads take seconds per step in TF.js on SwiftShader, so they run fewer reps (never a
 * smaller model) to keep a full run under 15 minutes on a 2-core machine.
 */
const FAST_PEERS = ['adjoint', 'jax-js'];
const FULL: { readonly [id: string]: Schedule } = {
  mlp: { warmup: 3, repsEach: 5, stepsEach: 10, repsBatch: 3, syncEvery: 10, carry: 'all' },
  'mlp-wide': { warmup: 1, repsEach: 2, stepsEach: 2, repsBatch: 1, syncEvery: 5, carry: FAST_PEERS },
  // LeNet's ratio sits near 3x on lavapipe: 3 x 4 steps (not 2 x 2) so one slow step moves the median less.
  lenet: { warmup: 1, repsEach: 3, stepsEach: 4, repsBatch: 1, syncEvery: 5, carry: FAST_PEERS },
  transformer: { warmup: 1, repsEach: 3, stepsEach: 2, repsBatch: 1, syncEvery: 5, carry: FAST_PEERS },
};
const QUICK: Schedule = { warmup: 1, repsEach: 1, stepsEach: 3, repsBatch: 1, syncEvery: 3, carry: [] };
/**
 * BENCH_AGREE=1 (`npm run bench:agree`): every library trains every workload to step 50, with a
 * short timing schedule and no kernel tables, for the 50-step agreement of all three libraries
 * (TF.js alone needs most of 15 minutes for it on SwiftShader).
 */
const AGREE: Schedule = { warmup: 1, repsEach: 1, stepsEach: 2, repsBatch: 1, syncEvery: 3, carry: 'all' };
const CHECK_STEP = 50;
const BENCH_AGREE = process.env.BENCH_AGREE === '1';
/** BENCH_FUSION=0 leaves out the fused-vs-unfused table of the models. */
const BENCH_FUSION = process.env.BENCH_FUSION !== '0';
/**
 * Every library's setup and steps are awaited the same way, through gpuWait (runtime/gpu-wait.ts):
 * in Node, Dawn polls for finished work by spinning the event loop while a read is pending, which
 * takes a core from a CPU adapter; gpuWait sleeps between its polls, whoever's promise it is, so
 * the peers' steps do not spin either and the tables compare the libraries, not the wait.
 * BENCH_SPIN=1: as shipped, every library spinning (adjoint too: gpuWaitSleeps(false)).
 */
const BENCH_SPIN = process.env.BENCH_SPIN === '1';
if (BENCH_SPIN) gpuWaitSleeps(false);

function scheduleFor(w: Workload, quick: boolean): Schedule {
  return quick ? QUICK : BENCH_AGREE ? AGREE : (FULL[w.id] ?? FULL['mlp-wide']!);
}

function describe(s: Schedule): string {
  const carry = s.carry === 'all' ? 'every library' : s.carry.length ? s.carry.join(' and ') : '';
  return `warm-up ${s.warmup}, ${s.repsEach}x${s.stepsEach} steps reading every loss, ${s.repsBatch}x${s.syncEvery} steps reading every ${s.syncEvery} steps` +
    (carry ? `, then ${carry} on to step ${CHECK_STEP} (untimed)` : '');
}

const log = (msg: string): void => void process.stderr.write(`bench: ${msg}\n`);

/** One library's live session on the current workload, with everything measured so far. */
class Run {
  session: Session | null = null;
  failed: string | null = null;
  step = 0;
  readonly losses = new Map<number, number>();
  readonly msEach: number[] = [];
  readonly msBatch: number[] = [];
  countsEach: Counts | null = null;
  stepsCounted = 0;
  countsBatch: Counts | null = null;
  stepsCountedBatch = 0;
  firstStepMs = 0;
  phases: Session['phases'];
  tuning: Tuning | undefined;
  kernels: Result['kernels'];
  setup: Counts | null = null;

  constructor(
    readonly lib: Library,
    readonly batches: readonly Batch[],
  ) {}

  /** Runs one step; returns its wall time in ms. */
  async runStep(readLoss: boolean): Promise<number> {
    if (!this.session) throw new Error('internal: no session');
    this.step++;
    const t0 = performance.now();
    const loss = await gpuWait(this.session.step(batchForStep(this.batches, this.step), readLoss));
    const dt = performance.now() - t0;
    if (readLoss) {
      if (loss === undefined || !Number.isFinite(loss)) throw new Error(`step ${this.step} returned loss ${loss}`);
      this.losses.set(this.step, loss);
    }
    return dt;
  }

  async fail(e: unknown): Promise<void> {
    this.failed = e instanceof Error ? e.message : String(e);
    log(`${this.lib.name} failed: ${this.failed}`);
    await this.dispose();
  }

  async dispose(): Promise<void> {
    const s = this.session;
    this.session = null;
    try {
      await s?.dispose();
    } catch (e) {
      log(`${this.lib.name}: dispose failed: ${(e as Error).message}`);
    }
  }
}

function addCounts(a: Counts | null, b: Counts): Counts {
  if (!a) return b;
  const out = { ...a };
  for (const k of Object.keys(b) as (keyof Counts)[]) out[k] = a[k] + b[k];
  return out;
}

function perStep(c: Counts | null, steps: number): PerStep | undefined {
  if (!c || steps === 0) return undefined;
  return {
    dispatches: c.dispatches / steps,
    submits: c.submits / steps,
    buffers: c.buffers / steps,
    bufferBytes: c.bufferBytes / steps,
    writeBytes: c.writeBytes / steps,
    readbacks: c.mapAsyncs / steps,
  };
}

function rotate<T>(xs: readonly T[], k: number): T[] {
  const n = xs.length;
  return n === 0 ? [] : xs.map((_, i) => xs[(i + k) % n]!);
}

/** The IR interpreter's float64 loss of step 1: the model's definition, free of any GPU library. */
function referenceLoss(w: Workload, params: ReadonlyMap<string, Float32Array>, batch: Batch): number {
  const model = workloadModel(w);
  const out = evaluate(model.graph, workloadEnv(w, params, batch, 'f64'), 'f64').outputs.get('loss');
  const v = out?.data[0];
  if (v === undefined) throw new Error(`internal: the ${w.id} graph has no loss output`);
  return v;
}

async function benchWorkload(w: Workload, libs: readonly Library[], sched: Schedule): Promise<{ results: Result[]; agreement: Agreement | null; skipped: string[] }> {
  const params = initParams(w);
  const batches = makeBatches(w);
  const reference = referenceLoss(w, params, batches[0]!);
  log(`${w.id}: IR reference step-1 loss ${reference.toFixed(6)}`);
  const runs: Run[] = [];
  const skipped: string[] = [];
  const results: Result[] = [];
  for (const lib of libs) {
    const run = new Run(lib, batches);
    resetCounts();
    const t0 = performance.now();
    try {
      run.session = await gpuWait(lib.setup(w, params));
      await run.runStep(true);
      run.firstStepMs = performance.now() - t0;
      run.phases = run.session.phases;
      run.setup = snapshot();
      for (let i = 1; i < sched.warmup; i++) await run.runStep(true);
      const phases = run.phases ? ` (compile ${run.phases.compileMs.toFixed(0)} ms, load ${run.phases.loadMs.toFixed(0)} ms)` : '';
      log(`${w.id}: ${lib.name} ready, first step ${run.firstStepMs.toFixed(0)} ms${phases}, loss ${run.losses.get(1)?.toFixed(6)}`);
      // adjoint's kernel tuning runs in the background after load: wait for it here, before the
      // next library's setup (it would share the CPU) and before the timed steps (tuned kernels).
      if (run.session.tuning) {
        run.tuning = await run.session.tuning();
        const t = run.tuning;
        log(`${w.id}: ${lib.name} tuning ${t.tuneMs.toFixed(0)} ms in the background (${t.timed} of ${t.kernels} kernels timed); second load: tuning ${t.secondTuneMs.toFixed(1)} ms`);
      }
      runs.push(run);
    } catch (e) {
      if (e instanceof NotAvailableError) {
        if (lib === adjoint) skipped.push(`${lib.name}: ${e.reason}`);
        else results.push({ workload: w.id, library: lib.name, description: lib.description, status: 'n/a', reason: e.reason, syncEvery: sched.syncEvery });
        log(`${w.id}: ${lib.name} n/a: ${e.reason}`);
        await run.dispose();
      } else {
        await run.fail(e);
        runs.push(run);
      }
    }
  }
  const live = (): Run[] => runs.filter((r) => r.session !== null);
  for (let rep = 0; rep < sched.repsEach; rep++) {
    for (const run of rotate(live(), rep)) {
      try {
        resetCounts();
        for (let i = 0; i < sched.stepsEach; i++) run.msEach.push(await run.runStep(true));
        run.countsEach = addCounts(run.countsEach, snapshot());
        run.stepsCounted += sched.stepsEach;
      } catch (e) {
        await run.fail(e);
      }
    }
  }
  for (let rep = 0; rep < sched.repsBatch; rep++) {
    for (const run of rotate(live(), rep)) {
      try {
        resetCounts();
        let total = 0;
        for (let i = 1; i <= sched.syncEvery; i++) total += await run.runStep(i === sched.syncEvery);
        run.msBatch.push(total / sched.syncEvery);
        run.countsBatch = addCounts(run.countsBatch, snapshot());
        run.stepsCountedBatch += sched.syncEvery;
      } catch (e) {
        await run.fail(e);
      }
    }
  }
  // Untimed: on to step CHECK_STEP for the agreement check, reading only its loss.
  for (const run of live()) {
    if (sched.carry !== 'all' && !sched.carry.includes(run.lib.name)) continue;
    try {
      while (run.step < CHECK_STEP) await run.runStep(run.step + 1 === CHECK_STEP);
    } catch (e) {
      await run.fail(e);
    }
  }
  // Untimed: where adjoint's step goes, each kernel timed alone (leaves the session as it was).
  for (const run of live()) {
    if (!run.session?.profile) continue;
    try {
      const p = await gpuWait(run.session.profile());
      const slowest = [...p.dispatches].sort((a, b) => b.ms - a.ms).slice(0, KERNELS_SHOWN);
      run.kernels = { timer: p.timer, sumMs: p.dispatches.reduce((n, d) => n + d.ms, 0), dispatches: p.dispatches.length, slowest };
      log(`${w.id}: ${run.lib.name} kernels timed alone: ${run.kernels.sumMs.toFixed(1)} ms in all; slowest ${slowest.map((d) => `k${d.dispatch} ${d.ms.toFixed(2)}`).join(', ')}`);
    } catch (e) {
      log(`${w.id}: ${run.lib.name}: profiling failed: ${(e as Error).message}`);
    }
  }
  for (const run of runs) await run.dispose();
  log(`${w.id}: done`);

  const ok = runs.filter((r) => r.failed === null);
  const readByAll = [...(ok[0]?.losses.keys() ?? [])].filter((s) => s <= CHECK_STEP && ok.every((r) => r.losses.has(s)));
  const checkStep = Math.max(0, ...readByAll);
  const at50 = ok.filter((r) => r.losses.has(CHECK_STEP));
  const adjointRun = ok.find((r) => r.lib === adjoint);
  const adjointEach = adjointRun ? median(adjointRun.msEach) : undefined;
  const adjointBatch = adjointRun ? median(adjointRun.msBatch) : undefined;
  for (const run of runs) {
    const base = { workload: w.id, library: run.lib.name, description: run.lib.description, syncEvery: sched.syncEvery };
    if (run.failed !== null) {
      results.push({ ...base, status: 'error', reason: run.failed });
      continue;
    }
    const each = median(run.msEach);
    const batch = median(run.msBatch);
    results.push({
      ...base,
      status: 'ok',
      msSyncEach: each,
      msSyncBatch: batch,
      ratio: adjointEach === undefined ? null : each / adjointEach,
      ratioBatch: adjointBatch === undefined ? null : batch / adjointBatch,
      perStep: perStep(run.countsEach, run.stepsCounted),
      perStepBatch: perStep(run.countsBatch, run.stepsCountedBatch),
      firstStepMs: run.firstStepMs,
      ...(run.phases ? { compileMs: run.phases.compileMs, loadMs: run.phases.loadMs } : {}),
      ...(run.tuning ? { tuning: run.tuning } : {}),
      ...(run.kernels ? { kernels: run.kernels } : {}),
      setupBuffers: run.setup?.buffers,
      setupBytes: run.setup?.bufferBytes,
      setupPipelines: run.setup?.pipelines,
      steps: run.step,
      loss1: run.losses.get(1),
      lossCheck: run.losses.get(checkStep),
      loss50: run.losses.get(CHECK_STEP),
      samples: { syncEach: run.msEach, syncBatch: run.msBatch },
    });
  }
  const agreement: Agreement | null =
    ok.length === 0
      ? null
      : {
          workload: w.id,
          title: w.title,
          referenceLoss1: reference,
          maxRelDiffStep1: Math.max(...ok.map((r) => maxRelDiff([reference, r.losses.get(1) ?? NaN]))),
          checkStep,
          maxRelDiff: maxRelDiff(ok.map((r) => r.losses.get(checkStep) ?? NaN)),
          ...(checkStep < CHECK_STEP && at50.length > 1
            ? { at50: { libraries: at50.map((r) => r.lib.name), maxRelDiff: maxRelDiff(at50.map((r) => r.losses.get(CHECK_STEP)!)) } }
            : {}),
        };
  return { results, agreement, skipped };
}

function commandLine(): string {
  // Set by bench/all.ts, which starts this process once per adapter.
  if (process.env.BENCH_COMMAND) return process.env.BENCH_COMMAND;
  const knobs = ['ADJOINT_ADAPTER', 'MESA_SHADER_CACHE_DISABLE', 'BENCH_QUICK', 'BENCH_WORKLOADS', 'BENCH_FUSION', 'BENCH_AGREE'].filter((k) => process.env[k] !== undefined).map((k) => `${k}=${process.env[k]}`);
  const script = relative(process.cwd(), process.argv[1] ?? 'dist/bench/index.js');
  const npm = process.env.npm_lifecycle_event;
  if (npm === 'bench:agree') return 'npm run bench:agree';
  const cmd = npm === 'bench' ? 'npm run bench' : ['node', script, ...process.argv.slice(2)].join(' ');
  return [...knobs, cmd].join(' ');
}

/** A file-name-safe form of an adapter's short name. */
function fileLabel(label: string): string {
  return label.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '') || 'adapter';
}

/** What the workloads' runs give: per library x workload results, agreements, notes. */
interface Part {
  readonly results: Result[];
  readonly agreements: Agreement[];
  readonly notes: Set<string>;
}

/** Benchmarks the workloads one after the other in this process. */
async function benchWorkloads(workloads: readonly Workload[], quick: boolean): Promise<Part> {
  const part: Part = { results: [], agreements: [], notes: new Set() };
  const libs: Library[] = [];
  for (const lib of [adjoint, tfjs, jaxjs]) {
    try {
      await lib.init();
      libs.push(lib);
    } catch (e) {
      if (!(e instanceof NotAvailableError)) throw e;
      part.notes.add(`left out: ${lib.name}: ${e.reason}`);
      log(`${lib.name} n/a: ${e.reason}`);
    }
  }
  for (const w of workloads) {
    const sched = scheduleFor(w, quick);
    log(`${w.title}: ${describe(sched)}`);
    const r = await benchWorkload(w, libs, sched);
    part.results.push(...r.results);
    if (r.agreement) part.agreements.push(r.agreement);
    for (const s of r.skipped) part.notes.add(`left out: ${s}`);
  }
  return part;
}

/**
 * Each workload in a child process of its own (this script with BENCH_PART set), one after the
 * other, so that every library's first step on every workload is cold: in one process a library's
 * later workloads find its shader, pipeline and buffer caches warm from the earlier ones (TF.js
 * allocated 30.8 MB of setup buffers for the transformer after three workloads, 44.8 MB alone).
 * BENCH_ONE_PROCESS=1 runs them all here instead.
 */
async function workloadsApart(workloads: readonly Workload[]): Promise<Part> {
  const part: Part = { results: [], agreements: [], notes: new Set() };
  const tmp = mkdtempSync(join(tmpdir(), 'adjoint-bench-'));
  try {
    for (const w of workloads) {
      const out = join(tmp, `${w.id}.json`);
      const code = await new Promise<number>((done) => {
        const child = spawn(process.execPath, [fileURLToPath(import.meta.url)], { stdio: 'inherit', env: { ...process.env, BENCH_WORKLOADS: w.id, BENCH_PART: out } });
        child.on('exit', (c, signal) => done(c ?? (signal ? 128 : 1)));
        child.on('error', () => done(1));
      });
      if (code !== 0 || !existsSync(out)) throw new Error(`the ${w.id} workload's process failed (exit ${code})`);
      const got = JSON.parse(readFileSync(out, 'utf8')) as { results: Result[]; agreements: Agreement[]; notes: string[] };
      part.results.push(...got.results);
      part.agreements.push(...got.agreements);
      for (const n of got.notes) part.notes.add(n);
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return part;
}

/** Installs the GPU and its counters and checks them with one trivial shader on a device of its own. */
async function startGpu(): Promise<Awaited<ReturnType<typeof installGpu>>> {
  const gpu = await installGpu();
  const device = await (await gpu.gpu.requestAdapter())?.requestDevice();
  if (!device) throw new Error('no WebGPU device');
  await checkCounters(device, dawnClasses());
  device.destroy();
  return gpu;
}

async function main(): Promise<void> {
  const start = performance.now();
  // A child of workloadsApart: its one workload's results to the file BENCH_PART names, nothing else.
  if (process.env.BENCH_PART) {
    // The driver's once-per-process start (Vulkan instance, the shader compiler's first use) is
    // paid here, by one trivial shader, as in a run of every workload in one process: not by the
    // first library's first step alone.
    await startGpu();
    const part = await benchWorkloads(selectWorkloads(process.env.BENCH_WORKLOADS), process.env.BENCH_QUICK === '1');
    writeFileSync(process.env.BENCH_PART, JSON.stringify({ results: part.results, agreements: part.agreements, notes: [...part.notes] }));
    return;
  }
  // --adapter (or ADJOINT_ADAPTER): this process's adapter; `npm run bench` (bench/all.ts) runs one process per adapter.
  takeAdapterFlag(process.argv.slice(2));
  const quick = process.env.BENCH_QUICK === '1';
  const workloads = selectWorkloads(process.env.BENCH_WORKLOADS);
  const { adapter, label } = await startGpu();
  log(`adapter: ${adapter}; counters verified on Dawn's classes`);

  // Kernel quality first: the codegen's matmul against a naive one-thread-per-output kernel.
  const mmDevice = await getDevice({ quiet: true });
  const mm = BENCH_AGREE ? [] : await benchMatmul(mmDevice, quick ? [256] : [256, 512, 1024]);
  const ceiling = mm.length ? await fmaCeiling(mmDevice, quick) : undefined;
  const paired = ceiling && !quick ? await pairedCeiling(mmDevice, ceiling.best) : undefined;
  if (mm.length) log(matmulTable(mm, ceiling, paired));
  // What fusion buys on each model of models/: fused against one kernel per op.
  const fusion = BENCH_FUSION && !BENCH_AGREE ? await benchFusion(mmDevice, quick, log) : [];
  mmDevice.destroy();

  // Every workload in a process of its own (cold first steps), unless BENCH_ONE_PROCESS=1.
  const { results, agreements, notes } = workloads.length > 1 && process.env.BENCH_ONE_PROCESS !== '1'
    ? await workloadsApart(workloads)
    : await benchWorkloads(workloads, quick);
  const cpu = cpus();
  const meta: RunMeta = {
    date: new Date().toISOString(),
    command: commandLine(),
    adapter,
    adapterLabel: label,
    ...(process.env.MESA_SHADER_CACHE_DISABLE ? { env: `MESA_SHADER_CACHE_DISABLE=${process.env.MESA_SHADER_CACHE_DISABLE} (cold first steps on Mesa)` } : {}),
    cpu: `${cpu.length} x ${cpu[0]?.model ?? 'unknown'}`,
    node: process.versions.node,
    quick,
    schedule: (quick ? describe(QUICK) : BENCH_AGREE ? describe(AGREE) : workloads.map((w) => `${w.id}: ${describe(scheduleFor(w, false))}`).join('; ')) +
      (BENCH_SPIN ? '; BENCH_SPIN=1: every library waits as shipped, spinning the event loop' : "; every library's setup and steps awaited without spinning (gpuWait, also for the peers)"),
    totalSeconds: (performance.now() - start) / 1000,
    notes: [...notes],
    ...(ceiling ? { fmaCeilingGflops: ceiling.best.gflops } : {}),
    stepGflop: Object.fromEntries(workloads.map((w) => [w.id, stepFlops(w) / 1e9])),
  };
  // BENCH_RESULTS_DIR: where the self-contained bundle (bench/bundle.ts) writes.
  const dir = process.env.BENCH_RESULTS_DIR ? pathToFileURL(resolve(process.env.BENCH_RESULTS_DIR) + '/') : new URL('../../bench/results/', import.meta.url);
  mkdirSync(dir, { recursive: true });
  const jsonl = [JSON.stringify({ meta }), ...mm.map((r) => JSON.stringify({ matmul: r })), ...(ceiling ? [JSON.stringify({ fmaCeilingGflops: ceiling.best.gflops, fmaShapes: ceiling.shapes })] : []), ...(paired ? [JSON.stringify({ pairedCeiling: paired })] : []), ...fusion.map((r) => JSON.stringify({ fusion: r })), ...results.map((r) => JSON.stringify(r)), ...agreements.map((a) => JSON.stringify({ agreement: a }))];
  // A quick run never overwrites a full run's figures.
  const name = `${BENCH_AGREE ? 'agree' : quick ? 'quick' : 'latest'}-${fileLabel(label)}`;
  writeFileSync(new URL(`${name}.jsonl`, dir), jsonl.join('\n') + '\n');
  const md = markdown(meta, results, agreements) + (mm.length ? '\n## Matmul kernel (GFLOP/s on this adapter)\n\n' + matmulTable(mm, ceiling, paired) + '\n' : '')
    + (fusion.length ? '\n## Fusion on models/ (training step, loss read every step; unfused = one kernel per op)\n\n' + fusionTable(fusion) + '\n' : '');
  writeFileSync(new URL(`${name}.md`, dir), md);
  process.stdout.write(md);
  log(`wrote ${new URL(`${name}.md`, dir).pathname} and ${name}.jsonl`);
}

await main();
