/**
 * @file Old `ADJCKPT1` checkpoints, read (never written) so that runs saved before checkpoints
 * became safetensors files still resume: the magic, a JSON header (step, meta, each tensor's name,
 * dtype, length and byte offset), the tensors' bytes, and a CRC-32 of everything before it. They
 * have no shapes and do not say which tensors are parameters (optimizer state names hold an `@`).
 * Node-side only: the browser runtime has no old files to read.
 */
import { CheckpointError, crc32, type CheckpointData, type TensorData } from '../runtime/checkpoint.js';

interface LegacyHeader {
  step: number;
  meta: Record<string, string | number>;
  tensors: { name: string; dtype: 'f32' | 'i32'; length: number; offset: number }[];
}

/** An old `ADJCKPT1` checkpoint, verified. */
export function decodeLegacyCheckpoint(bytes: Uint8Array, where = 'checkpoint'): CheckpointData {
  const fail = (why: string): never => {
    throw new CheckpointError(`${where}: old ADJCKPT1 checkpoint: ${why}`);
  };
  if (bytes.length < 16) fail(`truncated (${bytes.length} bytes)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (crc32(bytes.subarray(0, bytes.length - 4)) !== view.getUint32(bytes.length - 4, true)) fail('checksum mismatch: the file is truncated or corrupted');
  const hlen = view.getUint32(8, true);
  if (12 + hlen > bytes.length - 4) fail('truncated header');
  let header: LegacyHeader;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + hlen))) as LegacyHeader;
  } catch {
    return fail('unreadable header');
  }
  const base = 12 + Math.ceil(hlen / 4) * 4;
  const tensors = new Map<string, TensorData>();
  for (const t of header.tensors) {
    const start = base + t.offset;
    if (start + t.length * 4 > bytes.length - 4) fail(`tensor "${t.name}" runs past the end`);
    const copy = new Uint8Array(bytes.subarray(start, start + t.length * 4));
    tensors.set(t.name, t.dtype === 'i32' ? new Int32Array(copy.buffer) : new Float32Array(copy.buffer));
  }
  const { model, ...meta } = header.meta;
  return {
    step: header.step, tensors, meta,
    params: [...tensors.keys()].filter((n) => !n.includes('@')),
    ...(model !== undefined ? { model: String(model) } : {}),
  };
}
