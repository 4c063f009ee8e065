/**
 * @file The verifier: runs after every pass in tests. It checks that every input refers to an
 * earlier node (so the graph is acyclic and in execution order), re-runs every shape rule and
 * compares with the stored type, and checks outputs and updates. Errors name the node in printer
 * form.
 */
import { fmtType, typeEq } from './dtype.js';
import { AdjointError, VerifyError } from './errors.js';
import type { Graph } from './graph.js';
import { isOp } from './ops.js';
import { printNode } from './printer.js';
import { inferType } from './shape.js';

export function verify(g: Graph, after = 'graph'): void {
  const names = new Set<string>();
  g.nodes.forEach((n, i) => {
    const where = () => `${after}: node ${printNode(n, i)}`;
    if (!isOp(n.op)) throw new VerifyError(`${where()}: unknown op ${JSON.stringify(n.op)}`);
    for (const x of n.inputs) {
      if (!Number.isInteger(x) || x < 0 || x >= i) throw new VerifyError(`${where()}: input ${x} is not an earlier node`);
    }
    if (n.op === 'input' || n.op === 'param' || n.op === 'state') {
      if (names.has(n.attrs.name)) throw new VerifyError(`${where()}: name "${n.attrs.name}" is used twice`);
      names.add(n.attrs.name);
    }
    let t;
    try {
      t = inferType(n.op, n.attrs as never, n.inputs.map((x) => g.nodes[x]!.type));
    } catch (e) {
      if (e instanceof AdjointError) throw new VerifyError(`${where()}: ${e.message}`);
      throw e;
    }
    if (!typeEq(t, n.type)) throw new VerifyError(`${where()}: stored type ${fmtType(n.type)} but the rule gives ${fmtType(t)}`);
  });
  const valid = (v: number) => Number.isInteger(v) && v >= 0 && v < g.nodes.length;
  const outNames = new Set<string>();
  for (const o of g.outputs) {
    if (!valid(o.value)) throw new VerifyError(`${after}: output "${o.name}" refers to no node`);
    if (outNames.has(o.name)) throw new VerifyError(`${after}: output "${o.name}" is defined twice`);
    outNames.add(o.name);
  }
  const targets = new Set<string>();
  for (const u of g.updates) {
    if (!valid(u.value)) throw new VerifyError(`${after}: update ${JSON.stringify(u.target)} <- ${u.value}: refers to no node`);
    const v = g.nodes[u.value]!;
    const where = `${after}: update ${JSON.stringify(u.target)} <- ${printNode(v, u.value)}`;
    const ti = g.nodes.findIndex((n) => (n.op === 'param' || n.op === 'state') && n.attrs.name === u.target);
    const t = g.nodes[ti];
    if (!t) throw new VerifyError(`${where}: the target is not a param or state`);
    if (targets.has(u.target)) throw new VerifyError(`${where}: "${u.target}" is updated twice`);
    targets.add(u.target);
    if (!typeEq(v.type, t.type)) throw new VerifyError(`${where}: type ${fmtType(v.type)} does not match ${printNode(t, ti)}`);
  }
}
