/**
 * @file WGSL emission: kernel description -> WGSL module text, bindings and a dispatch grid. Each
 * expression becomes a WGSL function of its index variables (common subexpressions bound once
 * with `let`), and a small template per kernel kind supplies the loop: one thread per output
 * element (map, serial reduction), one workgroup per output with a tree reduction in workgroup
 * memory, a two-kernel split for very large reductions, and a register-tiled (8x8 per thread)
 * matmul whose operands are emitted inline with their loop invariants hoisted (convolutions are
 * matmuls over index arithmetic), with a two-kernel split of K when there are few tiles. Shapes
 * are baked into the shader as constants. Every identifier is generated here: nothing from a
 * model file reaches the text.
 */
import { assertNever, internal } from '../ir/errors.js';
import type { Expr, ScalarType } from './expr.js';
import { bindingsRead, delinearize, int, invariantsOf, ivar, keyOf, linearIndex, load, substitute, tvar } from './expr.js';
import type { BufferRef, Combine, Kernel } from './kernel.js';
import { linearOf, simplifyKernel } from './ranges.js';
import { threefry2x32, UNIT, type WordOps } from '../ir/random.js';

/** The device limits codegen must respect. */
export interface CodegenLimits {
  readonly maxComputeWorkgroupsPerDimension: number;
  readonly maxComputeInvocationsPerWorkgroup: number;
  readonly maxComputeWorkgroupStorageSize: number;
  /** A two-kernel split binds one buffer more (the partials): it must still fit. */
  readonly maxStorageBuffersPerShaderStage: number;
}

export const DEFAULT_LIMITS: CodegenLimits = {
  maxStorageBuffersPerShaderStage: 8,
  maxComputeWorkgroupsPerDimension: 65535,
  maxComputeInvocationsPerWorkgroup: 256,
  maxComputeWorkgroupStorageSize: 16384,
};

/** One compute dispatch: a WGSL module, its bindings (inputs then the output) and its grid. */
export interface Dispatch {
  readonly wgsl: string;
  readonly inputs: readonly BufferRef[];
  readonly output: BufferRef;
  /** Further outputs written by the same dispatch, bound after `output`. */
  readonly extraOutputs: readonly BufferRef[];
  readonly workgroups: readonly [number, number, number];
  /** What it computes, for humans (op names and kernel kind; never model-file text). */
  readonly label: string;
}

/** A scratch buffer a kernel needs (partial sums of a split reduction). */
export interface ScratchRequest {
  readonly id: number;
  readonly bytes: number;
}

const WG = 64;
const REDUCE_WG = 64;

/** A small indenting line builder. */
class Lines {
  private readonly out: string[] = [];
  private depth = 0;
  line(s: string): this {
    this.out.push('  '.repeat(this.depth) + s);
    return this;
  }
  open(s: string): this {
    this.line(s + ' {');
    this.depth++;
    return this;
  }
  close(suffix = ''): this {
    this.depth--;
    return this.line('}' + suffix);
  }
  text(): string {
    return this.out.join('\n') + '\n';
  }
}

export function wgslType(t: ScalarType): string {
  switch (t) {
    case 'f32': return 'f32';
    case 'i32': return 'i32';
    case 'bool': return 'bool';
    default: return assertNever(t, 'scalar type');
  }
}

function literal(v: number, t: ScalarType): string {
  switch (t) {
    case 'bool': return v ? 'true' : 'false';
    case 'i32': return v === -2147483648 ? '(-2147483647i - 1i)' : v < 0 ? `(${v}i)` : `${v}i`;
    case 'f32': {
      // Tint refuses non-finite constant expressions; these read module-scope vars at run time.
      if (Number.isNaN(v)) return 'bitcast<f32>(nan_bits)';
      if (!Number.isFinite(v)) return v > 0 ? 'bitcast<f32>(inf_bits)' : '(-bitcast<f32>(inf_bits))';
      let s = String(v);
      if (!/[.e]/.test(s)) s += '.0';
      return v < 0 || Object.is(v, -0) ? `(${Object.is(v, -0) ? '-0.0' : s})` : s;
    }
    default: return assertNever(t, 'scalar type');
  }
}

const BINOP: Record<string, string> = { add: '+', sub: '-', mul: '*', eq: '==', ne: '!=', lt: '<', le: '<=', gt: '>', ge: '>=', and: '&&', or: '||' };

/** Emits the body of a function computing `e`, binding every compound subexpression once. */
class ExprEmitter {
  readonly lets: string[] = [];
  private readonly names = new Map<string, string>();
  usesPow = false;
  /** Whether the body calls the random number generator (RNG_FN). */
  usesRng = false;

  /**
   * With `outer`, every subexpression that one bound is known here by its name (it is in scope).
   * Input bindings in `vec4` are declared as arrays of vec4<f32> (a matmul reads them four at a
   * time); a scalar load from one picks its component.
   */
  constructor(
    private readonly binding: (i: number) => string,
    private readonly prefix = 't',
    outer?: ExprEmitter,
    readonly vec4: ReadonlySet<number> = outer?.vec4 ?? new Set(),
  ) {
    if (outer) for (const [key, name] of outer.names) this.names.set(key, name);
  }

  emit(e: Expr): string {
    if (e.k === 'const') return literal(e.v, e.t);
    if (e.k === 'var') return e.name;
    const key = keyOf(e);
    const known = this.names.get(key);
    if (known) return known;
    const text = this.compound(e);
    const name = `${this.prefix}${this.lets.length}`;
    this.names.set(key, name);
    this.lets.push(`let ${name}: ${wgslType(e.t)} = ${text};`);
    return name;
  }

