/**
 * @file The safetensors format (https://github.com/huggingface/safetensors), read and written as
 * pure bytes so it works in Node and in the browser: an 8-byte little-endian header length, a JSON
 * header (`__metadata__`, a string map, and per tensor its `dtype`, `shape` and `data_offsets`
 * into the data section), padded with spaces to a multiple of 8, then the tensors' bytes. The
 * writer lays the file out as the reference implementation does (tensors by dtype, then by name in
 * UTF-8 byte order; offsets contiguous from 0), so its output equals the Python package's for the
 * same tensors, up to the order of the metadata keys (test/safetensors.test.ts). The reader checks
 * everything the reference checks — header length, JSON, dtypes, shapes, offsets that tile the
 * data section exactly — and names the tensor and the fault in one line.
 *
 * Written here rather than taken from npm: no maintained JavaScript reader/writer exists there
 * (`safetensors` is a 0.0.1 placeholder; `@huggingface/hub` only fetches headers over HTTP).
 * Only F32 and I32 tensors are read and written: they are what the runtime holds.
 */
import { AdjointError } from '../ir/errors.js';

/** A checkpoint or weights file cannot be read: truncated, corrupted, not the format, wrong tensors. */
export class CheckpointError extends AdjointError {
  override name = 'CheckpointError';
}

export type TensorData = Float32Array | Int32Array;

export interface NamedTensor {
  readonly shape: readonly number[];
  readonly data: TensorData;
}

export interface SafetensorsFile {
  readonly tensors: ReadonlyMap<string, NamedTensor>;
  readonly metadata: Readonly<Record<string, string>>;
}

/** The reference implementation's limit on the header (100 MB): a larger length is not a header. */
const MAX_HEADER = 100_000_000;
const DTYPES = { F32: Float32Array, I32: Int32Array } as const;
type DType = keyof typeof DTYPES;
/** Position in the reference's dtype enum; the writer puts higher ones first. */
const DTYPE_RANK: Record<DType, number> = { I32: 0, F32: 1 };

const utf8 = new TextEncoder();

function dtypeOf(a: TensorData): DType {
  return a instanceof Int32Array ? 'I32' : 'F32';
}

/** The reference sorts names as Rust strings: by UTF-8 bytes (JS `<` compares UTF-16 units). */
function byteOrder(a: string, b: string): number {
  const x = utf8.encode(a);
  const y = utf8.encode(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return x.length - y.length;
}

const numel = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** A safetensors file of these tensors and metadata. */
export function encodeSafetensors(tensors: ReadonlyMap<string, NamedTensor>, metadata: Readonly<Record<string, string>> = {}): Uint8Array {
  const order = [...tensors.entries()].sort(([an, a], [bn, b]) => DTYPE_RANK[dtypeOf(b.data)] - DTYPE_RANK[dtypeOf(a.data)] || byteOrder(an, bn));
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = { ...metadata };
  let offset = 0;
  for (const [name, t] of order) {
    if (name === '__metadata__') throw new CheckpointError('a tensor cannot be named "__metadata__"');
    if (numel(t.shape) !== t.data.length) throw new CheckpointError(`internal: tensor "${name}" has ${t.data.length} values for shape [${t.shape.join(',')}]`);
    header[name] = { dtype: dtypeOf(t.data), shape: [...t.shape], data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  const json = utf8.encode(JSON.stringify(header));
  const hlen = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + hlen + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(hlen), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + hlen);
  let at = 8 + hlen;
  for (const [, t] of order) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
    at += t.data.byteLength;
  }
  return out;
}

/** The header's JSON text and where the data section starts; refuses a file too short for its header. */
export function safetensorsHeader(bytes: Uint8Array, where: string): { readonly json: Uint8Array; readonly dataStart: number } {
  const fail = (why: string): never => {
    throw new CheckpointError(`${where}: ${why}`);
  };
  if (bytes.length < 8) fail(`truncated (${bytes.length} bytes): not even the 8-byte header length of a safetensors file`);
  const n = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER)) fail(`not a safetensors file (its first 8 bytes give a header of ${n} bytes)`);
  if (8 + Number(n) > bytes.length) fail(`truncated: the header needs ${n} bytes, the file has ${bytes.length - 8} after the length`);
  return { json: bytes.subarray(8, 8 + Number(n)), dataStart: 8 + Number(n) };
}

