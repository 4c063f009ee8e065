/**
 * @file The training report: one self-contained HTML page (nothing fetched when it is opened) with
 * the training loss per step (raw and smoothed) beside the held-out loss per epoch, the held-out
 * accuracy per epoch, the steps per second of each epoch, the compiled programs' figures (kernels,
 * dispatches, buffers, memory) and the run's settings. The charts are drawn by uPlot (a small,
 * maintained canvas chart library), read from node_modules when the report is written and inlined
 * with its stylesheet; the run's figures are embedded as JSON.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Artifact } from '../runtime/artifact.js';
import type { TrainResult } from './trainer.js';

export interface ReportInput {
  /** The model's name. */
  readonly model: string;
  /** When the run ended (ISO 8601). */
  readonly createdAt: string;
  readonly adapter: string;
  /** The run's settings as label and value, in order (data set, epochs, seed, command line, …). */
  readonly settings: readonly (readonly [string, string])[];
  readonly result: TrainResult;
  readonly train: Artifact;
  readonly forward: Artifact;
  /** What the accuracy counts, e.g. "2,000 held-out digits" or "the next character, top 1". */
  readonly accuracyOf?: string;
  /** Extra lines under the summary (e.g. a baseline to compare with). */
  readonly notes?: readonly string[];
}

/** The chart library's script and stylesheet, as inlined. */
export interface ChartLibrary {
  readonly js: string;
  readonly css: string;
}

/** uPlot from node_modules. */
export function chartLibrary(): ChartLibrary {
  const req = createRequire(import.meta.url);
  const dist = (f: string) => readFileSync(req.resolve(`uplot/dist/${f}`), 'utf8');
  return { js: dist('uPlot.iife.min.js'), css: dist('uPlot.min.css') };
}

export function writeReport(path: string, r: ReportInput): void {
  writeFileSync(path, reportHtml(r, chartLibrary()));
}

/** Debiased exponential moving average (as TensorBoard smooths), weight `w`. */
export function smooth(values: readonly number[], w: number): number[] {
  let acc = 0;
  return values.map((v, i) => {
    acc = w * acc + (1 - w) * v;
    return acc / (1 - w ** (i + 1));
  });
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const int = (n: number) => Math.round(n).toLocaleString('en-US');
function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const [v, u] = n < 1024 ** 2 ? [n / 1024, 'KiB'] : n < 1024 ** 3 ? [n / 1024 ** 2, 'MiB'] : [n / 1024 ** 3, 'GiB'];
  return `${v.toFixed(v < 10 ? 2 : 1)} ${u} <span class="dim">(${int(n)} B)</span>`;
}
const numel = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** The figures of one compiled program, as table rows. */
function programRows(a: Artifact): [string, string][] {
  const role = (r: string) => a.arenas.filter((x) => x.role === r).reduce((s, x) => s + x.bytes, 0);
  return [
    ['dispatches per step', `${int(a.dispatches.length)} <span class="dim">in 1 submit</span>`],
    ['shaders (kernels)', int(a.shaders.length)],
    ['GPU buffers', int(a.arenas.length)],
    ['parameters', `${int(a.params.reduce((s, p) => s + numel(p.shape), 0))} values in ${a.params.length} tensors`],
    ['parameter bytes', bytes(role('param'))],
    ['optimizer state bytes', bytes(role('state'))],
    ['input bytes', bytes(role('input'))],
    ['temporaries, planned', bytes(a.memory.plannedBytes)],
    ['temporaries, naive (one buffer each)', bytes(a.memory.naiveBytes)],
    ['temporaries, liveness lower bound', bytes(a.memory.lowerBound)],
  ];
}

function table(rows: readonly (readonly [string, string])[], cls = ''): string {
  return `<table class="${cls}">${rows.map(([k, v]) => `<tr><th>${k}</th><td>${v}</td></tr>`).join('')}</table>`;
}

