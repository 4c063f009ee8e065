/**
 * @file The TypeScript builder: adds typed nodes one at a time (running each shape rule as it
 * goes, so a mistake is reported at the line that made it), and builds composites — softmax,
 * cross-entropy, layernorm, GELU, attention, pooling — by decomposition into primitives, so that
 * autodiff covers them for free and fusion wins their speed back. The JSON loader and every pass
 * build graphs through this class.
 */
import { normAxis, numel, type DType, type Shape, type TensorType } from './dtype.js';
import { AdjointError, ShapeError } from './errors.js';
import type { Graph, Node, Output, Update, ValueId } from './graph.js';
import type { Init, Op, OpAttrs, ReduceOp, UnaryOp, BinaryOp, CompareOp, Conv2dAttrs } from './ops.js';
import { valueName } from './printer.js';
import { inferType } from './shape.js';
import { fmtType } from './dtype.js';

/** A handle on a value being built: its id and type. */
export interface Value {
  readonly id: ValueId;
  readonly type: TensorType;
}

export type Operand = Value | number;

/** Lowest finite f32: the padding of max pooling and the mask of causal attention. */
export const F32_LOWEST = -3.4028234663852886e38;

export interface PoolOptions {
  readonly kernel: readonly [number, number];
  readonly stride?: readonly [number, number];
  readonly padding?: readonly [number, number];
}

export class GraphBuilder {
  private readonly nodes: Node[] = [];
  private readonly outs: Output[] = [];
  private readonly upds: Update[] = [];
  private readonly names = new Set<string>();

  /** The value with id `id` (for passes that rebuild a graph). */
  value(id: ValueId): Value {
    const n = this.nodes[id];
    if (!n) throw new AdjointError(`internal: no value ${id}`);
    return { id, type: n.type };
  }

  /** The node built for `id` (for passes that look at operands while rebuilding). */
  node(id: ValueId): Node {
    const n = this.nodes[id];
    if (!n) throw new AdjointError(`internal: no node ${id}`);
    return n;
  }

  get size(): number {
    return this.nodes.length;
  }

  /** Adds one primitive node after checking its shape rule. */
  add<K extends Op>(op: K, attrs: OpAttrs[K], inputs: readonly Value[], label?: string): Value {
    let type: TensorType;
    try {
      type = inferType(op, attrs, inputs.map((v) => v.type));
    } catch (e) {
      if (e instanceof ShapeError) {
        const args = inputs.map((v) => `${valueName(v.id)}:${fmtType(v.type)}`).join(' ');
        throw new ShapeError(`${op}${args ? ' ' + args : ''}: ${e.message}`, { cause: e });
      }
      throw e;
    }
    const node = { op, attrs, inputs: inputs.map((v) => v.id), type, ...(label !== undefined ? { label } : {}) } as Node;
    this.nodes.push(node);
    return { id: this.nodes.length - 1, type };
  }

  /** Re-labels the last-built value (composites label their final node). */
  label(v: Value, label: string): Value {
    const n = this.nodes[v.id];
    if (n) this.nodes[v.id] = { ...n, label };
    return v;
  }

  private source(op: 'input' | 'param' | 'state', attrs: OpAttrs['param'] | OpAttrs['input']): Value {
    if (this.names.has(attrs.name)) throw new ShapeError(`${op} "${attrs.name}": the name is already used`);
    this.names.add(attrs.name);
    return this.add(op, attrs as never, []);
  }

  input(name: string, shape: Shape, dtype: DType = 'f32'): Value {
    return this.source('input', { name, shape, dtype });
  }
  param(name: string, shape: Shape, init: Init = { kind: 'glorot_uniform' }): Value {
    return this.source('param', { name, shape, dtype: 'f32', init });
  }
  state(name: string, shape: Shape, init: Init = { kind: 'zeros' }, dtype: DType = 'f32'): Value {
    return this.source('state', { name, shape, dtype, init });
  }
  full(value: number, shape: Shape = [], dtype: DType = 'f32'): Value {
    return this.add('full', { value, shape, dtype }, []);
  }
  iota(shape: Shape, axis: number, dtype: DType = 'i32'): Value {
    return this.add('iota', { shape, axis: normAxis(axis, shape.length), dtype }, []);
  }

