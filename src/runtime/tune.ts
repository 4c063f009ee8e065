/**
 * @file Choosing kernel variants by measurement. A dispatch of an artifact may come in several
 * variants (same bindings, other WGSL and grid: a register-tiled or a workgroup-memory tiled
 * matmul, a serial or a workgroup-tree reduction). The tuner times them on the device at hand —
 * timestamp queries where the device has `timestamp-query`, else the wall clock over a batch of
 * dispatches ended by `onSubmittedWorkDone` — drops a variant once it is clearly slower, and
 * keeps the fastest. Choices are cached under a key made of the adapter's identity and limits, the
 * compiler's version and the kernel's signature (a hash of every variant's WGSL and grid), so a
 * second load tunes nothing: a JSON file in Node (tune-file.ts), IndexedDB in a browser.
 */
import { DeviceError } from '../ir/errors.js';
import type { Artifact, DispatchSpec } from './artifact.js';
import { adapterInfo } from './device.js';
import { gpuWait } from './gpu-wait.js';

/** What the tuner measured for one kernel and what it chose. */
export interface TuneEntry {
  /** The chosen variant's name. */
  readonly choice: string;
  /** Milliseconds per dispatch of each variant timed (a variant dropped early has its first figure). */
  readonly times: Readonly<Record<string, number>>;
  /** How the times were taken. */
  readonly timer: 'timestamp' | 'wall';
}

/** Where choices are kept between loads. */
export interface TuneCache {
  get(key: string): Promise<TuneEntry | undefined>;
  set(key: string, entry: TuneEntry): Promise<void>;
  /** A line for humans: where the cache lives. */
  readonly where: string;
}

/** A cache for this process only. */
export function memoryTuneCache(): TuneCache {
  const m = new Map<string, TuneEntry>();
  return { where: 'memory', get: async (k) => m.get(k), set: async (k, e) => void m.set(k, e) };
}

/** A cache in the browser's IndexedDB (database `adjoint-tune`, store `choices`). */
export function indexedDbTuneCache(name = 'adjoint-tune'): TuneCache {
  const open = (): Promise<IDBDatabase> =>
    new Promise((resolve, reject) => {
      const req = indexedDB.open(name, 1);
      req.onupgradeneeded = () => req.result.createObjectStore('choices');
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  const run = async <T>(mode: IDBTransactionMode, f: (s: IDBObjectStore) => IDBRequest): Promise<T> => {
    const db = await open();
    try {
      return await new Promise<T>((resolve, reject) => {
        const req = f(db.transaction('choices', mode).objectStore('choices'));
        req.onsuccess = () => resolve(req.result as T);
        req.onerror = () => reject(req.error);
      });
    } finally {
      db.close();
    }
  };
  return {
    where: `IndexedDB "${name}"`,
    get: (k) => run<TuneEntry | undefined>('readonly', (s) => s.get(k)),
    set: async (k, e) => void (await run('readwrite', (s) => s.put(e, k))),
  };
}

/** Whether loads tune when not told: yes, unless ADJOINT_TUNE=0 in Node's environment. */
export function tuningByDefault(): boolean {
  return !(typeof process !== 'undefined' && process.env?.ADJOINT_TUNE === '0');
}

let processCache: TuneCache | undefined;

/** The default cache: IndexedDB in a browser, the JSON file in Node, else memory. */
export function defaultTuneCache(): TuneCache {
  if (processCache) return processCache;
  const node = typeof process !== 'undefined' && typeof process.versions?.node === 'string';
  processCache = node ? lazyCache(nodeFileCache) : typeof indexedDB !== 'undefined' ? indexedDbTuneCache() : memoryTuneCache();
  return processCache;
}

/** The JSON file cache of tune-file.ts, imported only in Node (it stays out of the browser bundle). */
async function nodeFileCache(): Promise<TuneCache> {
  type FileModule = { fileTuneCache: () => TuneCache };
  // Built: tune-file.js beside this file; from the TypeScript sources (tests): tune-file.ts.
  const mod = await nodeImport<FileModule>(new URL('./tune-file.js', import.meta.url).href)
    .catch(() => nodeImport<FileModule>(new URL('./tune-file.ts', import.meta.url).href));
  return mod.fileTuneCache();
}

/** A cache made on first use. */
function lazyCache(make: () => Promise<TuneCache>): TuneCache {
  let cache: Promise<TuneCache> | undefined;
  const get = () => (cache ??= make());
  return { where: 'default', get: async (k) => (await get()).get(k), set: async (k, e) => (await get()).set(k, e) };
}

async function nodeImport<T>(specifier: string): Promise<T> {
  return (await import(/* @vite-ignore */ specifier)) as T;
}

/** FNV-1a (64 bits as two 32-bit halves) of a string, as 16 hex digits. */
export function hash(s: string): string {
  let h1 = 0x811c9dc5;
  let h2 = 0xcbf29ce4;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193) >>> 0;
    h2 = Math.imul(h2 ^ c ^ (h1 >>> 7), 0x01000193) >>> 0;
  }
  return h1.toString(16).padStart(8, '0') + h2.toString(16).padStart(8, '0');
}

