/**
 * @file Runs the `adjoint` command line in this process (src/cli.ts `main`), capturing what it
 * writes: its exit code, stdout and stderr. Shared by the tests of every command.
 */
import { vi } from 'vitest';
import { main } from '../src/cli.js';

export async function runCli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((s) => ((out += String(s)), true));
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((s) => ((err += String(s)), true));
  try {
    return { code: await main(argv), out, err };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}
