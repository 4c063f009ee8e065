/**
 * @file Gets a WebGPU device in Node (Dawn, through the `webgpu` package) or in a browser
 * (`navigator.gpu`), asks for the adapter's own compute limits instead of the spec defaults, and
 * keeps a record of device loss and uncaptured errors so that neither crashes nor goes unseen.
 *
 * Which adapter (Node only): `ADJOINT_ADAPTER` in the environment, or {@link selectAdapter} (the
 * CLI's and the bench's `--adapter`), names `swiftshader`, `lavapipe`, `default`, or the path of a
 * Vulkan ICD manifest (`*.json`). A named one is made the only Vulkan driver Dawn sees
 * (`VK_ICD_FILENAMES`), with no fallback. `default` (also when nothing is set) takes the first
 * adapter Dawn finds with the machine's own drivers and `VK_ICD_FILENAMES` as the user set it, and
 * falls back to Chromium's SwiftShader when that finds none.
 *
 * What was verified on the development machine (Debian bookworm, no GPU, Dawn from `webgpu`
 * 0.6.2, Node 20, 2026-12-01):
 * - Dawn refuses bookworm's own lavapipe (Mesa 22.3: "Vulkan shaderUniform*ArrayDynamicIndexing
 *   required"), so with only that `requestAdapter()` returns null. It accepts Mesa 25's lavapipe
 *   (`mesa-vulkan-drivers` from bookworm-backports, ICD `/usr/share/vulkan/icd.d/lvp_icd.json`):
 *   with it installed and no `VK_ICD_FILENAMES`, the default adapter is lavapipe ("mesa /
 *   software / llvmpipe-..."); lavapipe prints two "maxDynamic*BuffersPerPipelineLayout
 *   artificially reduced" warnings per adapter to stderr, which nothing here can silence.
 * - Setting `process.env.VK_ICD_FILENAMES` inside the process works, but only for a GPU object
 *   created afterwards: retrying `requestAdapter()` on the old object returns the old answer, a
 *   fresh `create([])` sees the new list (this is how the SwiftShader fallback and
 *   {@link selectAdapter} work). With both ICDs in the list Dawn picks SwiftShader.
 * - Dawn prints "error: XDG_RUNTIME_DIR is invalid or not set in the environment." twice per
 *   `create([])` when that variable is unset; setting it in-process to `os.tmpdir()` silences it.
 * - An adapter is consumed by its first `requestDevice()`; every device gets a fresh adapter.
 * - Limits never go below the spec defaults: asking for `maxStorageBuffersPerShaderStage: 4` gives
 *   a device whose `limits` say 8 (per spec). The caller's lower caps are kept here and applied by
 *   {@link deviceLimits}, which is what the compiler should read.
 * - Without an `uncapturederror` handler calling `preventDefault()`, Dawn prints uncaptured
 *   errors to *stdout*; here they are recorded and echoed to stderr instead.
 * - In a Node worker thread `process.env` is a copy that native code never sees, so setting
 *   `VK_ICD_FILENAMES` there does nothing (vitest's `threads` pool finds no adapter; `forks` works).
 *   The error then says so; setting the variable before starting node works everywhere.
 * - The process exits by itself after the last await, whether or not devices are destroyed and
 *   whether or not the GPU object stays referenced from module scope.
 */
import { DeviceError } from '../ir/errors.js';

/** Options of {@link getDevice}. */
export interface GetDeviceOptions {
  /** Limits to ask for, over those taken from the adapter. Lower than the adapter's is allowed. */
  requiredLimits?: Partial<Record<string, number>>;
  /** Shortcut for `requiredLimits.maxStorageBuffersPerShaderStage`, e.g. 4 to test binding splits. */
  maxStorageBuffersPerShaderStage?: number;
  /**
   * Print nothing routine to stderr: neither the note about falling back to SwiftShader nor the
   * uncaptured errors (still recorded, see {@link deviceHealth}). An unexpected loss is printed.
   */
  quiet?: boolean;
  /**
   * Ask for the `subgroups` feature where the adapter offers it (default true), so that programs
   * compiled for this device (see {@link deviceLimits}) may carry subgroup kernel variants. False
   * gives a device without it, as a browser or GPU lacking the feature would.
   */
  subgroups?: boolean;
}

