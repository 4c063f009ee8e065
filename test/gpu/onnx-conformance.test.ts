/**
 * @file The ONNX conformance run on the committed fixtures (test/fixtures/onnx: small cases of the
 * onnx wheel and PyTorch-exported modules, made by scripts/onnx-fixtures.py), on the GPU: every
 * case whose operators are supported passes against its expected outputs, and the unsupported one
 * (the wheel's `Gradient` operator) is reported with its operator. The whole wheel is
 * `npm run onnx:conformance` (README). The transformer block and the depthwise model run on the
 * interpreter in test/onnx/import.test.ts (their GPU compile is the slow part here).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { getDevice } from '../../src/runtime/device.js';
import { runConformance } from '../../src/onnx/conformance.js';

let device: GPUDevice;
beforeAll(async () => { device = await getDevice({ quiet: true }); });
afterAll(() => device?.destroy());

it('the fixture cases pass on the GPU and the report names what is unsupported', async () => {
  const lines: string[] = [];
  const results = await runConformance(device, ['test/fixtures/onnx/wheel', 'test/fixtures/onnx/torch'], undefined, (s) => void lines.push(s), (name) => !/light_|transformer-block|depthwise/.test(name));
  const bad = results.filter((r) => r.status === 'failed' || r.status === 'refused');
  expect(bad.map((r) => `${r.name}: ${r.detail}`)).toEqual([]);
  expect(results.filter((r) => r.status === 'passed').length).toBeGreaterThanOrEqual(18);
  expect(lines).toContain(`onnx cases: ${results.length - 1} passed of ${results.length - 1} supported (${results.length} total)`);
  expect(lines.at(-1)).toBe('unsupported operators (cases using each): ai.onnx.preview.training.Gradient 1');
});
