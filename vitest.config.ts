/**
 * @file Vitest configuration. GPU tests run on a real adapter (SwiftShader on the CPU in CI), so
 * timeouts are generous; each test file runs in its own child process (`forks`) because Dawn is a
 * native addon, which is safer outside worker threads.
 */
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
  },
});
