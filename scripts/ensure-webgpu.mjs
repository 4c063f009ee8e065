#!/usr/bin/env node
/**
 * @file The demo's first step: makes sure this machine has a WebGPU adapter before training.
 * Asks for a device in a child process (a failed attempt leaves Dawn's state behind, so the
 * retry needs a fresh process). When there is none and this process can install packages (root
 * or password-less sudo, with apt-get), it runs scripts/setup-vulkan.sh, the same install
 * `.ci/run` does, and asks again; otherwise it prints one line saying what to run. Exit 0 when an
 * adapter is there, 1 when not. Needs the build (dist/). ADJOINT_NO_INSTALL=1: never install,
 * print the line instead.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const device = new URL('../dist/src/runtime/device.js', import.meta.url);
if (!existsSync(device)) {
  process.stderr.write('ensure-webgpu: not built yet: run `npm run build`\n');
  process.exit(1);
}

/** The adapter's description, or the error's first line. */
function probe() {
  const code = `import(${JSON.stringify(device.href)}).then(async (m) => { const d = await m.getDevice({ quiet: true }); console.log(m.adapterInfo(d)); d.destroy(); }, (e) => { throw e; }).catch((e) => { console.error(String(e.message).split('\\n')[0]); process.exit(1); });`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8' });
  return { ok: r.status === 0, text: (r.status === 0 ? r.stdout : r.stderr).trim().split('\n').at(-1) ?? '' };
}

const canInstall = () => {
  if (process.env.ADJOINT_NO_INSTALL === '1') return false;
  if (process.platform !== 'linux' || spawnSync('sh', ['-c', 'command -v apt-get'], { stdio: 'ignore' }).status !== 0) return false;
  if (process.getuid?.() === 0) return true;
  return spawnSync('sudo', ['-n', 'true'], { stdio: 'ignore' }).status === 0;
};

const first = probe();
if (first.ok) {
  process.stderr.write(`webgpu: ${first.text}\n`);
  process.exit(0);
}
const HINT = 'run `sudo bash scripts/setup-vulkan.sh` (installs chromium, which ships the SwiftShader Vulkan driver, and libvulkan1), then `npm run demo` again';
if (!canInstall()) {
  process.stderr.write(`ensure-webgpu: no WebGPU adapter (${first.text}): ${process.platform === 'linux' ? HINT : 'install a GPU driver with Vulkan, Metal or D3D12 support'}\n`);
  process.exit(1);
}
process.stderr.write('ensure-webgpu: no WebGPU adapter yet; installing a Vulkan driver (bash scripts/setup-vulkan.sh)\n');
const setup = spawnSync('bash', ['scripts/setup-vulkan.sh'], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
const second = setup.status === 0 ? probe() : { ok: false, text: 'scripts/setup-vulkan.sh failed' };
if (!second.ok) {
  process.stderr.write(`ensure-webgpu: still no WebGPU adapter after scripts/setup-vulkan.sh (${second.text})\n`);
  process.exit(1);
}
process.stderr.write(`webgpu: ${second.text}\n`);
