/**
 * @file The training program of a model (re-exported from the pipeline, where the passes are listed).
 */
export { trainingGraph, type TrainingProgram } from './pipeline.js';
