/**
 * @file The README's library examples run as written: each TypeScript block is extracted, given a
 * real MNIST batch for the two names it leaves to the reader (`images`, `labels`), and executed on
 * the adapter; the loss it reads back is a fresh 10-class model's, near ln 10. The second example
 * loads the artifact directory that the README's `adjoint compile` command writes.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli.js';

const blocks = [...readFileSync('README.md', 'utf8').matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);

/** Runs README block `i` with a batch of real digits; returns its `losses`. */
async function runBlock(i: number): Promise<Map<string, Float32Array>> {
  const block = blocks[i];
  expect(block, `README has TypeScript example number ${i + 1}`).toBeDefined();
  const lines = block!.split('\n');
  const lastImport = lines.map((l) => l.startsWith('import ')).lastIndexOf(true);
  const data = [
    `import { loadMnist } from '../../src/data/mnist.js';`,
    `const mnist = loadMnist().train;`,
    `const images = mnist.images.subarray(0, 128 * 784);`,
    `const labels = mnist.labels.subarray(0, 128);`,
  ];
  const source = [...lines.slice(0, lastImport + 1), ...data, ...lines.slice(lastImport + 1), 'export { losses };'].join('\n');
  mkdirSync('test/.generated', { recursive: true });
  writeFileSync(`test/.generated/readme-example-${i}.ts`, source);
  // A computed specifier: the file is generated, so the type checker must not resolve it.
  const generated = `../.generated/readme-example-${i}.ts`;
  return ((await import(generated)) as { losses: Map<string, Float32Array> }).losses;
}

describe('README', () => {
  it('the library example compiles a model, loads it, and runs a training step', async () => {
    const loss = (await runBlock(0)).get('loss')![0]!;
    expect(Math.abs(loss - Math.log(10))).toBeLessThan(0.5);
  });

  it('the CLI compiles mlp-mnist to out/mlp, and the second example loads that directory and trains', async () => {
    rmSync('out/mlp', { recursive: true, force: true });
    expect(await main(['compile', 'models/mlp-mnist.json', '-o', 'out/mlp'])).toBe(0);
    const loss = (await runBlock(1)).get('loss')![0]!;
    expect(Math.abs(loss - Math.log(10))).toBeLessThan(0.5);
  });
});
