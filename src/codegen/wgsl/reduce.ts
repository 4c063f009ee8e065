/**
 * @file Reductions: one thread per output summing serially (`serial`), one workgroup per output
 * striding over the reduction and combining in a tree in workgroup memory (`workgroup`), the same
 * combining through subgroup operations and one barrier where the device has `subgroups`
 * (`subgroup`, see subgroup.ts), or, for very large reductions with few outputs, a two-kernel
 * split through partial results in scratch (`split`). The serial, workgroup and subgroup variants
 * fit the same kernels (the rule `serialSums`, measured on SwiftShader, names the default; the
 * tuner may pick another); the split stands alone, as it takes two dispatches.
 */
import type { Kernel } from '../../passes/kernel.js';
import { tvar } from '../../passes/expr.js';
import type { ScalarType } from '../../passes/expr.js';
import {
  addExtras, addFn, bindingName, coordLets, combineText, extraRefs, extraTypes, grid, header, initText, Lines, LINEAR, MAIN_SIG,
  numel, REDUCE_WG, storeAll, vars, WG, wgslType, type CodegenLimits, type Dispatch, type EmitContext, type KernelOf, type Module,
  type VariantTable,
} from './common.js';
import { SUBGROUP_WG, subgroupArray, subgroupCombine, subgroupPrelude } from './subgroup.js';

type ReduceKernel = KernelOf<'reduce'>;
type ReduceBody = ReduceKernel['body'];

/** With this many outputs (or rows), one thread each keeps the device busy without workgroup trees. */
const SERIAL_OUTPUTS = 2048;
/** The longest reduction a serial kernel of at least one workgroup's outputs sums per thread. */
const SERIAL_MAX_INNER = 4096;
/** Rows at most this long are computed by one thread each (barriers cost more than the loop). */
const SERIAL_ROW = 128;
/** Workgroup size of the row kernels. */
export const ROW_WG = 64;

/**
 * Whether `outputs` sums (or rows) of `terms` each are computed one thread per output, not one
 * workgroup tree each: when rows are short, outputs many, or there are a workgroup's worth of
 * outputs of moderate length (a bias or layernorm gradient over a batch: 128 sums of 512 take
 * 0.4 ms against 5 ms for a workgroup per sum, whose barriers are dear on SwiftShader).
 */
export const serialSums = (outputs: number, terms: number): boolean =>
  terms <= SERIAL_ROW || outputs >= SERIAL_OUTPUTS || (outputs >= ROW_WG && terms <= SERIAL_MAX_INNER);

/** Whether a reduction goes through partials in scratch: very long, few outputs, one binding to spare. */
function needsSplit(k: ReduceKernel, limits: CodegenLimits): boolean {
  const outs = numel(k.body.shape);
  const r = numel(k.body.rshape);
  return !serialSums(outs, r) && r >= 65536 && outs < 64 && k.inputs.length + 2 + k.extras.length <= limits.maxStorageBuffersPerShaderStage;
}

export const REDUCE_VARIANTS: VariantTable<'reduce'> = {
  variants: [
    { name: 'serial', fits: (k, limits) => !needsSplit(k, limits), emit: (k, ctx) => emitReduce(k, 'serial', ctx) },
    { name: 'workgroup', fits: (k, limits) => !needsSplit(k, limits), emit: (k, ctx) => emitReduce(k, 'workgroup', ctx) },
    { name: 'split', fits: needsSplit, emit: (k, ctx) => emitReduce(k, 'split', ctx) },
    { name: 'subgroup', fits: (k, limits) => limits.subgroups === true && !needsSplit(k, limits), emit: (k, ctx) => emitReduce(k, 'subgroup', ctx) },
  ],
  preferred: (k, limits) => (needsSplit(k, limits) ? 'split' : serialSums(numel(k.body.shape), numel(k.body.rshape)) ? 'serial' : 'workgroup'),
};

function emitReduce(k: ReduceKernel, how: 'serial' | 'workgroup' | 'split' | 'subgroup', ctx: EmitContext): Dispatch[] {
  const { inputTypes, limits, scratch, label } = ctx;
  const body = k.body;
  const outs = numel(body.shape);
  const r = numel(body.rshape);
  const ov = vars(body.shape.length, 'o');
  const rv = vars(body.rshape.length, 'r');
  const oNames = ov.map((v) => (v as { name: string }).name);
  const rNames = rv.map((v) => (v as { name: string }).name);
  const t = body.accType;
  const acc = tvar('acc', t);
  const mod: Module = { fns: [], bindingNames: bindingName, usesPow: false, ...(how === 'subgroup' ? { enables: ['subgroups'] as const } : {}) };
  addFn(mod, 'body', [...ov, ...rv], body.body);
  const split = how === 'split';
  // Phase 1 of a split writes partials only: its module has no finalize (which may read the outputs).
  if (!split) {
    addFn(mod, 'fin', [acc, ...ov], body.finalize);
    addExtras(mod, k, ov);
  }

  // Serial: one thread per output, nested loops over the reduction space.
  if (how === 'serial') {
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

  if (how === 'subgroup') {
    const wgsl = subgroupReduce(k, mod, body, t, inputTypes, outs, oNames, rNames);
    return [{ wgsl, inputs: k.inputs, output: k.output, extraOutputs: extraRefs(k), workgroups: grid(outs, limits), label: `${label} reduce(subgroup)` }];
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

/** One workgroup per output: threads stride over the reduction, then subgroups combine (subgroup.ts). */
function subgroupReduce(
  k: Kernel, mod: Module, body: ReduceBody, t: ScalarType, inputTypes: readonly ScalarType[], outs: number,
  oNames: readonly string[], rNames: readonly string[],
): string {
  const r = numel(body.rshape);
  const l = new Lines().line(subgroupArray('sg_part', t)).line('');
  l.open(MAIN_SIG(SUBGROUP_WG));
  // The output index is the workgroup's: returning early keeps the subgroup operations uniform.
  l.line('let i = i32(wid.y * nwg.x + wid.x);').line(`if (i >= ${outs}i) { return; }`);
  coordLets(l, 'i', body.shape, 'o');
  subgroupPrelude(l);
  l.line(`var acc: ${wgslType(t)} = ${initText(body.combine, t)};`);
  l.open(`for (var s = i32(lid); s < ${r}i; s += ${SUBGROUP_WG}i)`);
  coordLets(l, 's', body.rshape, 'r');
  l.line(`acc = ${combineText(body.combine, 'acc', `body(${[...oNames, ...rNames].join(', ')})`)};`);
  l.close();
  subgroupCombine(l, body.combine, t, 'acc', 'sg_part', 'total');
  l.open('if (lid == 0u)');
  storeAll(l, k, 'i', `fin(${['total', ...oNames].join(', ')})`, oNames);
  l.close().close();
  return header(mod, inputTypes, k.dtype, extraTypes(k)) + '\n' + l.text();
}
