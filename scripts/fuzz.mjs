/**
 * @file `npm run fuzz`: the differential fuzzing property of test/fuzz/differential.test.ts with a
 * random seed and many more graphs than CI runs (CI uses a fixed seed and 200). The seed is
 * printed first, so a failure can be replayed exactly; fast-check prints the shrunk
 * counterexample as a graph. Runs vitest on that one file with FUZZ_SEED and FUZZ_RUNS set.
 *
 * Usage: `npm run fuzz [-- --seed N] [-- --runs N]` (or FUZZ_SEED / FUZZ_RUNS in the environment).
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({ options: { seed: { type: 'string' }, runs: { type: 'string' } } });
const seed = values.seed ?? process.env.FUZZ_SEED ?? String(Math.floor(Math.random() * 2 ** 31));
const runs = values.runs ?? process.env.FUZZ_RUNS ?? '2000';
for (const [name, v] of [['seed', seed], ['runs', runs]]) {
  if (!/^\d+$/.test(v)) {
    console.error(`fuzz: --${name} must be a non-negative integer, got "${v}"`);
    process.exit(2);
  }
}
console.log(`fuzz: seed ${seed}, ${runs} graphs (replay: npm run fuzz -- --seed ${seed} --runs ${runs})`);
const r = spawnSync(process.execPath, [join(root, 'node_modules/vitest/vitest.mjs'), 'run', 'test/fuzz/differential.test.ts'], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, FUZZ_SEED: seed, FUZZ_RUNS: runs },
});
console.log(`fuzz: seed ${seed}: ${r.status === 0 ? 'passed' : 'FAILED'}`);
process.exit(r.status ?? 1);
