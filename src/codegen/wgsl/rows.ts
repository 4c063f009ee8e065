/**
 * @file Row kernels (softmax, layernorm and their gradients): each row computes its stages (row
 * reductions, row values) and then its elements. Three variants: one thread per row (`serial`),
 * one workgroup per row combining each stage in a tree in workgroup memory (`workgroup`), or, where
 * the device has `subgroups`, one workgroup per row combining each stage through subgroup
 * operations and one barrier (`subgroup`, see subgroup.ts). The reductions' rule (`serialSums`:
 * short rows or very many rows go serial) names the default.
 */
import { tvar } from '../../passes/expr.js';
import { serialSums, ROW_WG } from './reduce.js';
import {
  addExtras, addFn, bindingName, combineText, coordLets, extraRefs, extraTypes, grid, header, initText, Lines, LINEAR, MAIN_SIG, numel,
  storeAll, vars, wgslType, type Dispatch, type EmitContext, type KernelOf, type Module, type VariantTable,
} from './common.js';
import { SUBGROUP_WG, subgroupArray, subgroupCombine, subgroupPrelude } from './subgroup.js';

type RowsKernel = KernelOf<'rows'>;

const rowsShape = (k: RowsKernel) => ({ rows: numel(k.body.shape.slice(0, k.body.outer)), inner: numel(k.body.shape.slice(k.body.outer)) });

export const ROWS_VARIANTS: VariantTable<'rows'> = {
  variants: [
    { name: 'serial', fits: () => true, emit: (k, ctx) => [emitRows(k, 'serial', ctx)] },
    { name: 'workgroup', fits: () => true, emit: (k, ctx) => [emitRows(k, 'workgroup', ctx)] },
    { name: 'subgroup', fits: (_, limits) => limits.subgroups === true, emit: (k, ctx) => [emitRows(k, 'subgroup', ctx)] },
  ],
  // Short rows, or very many rows: one thread per row, no workgroup memory; long rows: one workgroup per row.
  preferred: (k) => {
    const { rows, inner } = rowsShape(k);
    return serialSums(rows, inner) ? 'serial' : 'workgroup';
  },
};

/**
 * One workgroup per row: each stage strides its threads over the row and combines them with a tree
 * in workgroup memory, or through subgroups (every thread then holds the stage's value), then the
 * threads stride over the row again to write each element. Stage values other kernels read are
 * stored by thread 0. Serial: one thread per row does all of it.
 */
function emitRows(k: RowsKernel, how: 'serial' | 'workgroup' | 'subgroup', ctx: EmitContext): Dispatch {
  const serial = how === 'serial';
  const sub = how === 'subgroup';
  const wg = sub ? SUBGROUP_WG : ROW_WG;
  const { inputTypes, limits, label } = ctx;
  const body = k.body;
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
  const mod: Module = { fns: [], bindingNames: bindingName, usesPow: false, ...(sub ? { enables: ['subgroups'] as const } : {}) };
  body.stages.forEach((st, j) => {
    if (st.reduce) addFn(mod, `body${j}`, [...ov, ...sv.slice(0, j)], st.reduce.body);
    addFn(mod, `stage${j}`, [...(st.reduce ? [tvar('acc', st.reduce.accType)] : []), ...ov.slice(0, body.outer), ...sv.slice(0, j)], st.value);
  });
  addFn(mod, 'value', [...ov, ...sv], body.expr);
  addExtras(mod, k, ov);
  const accTypes = how !== 'workgroup' ? [] : [...new Set(body.stages.flatMap((st) => (st.reduce ? [st.reduce.accType] : [])))];
  // Subgroup combines alternate between two arrays per type: the barrier of each combine orders
  // the reads of the one before it before the writes of the one after it, so none needs a second.
  const sgArrays = new Map<string, 'f32' | 'i32'>();
  let combines = 0;
  const sgArrayOf = body.stages.map((st) => {
    if (!sub || !st.reduce) return '';
    const name = `sg_${st.reduce.accType}_${combines++ % 2}`;
    sgArrays.set(name, st.reduce.accType);
    return name;
  });
  const l = new Lines();
  for (const t of accTypes) l.line(`var<workgroup> red_${t}: array<${wgslType(t)}, ${ROW_WG}>;`);
  for (const [name, t] of sgArrays) l.line(subgroupArray(name, t));
  l.line('').open(MAIN_SIG(wg));
  if (serial) {
    l.line(`let row = ${LINEAR(ROW_WG)};`).line(`if (row >= ${rows}i) { return; }`);
  } else {
    // The row index is the same for the whole workgroup, so returning early keeps barriers uniform.
    l.line('let row = i32(wid.y * nwg.x + wid.x);').line(`if (row >= ${rows}i) { return; }`);
  }
  coordLets(l, 'row', outerShape, 'o');
  if (sub) subgroupPrelude(l);
  const first = serial ? '0i' : 'i32(lid)';
  const stride = serial ? '1i' : `${wg}i`;
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
      if (sub) {
        subgroupCombine(l, combine, t, `acc${j}`, sgArrayOf[j]!, `tot${j}`);
        l.line(`let s${j} = stage${j}(${[`tot${j}`, ...outerNames, ...earlier].join(', ')});`);
        if (st.out) l.line(`if (lid == 0u) { out${storeIndex++}[row] = s${j}; }`);
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
    label: `${label} rows(${how})`,
  };
}