  private compound(e: Exclude<Expr, { k: 'const' } | { k: 'var' }>): string {
    switch (e.k) {
      case 'load': {
        const i = this.emit(e.index);
        return this.vec4.has(e.binding) ? `${this.binding(e.binding)}[${i} >> 2u][${i} & 3i]` : `${this.binding(e.binding)}[${i}]`;
      }
      case 'unary': {
        const a = this.emit(e.a);
        const zero = e.t === 'i32' ? '0i' : '0.0';
        const op = e.op;
        switch (op) {
          case 'neg': return `-${a}`;
          case 'abs': return `abs(${a})`;
          case 'exp': return `exp(${a})`;
          case 'log': return `log(${a})`;
          case 'sqrt': return `sqrt(${a})`;
          case 'rsqrt': return `inverseSqrt(${a})`;
          case 'reciprocal': return `1.0 / ${a}`;
          // (1 - e^-2|x|) / (1 + e^-2|x|) with the sign of x: WGSL's tanh is only ~5e-5 accurate on
          // some devices (SwiftShader), and this form cannot overflow.
          case 'tanh': return `sign(${a}) * (1.0 - exp(-2.0 * abs(${a}))) / (1.0 + exp(-2.0 * abs(${a})))`;
          case 'sigmoid': return `1.0 / (1.0 + exp(-${a}))`;
          case 'relu': return `max(${a}, ${zero})`;
          case 'sin': return `sin(${a})`;
          case 'cos': return `cos(${a})`;
          default: return assertNever(op, 'unary op');
        }
      }
      case 'arith': {
        const a = this.emit(e.a);
        const b = this.emit(e.b);
        const op = e.op;
        switch (op) {
          case 'add': case 'sub': case 'mul': return `${a} ${BINOP[op]} ${b}`;
          // i32: x / 0 = 0 (the interpreter's rule); WGSL alone would give x. A constant divisor
          // other than 0 needs no test (index arithmetic divides by constants only).
          case 'div': return e.t === 'i32' && !(e.b.k === 'const' && e.b.v !== 0) ? `select(${a} / ${b}, 0i, ${b} == 0i)` : `${a} / ${b}`;
          case 'mod': return `${a} % ${b}`;
          case 'max': return `max(${a}, ${b})`;
          case 'min': return `min(${a}, ${b})`;
          case 'pow':
            this.usesPow = true;
            return e.t === 'i32' ? `i32(pow_f(f32(${a}), f32(${b})))` : `pow_f(${a}, ${b})`;
          default: return assertNever(op, 'arith op');
        }
      }
      case 'cmp':
        if (e.op === 'ult') return `bitcast<u32>(${this.emit(e.a)}) < bitcast<u32>(${this.emit(e.b)})`;
        return `${this.emit(e.a)} ${BINOP[e.op]} ${this.emit(e.b)}`;
      case 'logic': return `${this.emit(e.a)} ${BINOP[e.op]} ${this.emit(e.b)}`;
      case 'select': return `select(${this.emit(e.b)}, ${this.emit(e.a)}, ${this.emit(e.c)})`;
      case 'cast': {
        const a = this.emit(e.a);
        if (e.a.t === 'bool') return e.t === 'f32' ? `select(0.0, 1.0, ${a})` : `select(0i, 1i, ${a})`;
        if (e.t === 'bool') return `${a} != ${e.a.t === 'f32' ? '0.0' : '0i'}`;
        return `${wgslType(e.t)}(${a})`;
      }
      case 'random':
        this.usesRng = true;
        return `rng_uniform(bitcast<u32>(${this.emit(e.seed)}), ${e.stream}u, bitcast<u32>(${this.emit(e.index)}), bitcast<u32>(${this.emit(e.counter)}))`;
      default: return assertNever(e, 'expression');
    }
  }
}

/**
 * The random number generator of random_uniform: the Threefry-2x32-20 of src/ir/random.ts (the
 * interpreter's text, run here over WGSL words: every step a `let`), then (x0 >> 8) * 2^-24.
 */
const RNG_FN = ((): string => {
  const l = new Lines().open('fn rng_uniform(k0: u32, k1: u32, c0: u32, c1: u32) -> f32');
  let n = 0;
  const bind = (e: string): string => {
    const v = `w${n++}`;
    l.line(`let ${v}: u32 = ${e};`);
    return v;
  };
  const words: WordOps<string> = {
    word: (v) => `${v >>> 0}u`,
    add: (a, b) => bind(`${a} + ${b}`),
    xor: (a, b) => bind(`${a} ^ ${b}`),
    rotl: (a, r) => bind(`(${a} << ${r}u) | (${a} >> ${32 - r}u)`),
  };
  const [x0] = threefry2x32(words, 'k0', 'k1', 'c0', 'c1');
  l.line(`return f32(${x0} >> 8u) * ${literal(UNIT, 'f32')};`).close();
  return l.text();
})();

/** pow with the sign rules of Math.pow for negative bases and integer exponents. */
const POW_FN = `fn pow_f(x: f32, y: f32) -> f32 {
  if (y == 0.0) { return 1.0; }
  let r = pow(abs(x), y);
  if (x >= 0.0) { return r; }
  if (fract(y) != 0.0) { return bitcast<f32>(nan_bits); }
  if (fract(y * 0.5) != 0.0) { return -r; }
  return r;
}
`;

/** Input bindings are in0…; negative numbers name the kernel's own outputs (in-place reads). */
const bindingName = (i: number): string => (i >= 0 ? `in${i}` : i === -1 ? 'out' : `out${-1 - i}`);

interface Module {
  readonly fns: string[];
  readonly bindingNames: (i: number) => string;
  usesPow: boolean;
  /** Whether some body calls the random number generator (RNG_FN). */
  usesRng?: boolean;
  /** Input bindings declared as array<vec4<f32>> (see ExprEmitter). */
  vec4?: ReadonlySet<number>;
}

/** Adds `fn <name>(<params>) -> <t> { … return e; }` to the module. */
function addFn(mod: Module, name: string, params: readonly Expr[], e: Expr): void {
  const em = new ExprEmitter(mod.bindingNames, 't', undefined, mod.vec4);
  const ret = em.emit(e);
  mod.usesPow ||= em.usesPow;
  mod.usesRng ||= em.usesRng;
  const ps = params.map((p) => (p.k === 'var' ? `${p.name}: ${wgslType(p.t)}` : internal('fn param must be a variable'))).join(', ');
  const l = new Lines().open(`fn ${name}(${ps}) -> ${wgslType(e.t)}`);
  for (const s of em.lets) l.line(s);
  l.line(`return ${ret};`).close();
  mod.fns.push(l.text());
}

/** Declares bindings b0… (read) and the output (read_write). */
function header(mod: Module, inputs: readonly ScalarType[], out: ScalarType, extras: readonly ScalarType[] = []): string {
  const l = new Lines().line('// generated by adjoint');
  l.line('var<private> inf_bits: u32 = 0x7f800000u;').line('var<private> nan_bits: u32 = 0x7fc00000u;');
  // Every binding is read_write: temporaries share one arena buffer, and WebGPU refuses a buffer
  // bound both read-only and writable in one dispatch (disjoint writable ranges are fine).
  inputs.forEach((t, i) => l.line(`@group(0) @binding(${i}) var<storage, read_write> in${i}: array<${mod.vec4?.has(i) ? 'vec4<f32>' : wgslType(t)}>;`));
  l.line(`@group(0) @binding(${inputs.length}) var<storage, read_write> out: array<${wgslType(out)}>;`);
  extras.forEach((t, i) => l.line(`@group(0) @binding(${inputs.length + 1 + i}) var<storage, read_write> out${i + 1}: array<${wgslType(t)}>;`));
  if (mod.usesPow) l.line(POW_FN);
  if (mod.usesRng) l.line(RNG_FN);
  return l.text() + '\n' + mod.fns.join('\n');
}

