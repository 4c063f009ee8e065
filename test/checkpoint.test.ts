/**
 * @file Checkpoint files: an exact round trip; a truncated file, a flipped byte, a wrong magic and
 * an empty file each refused with a CheckpointError that names the file; and a crash test: a
 * child process saves large checkpoints in a loop with the real atomic writer and is SIGKILLed at
 * random moments, after which the checkpoint path always holds a complete version that was
 * written — never a torn file, never shadowed by the temporary files a killed save leaves behind.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdjointError } from '../src/ir/errors.js';
import { CheckpointError, crc32, decodeCheckpoint } from '../src/runtime/checkpoint.js';
import { loadCheckpointFile, saveCheckpointFile } from '../src/train/checkpoint-file.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'adjoint-ckpt-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const bits = (a: Float32Array | Int32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

/** A small checkpoint with awkward values (NaN, -0, infinities, denormals, i32 extremes). */
function sample() {
  return {
    step: 1234,
    tensors: new Map<string, Float32Array | Int32Array>([
      ['layer.w', Float32Array.of(1.5, -0, NaN, Infinity, -Infinity, 1e-45, 3.4028234663852886e38)],
      ['moments/m', new Float32Array(1000).map((_, i) => i / 7)],
      ['t', Int32Array.of(-2147483648, 2147483647, 0, -1)],
      ['é', new Float32Array(0)],
    ]),
    meta: { epoch: 3, model: 'mlp' },
  };
}

