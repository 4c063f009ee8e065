/**
 * @file Host tensors: a type and a flat row-major typed array. f32 values live in a Float32Array
 * (each store rounds to float32) or, in the interpreter's float64 mode, a Float64Array; i32 values
 * always in an Int32Array.
 */
import { fmtType, numel, type DType, type Shape, type TensorType } from './dtype.js';
import { ShapeError } from './errors.js';

export type Precision = 'f32' | 'f64';
export type TensorData = Float32Array | Float64Array | Int32Array;

export interface Tensor {
  readonly type: TensorType;
  readonly data: TensorData;
}

export function allocData(dtype: DType, n: number, precision: Precision = 'f32'): TensorData {
  if (dtype === 'i32') return new Int32Array(n);
  return precision === 'f64' ? new Float64Array(n) : new Float32Array(n);
}

export function zeros(type: TensorType, precision: Precision = 'f32'): Tensor {
  return { type, data: allocData(type.dtype, numel(type.shape), precision) };
}

/** A tensor from nested-free data; checks the element count. */
export function tensor(shape: Shape, data: ArrayLike<number>, dtype: DType = 'f32', precision: Precision = 'f32'): Tensor {
  const n = numel(shape);
  if (data.length !== n) throw new ShapeError(`tensor ${fmtType({ dtype, shape })} needs ${n} values, got ${data.length}`);
  const out = allocData(dtype, n, precision);
  out.set(dtype === 'i32' ? Array.from(data, (v) => Math.trunc(v)) : data);
  return { type: { dtype, shape: [...shape] }, data: out };
}

export function scalar(t: Tensor): number {
  if (t.data.length !== 1) throw new ShapeError(`expected a scalar, got ${fmtType(t.type)}`);
  return t.data[0]!;
}

/** Converts to the given precision (f32 values only; i32 is unchanged). */
export function withPrecision(t: Tensor, precision: Precision): Tensor {
  if (t.type.dtype === 'i32') return t;
  const want = precision === 'f64' ? Float64Array : Float32Array;
  if (t.data instanceof want) return t;
  return { type: t.type, data: want.from(t.data) };
}
