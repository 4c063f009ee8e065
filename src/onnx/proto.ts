/**
 * @file ONNX protobuf reading and writing with protobufjs (its light build and the JSON descriptor
 * generated from the onnx wheel's onnx.proto, so no hand-written wire parser and no file read at
 * run time), plus the tensor conversions the importer and exporter share. A file that is not a
 * protobuf, is cut short or holds no ONNX graph is refused with one line.
 */
import protobuf from 'protobufjs/light.js';
import { AdjointError } from '../ir/errors.js';
import { ONNX_PROTO_JSON } from './onnx-proto.js';

/** Any refusal of an ONNX file: one line naming what is wrong and where. */
export class OnnxError extends AdjointError {
  override name = 'OnnxError';
}

/**
 * A refusal of something adjoint does not do at all (an operator it has no rule for, float64
 * tensors, a shape computed at run time), as opposed to a malformed model: still one line, exit 2,
 * and the conformance run counts the case as unsupported under `feature`.
 */
export class OnnxUnsupported extends OnnxError {
  override name = 'OnnxUnsupported';
  constructor(message: string, readonly feature: string) {
    super(message);
  }
}

const root = protobuf.Root.fromJSON(ONNX_PROTO_JSON as unknown as protobuf.INamespace);
const ModelType = root.lookupType('onnx.ModelProto');
const TensorType_ = root.lookupType('onnx.TensorProto');

// ---- the decoded messages (the fields the importer reads; protobufjs's toObject with longs as numbers)

export interface TensorProto {
  dims?: number[];
  dataType?: number;
  floatData?: number[];
  int32Data?: number[];
  int64Data?: number[];
  doubleData?: number[];
  uint64Data?: number[];
  rawData?: Uint8Array;
  name?: string;
  dataLocation?: number;
}
export interface AttributeProto {
  name: string;
  type?: number;
  f?: number;
  i?: number;
  s?: Uint8Array;
  t?: TensorProto;
  g?: unknown;
  floats?: number[];
  ints?: number[];
  strings?: Uint8Array[];
}
export interface NodeProto {
  input?: string[];
  output?: string[];
  name?: string;
  opType?: string;
  domain?: string;
  attribute?: AttributeProto[];
}
export interface Dim {
  dimValue?: number;
  dimParam?: string;
}
export interface ValueInfoProto {
  name: string;
  type?: { tensorType?: { elemType?: number; shape?: { dim?: Dim[] } } };
}
export interface GraphProto {
  node?: NodeProto[];
  name?: string;
  initializer?: TensorProto[];
  input?: ValueInfoProto[];
  output?: ValueInfoProto[];
}
export interface ModelProto {
  irVersion?: number;
  opsetImport?: { domain?: string; version?: number }[];
  producerName?: string;
  graph?: GraphProto;
}

/** ONNX element types (TensorProto.DataType). */
export const ONNX_DTYPE = { FLOAT: 1, UINT8: 2, INT8: 3, UINT16: 4, INT16: 5, INT32: 6, INT64: 7, STRING: 8, BOOL: 9, FLOAT16: 10, DOUBLE: 11, UINT32: 12, UINT64: 13 } as const;
const DTYPE_NAME: Record<number, string> = Object.fromEntries(Object.entries(ONNX_DTYPE).map(([k, v]) => [v, k.toLowerCase()]));
export const onnxDtypeName = (t: number | undefined): string => DTYPE_NAME[t ?? 0] ?? `type ${t ?? 0}`;
/** Float element types import as f32; integer and bool ones as i32. */
export const isFloatType = (t: number | undefined): boolean => t === ONNX_DTYPE.FLOAT || t === ONNX_DTYPE.DOUBLE || t === ONNX_DTYPE.FLOAT16;
export const isIntType = (t: number | undefined): boolean =>
  t === ONNX_DTYPE.INT64 || t === ONNX_DTYPE.INT32 || t === ONNX_DTYPE.INT16 || t === ONNX_DTYPE.INT8 || t === ONNX_DTYPE.UINT8 ||
  t === ONNX_DTYPE.UINT16 || t === ONNX_DTYPE.UINT32 || t === ONNX_DTYPE.UINT64 || t === ONNX_DTYPE.BOOL;

const OBJECT_OPTS: protobuf.IConversionOptions = { longs: Number, enums: Number, bytes: Uint8Array as unknown as typeof String, defaults: false, arrays: true };

