/**
 * @file ONNX import: an ONNX model (bytes) -> a graph fragment the TypeScript builder calls, so a
 * loss and an optimizer can be put around an imported network. Each ONNX node is translated by the
 * operator table of src/onnx/ops.ts into builder calls (primitives and the builder's composites;
 * what the IR lacks, such as erf, grouped or transposed convolutions, is built from primitives).
 * Float initializers become trainable params (their values are returned beside the graph, to be
 * written into a program or a checkpoint); integer initializers, `Constant` nodes and everything
 * computed from them alone (shape arithmetic: Shape, Gather, Concat, Unsqueeze, …) are folded at
 * import by running the same rule on the reference interpreter, so static shapes need no runtime
 * work. Anything the importer cannot translate exactly — an operator or attribute it does not
 * know, a dynamic dimension, an external-data tensor — is refused with one line naming the node,
 * its op and the opset; never a silent wrong graph.
 */
import { GraphBuilder, type Value } from '../ir/builder.js';
import { numel, type DType, type Shape } from '../ir/dtype.js';
import { AdjointError } from '../ir/errors.js';
import { evaluate } from '../ir/interp.js';
import type { Init } from '../ir/ops.js';
import { tensor, type Tensor } from '../ir/tensor.js';
import { NAME_PATTERN } from '../ir/schema.js';
import {
  decodeModel, isFloatType, isIntType, onnxDtypeName, OnnxError, OnnxUnsupported, tensorValues,
  type AttributeProto, type ModelProto, type NodeProto, type TensorProto,
} from './proto.js';
import { ONNX_OPS, type OnnxCtx, type OV, type HostTensor } from './ops.js';

export { OnnxError, OnnxUnsupported };

export interface ImportOptions {
  /** The file name that starts every error message. */
  readonly where?: string;
  /** Sizes for inputs whose dimensions are dynamic (or to override them), by ONNX input name. */
  readonly shapes?: Readonly<Record<string, readonly number[]>>;
  /**
   * Float constants computed in the graph (e.g. `ConstantOfShape` weights of the onnx test zoo's
   * `light/` models) become trainable params too, not only float initializers.
   */
  readonly trainConstants?: boolean;
  /**
   * The ONNX values the fragment outputs (default: the graph's outputs). Any value may be named,
   * e.g. the logits before a classifier's final Softmax, to put a loss on them.
   */
  readonly outputs?: readonly string[];
}

export interface ImportedTensor {
  readonly name: string;
  readonly shape: Shape;
  readonly dtype: DType;
}
export interface ImportedPersistent extends ImportedTensor {
  /** A uniform tensor keeps its value here (`constant`); any other gets `zeros` and its values in `values`. */
  readonly init: Init;
  /** The ONNX name it came from. */
  readonly onnxName: string;
}

export interface OnnxImport {
  readonly name: string;
  /** The default-domain opset the model declares. */
  readonly opset: number;
  /** Graph inputs (not initializers), with IR names (ONNX names made valid) and static shapes. */
  readonly inputs: readonly (ImportedTensor & { readonly onnxName: string })[];
  readonly outputs: readonly { readonly name: string; readonly onnxName: string }[];
  /** Trainable weights (float initializers). */
  readonly params: readonly ImportedPersistent[];
  /** Persistent non-trainable tensors (batch-norm statistics, constant tensors that are not uniform). */
  readonly state: readonly ImportedPersistent[];
  /** The values of every param and state whose `init` does not already hold them. */
  readonly values: ReadonlyMap<string, Float32Array | Int32Array>;
  /** The ONNX operators used, with their counts. */
  readonly ops: ReadonlyMap<string, number>;
  /**
   * Adds the network to `b`: creates its params and state (and its inputs, unless given by IR
   * name) and returns its outputs by IR name.
   */
  build(b: GraphBuilder, inputs?: Readonly<Record<string, Value>>): Record<string, Value>;
}

/** A valid IR name from an ONNX name (`onnx::Conv_12` stays; other characters become `_`). */
export function irName(s: string): string {
  let n = s.replace(/[^A-Za-z0-9_.:/-]/g, '_');
  if (!/^[A-Za-z0-9_]/.test(n)) n = `v${n}`;
  if (n.length > 200) n = n.slice(0, 200);
  return NAME_PATTERN.test(n) ? n : `v_${n.replace(/[^A-Za-z0-9_]/g, '_')}`;
}