/** A 1-D count of workgroups spread over x and y so neither exceeds the device limit. */
export function grid(groups: number, limits: CodegenLimits): [number, number, number] {
  const max = limits.maxComputeWorkgroupsPerDimension;
  const g = Math.max(1, groups);
  if (g <= max) return [g, 1, 1];
  const y = Math.ceil(g / max);
  if (y > max) internal(`a dispatch of ${g} workgroups exceeds ${max}^2`);
  return [Math.ceil(g / y), y, 1];
}

const numel = (s: readonly number[]) => s.reduce((p, q) => p * q, 1);
const vars = (n: number, p: string) => Array.from({ length: n }, (_, i) => ivar(`${p}${i}`));
/** `let <p><first + i>` for each coordinate of flat `index` in `shape`. */
const coordLets = (l: Lines, index: string, shape: readonly number[], p: string, first = 0) =>
  delinearize(ivar(index), shape).forEach((c, i) => {
    const em = new ExprEmitter(() => internal('no loads in coordinates'), `${p}t${first + i}_`);
    const v = em.emit(c);
    for (const s of em.lets) l.line(s);
    l.line(`let ${p}${first + i}: i32 = ${v};`);
  });
const combineText = (c: Combine, a: string, b: string) => (c === 'sum' ? `${a} + ${b}` : `max(${a}, ${b})`);
const initText = (c: Combine, t: ScalarType) =>
  c === 'sum' ? literal(0, t) : t === 'i32' ? literal(-2147483648, 'i32') : literal(-Infinity, 'f32');
const LINEAR = (wg: number) => `i32((wid.y * nwg.x + wid.x) * ${wg}u + lid)`;
const MAIN_SIG = (wg: number) =>
  `@compute @workgroup_size(${wg})\nfn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32)`;

/** Declares the functions of a kernel's further outputs: `x<k>(v0…, coordinates)`. */
function addExtras(mod: Module, k: Kernel, coords: readonly Expr[]): void {
  const held: Expr[] = [tvar('v0', k.dtype)];
  k.extras.forEach((x, i) => {
    addFn(mod, `x${i + 1}`, [...held, ...coords], x.expr);
    held.push(tvar(`v${i + 1}`, x.dtype));
  });
}

/** Stores the main value and every further output at flat index `idx`, in a block of its own. */
function storeAll(l: Lines, k: Kernel, idx: string, main: string, coords: readonly string[]): void {
  if (!k.extras.length) {
    l.line(`out[${idx}] = ${main};`);
    return;
  }
  l.open('').line(`let at = ${idx};`).line(`let v0 = ${main};`).line('out[at] = v0;');
  k.extras.forEach((_, i) => {
    const vs = Array.from({ length: i + 1 }, (__, j) => `v${j}`);
    l.line(`let v${i + 1} = x${i + 1}(${[...vs, ...coords].join(', ')});`).line(`out${i + 1}[at] = v${i + 1};`);
  });
  l.close();
}

const extraTypes = (k: Kernel) => k.extras.map((x) => x.dtype);
const extraRefs = (k: Kernel) => k.extras.map((x) => x.ref);

/**
 * Compiles one kernel to its dispatches (two for a split reduction). `inputTypes` gives the dtype
 * of each input binding; `scratch` allocates scratch buffers.
 */
export function emitKernel(
  k: Kernel,
  inputTypes: readonly ScalarType[],
  limits: CodegenLimits,
  scratch: (bytes: number) => number,
  label: string,
  /** Elements of each input binding (NaN for scratch); without them no operand is vectorized. */
  inputSizes?: readonly number[],
): Dispatch[] {
  k = simplifyKernel(k);
  const mod: Module = { fns: [], bindingNames: bindingName, usesPow: false };
  const body = k.body;
  switch (body.kind) {
    case 'map': {
      const n = numel(body.shape);
      addFn(mod, 'value', vars(body.shape.length, 'o'), body.expr);
      const l = new Lines().open(MAIN_SIG(WG));
      l.line(`let i = ${LINEAR(WG)};`).line(`if (i >= ${n}) { return; }`);
      coordLets(l, 'i', body.shape, 'o');
      const oNames = vars(body.shape.length, 'o').map((v) => (v as { name: string }).name);
      addExtras(mod, k, vars(body.shape.length, 'o'));
      storeAll(l, k, 'i', `value(${oNames.join(', ')})`, oNames);
      l.close();
      return [{ wgsl: header(mod, inputTypes, k.dtype, extraTypes(k)) + '\n' + l.text(), inputs: k.inputs, output: k.output, extraOutputs: extraRefs(k), workgroups: grid(Math.ceil(n / WG), limits), label: `${label} map` }];
    }
    case 'reduce':
      return emitReduce(k, body, inputTypes, limits, scratch, label);
    case 'matmul':
      return emitMatmul(k, body, inputTypes, limits, scratch, label, inputSizes);
    case 'rows':
      return [emitRows(k, body, inputTypes, limits, label)];
    default:
      return assertNever(body, 'kernel body');
  }
}

type ReduceBody = Extract<Kernel['body'], { kind: 'reduce' }>;

