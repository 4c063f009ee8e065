/**
 * @file The ONNX conformance run on the committed fixtures (test/fixtures/onnx: small cases of the
 * onnx wheel and PyTorch-exported modules, made by scripts/onnx-fixtures.py), on the GPU: every
 * case whose operators are supported passes against its expected outputs, and the unsupported ones
 * are reported with what they need: the wheel's `Gradient` operator, float64 tensors, an `Expand`
 * whose shape is a graph input (a run-time shape). The whole wheel is
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
  // Unsupported: the Gradient operator, a float64 model and an Expand to a shape fed at run time.
  expect(lines).toContain(`onnx cases: ${results.length - 3} passed of ${results.length - 3} supported (${results.length} total)`);
  expect(lines.at(-2)).toBe('unsupported operators (cases using each): ai.onnx.preview.training.Gradient 1');
  expect(lines.at(-1)).toBe('unsupported features (cases using each): double tensors 1, Expand with a run-time shape 1');
  expect(lines.find((l) => l.includes('test_expand_shape_model1'))).toMatch(/^unsupported +test_expand_shape_model1: .*\(Expand, opset 9\): shape must be a constant/);
});
