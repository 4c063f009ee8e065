/**
 * @file Elementwise kernels: one thread per output element, 64 threads per workgroup. One variant.
 */
import {
  addExtras, addFn, bindingName, coordLets, extraRefs, extraTypes, grid, header, Lines, LINEAR, MAIN_SIG, numel, storeAll, vars, WG,
  type Dispatch, type EmitContext, type KernelOf, type Module, type VariantTable,
} from './common.js';

function emitMap(k: KernelOf<'map'>, ctx: EmitContext): Dispatch[] {
  const body = k.body;
  const mod: Module = { fns: [], bindingNames: bindingName, usesPow: false };
  const n = numel(body.shape);
  addFn(mod, 'value', vars(body.shape.length, 'o'), body.expr);
  const l = new Lines().open(MAIN_SIG(WG));
  l.line(`let i = ${LINEAR(WG)};`).line(`if (i >= ${n}) { return; }`);
  coordLets(l, 'i', body.shape, 'o');
  const oNames = vars(body.shape.length, 'o').map((v) => (v as { name: string }).name);
  addExtras(mod, k, vars(body.shape.length, 'o'));
  storeAll(l, k, 'i', `value(${oNames.join(', ')})`, oNames);
  l.close();
  return [{ wgsl: header(mod, ctx.inputTypes, k.dtype, extraTypes(k)) + '\n' + l.text(), inputs: k.inputs, output: k.output, extraOutputs: extraRefs(k), workgroups: grid(Math.ceil(n / WG), ctx.limits), label: `${ctx.label} map` }];
}

export const MAP_VARIANTS: VariantTable<'map'> = {
  variants: [{ name: 'thread', fits: () => true, emit: emitMap }],
};