/** The limits a compute pipeline compiler needs; they are copied from the adapter. */
export const COMPUTE_LIMITS = [
  'maxStorageBuffersPerShaderStage',
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension',
  'maxBindingsPerBindGroup',
  'maxBindGroups',
  'maxUniformBuffersPerShaderStage',
  'maxUniformBufferBindingSize',
  'maxDynamicStorageBuffersPerPipelineLayout',
  'maxDynamicUniformBuffersPerPipelineLayout',
  'minStorageBufferOffsetAlignment',
  'minUniformBufferOffsetAlignment',
] as const;

/** Name of one compute-relevant limit. */
export type ComputeLimitName = (typeof COMPUTE_LIMITS)[number];
/**
 * The effective compute limits of a device (see {@link deviceLimits}), and whether it has the
 * `subgroups` feature (the compiler emits subgroup variants only then).
 */
export type ComputeLimits = { readonly [K in ComputeLimitName]: number } & { readonly subgroups: boolean; readonly subgroupMinSize?: number };

/** What is known about a device's health: its loss, if any, and errors nobody captured. */
export interface DeviceHealth {
  /** Set once `device.lost` resolved (also after `device.destroy()`, reason `destroyed`). */
  readonly lost: GPUDeviceLostInfo | null;
  /** The first uncaptured errors (at most {@link MAX_RECORDED_ERRORS}). */
  readonly errors: readonly GPUError[];
  /** How many uncaptured errors occurred in all. */
  readonly errorCount: number;
}

/** How many uncaptured errors are kept per device (and echoed to stderr unless `quiet`). */
export const MAX_RECORDED_ERRORS = 16;

interface DeviceRecord {
  lost: GPUDeviceLostInfo | null;
  errors: GPUError[];
  errorCount: number;
  /** Caller's limits that are lower (`max*`) or higher (`min*`) than what the device reports. */
  caps: Partial<Record<string, number>>;
  info: string;
  /** {@link adapterLabel} of the adapter. */
  label: string;
  softwareFallback: boolean;
}

const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';
const ICD_DIRS = ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d', '/usr/local/share/vulkan/icd.d'];
const INSTALL_HINT =
  'install a Vulkan driver (on Debian: apt-get install -y libvulkan1 chromium, which ships SwiftShader; ' +
  'for lavapipe, mesa-vulkan-drivers from bookworm-backports)';

/** The environment variable that chooses the adapter in Node (see {@link selectAdapter}). */
export const ADAPTER_ENV = 'ADJOINT_ADAPTER';
/** The adapters that can be chosen by name; any other choice is the path of an ICD manifest. */
export const ADAPTER_NAMES = ['default', 'swiftshader', 'lavapipe'] as const;
/** A named adapter, or `default` (the first adapter Dawn finds, else SwiftShader). */
export type AdapterName = (typeof ADAPTER_NAMES)[number];

/** Where each named CPU adapter's Vulkan ICD manifest may lie (the first that exists is used), and how to get it. */
const NAMED_ICDS: { readonly [K in Exclude<AdapterName, 'default'>]: { readonly files: readonly string[]; readonly install: string } } = {
  swiftshader: {
    files: [SWIFTSHADER_ICD, '/opt/google/chrome/vk_swiftshader_icd.json'],
    install: 'on Debian: apt-get install -y chromium libvulkan1 (Chromium ships SwiftShader)',
  },
  lavapipe: {
    // Debian names it lvp_icd.json; Fedora and Arch add the architecture.
    files: ICD_DIRS.flatMap((d) => [`${d}/lvp_icd.json`, `${d}/lvp_icd.x86_64.json`, `${d}/lvp_icd.aarch64.json`]),
    install: 'on Debian bookworm: apt-get install -y -t bookworm-backports mesa-vulkan-drivers (Dawn refuses Mesa 22.3, accepts 25)',
  },
};

