/**
 * @file Checkpoints and weights files, pure bytes so they work in Node and the browser. Both are
 * safetensors files (./safetensors.ts) that PyTorch, Hugging Face, candle or transformers.js open
 * as they are. A checkpoint holds every parameter and every optimizer state tensor under its own
 * name (`w1`, `w1@m`, `w1@v`, `@step`); a weights file holds the parameters only. Their
 * `__metadata__` (strings, as the format wants) says:
 *   adjoint.format  "checkpoint" or "weights"
 *   step            the training steps taken
 *   model           the model's name
 *   optimizer       the optimizer ("sgd", "sgd+momentum", "adam")
 *   params          a JSON list of the parameters' names (every other tensor is optimizer state)
 *   checksum        "crc32:" and 8 hex digits: the CRC-32 (zlib's) of the whole file as written
 *                   with those 8 digits as "00000000", so a flipped bit anywhere is caught
 * plus any free-form keys (`meta`, e.g. the epoch). A truncated or corrupted file is refused with
 * one line naming the file and the fault. Old `ADJCKPT1` checkpoints are read in Node only
 * (src/train/legacy-checkpoint.ts), which keeps the browser runtime small.
 */
import { CheckpointError, decodeSafetensors, encodeSafetensors, safetensorsHeader, type NamedTensor, type TensorData } from './safetensors.js';
import type { TensorSlot } from './artifact.js';

export { CheckpointError, type TensorData } from './safetensors.js';

export interface CheckpointData {
  readonly step: number;
  /** Every tensor, flat, by name. */
  readonly tensors: ReadonlyMap<string, TensorData>;
  /** Each tensor's shape; one not given is written 1-D. Absent for an old ADJCKPT1 file. */
  readonly shapes?: ReadonlyMap<string, readonly number[]>;
  readonly model?: string;
  readonly optimizer?: string;
  /** The tensors that are parameters (the rest are optimizer state); default: every tensor. */
  readonly params?: readonly string[];
  /** Free-form metadata (the epoch, …): written as strings, read back as strings. */
  readonly meta?: Readonly<Record<string, string | number>>;
}

/** Which file: a full training state, or parameters only. */
export type CheckpointKind = 'checkpoint' | 'weights';

const RESERVED = ['adjoint.format', 'step', 'model', 'optimizer', 'params', 'checksum'];
const LEGACY_MAGIC = 'ADJCKPT1';
const CHECKSUM_KEY = utf8('"checksum":"crc32:');
const HEX_ZEROS = utf8('00000000');

function utf8(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}

let table: Uint32Array | undefined;
/** CRC-32 (IEEE 802.3, zlib's `crc32`), continuing from `crc`. */
export function crc32(bytes: Uint8Array, crc = 0): number {
  if (!table) {
    table = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c >>> 0;
    }
  }
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = table[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/** Where the checksum's 8 hex digits start in the file, or -1; refuses a header that holds the key twice. */
function checksumAt(bytes: Uint8Array, json: Uint8Array, where: string): number {
  let found = -1;
  outer: for (let i = 0; i + CHECKSUM_KEY.length + 8 <= json.length; i++) {
    for (let j = 0; j < CHECKSUM_KEY.length; j++) if (json[i + j] !== CHECKSUM_KEY[j]) continue outer;
    if (found >= 0) throw new CheckpointError(`${where}: bad header: two checksums`);
    found = i + CHECKSUM_KEY.length;
  }
  return found < 0 ? -1 : json.byteOffset - bytes.byteOffset + found;
}

/** The file's CRC-32 with the 8 digits at `at` read as zeros. */
function fileCrc(bytes: Uint8Array, at: number): number {
  return crc32(bytes.subarray(at + 8), crc32(HEX_ZEROS, crc32(bytes.subarray(0, at))));
}

/** A checkpoint (or, with `kind` "weights", a weights file) as safetensors bytes. */
export function encodeCheckpoint(c: CheckpointData, kind: CheckpointKind = 'checkpoint'): Uint8Array {
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(c.meta ?? {})) {
    if (RESERVED.includes(k)) throw new CheckpointError(`internal: metadata key "${k}" is reserved`);
    metadata[k] = String(v);
  }
  metadata['adjoint.format'] = kind;
  metadata.step = String(c.step);
  if (c.model !== undefined) metadata.model = c.model;
  if (c.optimizer !== undefined) metadata.optimizer = c.optimizer;
  metadata.params = JSON.stringify(c.params ?? [...c.tensors.keys()]);
  metadata.checksum = 'crc32:00000000';
  const tensors = new Map<string, NamedTensor>();
  for (const [name, data] of c.tensors) tensors.set(name, { shape: c.shapes?.get(name) ?? [data.length], data });
  const bytes = encodeSafetensors(tensors, metadata);
  const at = checksumAt(bytes, safetensorsHeader(bytes, 'checkpoint').json, 'checkpoint');
  bytes.set(utf8(fileCrc(bytes, at).toString(16).padStart(8, '0')), at);
  return bytes;
}

/** Whether the bytes are an old `ADJCKPT1` checkpoint. */
export function isLegacyCheckpoint(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && String.fromCharCode(...bytes.subarray(0, 8)) === LEGACY_MAGIC;
}

/**
 * Any safetensors file or old checkpoint, verified: the checksum when the file has one (files
 * from other tools have none), and every tensor's place. `kind` says what the file claims to be
 * ("foreign": made by another tool).
 */
