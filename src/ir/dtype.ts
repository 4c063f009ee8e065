/**
 * @file Dtypes and static shapes: the tensor type of every IR value, with the shape arithmetic
 * (element counts, row-major strides, NumPy broadcasting) that shape rules, the interpreter and
 * codegen share.
 */
import { ShapeError } from './errors.js';

/** f32 for real values; i32 for labels and indices. */
export const DTYPES = ['f32', 'i32'] as const;
export type DType = (typeof DTYPES)[number];

export type Shape = readonly number[];

export interface TensorType {
  readonly dtype: DType;
  readonly shape: Shape;
}

export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Row-major strides, in elements. */
export function stridesOf(shape: Shape): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i]!;
  }
  return strides;
}

export function bytesOf(t: TensorType): number {
  return numel(t.shape) * 4;
}

export function shapeEq(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function typeEq(a: TensorType, b: TensorType): boolean {
  return a.dtype === b.dtype && shapeEq(a.shape, b.shape);
}

export function fmtShape(shape: Shape): string {
  return `[${shape.join(',')}]`;
}

export function fmtType(t: TensorType): string {
  return `${t.dtype}${fmtShape(t.shape)}`;
}

/** NumPy broadcasting of several shapes; throws a ShapeError naming both shapes. */
export function broadcastShapes(...shapes: Shape[]): number[] {
  const rank = Math.max(0, ...shapes.map((s) => s.length));
  const out = new Array<number>(rank).fill(1);
  for (const s of shapes) {
    for (let i = 0; i < s.length; i++) {
      const o = rank - s.length + i;
      const d = s[i]!;
      const cur = out[o]!;
      if (cur === 1) out[o] = d;
      else if (d !== 1 && d !== cur) {
        throw new ShapeError(`shapes ${shapes.map(fmtShape).join(' and ')} do not broadcast`);
      }
    }
  }
  return out;
}

/** Normalizes a possibly negative axis against a rank; throws if out of range. */
export function normAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) {
    throw new ShapeError(`axis ${axis} is out of range for rank ${rank}`);
  }
  return a;
}