/** The default-domain opset of a decoded model. */
function opsetOf(m: ModelProto): number {
  const o = (m.opsetImport ?? []).find((x) => !x.domain || x.domain === 'ai.onnx');
  return o?.version ?? 1;
}

const attrMap = (n: NodeProto): Map<string, AttributeProto> => new Map((n.attribute ?? []).map((a) => [a.name, a]));

/** The `ops` of a model and which of them the importer has no rule for (for the conformance report). */
export function modelOps(bytes: Uint8Array, where = 'model.onnx'): { opset: number; ops: Map<string, number>; unsupported: string[] } {
  const m = decodeModel(bytes, where);
  const ops = new Map<string, number>();
  for (const n of m.graph!.node ?? []) {
    const k = n.domain && n.domain !== 'ai.onnx' ? `${n.domain}.${n.opType}` : (n.opType ?? '');
    ops.set(k, (ops.get(k) ?? 0) + 1);
  }
  return { opset: opsetOf(m), ops, unsupported: [...ops.keys()].filter((k) => !Object.hasOwn(ONNX_OPS, k)) };
}

function hostFromProto(t: TensorProto, where: string): HostTensor {
  const dt = t.dataType;
  if (!isFloatType(dt) && !isIntType(dt)) throw new OnnxUnsupported(`${where}: tensor "${t.name ?? ''}" has element type ${onnxDtypeName(dt)}, which is not supported`, `${onnxDtypeName(dt)} tensors`);
  return { shape: (t.dims ?? []).map(Number), dtype: isFloatType(dt) ? 'f32' : 'i32', data: tensorValues(t, where), int64: dt === 7 };
}

