/**
 * @file The IR's public surface: types, the op list, the builder, the JSON loader and serializer,
 * the printer, the verifier and the reference interpreter.
 */
export * from './dtype.js';
export * from './errors.js';
export * from './ops.js';
export * from './graph.js';
export * from './model.js';
export * from './shape.js';
export * from './builder.js';
export * from './schema.js';
export * from './serialize.js';
export * from './printer.js';
export * from './verify.js';
export * from './tensor.js';
export * from './interp.js';
// issue 16: the random number generator (Threefry-2x32-20)
export { threefry2x32, uniformAt, NUMBER_WORDS, type WordOps } from './random.js';
