/**
 * @file `npm run fuzz`: the fuzzing properties — random graphs on the adapter against the
 * interpreter (test/fuzz/differential.test.ts) and random gradients against finite differences
 * and on the adapter (test/fuzz/gradients.test.ts) — with a random seed and many more cases than
 * CI runs (CI uses a fixed seed and 200 each), and gradient recipes of up to 24 steps (CI: 12).
 * The seed is printed first, so a failure can be replayed exactly; fast-check prints the shrunk
 * counterexample as a graph. Runs vitest on those files with FUZZ_SEED, FUZZ_RUNS and
 * FUZZ_MAX_STEPS set.
 *
 * Usage: `npm run fuzz [-- --seed N] [-- --runs N] [-- --only forward|gradients]` (or FUZZ_SEED /
 * FUZZ_RUNS in the environment).
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({ options: { seed: { type: 'string' }, runs: { type: 'string' }, only: { type: 'string' } } });
const FILES = { forward: 'test/fuzz/differential.test.ts', gradients: 'test/fuzz/gradients.test.ts' };
if (values.only !== undefined && !Object.hasOwn(FILES, values.only)) {
  console.error(`fuzz: --only must be one of ${Object.keys(FILES).join(', ')}, got "${values.only}"`);
  process.exit(2);
}
const files = values.only === undefined ? Object.values(FILES) : [FILES[values.only]];
const seed = values.seed ?? process.env.FUZZ_SEED ?? String(Math.floor(Math.random() * 2 ** 31));
const runs = values.runs ?? process.env.FUZZ_RUNS ?? '2000';
for (const [name, v] of [['seed', seed], ['runs', runs]]) {
  if (!/^\d+$/.test(v)) {
    console.error(`fuzz: --${name} must be a non-negative integer, got "${v}"`);
    process.exit(2);
  }
}
const only = values.only === undefined ? '' : ` --only ${values.only}`;
console.log(`fuzz: seed ${seed}, ${runs} cases per property (replay: npm run fuzz -- --seed ${seed} --runs ${runs}${only})`);
const r = spawnSync(process.execPath, [join(root, 'node_modules/vitest/vitest.mjs'), 'run', ...files], {
  cwd: root,
  stdio: 'inherit',
  env: { FUZZ_MAX_STEPS: '24', ...process.env, FUZZ_SEED: seed, FUZZ_RUNS: runs },
});
console.log(`fuzz: seed ${seed}: ${r.status === 0 ? 'passed' : 'FAILED'}`);
process.exit(r.status ?? 1);
