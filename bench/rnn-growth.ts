/**
 * @file How the unrolled LSTM's cost grows with the sequence length (`npm run bench:rnn`, or
 * `node dist/bench/rnn-growth.js [T ...]` after `npm run build`): for each T, the LSTM language
 * model of models/lstm-lm.ts at that window compiles (wall time of compile(): every pass, fusion,
 * memory plan and WGSL of the training and forward programs), the training program's dispatches
 * and distinct shaders are counted, the program loads (pipelines created) and runs one step, then
 * STEPS steps are timed with the loss read back on the last. Prints one Markdown row per T.
 * `--compile-only` stops after the compile (load and step columns left empty).
 */
import { compile } from '../src/compile.js';
import { deviceLimits, getDevice } from '../src/runtime/device.js';
import { Program } from '../src/runtime/program.js';
import { DEFAULT_LSTM_LM, lstmLm } from '../models/lstm-lm.js';

const STEPS = 3;

async function main(): Promise<void> {
  const compileOnly = process.argv.includes('--compile-only');
  const lengths = process.argv.slice(2).filter((a) => a !== '--compile-only').map(Number);
  const device = await getDevice({ quiet: true });
  const info = device.adapterInfo;
  console.log(`adapter: ${info.vendor} / ${info.architecture} / ${info.description}; ${new Date().toISOString()}`);
  const c0 = DEFAULT_LSTM_LM;
  console.log(`lstm-lm: batch ${c0.batch}, embed ${c0.embed}, hidden ${c0.hidden}, vocab ${c0.vocab}, Adam`);
  console.log('| T | IR nodes (training) | compile | dispatches / step | shaders | load + first step | step | step / T |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const T of lengths.length ? lengths : [16, 64, 256]) {
    const model = lstmLm({ ...c0, seq: T });
    let nodes = 0;
    const t0 = performance.now();
    const c = compile(model, { limits: deviceLimits(device), dump: (stage, _text, program, w) => { if (stage === 'simplify' && program === 'train') nodes = w.graph.nodes.length; } });
    const compileMs = performance.now() - t0;
    const a = c.train!;
    const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
    const head = `| ${T} | ${nodes} | ${s(compileMs)} | ${a.dispatches.length} | ${a.shaders.length} |`;
    if (compileOnly) {
      console.log(`${head} | | |`);
      continue;
    }
    const feeds = {
      tokens: Int32Array.from({ length: c0.batch * T }, (_, i) => (i * 7) % c0.vocab),
      targets: Int32Array.from({ length: c0.batch * T }, (_, i) => (i * 11) % c0.vocab),
    };
    const t1 = performance.now();
    const prog = await Program.load(device, a);
    await prog.step(feeds, ['loss']);
    const firstMs = performance.now() - t1;
    const t2 = performance.now();
    for (let i = 0; i < STEPS - 1; i++) prog.step(feeds);
    await prog.step(feeds, ['loss']);
    const stepMs = (performance.now() - t2) / STEPS;
    prog.destroy();
    console.log(`${head} ${s(firstMs)} | ${stepMs.toFixed(0)} ms | ${(stepMs / T).toFixed(1)} ms |`);
  }
  device.destroy();
}

await main();
