/**
 * @file Which matmuls are offered the window variants (src/codegen/wgsl/matmul.ts, windowPlan): the
 * implicit-GEMM convolutions, whose reads a thread's aligned positions and taps share, and not a
 * batched matmul whose K or rows a reshape split (attention's heads: extents, but every read its
 * own; on lavapipe such a window was a 75 KB shader taking 20-49 s to compile, for no speed).
 */
import { describe, expect, it } from 'vitest';
import { emitArtifact } from '../../src/compile.js';
import { GraphBuilder } from '../../src/ir/builder.js';
import type { Graph } from '../../src/ir/graph.js';

function graph(build: (b: GraphBuilder) => void): Graph {
  const b = new GraphBuilder();
  build(b);
  return b.build();
}

/** Per matmul dispatch: its label and the names of its window variants. */
function windows(g: Graph, subgroups: boolean): { label: string; names: string[] }[] {
  const a = emitArtifact(g, { limits: { subgroups, subgroupMinSize: 4 } });
  return a.dispatches
    .filter((d) => (d.label ?? '').includes(' matmul'))
    .map((d) => ({ label: d.label ?? '', names: (d.variants ?? []).map((v) => v.name).filter((n) => n.includes('window')) }));
}

describe('window variants', () => {
  it('a 5x5 convolution over 28x28 is offered them', () => {
    const g = graph((b) => {
      const x = b.input('x', [4, 1, 28, 28]);
      const y = b.conv2d(x, b.input('w', [6, 1, 5, 5]), { stride: [1, 1], padding: [2, 2], dilation: [1, 1] });
      b.output('y', y);
    });
    for (const subgroups of [false, true]) {
      const ws = windows(g, subgroups);
      expect(ws).toHaveLength(1);
      expect(ws[0]!.names).toContain('window');
      if (subgroups) expect(ws[0]!.names).toContain('subgroupcolswindow');
    }
  });

  it('attention over split heads (reshape, transpose, batched matmuls) is not', () => {
    // [b, t, h*d] -> [b, h, t, d]: q k^T over d, then the weights times v, back to [b, t, h*d], projected.
    const g = graph((b) => {
      const heads = (name: string) => b.transpose(b.reshape(b.input(name, [2, 64, 128]), [2, 64, 4, 32]), [0, 2, 1, 3]);
      const [q, k, v] = [heads('q'), heads('k'), heads('v')];
      const att = b.softmax(b.matmul(q, b.transpose(k, [0, 1, 3, 2])), -1);
      const o = b.reshape(b.transpose(b.matmul(att, v), [0, 2, 1, 3]), [128, 128]);
      b.output('y', b.matmul(o, b.input('wo', [128, 128])));
    });
    for (const subgroups of [false, true]) {
      const ws = windows(g, subgroups);
      expect(ws.length).toBeGreaterThanOrEqual(3);
      for (const w of ws) expect(w.names, w.label).toEqual([]);
    }
  });
});
