/**
 * @file Checkpoint files (safetensors, src/runtime/checkpoint.ts): an exact round trip; a
 * truncated file, a flipped byte anywhere, a bad header, offsets out of range, a wrong checksum,
 * an empty file, a foreign or weights file where a checkpoint is wanted, each refused with one
 * CheckpointError line that names the file; an old ADJCKPT1 file still read; and a crash test: a
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
import { CheckpointError, crc32, decodeCheckpoint, encodeCheckpoint, type CheckpointData } from '../src/runtime/checkpoint.js';
import { encodeSafetensors } from '../src/runtime/safetensors.js';
import { loadCheckpointFile, saveCheckpointFile } from '../src/train/checkpoint-file.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'adjoint-ckpt-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const bits = (a: Float32Array | Int32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

/** A small checkpoint with awkward values (NaN, -0, infinities, denormals, i32 extremes). */
function sample(): CheckpointData {
  return {
    step: 1234,
    tensors: new Map<string, Float32Array | Int32Array>([
      ['layer.w', Float32Array.of(1.5, -0, NaN, Infinity, -Infinity, 1e-45, 3.4028234663852886e38, 2)],
      ['layer.w@m', new Float32Array(1000).map((_, i) => i / 7)],
      ['t', Int32Array.of(-2147483648, 2147483647, 0, -1)],
      ['é', new Float32Array(0)],
    ]),
    shapes: new Map([['layer.w', [2, 4]], ['layer.w@m', [10, 100]]]),
    model: 'mlp',
    optimizer: 'sgd+momentum',
    params: ['layer.w', 't', 'é'],
    meta: { epoch: 3 },
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
  expect(err, name).toBeInstanceOf(CheckpointError);
  expect(err).toBeInstanceOf(AdjointError);
  expect((err as Error).message.startsWith(`${path}: `), (err as Error).message).toBe(true);
  expect((err as Error).message).not.toContain('\n');
  expect((err as Error).message, name).toMatch(why);
}

/** A safetensors file's header length and parsed header. */
function headerOf(bytes: Uint8Array): { n: number; json: Record<string, unknown> } {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return { n, json: JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Record<string, unknown> };
}

/** Re-signs hand-edited bytes, so that a test reaches the checks behind the checksum. */
function resign(bytes: Uint8Array): Uint8Array {
  const key = new TextEncoder().encode('"checksum":"crc32:');
  const text = new TextDecoder('latin1').decode(bytes);
  const at = text.indexOf('"checksum":"crc32:') + key.length;
  const out = bytes.slice();
  out.set(new TextEncoder().encode('00000000'), at);
  out.set(new TextEncoder().encode(crc32(out).toString(16).padStart(8, '0')), at);
  return out;
}

describe('checkpoint files', () => {
  it('round-trips step, model, optimizer, params, metadata, shapes and every tensor bit for bit', () => {
    const path = join(dir, 'sub', 'dir', 'ok.safetensors');
    const c = sample();
    saveCheckpointFile(path, c);
    const back = loadCheckpointFile(path);
    expect(back.step).toBe(1234);
    expect(back.model).toBe('mlp');
    expect(back.optimizer).toBe('sgd+momentum');
    expect(back.params).toEqual(['layer.w', 't', 'é']);
    expect(back.meta).toEqual({ epoch: '3' }); // safetensors metadata are strings
    expect(back.shapes).toEqual(new Map([['layer.w', [2, 4]], ['layer.w@m', [10, 100]], ['t', [4]], ['é', [0]]]));
    expect(new Set(back.tensors.keys())).toEqual(new Set(c.tensors.keys()));
    for (const [name, t] of c.tensors) {
      const got = back.tensors.get(name)!;
      expect(got.constructor, name).toBe(t.constructor);
      expect(bits(got), name).toEqual(bits(t));
    }
    // The file is plain safetensors: the header says it all.
    const { json } = headerOf(readFileSync(path));
    expect(json['layer.w']).toEqual({ dtype: 'F32', shape: [2, 4], data_offsets: [0, 32] });
    expect(json.t).toMatchObject({ dtype: 'I32', shape: [4] });
    expect((json.__metadata__ as Record<string, string>).checksum).toMatch(/^crc32:[0-9a-f]{8}$/);
    // Nothing but the checkpoint is left in the directory.
    expect(readdirSync(join(dir, 'sub', 'dir'))).toEqual(['ok.safetensors']);
  });

  it('saving again replaces the file atomically with the new version', () => {
    const path = join(dir, 'twice.safetensors');
    saveCheckpointFile(path, { step: 1, tensors: new Map([['a', Float32Array.of(1)]]) });
    saveCheckpointFile(path, { step: 2, tensors: new Map([['a', Float32Array.of(2)]]) });
    const back = loadCheckpointFile(path);
    expect(back.step).toBe(2);
    expect(Array.from(back.tensors.get('a')!)).toEqual([2]);
    expect(readdirSync(dir).filter((f) => f.includes('twice'))).toEqual(['twice.safetensors']);
  });

  it('an old ADJCKPT1 checkpoint (written by the previous format\'s encoder) still loads', () => {
    const c = loadCheckpointFile(fileURLToPath(new URL('./fixtures/safetensors/legacy-adjckpt1.ckpt', import.meta.url)));
    expect(c.step).toBe(62);
    expect(c.model).toBe('tiny');
    expect(c.meta).toEqual({ epoch: 1 });
    expect(c.params).toEqual(['w', 'b']);
    expect(Array.from(c.tensors.get('w')!)).toEqual([0.5, -1.25, 3, 1e-45].map(Math.fround));
    expect(Array.from(c.tensors.get('b@m')!)).toEqual([1, 2]);
  });

  describe('a damaged file is refused with a CheckpointError naming it', () => {
    let good: Uint8Array;
    beforeAll(() => {
      const path = join(dir, 'good.safetensors');
      saveCheckpointFile(path, sample());
      good = new Uint8Array(readFileSync(path)); // a plain copy: slices of a Node Buffer share its bytes
    });

    it('truncated anywhere', () => {
      const { n } = headerOf(good);
      for (const len of [good.length - 1, good.length - 4, 8 + n + 40, 8 + n]) {
        expectRefused(`trunc${len}.safetensors`, good.subarray(0, len), /truncated: tensor ".*" ends at byte \d+ of the data, which has \d+/);
      }
      for (const len of [8 + n - 1, 20, 9]) expectRefused(`header${len}.safetensors`, good.subarray(0, len), /truncated: the header needs \d+ bytes/);
      for (const len of [7, 1]) expectRefused(`short${len}.safetensors`, good.subarray(0, len), new RegExp(`truncated \\(${len} bytes\\)`));
      // Truncating the file on disk in place, as a crash of a non-atomic writer would.
      const path = join(dir, 'inplace.safetensors');
      writeFileSync(path, good);
      truncateSync(path, good.length - 100);
      expect(() => loadCheckpointFile(path)).toThrow(CheckpointError);
      expect(() => loadCheckpointFile(path)).toThrow(`${path}: truncated`);
    });

    it('one flipped bit anywhere: header length, header JSON, metadata, data, checksum', () => {
      const { n } = headerOf(good);
      const text = new TextDecoder('latin1').decode(good.subarray(0, 8 + n));
      const spots = {
        length: [0, /not a safetensors file|truncated|bad header|bytes after the last tensor/],
        brace: [8, /bad header: not a JSON object/],
        step: [text.indexOf('"step":"1234"') + 9, /checksum mismatch: the file is corrupted/],
        name: [text.indexOf('"layer.w"') + 2, /checksum mismatch/],
        shape: [text.indexOf('"shape":[2,4]') + 9, /tensor "layer.w": shape \[0,4\] needs 0 bytes, its data_offsets \[0,32\] hold 32/],
        data: [good.length - 40, /checksum mismatch: the file is corrupted/],
        checksum: [text.indexOf('crc32:') + 8, /checksum mismatch|bad checksum field/],
      } as const;
      for (const [where, [at, why]] of Object.entries(spots)) {
        expect(at, where).toBeGreaterThan(-1);
        const bad = good.slice();
        bad[at]! ^= 0x02;
        expectRefused(`flip-${where}.safetensors`, bad, why);
      }
      // Every single byte of the data section flipped in turn: not one is accepted.
      let accepted = 0;
      for (let at = 8 + n; at < good.length; at += 7) {
        const bad = good.slice();
        bad[at]! ^= 0x80;
        try {
          decodeCheckpoint(bad, 'x');
          accepted++;
        } catch (e) {
          expect(e).toBeInstanceOf(CheckpointError);
        }
      }
      expect(accepted).toBe(0);
    });

    it('not a safetensors file at all, and an empty or missing one', () => {
      expectRefused('zip.safetensors', new TextEncoder().encode('PK\x03\x04JUNKJUNKJUNK'), /not a safetensors file \(its first 8 bytes give a header of \d+ bytes\)/);
      const json = new TextEncoder().encode('        {"step": 1, "tensors": []}');
      new DataView(json.buffer).setBigUint64(0, 2n, true);
      expectRefused('text.safetensors', json, /bad header: not a JSON object|bytes after the last tensor/);
      expectRefused('empty.safetensors', new Uint8Array(0), /truncated \(0 bytes\)/);
      const missing = join(dir, 'missing.safetensors');
      expect(() => loadCheckpointFile(missing)).toThrow(CheckpointError);
      expect(() => loadCheckpointFile(missing)).toThrow(`${missing}: cannot read (ENOENT)`);
    });

    it('offsets out of range, overlapping, with gaps or the wrong size, even under a valid checksum', () => {
      const edit = (f: (h: Record<string, { data_offsets: number[]; shape: number[] }>) => void, name: string, why: RegExp) => {
        const { n, json } = headerOf(good);
        f(json as Record<string, { data_offsets: number[]; shape: number[] }>);
        let text = JSON.stringify(json);
        text += ' '.repeat(Math.max(0, n - text.length));
        const hb = new TextEncoder().encode(text);
        const out = new Uint8Array(8 + hb.length + good.length - 8 - n);
        new DataView(out.buffer).setBigUint64(0, BigInt(hb.length), true);
        out.set(hb, 8);
        out.set(good.subarray(8 + n), 8 + hb.length);
        expectRefused(name, resign(out), why);
      };
      edit((h) => { h['layer.w']!.data_offsets = [0, 1_000_000]; }, 'past-end.safetensors', /tensor "layer.w": shape \[2,4\] needs 32 bytes, its data_offsets \[0,1000000\] hold 1000000/);
      edit((h) => { h.t!.data_offsets = [h.t!.data_offsets[0]! + 4_000_000, h.t!.data_offsets[1]! + 4_000_000]; }, 'far.safetensors', /a gap of \d+ bytes before tensor "t"|truncated: tensor "t"/);
      edit((h) => { h.t!.data_offsets = [0, 16]; }, 'overlap.safetensors', /overlaps the tensor before it/);
      edit((h) => { h['layer.w']!.shape = [2, 5]; }, 'shape.safetensors', /tensor "layer.w": shape \[2,5\] needs 40 bytes, its data_offsets \[0,32\] hold 32/);
      edit((h) => { h['layer.w']!.data_offsets = [8, 0]; }, 'backwards.safetensors', /bad data_offsets \[8,0\]/);
      edit((h) => { (h['layer.w'] as unknown as { dtype: string }).dtype = 'BF16'; }, 'dtype.safetensors', /tensor "layer.w" is BF16; only F32 and I32 tensors are read/);
      edit((h) => { delete h['layer.w']; }, 'gap.safetensors', /a gap of 32 bytes before tensor "layer.w@m"/);
    });

    it('a checksum that does not match, a missing one, and a weights or foreign file where a checkpoint is wanted', () => {
      const text = new TextDecoder('latin1').decode(good);
      const at = text.indexOf('crc32:') + 6;
      const bad = good.slice();
      bad.set(new TextEncoder().encode('deadbeef'), at);
      expectRefused('crc.safetensors', bad, /checksum mismatch: the file is corrupted/);
      const plain = encodeSafetensors(new Map([['w', { shape: [1], data: Float32Array.of(1) }]]), { 'adjoint.format': 'checkpoint', step: '1' });
      expectRefused('nocrc.safetensors', plain, /an adjoint checkpoint file with no checksum/);
      expectRefused('weights.safetensors', encodeCheckpoint(sample(), 'weights'), /a weights file \(parameters only\), not a checkpoint: start from it with --init/);
      expectRefused('foreign.safetensors', encodeSafetensors(new Map([['w', { shape: [1], data: Float32Array.of(1) }]]), { format: 'pt' }), /a safetensors file from another tool, not an adjoint checkpoint/);
    });

    it('an old ADJCKPT1 file that is damaged is refused too', () => {
      const old = new Uint8Array(readFileSync(fileURLToPath(new URL('./fixtures/safetensors/legacy-adjckpt1.ckpt', import.meta.url))));
      const bad = old.slice();
      bad[old.length - 10]! ^= 1;
      expectRefused('old-flip.ckpt', bad, /old ADJCKPT1 checkpoint: checksum mismatch/);
      expectRefused('old-trunc.ckpt', old.subarray(0, 12), /old ADJCKPT1 checkpoint: truncated \(12 bytes\)/);
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
    const path = join(sub, 'model.safetensors');
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
      expect(c.meta).toEqual({ version: String(c.step) }); // safetensors metadata are strings
      expect(Array.from(c.tensors.get('v')!)).toEqual([c.step]);
      const w = c.tensors.get('w')!;
      expect(w.length).toBe(FLOATS);
      let mismatches = 0;
      for (let i = 0; i < FLOATS; i++) if (w[i] !== (c.step * 7 + i) % 1000) mismatches++;
      expect(mismatches, `version ${c.step} holds exactly what was written`).toBe(0);
      // Only the checkpoint and stale temporaries of killed saves; none is read instead of it.
      const others = readdirSync(sub).filter((f) => f !== 'model.safetensors');
      expect(readdirSync(sub)).toContain('model.safetensors');
      for (const f of others) {
        expect(f).toMatch(/^\.model\.safetensors\.\d+\.tmp$/);
        stale.add(f);
      }
      next = last + 2;
    }
    // Each writer has its own pid, so each save killed between open and rename left its own file.
    expect(stale.size, 'at least one kill landed in the middle of a save').toBeGreaterThan(0);
  }, 120_000);
});
