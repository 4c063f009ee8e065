/**
 * @file A transformer whose naive footprint (every value its own buffer) exceeds 256 MiB — the
 * spec's default maxBufferSize — runs because its memory plan fits: compiled for the spec's buffer
 * limits, it trains on the adapter, its first loss equals the interpreter's on the same initial
 * parameters (float32, evaluated before the first update), and one step lowers it on the same batch.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compile, SPEC_LIMITS } from '../../src/compile.js';
import { getDevice } from '../../src/runtime/device.js';
import { Program } from '../../src/runtime/program.js';
import { transformerLm } from '../../models/transformer-lm.js';
import { loadText } from '../../src/data/text.js';
import { evaluate } from '../../src/ir/interp.js';
import { tensor, type Tensor } from '../../src/ir/tensor.js';

let device: GPUDevice;
beforeAll(async () => { device = await getDevice({ quiet: true }); });
afterAll(() => device?.destroy());

describe('memory planning makes a large transformer fit', () => {
  it('naive > 256 MiB, planned within the spec limits, and it trains', async () => {
    const [B, T] = [2, 1024];
    const model = transformerLm({ batch: B, seq: T, vocab: 80, dim: 64, heads: 4, layers: 2, lr: 3e-3 });
    const { train } = compile(model, { limits: { maxBufferSize: SPEC_LIMITS.maxBufferSize, maxStorageBufferBindingSize: SPEC_LIMITS.maxStorageBufferBindingSize } });
    const a = train!;
    expect(a.memory.naiveBytes).toBeGreaterThan(256 * 2 ** 20);
    expect(Math.max(...a.arenas.map((x) => x.bytes))).toBeLessThanOrEqual(SPEC_LIMITS.maxBufferSize);
    const prog = await Program.load(device, a, { seed: 0 });
    const text = loadText();
    const tokens = Int32Array.from({ length: B * T }, (_, i) => text.train[i]!);
    const targets = Int32Array.from({ length: B * T }, (_, i) => text.train[i + 1]!);
    // The interpreter's loss on the program's initial parameters.
    const env = new Map<string, Tensor>([['tokens', tensor([B, T], tokens, 'i32')], ['targets', tensor([B, T], targets, 'i32')]]);
    for (const n of model.graph.nodes) {
      if (n.op === 'param') env.set(n.attrs.name, tensor(n.type.shape, await prog.read(n.attrs.name)));
    }
    const want = evaluate(model.graph, env).outputs.get('loss')!.data[0]!;
    const losses: number[] = [];
    for (let s = 0; s < 2; s++) losses.push((await prog.step({ tokens, targets }, ['loss']))!.get('loss')![0]!);
    prog.destroy();
    expect(Math.abs(losses[0]! - want) / want).toBeLessThan(1e-4);
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(losses[1]!).toBeLessThan(losses[0]! - 0.2);
  }, 300_000);
});