function emitReduce(
  k: Kernel, body: ReduceBody, inputTypes: readonly ScalarType[], limits: CodegenLimits,
  scratch: (bytes: number) => number, label: string,
): Dispatch[] {
  const outs = numel(body.shape);
  const r = numel(body.rshape);
  const ov = vars(body.shape.length, 'o');
  const rv = vars(body.rshape.length, 'r');
  const oNames = ov.map((v) => (v as { name: string }).name);
  const rNames = rv.map((v) => (v as { name: string }).name);
  const t = body.accType;
  const acc = tvar('acc', t);
  const mod: Module = { fns: [], bindingNames: bindingName, usesPow: false };
  addFn(mod, 'body', [...ov, ...rv], body.body);
  // Split: very large reductions with few outputs go through partial results in scratch.
  const serial = serialSums(outs, r);
  const fits = k.inputs.length + 2 + k.extras.length <= limits.maxStorageBuffersPerShaderStage;
  const split = !serial && r >= 65536 && outs < 64 && fits;
  // Phase 1 of a split writes partials only: its module has no finalize (which may read the outputs).
  if (!split) {
    addFn(mod, 'fin', [acc, ...ov], body.finalize);
    addExtras(mod, k, ov);
  }

  // Serial: one thread per output, nested loops over the reduction space.
  if (serial) {
    const l = new Lines().open(MAIN_SIG(WG));
    l.line(`let i = ${LINEAR(WG)};`).line(`if (i >= ${outs}) { return; }`);
    coordLets(l, 'i', body.shape, 'o');
    l.line(`var acc: ${wgslType(t)} = ${initText(body.combine, t)};`);
    body.rshape.forEach((d, j) => l.open(`for (var r${j} = 0i; r${j} < ${d}i; r${j}++)`));
    l.line(`acc = ${combineText(body.combine, 'acc', `body(${[...oNames, ...rNames].join(', ')})`)};`);
    body.rshape.forEach(() => l.close());
    storeAll(l, k, 'i', `fin(${['acc', ...oNames].join(', ')})`, oNames);
    l.close();
    return [{ wgsl: header(mod, inputTypes, k.dtype, extraTypes(k)) + '\n' + l.text(), inputs: k.inputs, output: k.output, extraOutputs: extraRefs(k), workgroups: grid(Math.ceil(outs / WG), limits), label: `${label} reduce(serial)` }];
  }

  const groups = split ? Math.min(1024, Math.ceil(r / 4096)) : 1;
  const chunk = Math.ceil(r / groups);
  const first = workgroupReduce(k, mod, body, t, split ? t : k.dtype, inputTypes, outs, groups, chunk, oNames, rNames, split);
  if (!split) return [{ wgsl: first, inputs: k.inputs, output: k.output, extraOutputs: extraRefs(k), workgroups: grid(outs, limits), label: `${label} reduce(workgroup)` }];

  const partials = scratch(outs * groups * 4);
  const phase1: Dispatch = { wgsl: first, inputs: k.inputs, output: { kind: 'scratch', id: partials }, extraOutputs: [], workgroups: grid(outs * groups, limits), label: `${label} reduce(split 1/2)` };
  // Phase 2: combine the partials of each output, then finalize.
  // Phase 2 binds the kernel's inputs too (its finalize and further outputs may read them), then the partials.
  const mod2: Module = { fns: [], bindingNames: bindingName, usesPow: false };
  addFn(mod2, 'fin', [acc, ...ov], body.finalize);
  addExtras(mod2, k, ov);
  const partialsIn = `in${k.inputs.length}`;
  const l = new Lines().open(MAIN_SIG(WG));
  l.line(`let i = ${LINEAR(WG)};`).line(`if (i >= ${outs}) { return; }`);
  coordLets(l, 'i', body.shape, 'o');
  l.line(`var acc: ${wgslType(t)} = ${initText(body.combine, t)};`);
  l.open(`for (var g = 0i; g < ${groups}i; g++)`).line(`acc = ${combineText(body.combine, 'acc', `${partialsIn}[i * ${groups}i + g]`)};`).close();
  storeAll(l, k, 'i', `fin(${['acc', ...oNames].join(', ')})`, oNames);
  l.close();
  const phase2: Dispatch = { wgsl: header(mod2, [...inputTypes, t], k.dtype, extraTypes(k)) + '\n' + l.text(), inputs: [...k.inputs, { kind: 'scratch', id: partials }], output: k.output, extraOutputs: extraRefs(k), workgroups: grid(Math.ceil(outs / WG), limits), label: `${label} reduce(split 2/2)` };
  return [phase1, phase2];
}

/** One workgroup per (output, group): threads stride over the group's chunk, then a tree in workgroup memory. */
function workgroupReduce(
  k: Kernel, mod: Module, body: ReduceBody, t: ScalarType, outType: ScalarType, inputTypes: readonly ScalarType[], outs: number, groups: number,
  chunk: number, oNames: readonly string[], rNames: readonly string[], partial: boolean,
): string {
  const r = numel(body.rshape);
  const l = new Lines().line(`var<workgroup> partial: array<${wgslType(t)}, ${REDUCE_WG}>;`).line('');
  l.open(MAIN_SIG(REDUCE_WG));
  l.line(`let w = i32(wid.y * nwg.x + wid.x);`).line(`if (w >= ${outs * groups}) { return; }`);
  l.line(`let i = w / ${groups}i;`).line(`let g = w % ${groups}i;`);
  coordLets(l, 'i', body.shape, 'o');
  l.line(`var acc: ${wgslType(t)} = ${initText(body.combine, t)};`);
  l.line(`let end = min(${r}i, (g + 1i) * ${chunk}i);`);
  l.open(`for (var s = g * ${chunk}i + i32(lid); s < end; s += ${REDUCE_WG}i)`);
  coordLets(l, 's', body.rshape, 'r');
  l.line(`acc = ${combineText(body.combine, 'acc', `body(${[...oNames, ...rNames].join(', ')})`)};`);
  l.close();
  l.line('partial[lid] = acc;').line('workgroupBarrier();');
  l.open(`for (var h = ${REDUCE_WG / 2}u; h > 0u; h = h >> 1u)`);
  l.open('if (lid < h)').line(`partial[lid] = ${combineText(body.combine, 'partial[lid]', 'partial[lid + h]')};`).close();
  l.line('workgroupBarrier();').close();
  l.open('if (lid == 0u)');
  if (partial) l.line('out[w] = partial[0];');
  else storeAll(l, k, 'i', `fin(${['partial[0]', ...oNames].join(', ')})`, oNames);
  l.close().close();
  return header(mod, inputTypes, outType, partial ? [] : extraTypes(k)) + '\n' + l.text();
}

type RowsBody = Extract<Kernel['body'], { kind: 'rows' }>;
const ROW_WG = 64;
/** With this many outputs (or rows), one thread each keeps the device busy without workgroup trees. */
const SERIAL_OUTPUTS = 2048;
/** The longest reduction a serial kernel of at least one workgroup's outputs sums per thread. */
const SERIAL_MAX_INNER = 4096;
/** Rows at most this long are computed by one thread each (barriers cost more than the loop). */
const SERIAL_ROW = 128;

/**
 * Whether `outputs` sums (or rows) of `terms` each are computed one thread per output, not one
 * workgroup tree each: when rows are short, outputs many, or there are a workgroup's worth of
 * outputs of moderate length (a bias or layernorm gradient over a batch: 128 sums of 512 take
 * 0.4 ms against 5 ms for a workgroup per sum, whose barriers are dear on SwiftShader).
 */
const serialSums = (outputs: number, terms: number): boolean =>
  terms <= SERIAL_ROW || outputs >= SERIAL_OUTPUTS || (outputs >= ROW_WG && terms <= SERIAL_MAX_INNER);

/**
 * One workgroup per row: each stage strides its threads over the row and combines them with a tree
 * in workgroup memory (every thread then holds the stage's value), then the threads stride over the
 * row again to write each element. Stage values other kernels read are stored by thread 0.
 */