function kernels(a: Artifact): string {
  const rows = a.dispatches.map((d, i) => `<tr><td class="num">${i}</td><td><code>${esc(d.label)}</code></td><td class="num">${d.workgroups.join(' × ')}</td><td class="num">${d.bindings.length}</td></tr>`);
  return `<table class="kernels"><thead><tr><th>#</th><th>kernel</th><th>workgroups</th><th>buffers bound</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

/** The report's HTML, with the chart library inlined. */
export function reportHtml(r: ReportInput, lib: ChartLibrary): string {
  const res = r.result;
  const losses = res.losses.filter((l) => Number.isFinite(l.loss));
  // TensorBoard's default weight for a short curve; more smoothing as points get denser.
  const weight = losses.length > 2000 ? 0.95 : losses.length > 500 ? 0.9 : losses.length > 100 ? 0.8 : 0.6;
  const data = {
    steps: losses.map((l) => l.step),
    loss: losses.map((l) => l.loss),
    smooth: smooth(losses.map((l) => l.loss), weight),
    weight,
    epochs: res.epochs,
  };
  const last = res.epochs.at(-1);
  const trained = res.epochs.reduce((n, e) => n + e.steps, 0);
  const stepsPerSecond = trained / Math.max(last?.seconds ?? 0, 1e-9);
  const card = (label: string, value: string, sub = '') => `<div class="card"><div class="label">${label}</div><div class="value">${value}</div><div class="sub">${sub}</div></div>`;
  const cards = [
    card('final training loss', losses.length ? losses.at(-1)!.loss.toFixed(4) : '–', `step ${int(losses.at(-1)?.step ?? 0)}`),
    card('held-out loss', Number.isFinite(res.testLoss) ? res.testLoss.toFixed(4) : '–', `${int(res.testLossItems)} held-out items`),
    ...(res.accuracy !== undefined ? [card('held-out accuracy', `${(100 * res.accuracy).toFixed(2)}%`, esc(r.accuracyOf ?? ''))] : []),
    card('steps', int(res.steps), `${res.epochs.length} epoch${res.epochs.length === 1 ? '' : 's'} in this run`),
    card('speed', `${stepsPerSecond.toFixed(1)} steps/s`, `${int(trained)} steps in ${(last?.seconds ?? 0).toFixed(1)} s of training; ${res.seconds.toFixed(1)} s with evaluation`),
  ].join('');
  const json = JSON.stringify(data).replace(/</g, '\\u003c');
  const script = (s: string) => s.replace(/<\/(script)/gi, '<\\/$1');
  const hasAccuracy = res.epochs.some((e) => e.accuracy !== undefined);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(r.model)}: training report</title>
<style>${lib.css}</style>
<style>${STYLE}</style>
</head>
<body>
<header>
  <h1>${esc(r.model)} <span class="dim">training report</span></h1>
  <p class="dim">${esc(r.createdAt)} · ${esc(r.adapter)} · written by adjoint</p>
</header>
<section class="cards">${cards}</section>
${(r.notes ?? []).map((n) => `<p class="note">${esc(n)}</p>`).join('\n')}
<section class="charts">
  <figure class="wide"><figcaption>Loss per step <span class="dim">training loss as read back (raw and smoothed) and the held-out loss after each epoch</span></figcaption><div id="chart-loss" class="chart"></div></figure>
  <figure><figcaption>Held-out accuracy per epoch${r.accuracyOf ? ` <span class="dim">${esc(r.accuracyOf)}</span>` : ''}</figcaption><div id="chart-accuracy" class="chart">${hasAccuracy ? '' : '<p class="empty">This model has no <code>logits</code> output, so no accuracy is measured.</p>'}</div></figure>
  <figure><figcaption>Steps per second, per epoch <span class="dim">training steps only, evaluation excluded</span></figcaption><div id="chart-speed" class="chart"></div></figure>
</section>
<section class="tables">
  <div><h2>Run settings</h2>${table(r.settings.map(([k, v]) => [esc(k), esc(v)]))}</div>
  <div><h2>Training step <span class="dim">(forward, backward and optimizer)</span></h2>${table(programRows(r.train))}</div>
  <div><h2>Forward pass <span class="dim">(evaluation)</span></h2>${table(programRows(r.forward))}</div>
</section>
<details><summary>The ${r.train.dispatches.length} kernels of one training step, in order</summary>${kernels(r.train)}</details>
<details><summary>Per-epoch figures</summary><table class="kernels"><thead><tr><th>epoch</th><th>step</th><th>seconds</th><th>steps/s</th><th>held-out loss</th><th>held-out accuracy</th></tr></thead><tbody>${res.epochs
    .map((e) => `<tr><td class="num">${e.epoch}</td><td class="num">${int(e.step)}</td><td class="num">${e.seconds.toFixed(2)}</td><td class="num">${e.stepsPerSecond.toFixed(2)}</td><td class="num">${e.testLoss?.toFixed(4) ?? '–'}</td><td class="num">${e.accuracy !== undefined ? `${(100 * e.accuracy).toFixed(2)}%` : '–'}</td></tr>`)
    .join('')}</tbody></table></details>
<script id="report-data" type="application/json">${json}</script>
<script>${script(lib.js)}</script>
<script>${script(CLIENT)}</script>
</body>
</html>
`;
}

