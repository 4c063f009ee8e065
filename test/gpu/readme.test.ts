/**
 * @file The README's library example runs as written: its TypeScript block is extracted, given a
 * real MNIST batch for the two names it leaves to the reader (`images`, `labels`), and executed on
 * the adapter; the loss it reads back is a fresh 10-class model's, near ln 10.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

describe('README', () => {
  it('the library example compiles a model, loads it, and runs a training step', async () => {
    const readme = readFileSync('README.md', 'utf8');
    const block = /```ts\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(block, 'README has a ```ts example').toBeDefined();
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
    writeFileSync('test/.generated/readme-example.ts', source);
    // A computed specifier: the file is generated, so the type checker must not resolve it.
    const generated = '../.generated/readme-example.ts';
    const mod = (await import(generated)) as { losses: Map<string, Float32Array> };
    const loss = mod.losses.get('loss')![0]!;
    expect(Math.abs(loss - Math.log(10))).toBeLessThan(0.5);
  });
});
