/**
 * @file Round trips of the JSON model format: JSON -> graph -> JSON -> graph gives the same graph
 * (deep-equal and printed text), and the second trip gives the same JSON text. The models below
 * use every op the format accepts (checked). A graph built with the TypeScript builder equals the
 * graph loaded from the same model in JSON. The complete example in docs/model-format.md is loaded
 * here, so the documentation cannot drift from the loader.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  GraphBuilder, JSON_OPS, evaluate, loadModel, modelFromJson, modelToJson, printGraph, tensor, verify,
  type Model, type ModelJson,
} from '../../src/ir/index.js';

const mlp: ModelJson = {
  version: 1,
  name: 'mlp',
  inputs: [{ name: 'x', shape: [4, 6] }, { name: 'labels', shape: [4], dtype: 'i32' }],
  params: [
    { name: 'w1', shape: [6, 5], init: { kind: 'he_normal' } },
    { name: 'b1', shape: [5], init: { kind: 'zeros' } },
    { name: 'w2', shape: [5, 3] },
    { name: 'b2', shape: [3], init: { kind: 'constant', value: 0.1 } },
  ],
  nodes: [
    { name: 'h', op: 'linear', inputs: ['x', 'w1', 'b1'] },
    { name: 'a', op: 'relu', inputs: ['h'] },
    { name: 'logits', op: 'linear', inputs: ['a', 'w2', 'b2'] },
    { name: 'loss', op: 'softmax_cross_entropy', inputs: ['logits', 'labels'] },
    { name: 'probs', op: 'softmax', inputs: ['logits'] },
  ],
  outputs: { loss: 'loss', probs: 'probs' },
  loss: 'loss',
  optimizer: { kind: 'sgd', lr: 0.1, momentum: 0.9 },
};

const cnn: ModelJson = {
  version: 1,
  name: 'cnn',
  inputs: [{ name: 'img', shape: [2, 1, 8, 8] }, { name: 'digit', shape: [2], dtype: 'i32' }],
  params: [
    { name: 'k1', shape: [4, 1, 3, 3], init: { kind: 'he_normal' } },
    { name: 'k1b', shape: [4, 1, 1], init: { kind: 'zeros' } },
    { name: 'fc', shape: [16, 10], init: { kind: 'uniform', low: -0.05, high: 0.05 } },
  ],
  nodes: [
    { name: 'c1', op: 'conv2d', inputs: ['img', 'k1'], attrs: { padding: 1 } },
    { name: 'c1b', op: 'add', inputs: ['c1', 'k1b'] },
    { name: 'r1', op: 'relu', inputs: ['c1b'] },
    { name: 'p1', op: 'max_pool2d', inputs: ['r1'], attrs: { kernel: 2 } },
    { name: 'p2', op: 'avg_pool2d', inputs: ['p1'], attrs: { kernel: [2, 2], stride: [2, 2], padding: [0, 0] } },
    { name: 'flat', op: 'reshape', inputs: ['p2'], attrs: { shape: [2, 16] } },
    { name: 'logits', op: 'linear', inputs: ['flat', 'fc'] },
    { name: 'loss', op: 'softmax_cross_entropy', inputs: ['logits', 'digit'] },
  ],
  outputs: { loss: 'loss' },
  loss: 'loss',
  optimizer: { kind: 'adam', lr: 0.001, weightDecay: 0.01 },
};

/** A transformer-style block, nodes listed out of order, with anonymous (%) names. */
const block: ModelJson = {
  version: 1,
  name: 'block',
  inputs: [{ name: 'x', shape: [4, 8] }, { name: 'target', shape: [4, 8] }],
  params: [
    { name: 'g', shape: [8], init: { kind: 'ones' } },
    { name: 'beta', shape: [8], init: { kind: 'zeros' } },
    { name: 'wq', shape: [8, 8], init: { kind: 'normal', std: 0.02 } },
    { name: 'wk', shape: [8, 8], init: { kind: 'normal', std: 0.02 } },
    { name: 'wv', shape: [8, 8], init: { kind: 'normal', std: 0.02 } },
  ],
  nodes: [
    { name: 'loss', op: 'mse', inputs: ['out', 'target'] },
    { name: 'out', op: 'add', inputs: ['x', '%act'] },
    { name: '%act', op: 'gelu', inputs: ['att'] },
    { name: 'att', op: 'attention', inputs: ['q', 'k', 'v'], attrs: { causal: true } },
    { name: 'q', op: 'matmul', inputs: ['n', 'wq'] },
    { name: 'k', op: 'matmul', inputs: ['n', 'wk'] },
    { name: 'v', op: 'matmul', inputs: ['n', 'wv'] },
    { name: 'n', op: 'layernorm', inputs: ['x', 'g', 'beta'], attrs: { eps: 1e-6 } },
  ],
  outputs: { loss: 'loss', out: 'out' },
  loss: 'loss',
  optimizer: { kind: 'sgd', lr: 0.01 },
};