const STYLE = `
:root { --fg: #1f2328; --dim: #656d76; --line: #d0d7de; --bg: #ffffff; --panel: #f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1200px; padding: 24px 32px 48px; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: var(--fg); background: var(--bg); }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 15px; margin: 0 0 8px; }
.dim { color: var(--dim); font-weight: normal; }
header p { margin: 0 0 16px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(180px, 1fr)); gap: 12px; margin-bottom: 12px; }
.card { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; }
.card .label { color: var(--dim); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card .value { font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums; }
.card .sub { color: var(--dim); font-size: 12px; }
.note { color: var(--dim); margin: 4px 0; }
.charts { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; margin: 16px 0; }
figure { margin: 0; border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px 4px; min-width: 0; }
figure.wide { grid-column: 1 / -1; }
figcaption { font-weight: 600; margin-bottom: 6px; }
.chart { min-height: 60px; }
.empty { color: var(--dim); padding: 40px 0; text-align: center; }
.tables { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 16px; margin: 16px 0; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
.tables th { color: var(--dim); font-weight: normal; width: 45%; }
td.num, .kernels td.num { text-align: right; }
details { margin: 12px 0; border: 1px solid var(--line); border-radius: 8px; padding: 8px 12px; }
summary { cursor: pointer; font-weight: 600; }
code { font: 12px ui-monospace, "DejaVu Sans Mono", monospace; }
@media (max-width: 800px) { .charts { grid-template-columns: 1fr; } }
`;

