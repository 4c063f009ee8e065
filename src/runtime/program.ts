/**
 * @file A loaded program: the artifact's buffers, pipelines and bind groups created once, and a
 * step encoded as one command buffer with one `queue.submit`: the dispatches in order, then the
 * copies that write updated parameters back. Parameters and optimizer state stay on the GPU;
 * reading an output back is optional and does not stall the next step (a small ring of staging
 * buffers is mapped asynchronously). No GPU object but the per-step command encoder is created
 * after loading. Faults are reported, never ignored: a program over the device's limits is
 * refused before anything is created, a rejected shader or bind group names its kernels, and a
 * lost device or a step the GPU rejects makes that step's reads and every later call throw a
 * DeviceError.
 */
import { DeviceError } from '../ir/errors.js';
import type { Artifact, PersistentSlot, Region, TensorSlot } from './artifact.js';
import { deviceHealth, deviceLimits } from './device.js';
import { gpuWait } from './gpu-wait.js';
import { initTensor } from './init.js';
import { defaultTuneCache, kernelKey, timeKernels, tuningByDefault, Timer, tuneJobs, type TuneCache, type TuneEntry } from './tune.js';

export type HostArray = Float32Array | Int32Array;

export interface LoadOptions {
  /** Seed of parameter initialization. */
  readonly seed?: number;
  /** Check every shader with getCompilationInfo and refuse any error or warning (slower load). */
  readonly strictShaders?: boolean;
  /**
   * Debugging: after each dispatch, fill every temporary that just died with NaN, so a plan that
   * reuses memory too early shows up as NaN in the results.
   */
  readonly poison?: boolean;
  /**
   * Kernel variants chosen by measurement (runtime/tune.ts). A kernel whose choice is in `tuneCache`
   * runs it at once. The others:
   * - `'background'` (or true; the default): load() compiles only what the steps run (until a
   *   kernel is timed, its variant built to compile fast, else the one with the fewest storage reads, then the shortest WGSL) and
   *   resolves; once the first step is over (its work done, its values delivered) (or `tuned` is asked for, or a second has passed) the other
   *   variants are compiled and timed in the background on scratch buffers (never the
   *   program's: parameters are untouched), while steps run; each choice is swapped in as it is
   *   made and written to the cache. `program.tuned` resolves when all is done, `program.tuneMs`
   *   is the time it took.
   * - `'load'`: the same timing, finished before load() resolves (`adjoint tune`, `retune`).
   * - false: every kernel runs its default variant; no cache.
   * Default: `'background'`, unless the environment variable ADJOINT_TUNE is 0 (Node; the test suite sets it): false.
   */
  readonly tune?: boolean | 'background' | 'load';
  /** Where choices are kept (default: a JSON file in Node, IndexedDB in a browser; see tune.ts). */
  readonly tuneCache?: TuneCache;
  /** Time every kernel again, even those with a cached choice (and update the cache). */
  readonly retune?: boolean;
  /**
   * Tuning's scratch memory: kernels are timed in chunks of at most this many bytes of scratch
   * buffers (and 8 kernels), freed after each chunk; a kernel that needs more is timed alone.
   * Default: 64 MiB.
   */
  readonly tuneScratchBytes?: number;
}

/** One dispatch of a step timed on its own ({@link Program.profile}). */
export interface DispatchProfile {
  readonly dispatch: number;
  readonly label: string;
  /** The variant it runs (undefined: the kernel has one). */
  readonly variant?: string;
  readonly workgroups: readonly [number, number, number];
  /** Milliseconds per dispatch: the median of the rounds. */
  readonly ms: number;
}

/** What {@link Program.profile} measured. */
export interface Profile {
  readonly timer: 'timestamp' | 'wall';
  readonly rounds: number;
  /** In step order. */
  readonly dispatches: readonly DispatchProfile[];
}

/** What load() decided for one kernel with several variants. */
export interface KernelChoice {
  readonly dispatch: number;
  readonly label: string;
  readonly variants: readonly string[];
  readonly choice: string;
  /**
   * 'tuned': timed by this program; 'cache': a choice of an earlier load; 'default': not tuned;
   * 'pending': runs its variant quickest to compile until background tuning gets to it.
   */
  readonly source: 'tuned' | 'cache' | 'default' | 'pending';
  /** Milliseconds per dispatch of each variant timed (from the cache for a cached choice). */
  readonly times?: Readonly<Record<string, number>>;
  readonly timer?: 'timestamp' | 'wall';
}

const POISON_WGSL = `@group(0) @binding(0) var<storage, read_write> buf: array<u32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.y * nwg.x * 64u + gid.x;
  if (i < arrayLength(&buf)) { buf[i] = 0x7fc00000u; }
}
`;

interface Staging {
  readonly buffer: GPUBuffer;
  busy: boolean;
}

const RING = 3;