export function decodeWeightsFile(bytes: Uint8Array, where: string): CheckpointData & { readonly kind: CheckpointKind | 'foreign' } {
  if (isLegacyCheckpoint(bytes)) throw new CheckpointError(`${where}: an old ADJCKPT1 checkpoint: load it with loadCheckpointFile (Node), which still reads that format`);
  const fail = (why: string): never => {
    throw new CheckpointError(`${where}: ${why}`);
  };
  const file = decodeSafetensors(bytes, where);
  const m = file.metadata;
  if (m.checksum !== undefined) {
    const got = /^crc32:([0-9a-f]{8})$/.exec(m.checksum)?.[1];
    if (!got) fail(`bad checksum field "${m.checksum}" (want crc32: and 8 hex digits)`);
    const at = checksumAt(bytes, safetensorsHeader(bytes, where).json, where);
    if (at < 0) fail('bad header: the checksum is not where the writer puts it');
    if (fileCrc(bytes, at) !== parseInt(got!, 16)) fail('checksum mismatch: the file is corrupted');
  }
  const format = m['adjoint.format'];
  const kind = format === undefined ? 'foreign' : format === 'checkpoint' || format === 'weights' ? format : fail(`adjoint.format "${format}" is neither "checkpoint" nor "weights"`);
  if (kind !== 'foreign' && m.checksum === undefined) fail(`an adjoint ${kind} file with no checksum`);
  const step = m.step === undefined ? 0 : Number(m.step);
  if (!Number.isSafeInteger(step) || step < 0) fail(`bad step "${m.step}" in the metadata`);
  let params: string[] | undefined;
  if (m.params !== undefined) {
    try {
      params = JSON.parse(m.params) as string[];
    } catch { /* checked below */ }
    if (!Array.isArray(params) || !params.every((p) => typeof p === 'string' && file.tensors.has(p))) fail('bad params list in the metadata');
  }
  const meta: Record<string, string> = {};
  for (const [k, v] of Object.entries(m)) if (!RESERVED.includes(k)) meta[k] = v;
  const tensors = new Map<string, TensorData>();
  const shapes = new Map<string, readonly number[]>();
  for (const [name, t] of file.tensors) {
    tensors.set(name, t.data);
    shapes.set(name, t.shape);
  }
  return {
    kind, step, tensors, shapes, meta,
    ...(m.model !== undefined ? { model: m.model } : {}),
    ...(m.optimizer !== undefined ? { optimizer: m.optimizer } : {}),
    ...(params ? { params } : {}),
  };
}

/** An adjoint safetensors checkpoint (checksum required). Old ADJCKPT1 files: src/train/legacy-checkpoint.ts. */
export function decodeCheckpoint(bytes: Uint8Array, where = 'checkpoint'): CheckpointData {
  const { kind, ...c } = decodeWeightsFile(bytes, where);
  if (kind === 'weights') throw new CheckpointError(`${where}: a weights file (parameters only), not a checkpoint: start from it with --init`);
  if (kind === 'foreign') throw new CheckpointError(`${where}: a safetensors file from another tool, not an adjoint checkpoint: start from its weights with --init`);
  return c;
}

/**
 * The file's tensors for these parameter slots, checked: every slot present with its shape
 * (length only, for an old file with no shapes) and dtype, and no tensor that is neither a slot
 * nor the file's own optimizer state. Each mismatch is named in one line.
 */
export function matchTensors(file: CheckpointData, slots: readonly TensorSlot[], where: string, role = 'parameter'): Map<string, TensorData> {
  const fail = (why: string): never => {
    throw new CheckpointError(`${where}: ${why}`);
  };
  const out = new Map<string, TensorData>();
  const fmt = (s: readonly number[]) => `[${s.join(',')}]`;
  for (const s of slots) {
    const t = file.tensors.get(s.name);
    if (!t) fail(`no tensor "${s.name}" (the model's ${role} ${s.name}${fmt(s.shape)}); the file has ${[...file.tensors.keys()].slice(0, 8).join(', ') || 'none'}${file.tensors.size > 8 ? ', …' : ''}`);
    const shape = file.shapes?.get(s.name);
    const want = s.shape.reduce((a, b) => a * b, 1);
    if (shape ? fmt(shape) !== fmt(s.shape) : t!.length !== want) fail(`tensor "${s.name}" is ${shape ? fmt(shape) : `${t!.length} values`}, the model's ${role} is ${fmt(s.shape)}`);
    if ((t instanceof Int32Array ? 'i32' : 'f32') !== s.dtype) fail(`tensor "${s.name}" is ${t instanceof Int32Array ? 'I32' : 'F32'}, the model's ${role} is ${s.dtype === 'i32' ? 'I32' : 'F32'}`);
    out.set(s.name, t!);
  }
  const names = new Set(slots.map((s) => s.name));
  const params = new Set(file.params ?? file.tensors.keys());
  const extra = [...file.tensors.keys()].filter((n) => !names.has(n) && params.has(n));
  if (extra.length) fail(`tensor "${extra[0]}" is not a ${role} of the model${extra.length > 1 ? ` (nor ${extra.length - 1} more)` : ''}`);
  return out;
}

/** The parameters of a checkpoint (or weights file) alone, with their shapes. */
export function weightsOf(c: CheckpointData): CheckpointData {
  const names = c.params ?? [...c.tensors.keys()];
  return {
    step: c.step,
    tensors: new Map(names.map((n) => [n, c.tensors.get(n)!])),
    shapes: new Map(names.map((n) => [n, c.shapes?.get(n) ?? [c.tensors.get(n)!.length]])),
    params: names,
    ...(c.model !== undefined ? { model: c.model } : {}),
    ...(c.optimizer !== undefined ? { optimizer: c.optimizer } : {}),
  };
}
