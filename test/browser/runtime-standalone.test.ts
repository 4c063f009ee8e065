/**
 * @file The runtime stands alone: its browser bundle (built here with esbuild, as
 * `npm run build:browser` does) contains only files of `src/runtime/`, the error classes of
 * `src/ir/errors.ts` and zod's small build (manifest validation) — nothing of the passes, the codegen or the rest of the IR — imports nothing
 * (no `webgpu`, no Node built-ins), exports the entry points a page needs, and stays under 68 KB
 * minified.
 */
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { buildRuntimeBundle } from './bundle.js';

// 50 KB until the runtime gained safetensors checkpoints (reader, writer, CRC-32) and the kernel
// variant tuner with its IndexedDB cache (56.5 KB minified, 19.8 KB gzipped with both); 60 KB until
// tuning moved to the background (scratch buffers, chunks, swapping choices in: 58.5 -> 62.3 KB
// minified, 20.5 -> 21.5 KB gzipped); 64 KB until waits for the GPU stopped spinning a core in
// Node (gpu-wait.ts, 0.5 KB: 65.5 -> 66.1 KB minified, 22.6 -> 22.8 KB gzipped).
const BUDGET = 68 * 1024;

describe('runtime browser bundle', () => {
  it('contains only the runtime and the error classes, imports nothing, and is under 68 KB', async () => {
    const { code, metafile } = await buildRuntimeBundle();
    const inputs = Object.keys(metafile.inputs).sort();
    // zod's small build validates manifests; it is a library, not compiler code.
    const foreign = inputs.filter((p) => !(p.startsWith('src/runtime/') || p === 'src/ir/errors.ts' || p.startsWith('node_modules/zod/')));
    expect(foreign).toEqual([]);
    // The pieces a page needs are really in it (the check above is not vacuous).
    for (const f of ['src/runtime/index.ts', 'src/runtime/device.ts', 'src/runtime/program.ts', 'src/runtime/bundle.ts', 'src/ir/errors.ts']) {
      expect(inputs).toContain(f);
    }

    const outputs = Object.values(metafile.outputs);
    expect(outputs).toHaveLength(1);
    const out = outputs[0]!;
    expect(out.imports).toEqual([]);
    expect(out.exports).toEqual(expect.arrayContaining(['getDevice', 'loadArtifact', 'parseBundle', 'Program', 'initValues']));
    const text = new TextDecoder().decode(code);
    expect(text).not.toMatch(/from\s*["'](webgpu|node:)/);
    expect(text).not.toMatch(/import\(\s*["'](webgpu|node:)/);

    const gzip = gzipSync(code, { level: 9 }).byteLength;
    console.log(`runtime browser bundle: ${code.byteLength} bytes minified, ${gzip} bytes gzipped, inputs ${inputs.join(', ')}`);
    expect(code.byteLength).toBeLessThan(BUDGET);
  });
});
