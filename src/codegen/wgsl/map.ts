/**
 * @file Elementwise kernels, three variants: `thread`, one thread per output element (quick: the
 * smallest shader); `row4`, four neighbours of one row per thread (the last dimension a multiple of
 * 4: the lanes share the other coordinates); `flat4`, four consecutive elements per thread, each
 * lane finding its own coordinates (any size a multiple of 4). The four-lane variants store each
 * output as one vec4. Measured on the LeNet step's max-pool backward maps (301,056 and 102,400
 * elements), 2026-12-02: lavapipe 3.3 -> 1.4 ms (row4) and 1.7 ms (flat4), SwiftShader 12.4 -> 6.5
 * and 8.4 ms; so a four-lane variant is the default where one fits, `thread` runs until tuning.
 */
import { add, int, ivar, mul, substitute, tvar, type Expr } from '../../passes/expr.js';
import { simplifyIndices, type Range } from '../ranges.js';
import {
  addExtras, addFn, bindingName, coordLets, ExprEmitter, extraRefs, extraTypes, grid, header, Lines, LINEAR, MAIN_SIG, numel, storeAll, vars, WG, wgslType,
  type Dispatch, type EmitContext, type KernelOf, type Module, type Variant, type VariantTable,
} from './common.js';

/** The names of `vars(n, p)`: p0, p1, … */
const names = (n: number, p: string) => Array.from({ length: n }, (_, i) => `${p}${i}`);

function emitMap(k: KernelOf<'map'>, ctx: EmitContext): Dispatch[] {
  const body = k.body;
  const mod: Module = { fns: [], bindingNames: bindingName, usesPow: false };
  const n = numel(body.shape);
  addFn(mod, 'value', vars(body.shape.length, 'o'), body.expr);
  const l = new Lines().open(MAIN_SIG(WG));
  l.line(`let i = ${LINEAR(WG)};`).line(`if (i >= ${n}) { return; }`);
  coordLets(l, 'i', body.shape, 'o');
  const oNames = names(body.shape.length, 'o');
  addExtras(mod, k, vars(body.shape.length, 'o'));
  storeAll(l, k, 'i', `value(${oNames.join(', ')})`, oNames);
  l.close();
  return [{ wgsl: header(mod, ctx.inputTypes, k.dtype, extraTypes(k)) + '\n' + l.text(), inputs: k.inputs, output: k.output, extraOutputs: extraRefs(k), workgroups: grid(Math.ceil(n / WG), ctx.limits), label: `${ctx.label} map` }];
}

const LANES = 4;

/**
 * Four elements per thread from flat index i = 4t: `row`, the coordinates of i once and the last
 * one stepped per lane (the last dimension a multiple of 4, so the lanes stay in one row); else
 * each lane's own coordinates. Every output (the main one and the further ones) is stored as one
 * vec4; an in-place read of an output picks its component.
 */
function emitLanes(k: KernelOf<'map'>, ctx: EmitContext, row: boolean): Dispatch[] {
  const shape = k.body.shape;
  const r = shape.length;
  const n = numel(shape);
  const outs = [-1, ...k.extras.map((_, i) => -2 - i)];
  const mod: Module = { fns: [], bindingNames: bindingName, usesPow: false, vec4: new Set(outs) };
  addFn(mod, 'value', vars(r, 'o'), k.body.expr);
  addExtras(mod, k, vars(r, 'o'));
  const l = new Lines().open(MAIN_SIG(WG));
  l.line(`let i = ${LINEAR(WG)} * ${LANES}i;`).line(`if (i >= ${n}) { return; }`);
  const lanes: string[][] = [];
  if (row) {
    coordLets(l, 'i', shape, 'o');
    const o = names(r, 'o');
    for (let j = 0; j < LANES; j++) lanes.push([...o.slice(0, -1), j ? `${o[r - 1]} + ${j}i` : o[r - 1]!]);
  } else {
    for (let j = 0; j < LANES; j++) {
      l.line(`let i${j} = i + ${j}i;`);
      coordLets(l, `i${j}`, shape, `l${j}o`);
      lanes.push(names(r, `l${j}o`));
    }
  }
  const types = [k.dtype, ...extraTypes(k)];
  types.forEach((_, e) => {
    for (let j = 0; j < LANES; j++) {
      const held = Array.from({ length: e }, (__, h) => `v${h}_${j}`);
      l.line(`let v${e}_${j} = ${e ? `x${e}` : 'value'}(${[...held, ...lanes[j]!].join(', ')});`);
    }
  });
  types.forEach((t, e) => {
    const vs = Array.from({ length: LANES }, (_, j) => `v${e}_${j}`);
    l.line(`${bindingName(outs[e]!)}[i / ${LANES}i] = vec4<${wgslType(t)}>(${vs.join(', ')});`);
  });
  l.close();
  return [{ wgsl: header(mod, ctx.inputTypes, k.dtype, extraTypes(k)) + '\n' + l.text(), inputs: k.inputs, output: k.output, extraOutputs: extraRefs(k), workgroups: grid(Math.ceil(n / LANES / WG), ctx.limits), label: `${ctx.label} map` }];
}

