/**
 * @file Bundles the runtime (`src/runtime/index.ts`) for the browser: one minified ES module,
 * `dist/browser/adjoint-runtime.js`, plus esbuild's metafile `dist/browser/meta.json`. The runtime
 * needs none of the compiler, and in a browser none of Node: `device.ts` loads `webgpu` and Node
 * built-ins only through a dynamic import whose specifier esbuild cannot see, and they are marked
 * external besides. The metafile is checked here: the bundle's inputs must be files of
 * `src/runtime/`, `src/ir/errors.ts` and zod's small build (manifest validation) only, and nothing may be imported from outside. Prints
 * the minified and gzipped sizes in bytes; exits non-zero if the check fails.
 *
 * Usage: `npm run build:browser` (or `node scripts/build-browser.mjs`).
 */
import { build } from 'esbuild';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outdir = join(root, 'dist/browser');
const outfile = join(outdir, 'adjoint-runtime.js');
const metafilePath = join(outdir, 'meta.json');
const LIMIT = 50 * 1024;

/** Inputs a runtime bundle may contain (paths relative to the repository root). */
function allowedInput(path) {
  return path.startsWith('src/runtime/') || path === 'src/ir/errors.ts' || path.startsWith('node_modules/zod/');
}

mkdirSync(outdir, { recursive: true });
const result = await build({
  absWorkingDir: root,
  entryPoints: ['src/runtime/index.ts'],
  bundle: true,
  platform: 'browser',
  format: 'esm',
  target: 'es2022',
  minify: true,
  external: ['webgpu', 'node:*'],
  metafile: true,
  write: false,
  outfile,
  logLevel: 'warning',
});

const out = result.outputFiles.find((f) => f.path === outfile);
if (!out) throw new Error(`internal: esbuild produced no ${outfile}`);
const problems = [];
for (const input of Object.keys(result.metafile.inputs)) {
  if (!allowedInput(input)) problems.push(`input ${input} is not part of the runtime`);
}
for (const output of Object.values(result.metafile.outputs)) {
  for (const imp of output.imports) problems.push(`the bundle imports ${imp.path} (${imp.kind})`);
}
const bytes = out.contents.byteLength;
if (bytes >= LIMIT) problems.push(`${bytes} bytes minified, over the ${LIMIT}-byte budget`);

writeFileSync(outfile, out.contents);
writeFileSync(metafilePath, JSON.stringify(result.metafile, null, 1) + '\n');
const gzip = gzipSync(out.contents, { level: 9 }).byteLength;
const rel = (p) => p.slice(root.length + 1);
console.log(`${rel(outfile)}: ${bytes} bytes minified, ${gzip} bytes gzipped, ${Object.keys(result.metafile.inputs).length} inputs (metafile ${rel(metafilePath)})`);
if (problems.length) {
  for (const p of problems) console.error(`build-browser: ${p}`);
  process.exit(1);
}
