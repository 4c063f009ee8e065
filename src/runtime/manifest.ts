/**
 * @file Validation of an artifact's manifest, with zod's small build (`zod/mini`) so the browser
 * bundle stays small: the shape of every field, then the cross-references a GPU would otherwise
 * trip over (shader indices, arena ids, regions inside their arena, offsets aligned). Every error
 * names the field, e.g. `programs.train.dispatches[3].bindings[1]: region ends past arena 2`.
 */
import * as z from 'zod/mini';
import { ArtifactError } from '../ir/errors.js';
import type { Artifact } from './artifact.js';

const nat = z.number().check(z.int(), z.minimum(0));
const pos = z.number().check(z.int(), z.minimum(1));
const dtype = z.enum(['f32', 'i32']);
const region = z.object({ arena: nat, offset: nat, bytes: pos });
const init = z.union([
  z.object({ kind: z.literal('zeros') }),
  z.object({ kind: z.literal('ones') }),
  z.object({ kind: z.literal('constant'), value: z.number() }),
  z.object({ kind: z.literal('uniform'), low: z.number(), high: z.number() }),
  z.object({ kind: z.literal('normal'), std: z.number() }),
  z.object({ kind: z.literal('glorot_uniform') }),
  z.object({ kind: z.literal('he_normal') }),
  z.object({ kind: z.literal('seed') }),
]);
const slot = z.object({ name: z.string(), dtype, shape: z.array(pos), region });
const persistent = z.object({ name: z.string(), dtype, shape: z.array(pos), region, init });

/** One program of a manifest, with `shaders` as file names (or texts, once read). */
export const programSchema = z.object({
  format: z.literal('adjoint-artifact'),
  version: z.literal(1),
  name: z.string(),
  compiler: z.optional(z.string()),
  requirements: z.object({
    limits: z.object({
      maxStorageBuffersPerShaderStage: pos,
      maxStorageBufferBindingSize: pos,
      maxBufferSize: pos,
      maxComputeWorkgroupsPerDimension: pos,
      maxComputeInvocationsPerWorkgroup: pos,
      maxComputeWorkgroupStorageSize: pos,
      minStorageBufferOffsetAlignment: pos,
      subgroups: z.optional(z.boolean()),
      subgroupMinSize: z.optional(z.number().check(z.int(), z.minimum(4))),
    }),
    features: z.array(z.string()),
  }),
  shaders: z.array(z.string()),
  arenas: z.array(z.object({ id: nat, bytes: pos, role: z.enum(['input', 'param', 'state', 'temp', 'scratch']) })),
  inputs: z.array(slot),
  outputs: z.array(slot),
  params: z.array(persistent),
  state: z.array(persistent),
  dispatches: z.array(z.object({
    shader: nat, bindings: z.array(region), outputs: pos, workgroups: z.tuple([pos, pos, pos]), label: z.string(),
    variants: z.optional(z.array(z.object({ name: z.string(), shader: nat, workgroups: z.tuple([pos, pos, pos]), quick: z.optional(z.literal(true)) }))),
  })),
  copies: z.array(z.object({ from: region, to: region })),
  loss: z.optional(z.string()),
  frees: z.array(z.object({ after: nat, regions: z.array(region) })),
  memory: z.object({ naiveBytes: nat, lowerBound: nat, plannedBytes: nat }),
});

const path = (p: readonly PropertyKey[]) => p.map((k) => (typeof k === 'number' ? `[${k}]` : `.${String(k)}`)).join('').replace(/^\./, '');

/** Checks a program's shape and cross-references; `where` prefixes every error. */
export function validateProgram(json: unknown, where: string): Artifact {
  const r = programSchema.safeParse(json);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new ArtifactError(`${where}${i.path.length ? '.' + path(i.path) : ''}: ${i.code === 'invalid_type' ? `expected ${(i as { expected?: string }).expected}` : i.message}`);
  }
  const a = r.data as Artifact;
  const fail = (field: string, msg: string): never => {
    throw new ArtifactError(`${where}.${field}: ${msg}`);
  };
  a.arenas.forEach((x, i) => x.id !== i && fail(`arenas[${i}].id`, `is ${x.id}, expected ${i}`));
  const checkRegion = (r: { arena: number; offset: number; bytes: number }, field: string) => {
    const arena = a.arenas[r.arena];
    if (!arena) return fail(field, `arena ${r.arena} does not exist`);
    if (r.offset % a.requirements.limits.minStorageBufferOffsetAlignment !== 0) fail(field, `offset ${r.offset} is not aligned`);
    if (r.offset + r.bytes > arena.bytes) fail(field, `region ends past arena ${r.arena}`);
  };
  a.dispatches.forEach((d, i) => {
    if (d.shader >= a.shaders.length) fail(`dispatches[${i}].shader`, `shader ${d.shader} does not exist`);
    if (d.bindings.length < d.outputs) fail(`dispatches[${i}].bindings`, `fewer bindings than its ${d.outputs} outputs`);
    d.bindings.forEach((b, j) => checkRegion(b, `dispatches[${i}].bindings[${j}]`));
    if (d.variants) {
      const v0 = d.variants[0];
      if (!v0) fail(`dispatches[${i}].variants`, 'is empty');
      else if (v0.shader !== d.shader || v0.workgroups.some((w, j) => w !== d.workgroups[j])) fail(`dispatches[${i}].variants[0]`, 'is not the default');
      const names = new Set<string>();
      d.variants.forEach((v, j) => {
        if (v.shader >= a.shaders.length) fail(`dispatches[${i}].variants[${j}].shader`, `shader ${v.shader} does not exist`);
        if (names.has(v.name)) fail(`dispatches[${i}].variants[${j}].name`, `"${v.name}" appears twice`);
        names.add(v.name);
      });
      if (d.variants.filter((v) => v.quick).length > 1) fail(`dispatches[${i}].variants`, 'has more than one quick variant');
    }
  });
  for (const [k, list] of [['inputs', a.inputs], ['outputs', a.outputs], ['params', a.params], ['state', a.state]] as const) {
    list.forEach((s, i) => {
      checkRegion(s.region, `${k}[${i}].region`);
      if (s.region.bytes < s.shape.reduce((p, q) => p * q, 1) * 4) fail(`${k}[${i}].region`, `too small for ${s.dtype}[${s.shape.join(',')}]`);
    });
  }
  a.copies.forEach((c, i) => {
    checkRegion(c.from, `copies[${i}].from`);
    checkRegion(c.to, `copies[${i}].to`);
    if (c.from.bytes !== c.to.bytes) fail(`copies[${i}]`, 'sizes differ');
  });
  return a;
}