/** Every remaining op, with persistent state and updates. */
const everything: ModelJson = {
  version: 1,
  name: 'everything',
  inputs: [
    { name: 'x', shape: [2, 3] },
    { name: 'ids', shape: [4], dtype: 'i32' },
    { name: 'img', shape: [1, 2, 5, 5] },
  ],
  params: [
    { name: 'emb', shape: [6, 3], init: { kind: 'glorot_uniform' } },
    { name: 'k', shape: [3, 2, 3, 3], init: { kind: 'he_normal' } },
  ],
  state: [
    { name: 'step', shape: [], dtype: 'i32' },
    { name: 'avg', shape: [2, 3], init: { kind: 'constant', value: 1 } },
  ],
  nodes: [
    { name: 'u1', op: 'neg', inputs: ['x'] },
    { name: 'u2', op: 'abs', inputs: ['u1'] },
    { name: 'u3', op: 'exp', inputs: ['u2'] },
    { name: 'u4', op: 'log', inputs: ['u3'] },
    { name: 'u5', op: 'sqrt', inputs: ['u3'] },
    { name: 'u6', op: 'rsqrt', inputs: ['u3'] },
    { name: 'u7', op: 'reciprocal', inputs: ['u3'] },
    { name: 'u8', op: 'tanh', inputs: ['u4'] },
    { name: 'u9', op: 'sigmoid', inputs: ['u5'] },
    { name: 'u10', op: 'relu', inputs: ['u6'] },
    { name: 'u11', op: 'sin', inputs: ['u7'] },
    { name: 'u12', op: 'cos', inputs: ['u8'] },
    { name: 'b1', op: 'add', inputs: ['u9', 'u10'] },
    { name: 'b2', op: 'sub', inputs: ['b1', 'u11'] },
    { name: 'b3', op: 'mul', inputs: ['b2', 'u12'] },
    { name: 'b4', op: 'div', inputs: ['b3', 'u3'] },
    { name: 'b5', op: 'max', inputs: ['b4', 'x'] },
    { name: 'b6', op: 'min', inputs: ['b5', 'u2'] },
    { name: 'b7', op: 'pow', inputs: ['u3', 'b6'] },
    { name: 'c1', op: 'eq', inputs: ['x', 'b7'] },
    { name: 'c2', op: 'ne', inputs: ['x', 'c1'] },
    { name: 'c3', op: 'lt', inputs: ['x', 'c2'] },
    { name: 'c4', op: 'le', inputs: ['x', 'c3'] },
    { name: 'c5', op: 'gt', inputs: ['x', 'c4'] },
    { name: 'c6', op: 'ge', inputs: ['x', 'c5'] },
    { name: 'zero', op: 'full', attrs: { value: 0 } },
    { name: 'w', op: 'where', inputs: ['c6', 'b7', 'zero'] },
    { name: 'sg', op: 'stop_gradient', inputs: ['w'] },
    { name: 'sq', op: 'square', inputs: ['sg'] },
    { name: 'r1', op: 'reduce_sum', inputs: ['sq'], attrs: { axes: 1, keepdims: true } },
    { name: 'r2', op: 'reduce_max', inputs: ['sq'], attrs: { axes: [0, 1] } },
    { name: 'r3', op: 'reduce_mean', inputs: ['sq'] },
    { name: 'pos', op: 'iota', attrs: { shape: [2, 3], axis: 1, dtype: 'f32' } },
    { name: 'ipos', op: 'cast', inputs: ['pos'], attrs: { dtype: 'i32' } },
    { name: 'rows', op: 'gather', inputs: ['emb', 'ids'] },
    { name: 'back', op: 'scatter_add', inputs: ['ids', 'rows'], attrs: { rows: 6 } },
    { name: 'oh', op: 'one_hot', inputs: ['ipos'], attrs: { depth: 3 } },
    { name: 'tr', op: 'transpose', inputs: ['oh'], attrs: { perm: [2, 0, 1] } },
    { name: 'bc', op: 'broadcast_to', inputs: ['r1'], attrs: { shape: [2, 3] } },
    { name: 'sl', op: 'slice', inputs: ['back'], attrs: { starts: [0, 0], ends: [6, 3], steps: [2, 1] } },
    { name: 'pd', op: 'pad', inputs: ['bc'], attrs: { low: [1, 0], high: [0, 0], interior: [0, 0], value: -1 } },
    { name: 'cc', op: 'concat', inputs: ['sl', 'pd'], attrs: { axis: 0 } },
    { name: 'lsm', op: 'log_softmax', inputs: ['cc'], attrs: { axis: 0 } },
    { name: 'embT', op: 'transpose', inputs: ['emb'] },
    { name: 'mm', op: 'linear', inputs: ['lsm', 'embT', 'r2'] },
    { name: 'conv', op: 'conv2d', inputs: ['img', 'k'], attrs: { stride: 2, padding: [1, 1], dilation: 1 } },
    { name: 'dx', op: 'conv2d_input_grad', inputs: ['conv', 'k'], attrs: { stride: 2, padding: 1, size: [5, 5] } },
    { name: 'dk', op: 'conv2d_filter_grad', inputs: ['img', 'conv'], attrs: { stride: [2, 2], padding: 1, kernel: 3 } },
    { name: 'one', op: 'full', attrs: { value: 1, dtype: 'i32' } },
    { name: 'next', op: 'add', inputs: ['step', 'one'] },
    { name: 'avg2', op: 'mul', inputs: ['avg', 'sg'] },
  ],
  outputs: { mm: 'mm', tr: 'tr', r3: 'r3', dx: 'dx', dk: 'dk', '%odd/name:1': 'u12' },
  updates: [{ target: 'step', value: 'next' }, { target: 'avg', value: 'avg2' }],
};