const records = new WeakMap<GPUDevice, DeviceRecord>();

/** The GPU entry point, kept alive here: Dawn's objects die with the last reference to it. */
let gpuObject: GPU | null = null;
/** GPU objects replaced by {@link selectAdapter}, kept alive for the devices made from them. */
const retiredGpuObjects: GPU[] = [];
/** Whether the current GPU object was created with SwiftShader selected by this module. */
let usingSwiftShader = false;
/** One initialization per process; concurrent callers share it. */
let gpuInit: Promise<void> | null = null;
let noteShown = false;
/** The choice made by {@link selectAdapter}; null: `ADJOINT_ADAPTER`, else `default`. */
let selected: string | null = null;
/** `VK_ICD_FILENAMES` and `VK_DRIVER_FILES` as the user set them, before any choice changed them. */
let userIcdEnv: { readonly icd: string | undefined; readonly drivers: string | undefined } | null = null;

type WebGpuModule = typeof import('webgpu');
type FsModule = typeof import('node:fs');
type OsModule = typeof import('node:os');
type WorkerThreadsModule = typeof import('node:worker_threads');

/** Whether this code runs in a Node worker thread, whose `process.env` does not reach Dawn. */
let inWorkerThread = false;

/**
 * Imports a Node-only module by a specifier bundlers cannot see, so a browser bundle of the
 * runtime never pulls in `webgpu` (a native addon) or Node built-ins.
 */
async function nodeImport<T>(specifier: string): Promise<T> {
  return (await import(/* @vite-ignore */ specifier)) as T;
}

/** Whether this code runs in Node (with the `webgpu` package), not a browser. */
export function isNode(): boolean {
  return typeof process !== 'undefined' && typeof process.versions?.node === 'string';
}

function browserGpu(): GPU | undefined {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  return nav?.gpu;
}

function note(message: string, quiet: boolean): void {
  if (quiet || noteShown) return;
  noteShown = true;
  process.stderr.write(`adjoint: ${message}\n`);
}

/** Whether a Vulkan ICD manifest exists in the loader's standard places. */
function hasIcdManifest(fs: FsModule): boolean {
  for (const dir of ICD_DIRS) {
    try {
      if (fs.readdirSync(dir).some((n) => n.endsWith('.json'))) return true;
    } catch {
      // missing directory
    }
  }
  return false;
}

/** Checks a choice's spelling without touching the file system; throws {@link DeviceError}. */
function checkChoice(choice: string, from: string): void {
  if ((ADAPTER_NAMES as readonly string[]).includes(choice) || choice.endsWith('.json')) return;
  throw new DeviceError(`${from}: "${choice}" is not an adapter (${ADAPTER_NAMES.join(', ')}, or the path of a Vulkan ICD manifest *.json)`);
}

/**
 * Chooses the adapter of every later {@link getDevice} in this process (Node only): `default`,
 * `swiftshader`, `lavapipe`, or the path of a Vulkan ICD manifest. Overrides `ADJOINT_ADAPTER`.
 * Devices made before stay valid; the next {@link getDevice} creates a fresh GPU object, which
 * reads the new driver list. A bad name throws {@link DeviceError} here; a missing driver, at
 * the next {@link getDevice}.
 */
export function selectAdapter(choice: string): void {
  if (!isNode()) throw new DeviceError('choosing the adapter is for Node; a browser chooses its own');
  checkChoice(choice, '--adapter');
  selected = choice;
  if (gpuObject) retiredGpuObjects.push(gpuObject);
  gpuObject = null;
  gpuInit = null;
  usingSwiftShader = false;
}

/**
 * Takes `--adapter <choice>` (or `--adapter=<choice>`) out of a command line, calls
 * {@link selectAdapter} with it, and returns the other arguments (for the CLI and the bench).
 */