export class Program {
  private readonly buffers: GPUBuffer[] = [];
  /** Pipelines by shader index: the variants the dispatches run. */
  private readonly pipelines = new Map<number, GPUComputePipeline>();
  /** Per dispatch: the index of the variant it runs (0: the default). */
  private readonly choice: number[] = [];
  /** Milliseconds from the start of load() until every pipeline was ready (tuning not included). */
  loadMs = 0;
  /**
   * Milliseconds spent on tuning: looking choices up in the cache, and compiling and timing the
   * variants of the kernels without one (in the background, unless `tune: 'load'`; final once
   * `tuned` has resolved).
   */
  tuneMs = 0;
  /**
   * Resolves when tuning is over: every kernel timed, or tuning stopped by destroy() or by a
   * device error (then `tuneError`). Never rejects. Asking for it starts background tuning at
   * once (else it starts when the first step is over, or TUNE_IDLE_MS after load).
   */
  get tuned(): Promise<void> {
    this.openTuning?.();
    return this.tuneRun;
  }
  private tuneRun: Promise<void> = Promise.resolve();
  /**
   * Starts background tuning (once). Until then the queue is the first step's: on a driver that
   * compiles each shader at its first dispatch (llvmpipe), a warm-up dispatch of a variant
   * submitted first would hold the step behind its compilation.
   */
  private openTuning: (() => void) | undefined;
  /** What went wrong while tuning, if anything (reported once; the kernels concerned keep their defaults). */
  tuneError: DeviceError | undefined;
  /** Per dispatch: its tuning cache key (undefined: one variant only, or tuning off). */
  private tuneKeys: (string | undefined)[] = [];
  /** Choices of earlier loads (from the cache) and of this program's timing, by key. */
  private readonly cachedChoices = new Map<string, TuneEntry>();
  private readonly tunedChoices = new Map<string, TuneEntry>();
  /** Keys that background tuning has yet to time. */
  private readonly pendingKeys = new Set<string>();
  private readonly layouts = new Map<number, GPUBindGroupLayout>();
  private readonly pipelineLayouts = new Map<number, GPUPipelineLayout>();
  /** Per shader: how many bindings its layout has (the variants of a dispatch share its bindings). */
  private readonly bindingCount = new Map<number, number>();
  private readonly bindGroups: GPUBindGroup[] = [];
  /** Poison mode: per dispatch index, the fills to run after it. */
  private readonly poisonAfter = new Map<number, { group: GPUBindGroup; workgroups: [number, number] }[]>();
  private poisonPipeline: GPUComputePipeline | undefined;
  private readonly staging = new Map<string, Staging[]>();
  private readonly byName = new Map<string, TensorSlot>();
  private paramStaging: GPUBuffer | undefined;
  private stepCount = 0;
  /** Set by destroy() (and until load() has finished): using the program is then an error. */
  private destroyed = true;
  /** The first GPU error of a step; every later call reports it (the program's state is unknown). */
  private failure: DeviceError | undefined;

  private constructor(
    readonly device: GPUDevice,
    readonly artifact: Artifact,
  ) {}

