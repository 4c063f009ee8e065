/**
 * @file ONNX export: a model's forward graph with the current weights as initializers, at opset
 * 17, for ONNX Runtime (Node, Web), transformers.js or PyTorch. One rule per IR op (the table is
 * typed over `Op`, so a new op is a compile error here until it has a rule); the ops that only
 * appear in gradients (`scatter_add`, `conv2d_filter_grad`, interior padding) are refused with one
 * line if a forward graph ever holds them. Booleans follow the IR's convention (1/0 in the
 * operands' dtype), so comparisons are cast back from ONNX's bool.
 */
import { specializeMode } from '../passes/mode.js';
import type { DType } from '../ir/dtype.js';
import { AdjointError } from '../ir/errors.js';
import type { Graph, Node, NodeOfOp } from '../ir/graph.js';
import type { Op } from '../ir/ops.js';
import { valueName } from '../ir/printer.js';
import { encodeModel, floatTensor, int32Tensor, int64Tensor, ONNX_DTYPE, OnnxError, type AttributeProto, type ModelProto, type NodeProto, type TensorProto, type ValueInfoProto } from './proto.js';

export const EXPORT_OPSET = 17;

export interface ExportOptions {
  readonly name?: string;
  /** Which outputs to export (default: every output of the graph). */
  readonly outputs?: readonly string[];
}

const elem = (d: DType): number => (d === 'f32' ? ONNX_DTYPE.FLOAT : ONNX_DTYPE.INT32);

interface Emit {
  /** The ONNX name of node `id`'s value. */
  readonly name: (id: number) => string;
  /** Adds an ONNX node; returns its (first) output name. */
  node(op: string, inputs: readonly string[], attrs?: AttributeProto[], out?: string): string;
  /** An int64 initializer (shapes, axes, pads). */
  ints(values: readonly number[]): string;
  /** A scalar constant of dtype `d`. */
  scalar(v: number, d: DType): string;
}

const aInts = (name: string, ints: readonly number[]): AttributeProto => ({ name, type: 7, ints: [...ints] });
const aInt = (name: string, i: number): AttributeProto => ({ name, type: 2, i });
const aTensor = (name: string, t: TensorProto): AttributeProto => ({ name, type: 4, t });

type Rule<K extends Op> = (e: Emit, n: NodeOfOp<K>, id: number, g: Graph) => void;
const out = (e: Emit, id: number) => e.name(id);
const unary = (op: string): Rule<Op> => (e, n, id) => void e.node(op, [e.name(n.inputs[0]!)], [], out(e, id));
const binary = (op: string): Rule<Op> => (e, n, id) => void e.node(op, n.inputs.map(e.name), [], out(e, id));
/** A comparison: ONNX's bool cast back to the operands' dtype (the IR's 1/0). */
const compare = (op: string, negate = false): Rule<Op> => (e, n, id, g) => {
  let r = e.node(op, n.inputs.map(e.name));
  if (negate) r = e.node('Not', [r]);
  e.node('Cast', [r], [aInt('to', elem(g.nodes[n.inputs[0]!]!.type.dtype))], out(e, id));
};
const reduce = (op: string): Rule<'reduce_sum' | 'reduce_max' | 'reduce_mean'> => (e, n, id) => {
  const keep = aInt('keepdims', n.attrs.keepdims ? 1 : 0);
  // At opset 17 ReduceSum takes its axes as an input, the others as an attribute.
  if (op === 'ReduceSum') e.node(op, [e.name(n.inputs[0]!), e.ints(n.attrs.axes)], [keep], out(e, id));
  else e.node(op, [e.name(n.inputs[0]!)], [aInts('axes', n.attrs.axes), keep], out(e, id));
};
const refuse = (why: string): Rule<Op> => (_e, n, id) => {
  throw new OnnxError(`export: ${valueName(id)} = ${n.op}: ${why}`);
};
const source: Rule<Op> = () => undefined;