export function takeAdapterFlag(argv: readonly string[]): string[] {
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--adapter') {
      const v = argv[++i];
      if (v === undefined || v.startsWith('-')) throw new DeviceError(`flag --adapter needs a value (${ADAPTER_NAMES.join(', ')}, or an ICD manifest path)`);
      selectAdapter(v);
    } else if (a.startsWith('--adapter=')) selectAdapter(a.slice('--adapter='.length));
    else rest.push(a);
  }
  return rest;
}

/** The adapter choice in force: {@link selectAdapter}'s, else `ADJOINT_ADAPTER`, else `default`. */
export function adapterChoice(): string {
  if (selected !== null) return selected;
  const env = isNode() ? process.env[ADAPTER_ENV] : undefined;
  return env === undefined || env === '' ? 'default' : env;
}

/**
 * The ICD manifest a choice names (Node only), or null for `default`. Throws {@link DeviceError}
 * naming the choice and what to install when its driver is missing.
 */
export async function adapterIcd(choice: string): Promise<string | null> {
  checkChoice(choice, selected === null ? ADAPTER_ENV : '--adapter');
  if (choice === 'default') return null;
  const fs = await nodeImport<FsModule>('node:fs');
  if (choice === 'swiftshader' || choice === 'lavapipe') {
    const { files, install } = NAMED_ICDS[choice];
    const found = files.find((f) => fs.existsSync(f));
    if (found === undefined) throw new DeviceError(`adapter ${choice}: no ICD manifest (looked for ${files.slice(0, 2).join(', ')}, ...): ${install}`);
    return found;
  }
  if (!fs.existsSync(choice)) throw new DeviceError(`adapter ${choice}: no such ICD manifest`);
  return choice;
}

/**
 * Sets the Vulkan driver list for the next GPU object from the adapter choice (Node only): a named
 * adapter or manifest becomes `VK_ICD_FILENAMES` alone; `default` restores the user's own
 * variables. Returns the manifest, or null for `default`. For code that creates its own GPU
 * object (the bench, which must wrap Dawn's classes first); {@link getDevice} calls it itself.
 */
export async function applyAdapterChoice(): Promise<string | null> {
  userIcdEnv ??= { icd: process.env.VK_ICD_FILENAMES, drivers: process.env.VK_DRIVER_FILES };
  const icd = await adapterIcd(adapterChoice());
  const set = (name: string, v: string | undefined): void => {
    if (v === undefined) delete process.env[name];
    else process.env[name] = v;
  };
  // The loader reads VK_DRIVER_FILES before VK_ICD_FILENAMES, so a named choice clears it.
  set('VK_ICD_FILENAMES', icd ?? userIcdEnv.icd);
  set('VK_DRIVER_FILES', icd === null ? userIcdEnv.drivers : undefined);
  return icd;
}

/** Whether the user's environment already names the Vulkan drivers. */
function driversChosenByUser(): boolean {
  return process.env.VK_ICD_FILENAMES !== undefined || process.env.VK_DRIVER_FILES !== undefined;
}

function useSwiftShader(why: string, quiet: boolean): void {
  process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
  usingSwiftShader = true;
  note(`using SwiftShader (Vulkan on the CPU, ${SWIFTSHADER_ICD}): ${why}; set ${ADAPTER_ENV} or VK_ICD_FILENAMES to choose another driver`, quiet);
}