function emitRows(k: Kernel, body: RowsBody, inputTypes: readonly ScalarType[], limits: CodegenLimits, label: string): Dispatch {
  const rank = body.shape.length;
  const outerShape = body.shape.slice(0, body.outer);
  const innerShape = body.shape.slice(body.outer);
  const rows = numel(outerShape);
  const inner = numel(innerShape);
  const ov = vars(rank, 'o');
  const oNames = ov.map((v) => (v as { name: string }).name);
  const outerNames = oNames.slice(0, body.outer);
  const sv = body.stages.map((st, j) => tvar(`s${j}`, st.dtype));
  const sNames = body.stages.map((_, j) => `s${j}`);
  const mod: Module = { fns: [], bindingNames: bindingName, usesPow: false };
  body.stages.forEach((st, j) => {
    if (st.reduce) addFn(mod, `body${j}`, [...ov, ...sv.slice(0, j)], st.reduce.body);
    addFn(mod, `stage${j}`, [...(st.reduce ? [tvar('acc', st.reduce.accType)] : []), ...ov.slice(0, body.outer), ...sv.slice(0, j)], st.value);
  });
  addFn(mod, 'value', [...ov, ...sv], body.expr);
  addExtras(mod, k, ov);
  // Short rows, or very many rows: one thread per row, no workgroup memory (the reduce kernel's
  // rule); long rows: one workgroup per row.
  const serial = serialSums(rows, inner);
  const accTypes = serial ? [] : [...new Set(body.stages.flatMap((st) => (st.reduce ? [st.reduce.accType] : [])))];
  const l = new Lines();
  for (const t of accTypes) l.line(`var<workgroup> red_${t}: array<${wgslType(t)}, ${ROW_WG}>;`);
  l.line('').open(MAIN_SIG(ROW_WG));
  if (serial) {
    l.line(`let row = ${LINEAR(ROW_WG)};`).line(`if (row >= ${rows}i) { return; }`);
  } else {
    // The row index is the same for the whole workgroup, so returning early keeps barriers uniform.
    l.line('let row = i32(wid.y * nwg.x + wid.x);').line(`if (row >= ${rows}i) { return; }`);
  }
  coordLets(l, 'row', outerShape, 'o');
  const first = serial ? '0i' : 'i32(lid)';
  const stride = serial ? '1i' : `${ROW_WG}i`;
  const innerCoords = (index: string) => coordLets(l, index, innerShape, 'o', body.outer);
  let storeIndex = 1 + k.extras.length;
  body.stages.forEach((st, j) => {
    const earlier = sNames.slice(0, j);
    if (st.reduce) {
      const { combine, accType: t } = st.reduce;
      const red = `red_${t}`;
      l.line(`var acc${j}: ${wgslType(t)} = ${initText(combine, t)};`);
      l.open(`for (var e = ${first}; e < ${inner}i; e += ${stride})`);
      innerCoords('e');
      l.line(`acc${j} = ${combineText(combine, `acc${j}`, `body${j}(${[...oNames, ...earlier].join(', ')})`)};`);
      l.close();
      if (serial) {
        l.line(`let s${j} = stage${j}(${[`acc${j}`, ...outerNames, ...earlier].join(', ')});`);
        if (st.out) l.line(`out${storeIndex++}[row] = s${j};`);
        return;
      }
      l.line(`${red}[lid] = acc${j};`).line('workgroupBarrier();');
      l.open(`for (var h = ${ROW_WG / 2}u; h > 0u; h = h >> 1u)`);
      l.open('if (lid < h)').line(`${red}[lid] = ${combineText(combine, `${red}[lid]`, `${red}[lid + h]`)};`).close();
      l.line('workgroupBarrier();').close();
      l.line(`let s${j} = stage${j}(${[`${red}[0]`, ...outerNames, ...earlier].join(', ')});`);
      // Every thread has read the total before the next stage reuses the workgroup array.
      l.line('workgroupBarrier();');
    } else {
      l.line(`let s${j} = stage${j}(${[...outerNames, ...earlier].join(', ')});`);
    }
    if (st.out) l.line(serial ? `out${storeIndex++}[row] = s${j};` : `if (lid == 0u) { out${storeIndex++}[row] = s${j}; }`);
  });
  l.open(`for (var e = ${first}; e < ${inner}i; e += ${stride})`);
  innerCoords('e');
  storeAll(l, k, `row * ${inner}i + e`, `value(${[...oNames, ...sNames].join(', ')})`, oNames);
  l.close().close();
  const stageOuts = body.stages.flatMap((st) => (st.out ? [st] : []));
  return {
    wgsl: header(mod, inputTypes, k.dtype, [...extraTypes(k), ...stageOuts.map((st) => st.dtype)]) + '\n' + l.text(),
    inputs: k.inputs,
    output: k.output,
    extraOutputs: [...extraRefs(k), ...stageOuts.map((st) => st.out!)],
    workgroups: grid(serial ? Math.ceil(rows / ROW_WG) : rows, limits),
    label: `${label} rows(${serial ? 'serial' : 'workgroup'})`,
  };
}

type MatmulBody = Extract<Kernel['body'], { kind: 'matmul' }>;
/** Rows and columns of C per thread (8 x 8 measured 1.5-2x faster than 4 x 4 on SwiftShader). */
const TILE = 8;
const UNROLL = 2;
/** A matmul with fewer threads than this and a K of at least SPLIT_K splits K over more threads. */
const SPLIT_THREADS = 1024;
const SPLIT_K = 1024;
/** The shortest stretch of K a thread of a split matmul sums. */
const MIN_CHUNK = 256;

/**
 * How a matmul is cut over threads: each thread accumulates a tm x tn tile of C (a narrow M or N
 * is covered whole), threads form wx x wy workgroups shaped to the tile grid (no idle columns of
 * threads for a narrow N), and a matmul with few tiles and a long K (a filter gradient) sums K in
 * `splits` chunks of `chunk`, combined by a second kernel.
 */
export interface MatmulPlan {
  readonly tm: number;
  readonly tn: number;
  readonly wx: number;
  readonly wy: number;
  readonly splits: number;
  readonly chunk: number;
}

const pow2ceil = (x: number) => 2 ** Math.ceil(Math.log2(Math.max(1, x)));

export function planMatmul(body: Pick<MatmulBody, 'm' | 'n' | 'k' | 'batch'>, limits: CodegenLimits, canSplit = true): MatmulPlan {
  const { m, n, k } = body;
  const tn = Math.min(n, TILE);
  const tm = Math.min(m, TILE);
  const tilesN = Math.ceil(n / tn);
  const tilesM = Math.ceil(m / tm);
  const wx = Math.min(8, pow2ceil(tilesN));
  const wy = Math.min(64 / wx, pow2ceil(tilesM));
  const threads = tilesN * tilesM * numel(body.batch);
  let splits = 1;
  if (canSplit && threads < SPLIT_THREADS && k >= SPLIT_K) splits = Math.min(Math.ceil(SPLIT_THREADS / threads), Math.floor(k / MIN_CHUNK));
  splits = Math.max(1, Math.min(splits, Math.floor(limits.maxComputeWorkgroupsPerDimension / numel(body.batch))));
  // Chunks are multiples of 4 (a vectorized operand reads four steps of K at a time).
  const chunk = Math.ceil(Math.ceil(k / splits) / 4) * 4;
  return { tm, tn, wx, wy, splits: Math.ceil(k / chunk), chunk };
}

