/**
 * @file The library (`import … from 'adjoint'`): build or load a model, compile it to artifacts,
 * train it. The runtime alone (no compiler) is `adjoint/runtime`.
 */
export * from './ir/index.js';
export { compile, type CompileOptions, type Compiled } from './compile.js';
export { emitArtifact, trainingGraph, TrainingError, STAGES, STAGE_NAMES, SPEC_LIMITS, type EmitOptions, type StageName, type DumpFn } from './compile.js'; // issue 14: the stages
export { grad, type GradOptions, type GradResult } from './passes/autodiff.js';
export { simplify } from './passes/simplify.js';
export { specializeMode, modePass } from './passes/mode.js'; // issue 16: train/eval mode
export { train, evaluate as evaluateProgram, type TrainOptions, type TrainResult } from './train/trainer.js';
export { mnistSource, textSource, type DataSource } from './data/source.js';
export { loadMnist } from './data/mnist.js';
export { loadText, unigramBaseline } from './data/text.js';
export { saveCheckpointFile, loadCheckpointFile, loadWeightsFile } from './train/checkpoint-file.js';
export { writeReport, reportHtml, type ReportInput } from './train/report.js';
export { getDevice, loadArtifact, Program, parseBundle, bundleFiles } from './runtime/index.js';
// ---- ONNX import and export (src/onnx, docs/onnx.md) ----
export { importOnnx, irName, type ImportOptions, type OnnxImport } from './onnx/import.js';
export { onnxModel, parseOptimizer, type TrainSpec } from './onnx/model.js';
export { exportOnnx, EXPORT_OPSET, type ExportOptions } from './onnx/export.js';
export { OnnxError } from './onnx/proto.js';