/** Loads Dawn, sets the Vulkan driver list before the first `create([])`, and creates the GPU. */
async function initNodeGpu(quiet: boolean): Promise<void> {
  const fs = await nodeImport<FsModule>('node:fs');
  const os = await nodeImport<OsModule>('node:os');
  inWorkerThread = !(await nodeImport<WorkerThreadsModule>('node:worker_threads')).isMainThread;
  if (process.env.XDG_RUNTIME_DIR === undefined) process.env.XDG_RUNTIME_DIR = os.tmpdir();
  let webgpu: WebGpuModule;
  try {
    webgpu = await nodeImport<WebGpuModule>('webgpu');
  } catch (e) {
    throw new DeviceError(`cannot load the 'webgpu' package (Dawn for Node): ${(e as Error).message}; run npm install`);
  }
  Object.assign(globalThis, webgpu.globals);
  const icd = await applyAdapterChoice();
  // With no driver manifest at all only SwiftShader can work: take it at once.
  if (process.platform === 'linux' && icd === null && !driversChosenByUser() && fs.existsSync(SWIFTSHADER_ICD) && !hasIcdManifest(fs)) {
    useSwiftShader(`no Vulkan driver manifest in ${ICD_DIRS.join(', ')}`, quiet);
  }
  gpuObject = webgpu.create([]);
}

/** A fresh adapter; with the `default` choice, falls back to SwiftShader (with a fresh GPU object) once if none is found. */
async function requestAdapter(quiet: boolean): Promise<GPUAdapter> {
  const browser = browserGpu();
  if (browser) {
    const adapter = await browser.requestAdapter();
    if (!adapter) throw new DeviceError('no WebGPU adapter found: this browser has WebGPU but offers no adapter (is it disabled or blocklisted?)');
    return adapter;
  }
  if (!isNode()) throw new DeviceError('no WebGPU: navigator.gpu is missing and this is not Node');
  gpuInit ??= initNodeGpu(quiet);
  try {
    await gpuInit;
  } catch (e) {
    gpuInit = null;
    throw e;
  }
  if (!gpuObject) throw new DeviceError('internal: GPU object missing after initialization');
  let adapter = await gpuObject.requestAdapter();
  const choice = adapterChoice();
  if (!adapter && process.platform === 'linux' && choice === 'default' && !usingSwiftShader && !driversChosenByUser()) {
    const fs = await nodeImport<FsModule>('node:fs');
    if (fs.existsSync(SWIFTSHADER_ICD)) {
      useSwiftShader('the default Vulkan drivers gave no WebGPU adapter', quiet);
      const webgpu = await nodeImport<WebGpuModule>('webgpu');
      // A GPU object reads the Vulkan ICD list when created: only a fresh one sees SwiftShader.
      retiredGpuObjects.push(gpuObject);
      gpuObject = webgpu.create([]);
      adapter = await gpuObject.requestAdapter();
    }
  }
  if (!adapter) {
    const icd = process.env.VK_ICD_FILENAMES ?? process.env.VK_DRIVER_FILES;
    const tried = choice !== 'default' ? ` (adapter ${choice}, VK_ICD_FILENAMES=${icd})` : icd === undefined ? '' : ` (with VK_ICD_FILENAMES/VK_DRIVER_FILES=${icd})`;
    const worker = inWorkerThread && (usingSwiftShader || choice !== 'default')
      ? `; this is a worker thread, whose process.env does not reach Dawn: set VK_ICD_FILENAMES before starting node, or run in the main thread or a child process (vitest: pool 'forks')`
      : '';
    throw new DeviceError(`no WebGPU adapter found${tried}: ${INSTALL_HINT}${worker}`);
  }
  return adapter;
}

/**
 * A short name of an adapter: `swiftshader`, `lavapipe`, or its vendor and device (or
 * description) for any other, e.g. a real GPU's driver.
 */
export function adapterLabel(info: GPUAdapterInfo): string {
  if (info.architecture === 'swiftshader' || info.description.startsWith('SwiftShader')) return 'swiftshader';
  if (info.device.startsWith('llvmpipe') || info.description.startsWith('llvmpipe')) return 'lavapipe';
  const parts = [info.vendor, info.device || info.description].filter((s) => s !== '');
  return parts.length > 0 ? parts.join(' ') : 'unknown adapter';
}

function isMinLimit(name: string): boolean {
  return name.startsWith('min');
}