const RULES: { readonly [K in Op]: Rule<K> } = {
  input: source,
  param: source,
  state: source,
  full: (e, n, id) => {
    const v = n.attrs.dtype === 'f32' ? floatTensor('', [1], [n.attrs.value]) : int32Tensor('', [1], [n.attrs.value]);
    if (n.attrs.shape.length === 0) e.node('Constant', [], [aTensor('value', { ...v, dims: [] })], out(e, id));
    else e.node('ConstantOfShape', [e.ints(n.attrs.shape)], [aTensor('value', v)], out(e, id));
  },
  iota: (e, n, id) => {
    const s = n.attrs.shape;
    const len = s[n.attrs.axis]!;
    const line = Array.from({ length: len }, (_, i) => i);
    const r = e.node('Constant', [], [aTensor('value', n.attrs.dtype === 'f32' ? floatTensor('', [len], line) : int32Tensor('', [len], line))]);
    const shaped = e.node('Reshape', [r, e.ints(s.map((d, i) => (i === n.attrs.axis ? d : 1)))]);
    e.node('Expand', [shaped, e.ints(s)], [], out(e, id));
  },
  neg: unary('Neg'), abs: unary('Abs'), exp: unary('Exp'), log: unary('Log'), sqrt: unary('Sqrt'),
  rsqrt: (e, n, id) => void e.node('Reciprocal', [e.node('Sqrt', [e.name(n.inputs[0]!)])], [], out(e, id)),
  reciprocal: unary('Reciprocal'), tanh: unary('Tanh'), sigmoid: unary('Sigmoid'), relu: unary('Relu'), sin: unary('Sin'), cos: unary('Cos'),
  add: binary('Add'), sub: binary('Sub'), mul: binary('Mul'), div: binary('Div'), max: binary('Max'), min: binary('Min'), pow: binary('Pow'),
  eq: compare('Equal'), ne: compare('Equal', true), lt: compare('Less'), le: compare('LessOrEqual'), gt: compare('Greater'), ge: compare('GreaterOrEqual'),
  where: (e, n, id) => {
    const [c, a, b] = n.inputs.map(e.name) as [string, string, string];
    e.node('Where', [e.node('Cast', [c], [aInt('to', ONNX_DTYPE.BOOL)]), a, b], [], out(e, id));
  },
  cast: (e, n, id) => void e.node('Cast', [e.name(n.inputs[0]!)], [aInt('to', elem(n.attrs.dtype))], out(e, id)),
  stop_gradient: unary('Identity'),
  reduce_sum: reduce('ReduceSum'),
  reduce_max: reduce('ReduceMax'),
  reduce_mean: reduce('ReduceMean'),
  reshape: (e, n, id) => void e.node('Reshape', [e.name(n.inputs[0]!), e.ints(n.attrs.shape)], [], out(e, id)),
  transpose: (e, n, id) => void e.node('Transpose', [e.name(n.inputs[0]!)], [aInts('perm', n.attrs.perm)], out(e, id)),
  broadcast_to: (e, n, id) => void e.node('Expand', [e.name(n.inputs[0]!), e.ints(n.attrs.shape)], [], out(e, id)),
  slice: (e, n, id) => {
    const a = n.attrs;
    e.node('Slice', [e.name(n.inputs[0]!), e.ints(a.starts), e.ints(a.ends), e.ints(a.starts.map((_, i) => i)), e.ints(a.steps)], [], out(e, id));
  },
  pad: (e, n, id, g) => {
    const a = n.attrs;
    if (a.interior.some((v) => v !== 0)) return refuse('interior padding has no ONNX operator')(e, n, id, g);
    const d = g.nodes[n.inputs[0]!]!.type.dtype;
    e.node('Pad', [e.name(n.inputs[0]!), e.ints([...a.low, ...a.high]), e.scalar(a.value, d)], [], out(e, id));
  },
  concat: (e, n, id) => void e.node('Concat', n.inputs.map(e.name), [aInt('axis', n.attrs.axis)], out(e, id)),
  matmul: binary('MatMul'),
  gather: (e, n, id) => void e.node('Gather', n.inputs.map(e.name), [aInt('axis', 0)], out(e, id)),
  scatter_add: refuse('scatter_add appears only in gradients; export the forward graph'),
  one_hot: (e, n, id) => {
    // indices[..., None] == [0, 1, …, depth-1], as f32 (ONNX Runtime's OneHot lacks int32 depths).
    const classes = e.node('Constant', [], [aTensor('value', int32Tensor('', [n.attrs.depth], Array.from({ length: n.attrs.depth }, (_, i) => i)))]);
    const idx = e.node('Unsqueeze', [e.name(n.inputs[0]!), e.ints([-1])]);
    e.node('Cast', [e.node('Equal', [idx, classes])], [aInt('to', ONNX_DTYPE.FLOAT)], out(e, id));
  },
  conv2d: (e, n, id) => {
    const a = n.attrs;
    e.node('Conv', n.inputs.map(e.name), [aInts('strides', a.stride), aInts('pads', [...a.padding, ...a.padding]), aInts('dilations', a.dilation)], out(e, id));
  },
  conv2d_input_grad: (e, n, id, g) => {
    // A transposed convolution: output size (in - 1) s - 2 p + d (k - 1) + 1 + output_padding.
    const a = n.attrs;
    const [dy, w] = [g.nodes[n.inputs[0]!]!.type.shape, g.nodes[n.inputs[1]!]!.type.shape];
    const extra = [0, 1].map((i) => a.size[i]! - ((dy[2 + i]! - 1) * a.stride[i]! - 2 * a.padding[i]! + a.dilation[i]! * (w[2 + i]! - 1) + 1));
    e.node('ConvTranspose', n.inputs.map(e.name), [aInts('strides', a.stride), aInts('pads', [...a.padding, ...a.padding]), aInts('dilations', a.dilation), aInts('output_padding', extra)], out(e, id));
  },
  conv2d_filter_grad: refuse('conv2d_filter_grad appears only in gradients; export the forward graph'),
  // exportOnnx specializes the graph to eval mode first, so neither remains in a forward graph
  // whose outputs do not read random numbers themselves.
  is_training: refuse('internal: the mode flag is specialized before export'),
  random_uniform: refuse('random numbers read by an output in eval mode have no exact ONNX operator (Threefry)'),
};

