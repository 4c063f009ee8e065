/**
 * @file The checkpoint format, pure bytes so it works in Node and the browser: the magic
 * `ADJCKPT1`, a JSON header (step, and each tensor's name, dtype, shape and byte offset), the
 * tensors' bytes, and a CRC-32 of everything before it. A truncated or corrupted file is detected
 * on decode and named in the error.
 */
import { AdjointError } from '../ir/errors.js';

export class CheckpointError extends AdjointError {
  override name = 'CheckpointError';
}

export interface CheckpointData {
  readonly step: number;
  readonly tensors: ReadonlyMap<string, Float32Array | Int32Array>;
  /** Free-form metadata (model name, epoch, …). */
  readonly meta?: Readonly<Record<string, string | number>>;
}

const MAGIC = 'ADJCKPT1';

let table: Uint32Array | undefined;
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

interface Header {
  step: number;
  meta: Record<string, string | number>;
  tensors: { name: string; dtype: 'f32' | 'i32'; length: number; offset: number }[];
}

export function encodeCheckpoint(c: CheckpointData): Uint8Array {
  const header: Header = { step: c.step, meta: { ...c.meta }, tensors: [] };
  let offset = 0;
  for (const [name, t] of c.tensors) {
    header.tensors.push({ name, dtype: t instanceof Int32Array ? 'i32' : 'f32', length: t.length, offset });
    offset += t.length * 4;
  }
  const hbytes = new TextEncoder().encode(JSON.stringify(header));
  const hpad = Math.ceil(hbytes.length / 4) * 4;
  const total = 8 + 4 + hpad + offset + 4;
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  out.set(new TextEncoder().encode(MAGIC), 0);
  view.setUint32(8, hbytes.length, true);
  out.set(hbytes, 12);
  const base = 12 + hpad;
  for (const [name, t] of c.tensors) {
    const h = header.tensors.find((x) => x.name === name)!;
    out.set(new Uint8Array(t.buffer, t.byteOffset, t.length * 4), base + h.offset);
  }
  view.setUint32(total - 4, crc32(out.subarray(0, total - 4)), true);
  return out;
}

export function decodeCheckpoint(bytes: Uint8Array, where = 'checkpoint'): CheckpointData {
  const fail = (why: string): never => {
    throw new CheckpointError(`${where}: ${why}`);
  };
  if (bytes.length < 16) fail(`truncated (${bytes.length} bytes)`);
  if (new TextDecoder().decode(bytes.subarray(0, 8)) !== MAGIC) fail('not an adjoint checkpoint (bad magic)');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const want = view.getUint32(bytes.length - 4, true);
  if (crc32(bytes.subarray(0, bytes.length - 4)) !== want) fail('checksum mismatch: the file is truncated or corrupted');
  const hlen = view.getUint32(8, true);
  if (12 + hlen > bytes.length - 4) fail('truncated header');
  let header: Header;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + hlen))) as Header;
  } catch {
    return fail('unreadable header');
  }
  const base = 12 + Math.ceil(hlen / 4) * 4;
  const tensors = new Map<string, Float32Array | Int32Array>();
  for (const t of header.tensors) {
    const start = base + t.offset;
    if (start + t.length * 4 > bytes.length - 4) fail(`tensor "${t.name}" runs past the end`);
    // A copy into a fresh buffer: `slice` of a Node Buffer (what readFileSync returns) is a view of
    // the whole file, so a typed array over its `.buffer` would span every tensor.
    const copy = new Uint8Array(bytes.subarray(start, start + t.length * 4));
    tensors.set(t.name, t.dtype === 'i32' ? new Int32Array(copy.buffer) : new Float32Array(copy.buffer));
  }
  return { step: header.step, tensors, meta: header.meta };
}