function limitOf(limits: GPUSupportedLimits, name: string): number | undefined {
  const v: unknown = (limits as unknown as Record<string, unknown>)[name];
  return typeof v === 'number' ? v : undefined;
}

function summarize(adapter: GPUAdapter, device: GPUDevice, fallback: boolean): string {
  const info = adapter.info;
  const parts = [info.vendor, info.architecture, info.device, info.description].filter((s) => s !== undefined && s !== '');
  const name = `${adapterLabel(info)}: ${parts.length > 0 ? parts.join(' / ') : 'unknown adapter'}`;
  const l = deviceLimits(device);
  const mib = (n: number): string => `${Math.round(n / 2 ** 20)} MiB`;
  return (
    `${name}${fallback ? ' (SwiftShader fallback)' : ''}; storage buffers/stage ${l.maxStorageBuffersPerShaderStage}, ` +
    `binding ${mib(l.maxStorageBufferBindingSize)}, buffer ${mib(l.maxBufferSize)}, ` +
    `workgroup storage ${l.maxComputeWorkgroupStorageSize / 1024} KiB, invocations ${l.maxComputeInvocationsPerWorkgroup}, ` +
    `workgroups/dim ${l.maxComputeWorkgroupsPerDimension}`
  );
}

/**
 * Gets a WebGPU device with the adapter's compute limits (not the spec defaults), overridable by
 * the caller. In Node it loads Dawn and falls back to SwiftShader when no other driver works.
 * Throws {@link DeviceError} when no adapter exists or the limits asked for are not supported.
 */
export async function getDevice(options: GetDeviceOptions = {}): Promise<GPUDevice> {
  const quiet = options.quiet ?? false;
  const adapter = await requestAdapter(quiet);
  const wanted: Record<string, number> = {};
  for (const name of COMPUTE_LIMITS) {
    const v = limitOf(adapter.limits, name);
    if (v !== undefined) wanted[name] = v;
  }
  const overrides: Partial<Record<string, number>> = { ...options.requiredLimits };
  if (options.maxStorageBuffersPerShaderStage !== undefined) overrides.maxStorageBuffersPerShaderStage = options.maxStorageBuffersPerShaderStage;
  for (const [name, v] of Object.entries(overrides)) {
    if (v === undefined) continue;
    if (!Number.isFinite(v) || v < 0) throw new DeviceError(`requiredLimits.${name}: ${v} is not a valid limit`);
    const have = limitOf(adapter.limits, name);
    if (have === undefined) throw new DeviceError(`requiredLimits.${name}: this adapter has no such limit`);
    const better = isMinLimit(name) ? v < have : v > have;
    if (better) throw new DeviceError(`requiredLimits.${name}: asked for ${v}, the adapter supports ${have}`);
    wanted[name] = v;
  }
  let device: GPUDevice;
  try {
    // timestamp-query where offered: the tuner times kernel variants with it (runtime/tune.ts);
    // subgroups where offered (unless refused): the subgroup variants of reductions and rows need it.
    const requiredFeatures: GPUFeatureName[] = adapter.features.has('timestamp-query') ? ['timestamp-query'] : [];
    if ((options.subgroups ?? true) && adapter.features.has('subgroups')) requiredFeatures.push('subgroups');
    device = await adapter.requestDevice({ requiredLimits: wanted, requiredFeatures });
  } catch (e) {
    throw new DeviceError(`requestDevice failed: ${(e as Error).message}`);
  }
  const caps: Partial<Record<string, number>> = {};
  for (const [name, v] of Object.entries(overrides)) {
    if (v === undefined) continue;
    const got = limitOf(device.limits, name);
    if (got !== undefined && got !== v) caps[name] = v;
  }
  const record: DeviceRecord = { lost: null, errors: [], errorCount: 0, caps, info: '', label: adapterLabel(adapter.info), softwareFallback: usingSwiftShader };
  records.set(device, record);
  record.info = summarize(adapter, device, usingSwiftShader);
  // `lost` only ever resolves; handling it here records the loss and reports an unexpected one.
  void device.lost.then((info) => {
    record.lost = info;
    if (info.reason !== 'destroyed') reportError(`WebGPU device lost (${info.reason}): ${info.message}`);
  });
  device.onuncapturederror = (event: GPUUncapturedErrorEvent): void => {
    // preventDefault stops Dawn from printing the error to stdout; it is recorded and echoed here.
    event.preventDefault();
    record.errorCount++;
    if (record.errors.length < MAX_RECORDED_ERRORS) {
      record.errors.push(event.error);
      if (!quiet) {
        reportError(`uncaptured WebGPU error: ${event.error.message.trim()}`);
        if (record.errors.length === MAX_RECORDED_ERRORS) reportError('further uncaptured WebGPU errors are counted, not printed');
      }
    }
  };
  return device;
}