/** Issue 16: dropout, batch norm, and the primitives they are made of, written directly. */
const modes: ModelJson = {
  version: 1,
  name: 'modes',
  inputs: [{ name: 'x', shape: [4, 3, 2, 2] }, { name: 'k', shape: [], dtype: 'i32' }],
  params: [{ name: 'g', shape: [3], init: { kind: 'ones' } }, { name: 'h', shape: [3], init: { kind: 'zeros' } }],
  state: [
    { name: 'm', shape: [3] }, { name: 'v', shape: [3], init: { kind: 'ones' } },
    { name: 'seed', shape: [], dtype: 'i32', init: { kind: 'seed' } },
  ],
  nodes: [
    { name: 'bn', op: 'batch_norm', inputs: ['x', 'g', 'h', 'm', 'v'], attrs: { momentum: 0.2, eps: 1e-3 } },
    { name: 'drop', op: 'dropout', inputs: ['bn'], attrs: { rate: 0.25 } },
    { name: 'noise', op: 'random_uniform', inputs: ['seed', 'k'], attrs: { shape: [4, 3, 2, 2], stream: 7 } },
    { name: 'mode', op: 'is_training' },
    { name: 'jitter', op: 'mul', inputs: ['noise', 'mode'] },
    { name: 'out', op: 'add', inputs: ['drop', 'jitter'] },
  ],
  outputs: { out: 'out' },
};

