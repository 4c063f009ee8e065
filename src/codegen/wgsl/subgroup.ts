/**
 * @file The workgroup-wide combine of the subgroup variants (reductions and row kernels): each
 * invocation holds a strided partial; `subgroupAdd` / `subgroupMax` combines the partials of a
 * subgroup, one invocation per subgroup (`subgroupElect`) leaves that subgroup's total in a
 * workgroup array, and after the one barrier every subgroup combines the array again, its
 * invocations striding over it, so that every invocation holds the workgroup's total.
 *
 * Nothing assumes a subgroup size or layout: WGSL gives neither a subgroup's index nor a promise
 * that subgroups are full or made of consecutive invocations (sizes seen here: 4 on SwiftShader,
 * 8 on lavapipe; GPUs 16 to 128, larger than a workgroup of 64 on some). So the leaders write at
 * their own invocation's index (the other slots get the identity) and the second pass strides by
 * the count of active invocations of the subgroup (`subgroupAdd(1u)`), starting at each one's rank
 * among them (`subgroupExclusiveAdd(1u)`): the subgroup covers the whole array whatever its size
 * or shape. Every subgroup operation is in uniform control flow: the kernels return early only by
 * workgroup, and the strided loops close before each subgroup operation.
 */
import type { Combine } from '../../passes/kernel.js';
import type { ScalarType } from '../../passes/expr.js';
import { combineText, initText, wgslType, type Lines } from './common.js';

/**
 * Workgroup size of the subgroup variants. Fixed: sized to the reduction instead (32 to 256, the
 * power of two covering it) measured slower on both CPU adapters (npm run bench:matmul, 2026-12-02),
 * as the second pass reads SUBGROUP_WG / sg_n slots in every invocation, SUBGROUP_WG^2 / sg_n per
 * workgroup: 16,384 reads at 256 on SwiftShader (subgroups of 4).
 */
export const SUBGROUP_WG = 64;

const subgroupOp = (c: Combine) => (c === 'sum' ? 'subgroupAdd' : 'subgroupMax');

/** Declares a workgroup array of the combine, one slot per invocation. */
export const subgroupArray = (name: string, t: ScalarType) => `var<workgroup> ${name}: array<${wgslType(t)}, ${SUBGROUP_WG}>;`;

/**
 * `sg_rank` (this invocation's rank among the active invocations of its subgroup) and `sg_n` (their
 * count), once per kernel, in uniform control flow.
 */
export function subgroupPrelude(l: Lines): void {
  l.line('let sg_rank = subgroupExclusiveAdd(1u);').line('let sg_n = subgroupAdd(1u);');
}

/**
 * Combines `acc` of every invocation of the workgroup through workgroup array `arr` (one barrier)
 * and binds the total, in every invocation, to `let <total>`. A later combine through the same
 * array needs a barrier between (another combine's, through another array, serves).
 */
export function subgroupCombine(l: Lines, c: Combine, t: ScalarType, acc: string, arr: string, total: string): void {
  const id = initText(c, t);
  l.line(`${arr}[lid] = select(${id}, ${subgroupOp(c)}(${acc}), subgroupElect());`).line('workgroupBarrier();');
  l.line(`var ${total}_part: ${wgslType(t)} = ${id};`);
  l.open(`for (var j = sg_rank; j < ${SUBGROUP_WG}u; j += sg_n)`).line(`${total}_part = ${combineText(c, `${total}_part`, `${arr}[j]`)};`).close();
  l.line(`let ${total} = ${subgroupOp(c)}(${total}_part);`);
}
