/**
 * @file Checkpoint files in Node, written atomically: the bytes go to a temporary file in the
 * same directory, are flushed to disk, and the file is renamed over the old one, so a crash at
 * any moment leaves either the previous checkpoint or the new one, never a torn file. Both
 * checkpoints and weights files are safetensors files (src/runtime/checkpoint.ts).
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync, mkdirSync, unlinkSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { decodeCheckpoint, decodeWeightsFile, encodeCheckpoint, isLegacyCheckpoint, CheckpointError, type CheckpointData, type CheckpointKind } from '../runtime/checkpoint.js';
import { decodeLegacyCheckpoint } from './legacy-checkpoint.js';

/** Writes a checkpoint (or, with `kind` "weights", a weights file) atomically. */
export function saveCheckpointFile(path: string, c: CheckpointData, kind: CheckpointKind = 'checkpoint'): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `.${basename(path)}.${process.pid}.tmp`);
  const bytes = encodeCheckpoint(c, kind);
  const fd = openSync(tmp, 'w');
  try {
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    try { unlinkSync(tmp); } catch { /* already gone */ }
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, path);
  try {
    const dfd = openSync(dir, 'r');
    fsyncSync(dfd);
    closeSync(dfd);
  } catch { /* directories cannot be fsynced on some platforms */ }
}

function readBytes(path: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new CheckpointError(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

/** A checkpoint written by `saveCheckpointFile` (or an old ADJCKPT1 one), verified. */
export function loadCheckpointFile(path: string): CheckpointData {
  const bytes = readBytes(path);
  return isLegacyCheckpoint(bytes) ? decodeLegacyCheckpoint(bytes, path) : decodeCheckpoint(bytes, path);
}

/** Any safetensors file (ours or another tool's) or old checkpoint, verified where it carries a checksum. */
export function loadWeightsFile(path: string): CheckpointData & { readonly kind: ReturnType<typeof decodeWeightsFile>['kind'] | 'adjckpt1' } {
  const bytes = readBytes(path);
  return isLegacyCheckpoint(bytes) ? { ...decodeLegacyCheckpoint(bytes, path), kind: 'adjckpt1' } : decodeWeightsFile(bytes, path);
}