/**
 * The forward graph `g` as an ONNX model: inputs as graph inputs, params and state as
 * initializers with `weights` (every one must be given), the chosen outputs as graph outputs.
 */
export function exportOnnx(graph: Graph, weights: ReadonlyMap<string, Float32Array | Int32Array>, opts: ExportOptions = {}): Uint8Array {
  // The exported graph is the forward program's: eval mode (no dropout, running statistics).
  const g = specializeMode(graph, 'eval');
  const wanted = opts.outputs ?? g.outputs.map((o) => o.name);
  const outs = wanted.map((nm) => g.outputs.find((o) => o.name === nm) ?? (() => { throw new OnnxError(`export: the model has no output "${nm}" (outputs: ${g.outputs.map((o) => o.name).join(', ')})`); })());
  // Only what the chosen outputs read.
  const live = new Set<number>();
  const stack = outs.map((o) => o.value);
  while (stack.length) {
    const id = stack.pop()!;
    if (live.has(id)) continue;
    live.add(id);
    stack.push(...g.nodes[id]!.inputs);
  }
  const names = g.nodes.map((n: Node, i) => (n.op === 'input' || n.op === 'param' || n.op === 'state' ? n.attrs.name : `#v${i}`));
  // Generated names start with '#', which no adjoint name does.
  const nodes: NodeProto[] = [];
  const initializer: TensorProto[] = [];
  const inputs: ValueInfoProto[] = [];
  let k = 0;
  const e: Emit = {
    name: (id) => names[id]!,
    node(op, ins, attrs = [], o) {
      const name = o ?? `#t${k++}`;
      nodes.push({ opType: op, input: [...ins], output: [name], name: `${op}_${nodes.length}`, attribute: attrs });
      return name;
    },
    ints(values) {
      const name = `#c${k++}`;
      initializer.push(int64Tensor(name, [values.length], values));
      return name;
    },
    scalar(v, d) {
      const name = `#c${k++}`;
      initializer.push(d === 'f32' ? floatTensor(name, [], [v]) : int32Tensor(name, [], [v]));
      return name;
    },
  };
  const info = (name: string, d: DType, shape: readonly number[]): ValueInfoProto => ({ name, type: { tensorType: { elemType: elem(d), shape: { dim: shape.map((x) => ({ dimValue: x })) } } } });
  g.nodes.forEach((n, i) => {
    if (!live.has(i)) return;
    if (n.op === 'input') inputs.push(info(n.attrs.name, n.attrs.dtype, n.attrs.shape));
    else if (n.op === 'param' || n.op === 'state') {
      const w = weights.get(n.attrs.name);
      const len = n.type.shape.reduce((p, q) => p * q, 1);
      if (!w || w.length !== len) throw new AdjointError(`export: no values of ${len} elements for ${n.op} "${n.attrs.name}"`);
      initializer.push(n.attrs.dtype === 'f32' ? floatTensor(n.attrs.name, n.attrs.shape, w) : int32Tensor(n.attrs.name, n.attrs.shape, w));
    } else (RULES[n.op] as Rule<Op>)(e, n as never, i, g);
  });
  // Graph outputs carry the output's name (an Identity of the value); `output:<name>` when an
  // input or weight already has that name.
  const taken = new Set(g.nodes.flatMap((n) => (n.op === 'input' || n.op === 'param' || n.op === 'state' ? [n.attrs.name] : [])));
  const output: ValueInfoProto[] = outs.map((o) => {
    const t = g.nodes[o.value]!.type;
    const name = exportedOutputName(o.name, taken);
    e.node('Identity', [names[o.value]!], [], name);
    return info(name, t.dtype, t.shape);
  });
  const model: ModelProto & Record<string, unknown> = {
    irVersion: 8,
    producerName: 'adjoint',
    opsetImport: [{ domain: '', version: EXPORT_OPSET }],
    graph: { name: opts.name ?? 'adjoint', node: nodes, initializer, input: inputs, output },
  };
  return encodeModel(model);
}

/** The ONNX output name of adjoint output `name` in an exported model. */
export const exportedOutputName = (name: string, taken: ReadonlySet<string>): string => (taken.has(name) ? `output:${name}` : name);