// ---- issue 16: recurrent layers and the optimizer recipe ----
const recurrent: ModelJson = {
  version: 1,
  name: 'recurrent',
  inputs: [{ name: 'seq', shape: [2, 3, 4] }, { name: 'next', shape: [2, 3], dtype: 'i32' }],
  params: [
    { name: 'l.wih', shape: [20, 4] }, { name: 'l.whh', shape: [20, 5] }, { name: 'l.bih', shape: [20], init: { kind: 'zeros' } },
    { name: 'g.wih', shape: [9, 5] }, { name: 'g.whh', shape: [9, 3] }, { name: 'g.bih', shape: [9], init: { kind: 'zeros' } }, { name: 'g.bhh', shape: [9], init: { kind: 'ones' } },
  ],
  nodes: [
    { name: 'h1', op: 'lstm', inputs: ['seq', 'l.wih', 'l.whh', 'l.bih'] },
    { name: 'h2', op: 'gru', inputs: ['h1', 'g.wih', 'g.whh', 'g.bih', 'g.bhh'] },
    { name: 'loss', op: 'softmax_cross_entropy', inputs: ['h2', 'next'] },
  ],
  outputs: { loss: 'loss' },
  loss: 'loss',
  optimizer: { kind: 'rmsprop', lr: 0.01, clipNorm: 1, accumulate: 2, schedule: { warmupSteps: 10, decay: { kind: 'step', every: 100, gamma: 0.5 } } },
};

const MODELS: Readonly<Record<string, ModelJson>> = { mlp, cnn, block, everything, modes, recurrent };

const DOC = readFileSync(new URL('../../docs/model-format.md', import.meta.url), 'utf8');
/** The ```json block under the "A complete example" heading of docs/model-format.md. */
function docExample(): string {
  const m = /^## A complete example\n[\s\S]*?```json\n([\s\S]*?)\n```/m.exec(DOC);
  if (!m) throw new Error('docs/model-format.md has no "## A complete example" section with a ```json block');
  return m[1]!;
}

/** JSON -> model -> JSON -> model -> JSON: the two models and the two JSON texts are equal. */
function roundTrip(text: string, file: string): { m1: Model; m2: Model; t1: string } {
  const m1 = loadModel(text, file);
  verify(m1.graph, file);
  const t1 = JSON.stringify(modelToJson(m1));
  const m2 = modelFromJson(JSON.parse(t1));
  expect(m2).toEqual(m1);
  expect(printGraph(m2.graph)).toBe(printGraph(m1.graph));
  expect(JSON.stringify(modelToJson(m2))).toBe(t1);
  return { m1, m2, t1 };
}