  output(name: string, v: Value): void {
    if (this.outs.some((o) => o.name === name)) throw new ShapeError(`output "${name}" is defined twice`);
    this.outs.push({ name, value: v.id });
  }
  update(target: string, v: Value): void {
    this.upds.push({ target, value: v.id });
  }

  build(): Graph {
    return { nodes: [...this.nodes], outputs: [...this.outs], updates: [...this.upds] };
  }

  // ---- elementwise -------------------------------------------------------------------------

  private lift(x: Operand, like: Value): Value {
    return typeof x === 'number' ? this.full(x, [], like.type.dtype) : x;
  }
  private pair(a: Operand, b: Operand): [Value, Value] {
    if (typeof a === 'number' && typeof b === 'number') return [this.full(a), this.full(b)];
    const like = (typeof a === 'number' ? b : a) as Value;
    return [this.lift(a, like), this.lift(b, like)];
  }
  unary(op: UnaryOp, x: Value): Value {
    return this.add(op, {}, [x]);
  }
  binary(op: BinaryOp | CompareOp, a: Operand, b: Operand): Value {
    return this.add(op, {}, this.pair(a, b));
  }
  neg = (x: Value) => this.unary('neg', x);
  abs = (x: Value) => this.unary('abs', x);
  exp = (x: Value) => this.unary('exp', x);
  log = (x: Value) => this.unary('log', x);
  sqrt = (x: Value) => this.unary('sqrt', x);
  rsqrt = (x: Value) => this.unary('rsqrt', x);
  reciprocal = (x: Value) => this.unary('reciprocal', x);
  tanh = (x: Value) => this.unary('tanh', x);
  sigmoid = (x: Value) => this.unary('sigmoid', x);
  relu = (x: Value) => this.unary('relu', x);
  sin = (x: Value) => this.unary('sin', x);
  cos = (x: Value) => this.unary('cos', x);
  add_ = (a: Operand, b: Operand) => this.binary('add', a, b);
  sub = (a: Operand, b: Operand) => this.binary('sub', a, b);
  mul = (a: Operand, b: Operand) => this.binary('mul', a, b);
  div = (a: Operand, b: Operand) => this.binary('div', a, b);
  maximum = (a: Operand, b: Operand) => this.binary('max', a, b);
  minimum = (a: Operand, b: Operand) => this.binary('min', a, b);
  pow = (a: Operand, b: Operand) => this.binary('pow', a, b);
  eq = (a: Operand, b: Operand) => this.binary('eq', a, b);
  ne = (a: Operand, b: Operand) => this.binary('ne', a, b);
  lt = (a: Operand, b: Operand) => this.binary('lt', a, b);
  le = (a: Operand, b: Operand) => this.binary('le', a, b);
  gt = (a: Operand, b: Operand) => this.binary('gt', a, b);
  ge = (a: Operand, b: Operand) => this.binary('ge', a, b);
  where(cond: Value, a: Operand, b: Operand): Value {
    const [x, y] = this.pair(a, b);
    return this.add('where', {}, [cond, x, y]);
  }
  cast = (x: Value, dtype: DType) => this.add('cast', { dtype }, [x]);
  stopGradient = (x: Value) => this.add('stop_gradient', {}, [x]);

  // ---- reductions and movement -------------------------------------------------------------

  /** Normalized axes: non-negative, sorted, unique; `undefined` means all axes. */
  axes(x: Value, axes?: number | readonly number[]): number[] {
    const r = x.type.shape.length;
    const list = axes === undefined ? [...Array(r).keys()] : typeof axes === 'number' ? [axes] : axes;
    return [...new Set(list.map((a) => normAxis(a, r)))].sort((p, q) => p - q);
  }
  reduce(op: ReduceOp, x: Value, axes?: number | readonly number[], keepdims = false): Value {
    return this.add(op, { axes: this.axes(x, axes), keepdims }, [x]);
  }
  reduceSum = (x: Value, axes?: number | readonly number[], keepdims = false) => this.reduce('reduce_sum', x, axes, keepdims);
  reduceMax = (x: Value, axes?: number | readonly number[], keepdims = false) => this.reduce('reduce_max', x, axes, keepdims);
  reduceMean = (x: Value, axes?: number | readonly number[], keepdims = false) => this.reduce('reduce_mean', x, axes, keepdims);

