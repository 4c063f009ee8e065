import { afterAll, beforeAll, describe, it } from 'vitest';
import { GraphBuilder } from '../../src/ir/builder.js';
import { getDevice } from '../../src/runtime/device.js';
import { expectGpuMatches, randomEnv } from './harness.js';

let device: GPUDevice;
beforeAll(async () => { device = await getDevice({ quiet: true }); });
afterAll(() => device?.destroy());

describe('codegen smoke', () => {
  it('mlp forward with softmax cross-entropy', async () => {
    const b = new GraphBuilder();
    const x = b.input('x', [7, 13]);
    const y = b.input('y', [7], 'i32');
    const w = b.param('w', [13, 5]);
    const bias = b.param('b', [5]);
    const h = b.relu(b.linear(x, w, bias));
    b.output('h', h);
    b.output('loss', b.softmaxCrossEntropy(h, y));
    b.output('t', b.transpose(h));
    b.output('p', b.pad(h, [1, 0], [0, 2], 3.5, [1, 0]));
    b.output('c', b.concat([h, x], 1));
    const g = b.build();
    await expectGpuMatches(device, g, randomEnv(g));
  });
});