/** The epilogue functions of a matmul: `fin`, `dst`, further outputs, the side sum's `sfin` and `sx<i>`. */
function matmulEpilogue(mod: Module, k: Kernel, body: MatmulBody): void {
  const bv = vars(body.batch.length, 'z');
  const [mi, ni] = [ivar('mi'), ivar('ni')];
  const place = body.place ?? { shape: [...body.batch, body.m, body.n], coords: [...bv, mi, ni] };
  addFn(mod, 'fin', [tvar('acc', 'f32'), ...bv, mi, ni], body.finalize);
  addFn(mod, 'dst', [...bv, mi, ni], linearIndex(place.coords, place.shape));
  addExtras(mod, k, [...bv, mi, ni]);
  const side = body.side;
  if (!side) return;
  addFn(mod, 'sfin', [tvar('acc', 'f32'), ni], side.finalize);
  const held: Expr[] = [tvar('w0', side.dtype)];
  side.extras.forEach((x, i) => {
    addFn(mod, `sx${i + 1}`, [...held, ni], x.expr);
    held.push(tvar(`w${i + 1}`, x.dtype));
  });
}

/** Stores the side sum `acc` of column `col` and its further outputs (bound after the main ones). */
function storeSide(l: Lines, k: Kernel, body: MatmulBody, col: string, acc: string): void {
  const side = body.side;
  if (!side) return;
  const first = 1 + k.extras.length;
  l.line(`let at = ${col};`).line(`let w0 = sfin(${acc}, at);`).line(`out${first}[at] = w0;`);
  side.extras.forEach((_, i) => {
    const ws = Array.from({ length: i + 1 }, (__, q) => `w${q}`);
    l.line(`let w${i + 1} = sx${i + 1}(${[...ws, 'at'].join(', ')});`).line(`out${first + i + 1}[at] = w${i + 1};`);
  });
}

/** A matmul's further outputs after the main one: its own, then the side sum's. */
function matmulOutputs(k: Kernel, body: MatmulBody): { readonly types: ScalarType[]; readonly refs: BufferRef[] } {
  const side = body.side ? [{ ref: body.side.output, dtype: body.side.dtype }, ...body.side.extras] : [];
  return { types: [...extraTypes(k), ...side.map((x) => x.dtype)], refs: [...extraRefs(k), ...side.map((x) => x.ref)] };
}

/** The input bindings a matmul's epilogue reads (all a split's second kernel needs, besides the partials). */
function epilogueReads(k: Kernel, body: MatmulBody): number[] {
  const side = body.side ? [body.side.finalize, ...body.side.extras.map((x) => x.expr)] : [];
  return [...bindingsRead([body.finalize, ...k.extras.map((x) => x.expr), ...side])].sort((p, q) => p - q);
}

const loadBinding = (e: Expr): number => (e.k === 'load' ? e.binding : internal('not a load'));
const loadIndex = (e: Expr): Expr => (e.k === 'load' ? e.index : internal('not a load'));

/**
 * Whether a matmul operand can be read as vec4s: a plain f32 load (no arithmetic around it) whose
 * index is linear in the row variable `rv` (mi or ni), `ki` and batch coordinates, in a tensor of
 * a multiple of 4 elements, with K a multiple of 4. 'k': contiguous along k (a row-major A, a
 * transposed B) with rows starting at multiples of 4, so one vec4 holds four steps of K of one
 * row; 'r': contiguous along the rows (a transposed A, a row-major B), four rows per vec4, with
 * whole groups of four rows in every tile.
 */
function vectorAxis(e: Expr, rv: string, rows: number, tile: number, k: number, sizes: readonly number[] | undefined): 'k' | 'r' | undefined {
  if (!sizes || e.k !== 'load' || e.t !== 'f32' || e.binding < 0 || k % 4 !== 0) return undefined;
  if ((sizes[e.binding] ?? 1) % 4 !== 0) return undefined;
  const lin = linearOf(e.index);
  if (lin.c % 4 !== 0) return undefined;
  let [sr, sk] = [0, 0];
  for (const t of lin.terms.values()) {
    if (t.atom.k !== 'var') return undefined;
    if (t.atom.name === rv) sr = t.coef;
    else if (t.atom.name === 'ki') sk = t.coef;
    else if (!/^z\d+$/.test(t.atom.name) || t.coef % 4 !== 0) return undefined;
  }
  if (sk === 1 && sr % 4 === 0) return 'k';
  if (sr === 1 && sk % 4 === 0 && rows % 4 === 0 && tile % 4 === 0) return 'r';
  return undefined;
}

/**
 * The register-tiled matmul: each thread keeps a tm x tn tile of accumulators and walks K (or its
 * chunk of K), unrolled by UNROLL (2 measured as fast as 4, with half the shader to compile).
 * Operands are expressions, emitted inline: their parts that do not depend on `ki` (a row's or
 * column's base offset, a convolution's output position) are computed once before the loop, and
 * their parts that depend on `ki` only (a convolution's tap) once per step for all rows and
 * columns (common subexpressions). Element (mi, ni) is stored at its `place` through `dst`, after
 * `fin` (the fused epilogue). A side sum (the column sums of B) is accumulated by the first row of
 * tiles. Split K: this kernel writes each chunk's partial tiles (and partial side sums) to scratch,
 * and a second kernel sums them and finalizes (splitSum).
 */
