/**
 * @file What every WGSL template shares: the device limits codegen respects, the dispatch type, a
 * small indenting line builder, the expression emitter (common subexpressions bound once with
 * `let`), the module header (bindings), grids folded into 2-D, and the stores of a kernel's main
 * and further outputs. Every identifier is generated here: nothing from a model file reaches the
 * text.
 */
import { assertNever, internal } from '../../ir/errors.js';
import type { Expr, ScalarType } from '../../passes/expr.js';
import { delinearize, ivar, keyOf, tvar } from '../../passes/expr.js';
import type { BufferRef, Combine, Kernel } from '../../passes/kernel.js';
import { threefry2x32, UNIT, type WordOps } from '../../ir/random.js';

/** The device limits codegen must respect. */
export interface CodegenLimits {
  readonly maxComputeWorkgroupsPerDimension: number;
  readonly maxComputeInvocationsPerWorkgroup: number;
  readonly maxComputeWorkgroupStorageSize: number;
  /** A two-kernel split binds one buffer more (the partials): it must still fit. */
  readonly maxStorageBuffersPerShaderStage: number;
  /**
   * The device has WebGPU's `subgroups` feature: the subgroup variants of reductions and row
   * kernels may be emitted (their shaders say `enable subgroups;`, which a device without the
   * feature refuses). Absent or false: no shader needs it.
   */
  readonly subgroups?: boolean;
  /** The device's smallest subgroup (absent: 4, WebGPU's minimum): how many lanes a subgroup matmul broadcasts from (at most 8). */
  readonly subgroupMinSize?: number;
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
  /**
   * The ways to compute it, the default first (its WGSL and grid are `wgsl` and `workgroups`):
   * same bindings, different WGSL and grid. Absent or of length 1: one way only.
   */
  readonly variants?: readonly DispatchVariant[];
}

/** One variant of a dispatch: a variant's name, its WGSL and its grid. */
export interface DispatchVariant {
  readonly name: string;
  readonly wgsl: string;
  readonly workgroups: readonly [number, number, number];
  /** Built to compile fast: what the dispatch runs until tuning has timed it (Variant.quick). */
  readonly quick?: true;
}

/** A scratch buffer a kernel needs (partial sums of a split reduction). */
export interface ScratchRequest {
  readonly id: number;
  readonly bytes: number;
}

export const WG = 64;
export const REDUCE_WG = 64;