  /**
   * Creates every GPU object of the program, checks the device's limits, initializes parameters.
   * Nothing is created when the program exceeds a limit, and a rejection by the device names the
   * kernels of the shader or dispatch that was rejected (one error scope each). Only the variant
   * each dispatch runs is compiled; tuning (see LoadOptions.tune) compiles the others.
   */
  static async load(device: GPUDevice, artifact: Artifact, opts: LoadOptions = {}): Promise<Program> {
    const t0 = performance.now();
    const p = new Program(device, artifact);
    p.checkDevice('load');
    p.checkLimits();
    const mode = tuneMode(opts.tune);
    const cache = mode !== 'off' ? opts.tuneCache ?? defaultTuneCache() : undefined;
    /** Per shader or dispatch: a promise of what the device rejected there, if anything. */
    const rejected: Promise<string | undefined>[] = [];
    const scoped = (what: string, create: () => void) => {
      device.pushErrorScope('validation');
      create();
      rejected.push(device.popErrorScope().then((e) => (e ? `${what}: ${e.message.trim()}` : undefined)));
    };
    // Which variant each dispatch runs: a cached choice, else the default (to be measured when tuning).
    const tLookup = performance.now();
    p.tuneKeys = artifact.dispatches.map((d) => (cache && (d.variants?.length ?? 0) > 1 ? kernelKey(device, artifact, d) : undefined));
    if (cache && !opts.retune) {
      for (const k of new Set(p.tuneKeys)) {
        if (k === undefined) continue;
        const e = await cache.get(k);
        if (e) p.cachedChoices.set(k, e);
      }
    }
    const lookupMs = performance.now() - tLookup;
    artifact.dispatches.forEach((d, i) => {
      const k = p.tuneKeys[i];
      const e = k === undefined ? undefined : p.cachedChoices.get(k);
      const at = e ? (d.variants ?? []).findIndex((v) => v.name === e.choice) : k !== undefined && mode === 'background' ? quickest(artifact, d) : -1;
      p.choice.push(Math.max(0, at));
    });
    const toTune = artifact.dispatches.flatMap((d, i) => (p.tuneKeys[i] !== undefined && !p.cachedChoices.has(p.tuneKeys[i]!) ? [i] : []));
    for (const i of toTune) p.pendingKeys.add(p.tuneKeys[i]!);
    const needed = new Set<number>(artifact.dispatches.map((_, i) => p.shaderOf(i)));
    for (const d of artifact.dispatches) {
      for (const sh of [d.shader, ...(d.variants ?? []).map((v) => v.shader)]) p.bindingCount.set(sh, Math.max(p.bindingCount.get(sh) ?? 0, d.bindings.length));
    }
    device.pushErrorScope('out-of-memory');
    device.pushErrorScope('validation');
    let scopesOpen = true;
    const popOuter = async () => {
      scopesOpen = false;
      const validation = await device.popErrorScope();
      const oom = await device.popErrorScope();
      return { validation, oom };
    };
    try {
      for (const a of artifact.arenas) {
        p.buffers.push(device.createBuffer({
          size: a.bytes,
          usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
          label: `arena${a.id}:${a.role}`,
        }));
      }
      const modules = new Map<number, GPUShaderModule>();
      for (const i of [...needed].sort((x, y) => x - y)) {
        scoped(`shader ${i} (${p.kernelsOf(i).join(', ') || 'unused'})`, () => modules.set(i, device.createShaderModule({ code: artifact.shaders[i]!, label: `shader${i}` })));
      }
      if (opts.strictShaders) {
        for (const [i, m] of modules) {
          const problem = await strictProblem(m);
          if (problem) throw new DeviceError(`shader ${i} (${p.kernelsOf(i)[0] ?? 'unused'}): ${problem}`);
        }
      }
      // Every pipeline at once, compiled off the thread: loading never blocks (a page stays responsive).
      const made = [...modules].map(async ([i, m]) => {
        const label = `pipeline${i} (${p.kernelsOf(i).join(', ') || 'unused'})`;
        try {
          p.pipelines.set(i, await device.createComputePipelineAsync({ layout: p.pipelineLayoutOf(i), compute: { module: m, entryPoint: 'main' }, label }));
          return undefined;
        } catch (e) {
          return `${label}: ${(e as Error).message.trim()}`;
        }
      });
      for (const [i, d] of artifact.dispatches.entries()) {
        const label = `dispatch${i} (${d.label})`;
        scoped(label, () => p.bindGroups.push(device.createBindGroup({
          layout: p.layoutOf(d.bindings.length),
          entries: d.bindings.map((r, b) => ({ binding: b, resource: { buffer: p.buffers[r.arena]!, offset: r.offset, size: r.bytes } })),
          label,
        })));
      }
      if (opts.poison) {
        p.poisonPipeline = device.createComputePipeline({ layout: 'auto', compute: { module: device.createShaderModule({ code: POISON_WGSL }), entryPoint: 'main' }, label: 'poison' });
        for (const f of artifact.frees) {
          p.poisonAfter.set(f.after, f.regions.map((r) => {
            const groups = Math.ceil(r.bytes / 4 / 64);
            const x = Math.min(groups, 65535);
            return {
              group: device.createBindGroup({ layout: p.poisonPipeline!.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: p.buffers[r.arena]!, offset: r.offset, size: r.bytes } }] }),
              workgroups: [x, Math.ceil(groups / x)] as [number, number],
            };
          }));
        }
      }
      const failedPipelines = (await gpuWait(Promise.all(made))).filter((x) => x !== undefined);
      const { validation, oom } = await popOuter();
      const problems = [...(await Promise.all(rejected)).filter((x) => x !== undefined), ...failedPipelines];
      if (oom) throw new DeviceError(`out of GPU memory while loading "${artifact.name}": ${oom.message}`);
      if (problems.length) {
        const more = problems.length > 1 ? ` (and ${problems.length - 1} more)` : '';
        throw new DeviceError(`the device rejected program "${artifact.name}": ${problems[0]}${more}`);
      }
      if (validation) throw new DeviceError(`the device rejected program "${artifact.name}": ${validation.message}`);
      p.checkDevice('load');
      p.loadMs = performance.now() - t0 - lookupMs;
      p.tuneMs = lookupMs;
    } catch (e) {
      // Leave the device as it was: no error scope left open (it would swallow later errors), no buffers.
      if (scopesOpen) await popOuter();
      p.destroy();
      throw e;
    }
    p.destroyed = false;
    for (const s of [...artifact.inputs, ...artifact.outputs, ...artifact.params, ...artifact.state]) p.byName.set(s.name, s);
    p.initialize(opts.seed ?? 0);
    if (toTune.length) {
      // Timing runs on scratch buffers, never the program's: it may run after initialization, between steps.
      const how = { strict: opts.strictShaders === true, background: mode === 'background', scratchBytes: opts.tuneScratchBytes ?? TUNE_SCRATCH };
      if (mode === 'background') {
        const gate = new Promise<void>((resolve) => {
          const idle = setTimeout(() => p.openTuning?.(), TUNE_IDLE_MS);
          (idle as { unref?: () => void }).unref?.();
          p.openTuning = () => {
            p.openTuning = undefined;
            clearTimeout(idle);
            resolve();
          };
        });
        p.tuneRun = gate.then(() => p.tuneKernels(toTune, cache!, how));
      } else p.tuneRun = p.tuneKernels(toTune, cache!, how);
      if (mode === 'load') {
        await p.tuneRun;
        if (p.tuneError) {
          p.destroy();
          throw p.tuneError;
        }
        p.checkDevice('load');
      }
    }
    return p;
  }

  /** Per kernel with several variants: the variants, the choice, where it came from, and the times. */
  get tuning(): readonly KernelChoice[] {
    return this.artifact.dispatches.flatMap((d, i) => {
      if (!d.variants || d.variants.length < 2) return [];
      const k = this.tuneKeys[i];
      const e = k === undefined ? undefined : this.tunedChoices.get(k) ?? this.cachedChoices.get(k);
      const source: KernelChoice['source'] = e ? (this.tunedChoices.has(k!) ? 'tuned' : 'cache') : k !== undefined && this.pendingKeys.has(k) ? 'pending' : 'default';
      return [{ dispatch: i, label: d.label, variants: d.variants.map((v) => v.name), choice: d.variants[this.choice[i]!]!.name, source, ...(e ? { times: e.times, timer: e.timer } : {}) }];
    });
  }

  /** The labels of the kernels that run shader `shader` (in any variant). */
  private kernelsOf(shader: number): string[] {
    return this.artifact.dispatches.filter((d) => d.shader === shader || d.variants?.some((v) => v.shader === shader)).map((d) => d.label);
  }

  /**
   * Explicit layouts, not 'auto': an 'auto' layout leaves out every binding the shader never
   * reads, and constant folding can drop a kernel's only load of a binding (where(0, a, b) reads
   * only b), after which the artifact's bind group would not fit the layout. Each binding is
   * declared as listed in the artifact, read_write storage as codegen emits it (one layout per
   * count of bindings: the variants of a dispatch share its bindings).
   */
  private layoutOf(count: number): GPUBindGroupLayout {
    let l = this.layouts.get(count);
    if (!l) {
      l = this.device.createBindGroupLayout({
        entries: Array.from({ length: count }, (_, binding) => ({ binding, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'storage' as const } })),
        label: `layout${count}`,
      });
      this.layouts.set(count, l);
    }
    return l;
  }

  /** The pipeline layout of shader `shader` (by its count of bindings). */
  private pipelineLayoutOf(shader: number): GPUPipelineLayout {
    const count = this.bindingCount.get(shader) ?? 0;
    let layout = this.pipelineLayouts.get(count);
    if (!layout) this.pipelineLayouts.set(count, (layout = this.device.createPipelineLayout({ bindGroupLayouts: [this.layoutOf(count)], label: `layout${count}` })));
    return layout;
  }

  /** Compiles shader `shader` into a pipeline (tuning); a rejection or, with `strict`, a warning throws a DeviceError naming it. */
  private async compileShader(shader: number, strict: boolean): Promise<GPUComputePipeline> {
    const have = this.pipelines.get(shader);
    if (have) return have;
    const label = `pipeline${shader} (${this.kernelsOf(shader).join(', ')})`;
    this.device.pushErrorScope('validation');
    const module = this.device.createShaderModule({ code: this.artifact.shaders[shader]!, label: `shader${shader}` });
    const scope = this.device.popErrorScope().catch((e: unknown) => e as Error);
    const made = this.device.createComputePipelineAsync({ layout: this.pipelineLayoutOf(shader), compute: { module, entryPoint: 'main' }, label });
    const [err, pipeline, problem] = await gpuWait(Promise.allSettled([scope, made, strict ? strictProblem(module) : Promise.resolve(undefined)]));
    const why = (err.status === 'fulfilled' && err.value ? err.value.message : undefined) ??
      (pipeline.status === 'rejected' ? (pipeline.reason as Error).message : undefined) ??
      (problem.status === 'fulfilled' ? problem.value : (problem.reason as Error).message);
    if (why !== undefined || pipeline.status === 'rejected') throw new DeviceError(`${label}: ${(why ?? 'rejected').trim()}`);
    return pipeline.value;
  }

  /**
   * Times the variants of the dispatches `todo` (one job per distinct kernel key) and swaps each
   * choice in as it is made. Kernels go in chunks (at most TUNE_CHUNK kernels and
   * `how.scratchBytes` bytes of scratch buffers each, unless one kernel needs more); a chunk's scratch buffers, one
   * per binding (DESIGN.md's aliasing rule), are freed before the next. Stops quietly when the
   * program is destroyed or its device lost; any other failure is kept in `tuneError` (and, in the
   * background, reported once with console.warn), and the kernels not yet timed keep their defaults.
   * A variant that was timed on PRUNE_AFTER kernels of its table and never came within PRUNE_NEAR
   * of the best is no longer compiled for the kernels after (on the CPU adapters the
   * workgroup-memory matmuls lose every time, and take 0.5-2.7 s each to compile); the variant a
   * kernel runs meanwhile is always timed, so every kernel keeps at least one.
   */
  private async tuneKernels(todo: readonly number[], cache: TuneCache, how: { strict: boolean; background: boolean; scratchBytes: number }): Promise<void> {
    const { strict, background } = how;
    const t0 = performance.now();
    const a = this.artifact;
    const first = new Map<string, number>();
    for (const i of todo) if (!first.has(this.tuneKeys[i]!)) first.set(this.tuneKeys[i]!, i);
    const chunks: [string, number][][] = [];
    let bytes = Infinity;
    for (const job of first) {
      const need = scratchBytes(a.dispatches[job[1]]!);
      if (bytes + need > how.scratchBytes || chunks.at(-1)!.length >= TUNE_CHUNK) {
        chunks.push([]);
        bytes = 0;
      }
      chunks.at(-1)!.push(job);
      bytes += need;
    }
    const problems: string[] = [];
    const stopped = () => this.destroyed || !!deviceHealth(this.device).lost;
    // Per variant (of a table: the names a dispatch offers), the kernels it was timed on and those where it came near the best.
    const record = new Map<string, { timed: number; near: number }>();
    const familyOf = (i: number, name: string) => `${a.dispatches[i]!.variants!.map((v) => v.name).join(',')}:${name}`;
    const pruned = (i: number, name: string) => {
      const r = record.get(familyOf(i, name));
      return r !== undefined && r.timed >= PRUNE_AFTER && r.near === 0 && a.dispatches[i]!.variants![this.choice[i] ?? 0]!.name !== name;
    };
    let timer: Timer | undefined;
    try {
      timer = new Timer(this.device);
      for (const chunk of chunks) {
        if (stopped()) return;
        // The variants of the chunk's kernels, compiled all at once (a variant the device rejects is left out).
        const cands = await Promise.all(chunk.map(async ([, i]) => {
          const made = await Promise.all(a.dispatches[i]!.variants!.map(async (v) => {
            if (pruned(i, v.name)) return undefined;
            try {
              return { name: v.name, shader: v.shader, pipeline: await this.compileShader(v.shader, strict), workgroups: v.workgroups };
            } catch (e) {
              problems.push((e as Error).message);
              return undefined;
            }
          }));
          return made.filter((x) => x !== undefined);
        }));
        if (stopped()) return;
        const scratch: GPUBuffer[] = [];
        try {
          this.device.pushErrorScope('out-of-memory');
          this.device.pushErrorScope('validation');
          const groups = chunk.map(([, i]) => {
            const d = a.dispatches[i]!;
            const entries = d.bindings.map((r, b) => {
              const buffer = this.device.createBuffer({ size: Math.ceil(r.bytes / 4) * 4, usage: GPUBufferUsage.STORAGE, label: `tune:${d.label}:${b}` });
              scratch.push(buffer);
              return { binding: b, resource: { buffer, size: r.bytes } };
            });
            return this.device.createBindGroup({ layout: this.layoutOf(d.bindings.length), entries, label: `tune:${d.label}` });
          });
          const validation = this.device.popErrorScope();
          const oom = this.device.popErrorScope();
          const [v, o] = await Promise.all([validation, oom]);
          if (o || v) throw new DeviceError(`scratch buffers for tuning: ${(o ?? v)!.message.trim()}`);
          if (stopped()) return;
          const jobs = chunk.map((_, j) => ({ group: groups[j]!, cands: cands[j]! }));
          const entries = await tuneJobs(timer, jobs.filter((j) => j.cands.length > 0), how.background);
          if (stopped()) return;
          let at = 0;
          for (const [j, [key]] of chunk.entries()) {
            if (jobs[j]!.cands.length === 0) continue;
            const e = entries[at++]!;
            const best = Math.min(...Object.values(e.times));
            for (const [name, t] of Object.entries(e.times)) {
              const r = record.get(familyOf(chunk[j]![1], name)) ?? { timed: 0, near: 0 };
              record.set(familyOf(chunk[j]![1], name), { timed: r.timed + 1, near: r.near + (t <= best * PRUNE_NEAR ? 1 : 0) });
            }
            this.tunedChoices.set(key, e);
            this.pendingKeys.delete(key);
            const chosen = jobs[j]!.cands.find((c) => c.name === e.choice)!;
            this.pipelines.set(chosen.shader, chosen.pipeline);
            // Swapped in: the next step encodes the chosen variant (its pipeline and its grid).
            a.dispatches.forEach((d, i) => {
              if (this.tuneKeys[i] === key) this.choice[i] = Math.max(0, d.variants!.findIndex((v) => v.name === e.choice));
            });
            await cache.set(key, e);
          }
        } finally {
          for (const b of scratch) b.destroy();
        }
        // Pipelines no dispatch runs any more (a default that lost) are let go.
        const used = new Set(a.dispatches.map((_, i) => this.shaderOf(i)));
        for (const s of [...this.pipelines.keys()]) if (!used.has(s)) this.pipelines.delete(s);
      }
    } catch (e) {
      if (!stopped()) problems.push((e as Error).message);
    } finally {
      timer?.destroy();
      this.pendingKeys.clear();
      this.tuneMs += performance.now() - t0;
      if (problems.length && !stopped()) {
        const more = problems.length > 1 ? ` (and ${problems.length - 1} more)` : '';
        this.tuneError = new DeviceError(`program "${a.name}": tuning kernel variants failed: ${problems[0]}${more}; those kernels run their default variant`);
        if (background) console.warn(`adjoint: ${this.tuneError.message}`);
      }
    }
  }

  /** The shader dispatch `i` runs (its chosen variant's). */
  private shaderOf(i: number): number {
    const d = this.artifact.dispatches[i]!;
    return d.variants?.[this.choice[i] ?? 0]?.shader ?? d.shader;
  }

  /** The grid dispatch `i` runs (its chosen variant's). */
  private workgroupsOf(i: number): readonly [number, number, number] {
    const d = this.artifact.dispatches[i]!;
    return d.variants?.[this.choice[i] ?? 0]?.workgroups ?? d.workgroups;
  }

  /**
   * Refuses, before any GPU object exists, a program that needs more than the device offers: the
   * buffers, bindings, offsets and workgroup counts it actually uses against the device's effective
   * limits (see deviceLimits), and what its shaders were compiled for (workgroup size and memory).
   */
  private checkLimits(): void {
    const have = deviceLimits(this.device);
    const a = this.artifact;
    const refuse = (why: string, limit: keyof typeof have): never => {
      throw new DeviceError(`program "${a.name}" cannot run on this device: ${why}, but the device's ${limit} is ${have[limit]}`);
    };
    for (const x of a.arenas) if (x.bytes > have.maxBufferSize) refuse(`arena ${x.id} (${x.role}) is a buffer of ${x.bytes} bytes`, 'maxBufferSize');
    for (const d of a.dispatches) {
      const kernel = `kernel "${d.label}"`;
      if (d.bindings.length > have.maxStorageBuffersPerShaderStage) refuse(`${kernel} binds ${d.bindings.length} storage buffers`, 'maxStorageBuffersPerShaderStage');
      for (const r of d.bindings) {
        if (r.bytes > have.maxStorageBufferBindingSize) refuse(`${kernel} binds ${r.bytes} bytes at once`, 'maxStorageBufferBindingSize');
        if (r.offset % have.minStorageBufferOffsetAlignment !== 0) refuse(`${kernel} binds a buffer at offset ${r.offset}`, 'minStorageBufferOffsetAlignment');
      }
      for (const w of [d.workgroups, ...(d.variants ?? []).map((v) => v.workgroups)]) {
        if (w.some((x) => x > have.maxComputeWorkgroupsPerDimension)) refuse(`${kernel} launches ${w.join('x')} workgroups`, 'maxComputeWorkgroupsPerDimension');
      }
    }
    const need = a.requirements.limits;
    for (const k of ['maxComputeInvocationsPerWorkgroup', 'maxComputeWorkgroupStorageSize'] as const) {
      if (need[k] > have[k]) refuse(`it was compiled for ${k} = ${need[k]}`, k);
    }
    // A shader that enables a WGSL extension needs the device feature of that name (f16: shader-f16);
    // subgroup shaders, subgroups of at least the size they were compiled for (the subgroup matmuls broadcast from that many lanes).
    const [sgNeed, sgHave] = [need.subgroupMinSize ?? 4, have.subgroupMinSize ?? 4];
    a.shaders.forEach((wgsl, i) => {
      for (const m of wgsl.matchAll(/^enable ([\w, ]+);/gm)) {
        for (const ext of m[1]!.split(',').map((x) => x.trim()).filter(Boolean)) {
          const feature = ext === 'f16' ? 'shader-f16' : ext;
          if (feature === 'subgroups' && this.device.features.has(feature) && sgHave < sgNeed) {
            throw new DeviceError(`program "${a.name}" cannot run on this device: its subgroup shaders were compiled for subgroups of at least ${sgNeed} invocations, but the device's subgroupMinSize is ${sgHave} (compile for this device's limits, see deviceLimits)`);
          }
          if (this.device.features.has(feature)) continue;
          const d = a.dispatches.find((x) => x.shader === i || x.variants?.some((v) => v.shader === i));
          const variant = d?.variants?.find((v) => v.shader === i)?.name;
          const what = d ? `kernel "${d.label}"${variant ? `, variant ${variant}` : ''}` : 'unused';
          throw new DeviceError(`program "${a.name}" cannot run on this device: shader ${i} (${what}) needs the "${feature}" feature, which the device lacks (compile for this device's limits, see deviceLimits)`);
        }
      }
    });
  }

  /** (Re)initializes every parameter and state from its init rule and the seed. */
  initialize(seed: number): void {
    for (const s of [...this.artifact.params, ...this.artifact.state]) this.writeRegion(s, initData(s, seed));
    this.stepCount = 0;
  }

  get steps(): number {
    return this.stepCount;
  }

  private slot(name: string): TensorSlot {
    const s = this.byName.get(name);
    if (!s) throw new DeviceError(`program "${this.artifact.name}" has no input, output, parameter or state named "${name}"`);
    return s;
  }

  private writeRegion(s: TensorSlot, data: HostArray): void {
    const n = s.shape.reduce((p, q) => p * q, 1);
    if (data.length !== n) throw new DeviceError(`"${s.name}" takes ${n} values (${s.dtype}[${s.shape.join(',')}]), got ${data.length}`);
    const want = s.dtype === 'i32' ? Int32Array : Float32Array;
    const arr = data instanceof want ? data : want.from(data);
    this.device.queue.writeBuffer(this.buffers[s.region.arena]!, s.region.offset, arr.buffer, arr.byteOffset, n * 4);
  }

  /** Writes an input (before a step) or a parameter/state (e.g. from a checkpoint). */
  write(name: string, data: HostArray): void {
    this.checkDevice(`write "${name}"`);
    this.writeRegion(this.slot(name), data);
  }

  /**
   * Throws a DeviceError when the program cannot be used: its device was lost (or destroyed), an
   * earlier step failed on the GPU, or the program was destroyed. Without this check a step on a
   * lost device would do nothing, silently.
   */
  private checkDevice(what: string): void {
    const lost = deviceHealth(this.device).lost;
    if (lost) throw new DeviceError(`program "${this.artifact.name}": cannot ${what}: the WebGPU device was lost (${lost.reason}${lost.message ? `: ${lost.message}` : ''})`);
    if (this.failure) throw this.failure;
    if (this.destroyed && what !== 'load') throw new DeviceError(`program "${this.artifact.name}": cannot ${what}: the program was destroyed`);
  }

  /** A GPU operation failed (a rejected map, a validation error): a DeviceError saying what and why. */
  private failed(what: string, why: string): DeviceError {
    const lost = deviceHealth(this.device).lost;
    const cause = lost ? `the WebGPU device was lost (${lost.reason}${lost.message ? `: ${lost.message}` : ''})` : why;
    return new DeviceError(`program "${this.artifact.name}": ${what} failed: ${cause}`);
  }

  /**
   * Runs one step: writes `feeds`, encodes every dispatch and the update copies in one command
   * buffer, submits it. With `read`, also copies those outputs to staging buffers and returns a
   * promise of their values, which resolves when the GPU is done — without blocking later steps.
   */
  step(feeds: Readonly<Record<string, HostArray>> = {}, read: readonly string[] = []): Promise<Map<string, HostArray>> | undefined {
    const at = this.stepCount + 1;
    this.checkDevice(`run step ${at}`);
    for (const [k, v] of Object.entries(feeds)) this.write(k, v);
    // A validation error of this step (Dawn names the labelled pipeline or bind group involved,
    // e.g. "dispatch3 (add map)") fails its reads and every later call, instead of going unseen.
    this.device.pushErrorScope('validation');
    const enc = this.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    this.artifact.dispatches.forEach((d, i) => {
      const w = this.workgroupsOf(i);
      pass.setPipeline(this.pipelines.get(this.shaderOf(i))!);
      pass.setBindGroup(0, this.bindGroups[i]!);
      pass.dispatchWorkgroups(w[0], w[1], w[2]);
      for (const f of this.poisonAfter.get(i) ?? []) {
        pass.setPipeline(this.poisonPipeline!);
        pass.setBindGroup(0, f.group);
        pass.dispatchWorkgroups(f.workgroups[0], f.workgroups[1]);
      }
    });
    pass.end();
    const reads: [TensorSlot, Staging][] = [];
    for (const name of read) {
      const s = this.slot(name);
      const st = this.freeStaging(s);
      enc.copyBufferToBuffer(this.buffers[s.region.arena]!, s.region.offset, st.buffer, 0, s.region.bytes);
      reads.push([s, st]);
    }
    for (const c of this.artifact.copies) {
      enc.copyBufferToBuffer(this.buffers[c.from.arena]!, c.from.offset, this.buffers[c.to.arena]!, c.to.offset, c.from.bytes);
    }
    this.device.queue.submit([enc.finish()]);
    this.stepCount++;
    // Background tuning starts once this (first) step is over: its work done and, when it reads,
    // its values delivered, then one macrotask later, so the caller's continuation runs before the
    // tuner's first pipeline is built (on SwiftShader, building them on this thread held the MLP's
    // first loss back by ~270 ms).
    const open = this.openTuning;
    const after = open && (() => setTimeout(open));
    if (after && !read.length) void gpuWait(this.device.queue.onSubmittedWorkDone()).then(after, after);
    const checked = this.device.popErrorScope().then(
      async (e) => {
        if (!e || this.failure) return this.failure;
        const why = e.message.trim();
        this.failure = this.failed(`step ${at}`, why);
        const culprits = await this.diagnose();
        if (culprits.length) this.failure = this.failed(`step ${at} (${culprits.join('; ')})`, why);
        return this.failure;
      },
      (e: unknown) => (this.failure ??= this.failed(`step ${at}`, (e as Error).message)),
    );
    if (!reads.length) return undefined;
    const values = Promise.all(reads.map(async ([s, st]) => [s.name, await this.mapRead(s, st)] as const));
    // (the values are mapped once the step's work is done)
    if (after) void values.then(after, after);
    return Promise.all([checked, values]).then(([failure, xs]) => {
      if (failure) throw failure;
      return new Map(xs);
    });
  }

  /**
   * After a step failed validation: the dispatches that fail on their own, each submitted alone,
   * named by kernel label. A submit that fails validation runs nothing; one workgroup of a kernel
   * that passes may run, which no longer matters (the program has failed: every call throws).
   */
  private async diagnose(): Promise<string[]> {
    const verdicts = this.artifact.dispatches.map((d, i) => {
      this.device.pushErrorScope('validation');
      const enc = this.device.createCommandEncoder();
      const pass = enc.beginComputePass();
      pass.setPipeline(this.pipelines.get(this.shaderOf(i))!);
      pass.setBindGroup(0, this.bindGroups[i]!);
      pass.dispatchWorkgroups(1);
      pass.end();
      this.device.queue.submit([enc.finish()]);
      return this.device.popErrorScope().then((err) => (err ? `dispatch ${i}: ${d.label}` : undefined), () => undefined);
    });
    return (await Promise.all(verdicts)).filter((x) => x !== undefined);
  }

  private freeStaging(s: TensorSlot): Staging {
    let ring = this.staging.get(s.name);
    if (!ring) {
      ring = Array.from({ length: RING }, () => ({
        buffer: this.device.createBuffer({ size: s.region.bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, label: `staging:${s.name}` }),
        busy: false,
      }));
      this.staging.set(s.name, ring);
    }
    const st = ring.find((x) => !x.busy);
    if (!st) throw new DeviceError(`more than ${RING} reads of "${s.name}" are in flight; await earlier step results first`);
    st.busy = true;
    return st;
  }

  private async mapRead(s: TensorSlot, st: Staging): Promise<HostArray> {
    try {
      try {
        await gpuWait(st.buffer.mapAsync(GPUMapMode.READ, 0, s.region.bytes));
      } catch (e) {
        throw this.failed(`reading "${s.name}"`, (e as Error).message);
      }
      const copy = st.buffer.getMappedRange(0, s.region.bytes).slice(0);
      st.buffer.unmap();
      return s.dtype === 'i32' ? new Int32Array(copy) : new Float32Array(copy);
    } finally {
      st.busy = false;
    }
  }

  /** Reads any output, parameter or state by name (waits for the GPU). */
  async read(name: string): Promise<HostArray> {
    this.checkDevice(`read "${name}"`);
    const s = this.slot(name);
    const biggest = Math.max(...[...this.byName.values()].map((x) => x.region.bytes));
    this.paramStaging ??= this.device.createBuffer({ size: biggest, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, label: 'staging:read' });
    const enc = this.device.createCommandEncoder();
    enc.copyBufferToBuffer(this.buffers[s.region.arena]!, s.region.offset, this.paramStaging, 0, s.region.bytes);
    this.device.queue.submit([enc.finish()]);
    try {
      await gpuWait(this.paramStaging.mapAsync(GPUMapMode.READ, 0, s.region.bytes));
    } catch (e) {
      throw this.failed(`reading "${name}"`, (e as Error).message);
    }
    const copy = this.paramStaging.getMappedRange(0, s.region.bytes).slice(0);
    this.paramStaging.unmap();
    return s.dtype === 'i32' ? new Int32Array(copy) : new Float32Array(copy);
  }

  /** Every parameter and state value, by name (for checkpoints). */
  async snapshot(): Promise<Map<string, HostArray>> {
    const out = new Map<string, HostArray>();
    for (const s of [...this.artifact.params, ...this.artifact.state]) out.set(s.name, await this.read(s.name));
    return out;
  }

  /**
   * Times every dispatch of a step on its own, running the variant it runs now, on this program's
   * own buffers: a warm-up dispatch each, then `rounds` rounds (default 5) in which each dispatch
   * runs a batch of about 4 ms (timestamp queries where the device has them, else the wall clock,
   * as the tuner times), the median per dispatch. Waits for queued steps and for tuning first. A
   * dispatch run again and again changes the tensors it writes, so every buffer is copied aside
   * first and back after: the program's parameters, state and step count are as they were (for a
   * moment it needs as much GPU memory again). Rejects with a DeviceError if there is no room for
   * the copies or the device fails.
   */
  async profile(opts: { readonly rounds?: number } = {}): Promise<Profile> {
    this.checkDevice('profile');
    const rounds = Math.max(1, Math.floor(opts.rounds ?? 5));
    await this.tuned;
    this.checkDevice('profile');
    await gpuWait(this.device.queue.onSubmittedWorkDone());
    const copy = (from: readonly GPUBuffer[], to: readonly GPUBuffer[]) => {
      const enc = this.device.createCommandEncoder();
      from.forEach((b, i) => enc.copyBufferToBuffer(b, 0, to[i]!, 0, b.size));
      this.device.queue.submit([enc.finish()]);
    };
    this.device.pushErrorScope('out-of-memory');
    const aside = this.buffers.map((b, i) => this.device.createBuffer({ size: b.size, usage: GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST, label: `profile:arena${i}` }));
    const oom = await this.device.popErrorScope();
    if (oom) {
      for (const b of aside) b.destroy();
      const mb = this.buffers.reduce((n, b) => n + b.size, 0) / 2 ** 20;
      throw this.failed('profile', `no room for a copy of the program's buffers (${mb.toFixed(1)} MiB): ${oom.message.trim()}`);
    }
    const timer = new Timer(this.device);
    try {
      copy(this.buffers, aside);
      const ms = await timeKernels(timer, this.artifact.dispatches.map((_, i) => ({ pipeline: this.pipelines.get(this.shaderOf(i))!, group: this.bindGroups[i]!, workgroups: this.workgroupsOf(i) })), rounds);
      return {
        timer: timer.kind,
        rounds,
        dispatches: this.artifact.dispatches.map((d, i) => ({
          dispatch: i,
          label: d.label,
          ...(d.variants && d.variants.length > 1 ? { variant: d.variants[this.choice[i] ?? 0]!.name } : {}),
          workgroups: this.workgroupsOf(i),
          ms: ms[i]!,
        })),
      };
    } catch (e) {
      throw e instanceof DeviceError ? e : this.failed('profile', (e as Error).message);
    } finally {
      timer.destroy();
      if (!this.destroyed && !deviceHealth(this.device).lost) {
        copy(aside, this.buffers);
        await gpuWait(this.device.queue.onSubmittedWorkDone());
      }
      for (const b of aside) b.destroy();
    }
  }

  destroy(): void {
    this.destroyed = true;
    this.openTuning?.();
    for (const b of this.buffers) b.destroy();
    for (const r of this.staging.values()) for (const s of r) s.buffer.destroy();
    this.paramStaging?.destroy();
  }
}