function emitMatmul(
  k: Kernel, body: MatmulBody, inputTypes: readonly ScalarType[], limits: CodegenLimits,
  scratch: (bytes: number) => number, label: string, inputSizes?: readonly number[],
): Dispatch[] {
  const { m, n, k: kk, batch, side } = body;
  // The second kernel of a split binds the inputs its epilogue reads, the partials and every output.
  const outputs = matmulOutputs(k, body);
  const plan = planMatmul(body, limits, epilogueReads(k, body).length + 2 + outputs.refs.length <= limits.maxStorageBuffersPerShaderStage);
  const { tm, tn, splits, chunk } = plan;
  const split = splits > 1;
  const total = numel(batch) * m * n;
  const bNames = vars(batch.length, 'z').map((v) => (v as { name: string }).name);
  // Operands read four elements at a time (a plain row-major or transposed tensor with aligned rows).
  const va = vectorAxis(body.lhs, 'mi', m, tm, kk, inputSizes);
  const vb = vectorAxis(body.rhs, 'ni', n, tn, kk, inputSizes);
  const vec4 = new Set([...(va ? [loadBinding(body.lhs)] : []), ...(vb ? [loadBinding(body.rhs)] : [])]);
  const mod: Module = { fns: [], bindingNames: bindingName, usesPow: false, vec4 };
  if (!split) matmulEpilogue(mod, k, body);

  const l = new Lines().line(`@compute @workgroup_size(${plan.wx}, ${plan.wy})`);
  l.open('fn main(@builtin(global_invocation_id) gid: vec3<u32>)');
  l.line(`let n0 = i32(gid.x) * ${tn}i;`).line(`let m0 = i32(gid.y) * ${tm}i;`);
  l.line(`if (n0 >= ${n}i || m0 >= ${m}i) { return; }`);
  if (split) l.line(`let bz = i32(gid.z) / ${splits}i;`).line(`let ks = i32(gid.z) % ${splits}i;`);
  else l.line('let bz = i32(gid.z);');
  coordLets(l, 'bz', batch, 'z');
  for (let i = 0; i < tm; i++) l.line(`let mr${i} = min(m0 + ${i}i, ${m - 1}i);`);
  for (let j = 0; j < tn; j++) l.line(`let nc${j} = min(n0 + ${j}i, ${n - 1}i);`);
  if (va === 'r') for (let g = 0; g < tm / 4; g++) l.line(`let mg${g} = min(m0 + ${4 * g}i, ${m - 4}i);`);
  if (vb === 'r') for (let g = 0; g < tn / 4; g++) l.line(`let ng${g} = min(n0 + ${4 * g}i, ${n - 4}i);`);
  // Operands per row and per column; what does not depend on ki is computed here, once. A
  // vectorized operand is its index: per row (along k) or per group of four rows (along rows).
  const operand = (e: Expr, v: 'k' | 'r' | undefined, rv: string, count: number, name: (i: number) => string, group: (g: number) => string) =>
    v === 'r'
      ? Array.from({ length: count / 4 }, (_, g) => substitute(loadIndex(e), new Map([[rv, ivar(group(g))]])))
      : Array.from({ length: count }, (_, i) => substitute(v ? loadIndex(e) : e, new Map([[rv, ivar(name(i))]])));
  const rows = operand(body.lhs, va, 'mi', tm, (i) => `mr${i}`, (g) => `mg${g}`);
  const cols = operand(body.rhs, vb, 'ni', tn, (j) => `nc${j}`, (g) => `ng${g}`);
  const hoisted = new ExprEmitter(mod.bindingNames, 'h', undefined, vec4);
  for (const e of [...rows, ...cols]) for (const inv of invariantsOf(e, 'ki')) hoisted.emit(inv);
  for (const s of hoisted.lets) l.line(s);
  mod.usesPow ||= hoisted.usesPow;
  mod.usesRng ||= hoisted.usesRng;
  const acc = (i: number, j: number) => `c${i}_${j}`;
  for (let i = 0; i < tm; i++) for (let j = 0; j < tn; j++) l.line(`var ${acc(i, j)}: f32 = 0.0;`);
  const step = (kv: string, tag: string) => {
    const em = new ExprEmitter(mod.bindingNames, `t${tag}_`, hoisted);
    const to = new Map([['ki', ivar(kv)]]);
    const a = rows.map((e) => em.emit(substitute(e, to)));
    const v = cols.map((e) => em.emit(substitute(e, to)));
    mod.usesPow ||= em.usesPow;
    mod.usesRng ||= em.usesRng;
    for (const s of em.lets) l.line(s);
    for (let i = 0; i < tm; i++) for (let j = 0; j < tn; j++) l.line(`${acc(i, j)} = fma(${a[i]}, ${v[j]}, ${acc(i, j)});`);
  };
  const [from, to] = split ? ['kbeg', 'kend'] : ['0i', `${kk}i`];
  if (split) l.line(`let kbeg = ks * ${chunk}i;`).line(`let kend = min(kbeg + ${chunk}i, ${kk}i);`);
  if (va || vb) {
    // Four steps of K per iteration (K and the chunks are multiples of 4): a vectorized operand
    // is one vec4 per row (along k) or per group of four rows and step.
    l.open(`for (var kb = ${from}; kb < ${to}; kb += 4i)`);
    for (let u = 0; u < 4; u++) l.line(`let ku${u} = kb + ${u}i;`);
    const em = new ExprEmitter(mod.bindingNames, 'tv_', hoisted);
    const at = (kv: string) => new Map([['ki', ivar(kv)]]);
    const loads: string[] = [];
    const fetch = (e: Expr, kv: string, name: string, binding: number): void => {
      loads.push(`let ${name} = ${bindingName(binding)}[${em.emit(substitute(e, at(kv)))} >> 2u];`);
    };
    const C = 'xyzw';
    const side4 = (v: 'k' | 'r' | undefined, list: readonly Expr[], p: string, binding: number): ((i: number, u: number) => string) => {
      if (v === 'k') {
        list.forEach((e, i) => fetch(e, 'kb', `${p}${i}`, binding));
        return (i, u) => `${p}${i}.${C[u]}`;
      }
      if (v === 'r') {
        for (let u = 0; u < 4; u++) list.forEach((e, g) => fetch(e, `ku${u}`, `${p}${u}_${g}`, binding));
        return (i, u) => `${p}${u}_${i >> 2}.${C[i & 3]}`;
      }
      const vals = Array.from({ length: 4 }, (_, u) => list.map((e) => em.emit(substitute(e, at(`ku${u}`)))));
      return (i, u) => vals[u]![i]!;
    };
    const a = side4(va, rows, 'av', va ? loadBinding(body.lhs) : -1);
    const b = side4(vb, cols, 'bv', vb ? loadBinding(body.rhs) : -1);
    mod.usesPow ||= em.usesPow;
    mod.usesRng ||= em.usesRng;
    for (const s of [...em.lets, ...loads]) l.line(s);
    for (let u = 0; u < 4; u++) {
      for (let i = 0; i < tm; i++) for (let j = 0; j < tn; j++) l.line(`${acc(i, j)} = fma(${a(i, u)}, ${b(j, u)}, ${acc(i, j)});`);
    }
    l.close();
  } else {
    // Scalar loads: the K loop unrolled by UNROLL, then the remainder (chunks are multiples of 4:
    // only the end of K has one).
    const main = split ? 'kmain' : `${kk - (kk % UNROLL)}i`;
    if (split) l.line(`let kmain = kend - (kend - kbeg) % ${UNROLL}i;`);
    if (kk >= UNROLL) {
      l.open(`for (var kb = ${from}; kb < ${main}; kb += ${UNROLL}i)`);
      for (let u = 0; u < UNROLL; u++) {
        l.line(`let ku${u} = kb + ${u}i;`);
        step(`ku${u}`, `${u}`);
      }
      l.close();
    }
    if (kk % UNROLL) {
      l.open(`for (var ki = ${kk >= UNROLL ? main : from}; ki < ${to}; ki++)`);
      step('ki', 'r');
      l.close();
    }
  }
  // The stores: one copy of the epilogue in a loop over the tile (the accumulators copied to an
  // array), not one per element: fused optimizer updates would otherwise be emitted tm x tn times.
  if (side) {
    // The first row of tiles sums its columns of B over its stretch of K, in a loop of its own
    // (summed beside the products by every thread, they cost 20% of a weight gradient), and
    // writes them; split, its partial sums go after the partial tiles.
    l.open('if (m0 == 0i)');
    for (let j = 0; j < tn; j++) l.line(`var cs${j}: f32 = 0.0;`);
    l.open(`for (var ks0 = ${from}; ks0 < ${to}; ks0++)`);
    const em = new ExprEmitter(mod.bindingNames, 'ts_', hoisted);
    const v = Array.from({ length: tn }, (_, j) => em.emit(substitute(body.rhs, new Map([['ni', ivar(`nc${j}`)], ['ki', ivar('ks0')]]))));
    mod.usesPow ||= em.usesPow;
    mod.usesRng ||= em.usesRng;
    for (const st of em.lets) l.line(st);
    for (let j = 0; j < tn; j++) l.line(`cs${j} += ${v[j]};`);
    l.close();
    l.line(`var cs = array<f32, ${tn}>(${Array.from({ length: tn }, (_, j) => `cs${j}`).join(', ')});`);
    l.open(`for (var j = 0i; j < ${tn}i; j++)`).open(`if (n0 + j < ${n}i)`);
    if (split) l.line(`out[${splits * total}i + ks * ${n}i + n0 + j] = cs[j];`);
    else storeSide(l, k, body, 'n0 + j', 'cs[j]');
    l.close().close().close();
  }
  l.line(`var cc = array<f32, ${tm * tn}>(${Array.from({ length: tm * tn }, (_, e) => acc(Math.floor(e / tn), e % tn)).join(', ')});`);
  l.open(`for (var e = 0i; e < ${tm * tn}i; e++)`);
  l.line(`let r = m0 + e / ${tn}i;`).line(`let q = n0 + e % ${tn}i;`);
  l.open(`if (r < ${m}i && q < ${n}i)`);
  const coords = [...bNames, 'r', 'q'];
  if (split) l.line(`out[(i32(gid.z) * ${m}i + r) * ${n}i + q] = cc[e];`);
  else storeAll(l, k, `dst(${coords.join(', ')})`, `fin(${['cc[e]', ...coords].join(', ')})`, coords);
  l.close().close();
  l.close();
  const gx = Math.ceil(Math.ceil(n / tn) / plan.wx);
  const gy = Math.ceil(Math.ceil(m / tm) / plan.wy);
  const gz = numel(batch) * splits;
  const max = limits.maxComputeWorkgroupsPerDimension;
  if (gx > max || gy > max || gz > max) internal(`matmul grid ${gx}x${gy}x${gz} exceeds ${max} per dimension`);
  const kind = `matmul${side ? '+colsum' : ''}`;
  const wgsl = header(mod, inputTypes, split ? 'f32' : k.dtype, split ? [] : outputs.types) + '\n' + l.text();
  if (!split) return [{ wgsl, inputs: k.inputs, output: k.output, extraOutputs: outputs.refs, workgroups: [gx, gy, gz], label: `${label} ${kind}` }];
  const partials = scratch((total + (side ? n : 0)) * splits * 4);
  return [
    { wgsl, inputs: k.inputs, output: { kind: 'scratch', id: partials }, extraOutputs: [], workgroups: [gx, gy, gz], label: `${label} ${kind}(split-k 1/2)` },
    splitSum(k, body, inputTypes, limits, splits, partials, `${label} ${kind}(split-k 2/2)`),
  ];
}