/** Reads an ONNX model and checks that every node translates; see the file comment. */
export function importOnnx(bytes: Uint8Array, opts: ImportOptions = {}): OnnxImport {
  const where = opts.where ?? 'model.onnx';
  const m = decodeModel(bytes, where);
  const g = m.graph!;
  const opset = opsetOf(m);
  const inits = new Map<string, TensorProto>();
  for (const t of g.initializer ?? []) inits.set(t.name ?? '', t);

  // Graph inputs: the ones that are not initializers, with static shapes.
  const used = new Set<string>();
  const unique = (s: string): string => {
    let n = irName(s);
    for (let k = 2; used.has(n); k++) n = `${irName(s)}_${k}`;
    used.add(n);
    return n;
  };
  const inputs = (g.input ?? []).filter((x) => !inits.has(x.name)).map((x) => {
    const tt = x.type?.tensorType;
    if (!tt) throw new OnnxUnsupported(`${where}: input "${x.name}" is not a tensor (sequences and maps are not supported)`, 'sequence and map inputs');
    if ((!isFloatType(tt.elemType) && !isIntType(tt.elemType)) || tt.elemType === 11) throw new OnnxUnsupported(`${where}: input "${x.name}" has element type ${onnxDtypeName(tt.elemType)}, which is not supported (adjoint computes in float32 and int32)`, `${onnxDtypeName(tt.elemType)} tensors`);
    const dims = tt.shape?.dim ?? [];
    const given = opts.shapes?.[x.name];
    let shape: number[];
    if (given) {
      // A given shape may also change static sizes (a smaller batch or resolution); the graph's
      // own shape arithmetic must then still fit, or a node is refused.
      if (given.length !== dims.length) {
        throw new OnnxError(`${where}: input "${x.name}": the shape [${given.join(',')}] given has rank ${given.length}, the model's ${fmtDims(dims)} has ${dims.length}`);
      }
      shape = [...given];
    } else {
      if (!tt.shape) throw new OnnxUnsupported(`${where}: input "${x.name}" has no shape (dynamic rank); give one with --shape ${x.name}=d1,d2,...`, 'inputs of dynamic rank');
      shape = dims.map((d, i) => {
        if (!d.dimValue || d.dimValue < 1) {
          throw new OnnxUnsupported(`${where}: input "${x.name}" has a dynamic dimension ${d.dimParam ? `"${d.dimParam}" ` : ''}(axis ${i} of ${fmtDims(dims)}); give it a size with --shape ${x.name}=d1,d2,...`, 'inputs with a dynamic dimension');
        }
        return d.dimValue;
      });
    }
    return { name: unique(x.name), onnxName: x.name, shape, dtype: (isFloatType(tt.elemType) ? 'f32' : 'i32') as DType };
  });

  // Batch-norm statistics are constants of the network, not weights to train.
  const frozen = new Set<string>();
  for (const n of g.node ?? []) {
    if (n.opType === 'BatchNormalization' && (!n.domain || n.domain === 'ai.onnx')) for (const x of (n.input ?? []).slice(3, 5)) frozen.add(x);
  }

  const ops = new Map<string, number>();
  for (const n of g.node ?? []) ops.set(n.opType ?? '', (ops.get(n.opType ?? '') ?? 0) + 1);

  let collected: { params: ImportedPersistent[]; state: ImportedPersistent[]; values: Map<string, Float32Array | Int32Array> } | undefined;
  const outputNames = opts.outputs ? [...opts.outputs] : (g.output ?? []).map((o) => o.name);

  const build = (b: GraphBuilder, given?: Readonly<Record<string, Value>>): Record<string, Value> => {
    const params: ImportedPersistent[] = [];
    const state: ImportedPersistent[] = [];
    const values = new Map<string, Float32Array | Int32Array>();
    const names = new Set<string>(inputs.map((x) => x.name));
    const fresh = (s: string): string => {
      let n = irName(s);
      for (let k = 2; names.has(n); k++) n = `${irName(s)}_${k}`;
      names.add(n);
      return n;
    };
    const env = new Map<string, OV>();
    for (const x of inputs) {
      const v = given?.[x.name] ?? b.input(x.name, x.shape, x.dtype);
      env.set(x.onnxName, { kind: 'value', v });
    }
    for (const [name, t] of inits) {
      if (env.has(name)) continue; // an input of the same name overrides its default
      const h = hostFromProto(t, where);
      env.set(name, h.dtype === 'f32' && !frozen.has(name) ? { kind: 'const', t: h, train: name } : { kind: 'const', t: h, name });
    }
    const made = new WeakMap<HostTensor, Value>();
    /** A constant as a value of `bb`: a fill, a param (trainable) or a state holding its values. */
    const materialize = (bb: GraphBuilder, ov: OV & { kind: 'const' }, scratch?: Map<string, Tensor>): Value => {
      const t = ov.t;
      if (scratch) {
        const nm = `c${scratch.size}`;
        scratch.set(nm, tensor(t.shape, t.fill !== undefined ? new Float64Array(numel(t.shape)).fill(t.fill) : t.data!, t.dtype, 'f64'));
        return bb.input(nm, t.shape, t.dtype);
      }
      const prev = made.get(t);
      if (prev) return prev;
      const uniform = t.fill ?? (t.data && t.data.length > 0 && t.data.every((x) => x === t.data![0]) ? t.data[0]! : undefined);
      const train = ov.train ?? (opts.trainConstants && t.dtype === 'f32' && numel(t.shape) > 1 ? ov.name ?? 'const' : undefined);
      let v: Value;
      if (train !== undefined && t.dtype === 'f32') {
        const name = fresh(train);
        const init: Init = uniform !== undefined ? { kind: 'constant', value: uniform } : { kind: 'zeros' };
        if (uniform === undefined) values.set(name, Float32Array.from(t.data!));
        params.push({ name, shape: t.shape, dtype: 'f32', init, onnxName: train });
        v = b.param(name, t.shape, init);
      } else if (uniform !== undefined) {
        v = bb.full(uniform, t.shape, t.dtype);
      } else {
        const name = fresh(`const:${ov.name ?? 'value'}`);
        values.set(name, t.dtype === 'f32' ? Float32Array.from(t.data!) : Int32Array.from(t.data!));
        state.push({ name, shape: t.shape, dtype: t.dtype, init: { kind: 'zeros' }, onnxName: ov.name ?? '' });
        v = bb.state(name, t.shape, { kind: 'zeros' }, t.dtype);
      }
      made.set(t, v);
      return v;
    };

    for (const [i, n] of (g.node ?? []).entries()) {
      const op = n.opType ?? '';
      const desc = `node ${n.name ? `"${n.name}" ` : `${i} `}(${n.domain && n.domain !== 'ai.onnx' ? `${n.domain}.` : ''}${op}, opset ${opset})`;
      const fail = (why: string): never => {
        throw new OnnxError(`${where}: ${desc}: ${why}`);
      };
      const unsupported = (feature: string, why: string): never => {
        throw new OnnxUnsupported(`${where}: ${desc}: ${why}`, feature);
      };
      const rule = (!n.domain || n.domain === 'ai.onnx') && Object.hasOwn(ONNX_OPS, op) ? ONNX_OPS[op] : undefined;
      if (!rule) unsupported(n.domain && n.domain !== 'ai.onnx' ? `${n.domain}.${op}` : op, 'this operator is not supported');
      const xs = (n.input ?? []).map((x, j) => {
        if (x === '') return undefined;
        const v = env.get(x);
        if (!v) fail(`input ${j} "${x}" is not defined before this node`);
        return v;
      });
      const attrs = attrMap(n);
      const outs = (n.output ?? []).map((o) => o);
      // All operands constant (and none of them a weight to train): fold at import time.
      const fold = xs.length > 0 && xs.every((x) => x === undefined || (x.kind === 'const' && x.train === undefined));
      const run = (bb: GraphBuilder, scratch?: Map<string, Tensor>): (OV | Value | undefined)[] => {
        const c: OnnxCtx = {
          b: bb,
          opset,
          outputs: outs.length,
          attrs,
          fail,
          unsupported: (feature, why) => unsupported(`${op} ${feature}`, why),
          value: (x, what) => {
            if (!x) return fail(`${what} is missing`);
            if (x.kind === 'missing') return fail(x.why);
            return x.kind === 'value' ? x.v : materialize(bb, x, scratch);
          },
          where,
        };
        const r = rule!(c, xs);
        return Array.isArray(r) ? r : [r];
      };
      let res: (OV | Value | undefined)[];
      try {
        if (fold) {
          const sb = new GraphBuilder();
          const scratch = new Map<string, Tensor>();
          const raw = run(sb, scratch);
          const vals = raw.filter((r): r is Value => r !== undefined && !('kind' in r));
          vals.forEach((v, k) => sb.output(`o${k}`, v));
          const ev = vals.length ? evaluate(sb.build(), scratch, 'f64') : undefined;
          let k = 0;
          res = raw.map((r, j) => {
            if (r === undefined || 'kind' in r) return r;
            const t = ev!.outputs.get(`o${k++}`)!;
            return { kind: 'const', t: { shape: [...t.type.shape], dtype: t.type.dtype, data: Float64Array.from(t.data) }, name: outs[j] ?? op } satisfies OV;
          });
        } else {
          res = run(b);
        }
      } catch (e) {
        if (e instanceof OnnxError) throw e;
        if (e instanceof AdjointError) fail(e.message.split('\n')[0]!);
        throw e;
      }
      outs.forEach((o, j) => {
        if (o === '') return;
        const r = res[j];
        if (r === undefined) {
          // An optional output the rule does not compute: refuse only when something reads it.
          env.set(o, { kind: 'missing', why: `${desc}: output ${j} ("${o}") is not supported` });
          return;
        }
        env.set(o, 'kind' in r ? (r.kind === 'const' && r.name === undefined ? { ...r, name: o } : r) : { kind: 'value', v: r });
      });
    }
    const result: Record<string, Value> = {};
    const outNames = new Set<string>();
    for (const o of outputNames) {
      const ov = env.get(o);
      if (!ov) throw new OnnxError(`${where}: output "${o}" is not ${opts.outputs ? 'a value of the graph' : 'computed by any node'}`);
      if (ov.kind === 'missing') throw new OnnxError(`${where}: ${ov.why}`);
      let name = irName(o);
      for (let k = 2; outNames.has(name); k++) name = `${irName(o)}_${k}`;
      outNames.add(name);
      result[name] = ov.kind === 'value' ? ov.v : materialize(b, ov);
    }
    collected ??= { params, state, values };
    return result;
  };

  // A dry run validates every node and collects the params and state.
  const outs = build(new GraphBuilder());
  const c = collected!;
  return {
    name: g.name || 'onnx-model',
    opset,
    inputs,
    outputs: Object.keys(outs).map((name, i) => ({ name, onnxName: outputNames[i]! })),
    params: c.params,
    state: c.state,
    values: c.values,
    ops,
    build,
  };
}

function fmtDims(dims: readonly { dimValue?: number; dimParam?: string }[]): string {
  return `[${dims.map((d) => d.dimParam || (d.dimValue ?? '?')).join(',')}]`;
}