  reshape = (x: Value, shape: Shape) => this.add('reshape', { shape }, [x]);
  transpose(x: Value, perm?: readonly number[]): Value {
    const r = x.type.shape.length;
    return this.add('transpose', { perm: perm ?? [...Array(r).keys()].reverse() }, [x]);
  }
  /** Swaps the last two axes. */
  mT(x: Value): Value {
    const r = x.type.shape.length;
    const perm = [...Array(r).keys()];
    [perm[r - 2], perm[r - 1]] = [r - 1, r - 2];
    return this.transpose(x, perm);
  }
  broadcastTo = (x: Value, shape: Shape) => this.add('broadcast_to', { shape }, [x]);
  slice(x: Value, starts: readonly number[], ends: readonly number[], steps?: readonly number[]): Value {
    return this.add('slice', { starts, ends, steps: steps ?? starts.map(() => 1) }, [x]);
  }
  pad(x: Value, low: readonly number[], high: readonly number[], value = 0, interior?: readonly number[]): Value {
    return this.add('pad', { low, high, interior: interior ?? low.map(() => 0), value }, [x]);
  }
  concat(xs: readonly Value[], axis: number): Value {
    const r = xs[0]?.type.shape.length ?? 0;
    return this.add('concat', { axis: normAxis(axis, r) }, xs);
  }

  // ---- contractions and indexing -----------------------------------------------------------

  matmul = (a: Value, b: Value) => this.add('matmul', {}, [a, b]);
  gather = (table: Value, indices: Value) => this.add('gather', {}, [table, indices]);
  scatterAdd = (indices: Value, updates: Value, rows: number) => this.add('scatter_add', { rows }, [indices, updates]);
  oneHot = (indices: Value, depth: number) => this.add('one_hot', { depth }, [indices]);
  conv2d(x: Value, w: Value, opts: Partial<Conv2dAttrs> = {}): Value {
    return this.add('conv2d', convAttrs(opts), [x, w]);
  }

  // ---- composites --------------------------------------------------------------------------

  square = (x: Value) => this.mul(x, x);

  /** x @ w + b */
  linear(x: Value, w: Value, b?: Value): Value {
    const y = this.matmul(x, w);
    return b ? this.add_(y, b) : y;
  }

  /** exp(x - max) / sum(exp(x - max)); the max is a constant shift, so it carries no gradient. */
  softmax(x: Value, axis = -1): Value {
    const m = this.stopGradient(this.reduceMax(x, axis, true));
    const e = this.exp(this.sub(x, m));
    return this.div(e, this.reduceSum(e, axis, true));
  }

  /** (x - max) - log(sum(exp(x - max))) */
  logSoftmax(x: Value, axis = -1): Value {
    const m = this.stopGradient(this.reduceMax(x, axis, true));
    const s = this.sub(x, m);
    return this.sub(s, this.log(this.reduceSum(this.exp(s), axis, true)));
  }

  /** Mean over every leading position of -log_softmax(logits)[label]; labels are i32 class ids. */
  softmaxCrossEntropy(logits: Value, labels: Value): Value {
    const depth = logits.type.shape.at(-1) ?? 0;
    const picked = this.reduceSum(this.mul(this.oneHot(labels, depth), this.logSoftmax(logits)), -1);
    return this.neg(this.reduceMean(picked));
  }

  /** mean((pred - target)^2) over every element. */
  mse(pred: Value, target: Value): Value {
    return this.reduceMean(this.square(this.sub(pred, target)));
  }

  /** (x - mean) / sqrt(var + eps) * gamma + beta over the last axis. */
  layerNorm(x: Value, gamma?: Value, beta?: Value, eps = 1e-5): Value {
    const xc = this.sub(x, this.reduceMean(x, -1, true));
    const inv = this.rsqrt(this.add_(this.reduceMean(this.square(xc), -1, true), eps));
    let y = this.mul(xc, inv);
    if (gamma) y = this.mul(y, gamma);
    if (beta) y = this.add_(y, beta);
    return y;
  }

