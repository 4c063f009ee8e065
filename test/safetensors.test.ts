/**
 * @file Our safetensors reader and writer against the reference implementation, the Python
 * `safetensors` package, through fixtures it wrote (test/fixtures/safetensors/make.py; Python is
 * needed only to remake them). The Python-written checkpoint is read exactly, checksum (computed
 * there with zlib) included; our writer, given the same tensors and metadata, writes the same file
 * (the same data bytes, the same tensor entries in the same order, the same header length and
 * padding; only the order of the `__metadata__` keys, which the reference leaves to a hash map, may
 * differ); a PyTorch-style weights file with no checksum is read as foreign weights; an F64 tensor
 * is refused by name.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CheckpointError, decodeCheckpoint, decodeWeightsFile, encodeCheckpoint } from '../src/runtime/checkpoint.js';
import { decodeSafetensors, encodeSafetensors } from '../src/runtime/safetensors.js';

const fixture = (f: string) => new Uint8Array(readFileSync(fileURLToPath(new URL(`./fixtures/safetensors/${f}`, import.meta.url))));
const bits = (a: Float32Array | Int32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

/** The tensors make.py writes into python-checkpoint.safetensors, made here independently. */
function expected(): Map<string, { shape: number[]; data: Float32Array | Int32Array }> {
  return new Map<string, { shape: number[]; data: Float32Array | Int32Array }>([
    ['layer.w', { shape: [2, 4], data: Float32Array.of(1.5, -0, NaN, Infinity, -Infinity, 1e-45, 3.4028234663852886e38, -2.5) }],
    ['moments/m', { shape: [10, 100], data: new Float32Array(1000).map((_, i) => Math.fround(i) / Math.fround(7)) }],
    ['t', { shape: [4], data: Int32Array.of(-(2 ** 31), 2 ** 31 - 1, 0, -1) }],
    ['é', { shape: [0], data: new Float32Array(0) }],
    ['scalar', { shape: [], data: Float32Array.of(0.25) }],
    ['layer.w@m', { shape: [3], data: Float32Array.of(0.125, -3, 7.5) }],
  ]);
}
const PARAMS = ['layer.w', 'moments/m', 't', 'é', 'scalar'];

/** A header's JSON text and the file's data section. */
function split(bytes: Uint8Array): { header: string; n: number; data: Uint8Array } {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return { header: new TextDecoder().decode(bytes.subarray(8, 8 + n)), n, data: bytes.subarray(8 + n) };
}

describe('safetensors against the Python reference implementation', () => {
  it('reads the checkpoint Python wrote exactly: tensors, shapes, dtypes, metadata, and its zlib checksum verifies', () => {
    const c = decodeCheckpoint(fixture('python-checkpoint.safetensors'), 'python-checkpoint.safetensors');
    expect(c.step).toBe(1234);
    expect(c.model).toBe('mlp');
    expect(c.optimizer).toBe('sgd+momentum');
    expect(c.params).toEqual(PARAMS);
    expect(c.meta).toEqual({ epoch: '3' });
    for (const [name, t] of expected()) {
      expect(c.shapes!.get(name), name).toEqual(t.shape);
      expect(c.tensors.get(name)!.constructor, name).toBe(t.data.constructor);
      expect(bits(c.tensors.get(name)!), name).toEqual(bits(t.data));
    }
    expect(c.tensors.size).toBe(6);
  });

  it('writes the file Python wrote, byte for byte but for the order of the metadata keys', () => {
    const py = fixture('python-checkpoint.safetensors');
    const t = expected();
    const ours = encodeCheckpoint({
      step: 1234, model: 'mlp', optimizer: 'sgd+momentum', params: PARAMS, meta: { epoch: 3 },
      tensors: new Map([...t].map(([k, v]) => [k, v.data])), shapes: new Map([...t].map(([k, v]) => [k, v.shape])),
    });
    const a = split(ours);
    const b = split(py);
    expect(ours.length).toBe(py.length);
    expect(a.n).toBe(b.n);
    expect(Buffer.from(a.data).equals(Buffer.from(b.data))).toBe(true);
    // The tensor entries, as text: same order (by dtype, then name in UTF-8 byte order), same serialization, same padding.
    const tensorsText = (h: string) => h.replace(/"__metadata__":\{[^}]*\},/, '');
    expect(tensorsText(a.header)).toBe(tensorsText(b.header));
    const meta = (h: string) => (JSON.parse(h) as { __metadata__: Record<string, string> }).__metadata__;
    const { checksum: ca, ...ma } = meta(a.header);
    const { checksum: cb, ...mb } = meta(b.header);
    expect(ma).toEqual(mb);
    expect(ca).toMatch(/^crc32:[0-9a-f]{8}$/);
    expect(cb).toMatch(/^crc32:[0-9a-f]{8}$/);
    // With the metadata in Python's order, the checksums agree too (ours is over our own key order).
    const reordered = encodeSafetensors(
      new Map([...t]),
      Object.fromEntries(Object.keys(meta(b.header)).map((k) => [k, k === 'checksum' ? 'crc32:00000000' : meta(b.header)[k]!])),
    );
    const text = new TextDecoder('latin1').decode(reordered);
    const at = text.indexOf('crc32:00000000') + 6;
    const resigned = reordered.slice();
    resigned.set(new TextEncoder().encode(cb!.slice(6)), at);
    expect(Buffer.from(resigned).equals(Buffer.from(py))).toBe(true);
  });

  it('reads weights saved the PyTorch way (metadata format "pt", no checksum) as foreign weights', () => {
    const w = decodeWeightsFile(fixture('python-logreg.safetensors'), 'python-logreg.safetensors');
    expect(w.kind).toBe('foreign');
    expect(w.meta).toEqual({ format: 'pt' });
    expect(w.shapes).toEqual(new Map([['w', [784, 10]], ['b', [10]]]));
    const want = new Float32Array(7840).map((_, i) => ((i % 97) - 48) / 1000);
    expect(bits(w.tensors.get('w')!)).toEqual(bits(want));
    expect(Array.from(w.tensors.get('b')!)).toEqual(Array.from({ length: 10 }, (_, j) => Math.fround(j / 10)));
    expect(() => decodeCheckpoint(fixture('python-logreg.safetensors'), 'w.safetensors')).toThrow('w.safetensors: a safetensors file from another tool, not an adjoint checkpoint');
  });

  it('refuses an F64 tensor by name, saying what to do', () => {
    expect(() => decodeSafetensors(fixture('python-f64.safetensors'), 'f64.safetensors')).toThrow(CheckpointError);
    expect(() => decodeSafetensors(fixture('python-f64.safetensors'), 'f64.safetensors')).toThrow(
      'f64.safetensors: tensor "w" is F64; only F32 and I32 tensors are read (convert it to float32 first, e.g. tensor.float() in PyTorch)',
    );
  });
});