/** A small indenting line builder. */
export class Lines {
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

export function literal(v: number, t: ScalarType): string {
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

export const BINOP: Record<string, string> = { add: '+', sub: '-', mul: '*', eq: '==', ne: '!=', lt: '<', le: '<=', gt: '>', ge: '>=', and: '&&', or: '||' };

/** Emits the body of a function computing `e`, binding every compound subexpression once. */
export class ExprEmitter {
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
export const RNG_FN = ((): string => {
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
export const POW_FN = `fn pow_f(x: f32, y: f32) -> f32 {
  if (y == 0.0) { return 1.0; }
  let r = pow(abs(x), y);
  if (x >= 0.0) { return r; }
  if (fract(y) != 0.0) { return bitcast<f32>(nan_bits); }
  if (fract(y * 0.5) != 0.0) { return -r; }
  return r;
}
`;

/** Input bindings are in0…; negative numbers name the kernel's own outputs (in-place reads). */
export const bindingName = (i: number): string => (i >= 0 ? `in${i}` : i === -1 ? 'out' : `out${-1 - i}`);

export interface Module {
  readonly fns: string[];
  readonly bindingNames: (i: number) => string;
  usesPow: boolean;
  /** Whether some body calls the random number generator (RNG_FN). */
  usesRng?: boolean;
  /**
   * Bindings declared as arrays of vec4 (see ExprEmitter): inputs by number (vec4<f32>), outputs by
   * their negative numbers (vec4 of their dtype).
   */
  vec4?: ReadonlySet<number>;
  /** WGSL extensions the module enables (`enable subgroups;`), from {@link ENABLES} only. */
  enables?: readonly Enable[];
}

/** The WGSL extensions codegen may enable, each the name of the WebGPU feature it needs. */
export const ENABLES = ['subgroups'] as const;
export type Enable = (typeof ENABLES)[number];

/** Adds `fn <name>(<params>) -> <t> { … return e; }` to the module. */
export function addFn(mod: Module, name: string, params: readonly Expr[], e: Expr): void {
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
export function header(mod: Module, inputs: readonly ScalarType[], out: ScalarType, extras: readonly ScalarType[] = []): string {
  const l = new Lines().line('// generated by adjoint');
  for (const e of mod.enables ?? []) l.line(`enable ${e};`);
  l.line('var<private> inf_bits: u32 = 0x7f800000u;').line('var<private> nan_bits: u32 = 0x7fc00000u;');
  // Every binding is read_write: temporaries share one arena buffer, and WebGPU refuses a buffer
  // bound both read-only and writable in one dispatch (disjoint writable ranges are fine).
  inputs.forEach((t, i) => l.line(`@group(0) @binding(${i}) var<storage, read_write> in${i}: array<${mod.vec4?.has(i) ? 'vec4<f32>' : wgslType(t)}>;`));
  // Outputs in `vec4` (by their negative binding numbers: -1 `out`, -2 `out1`, …) are arrays of vec4.
  const outType = (t: ScalarType, b: number) => (mod.vec4?.has(b) ? `vec4<${wgslType(t)}>` : wgslType(t));
  l.line(`@group(0) @binding(${inputs.length}) var<storage, read_write> out: array<${outType(out, -1)}>;`);
  extras.forEach((t, i) => l.line(`@group(0) @binding(${inputs.length + 1 + i}) var<storage, read_write> out${i + 1}: array<${outType(t, -2 - i)}>;`));
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

export const numel = (s: readonly number[]) => s.reduce((p, q) => p * q, 1);
export const vars = (n: number, p: string) => Array.from({ length: n }, (_, i) => ivar(`${p}${i}`));
/** `let <p><first + i>` for each coordinate of flat `index` in `shape`. */
export const coordLets = (l: Lines, index: string, shape: readonly number[], p: string, first = 0) =>
  delinearize(ivar(index), shape).forEach((c, i) => {
    const em = new ExprEmitter(() => internal('no loads in coordinates'), `${p}t${first + i}_`);
    const v = em.emit(c);
    for (const s of em.lets) l.line(s);
    l.line(`let ${p}${first + i}: i32 = ${v};`);
  });
export const combineText = (c: Combine, a: string, b: string) => (c === 'sum' ? `${a} + ${b}` : `max(${a}, ${b})`);
export const initText = (c: Combine, t: ScalarType) =>
  c === 'sum' ? literal(0, t) : t === 'i32' ? literal(-2147483648, 'i32') : literal(-Infinity, 'f32');
export const LINEAR = (wg: number) => `i32((wid.y * nwg.x + wid.x) * ${wg}u + lid)`;
export const MAIN_SIG = (wg: number) =>
  `@compute @workgroup_size(${wg})\nfn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32)`;

/** Declares the functions of a kernel's further outputs: `x<k>(v0…, coordinates)`. */
export function addExtras(mod: Module, k: Kernel, coords: readonly Expr[]): void {
  const held: Expr[] = [tvar('v0', k.dtype)];
  k.extras.forEach((x, i) => {
    addFn(mod, `x${i + 1}`, [...held, ...coords], x.expr);
    held.push(tvar(`v${i + 1}`, x.dtype));
  });
}

/** Stores the main value and every further output at flat index `idx`, in a block of its own. */
export function storeAll(l: Lines, k: Kernel, idx: string, main: string, coords: readonly string[]): void {
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

export const extraTypes = (k: Kernel) => k.extras.map((x) => x.dtype);
export const extraRefs = (k: Kernel) => k.extras.map((x) => x.ref);

/** A kernel whose body is of kind `K`. */
export type KernelOf<K extends Kernel['body']['kind']> = Kernel & { readonly body: Extract<Kernel['body'], { kind: K }> };

/** What a variant's emitter is given besides the kernel. */
export interface EmitContext {
  /** The dtype of each input binding. */
  readonly inputTypes: readonly ScalarType[];
  readonly limits: CodegenLimits;
  /** Allocates a scratch buffer (the n-th request of every variant of a kernel gets the same one). */
  readonly scratch: (bytes: number) => number;
  readonly label: string;
  /** Elements of each input binding (NaN for scratch); without them no operand is vectorized. */
  readonly inputSizes?: readonly number[];
}

/**
 * One way to compute a kernel kind: `fits` says whether it applies to a kernel on a device with
 * these limits, `emit` gives its dispatches. Every variant that fits a kernel gives the same
 * dispatches with the same bindings (only their WGSL and grids differ), so the runtime may run any
 * of them: a variant changes how, never what. Names are stable (they key the tuning cache).
 */
export interface Variant<K extends Kernel['body']['kind']> {
  readonly name: string;
  /**
   * Built to compile fast (a short K loop, no unrolling): a kernel runs it from the first load
   * until background tuning has timed its variants. The first that fits a kernel is the one.
   */
  readonly quick?: true;
  fits(k: KernelOf<K>, limits: CodegenLimits): boolean;
  emit(k: KernelOf<K>, ctx: EmitContext): Dispatch[];
}

/** The variants of one kernel kind, and the rule naming the default (else the first that fits). */
export interface VariantTable<K extends Kernel['body']['kind']> {
  readonly variants: readonly Variant<K>[];
  readonly preferred?: (k: KernelOf<K>, limits: CodegenLimits) => string;
}