  /** 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
  gelu(x: Value): Value {
    const inner = this.mul(this.add_(x, this.mul(this.mul(this.square(x), x), 0.044715)), Math.sqrt(2 / Math.PI));
    return this.mul(this.mul(x, 0.5), this.add_(this.tanh(inner), 1));
  }

  /** softmax(q k^T / sqrt(d) [+ causal mask]) v over the last two axes. */
  attention(q: Value, k: Value, v: Value, causal = false): Value {
    const d = q.type.shape.at(-1) ?? 1;
    let scores = this.mul(this.matmul(q, this.mT(k)), 1 / Math.sqrt(d));
    if (causal) {
      const t = q.type.shape.at(-2) ?? 1;
      const s = k.type.shape.at(-2) ?? 1;
      const allowed = this.ge(this.iota([t, s], 0), this.iota([t, s], 1));
      scores = this.where(allowed, scores, F32_LOWEST);
    }
    return this.matmul(this.softmax(scores, -1), v);
  }

  /** Pooling as the max (or mean) of kernel-many strided slices of the padded input. */
  private pool(x: Value, opts: PoolOptions, combine: 'max' | 'avg'): Value {
    if (x.type.shape.length !== 4) throw new ShapeError(`${combine}_pool2d needs x [N,C,H,W], got ${fmtType(x.type)}`);
    const [kh, kw] = opts.kernel;
    const [sh, sw] = opts.stride ?? opts.kernel;
    const [ph, pw] = opts.padding ?? [0, 0];
    for (const v of [kh, kw, sh, sw]) if (!Number.isInteger(v) || v < 1) throw new ShapeError(`${combine}_pool2d: kernel and stride must be integers >= 1`);
    for (const v of [ph, pw]) if (!Number.isInteger(v) || v < 0) throw new ShapeError(`${combine}_pool2d: padding must be integers >= 0`);
    const padded = ph || pw ? this.pad(x, [0, 0, ph, pw], [0, 0, ph, pw], combine === 'max' ? F32_LOWEST : 0) : x;
    const [n, c, h, w] = padded.type.shape as [number, number, number, number];
    const oh = Math.floor((h - kh) / sh) + 1;
    const ow = Math.floor((w - kw) / sw) + 1;
    if (oh < 1 || ow < 1) throw new ShapeError(`${combine}_pool2d: kernel ${kh}x${kw} does not fit ${h}x${w}`);
    let acc: Value | undefined;
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++) {
        const win = this.slice(padded, [0, 0, i, j], [n, c, i + (oh - 1) * sh + 1, j + (ow - 1) * sw + 1], [1, 1, sh, sw]);
        acc = acc === undefined ? win : combine === 'max' ? this.maximum(acc, win) : this.add_(acc, win);
      }
    }
    return combine === 'max' ? acc! : this.mul(acc!, 1 / (kh * kw));
  }
  maxPool2d = (x: Value, opts: PoolOptions) => this.pool(x, opts, 'max');
  /** Average pooling; zero padding counts toward the mean. */
  avgPool2d = (x: Value, opts: PoolOptions) => this.pool(x, opts, 'avg');

  // ---- issue 16: train/eval mode, random numbers, dropout, batch normalization ---------------

  /** 1 in the training program, 0 in the forward (eval) program (passes/mode.ts). */
  isTraining(): Value {
    return this.add('is_training', {}, []);
  }

  /**
   * The key of random_uniform: state `rng:seed` (the program's seed, written at load) and state
   * `rng:step` (a step counter the training program advances by one per step; the forward
   * program leaves it). Created on first use, or found when the graph already has them.
   */
  rngKey(): readonly [Value, Value] {
    const find = (name: string) => this.nodes.findIndex((n) => n.op === 'state' && n.attrs.name === name);
    const [si, ci] = [find(RNG_SEED), find(RNG_STEP)];
    if (si >= 0 && ci >= 0) return [this.value(si), this.value(ci)];
    const seed = this.state(RNG_SEED, [], { kind: 'seed' }, 'i32');
    const step = this.state(RNG_STEP, [], { kind: 'zeros' }, 'i32');
    // step' = step + 1 in training; in the forward program step' = step, an update the mode pass drops
    this.update(RNG_STEP, this.where(this.isTraining(), this.add_(step, 1), step));
    return [seed, step];
  }

  /**
   * Uniform [0, 1) values of `shape`, new every training step, the same on every adapter and in
   * the interpreter for the same seed and step (src/ir/random.ts). Each call draws from its own
   * stream (the next unused one) unless `stream` is given.
   */
  randomUniform(shape: Shape, stream?: number): Value {
    const used = this.nodes.flatMap((n) => (n.op === 'random_uniform' ? [n.attrs.stream] : []));
    const [seed, step] = this.rngKey();
    return this.add('random_uniform', { shape, stream: stream ?? (used.length ? Math.max(...used) + 1 : 0) }, [seed, step]);
  }

  /**
   * Inverted dropout: in training, each element is zeroed with probability `rate` and the others
   * scaled by 1 / (1 - rate), so the expectation is x; in the forward (eval) program, x itself.
   */
  dropout(x: Value, rate: number): Value {
    if (!(rate >= 0 && rate < 1)) throw new ShapeError(`dropout: rate must be >= 0 and < 1, got ${rate}`);
    if (x.type.dtype !== 'f32') throw new ShapeError(`dropout needs an f32 operand, got ${fmtType(x.type)}`);
    if (rate === 0) return x;
    // keep = [u >= rate], 1 with probability 1 - rate; y = x * keep / (1 - rate)
    const keep = this.ge(this.randomUniform(x.type.shape), rate);
    return this.where(this.isTraining(), this.mul(x, this.mul(keep, 1 / (1 - rate))), x);
  }

  /**
   * Batch normalization over every axis but 1 (N,H,W of NCHW; the batch of [N, F]), PyTorch's
   * convention: in training, y = (x - mean) / sqrt(var + eps) * gamma + beta with the batch's mean
   * and biased variance, and each running statistic that is a `state` is updated in the step,
   * running = (1 - momentum) running + momentum batch (the variance unbiased: times n / (n - 1));
   * in the forward (eval) program, the running statistics normalize and nothing is updated.
   * gamma, beta, runningMean and runningVar are f32[C].
   */
  batchNorm(x: Value, gamma: Value, beta: Value, runningMean: Value, runningVar: Value, opts: BatchNormOptions = {}): Value {
    const momentum = opts.momentum ?? 0.1;
    const eps = opts.eps ?? 1e-5;
    const shape = x.type.shape;
    if (shape.length < 2 || x.type.dtype !== 'f32') throw new ShapeError(`batch_norm needs an f32 x [N, C, ...], got ${fmtType(x.type)}`);
    if (!(momentum >= 0 && momentum <= 1)) throw new ShapeError(`batch_norm: momentum must be in [0, 1], got ${momentum}`);
    if (!(eps >= 0)) throw new ShapeError(`batch_norm: eps must be >= 0, got ${eps}`);
    const c = shape[1]!;
    const named = { gamma, beta, running_mean: runningMean, running_var: runningVar };
    for (const [what, v] of Object.entries(named)) {
      if (v.type.dtype !== 'f32' || v.type.shape.length !== 1 || v.type.shape[0] !== c) {
        throw new ShapeError(`batch_norm: ${what} must be f32[${c}] (x has ${c} channels), got ${fmtType(v.type)}`);
      }
    }
    const axes = shape.flatMap((_, i) => (i === 1 ? [] : [i]));
    const col = (v: Value) => this.reshape(v, shape.map((d, i) => (i === 1 ? d : 1)));
    const training = this.isTraining();
    // training: the batch's statistics
    const mean = this.reduceMean(x, axes, true);
    const xc = this.sub(x, mean);
    const variance = this.reduceMean(this.square(xc), axes, true);
    const yTrain = this.mul(xc, this.rsqrt(this.add_(variance, eps)));
    // eval: the running statistics
    const yEval = this.mul(this.sub(x, col(runningMean)), this.rsqrt(this.add_(col(runningVar), eps)));
    const y = this.add_(this.mul(this.where(training, yTrain, yEval), col(gamma)), col(beta));
    const n = numel(shape) / c;
    const stats: [Value, Value, number][] = [[runningMean, mean, 1], [runningVar, variance, n / Math.max(1, n - 1)]];
    for (const [running, batch, correction] of stats) {
      const node = this.node(running.id);
      if (node.op !== 'state') continue;
      const target = node.attrs.name;
      if (this.upds.some((u) => u.target === target)) throw new ShapeError(`batch_norm: state "${target}" already has an update (each batch_norm needs running statistics of its own)`);
      // running' = (1 - momentum) running + momentum * batch (* n / (n - 1) for the variance)
      const next = this.add_(this.mul(running, 1 - momentum), this.mul(this.reshape(batch, [c]), momentum * correction));
      this.update(target, this.where(training, next, running));
    }
    return y;
  }
  // ---- end issue 16 ----

  // ---- recurrent layers (issue 16): LSTM and GRU unrolled over the static sequence length -----

  /**
   * An LSTM over x [B, T, I] (batch first), PyTorch's `torch.nn.LSTM` for one layer: weights
   * weightIh [4H, I], weightHh [4H, H], biases [4H], gates in the order i, f, g, o:
   *   i = σ(W_ii x + b_ii + W_hi h + b_hi)   f = σ(W_if x + b_if + W_hf h + b_hf)
   *   g = tanh(W_ig x + b_ig + W_hg h + b_hg) o = σ(W_io x + b_io + W_ho h + b_ho)
   *   c' = f c + i g                        h' = o tanh(c')
   * Unrolled over T (each step is ordinary IR, so autodiff gives backpropagation through time and
   * fusion, memory planning and the interpreter need nothing new). The input projection of all
   * steps is one matmul; h0 and c0 default to zeros. Returns the hidden state of every step
   * y [B, T, H] and the last h, c [B, H].
   */
  lstm(x: Value, w: RecurrentWeights, h0?: Value, c0?: Value): { y: Value; h: Value; c: Value } {
    const r = this.recurrentShapes('lstm', x, w, 4, h0, c0);
    const { H } = r;
    const xp = this.recurrentInput(x, w, true);
    const whh = this.transpose(w.weightHh);
    let h = h0;
    let c = c0;
    const hs: Value[] = [];
    for (let t = 0; t < r.T; t++) {
      // gates = (x W_ih^T + b_ih + b_hh)[t] + h W_hh^T; the h term vanishes while h is the zero state.
      const xt = this.reshape(this.slice(xp, [0, t, 0], [r.B, t + 1, 4 * H]), [r.B, 4 * H]);
      const gates = h ? this.add_(xt, this.matmul(h, whh)) : xt;
      const gate = (k: number) => this.slice(gates, [0, k * H], [r.B, (k + 1) * H]);
      const [i, f, g, o] = [this.sigmoid(gate(0)), this.sigmoid(gate(1)), this.tanh(gate(2)), this.sigmoid(gate(3))];
      c = c ? this.add_(this.mul(f, c), this.mul(i, g)) : this.mul(i, g);
      h = this.mul(o, this.tanh(c));
      hs.push(h);
    }
    return { y: this.stackSteps(hs), h: h!, c: c! };
  }

  /**
   * A GRU over x [B, T, I] (batch first), PyTorch's `torch.nn.GRU` for one layer: weights
   * weightIh [3H, I], weightHh [3H, H], biases [3H], gates in the order r, z, n:
   *   r = σ(W_ir x + b_ir + W_hr h + b_hr)   z = σ(W_iz x + b_iz + W_hz h + b_hz)
   *   n = tanh(W_in x + b_in + r (W_hn h + b_hn))
   *   h' = (1 - z) n + z h
   * Unrolled over T like lstm; h0 defaults to zeros. Returns y [B, T, H] and the last h [B, H].
   */
  gru(x: Value, w: RecurrentWeights, h0?: Value): { y: Value; h: Value } {
    const r = this.recurrentShapes('gru', x, w, 3, h0);
    const { H, B } = r;
    const xp = this.recurrentInput(x, w, false);
    const whh = this.transpose(w.weightHh);
    let h = h0;
    const hs: Value[] = [];
    for (let t = 0; t < r.T; t++) {
      const xt = this.reshape(this.slice(xp, [0, t, 0], [B, t + 1, 3 * H]), [B, 3 * H]);
      // hp = h W_hh^T + b_hh (just b_hh, or nothing, while h is the zero state)
      let hp: Value | undefined = h ? this.matmul(h, whh) : undefined;
      if (w.biasHh) hp = hp ? this.add_(hp, w.biasHh) : this.broadcastTo(w.biasHh, [B, 3 * H]);
      const part = (v: Value, k: number) => this.slice(v, [0, k * H], [B, (k + 1) * H]);
      const pre = (k: number) => (hp ? this.add_(part(xt, k), part(hp, k)) : part(xt, k));
      const rg = this.sigmoid(pre(0));
      const z = this.sigmoid(pre(1));
      const n = this.tanh(hp ? this.add_(part(xt, 2), this.mul(rg, part(hp, 2))) : part(xt, 2));
      // h' = (1 - z) n + z h = n + z (h - n)
      h = h ? this.add_(n, this.mul(z, this.sub(h, n))) : this.sub(n, this.mul(z, n));
      hs.push(h);
    }
    return { y: this.stackSteps(hs), h: h! };
  }

  /** Checks a recurrent layer's operands; G is the number of gates. */
  private recurrentShapes(op: string, x: Value, w: RecurrentWeights, G: number, h0?: Value, c0?: Value): { B: number; T: number; H: number } {
    const sh = (v: Value) => v.type.shape;
    if (sh(x).length !== 3 || x.type.dtype !== 'f32') throw new ShapeError(`${op} needs x f32[B,T,I] (batch first), got ${fmtType(x.type)}`);
    const [B, T, I] = sh(x) as [number, number, number];
    const gh = sh(w.weightHh)[0] ?? 0;
    const H = gh / G;
    const want = (what: string, v: Value | undefined, shape: readonly number[]) => {
      if (v && sh(v).join() !== shape.join()) throw new ShapeError(`${op}: ${what} must be [${shape.join(',')}] (${G} gates of hidden size ${H}), got ${fmtType(v.type)}`);
    };
    if (sh(w.weightHh).length !== 2 || !Number.isInteger(H) || H < 1 || sh(w.weightHh)[1] !== H) {
      throw new ShapeError(`${op}: weight_hh must be [${G}*H, H], got ${fmtType(w.weightHh.type)}`);
    }
    want('weight_ih', w.weightIh, [G * H, I]);
    want('bias_ih', w.biasIh, [G * H]);
    want('bias_hh', w.biasHh, [G * H]);
    want('h0', h0, [B, H]);
    want('c0', c0, [B, H]);
    return { B, T, H };
  }

  /** x W_ih^T + b_ih (+ b_hh when `bothBiases`) for every step at once: [B, T, G*H]. */
  private recurrentInput(x: Value, w: RecurrentWeights, bothBiases: boolean): Value {
    let xp = this.matmul(x, this.transpose(w.weightIh));
    if (w.biasIh) xp = this.add_(xp, w.biasIh);
    if (bothBiases && w.biasHh) xp = this.add_(xp, w.biasHh);
    return xp;
  }

  /**
   * [B, H] per step -> [B, T, H], as a tree of concats of at most 4 operands each, so that no
   * kernel has to read T buffers (the device allows 8 storage buffers per stage).
   */
  private stackSteps(hs: readonly Value[]): Value {
    let level = hs.map((h) => this.reshape(h, [h.type.shape[0]!, 1, h.type.shape[1]!]));
    while (level.length > 1) {
      const next: Value[] = [];
      for (let i = 0; i < level.length; i += 4) {
        const group = level.slice(i, i + 4);
        next.push(group.length === 1 ? group[0]! : this.concat(group, 1));
      }
      level = next;
    }
    return level[0]!;
  }
}

/** The names of the random number generator's key state (see GraphBuilder.rngKey). */
export const RNG_SEED = 'rng:seed';
export const RNG_STEP = 'rng:step';

export interface BatchNormOptions {
  /** Weight of the batch statistic in the running one (PyTorch's momentum; default 0.1). */
  readonly momentum?: number;
  /** Added to the variance (default 1e-5). */
  readonly eps?: number;
}

/** The weights of an LSTM or GRU layer, in PyTorch's layout ([G*H, I], [G*H, H], [G*H]). */
export interface RecurrentWeights {
  readonly weightIh: Value;
  readonly weightHh: Value;
  readonly biasIh?: Value;
  readonly biasHh?: Value;
}

export function convAttrs(opts: Partial<Conv2dAttrs>): Conv2dAttrs {
  return { stride: opts.stride ?? [1, 1], padding: opts.padding ?? [0, 0], dilation: opts.dilation ?? [1, 1] };
}

/** Rebuilds a graph node by node through a builder (passes start from this). */
export function copyNode(b: GraphBuilder, n: Node, inputs: readonly Value[]): Value {
  return b.add(n.op, n.attrs as never, inputs, n.label);
}
