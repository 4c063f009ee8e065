/**
 * @file Layers point one way (STYLE.md): src/ir <- src/passes <- src/codegen <- src/compile.ts <-
 * src/cli.ts, and src/runtime takes only the IR's error classes and types, so it loads without
 * the compiler. This test reads every source file under src/, parses its imports (static
 * `import … from`, `export … from`, side-effect and dynamic imports; type-only imports count too,
 * as a layer's types are part of it) and checks each relative one against the table below. A new
 * folder under src/ fails until it has a row.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { posix } from 'node:path';
import { describe, expect, it } from 'vitest';

/** What each layer may import (its own files always). */
const MAY_IMPORT: Readonly<Record<string, readonly string[]>> = {
  ir: [],
  runtime: ['ir'], // only errors.ts as values; anything else of ir as types (checked below)
  passes: ['ir'],
  codegen: ['ir', 'passes', 'runtime'], // runtime: the artifact format it writes
  compile: ['ir', 'passes', 'codegen', 'runtime'],
  data: ['ir', 'runtime'],
  train: ['ir', 'runtime', 'data'],
  onnx: ['ir', 'passes', 'compile', 'runtime', 'train'],
  cli: ['ir', 'passes', 'codegen', 'compile', 'runtime', 'data', 'train', 'onnx'],
  index: ['ir', 'passes', 'codegen', 'compile', 'runtime', 'data', 'train', 'onnx'],
};

/** The layer of a file under src/: its folder, or a top-level file's name. */
const layerOf = (path: string): string => {
  const parts = path.split('/');
  return parts.length > 2 ? parts[1]! : parts[1]!.replace(/\.[jt]s$/, '');
};

interface Import {
  readonly spec: string;
  /** `import type`, `export type`, or every name imported marked `type`. */
  readonly typeOnly: boolean;
}

const STATIC = /^(?:import|export)(\s+type)?\s*(\{[^}]*\}|\*(?:\s+as\s+\w+)?|\w+(?:\s*,\s*\{[^}]*\})?)\s*from\s*['"]([^'"]+)['"]/gm;
const SIDE_EFFECT = /^import\s*['"]([^'"]+)['"]/gm;
const DYNAMIC = /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g;

/** The imports of a TypeScript source file. */
function parseImports(text: string): Import[] {
  const out: Import[] = [];
  for (const m of text.matchAll(STATIC)) {
    const names = m[2]!.startsWith('{') ? m[2]!.slice(1, -1).split(',').map((s) => s.trim()).filter(Boolean) : [];
    const typeOnly = m[1] !== undefined || (names.length > 0 && names.every((n) => n.startsWith('type ')));
    out.push({ spec: m[3]!, typeOnly });
  }
  for (const m of text.matchAll(SIDE_EFFECT)) out.push({ spec: m[1]!, typeOnly: false });
  for (const m of text.matchAll(DYNAMIC)) out.push({ spec: m[1]!, typeOnly: false });
  return out;
}

/** Every import that points the wrong way, as one line each. */
function layerViolations(files: ReadonlyMap<string, string>): string[] {
  const bad: string[] = [];
  for (const [path, text] of files) {
    const from = layerOf(path);
    const allowed = MAY_IMPORT[from];
    if (!allowed) {
      bad.push(`${path}: layer "${from}" has no row in test/layers.test.ts MAY_IMPORT`);
      continue;
    }
    for (const imp of parseImports(text)) {
      if (!imp.spec.startsWith('.')) continue;
      const target = posix.normalize(posix.join(posix.dirname(path), imp.spec));
      const to = layerOf(target);
      if (to === from) continue;
      if (!allowed.includes(to)) {
        bad.push(`${path} imports ${imp.spec}: ${from} may import only ${allowed.join(', ') || 'itself'}`);
      } else if (from === 'runtime' && to === 'ir' && !imp.typeOnly && target !== 'src/ir/errors.js') {
        bad.push(`${path} imports ${imp.spec}: the runtime takes only ir's error classes (errors.js) and types`);
      }
    }
  }
  return bad;
}

function sources(dir: string): Map<string, string> {
  const files = new Map<string, string>();
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile() || !e.name.endsWith('.ts')) continue;
    const path = posix.join(e.parentPath.replaceAll('\\', '/'), e.name);
    files.set(path, readFileSync(path, 'utf8'));
  }
  return files;
}

describe('layers', () => {
  const files = sources('src');

  it('every import under src/ points down', () => {
    expect(files.size).toBeGreaterThan(50);
    expect(layerViolations(files)).toEqual([]);
  });

  it('the parser finds the imports of every file that has some', () => {
    for (const [path, text] of files) {
      const relative = parseImports(text).filter((i) => i.spec.startsWith('.')).length;
      if (/^(?:import|export)\b[^;]*?from\s*'\./m.test(text)) expect(relative, path).toBeGreaterThan(0);
    }
    expect(parseImports(files.get('src/compile.ts')!).map((i) => i.spec)).toContain('./codegen/emit.js');
  });

  it('finds an import that points up, and a runtime import of the compiler', () => {
    const fake = new Map([
      ['src/passes/x.ts', "import { emitProgram } from '../codegen/wgsl.js';\nimport type {\n  Kernel,\n} from './kernel.js';\n"],
      ['src/passes/y.ts', "import type { Artifact } from '../runtime/artifact.js';\n"],
      ['src/runtime/z.ts', "import { DeviceError } from '../ir/errors.js';\nimport type { Init } from '../ir/ops.js';\nimport { evaluate } from '../ir/interp.js';\nimport { type Graph } from '../ir/graph.js';\n"],
      ['src/ir/w.ts', "export { compile } from '../compile.js';\nconst m = await import('../passes/fusion.js');\n"],
      ['src/newfolder/v.ts', ''],
    ]);
    expect(layerViolations(fake)).toEqual([
      'src/passes/x.ts imports ../codegen/wgsl.js: passes may import only ir',
      'src/passes/y.ts imports ../runtime/artifact.js: passes may import only ir',
      "src/runtime/z.ts imports ../ir/interp.js: the runtime takes only ir's error classes (errors.js) and types",
      'src/ir/w.ts imports ../compile.js: ir may import only itself',
      'src/ir/w.ts imports ../passes/fusion.js: ir may import only itself',
      'src/newfolder/v.ts: layer "newfolder" has no row in test/layers.test.ts MAY_IMPORT',
    ]);
  });
});