/**
 * The second kernel of a split matmul: one thread per element of C (then one per column of the
 * side sum) adds up the chunks' partials and runs the epilogue. It binds only the inputs the
 * epilogue reads (renumbered), then the partials, then the outputs.
 */
function splitSum(
  k: Kernel, body: MatmulBody, inputTypes: readonly ScalarType[], limits: CodegenLimits, splits: number, partials: number, label: string,
): Dispatch {
  const { m, n, batch, side } = body;
  const mn = m * n;
  const total = numel(batch) * mn;
  const count = total + (side ? n : 0);
  const reads = epilogueReads(k, body);
  const remap = new Map(reads.map((b, i) => [b, i]));
  const mod: Module = {
    fns: [], usesPow: false,
    bindingNames: (i) => bindingName(i >= 0 ? remap.get(i) ?? internal(`binding ${i} is not bound by the split's second kernel`) : i),
  };
  matmulEpilogue(mod, k, body);
  const p = `in${reads.length}`;
  const l = new Lines().open(MAIN_SIG(WG));
  l.line(`let e = ${LINEAR(WG)};`).line(`if (e >= ${count}i) { return; }`);
  if (side) l.open(`if (e < ${total}i)`);
  l.line(`let bz = e / ${mn}i;`).line(`let mi = (e / ${n}i) % ${m}i;`).line(`let ni = e % ${n}i;`);
  coordLets(l, 'bz', batch, 'z');
  l.line('var acc: f32 = 0.0;');
  l.open(`for (var s = 0i; s < ${splits}i; s++)`).line(`acc = acc + ${p}[(bz * ${splits}i + s) * ${mn}i + e % ${mn}i];`).close();
  const at = [...vars(batch.length, 'z').map((v) => (v as { name: string }).name), 'mi', 'ni'];
  storeAll(l, k, `dst(${at.join(', ')})`, `fin(${['acc', ...at].join(', ')})`, at);
  if (side) {
    l.close().open('else');
    l.line(`let col = e - ${total}i;`).line('var acc: f32 = 0.0;');
    l.open(`for (var s = 0i; s < ${splits}i; s++)`).line(`acc = acc + ${p}[${splits * total}i + s * ${n}i + col];`).close();
    storeSide(l, k, body, 'col', 'acc');
    l.close();
  }
  l.close();
  const outputs = matmulOutputs(k, body);
  return {
    wgsl: header(mod, [...reads.map((b) => inputTypes[b]!), 'f32'], k.dtype, outputs.types) + '\n' + l.text(),
    inputs: [...reads.map((b) => k.inputs[b]!), { kind: 'scratch', id: partials }],
    output: k.output, extraOutputs: outputs.refs, workgroups: grid(Math.ceil(count / WG), limits), label,
  };
}

export { load, int };