/** Decodes an ONNX model file; `where` (the file name) starts every error. */
export function decodeModel(bytes: Uint8Array, where = 'model.onnx'): ModelProto {
  if (bytes.length === 0) throw new OnnxError(`${where}: the file is empty, not an ONNX model`);
  let m: ModelProto;
  try {
    m = ModelType.toObject(ModelType.decode(bytes), OBJECT_OPTS) as ModelProto;
  } catch (e) {
    const why = e instanceof Error ? e.message.split('\n')[0] : String(e);
    throw new OnnxError(`${where}: not an ONNX model, or the file is truncated (protobuf: ${why})`);
  }
  // A model always carries its opset imports and its graph; the writers put the opsets after the
  // graph, so a file cut anywhere in the graph loses them.
  if (!m.graph || !m.irVersion || !m.opsetImport?.length) {
    throw new OnnxError(`${where}: not an ONNX model, or the file is truncated (no ${!m.graph ? 'graph' : !m.irVersion ? 'IR version' : 'opset import'})`);
  }
  return m;
}

export function decodeTensor(bytes: Uint8Array, where: string): TensorProto {
  try {
    return TensorType_.toObject(TensorType_.decode(bytes), OBJECT_OPTS) as TensorProto;
  } catch (e) {
    throw new OnnxError(`${where}: not an ONNX tensor (protobuf: ${e instanceof Error ? e.message : String(e)})`);
  }
}

export function encodeModel(m: ModelProto): Uint8Array {
  const err = ModelType.verify(m);
  if (err) throw new AdjointError(`internal: ONNX model message: ${err}`);
  return ModelType.encode(ModelType.fromObject(m)).finish();
}

/** The element values of a tensor as numbers (int64 beyond 2^53 lose precision; they only clamp). */
export function tensorValues(t: TensorProto, where: string): Float64Array {
  if (t.dataLocation === 1) throw new OnnxError(`${where}: tensor "${t.name ?? ''}" keeps its data in an external file, which is not supported (save the model with its weights inside)`);
  const n = (t.dims ?? []).reduce((p, q) => p * q, 1);
  const dt = t.dataType ?? 0;
  const raw = t.rawData;
  const out = new Float64Array(n);
  if (raw && raw.length > 0) {
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const size: Record<number, number> = { 1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8 };
    const s = size[dt];
    if (s === undefined) throw new OnnxError(`${where}: tensor "${t.name ?? ''}" has element type ${onnxDtypeName(dt)}, which is not supported`);
    if (raw.length !== n * s) throw new OnnxError(`${where}: tensor "${t.name ?? ''}" has ${raw.length} bytes of data for ${n} elements of ${onnxDtypeName(dt)} (truncated?)`);
    for (let i = 0; i < n; i++) {
      const o = i * s;
      switch (dt) {
        case 1: out[i] = view.getFloat32(o, true); break;
        case 2: case 9: out[i] = view.getUint8(o); break;
        case 3: out[i] = view.getInt8(o); break;
        case 4: out[i] = view.getUint16(o, true); break;
        case 5: out[i] = view.getInt16(o, true); break;
        case 6: out[i] = view.getInt32(o, true); break;
        case 7: out[i] = Number(view.getBigInt64(o, true)); break;
        case 10: out[i] = half(view.getUint16(o, true)); break;
        case 11: out[i] = view.getFloat64(o, true); break;
        case 12: out[i] = view.getUint32(o, true); break;
        case 13: out[i] = Number(view.getBigUint64(o, true)); break;
      }
    }
    return out;
  }
  const src =
    dt === ONNX_DTYPE.FLOAT ? t.floatData :
    dt === ONNX_DTYPE.INT64 ? t.int64Data :
    dt === ONNX_DTYPE.DOUBLE ? t.doubleData :
    dt === ONNX_DTYPE.UINT64 || dt === ONNX_DTYPE.UINT32 ? t.uint64Data :
    t.int32Data;
  const vals = src ?? [];
  if (vals.length !== n) throw new OnnxError(`${where}: tensor "${t.name ?? ''}" has ${vals.length} values for ${n} elements`);
  for (let i = 0; i < n; i++) out[i] = dt === ONNX_DTYPE.FLOAT16 ? half(vals[i]!) : Number(vals[i]!);
  return out;
}

/** IEEE half-precision bits to a number. */
function half(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

/** A float32 TensorProto (raw little-endian data). */
export function floatTensor(name: string, dims: readonly number[], data: ArrayLike<number>): TensorProto {
  const f = Float32Array.from(data);
  return { name, dims: [...dims], dataType: ONNX_DTYPE.FLOAT, rawData: new Uint8Array(f.buffer) };
}
/** An int64 TensorProto (shapes, axes, indices). */
export function int64Tensor(name: string, dims: readonly number[], data: ArrayLike<number>): TensorProto {
  const b = new BigInt64Array(data.length);
  for (let i = 0; i < data.length; i++) b[i] = BigInt(data[i]!);
  return { name, dims: [...dims], dataType: ONNX_DTYPE.INT64, rawData: new Uint8Array(b.buffer) };
}
/** An int32 TensorProto. */
export function int32Tensor(name: string, dims: readonly number[], data: ArrayLike<number>): TensorProto {
  const f = Int32Array.from(data);
  return { name, dims: [...dims], dataType: ONNX_DTYPE.INT32, rawData: new Uint8Array(f.buffer) };
}
