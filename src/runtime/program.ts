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
import { initValues } from './init.js';
import { defaultTuneCache, kernelKey, tuningByDefault, Timer, tuneJobs, type TuneCache, type TuneEntry } from './tune.js';

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
   * Time the variants of every kernel that has several and run the fastest; the choices are kept in
   * `tuneCache`, so a second load times nothing. false: every kernel runs its default variant.
   * Default: true, unless the environment variable ADJOINT_TUNE is 0 (Node; the test suite sets it).
   */
  readonly tune?: boolean;
  /** Where choices are kept (default: a JSON file in Node, IndexedDB in a browser; see tune.ts). */
  readonly tuneCache?: TuneCache;
  /** Time every kernel again, even those with a cached choice (and update the cache). */
  readonly retune?: boolean;
}

/** What load() decided for one kernel with several variants. */
export interface KernelChoice {
  readonly dispatch: number;
  readonly label: string;
  readonly variants: readonly string[];
  readonly choice: string;
  /** 'tuned': timed in this load; 'cache': a choice of an earlier load; 'default': not tuned. */
  readonly source: 'tuned' | 'cache' | 'default';
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
  /** Pipelines by shader index: the variants chosen (and, while tuning, the others). */
  private readonly pipelines = new Map<number, GPUComputePipeline>();
  /** Per dispatch: the index of the variant it runs (0: the default). */
  private readonly choice: number[] = [];
  /** Milliseconds from the start of load() until every pipeline was ready (tuning not included). */
  loadMs = 0;
  /** Milliseconds spent timing kernel variants during load() (0 when every choice was cached). */
  tuneMs = 0;
  /** Per kernel with several variants: the variants, the choice, where it came from, and the times. */
  tuning: readonly KernelChoice[] = [];
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
   * kernels of the shader or dispatch that was rejected (one error scope each).
   */
  static async load(device: GPUDevice, artifact: Artifact, opts: LoadOptions = {}): Promise<Program> {
    const t0 = performance.now();
    const p = new Program(device, artifact);
    p.checkDevice('load');
    p.checkLimits();
    const tune = opts.tune ?? tuningByDefault();
    const cache = tune ? opts.tuneCache ?? defaultTuneCache() : undefined;
    /** Per shader or dispatch: a promise of what the device rejected there, if anything. */
    const rejected: Promise<string | undefined>[] = [];
    const scoped = (what: string, create: () => void) => {
      device.pushErrorScope('validation');
      create();
      rejected.push(device.popErrorScope().then((e) => (e ? `${what}: ${e.message.trim()}` : undefined)));
    };
    const kernelsOf = (shader: number) => artifact.dispatches.filter((d) => d.shader === shader || d.variants?.some((v) => v.shader === shader)).map((d) => d.label);
    // Which variant each dispatch runs: a cached choice, the default, or (tuning) to be measured.
    const keys = artifact.dispatches.map((d) => (cache && (d.variants?.length ?? 0) > 1 ? kernelKey(device, artifact, d) : undefined));
    const cached = new Map<string, TuneEntry>();
    if (cache && !opts.retune) {
      for (const k of new Set(keys)) {
        if (k === undefined) continue;
        const e = await cache.get(k);
        if (e) cached.set(k, e);
      }
    }
    artifact.dispatches.forEach((d, i) => {
      const e = keys[i] === undefined ? undefined : cached.get(keys[i]!);
      const at = e ? (d.variants ?? []).findIndex((v) => v.name === e.choice) : -1;
      p.choice.push(Math.max(0, at));
    });
    const toTune = artifact.dispatches.flatMap((d, i) => (keys[i] !== undefined && !cached.has(keys[i]!) ? [i] : []));
    const needed = new Set<number>(artifact.dispatches.map((_, i) => p.shaderOf(i)));
    for (const i of toTune) for (const v of artifact.dispatches[i]!.variants!) needed.add(v.shader);
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
        scoped(`shader ${i} (${kernelsOf(i).join(', ') || 'unused'})`, () => modules.set(i, device.createShaderModule({ code: artifact.shaders[i]!, label: `shader${i}` })));
      }
      if (opts.strictShaders) {
        for (const [i, m] of modules) {
          const info = await m.getCompilationInfo();
          const msgs = info.messages.filter((x) => x.type === 'error' || x.type === 'warning');
          if (msgs.length) {
            throw new DeviceError(`shader ${i} (${kernelsOf(i)[0] ?? 'unused'}): ${msgs.map((x) => `${x.type} at ${x.lineNum}:${x.linePos}: ${x.message}`).join('; ')}`);
          }
        }
      }
      // Explicit layouts, not 'auto': an 'auto' layout leaves out every binding the shader never
      // reads, and constant folding can drop a kernel's only load of a binding (where(0, a, b)
      // reads only b), after which the artifact's bind group would not fit the layout. Each
      // binding is declared as listed in the artifact, read_write storage as codegen emits it
      // (one layout per count of bindings: the variants of a dispatch share its bindings).
      const layouts = new Map<number, GPUBindGroupLayout>();
      const layoutOf = (count: number): GPUBindGroupLayout => {
        let l = layouts.get(count);
        if (!l) {
          l = device.createBindGroupLayout({
            entries: Array.from({ length: count }, (_, binding) => ({ binding, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'storage' as const } })),
            label: `layout${count}`,
          });
          layouts.set(count, l);
        }
        return l;
      };
      const bindingCount = new Map<number, number>();
      for (const d of artifact.dispatches) {
        for (const sh of [d.shader, ...(d.variants ?? []).map((v) => v.shader)]) bindingCount.set(sh, Math.max(bindingCount.get(sh) ?? 0, d.bindings.length));
      }
      // Every pipeline at once, compiled off the thread: loading never blocks (a page stays responsive).
      const pipelineLayouts = new Map<number, GPUPipelineLayout>();
      const made = [...modules].map(async ([i, m]) => {
        const count = bindingCount.get(i) ?? 0;
        let layout = pipelineLayouts.get(count);
        if (!layout) pipelineLayouts.set(count, (layout = device.createPipelineLayout({ bindGroupLayouts: [layoutOf(count)], label: `layout${count}` })));
        const label = `pipeline${i} (${kernelsOf(i).join(', ') || 'unused'})`;
        try {
          p.pipelines.set(i, await device.createComputePipelineAsync({ layout, compute: { module: m, entryPoint: 'main' }, label }));
          return undefined;
        } catch (e) {
          return `${label}: ${(e as Error).message.trim()}`;
        }
      });
      for (const [i, d] of artifact.dispatches.entries()) {
        const label = `dispatch${i} (${d.label})`;
        scoped(label, () => p.bindGroups.push(device.createBindGroup({
          layout: layoutOf(d.bindings.length),
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
      const failedPipelines = (await Promise.all(made)).filter((x) => x !== undefined);
      const { validation, oom } = await popOuter();
      const problems = [...(await Promise.all(rejected)).filter((x) => x !== undefined), ...failedPipelines];
      if (oom) throw new DeviceError(`out of GPU memory while loading "${artifact.name}": ${oom.message}`);
      if (problems.length) {
        const more = problems.length > 1 ? ` (and ${problems.length - 1} more)` : '';
        throw new DeviceError(`the device rejected program "${artifact.name}": ${problems[0]}${more}`);
      }
      if (validation) throw new DeviceError(`the device rejected program "${artifact.name}": ${validation.message}`);
      p.checkDevice('load');
      p.loadMs = performance.now() - t0;
      // Tuning runs kernels on the program's own buffers before parameters are initialized (below),
      // so no timing run can leave a trace in them (in-place updates included).
      const t1 = performance.now();
      const tuned = new Map<string, TuneEntry>();
      if (toTune.length) {
        // One job per distinct kernel (identical kernels share a key), all timed together.
        const first = new Map<string, number>();
        for (const i of toTune) if (!first.has(keys[i]!)) first.set(keys[i]!, i);
        const timer = new Timer(device);
        try {
          const jobs = [...first.values()].map((i) => ({
            group: p.bindGroups[i]!,
            cands: artifact.dispatches[i]!.variants!.map((v) => ({ name: v.name, pipeline: p.pipelines.get(v.shader)!, workgroups: v.workgroups })),
          }));
          const entries = await tuneJobs(timer, jobs);
          [...first.keys()].forEach((key, j) => tuned.set(key, entries[j]!));
          for (const [key, e] of tuned) await cache!.set(key, e);
          for (const i of toTune) p.choice[i] = Math.max(0, artifact.dispatches[i]!.variants!.findIndex((v) => v.name === tuned.get(keys[i]!)!.choice));
        } finally {
          timer.destroy();
        }
        p.checkDevice('load');
      }
      p.tuneMs = performance.now() - t1;
      p.tuning = artifact.dispatches.flatMap((d, i) => {
        if (!d.variants || d.variants.length < 2) return [];
        const e = keys[i] === undefined ? undefined : tuned.get(keys[i]!) ?? cached.get(keys[i]!);
        const source: KernelChoice['source'] = !e ? 'default' : tuned.has(keys[i]!) ? 'tuned' : 'cache';
        return [{ dispatch: i, label: d.label, variants: d.variants.map((v) => v.name), choice: d.variants[p.choice[i]!]!.name, source, ...(e ? { times: e.times, timer: e.timer } : {}) }];
      });
    } catch (e) {
      // Leave the device as it was: no error scope left open (it would swallow later errors), no buffers.
      if (scopesOpen) await popOuter();
      p.destroy();
      throw e;
    }
    p.destroyed = false;
    for (const s of [...artifact.inputs, ...artifact.outputs, ...artifact.params, ...artifact.state]) p.byName.set(s.name, s);
    p.initialize(opts.seed ?? 0);
    return p;
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
    // A shader that enables a WGSL extension needs the device feature of that name (f16: shader-f16).
    a.shaders.forEach((wgsl, i) => {
      for (const m of wgsl.matchAll(/^enable ([\w, ]+);/gm)) {
        for (const ext of m[1]!.split(',').map((x) => x.trim()).filter(Boolean)) {
          const feature = ext === 'f16' ? 'shader-f16' : ext;
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
        await st.buffer.mapAsync(GPUMapMode.READ, 0, s.region.bytes);
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
      await this.paramStaging.mapAsync(GPUMapMode.READ, 0, s.region.bytes);
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

  destroy(): void {
    this.destroyed = true;
    for (const b of this.buffers) b.destroy();
    for (const r of this.staging.values()) for (const s of r) s.buffer.destroy();
    this.paramStaging?.destroy();
  }
}

function initData(s: PersistentSlot, seed: number): HostArray {
  // The random number generator's key (src/ir/random.ts): the seed's 32 bits, exactly.
  if (s.init.kind === 'seed') return new Int32Array(s.shape.reduce((p, q) => p * q, 1)).fill(seed | 0);
  const v = initValues(s.init, s.shape, seed, s.name);
  return s.dtype === 'i32' ? Int32Array.from(v) : v;
}

export type { Region };