/** Reads a safetensors file; every tensor is copied out of `bytes`. */
export function decodeSafetensors(bytes: Uint8Array, where = 'safetensors file'): SafetensorsFile {
  const fail = (why: string): never => {
    throw new CheckpointError(`${where}: ${why}`);
  };
  const { json, dataStart } = safetensorsHeader(bytes, where);
  let header: unknown;
  try {
    if (json[0] !== 0x7b) throw new Error('no object');
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(json));
  } catch {
    return fail('bad header: not a JSON object (not a safetensors file, or a corrupted one)');
  }
  if (!header || typeof header !== 'object' || Array.isArray(header)) return fail('bad header: not a JSON object');
  const metadata: Record<string, string> = {};
  const entries: { name: string; dtype: DType; shape: number[]; begin: number; end: number }[] = [];
  for (const [name, v] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (!v || typeof v !== 'object' || Array.isArray(v)) fail('bad header: __metadata__ is not a map of strings');
      for (const [k, s] of Object.entries(v as object)) {
        if (typeof s !== 'string') fail(`bad header: __metadata__ "${k}" is not a string`);
        metadata[k] = s as string;
      }
      continue;
    }
    const t = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown } | null;
    if (!t || typeof t !== 'object') fail(`bad header: tensor "${name}" is not an object`);
    const { dtype, shape, data_offsets: off } = t!;
    if (typeof dtype !== 'string') return fail(`bad header: tensor "${name}" has no dtype`);
    if (!Object.hasOwn(DTYPES, dtype)) fail(`tensor "${name}" is ${dtype}; only F32 and I32 tensors are read (convert it to float32 first, e.g. tensor.float() in PyTorch)`);
    const whole = (x: unknown) => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
    if (!Array.isArray(shape) || !shape.every(whole)) return fail(`bad header: tensor "${name}" has a bad shape ${JSON.stringify(shape)}`);
    if (!Array.isArray(off) || off.length !== 2 || !off.every(whole) || off[0] > off[1]) return fail(`bad header: tensor "${name}" has bad data_offsets ${JSON.stringify(off)}`);
    entries.push({ name, dtype: dtype as DType, shape: shape as number[], begin: off[0] as number, end: off[1] as number });
  }
  const dataLength = bytes.length - dataStart;
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  for (const e of entries) {
    const need = numel(e.shape) * 4;
    if (e.end - e.begin !== need) fail(`tensor "${e.name}": shape [${e.shape.join(',')}] needs ${need} bytes, its data_offsets [${e.begin},${e.end}] hold ${e.end - e.begin}`);
    if (e.begin !== at) fail(e.begin < at ? `tensor "${e.name}" overlaps the tensor before it (data_offsets [${e.begin},${e.end}])` : `bad header: a gap of ${e.begin - at} bytes before tensor "${e.name}"`);
    if (e.end > dataLength) fail(`truncated: tensor "${e.name}" ends at byte ${e.end} of the data, which has ${dataLength}`);
    at = e.end;
  }
  if (at !== dataLength) fail(`${dataLength - at} bytes after the last tensor (a corrupted header or a damaged file)`);
  const tensors = new Map<string, NamedTensor>();
  for (const e of entries) {
    // A copy into a fresh buffer: the data may be unaligned, and a view of a Node Buffer spans the whole file.
    const copy = new Uint8Array(bytes.subarray(dataStart + e.begin, dataStart + e.end));
    tensors.set(e.name, { shape: e.shape, data: new DTYPES[e.dtype](copy.buffer) });
  }
  return { tensors, metadata };
}