/** Background tuning starts this long after load when no step has run and nobody awaits `tuned`. */
const TUNE_IDLE_MS = 1000;
/** Kernels timed together, at most (each chunk's choices are swapped in before the next chunk). */
const TUNE_CHUNK = 8;
/** A variant timed on this many kernels of its table without coming within PRUNE_NEAR of the best is not timed on more. */
const PRUNE_AFTER = 4;
const PRUNE_NEAR = 1.25;
/** Scratch bytes per chunk of kernels being timed, at most (a kernel that needs more is timed alone). */
const TUNE_SCRATCH = 64 * 2 ** 20;

/** How load() tunes (LoadOptions.tune). */
function tuneMode(tune: LoadOptions['tune']): 'off' | 'background' | 'load' {
  const t = tune ?? tuningByDefault();
  return t === false ? 'off' : t === 'load' ? 'load' : 'background';
}

/**
 * The variant a kernel runs until background tuning has timed it: the one its compiler marked
 * `quick` (built to compile fast: the compact matmuls, K one step at a time with scalar reads),
 * else the one estimated quickest to compile: the fewest workgroup barriers, then the fewest
 * storage reads in its WGSL, then the shortest. On lavapipe (llvmpipe compiles a shader at its
 * first dispatch, every storage read into a loop over the SIMD lanes) the subgroupcompact16x4 matmuls
 * compile in 110-290 ms against 250-420 ms for subgroup16x4, the fewest-reads choice, and
 * 380-2100 ms for reg4x4, the shortest (MLP and MLP-wide, cold Mesa cache, 2026-12-02); on
 * SwiftShader (which compiles at pipeline creation) in 84 ms against 145 ms (512^3).
 */