describe('round trip', () => {
  it.each(Object.keys(MODELS))('%s: JSON -> graph -> JSON -> graph is exact', (name) => {
    const { m1, t1 } = roundTrip(JSON.stringify(MODELS[name], null, 2), `${name}.json`);
    // The serialized form is all primitives: no composite survives decomposition.
    const ops = (JSON.parse(t1) as ModelJson).nodes.map((n) => n.op);
    expect(ops.filter((op) => !m1.graph.nodes.some((n) => n.op === op))).toEqual([]);
  });

  it('the models above use every op the format accepts', () => {
    const used = new Set(Object.values(MODELS).flatMap((m) => m.nodes.map((n) => n.op)));
    expect(JSON_OPS.filter((op) => !used.has(op))).toEqual([]);
  });

  it('names survive as labels; % names are anonymous', () => {
    const { m1, t1 } = roundTrip(JSON.stringify(block), 'block.json');
    const labels = m1.graph.nodes.flatMap((n) => (n.label !== undefined ? [n.label] : []));
    expect(labels).toEqual(['n', 'q', 'k', 'v', 'att', 'out', 'loss']);
    // the gelu composite had the anonymous name %act: its final node is written as %<id>
    const j = JSON.parse(t1) as ModelJson;
    const out = j.nodes.find((n) => n.name === 'out')!;
    expect(out.inputs![1]).toMatch(/^%\d+$/);
  });

  it('nodes listed out of order are loaded in dependency order', () => {
    const { m1 } = roundTrip(JSON.stringify(block), 'block.json');
    m1.graph.nodes.forEach((n, i) => n.inputs.forEach((x) => expect(x).toBeLessThan(i)));
    expect(printGraph(m1.graph).split('\n').slice(0, 7)).toEqual([
      'a:f32[4,8] = input[name="x"]',
      'b:f32[4,8] = input[name="target"]',
      'c:f32[8] = param[name="g",init=ones]',
      'd:f32[8] = param[name="beta",init=zeros]',
      'e:f32[8,8] = param[name="wq",init=normal(0.02)]',
      'f:f32[8,8] = param[name="wk",init=normal(0.02)]',
      'g:f32[8,8] = param[name="wv",init=normal(0.02)]',
    ]);
  });

  it('defaults are filled in and written out explicitly', () => {
    const { t1 } = roundTrip(JSON.stringify(mlp), 'mlp.json');
    const j = JSON.parse(t1) as ModelJson;
    expect(j.params!.find((p) => p.name === 'w2')!.init).toEqual({ kind: 'glorot_uniform' });
    expect(j.optimizer).toEqual({ kind: 'sgd', lr: 0.1, momentum: 0.9, weightDecay: 0 });
    expect(j.inputs![0]).toEqual({ name: 'x', shape: [4, 6], dtype: 'f32' });
  });

  it('a graph built with the builder equals the graph loaded from JSON', () => {
    const b = new GraphBuilder();
    const x = b.input('x', [4, 6]);
    const labels = b.input('labels', [4], 'i32');
    const w1 = b.param('w1', [6, 5], { kind: 'he_normal' });
    const b1 = b.param('b1', [5], { kind: 'zeros' });
    const w2 = b.param('w2', [5, 3]);
    const b2 = b.param('b2', [3], { kind: 'constant', value: 0.1 });
    const h = b.label(b.linear(x, w1, b1), 'h');
    const a = b.label(b.relu(h), 'a');
    const logits = b.label(b.linear(a, w2, b2), 'logits');
    const loss = b.label(b.softmaxCrossEntropy(logits, labels), 'loss');
    const probs = b.label(b.softmax(logits), 'probs');
    b.output('loss', loss);
    b.output('probs', probs);
    const built = b.build();
    const loaded = loadModel(JSON.stringify(mlp), 'mlp.json');
    expect(built).toEqual(loaded.graph);
    expect(printGraph(built)).toBe(printGraph(loaded.graph));
    expect(modelToJson({ name: 'mlp', graph: built, loss: 'loss', optimizer: loaded.optimizer! })).toEqual(modelToJson(loaded));
  });

  it('the CNN built with the builder equals the CNN loaded from JSON', () => {
    const b = new GraphBuilder();
    const img = b.input('img', [2, 1, 8, 8]);
    const digit = b.input('digit', [2], 'i32');
    const k1 = b.param('k1', [4, 1, 3, 3], { kind: 'he_normal' });
    const k1b = b.param('k1b', [4, 1, 1], { kind: 'zeros' });
    const fc = b.param('fc', [16, 10], { kind: 'uniform', low: -0.05, high: 0.05 });
    const c1 = b.label(b.conv2d(img, k1, { padding: [1, 1] }), 'c1');
    const r1 = b.label(b.relu(b.label(b.add_(c1, k1b), 'c1b')), 'r1');
    const p1 = b.label(b.maxPool2d(r1, { kernel: [2, 2] }), 'p1');
    const p2 = b.label(b.avgPool2d(p1, { kernel: [2, 2], stride: [2, 2] }), 'p2');
    const flat = b.label(b.reshape(p2, [2, 16]), 'flat');
    const logits = b.label(b.linear(flat, fc), 'logits');
    b.output('loss', b.label(b.softmaxCrossEntropy(logits, digit), 'loss'));
    expect(b.build()).toEqual(loadModel(JSON.stringify(cnn), 'cnn.json').graph);
  });

  it('a builder graph with labels that are not valid names still serializes to a loadable model', () => {
    const b = new GraphBuilder();
    const x = b.input('x', [2]);
    const h = b.label(b.relu(x), 'grad of x (relu)');
    const k = b.label(b.mul(h, 3), 'm');
    b.state('m', [2]); // a later source takes the name "m": the label must give way
    b.output('y', b.add_(h, k));
    const m: Model = { name: 'labels', graph: b.build() };
    const j = modelToJson(m);
    expect(j.nodes.map((n) => n.name)).toEqual(['%1', '%2', '%3', '%5']);
    const back = loadModel(JSON.stringify(j), 'labels.json');
    verify(back.graph);
    expect(back.graph.nodes.filter((n) => n.label !== undefined)).toEqual([]);
    // the loader puts sources first, so compare what the two graphs compute
    const env = new Map([['x', tensor([2], [-1.5, 2])], ['m', tensor([2], [0, 0])]]);
    expect(Array.from(evaluate(back.graph, env).outputs.get('y')!.data)).toEqual([0, 8]);
    expect(Array.from(evaluate(m.graph, env).outputs.get('y')!.data)).toEqual([0, 8]);
  });

  it('the loaded graph computes the same values as the reloaded one', () => {
    const { m1, m2 } = roundTrip(JSON.stringify(mlp), 'mlp.json');
    const env = new Map([
      ['x', tensor([4, 6], Array.from({ length: 24 }, (_, i) => (i % 7) / 7 - 0.4))],
      ['labels', tensor([4], [0, 2, 1, 2], 'i32')],
      ['w1', tensor([6, 5], Array.from({ length: 30 }, (_, i) => ((i * 13) % 11) / 11 - 0.5))],
      ['b1', tensor([5], [0, 0, 0, 0, 0])],
      ['w2', tensor([5, 3], Array.from({ length: 15 }, (_, i) => ((i * 5) % 7) / 7 - 0.5))],
      ['b2', tensor([3], [0.1, 0.1, 0.1])],
    ]);
    const [r1, r2] = [evaluate(m1.graph, env, 'f64'), evaluate(m2.graph, env, 'f64')];
    expect(Array.from(r2.outputs.get('loss')!.data)).toEqual(Array.from(r1.outputs.get('loss')!.data));
    const probs = Array.from(r1.outputs.get('probs')!.data);
    for (let row = 0; row < 4; row++) expect(probs.slice(row * 3, row * 3 + 3).reduce((s, p) => s + p, 0)).toBeCloseTo(1, 12);
  });
});

