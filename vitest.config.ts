/**
 * @file Vitest configuration. GPU tests run on a real adapter (SwiftShader on the CPU in CI), so
 * timeouts are generous; each test file runs in its own child process (`forks`) because Dawn is a
 * native addon, which is safer outside worker threads.
 */
import { defineConfig } from 'vitest/config';

export default defineConfig({
  // The README's examples import the package by name; tests run them against the sources.
  resolve: {
    alias: [
      { find: /^adjoint\/runtime$/, replacement: new URL('./src/runtime/index.ts', import.meta.url).pathname },
      { find: /^adjoint$/, replacement: new URL('./src/index.ts', import.meta.url).pathname },
    ],
  },
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Programs load with each kernel's default variant (no tuning: compiling every variant of every
    // kernel would slow every GPU test); test/gpu/variants.test.ts and tune.test.ts tune explicitly.
    env: { ADJOINT_TUNE: '0' },
  },
});
