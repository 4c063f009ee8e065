#!/usr/bin/env node
// The `adjoint` command: runs the compiled CLI in dist/ (built by `npm run build`).
import { existsSync } from 'node:fs';
const cli = new URL('../dist/src/cli.js', import.meta.url);
if (!existsSync(cli)) {
  process.stderr.write('adjoint: not built yet: run `npm run build`\n');
  process.exit(2);
}
// A closed pipe (`adjoint inspect … | head`) ends the output, not the program with a stack trace.
process.stdout.on('error', (e) => process.exit(e.code === 'EPIPE' ? 0 : 2));
const { main } = await import(cli.href);
process.exitCode = await main(process.argv.slice(2));