describe('docs/model-format.md', () => {
  it('its complete example loads, verifies and round-trips', () => {
    const { m1 } = roundTrip(docExample(), 'docs/model-format.md');
    expect(m1.loss).toBe('loss');
    expect(m1.optimizer?.kind).toBe('sgd');
    expect(m1.graph.outputs.map((o) => o.name)).toContain('loss');
    expect(m1.graph.nodes.filter((n) => n.op === 'param')).toHaveLength(4);
  });

  it('its printed form is what printGraph prints', () => {
    const m = /^Loaded and printed with `printGraph`[\s\S]*?```text\n([\s\S]*?)```/m.exec(DOC);
    expect(m?.[1]).toBe(printGraph(loadModel(docExample(), 'docs/model-format.md').graph));
  });

  it('its example error messages are the catalogue\'s exact messages', () => {
    const block = /Some examples from the catalogue:\n\n```\n([\s\S]*?)```/.exec(DOC)?.[1] ?? '';
    const catalogue = Object.values(JSON.parse(readFileSync(new URL('../bad-models/expected.json', import.meta.url), 'utf8')) as Record<string, string>);
    const lines = block.trimEnd().split('\n');
    expect(lines.length).toBeGreaterThan(3);
    expect(lines.filter((l) => !catalogue.includes(l))).toEqual([]);
  });

  it('documents every op the format accepts', () => {
    // an op is documented when it is named in the first cell of a table row
    const missing = JSON_OPS.filter((op) => !new RegExp(`^\\|[^|\n]*\`${op}\``, 'm').test(DOC));
    expect(missing).toEqual([]);
  });
});
