/**
 * @file Checkpoint files in Node, written atomically: the bytes go to a temporary file in the
 * same directory, are flushed to disk, and the file is renamed over the old one, so a crash at
 * any moment leaves either the previous checkpoint or the new one, never a torn file.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync, mkdirSync, unlinkSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { decodeCheckpoint, encodeCheckpoint, CheckpointError, type CheckpointData } from '../runtime/checkpoint.js';

export function saveCheckpointFile(path: string, c: CheckpointData): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `.${basename(path)}.${process.pid}.tmp`);
  const bytes = encodeCheckpoint(c);
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

export function loadCheckpointFile(path: string): CheckpointData {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new CheckpointError(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  return decodeCheckpoint(bytes, path);
}
