/**
 * @file adjoint in the benchmark: the workload's IR model (graphs.ts) compiled to one training
 * program (forward, loss, backward, SGD update; fused kernels, planned memory) and run by the
 * runtime: one command buffer and one submit per step, the loss read back asynchronously. Each
 * setup tunes with an empty cache of its own (a user's first run): load() runs the default
 * variants at once and the variants are timed in the background; `tuning()` waits for that and
 * measures a second load's tuning.
 */
import { compile } from '../src/compile.js';
import { getDevice, deviceLimits } from '../src/runtime/device.js';
import { Program } from '../src/runtime/program.js';
import { memoryTuneCache } from '../src/runtime/tune.js';
import { workloadModel } from './graphs.js';
import { NotAvailableError, type Library, type Session } from './library.js';
import type { Batch, Workload } from './workloads.js';

let device: GPUDevice | undefined;

export const adjoint: Library = {
  name: 'adjoint',
  description: 'adjoint: compiled, fused WGSL training step, one submit per step',
  async init() {
    device = await getDevice({ quiet: true });
  },
  async setup(w: Workload, params: ReadonlyMap<string, Float32Array>): Promise<Session> {
    if (!device) throw new NotAvailableError('no device');
    const t0 = performance.now();
    const c = compile(workloadModel(w), { limits: deviceLimits(device) });
    if (!c.train) throw new NotAvailableError('the model does not train');
    const t1 = performance.now();
    const cache = memoryTuneCache();
    const prog = await Program.load(device, c.train, { tune: 'background', tuneCache: cache });
    const phases = { compileMs: t1 - t0, loadMs: performance.now() - t1 };
    for (const [name, v] of params) prog.write(name, v);
    const feeds = (b: Batch) => ({ x: b.x, y: 'labels' in b ? b.labels : b.target });
    return {
      phases,
      async step(batch, readLoss) {
        const r = prog.step(feeds(batch), readLoss ? ['loss'] : []);
        return r ? (await r).get('loss')![0]! : undefined;
      },
      async tuning() {
        await prog.tuned;
        if (prog.tuneError) throw prog.tuneError;
        const second = await Program.load(device!, c.train!, { tune: 'load', tuneCache: cache });
        second.destroy();
        const timed = prog.tuning.filter((k) => k.source === 'tuned').length;
        return { kernels: prog.tuning.length, timed, tuneMs: prog.tuneMs, secondTuneMs: second.tuneMs, secondLoadMs: second.loadMs };
      },
      profile: () => prog.profile(),
      async dispose() {
        prog.destroy();
      },
    };
  },
};