/** The adapter's identity and limits (from getDevice's record, or the device's own adapter info and limits). */
export function deviceKey(device: GPUDevice): string {
  const info = (device as GPUDevice & { adapterInfo?: GPUAdapterInfo }).adapterInfo;
  const id = info ? [info.vendor, info.architecture, info.device, info.description].join('/') : '';
  const l = device.limits;
  const limits = [l.maxComputeWorkgroupStorageSize, l.maxComputeInvocationsPerWorkgroup, l.maxStorageBuffersPerShaderStage, l.maxComputeWorkgroupsPerDimension].join(',');
  return `${id}|${adapterInfo(device)}|${limits}`;
}

/** The cache key of one dispatch's variants on a device. */
export function kernelKey(device: GPUDevice, a: Artifact, d: DispatchSpec): string {
  const sig = (d.variants ?? []).map((v) => `${v.name}:${v.workgroups.join('x')}:${hash(a.shaders[v.shader]!)}`).join(';');
  return `${hash(deviceKey(device))}:${hash(a.compiler ?? 'unknown compiler')}:${hash(sig)}`;
}

/** A clearly slower variant: this many times the best one's first figure. */
const DROP = 1.5;
/** Aim for this many milliseconds per timed batch (so the timer's resolution and submit cost wash out). */
const BATCH_MS = 4;

/** One batch to time: `reps` dispatches of one pipeline with one bind group. */
export interface Batch {
  readonly pipeline: GPUComputePipeline;
  readonly group: GPUBindGroup;
  readonly workgroups: readonly [number, number, number];
  readonly reps: number;
}

/** Timestamp pairs per submit (a query set holds at most 4096 queries). */
const PAIRS = 1024;

/**
 * Times batches of dispatches; returns milliseconds per dispatch of each. With timestamp queries
 * every batch is its own compute pass with timestamp writes, all in one submit (one readback for
 * hundreds of batches); with the wall clock, each batch is its own submit, timed to
 * `onSubmittedWorkDone`.
 */
export class Timer {
  readonly kind: 'timestamp' | 'wall';
  private readonly query?: { set: GPUQuerySet; resolve: GPUBuffer; read: GPUBuffer };

  constructor(private readonly device: GPUDevice) {
    this.kind = device.features.has('timestamp-query') ? 'timestamp' : 'wall';
    if (this.kind === 'timestamp') {
      this.query = {
        set: device.createQuerySet({ type: 'timestamp', count: 2 * PAIRS }),
        resolve: device.createBuffer({ size: 16 * PAIRS, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC }),
        read: device.createBuffer({ size: 16 * PAIRS, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST }),
      };
    }
  }

  async time(batches: readonly Batch[]): Promise<number[]> {
    const out: number[] = [];
    if (!this.query) {
      for (const b of batches) {
        const enc = this.device.createCommandEncoder();
        encode(enc.beginComputePass(), b);
        // Work queued before (a program's steps, when tuning runs in the background) is not this batch's.
        await gpuWait(this.device.queue.onSubmittedWorkDone());
        const t0 = performance.now();
        const checked = this.submit(enc);
        await gpuWait(this.device.queue.onSubmittedWorkDone());
        out.push((performance.now() - t0) / b.reps);
        await checked;
      }
      return out;
    }
    const q = this.query;
    for (let at = 0; at < batches.length; at += PAIRS) {
      const part = batches.slice(at, at + PAIRS);
      const enc = this.device.createCommandEncoder();
      part.forEach((b, i) => encode(enc.beginComputePass({ timestampWrites: { querySet: q.set, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 } }), b));
      enc.resolveQuerySet(q.set, 0, 2 * part.length, q.resolve, 0);
      enc.copyBufferToBuffer(q.resolve, 0, q.read, 0, 16 * part.length);
      const t0 = performance.now();
      const checked = this.submit(enc);
      await gpuWait(q.read.mapAsync(GPUMapMode.READ, 0, 16 * part.length));
      await checked;
      const wall = (performance.now() - t0) / part.reduce((n, b) => n + b.reps, 0);
      const stamps = new BigInt64Array(q.read.getMappedRange(0, 16 * part.length).slice(0));
      q.read.unmap();
      // Timestamps may be quantized (Dawn: 65.536 us) or unusable: the batch's share of the wall clock then.
      part.forEach((b, i) => {
        const ns = Number(stamps[2 * i + 1]! - stamps[2 * i]!);
        out.push(ns > 0 ? ns / 1e6 / b.reps : wall);
      });
    }
    return out;
  }

  /**
   * Submits `enc` in its own validation scope (pushed and popped at once, so it never spans an
   * await: a program's steps may run meanwhile); the promise rejects with what the device refused.
   */
  private submit(enc: GPUCommandEncoder): Promise<void> {
    this.device.pushErrorScope('validation');
    this.device.queue.submit([enc.finish()]);
    const checked = this.device.popErrorScope().then((e) => {
      if (e) throw new DeviceError(`a timing run was rejected: ${e.message.trim()}`);
    });
    checked.catch(() => undefined); // awaited by the caller; this only keeps a rejection from being "unhandled" meanwhile
    return checked;
  }