function reportError(message: string): void {
  // Never throw from here: this runs inside event handlers.
  try {
    if (isNode()) process.stderr.write(`adjoint: ${message}\n`);
    else console.error(`adjoint: ${message}`);
  } catch {
    // nothing left to do
  }
}

function recordOf(device: GPUDevice): DeviceRecord | undefined {
  return records.get(device);
}

/**
 * The compute limits to compile for: the device's own, lowered (or for `min*` alignments raised)
 * to what the caller of {@link getDevice} asked for, and whether the device has `subgroups`. WebGPU never reports limits below the spec
 * defaults, so a caller asking for 4 storage buffers per stage sees 4 here and 8 in `device.limits`.
 */
export function deviceLimits(device: GPUDevice): ComputeLimits {
  const caps = recordOf(device)?.caps ?? {};
  const out: Record<string, number> = {};
  for (const name of COMPUTE_LIMITS) {
    const have = limitOf(device.limits, name) ?? 0;
    const cap = caps[name];
    out[name] = cap === undefined ? have : isMinLimit(name) ? Math.max(have, cap) : Math.min(have, cap);
  }
  const subgroups = device.features.has('subgroups');
  // The adapter's smallest subgroup (GPUDevice.adapterInfo; absent in older browsers: then 4, WebGPU's minimum).
  const min = (device as { adapterInfo?: { subgroupMinSize?: number } }).adapterInfo?.subgroupMinSize;
  return { ...(out as { [K in ComputeLimitName]: number }), subgroups, ...(subgroups ? { subgroupMinSize: Math.max(4, min ?? 4) } : {}) };
}

/** One line for benchmark headers: adapter vendor/architecture/description and key limits. */
export function adapterInfo(device: GPUDevice): string {
  return recordOf(device)?.info ?? 'device not created by getDevice';
}

/** The short name ({@link adapterLabel}) of the device's adapter: `swiftshader`, `lavapipe`, or a GPU's. */
export function adapterName(device: GPUDevice): string {
  return recordOf(device)?.label ?? 'device not created by getDevice';
}

/** Whether the device runs on the SwiftShader fallback that {@link getDevice} selected. */
export function isSoftwareFallback(device: GPUDevice): boolean {
  return recordOf(device)?.softwareFallback ?? false;
}

/** The device's loss (if any) and the uncaptured errors recorded so far. */
export function deviceHealth(device: GPUDevice): DeviceHealth {
  const r = recordOf(device);
  return r ? { lost: r.lost, errors: [...r.errors], errorCount: r.errorCount } : { lost: null, errors: [], errorCount: 0 };
}

/** Throws {@link DeviceError} if the device was lost or any uncaptured error was recorded. */
export function assertDeviceHealthy(device: GPUDevice): void {
  const r = recordOf(device);
  if (!r) return;
  if (r.lost) throw new DeviceError(`WebGPU device lost (${r.lost.reason}): ${r.lost.message}`);
  const first = r.errors[0];
  if (first) throw new DeviceError(`${r.errorCount} uncaptured WebGPU error(s); first: ${first.message.trim()}`);
}