/**
 * `row4` inlined: the four lanes' expressions with the last coordinate 4q + j (j = 0..3, q of the
 * thread), simplified knowing that (ranges.ts), and emitted by one emitter, so that what the lanes
 * share is computed once. Where the last coordinate is split again (a max-pool gradient reads
 * dy[o / 2] where o % 2 == 0), its parity is a constant per lane: the terms a lane never takes
 * fold away with their reads.
 */
function emitRowFold(k: KernelOf<'map'>, ctx: EmitContext): Dispatch[] {
  const shape = k.body.shape;
  const r = shape.length;
  const n = numel(shape);
  const outs = [-1, ...k.extras.map((_, i) => -2 - i)];
  const mod: Module = { fns: [], bindingNames: bindingName, usesPow: false, vec4: new Set(outs) };
  const l = new Lines().open(MAIN_SIG(WG));
  l.line(`let i = ${LINEAR(WG)} * ${LANES}i;`).line(`if (i >= ${n}) { return; }`);
  coordLets(l, 'i', shape, 'o');
  const last = `o${r - 1}`;
  l.line(`let oq = ${last} / ${LANES}i;`);
  const ranges = new Map<string, Range>(shape.map((d, a) => [`o${a}`, [0, d - 1]]));
  ranges.set('oq', [0, shape[r - 1]! / LANES - 1]);
  const em = new ExprEmitter(mod.bindingNames, 't', undefined, mod.vec4);
  const types = [k.dtype, ...extraTypes(k)];
  const exprs = [k.body.expr, ...k.extras.map((x) => x.expr)];
  types.forEach((t, e) => {
    for (let j = 0; j < LANES; j++) {
      const to = new Map<string, Expr>([[last, add(mul(ivar('oq'), int(LANES)), int(j))]]);
      for (let h = 0; h < e; h++) to.set(`v${h}`, tvar(`v${h}_${j}`, types[h]!));
      em.lets.push(`let v${e}_${j} = ${em.emit(simplifyIndices(substitute(exprs[e]!, to), ranges))};`);
    }
  });
  mod.usesPow ||= em.usesPow;
  mod.usesRng ||= em.usesRng;
  for (const st of em.lets) l.line(st);
  types.forEach((t, e) => {
    const vs = Array.from({ length: LANES }, (_, j) => `v${e}_${j}`);
    l.line(`${bindingName(outs[e]!)}[i / ${LANES}i] = vec4<${wgslType(t)}>(${vs.join(', ')});`);
  });
  l.close();
  return [{ wgsl: header(mod, ctx.inputTypes, k.dtype, extraTypes(k)) + '\n' + l.text(), inputs: k.inputs, output: k.output, extraOutputs: extraRefs(k), workgroups: grid(Math.ceil(n / LANES / WG), ctx.limits), label: `${ctx.label} map` }];
}

const rowFits = (k: KernelOf<'map'>) => k.body.shape.length > 0 && k.body.shape[k.body.shape.length - 1]! % LANES === 0;
const row4: Variant<'map'> = { name: 'row4', fits: rowFits, emit: (k, ctx) => emitLanes(k, ctx, true) };
const flat4: Variant<'map'> = { name: 'flat4', fits: (k) => !rowFits(k) && numel(k.body.shape) % LANES === 0, emit: (k, ctx) => emitLanes(k, ctx, false) };

export const MAP_VARIANTS: VariantTable<'map'> = {
  variants: [{ name: 'thread', quick: true, fits: () => true, emit: emitMap }, row4, flat4, { name: 'row4fold', fits: rowFits, emit: emitRowFold }],
  preferred: (k, limits) => [row4, flat4].find((v) => v.fits(k, limits))?.name ?? 'thread',
};