  destroy(): void {
    this.query?.set.destroy();
    this.query?.resolve.destroy();
    this.query?.read.destroy();
  }
}

function encode(pass: GPUComputePassEncoder, b: Batch): void {
  pass.setPipeline(b.pipeline);
  pass.setBindGroup(0, b.group);
  for (let r = 0; r < b.reps; r++) pass.dispatchWorkgroups(b.workgroups[0], b.workgroups[1], b.workgroups[2]);
  pass.end();
}

/** One variant to time: its name, pipeline and grid. */
export interface Candidate {
  readonly name: string;
  readonly pipeline: GPUComputePipeline;
  readonly workgroups: readonly [number, number, number];
}

/** A kernel to tune: its bind group (the dispatch's own) and its variants. */
export interface TuneJob {
  readonly group: GPUBindGroup;
  readonly cands: readonly Candidate[];
}

/**
 * Times the variants of every job, all jobs together round by round (with timestamps, one submit
 * per round): a warm-up dispatch each; one timed batch each, its length from its own warm-up
 * (about BATCH_MS), twice; a variant whose better figure is slower than DROP times its job's best
 * is dropped; the rest are timed once more and take the median of their three. Two figures before
 * a drop, not one, as one hiccup of a CPU adapter can drop the fastest variant: the bench of
 * 2026-12-03 ran SwiftShader's MLP forward matmul as subgroupcols8x8 (16.5 ms) where four runs
 * since timed subgroup32x16 at 7-11 ms and chose it. The fastest figure of each job wins.
 * `oneByOne` (background tuning): each warm-up dispatch is its own submit, as a driver that
 * compiles a shader at its first dispatch (llvmpipe: 0.2-2 s each) would otherwise hold the queue,
 * and a program step queued behind, for the whole chunk's compilation (lavapipe, MLP: the second
 * step took 29 s).
 */
export async function tuneJobs(timer: Timer, jobs: readonly TuneJob[], oneByOne = false): Promise<TuneEntry[]> {
  const items = jobs.flatMap((j, ji) => j.cands.map((c) => ({ ji, c, group: j.group })));
  const batch = (x: (typeof items)[number], reps: number): Batch => ({ pipeline: x.c.pipeline, group: x.group, workgroups: x.c.workgroups, reps });
  const warm: number[] = [];
  if (oneByOne) for (const x of items) warm.push(...(await timer.time([batch(x, 1)])));
  else warm.push(...(await timer.time(items.map((x) => batch(x, 1)))));
  const reps = warm.map((w) => Math.max(1, Math.min(64, Math.round(BATCH_MS / Math.max(1e-3, w)))));
  const all = items.map((x, i) => batch(x, reps[i]!));
  const rounds = [await timer.time(all), await timer.time(all)];
  const better = items.map((_, i) => Math.min(rounds[0]![i]!, rounds[1]![i]!));
  const best = jobs.map((_, ji) => Math.min(...better.filter((__, i) => items[i]!.ji === ji)));
  const kept = items.flatMap((x, i) => (better[i]! <= best[x.ji]! * DROP ? [i] : []));
  const again = await timer.time(kept.map((i) => all[i]!));
  const figure = [...better];
  kept.forEach((i, q) => (figure[i] = [rounds[0]![i]!, rounds[1]![i]!, again[q]!].sort((p, r) => p - r)[1]!));
  return jobs.map((j, ji) => {
    const times: Record<string, number> = {};
    items.forEach((x, i) => {
      if (x.ji === ji) times[x.c.name] = figure[i]!;
    });
    const choice = j.cands.reduce((p, c) => (times[c.name]! < times[p.name]! ? c : p)).name;
    return { choice, times, timer: timer.kind };
  });
}

/** One kernel to time on its own: a pipeline, its bind group and its grid. */
export interface Timed {
  readonly pipeline: GPUComputePipeline;
  readonly group: GPUBindGroup;
  readonly workgroups: readonly [number, number, number];
}

/**
 * Milliseconds per dispatch of each kernel (Program.profile): a warm-up dispatch each, then
 * `rounds` rounds, each timing every kernel once in a batch of about BATCH_MS (so one kernel's
 * figures are spread over the whole run, as a machine's drift is), and the median of each
 * kernel's rounds.
 */
export async function timeKernels(timer: Timer, kernels: readonly Timed[], rounds: number): Promise<number[]> {
  const batch = (k: Timed, reps: number): Batch => ({ pipeline: k.pipeline, group: k.group, workgroups: k.workgroups, reps });
  const warm = await timer.time(kernels.map((k) => batch(k, 1)));
  const reps = warm.map((w) => Math.max(1, Math.min(64, Math.round(BATCH_MS / Math.max(1e-3, w)))));
  const figures: number[][] = kernels.map(() => []);
  for (let r = 0; r < Math.max(1, rounds); r++) {
    const t = await timer.time(kernels.map((k, i) => batch(k, reps[i]!)));
    t.forEach((ms, i) => figures[i]!.push(ms));
  }
  return figures.map((f) => [...f].sort((a, b) => a - b)[(f.length - 1) >> 1]!);
}
