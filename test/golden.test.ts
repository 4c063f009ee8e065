/**
 * @file Golden artifacts: for every model in models/, the compiled artifact (manifest.json and the
 * WGSL files) is compared with the reviewed files under test/golden/artifacts/<model>/. Run with
 * UPDATE_GOLDEN=1 to rewrite them, then review the diff. A golden directory whose model is gone
 * fails the run. A few models are also compiled for a device with the `subgroups` feature, into
 * test/golden/artifacts/<model>+subgroups (the subgroup variants of reductions and rows).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compile } from '../src/compile.js';
import { loadModel } from '../src/ir/schema.js';
import { bundleFiles } from '../src/runtime/bundle.js';

const ROOT = 'test/golden/artifacts';
const update = process.env.UPDATE_GOLDEN === '1';
const models = readdirSync('models').filter((f) => f.endsWith('.json')).map((f) => f.replace(/\.json$/, ''));
// ---- subgroups: these models are also compiled for a device with the `subgroups` feature ----
const SUBGROUP_MODELS = ['logreg-mnist'];
const goldens = [...models.map((model) => ({ model, dir: model, subgroups: false })), ...SUBGROUP_MODELS.map((model) => ({ model, dir: `${model}+subgroups`, subgroups: true }))];
// ---- end subgroups ----

describe('golden artifacts', () => {
  for (const { model: name, dir: golden, subgroups } of goldens) {
    it(`${golden}: manifest and WGSL match test/golden/artifacts/${golden}`, () => {
      const m = loadModel(readFileSync(`models/${name}.json`, 'utf8'), `models/${name}.json`);
      const c = compile(m, subgroups ? { limits: { subgroups } } : {});
      const files = bundleFiles({ name: m.name, forward: c.forward, ...(c.train ? { train: c.train } : {}) });
      const dir = join(ROOT, golden);
      if (update) {
        rmSync(dir, { recursive: true, force: true });
        mkdirSync(dir, { recursive: true });
        for (const [f, text] of files) writeFileSync(join(dir, f), text);
      }
      expect(existsSync(dir), `no golden for ${name}: run UPDATE_GOLDEN=1 npx vitest run test/golden.test.ts`).toBe(true);
      expect(readdirSync(dir).sort()).toEqual([...files.keys()].sort());
      for (const [f, text] of files) expect(text, `${name}/${f} differs from the golden (UPDATE_GOLDEN=1 to accept)`).toBe(readFileSync(join(dir, f), 'utf8'));
    });
  }

  it('has no golden for a model that is gone', () => {
    const dirs = existsSync(ROOT) ? readdirSync(ROOT) : [];
    expect(dirs.filter((d) => !goldens.some((x) => x.dir === d))).toEqual([]);
  });
});