function quickest(a: Artifact, d: Artifact['dispatches'][number]): number {
  const vs = d.variants ?? [];
  const marked = vs.findIndex((v) => v.quick);
  if (marked >= 0) return marked;
  const cost = (j: number): number[] => {
    const w = a.shaders[vs[j]!.shader]!;
    return [(w.match(/\bworkgroupBarrier\(/g) ?? []).length, (w.match(/\bin\d+\[/g) ?? []).length, w.length];
  };
  const less = (x: number[], y: number[]): boolean => {
    for (let q = 0; q < x.length; q++) if (x[q] !== y[q]) return x[q]! < y[q]!;
    return false;
  };
  return vs.reduce((best, _, j) => (less(cost(j), cost(best)) ? j : best), 0);
}

/** The scratch bytes timing dispatch `d` needs: one buffer per binding. */
function scratchBytes(d: Artifact['dispatches'][number]): number {
  return d.bindings.reduce((n, r) => n + Math.ceil(r.bytes / 4) * 4, 0);
}

/** A shader's compilation errors and warnings, as one line; undefined when there are none. */
async function strictProblem(m: GPUShaderModule): Promise<string | undefined> {
  const info = await m.getCompilationInfo();
  const msgs = info.messages.filter((x) => x.type === 'error' || x.type === 'warning');
  return msgs.length ? msgs.map((x) => `${x.type} at ${x.lineNum}:${x.linePos}: ${x.message}`).join('; ') : undefined;
}

function initData(s: PersistentSlot, seed: number): HostArray {
  return initTensor(s.init, s.shape, s.dtype, seed, s.name);
}

export type { Region };