/** Writes `bytes` to a fresh file and expects loading it to fail with a CheckpointError naming it. */
function expectRefused(name: string, bytes: Uint8Array, why: RegExp): void {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  let err: unknown;
  try {
    loadCheckpointFile(path);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(CheckpointError);
  expect(err).toBeInstanceOf(AdjointError);
  expect((err as Error).message.startsWith(`${path}: `), (err as Error).message).toBe(true);
  expect((err as Error).message).toMatch(why);
}

describe('checkpoint files', () => {
  it('round-trips step, metadata and every tensor bit for bit', () => {
    const path = join(dir, 'sub', 'dir', 'ok.ckpt');
    const c = sample();
    saveCheckpointFile(path, c);
    const back = loadCheckpointFile(path);
    expect(back.step).toBe(1234);
    expect(back.meta).toEqual({ epoch: 3, model: 'mlp' });
    expect([...back.tensors.keys()]).toEqual([...c.tensors.keys()]);
    for (const [name, t] of c.tensors) {
      const got = back.tensors.get(name)!;
      expect(got.constructor, name).toBe(t.constructor);
      expect(bits(got), name).toEqual(bits(t));
    }
    // Nothing but the checkpoint is left in the directory.
    expect(readdirSync(join(dir, 'sub', 'dir'))).toEqual(['ok.ckpt']);
  });

  it('saving again replaces the file atomically with the new version', () => {
    const path = join(dir, 'twice.ckpt');
    saveCheckpointFile(path, { step: 1, tensors: new Map([['a', Float32Array.of(1)]]) });
    saveCheckpointFile(path, { step: 2, tensors: new Map([['a', Float32Array.of(2)]]) });
    const back = loadCheckpointFile(path);
    expect(back.step).toBe(2);
    expect(Array.from(back.tensors.get('a')!)).toEqual([2]);
    expect(readdirSync(dir).filter((f) => f.includes('twice'))).toEqual(['twice.ckpt']);
  });

  describe('a damaged file is refused with a CheckpointError naming it', () => {
    let good: Uint8Array;
    beforeAll(() => {
      const path = join(dir, 'good.ckpt');
      saveCheckpointFile(path, sample());
      good = new Uint8Array(readFileSync(path)); // a plain copy: slices of a Node Buffer share its bytes
    });

    it('truncated anywhere', () => {
      for (const len of [good.length - 1, good.length - 4, Math.floor(good.length / 2), 20, 16]) {
        expectRefused(`trunc${len}.ckpt`, good.subarray(0, len), /checksum mismatch: the file is truncated or corrupted/);
      }
      for (const len of [15, 8, 1]) expectRefused(`short${len}.ckpt`, good.subarray(0, len), new RegExp(`truncated \\(${len} bytes\\)`));
      // Truncating the file on disk in place, as a crash of a non-atomic writer would.
      const path = join(dir, 'inplace.ckpt');
      writeFileSync(path, good);
      truncateSync(path, good.length - 100);
      expect(() => loadCheckpointFile(path)).toThrow(CheckpointError);
      expect(() => loadCheckpointFile(path)).toThrow(`${path}: checksum mismatch`);
    });

    it('one flipped byte anywhere: magic, header length, header, data, checksum', () => {
      const hlen = new DataView(good.buffer, good.byteOffset).getUint32(8, true);
      const spots = { magic: 3, length: 9, header: 12 + Math.floor(hlen / 2), data: good.length - 40, checksum: good.length - 2 };
      for (const [where, at] of Object.entries(spots)) {
        const bad = good.slice();
        bad[at]! ^= 0x10;
        expectRefused(`flip-${where}.ckpt`, bad, where === 'magic' ? /bad magic/ : /checksum mismatch/);
      }
    });

    it('a wrong magic', () => {
      const bad = good.slice();
      bad.set(new TextEncoder().encode('PK\x03\x04JUNK'), 0);
      expectRefused('magic.ckpt', bad, /not an adjoint checkpoint \(bad magic\)/);
      expectRefused('text.ckpt', new TextEncoder().encode('{"step": 1, "tensors": []}\n'), /not an adjoint checkpoint \(bad magic\)/);
    });

    it('an empty file, and a missing one', () => {
      expectRefused('empty.ckpt', new Uint8Array(0), /truncated \(0 bytes\)/);
      const missing = join(dir, 'missing.ckpt');
      expect(() => loadCheckpointFile(missing)).toThrow(CheckpointError);
      expect(() => loadCheckpointFile(missing)).toThrow(`${missing}: cannot read (ENOENT)`);
    });

    it('a tensor that runs past the end, even under a valid checksum', () => {
      // Hand-made: a header that promises 4 floats but carries 1, with a correct CRC-32.
      const header = new TextEncoder().encode(JSON.stringify({ step: 0, meta: {}, tensors: [{ name: 'w', dtype: 'f32', length: 4, offset: 0 }] }));
      const hpad = Math.ceil(header.length / 4) * 4;
      const bytes = new Uint8Array(12 + hpad + 4 + 4);
      bytes.set(new TextEncoder().encode('ADJCKPT1'), 0);
      new DataView(bytes.buffer).setUint32(8, header.length, true);
      bytes.set(header, 12);
      new DataView(bytes.buffer).setUint32(bytes.length - 4, crc32(bytes.subarray(0, bytes.length - 4)), true);
      expect(() => decodeCheckpoint(bytes, 'hand.ckpt')).toThrow('hand.ckpt: tensor "w" runs past the end');
    });
  });
});

describe('a writer killed at random moments never leaves a torn checkpoint', () => {
  const FLOATS = 2_000_000; // 8 MB per checkpoint: a save takes long enough to be interrupted
  const KILLS = 6;
  const MAX_KILLS = 40;
  let bundle: string;

  beforeAll(async () => {
    bundle = join(dir, 'checkpoint-file.mjs');
    await build({
      entryPoints: [fileURLToPath(new URL('../src/train/checkpoint-file.ts', import.meta.url))],
      bundle: true, platform: 'node', format: 'esm', outfile: bundle, logLevel: 'silent',
    });
  });

  /**
   * Starts a writer at version `first`; resolves with the versions it reported saved when it dies.
   * After its first finished save it is killed `killAfterMs` later, or with `atBegin` that long
   * after it says it begins the next save (so that the kill lands inside a save, not between two).
   */
  function runWriter(path: string, first: number, killAfterMs: number, atBegin = false): Promise<{ saved: number[]; signal: NodeJS.Signals | null }> {
    const writer = fileURLToPath(new URL('./fixtures/checkpoint-writer.mjs', import.meta.url));
    const child = spawn(process.execPath, [writer, bundle, path, String(first), String(FLOATS)], { stdio: ['ignore', 'pipe', 'pipe'] });
    const saved: number[] = [];
    let out = '';
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    return new Promise((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const lines = out.split('\n');
        out = lines.pop()!;
        for (const l of lines) {
          if (atBegin && saved.length && /^begin \d+$/.test(l)) setTimeout(() => child.kill('SIGKILL'), killAfterMs);
          const v = Number(/^saved (\d+)$/.exec(l)?.[1]);
          if (!Number.isInteger(v)) continue;
          // The first finished save arms the kill, at a random moment of the saves that follow.
          if (!saved.length && !atBegin) setTimeout(() => child.kill('SIGKILL'), killAfterMs);
          saved.push(v);
        }
      });
      child.on('error', reject);
      child.on('exit', (code, signal) => {
        if (signal !== 'SIGKILL') reject(new Error(`writer exited with ${code ?? signal}: ${err}`));
        else resolve({ saved, signal });
      });
    });
  }

  it(`${KILLS} or more kills mid-save: the file always decodes to a complete version that was written`, async () => {
    const sub = mkdtempSync(join(dir, 'crash-'));
    const path = join(sub, 'model.ckpt');
    let next = 0;
    const stale = new Set<string>();
    // At least KILLS kills, and more (up to MAX_KILLS) until one has landed between the temporary
    // file's creation and its rename: the moment the atomic write exists for.
    for (let k = 0; k < MAX_KILLS && (k < KILLS || stale.size === 0); k++) {
      // Half the kills at a random moment, half a few milliseconds into a save.
      const atBegin = k % 2 === 1;
      const { saved } = await runWriter(path, next, Math.floor(Math.random() * (atBegin ? 60 : 400)), atBegin);
      expect(saved.length, 'the writer finished at least one save before the kill').toBeGreaterThan(0);
      const last = saved.at(-1)!;
      // A reported save has been renamed into place; the one in flight may or may not have been.
      const c = loadCheckpointFile(path);
      expect(c.step === last || c.step === last + 1, `version ${c.step} after reports up to ${last}`).toBe(true);
      expect(c.meta).toEqual({ version: c.step });
      expect(Array.from(c.tensors.get('v')!)).toEqual([c.step]);
      const w = c.tensors.get('w')!;
      expect(w.length).toBe(FLOATS);
      let mismatches = 0;
      for (let i = 0; i < FLOATS; i++) if (w[i] !== (c.step * 7 + i) % 1000) mismatches++;
      expect(mismatches, `version ${c.step} holds exactly what was written`).toBe(0);
      // Only the checkpoint and stale temporaries of killed saves; none is read instead of it.
      const others = readdirSync(sub).filter((f) => f !== 'model.ckpt');
      expect(readdirSync(sub)).toContain('model.ckpt');
      for (const f of others) {
        expect(f).toMatch(/^\.model\.ckpt\.\d+\.tmp$/);
        stale.add(f);
      }
      next = last + 2;
    }
    // Each writer has its own pid, so each save killed between open and rename left its own file.
    expect(stale.size, 'at least one kill landed in the middle of a save').toBeGreaterThan(0);
  }, 120_000);
});
