/**
 * @file Memory planning on the adapter: with poison mode (every temporary filled with NaN as soon as
 * it dies) every model still matches the interpreter, so no value is read after its bytes are
 * reused; and loading a program creates exactly the planned bytes of GPU memory.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emitArtifact } from '../../src/compile.js';
import { specializeMode } from '../../src/passes/mode.js';
import { GraphBuilder } from '../../src/ir/builder.js';
import { loadModel } from '../../src/ir/schema.js';
import { getDevice } from '../../src/runtime/device.js';
import { Program } from '../../src/runtime/program.js';
import { expectGpuMatches, randomEnv } from './harness.js';

let device: GPUDevice;
beforeAll(async () => { device = await getDevice({ quiet: true }); });
afterAll(() => device?.destroy());

describe('memory plan on the GPU', () => {
  for (const f of readdirSync('models').filter((x) => x.endsWith('.json'))) {
    it(`${f} forward matches the interpreter in poison mode`, async () => {
      const m = loadModel(readFileSync(`models/${f}`, 'utf8'), f);
      // The forward program's graph: eval mode (batch norm's running statistics, no dropout).
      const g = specializeMode(m.graph, 'eval');
      const env = randomEnv(g, 5, (name, i, u) => {
        const n = g.nodes.find((x) => (x.op === 'input' || x.op === 'param' || x.op === 'state') && x.attrs.name === name)!;
        if (n.type.dtype === 'i32') return Math.floor(u() * 10);
        // State here is running statistics: a variance must be positive.
        return n.op === 'state' ? 0.5 + 0.5 * u() : 0.2 * (2 * u() - 1);
      });
      await expectGpuMatches(device, g, env, 1e-5, { poison: true });
    });
  }

  it('composites with reused temporaries match the interpreter in poison mode', async () => {
    const b = new GraphBuilder();
    const x = b.input('x', [6, 10]);
    const q = b.input('q', [2, 5, 4]);
    b.output('ln', b.layerNorm(b.softmax(x), b.input('g', [10]), b.input('h', [10])));
    b.output('att', b.attention(q, q, q, true));
    b.output('gelu', b.gelu(b.logSoftmax(x, 0)));
    const g = b.build();
    await expectGpuMatches(device, g, randomEnv(g, 9), 2e-6, { poison: true });
  });

  it('creates exactly the planned bytes: arenas of inputs, params, state and temporaries', async () => {
    const m = loadModel(readFileSync('models/lenet-mnist.json', 'utf8'), 'lenet');
    const a = emitArtifact(m.graph);
    const sizes: number[] = [];
    const proto = Object.getPrototypeOf(device) as GPUDevice;
    const orig = proto.createBuffer;
    proto.createBuffer = function (this: GPUDevice, d) { sizes.push(d.size); return orig.call(this, d); };
    let prog: Program | undefined;
    try {
      prog = await Program.load(device, a);
    } finally {
      proto.createBuffer = orig;
    }
    const temps = a.arenas.filter((x) => x.role === 'temp').reduce((s, x) => s + x.bytes, 0);
    const persistent = a.arenas.filter((x) => x.role !== 'temp').reduce((s, x) => s + x.bytes, 0);
    expect(temps).toBe(a.memory.plannedBytes);
    expect(sizes.reduce((s, x) => s + x, 0)).toBe(temps + persistent);
    expect(sizes.length).toBe(a.arenas.length);
    expect(a.memory.plannedBytes).toBeLessThan(a.memory.naiveBytes);
    prog!.destroy();
  });
});
