/**
 * @file Matmul kernels (and the implicit-GEMM convolutions, which are matmuls over index
 * arithmetic): register-tiled variants (`reg8x8`, the default, `reg4x4`, `reg8x4`: each thread
 * keeps a tile of accumulators and reads its operands straight from storage) and workgroup-memory
 * tiled ones (`wg32x32`, `wg64x64`: a workgroup stages a BK-deep slab of A and B in workgroup
 * memory, then each thread accumulates its 4x4 or 8x8 outputs from there, as TF.js, ONNX Runtime
 * and gpu.cpp do on GPUs), and where the device has `subgroups` the subgroup variants
 * (`subgroup16x4`, `subgroup32x4`, `subgroup8x8`, `subgroup32x16`: register tiles whose threads share the tile's rows of A, each row
 * read by one lane in BL and broadcast to the others; `subgroupcols8x8`: the same with the tile's
 * columns of B shared, for narrow N), and the compact ones built to compile fast
 * (`subgroupcompact16x4`, `subgroupcompact8x8`, `compact4x4`: K one step per iteration, scalar
 * reads; the table marks the first that fits `quick`, what a kernel runs until tuned). Every variant takes the same operand expressions, the same split of K
 * (decided once per kernel, so every variant writes the same partials) and the same fused
 * epilogue at the final store.
 */
import { internal } from '../../ir/errors.js';
import type { Expr, ScalarType } from '../../passes/expr.js';
import { add, bindingsRead, childrenOf, int, invariantsOf, ivar, keyOf, linearIndex, mul, substitute, tvar } from '../../passes/expr.js';
import type { BufferRef, Kernel } from '../../passes/kernel.js';
import { bodyRanges, linearOf, simplifyIndices, type Range } from '../ranges.js';
import {
  addExtras, addFn, bindingName, coordLets, ExprEmitter, extraRefs, extraTypes, grid, header, Lines, LINEAR, MAIN_SIG, numel, storeAll,
  vars, WG, type CodegenLimits, type Dispatch, type EmitContext, type KernelOf, type Module, type VariantTable,
} from './common.js';

type MatmulKernel = KernelOf<'matmul'>;
type MatmulBody = MatmulKernel['body'];
/** Rows and columns of C per thread of the default (8 x 8 measured 1.5-2x faster than 4 x 4 on SwiftShader). */
const TILE = 8;
const UNROLL = 2;
/** A matmul with fewer threads than this and a K of at least SPLIT_K splits K over more threads. */
const SPLIT_THREADS = 1024;
const SPLIT_K = 1024;
/** The shortest stretch of K a thread of a split matmul sums. */
const MIN_CHUNK = 256;

const pow2ceil = (x: number) => 2 ** Math.ceil(Math.log2(Math.max(1, x)));

/**
 * How a register-tiled matmul is cut over threads: each thread accumulates a tm x tn tile of C (a
 * narrow M or N is covered whole), threads form wx x wy workgroups shaped to the tile grid (no idle
 * columns of threads for a narrow N).
 */
export function tilePlan(body: Pick<MatmulBody, 'm' | 'n'>, tile: readonly [number, number]): { tm: number; tn: number; wx: number; wy: number } {
  const tm = Math.min(body.m, tile[0]);
  const tn = Math.min(body.n, tile[1]);
  const wx = Math.min(8, pow2ceil(Math.ceil(body.n / tn)));
  const wy = Math.min(64 / wx, pow2ceil(Math.ceil(body.m / tm)));
  return { tm, tn, wx, wy };
}

/**
 * The split of K, the same for every variant of a kernel: a matmul with few 8x8 tiles and a long
 * K (a filter gradient) sums K in `splits` chunks of `chunk` (multiples of 4), combined by a second
 * kernel, when that kernel's bindings fit.
 */
interface SplitPlan {
  readonly splits: number;
  readonly chunk: number;
  readonly split: boolean;
  /** Elements of C over the batch. */
  readonly total: number;
}

function splitPlan(k: MatmulKernel, limits: CodegenLimits): SplitPlan {
  const body = k.body;
  const canSplit = epilogueReads(k, body).length + 2 + matmulOutputs(k, body).refs.length <= limits.maxStorageBuffersPerShaderStage;
  const { tm, tn } = tilePlan(body, [TILE, TILE]);
  const threads = Math.ceil(body.n / tn) * Math.ceil(body.m / tm) * numel(body.batch);
  let splits = 1;
  if (canSplit && threads < SPLIT_THREADS && body.k >= SPLIT_K) splits = Math.min(Math.ceil(SPLIT_THREADS / threads), Math.floor(body.k / MIN_CHUNK));
  splits = Math.max(1, Math.min(splits, Math.floor(limits.maxComputeWorkgroupsPerDimension / numel(body.batch))));
  // Chunks are multiples of 4 (a vectorized operand reads four steps of K at a time) and of a
  // window variant's steps (it walks whole rows of taps).
  const steps = windowSteps(body);
  const unit = steps === undefined ? 4 : lcm(4, steps);
  const chunk = Math.ceil(Math.ceil(body.k / splits) / unit) * unit;
  const s = Math.ceil(body.k / chunk);
  return { splits: s, chunk, split: s > 1, total: numel(body.batch) * body.m * body.n };
}