/** The page's own script: builds the three charts from the embedded JSON. Plain ES2017, no build step. */
const CLIENT = String.raw`
(function () {
  var d = JSON.parse(document.getElementById('report-data').textContent);
  var charts = [];
  function width(el) { return Math.max(280, el.clientWidth); }
  function axis(label) {
    return { label: label, stroke: '#656d76', grid: { stroke: '#eaeef2', width: 1 }, ticks: { stroke: '#d0d7de', width: 1 }, font: '12px system-ui, sans-serif', labelFont: '12px system-ui, sans-serif' };
  }
  function fmt(dec) { return function (u, v) { return v == null ? '–' : v.toFixed(dec); }; }
  function make(id, height, opts, data) {
    var el = document.getElementById(id);
    opts.width = width(el);
    opts.height = height;
    var u = new uPlot(opts, data, el);
    // The legend shows the last point's values until the pointer is over the chart.
    var lastIdx = data[0].length - 1;
    var showLast = function () { u.setLegend({ idx: lastIdx }); };
    setTimeout(showLast, 0); // after uPlot's own first cursor update, which clears the legend
    u.over.addEventListener('mouseleave', function () { setTimeout(showLast, 0); });
    charts.push([u, el]);
    return u;
  }
  // Loss: every step read back, with the held-out loss at the steps where epochs end.
  var xs = d.steps.slice();
  var held = {};
  d.epochs.forEach(function (e) { if (e.testLoss != null) { held[e.step] = e.testLoss; if (xs.indexOf(e.step) < 0) xs.push(e.step); } });
  xs.sort(function (a, b) { return a - b; });
  var at = {};
  d.steps.forEach(function (s, i) { at[s] = i; });
  var raw = xs.map(function (s) { return s in at ? d.loss[at[s]] : null; });
  var sm = xs.map(function (s) { return s in at ? d.smooth[at[s]] : null; });
  var ho = xs.map(function (s) { return s in held ? held[s] : null; });
  make('chart-loss', 320, {
    scales: { x: { time: false } },
    axes: [axis('step'), Object.assign(axis('loss'), { size: 60 })],
    legend: { live: true },
    series: [
      { label: 'step', value: function (u, v) { return v == null ? '–' : String(v); } },
      { label: 'training loss (raw)', stroke: 'rgba(31,119,180,0.35)', width: 1, value: fmt(4), spanGaps: true, points: { show: false } },
      { label: 'training loss (smoothed, EMA ' + d.weight + ')', stroke: '#1f77b4', width: 2.5, value: fmt(4), spanGaps: true, points: { show: false } },
      { label: 'held-out loss (per epoch)', stroke: '#e8590c', width: 2, value: fmt(4), spanGaps: true, points: { show: true, size: 8, fill: '#e8590c' } }
    ]
  }, [xs, raw, sm, ho]);
  var ep = d.epochs.map(function (e) { return e.epoch; });
  if (d.epochs.some(function (e) { return e.accuracy != null; })) {
    make('chart-accuracy', 240, {
      scales: { x: { time: false, range: function (u, lo, hi) { return [Math.max(0, lo - 0.5), hi + 0.5]; } }, y: { range: function (u, lo, hi) { return [Math.max(0, Math.floor(lo - 2)), Math.min(100, Math.ceil(hi + 2))]; } } },
      axes: [Object.assign(axis('epoch'), { incrs: [1, 2, 5, 10, 20, 50] }), Object.assign(axis('accuracy (%)'), { size: 50 })],
      series: [
        { label: 'epoch' },
        { label: 'held-out accuracy', stroke: '#2f9e44', width: 2, value: function (u, v) { return v == null ? '–' : v.toFixed(2) + '%'; }, points: { show: true, size: 8, fill: '#2f9e44' } }
      ]
    }, [ep, d.epochs.map(function (e) { return e.accuracy == null ? null : 100 * e.accuracy; })]);
  }
  make('chart-speed', 240, {
    scales: { x: { time: false, range: function (u, lo, hi) { return [Math.max(0, lo - 0.5), hi + 0.5]; } }, y: { range: function (u, lo, hi) { return [0, hi * 1.15 || 1]; } } },
    axes: [Object.assign(axis('epoch'), { incrs: [1, 2, 5, 10, 20, 50] }), Object.assign(axis('steps / s'), { size: 50 })],
    series: [
      { label: 'epoch' },
      { label: 'steps per second', stroke: '#7048e8', width: 2, fill: 'rgba(112,72,232,0.08)', value: fmt(2), points: { show: true, size: 8, fill: '#7048e8' } }
    ]
  }, [ep, d.epochs.map(function (e) { return e.stepsPerSecond; })]);
  window.addEventListener('resize', function () { charts.forEach(function (c) { c[0].setSize({ width: width(c[1]), height: c[0].height }); }); });
  setTimeout(function () { window.__reportCharts = charts.length; }, 0);
})();
`;
