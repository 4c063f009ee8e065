/**
 * @file Builds the browser bundle of the runtime in memory with esbuild, with the same options as
 * `scripts/build-browser.mjs` (entry `src/runtime/index.ts`, platform browser, ESM, minified,
 * `webgpu` and Node built-ins external), so the tests check and serve exactly what ships.
 */
import { build, type Metafile } from 'esbuild';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface RuntimeBundle {
  /** The minified ES module. */
  readonly code: Uint8Array;
  readonly metafile: Metafile;
}

export async function buildRuntimeBundle(): Promise<RuntimeBundle> {
  const result = await build({
    absWorkingDir: REPO_ROOT,
    entryPoints: ['src/runtime/index.ts'],
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: 'es2022',
    minify: true,
    external: ['webgpu', 'node:*'],
    metafile: true,
    write: false,
    outfile: 'dist/browser/adjoint-runtime.js',
    logLevel: 'silent',
  });
  const [out] = result.outputFiles;
  if (!out || result.outputFiles.length !== 1) throw new Error(`internal: esbuild wrote ${result.outputFiles.length} files, expected 1`);
  return { code: out.contents, metafile: result.metafile };
}