/** The workgroup-memory tiled variants: a bm x bn tile of C per workgroup, tm x tn per thread, K in steps of bk. */
interface SharedTile {
  readonly bm: number;
  readonly bn: number;
  readonly tm: number;
  readonly tn: number;
  readonly bk: number;
}

const sharedFits = (t: SharedTile) => (k: MatmulKernel, limits: CodegenLimits): boolean =>
  (t.bm / t.tm) * (t.bn / t.tn) <= limits.maxComputeInvocationsPerWorkgroup &&
  t.bk * (t.bm + t.bn) * 4 <= limits.maxComputeWorkgroupStorageSize &&
  // A tile mostly outside C wastes most of its threads.
  k.body.m * 2 >= t.bm && k.body.n * 2 >= t.bn;

const WG32: SharedTile = { bm: 32, bn: 32, tm: 4, tn: 4, bk: 16 };
const WG64: SharedTile = { bm: 64, bn: 64, tm: 8, tn: 8, bk: 16 };

export const MATMUL_VARIANTS: VariantTable<'matmul'> = {
  variants: [
    { name: 'reg8x8', fits: () => true, emit: (k, ctx) => emitRegister(k, [8, 8], ctx) },
    { name: 'reg4x4', fits: () => true, emit: (k, ctx) => emitRegister(k, [4, 4], ctx) },
    { name: 'reg8x4', fits: () => true, emit: (k, ctx) => emitRegister(k, [8, 4], ctx) },
    { name: 'subgroup16x4', fits: (_, limits) => limits.subgroups === true, emit: (k, ctx) => emitRegister(k, [16, 4], ctx, 'rows') },
    { name: 'subgroup8x8', fits: (_, limits) => limits.subgroups === true, emit: (k, ctx) => emitRegister(k, [8, 8], ctx, 'rows') },
    // 32 rows per thread (m > 16: else the same kernel as subgroup16x4): one broadcast row's load serves twice the FMAs.
    { name: 'subgroup32x4', fits: (k, limits) => limits.subgroups === true && k.body.m > 16, emit: (k, ctx) => emitRegister(k, [32, 4], ctx, 'rows') },
    // 32 x 16 per thread where a subgroup may be 4 lanes wide (SwiftShader: a lane is a slot of a
    // 128-bit register, every storage read a 4-lane gather, every broadcast a few shuffles): a
    // quarter of 32x4's broadcasts and half its reads per FMA. Measured 10-40% faster than
    // subgroup32x4 on SwiftShader's large matmuls, slower on lavapipe (8 lanes), so offered where
    // the subgroup may be 4 wide only.
    { name: 'subgroup32x16', fits: (k, limits) => limits.subgroups === true && (limits.subgroupMinSize ?? 4) <= 4 && k.body.m > 16, emit: (k, ctx) => emitRegister(k, [32, 16], ctx, 'rows') },
    // Quick to compile (K one step at a time, scalar reads): what a kernel runs until tuned.
    { name: 'subgroupcompact16x4', quick: true, fits: (_, limits) => limits.subgroups === true, emit: (k, ctx) => emitRegister(k, [16, 4], ctx, 'rows', 1) },
    { name: 'subgroupcompact8x8', fits: (_, limits) => limits.subgroups === true, emit: (k, ctx) => emitRegister(k, [8, 8], ctx, 'rows', 1) },
    { name: 'compact4x4', quick: true, fits: () => true, emit: (k, ctx) => emitRegister(k, [4, 4], ctx, undefined, 1) },
    { name: 'subgroupcols8x8', fits: (_, limits) => limits.subgroups === true, emit: (k, ctx) => emitRegister(k, [8, 8], ctx, 'cols') },
    // Convolutions: a thread's rows (output positions) or columns (taps) aligned to the image's
    // rows and K walked a row of taps per iteration, so that the reads the window shares are read
    // once (see windowPlan).
    { name: 'subgroupcolswindow', fits: (k, limits) => limits.subgroups === true && windowPlan(k, limits, 'cols') !== undefined, emit: (k, ctx) => emitWindow(k, ctx, 'cols') },
    { name: 'subgroupwindow', fits: (k, limits) => limits.subgroups === true && windowPlan(k, limits, 'rows') !== undefined, emit: (k, ctx) => emitWindow(k, ctx, 'rows') },
    { name: 'window', fits: (k, limits) => windowPlan(k, limits) !== undefined, emit: (k, ctx) => emitWindow(k, ctx) },
    { name: 'wg32x32', fits: sharedFits(WG32), emit: (k, ctx) => emitShared(k, WG32, ctx) },
    { name: 'wg64x64', fits: sharedFits(WG64), emit: (k, ctx) => emitShared(k, WG64, ctx) },
  ],
};

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
 * The innermost extent of coordinate `v` in `exprs`: the smallest d of a `v / d` or `v % d` (the
 * output width of a convolution's positions, the width of its taps), undefined where none.
 */
function innerExtent(exprs: readonly Expr[], v: string): number | undefined {
  let best: number | undefined;
  const seen = new Set<Expr>();
  const walk = (x: Expr): void => {
    if (seen.has(x)) return;
    seen.add(x);
    if (x.k === 'arith' && (x.op === 'div' || x.op === 'mod') && x.a.k === 'var' && x.a.name === v && x.b.k === 'const' && x.b.v > 1) best = Math.min(best ?? x.b.v, x.b.v);
    childrenOf(x).forEach(walk);
  };
  exprs.forEach(walk);
  return best;
}

/** The largest divisor of `d` (and of `size`) from 2 to `max`, undefined where none. */
function alignedTo(d: number | undefined, size: number, max: number): number | undefined {
  if (d === undefined) return undefined;
  for (let t = Math.min(max, d); t >= 2; t--) if (d % t === 0 && size % t === 0) return t;
  return undefined;
}

/** The most steps of K per iteration of a window variant (a row of taps; 28-wide rows take 14). */
const WINDOW_STEPS = 16;
/** The most rows per thread of a window variant (an image row of 14 measured 1.3-1.6x faster than 7 on LeNet's input gradient). */
const WINDOW_ROWS = 16;

/** Steps of K per iteration of a window variant: the largest divisor of K's innermost extent up to WINDOW_STEPS. */
const windowSteps = (body: Pick<MatmulBody, 'lhs' | 'rhs' | 'k'>): number | undefined => alignedTo(innerExtent([body.lhs, body.rhs], 'ki'), body.k, WINDOW_STEPS);

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
const lcm = (a: number, b: number): number => (a / gcd(a, b)) * b;

/** A window variant's tile: rows (or columns) per thread aligned to their coordinate's innermost extent, `steps` of K per iteration aligned to K's. */
interface WindowPlan {
  readonly tile: readonly [number, number];
  readonly rows?: number;
  readonly cols?: number;
  readonly steps: number;
}

/**
 * A convolution's GEMM reads one input element for many (row, step) pairs: at output column ow
 * and tap column kw the forward convolution reads column ow + kw (its input gradient ow - kw, its
 * filter gradient the same over (tap, position)). A thread whose rows are consecutive output
 * columns of one image row, walking K a row of taps per iteration, reads tm + steps - 1 distinct
 * elements per iteration instead of tm x steps, once its index arithmetic is simplified knowing
 * the alignment (rows `tm*mt + i`, steps `steps*kq + u`): the equal reads are then equal
 * expressions, which the emitter computes once. Offered where the operand has such an extent
 * (a `mi % d` and a `ki % d`) on the side the variant does not share between lanes.
 */
function windowPlan(k: MatmulKernel, limits: CodegenLimits, sub?: 'rows' | 'cols'): WindowPlan | undefined {
  const { lhs, rhs, m, n } = k.body;
  const steps = windowSteps(k.body);
  if (steps === undefined) return undefined;
  const s = splitPlan(k, limits);
  if (s.split && s.chunk % steps !== 0) internal(`split K in chunks of ${s.chunk}, not whole rows of ${steps} taps`);
  const shared = (side: 'mi' | 'ni', per: number | undefined) => (per !== undefined && windowShares(k.body, side, per, steps) ? per : undefined);
  const rows = sub === 'rows' ? undefined : shared('mi', alignedTo(innerExtent([lhs], 'mi'), m, WINDOW_ROWS));
  const cols = sub === 'cols' ? undefined : shared('ni', alignedTo(innerExtent([rhs], 'ni'), n, TILE));
  if (rows === undefined && cols === undefined) return undefined;
  return { tile: [rows ?? (sub === 'rows' ? 16 : TILE), cols ?? TILE], ...(rows ? { rows } : {}), ...(cols ? { cols } : {}), steps };
}

/** A window must read at most this share of its (position, step) pairs' elements to be offered. */
const WINDOW_SHARE = 0.75;
const shares = new WeakMap<MatmulBody, Map<string, boolean>>();

/**
 * Whether aligning `per` rows (`mi`) or columns (`ni`) per thread and `steps` steps of K per
 * iteration makes the operand's reads shared: the reads of one iteration, simplified as the window
 * variant simplifies them, are at most WINDOW_SHARE distinct. A convolution's are (LeNet's first
 * convolution, 14 positions x 5 taps: 18 of 70); a batched matmul whose K or rows a reshape split
 * (attention's heads) has the extents but every read its own, and there a window is only a large
 * unrolled shader (lavapipe: 20-49 s to compile each, for no speed).
 */
function windowShares(body: MatmulBody, side: 'mi' | 'ni', per: number, steps: number): boolean {
  const key = `${side}:${per}:${steps}`;
  let memo = shares.get(body);
  if (!memo) shares.set(body, (memo = new Map()));
  const known = memo.get(key);
  if (known !== undefined) return known;
  const tile = side === 'mi' ? 'mt' : 'nt';
  const ranges = windowRanges(body, steps, side === 'mi' ? { rows: per } : { cols: per });
  const operand = side === 'mi' ? body.lhs : body.rhs;
  const reads = new Set<string>();
  let total = 0;
  const collect = (x: Expr): void => {
    if (x.k === 'load') {
      total++;
      reads.add(keyOf(x));
      return;
    }
    childrenOf(x).forEach(collect);
  };
  for (let i = 0; i < per; i++) {
    for (let u = 0; u < steps; u++) {
      const at = new Map([[side, alignedAt(tile, per, i)], ['ki', alignedAt('kq', steps, u)]]);
      collect(simplifyIndices(substitute(operand, at), ranges));
    }
  }
  const pays = total > 0 && reads.size <= WINDOW_SHARE * total;
  memo.set(key, pays);
  return pays;
}

/** Element `i` of the `per` a window variant aligns: `v*per + i` (rows `mt`, columns `nt`, steps of K `kq`). */
const alignedAt = (v: string, per: number, i: number): Expr => add(mul(ivar(v), int(per)), int(i));

/** The ranges a window variant's operands are simplified under: the body's, and its tiles' and steps' indices. */
function windowRanges(body: MatmulBody, steps: number, per: { readonly rows?: number; readonly cols?: number }): Map<string, Range> {
  const ranges = new Map<string, Range>([...bodyRanges(body), ['kq', [0, body.k / steps - 1]]]);
  if (per.rows) ranges.set('mt', [0, body.m / per.rows - 1]);
  if (per.cols) ranges.set('nt', [0, body.n / per.cols - 1]);
  return ranges;
}

function emitWindow(k: MatmulKernel, ctx: EmitContext, sub?: 'rows' | 'cols'): Dispatch[] {
  const win = windowPlan(k, ctx.limits, sub) ?? internal('a window variant emitted for a kernel it does not fit');
  return emitRegister(k, win.tile, ctx, sub, UNROLL, win);
}

/**
 * The register-tiled matmul: each thread keeps a tm x tn tile of accumulators and walks K (or its
 * chunk of K), unrolled by `unroll` (UNROLL = 2 measured as fast as 4, with half the shader to
 * compile; 1, the compact variants: no vectorized operands either).
 * Operands are expressions, emitted inline: their parts that do not depend on `ki` (a row's or
 * column's base offset, a convolution's output position) are computed once before the loop, and
 * their parts that depend on `ki` only (a convolution's tap) once per step for all rows and
 * columns (common subexpressions). Element (mi, ni) is stored at its `place` through `dst`, after
 * `fin` (the fused epilogue). A side sum (the column sums of B) is accumulated by the first row of
 * tiles. Split K: this kernel writes each chunk's partial tiles (and partial side sums) to scratch,
 * and a second kernel sums them and finalizes (splitSum). `sub` (the subgroup variants): the tile's
 * rows ('rows') or columns ('cols') are shared by the threads of a workgroup, each read by one
 * lane in BL and broadcast to the others (subgroupBroadcast; quadBroadcast where BL is 4, the
 * same values: on SwiftShader a quarter fewer instructions, its subgroupBroadcast masks and ORs
 * all four lanes, 10-17% faster on the MLP's forward matmul).
 */
function emitRegister(k: MatmulKernel, tile: readonly [number, number], ctx: EmitContext, sub?: 'rows' | 'cols', unroll = UNROLL, win?: WindowPlan): Dispatch[] {
  const body = k.body;
  const { m, n, k: kk, batch } = body;
  const s = splitPlan(k, ctx.limits);
  const { splits, chunk, split } = s;
  const plan0 = tilePlan(body, tile);
  // The subgroup variants: a workgroup is one line of threads sharing the tile's rows ('rows': the
  // threads go along N) or its columns ('cols': along M), at least as many threads as broadcasting
  // lanes, so that those lanes exist in every subgroup.
  const bl = Math.min(8, ctx.limits.subgroupMinSize ?? 4);
  const line = (count: number, per: number) => Math.max(bl, Math.min(64, pow2ceil(Math.ceil(count / per))));
  const plan = sub === 'rows' ? { ...plan0, wx: line(n, plan0.tn), wy: 1 } : sub === 'cols' ? { ...plan0, wx: 1, wy: line(m, plan0.tm) } : plan0;
  const { tm, tn } = plan;
  const inputSizes = ctx.inputSizes;
  // Operands read four elements at a time (a plain row-major or transposed tensor with aligned rows);
  // the shared operand of a subgroup variant is read along k only (a lane's rows are not four
  // consecutive ones).
  const va0 = vectorAxis(body.lhs, 'mi', m, tm, kk, inputSizes);
  const va = win || unroll === 1 || (sub === 'rows' && va0 === 'r') ? undefined : va0;
  const vb0 = vectorAxis(body.rhs, 'ni', n, tn, kk, inputSizes);
  const vb = win || unroll === 1 || (sub === 'cols' && vb0 === 'r') ? undefined : vb0;
  const vec4 = new Set([...(va ? [loadBinding(body.lhs)] : []), ...(vb ? [loadBinding(body.rhs)] : [])]);
  const mod: Module = { fns: [], bindingNames: bindingName, usesPow: false, vec4, ...(sub ? { enables: ['subgroups'] as const } : {}) };
  if (!split) matmulEpilogue(mod, k, body);

  const l = new Lines().line(`@compute @workgroup_size(${plan.wx}, ${plan.wy})`);
  if (sub) {
    // No early return: the broadcasts need every lane (rows and columns past C load clamped, store nothing).
    l.open('fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_invocation_id) sl: u32)');
    l.line(`let n0 = i32(${sub === 'rows' ? 'gid' : 'wid'}.x) * ${tn}i;`).line(`let m0 = i32(${sub === 'rows' ? 'wid' : 'gid'}.y) * ${tm}i;`);
    l.line('let gz = i32(wid.z);');
  } else {
    l.open('fn main(@builtin(global_invocation_id) gid: vec3<u32>)');
    l.line(`let n0 = i32(gid.x) * ${tn}i;`).line(`let m0 = i32(gid.y) * ${tm}i;`);
    l.line(`if (n0 >= ${n}i || m0 >= ${m}i) { return; }`);
    l.line('let gz = i32(gid.z);');
  }
  if (split) l.line(`let bz = gz / ${splits}i;`).line(`let ks = gz % ${splits}i;`);
  else l.line('let bz = gz;');
  coordLets(l, 'bz', batch, 'z');
  // A subgroup variant's lanes each read the shared side's rows (or columns) q * bl + (lane % bl)
  // (q < tm / bl), and every lane takes row i from lane i % bl of its subgroup: a row is read once
  // per bl lanes. (nc<j> stay: the column sums read them.)
  const lanesM = sub === 'rows' ? Math.ceil(tm / bl) : tm;
  const lanesN = sub === 'cols' ? Math.ceil(tn / bl) : tn;
  const lane = (q: number) => `${q * bl}i + i32(sl % ${bl}u)`;
  // A window variant's aligned rows (columns) are tm*mt + i (tn*nt + j), the tile's index clamped.
  if (win?.rows) l.line(`let mt = min(i32(gid.y), ${m / tm - 1}i);`);
  else for (let i = 0; i < lanesM; i++) l.line(sub === 'rows' ? `let mr${i} = min(m0 + ${lane(i)}, ${m - 1}i);` : `let mr${i} = min(m0 + ${i}i, ${m - 1}i);`);
  if (win?.cols) l.line(`let nt = min(i32(gid.x), ${n / tn - 1}i);`);
  for (let j = 0; j < tn; j++) l.line(`let nc${j} = min(n0 + ${j}i, ${n - 1}i);`);
  if (sub === 'cols') for (let q = 0; q < lanesN; q++) l.line(`let nl${q} = min(n0 + ${lane(q)}, ${n - 1}i);`);
  if (va === 'r') for (let g = 0; g < tm / 4; g++) l.line(`let mg${g} = min(m0 + ${4 * g}i, ${m - 4}i);`);
  if (vb === 'r') for (let g = 0; g < tn / 4; g++) l.line(`let ng${g} = min(n0 + ${4 * g}i, ${n - 4}i);`);
  // Operands per row and per column; what does not depend on ki is computed here, once. A
  // vectorized operand is its index: per row (along k) or per group of four rows (along rows).
  const operand = (e: Expr, v: 'k' | 'r' | undefined, rv: string, count: number, name: (i: number) => string, group: (g: number) => string) =>
    v === 'r'
      ? Array.from({ length: count / 4 }, (_, g) => substitute(loadIndex(e), new Map([[rv, ivar(group(g))]])))
      : Array.from({ length: count }, (_, i) => substitute(v ? loadIndex(e) : e, new Map([[rv, ivar(name(i))]])));
  const rows = win?.rows
    ? Array.from({ length: tm }, (_, i) => substitute(body.lhs, new Map([['mi', alignedAt('mt', tm, i)]])))
    : operand(body.lhs, va, 'mi', lanesM, (i) => `mr${i}`, (g) => `mg${g}`);
  const cols = win?.cols
    ? Array.from({ length: tn }, (_, j) => substitute(body.rhs, new Map([['ni', alignedAt('nt', tn, j)]])))
    : operand(body.rhs, vb, 'ni', lanesN, (j) => (sub === 'cols' ? `nl${j}` : `nc${j}`), (g) => `ng${g}`);
  // A window variant's operands at each step of an iteration, simplified knowing the alignment.
  const windowed = win && (() => {
    const ranges = windowRanges(body, win.steps, { rows: tm, cols: tn });
    const at = (e: Expr, u: number) => simplifyIndices(substitute(e, new Map([['ki', alignedAt('kq', win.steps, u)]])), ranges);
    return Array.from({ length: win.steps }, (_, u) => ({ a: rows.map((e) => at(e, u)), b: cols.map((e) => at(e, u)) }));
  })();
  /**
   * The shared side's values of the tile from the lanes' values `v` (a subgroup variant's
   * broadcasts, bound to lets); the other side's as they are.
   */
  const bcast = (side: 'rows' | 'cols', v: readonly string[], p: string): string[] => {
    if (sub !== side) return [...v];
    return Array.from({ length: side === 'rows' ? tm : tn }, (_, i) => {
      l.line(`let ${p}${i} = ${bl === 4 ? 'quadBroadcast' : 'subgroupBroadcast'}(${v[Math.floor(i / bl)]}, ${i % bl}u);`);
      return `${p}${i}`;
    });
  };
  const hoisted = new ExprEmitter(mod.bindingNames, 'h', undefined, vec4);
  if (windowed) for (const { a, b } of windowed) for (const e of [...a, ...b]) for (const inv of invariantsOf(e, 'kq')) hoisted.emit(inv);
  else for (const e of [...rows, ...cols]) for (const inv of invariantsOf(e, 'ki')) hoisted.emit(inv);
  for (const s of hoisted.lets) l.line(s);
  mod.usesPow ||= hoisted.usesPow;
  mod.usesRng ||= hoisted.usesRng;
  // Accumulators: a vec4 per four columns where the tile's columns come in fours (one vector FMA
  // per row and group: a quarter of the WGSL, and of the shader compiler's work, of scalar FMAs;
  // the same arithmetic), else scalars.
  const quads = tn % 4 === 0;
  const acc = (i: number, j: number) => (quads ? `c${i}_${j >> 2}` : `c${i}_${j}`);
  const accRef = (i: number, j: number) => (quads ? `${acc(i, j)}.${'xyzw'[j & 3]}` : acc(i, j));
  for (let i = 0; i < tm; i++) {
    for (let j = 0; j < tn; j += quads ? 4 : 1) l.line(quads ? `var ${acc(i, j)} = vec4<f32>(0.0);` : `var ${acc(i, j)}: f32 = 0.0;`);
  }
  /**
   * acc(i, j..) += a(i, u) * b(j.., u) for every row i, column j and step u of the block, one
   * accumulator after another (all of a block's steps on one accumulator in a row, then the next:
   * measured 1.2-1.3x faster than step after step on lavapipe's 512^3: a CPU's registers hold a
   * few accumulators, not a tile's 64, so step after step every partial sum is spilled and
   * reloaded at every step, while one after another keeps it in a register for the block).
   * Each accumulator still sums its steps of K in order: the results are the same.
   */
  const fmas = (steps: number, a: (i: number, u: number) => string, b: (j: number, u: number) => string, bQuad?: (g: number, u: number) => string) => {
    for (let i = 0; i < tm; i++) {
      if (!quads) {
        for (let j = 0; j < tn; j++) for (let u = 0; u < steps; u++) l.line(`${acc(i, j)} = fma(${a(i, u)}, ${b(j, u)}, ${acc(i, j)});`);
        continue;
      }
      for (let g = 0; g < tn / 4; g++) {
        for (let u = 0; u < steps; u++) {
          const bv = bQuad?.(g, u) ?? `vec4<f32>(${[0, 1, 2, 3].map((q) => b(4 * g + q, u)).join(', ')})`;
          l.line(`${acc(i, 4 * g)} = fma(vec4<f32>(${a(i, u)}), ${bv}, ${acc(i, 4 * g)});`);
        }
      }
    }
  };
  /** One step of K's operand values (emitted as lets): the rows' and the columns' (broadcast where shared). */
  const step = (kv: string, tag: string): { a: string[]; b: string[] } => {
    const em = new ExprEmitter(mod.bindingNames, `t${tag}_`, hoisted);
    const to = new Map([['ki', ivar(kv)]]);
    const a = rows.map((e) => em.emit(substitute(e, to)));
    const v = cols.map((e) => em.emit(substitute(e, to)));
    mod.usesPow ||= em.usesPow;
    mod.usesRng ||= em.usesRng;
    for (const s of em.lets) l.line(s);
    return { a: bcast('rows', a, `x${tag}_`), b: bcast('cols', v, `y${tag}_`) };
  };
  const [from, to] = split ? ['kbeg', 'kend'] : ['0i', `${kk}i`];
  if (split) l.line(`let kbeg = ks * ${chunk}i;`).line(`let kend = min(kbeg + ${chunk}i, ${kk}i);`);
  if (windowed) {
    // A row of taps per iteration, every read of it emitted once (one emitter for all its steps).
    const q = win!.steps;
    l.open(`for (var kq = ${split ? `kbeg / ${q}i` : '0i'}; kq < ${split ? `kend / ${q}i` : `${kk / q}i`}; kq++)`);
    const em = new ExprEmitter(mod.bindingNames, 't_', hoisted);
    const vals = windowed.map(({ a, b }) => ({ a: a.map((e) => em.emit(e)), b: b.map((e) => em.emit(e)) }));
    mod.usesPow ||= em.usesPow;
    mod.usesRng ||= em.usesRng;
    for (const st of em.lets) l.line(st);
    const shared = vals.map((v, u) => ({ a: bcast('rows', v.a, `x${u}_`), b: bcast('cols', v.b, `y${u}_`) }));
    fmas(q, (i, u) => shared[u]!.a[i]!, (j, u) => shared[u]!.b[j]!);
    l.close();
  } else if (va || vb) {
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
    /** The shared side's accessor: its lanes' vec4s along k (or values per step) broadcast. */
    const shared = (side: 'rows' | 'cols', f: (i: number, u: number) => string, v: 'k' | 'r' | undefined, count: number, p: string): ((i: number, u: number) => string) => {
      if (sub !== side) return f;
      if (v === 'k') {
        const xs = bcast(side, Array.from({ length: count }, (_, q) => `${p}v${q}`), `${p}x`);
        return (i, u) => `${xs[i]}.${C[u]}`;
      }
      const xs = [0, 1, 2, 3].map((u) => bcast(side, Array.from({ length: count }, (_, q) => f(q, u)), `${p}x${u}_`));
      return (i, u) => xs[u]![i]!;
    };
    const ab = shared('rows', a, va, lanesM, 'a');
    const bb = shared('cols', b, vb, lanesN, 'b');
    fmas(4, ab, bb, vb === 'r' ? (g, u) => `bv${u}_${g}` : undefined);
    l.close();
  } else {
    // Scalar loads: the K loop unrolled `unroll` times, then the remainder (chunks are multiples of 4:
    // only the end of K has one).
    const main = split ? 'kmain' : `${kk - (kk % unroll)}i`;
    if (split) l.line(`let kmain = kend - (kend - kbeg) % ${unroll}i;`);
    if (kk >= unroll) {
      l.open(`for (var kb = ${from}; kb < ${main}; kb += ${unroll}i)`);
      const vals = Array.from({ length: unroll }, (_, u) => {
        l.line(`let ku${u} = kb + ${u}i;`);
        return step(`ku${u}`, `${u}`);
      });
      fmas(unroll, (i, u) => vals[u]!.a[i]!, (j, u) => vals[u]!.b[j]!);
      l.close();
    }
    if (kk % unroll) {
      l.open(`for (var ki = ${kk >= unroll ? main : from}; ki < ${to}; ki++)`);
      const v = step('ki', 'r');
      fmas(1, (i) => v.a[i]!, (j) => v.b[j]!);
      l.close();
    }
  }
  const accOf = (e: number) => accRef(Math.floor(e / tn), e % tn);
  return finish(k, s, mod, l, hoisted, { tm, tn, from, to, accOf }, [Math.ceil(Math.ceil(n / tn) / plan.wx), Math.ceil(Math.ceil(m / tm) / plan.wy)], ctx);
}

/**
 * The workgroup-memory tiled matmul: the workgroup's threads load a bk-deep slab of A (bm rows) and
 * of B (bn columns) into workgroup memory, each element once (threads stride along the operand's
 * contiguous axis), then each thread accumulates its tm x tn outputs from the slab in vec4s (a
 * row of four columns per accumulator). Elements past K (or past the split's chunk) load as 0;
 * rows and columns past C are clamped on load and skipped on store. No thread returns early (the
 * barriers need them all).
 */
function emitShared(k: MatmulKernel, t: SharedTile, ctx: EmitContext): Dispatch[] {
  const body = k.body;
  const { m, n, k: kk, batch } = body;
  const s = splitPlan(k, ctx.limits);
  const { splits, chunk, split } = s;
  const { bm, bn, tm, tn, bk } = t;
  const wx = bn / tn;
  const wy = bm / tm;
  const threads = wx * wy;
  const mod: Module = { fns: [], bindingNames: bindingName, usesPow: false };
  if (!split) matmulEpilogue(mod, k, body);
  const l = new Lines();
  l.line(`var<workgroup> sa: array<vec4<f32>, ${(bk * bm) / 4}>;`).line(`var<workgroup> sb: array<vec4<f32>, ${(bk * bn) / 4}>;`).line('');
  l.line(`@compute @workgroup_size(${wx}, ${wy})`);
  l.open('fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>, @builtin(local_invocation_index) lid: u32)');
  l.line('let li = i32(lid);');
  l.line(`let bm0 = i32(wid.y) * ${bm}i;`).line(`let bn0 = i32(wid.x) * ${bn}i;`);
  l.line(`let m0 = bm0 + i32(lid3.y) * ${tm}i;`).line(`let n0 = bn0 + i32(lid3.x) * ${tn}i;`);
  l.line('let gz = i32(wid.z);');
  if (split) l.line(`let bz = gz / ${splits}i;`).line(`let ks = gz % ${splits}i;`);
  else l.line('let bz = gz;');
  coordLets(l, 'bz', batch, 'z');
  // Which element of the slab each thread loads: along k when the operand is contiguous along k.
  const alongK = (e: Expr) => e.k === 'load' && [...linearOf(e.index).terms.values()].some((x) => x.atom.k === 'var' && x.atom.name === 'ki' && x.coef === 1);
  const loader = (e: Expr, rows: number, p: string, base: string, last: number, rv: string) => {
    const byK = alongK(e);
    return Array.from({ length: (rows * bk) / threads }, (_, q) => {
      const idx = `(li + ${threads * q}i)`;
      l.line(`let ${p}k${q} = ${byK ? `${idx} % ${bk}i` : `${idx} / ${rows}i`};`);
      l.line(`let ${p}l${q} = ${byK ? `${idx} / ${bk}i` : `${idx} % ${rows}i`};`);
      l.line(`let ${p}r${q} = min(${base} + ${p}l${q}, ${last}i);`);
      return substitute(e, new Map([[rv, ivar(`${p}r${q}`)]]));
    });
  };
  const aLoads = loader(body.lhs, bm, 'a', 'bm0', m - 1, 'mi');
  const bLoads = loader(body.rhs, bn, 'b', 'bn0', n - 1, 'ni');
  for (let j = 0; j < tn; j++) l.line(`let nc${j} = min(n0 + ${j}i, ${n - 1}i);`);
  const hoisted = new ExprEmitter(mod.bindingNames, 'h');
  for (const e of [...aLoads, ...bLoads]) for (const inv of invariantsOf(e, 'ki')) hoisted.emit(inv);
  for (const x of hoisted.lets) l.line(x);
  mod.usesPow ||= hoisted.usesPow;
  mod.usesRng ||= hoisted.usesRng;
  const g4 = tn / 4;
  const acc = (i: number, g: number) => `c${i}_${g}`;
  for (let i = 0; i < tm; i++) for (let g = 0; g < g4; g++) l.line(`var ${acc(i, g)} = vec4<f32>(0.0);`);
  const [from, to] = split ? ['kbeg', 'kend'] : ['0i', `${kk}i`];
  if (split) l.line(`let kbeg = ks * ${chunk}i;`).line(`let kend = min(kbeg + ${chunk}i, ${kk}i);`);
  l.open(`for (var kb = ${from}; kb < ${to}; kb += ${bk}i)`);
  // Each thread's elements of the slab: the step (clamped to K for the load, 0 past the end).
  const em = new ExprEmitter(mod.bindingNames, 'tl_', hoisted);
  const steps: string[] = [];
  const stores: string[] = [];
  const stage = (list: readonly Expr[], p: string, rows: number, arr: string) =>
    list.forEach((e, q) => {
      steps.push(`let ${p}q${q} = kb + ${p}k${q};`, `let ${p}c${q} = min(${p}q${q}, ${kk - 1}i);`);
      const v = em.emit(substitute(e, new Map([['ki', ivar(`${p}c${q}`)]])));
      stores.push(`let ${p}s${q} = ${p}k${q} * ${rows}i + ${p}l${q};`);
      stores.push(`${arr}[${p}s${q} >> 2u][${p}s${q} & 3i] = select(0.0, ${v}, ${p}q${q} < ${to});`);
    });
  stage(aLoads, 'a', bm, 'sa');
  stage(bLoads, 'b', bn, 'sb');
  mod.usesPow ||= em.usesPow;
  mod.usesRng ||= em.usesRng;
  for (const x of [...steps, ...em.lets, ...stores]) l.line(x);
  l.line('workgroupBarrier();');
  l.open(`for (var kk = 0i; kk < ${bk}i; kk++)`);
  for (let i = 0; i < tm / 4; i++) l.line(`let a${i} = sa[kk * ${bm / 4}i + i32(lid3.y) * ${tm / 4}i + ${i}i];`);
  for (let g = 0; g < g4; g++) l.line(`let b${g} = sb[kk * ${bn / 4}i + i32(lid3.x) * ${g4}i + ${g}i];`);
  const C = 'xyzw';
  for (let i = 0; i < tm; i++) for (let g = 0; g < g4; g++) l.line(`${acc(i, g)} = fma(vec4<f32>(a${i >> 2}.${C[i & 3]}), b${g}, ${acc(i, g)});`);
  l.close();
  l.line('workgroupBarrier();');
  l.close();
  const accOf = (e: number) => `${acc(Math.floor(e / tn), Math.floor((e % tn) / 4))}.${C[e % 4]}`;
  return finish(k, s, mod, l, hoisted, { tm, tn, from, to, accOf }, [Math.ceil(n / bn), Math.ceil(m / bm)], ctx);
}

/**
 * The end of every matmul variant: the side sum (the column sums of B, by the threads of the first
 * rows, in a loop of their own), then the stores, one copy of the epilogue in a loop over the
 * thread's tile (the accumulators copied to an array; fused optimizer updates would otherwise be
 * emitted tm x tn times); split, the partial tiles (and partial side sums) go to scratch and a
 * second kernel sums them and finalizes (splitSum).
 */
function finish(
  k: MatmulKernel, s: SplitPlan, mod: Module, l: Lines, hoisted: ExprEmitter,
  tile: { tm: number; tn: number; from: string; to: string; accOf: (e: number) => string }, gxy: readonly [number, number], ctx: EmitContext,
): Dispatch[] {
  const body = k.body;
  const { m, n, batch, side } = body;
  const { tm, tn, from, to } = tile;
  const { split, splits, total } = s;
  const bNames = vars(batch.length, 'z').map((v) => (v as { name: string }).name);
  if (side) {
    // Summed beside the products by every thread, the column sums cost 20% of a weight gradient.
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
  l.line(`var cc = array<f32, ${tm * tn}>(${Array.from({ length: tm * tn }, (_, e) => tile.accOf(e)).join(', ')});`);
  l.open(`for (var e = 0i; e < ${tm * tn}i; e++)`);
  l.line(`let r = m0 + e / ${tn}i;`).line(`let q = n0 + e % ${tn}i;`);
  l.open(`if (r < ${m}i && q < ${n}i)`);
  const coords = [...bNames, 'r', 'q'];
  if (split) l.line(`out[(gz * ${m}i + r) * ${n}i + q] = cc[e];`);
  else storeAll(l, k, `dst(${coords.join(', ')})`, `fin(${['cc[e]', ...coords].join(', ')})`, coords);
  l.close().close();
  l.close();
  const [gx, gy] = gxy;
  const gz = numel(batch) * splits;
  const max = ctx.limits.maxComputeWorkgroupsPerDimension;
  if (gx > max || gy > max || gz > max) internal(`matmul grid ${gx}x${gy}x${gz} exceeds ${max} per dimension`);
  const kind = `matmul${side ? '+colsum' : ''}`;
  const outputs = matmulOutputs(k, body);
  const wgsl = header(mod, ctx.inputTypes, split ? 'f32' : k.dtype, split ? [] : outputs.types) + '\n' + l.text();
  if (!split) return [{ wgsl, inputs: k.inputs, output: k.output, extraOutputs: outputs.refs, workgroups: [gx, gy, gz], label: `${ctx.label} ${kind}` }];
  const partials = ctx.scratch((total + (side ? n : 0)) * splits * 4);
  return [
    { wgsl, inputs: k.inputs, output: { kind: 'scratch', id: partials }, extraOutputs: [], workgroups: [gx, gy, gz], label: `${ctx.label} ${kind}(split-k 1/2)` },
    splitSum(k, body, ctx.inputTypes, ctx.limits, splits, partials, `${ctx.label} ${kind}(split-k 2/2)`),
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
