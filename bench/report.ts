/**
 * @file What a benchmark run reports and how: one record per library x workload (written as JSON
 * lines) and the markdown table (stdout and bench/results/latest-<adapter>.md). Kept apart from the runner so
 * the numbers' meaning is defined in one place.
 */

/** Per-step averages of the GPU counters over a phase. */
export interface PerStep {
  readonly dispatches: number;
  readonly submits: number;
  readonly buffers: number;
  readonly bufferBytes: number;
  readonly writeBytes: number;
  readonly readbacks: number;
}

/** One library on one workload. */
export interface Result {
  readonly workload: string;
  readonly library: string;
  readonly description: string;
  readonly status: 'ok' | 'n/a' | 'error';
  /** Why n/a or what failed. */
  readonly reason?: string;
  /** Median ms per step, loss read back every step. */
  readonly msSyncEach?: number;
  /** Median ms per step, loss read back once every `syncEvery` steps. */
  readonly msSyncBatch?: number;
  readonly syncEvery: number;
  /** msSyncEach / adjoint's msSyncEach (how many times slower than adjoint); null without adjoint. */
  readonly ratio?: number | null;
  readonly ratioBatch?: number | null;
  /** Counters per step while reading the loss every step, and while reading it every `syncEvery`. */
  readonly perStep?: PerStep;
  readonly perStepBatch?: PerStep;
  /** From the start of setup (model definition) to the end of the first step: compile + warm-up. */
  readonly firstStepMs?: number;
  /** Of firstStepMs, where the library tells (adjoint): compiling the model, loading the program (pipelines). */
  readonly compileMs?: number;
  readonly loadMs?: number;
  /** adjoint: kernel tuning, after load in the background (not part of firstStepMs), and a second load's. */
  readonly tuning?: {
    readonly kernels: number;
    readonly timed: number;
    readonly tuneMs: number;
    readonly secondTuneMs: number;
    readonly secondLoadMs: number;
  };
  /** Buffers and bytes created from the start of setup to the end of the first step. */
  readonly setupBuffers?: number;
  readonly setupBytes?: number;
  readonly setupPipelines?: number;
  readonly steps?: number;
  /** Loss of step 1 (initial parameters) and of step `checkStep`. */
  readonly loss1?: number;
  readonly lossCheck?: number;
  /** Loss of step 50, when this library ran that far. */
  readonly loss50?: number;
  /** adjoint: its step's kernels, each timed alone after the timed steps (Program.profile), slowest first. */
  readonly kernels?: {
    readonly timer: 'timestamp' | 'wall';
    /** The sum over every dispatch of the step. */
    readonly sumMs: number;
    readonly dispatches: number;
    readonly slowest: readonly { readonly dispatch: number; readonly label: string; readonly variant?: string; readonly ms: number }[];
  };
  /** Raw samples (ms per step) of both phases. */
  readonly samples?: { readonly syncEach: readonly number[]; readonly syncBatch: readonly number[] };
}

/** Agreement of the libraries on one workload. */
export interface Agreement {
  readonly workload: string;
  readonly title: string;
  /** Step-1 loss from the IR reference interpreter in float64 (independent of every GPU library). */
  readonly referenceLoss1: number;
  /** Max relative difference of any library's step-1 loss from the reference. */
  readonly maxRelDiffStep1: number;
  /** The step whose loss is compared (50, or the last step all libraries read if fewer ran). */
  readonly checkStep: number;
  /** Max relative difference between the libraries' losses at `checkStep` (0 with one library). */
  readonly maxRelDiff: number;
  /** When not every library ran 50 steps: the agreement at step 50 of those that did. */
  readonly at50?: { readonly libraries: readonly string[]; readonly maxRelDiff: number };
}

export interface RunMeta {
  readonly date: string;
  readonly command: string;
  readonly adapter: string;
  /** The adapter's short name (swiftshader, lavapipe, or a GPU's vendor and device). */
  readonly adapterLabel?: string;
  /** Environment that changes what is measured, e.g. MESA_SHADER_CACHE_DISABLE=true (cold first steps). */
  readonly env?: string;
  readonly cpu: string;
  readonly node: string;
  readonly quick: boolean;
  readonly schedule: string;
  readonly totalSeconds: number;
  readonly notes: readonly string[];
  /** The adapter's FMA ceiling, GFLOP/s (bench/matmul.ts: the best of several no-load kernels), when measured. */
  readonly fmaCeilingGflops?: number;
  /** Per workload: the matmul FLOPs of one training step (graphs.ts stepFlops), GFLOP. */
  readonly stepGflop?: Readonly<Record<string, number>>;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** max |a - b| / max(|a|, |b|) over all pairs. */
export function maxRelDiff(xs: readonly number[]): number {
  let worst = 0;
  for (let i = 0; i < xs.length; i++) {
    for (let j = i + 1; j < xs.length; j++) {
      const a = xs[i]!;
      const b = xs[j]!;
      const scale = Math.max(Math.abs(a), Math.abs(b));
      const d = scale === 0 ? 0 : Math.abs(a - b) / scale;
      worst = Math.max(worst, Number.isNaN(d) ? Infinity : d);
    }
  }
  return worst;
}

const ms = (x: number | undefined): string => (x === undefined || Number.isNaN(x) ? '-' : x >= 100 ? x.toFixed(0) : x.toFixed(1));
const num = (x: number | undefined, digits = 1): string => (x === undefined ? '-' : Number.isInteger(x) ? String(x) : x.toFixed(digits));
const mb = (bytes: number | undefined): string => (bytes === undefined ? '-' : (bytes / 2 ** 20).toFixed(2));
const kb = (bytes: number | undefined): string => (bytes === undefined ? '-' : (bytes / 1024).toFixed(1));
const ratio = (r: number | null | undefined): string => (r === null || r === undefined ? '-' : `${r.toFixed(2)}x`);

/** The peer (not adjoint) that ran `workload` with the lowest figure `of`, if any did. */
function fastestPeer(results: readonly Result[], workload: string, of: (r: Result) => number | undefined): Result | undefined {
  const peers = results.filter((p) => p.workload === workload && p.library !== 'adjoint' && p.status === 'ok' && of(p) !== undefined);
  return peers.reduce<Result | undefined>((b, p) => (b === undefined || of(p)! < of(b)! ? p : b), undefined);
}

/**
 * adjoint's first step against the fastest peer's, with its kernel tuning reported apart: the
 * first load compiles only the default variants and the first step runs them; the other variants
 * are then timed in the background (an empty tuning cache), while steps run; the timed steps of
 * the main table come after that. A second load of the same program finds every choice cached.
 */
function firstStepTable(results: readonly Result[]): string[] {
  const rows = results.filter((r) => r.library === 'adjoint' && r.status === 'ok' && r.tuning);
  if (rows.length === 0) return [];
  const lines = [
    'adjoint: first step (compile + load of the default variants + one step) against the fastest peer\'s; kernel tuning apart, in the background after load ' +
      '(empty tuning cache; the timed steps above run after it); a second load of the same program (every choice cached).',
    '',
    '| workload | adjoint first step ms (compile + load) | fastest peer first step ms | adjoint / peer | tuning ms, background (kernels timed) | ms/step after tuning | second load: tuning ms (% of first) |',
    '|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    const best = fastestPeer(results, r.workload, (p) => p.firstStepMs);
    const t = r.tuning!;
    lines.push(
      `| ${r.workload} | ${ms(r.firstStepMs)} (${ms(r.compileMs)} + ${ms(r.loadMs)}) | ${best ? `${ms(best.firstStepMs)} (${best.library})` : '-'} | ` +
        `${best ? `${(r.firstStepMs! / best.firstStepMs!).toFixed(2)}x` : '-'} | ${ms(t.tuneMs)} (${t.timed} of ${t.kernels}) | ${ms(r.msSyncEach)} | ` +
        `${t.secondTuneMs.toFixed(1)} (${t.tuneMs > 0 ? ((100 * t.secondTuneMs) / t.tuneMs).toFixed(2) : '-'}%) |`,
    );
  }
  lines.push('');
  return lines;
}

/**
 * Where adjoint's step goes: after the timed steps, every dispatch of the step timed alone
 * (Program.profile), the kernels' sum against the step, and the slowest kernels with their share.
 */
function kernelTable(results: readonly Result[]): string[] {
  const rows = results.filter((r) => r.library === 'adjoint' && r.status === 'ok' && r.kernels);
  if (rows.length === 0) return [];
  const lines = [
    "Where adjoint's step goes: after the timed steps, each dispatch of the step timed alone on the program's own buffers (`Program.profile`, as `adjoint profile` " +
      'prints it; median of 5 rounds); a step takes longer than the sum by the gaps between dispatches, the batch upload and the loss read (on a CPU adapter the sum can also exceed the step: it is taken minutes after the steps, and the speed of such a machine drifts). The slowest kernels, ' +
      'each with its variant, ms per dispatch and share of the sum.',
    '',
    '| workload | ms/step (sync each) | kernels timed alone: sum ms (dispatches, timer) | slowest kernels: fused ops (variant) ms, share |',
    '|---|---:|---:|---|',
  ];
  for (const r of rows) {
    const k = r.kernels!;
    const top = k.slowest.map((d) => `k${d.dispatch} ${d.label}${d.variant ? ` (${d.variant})` : ''} ${d.ms.toFixed(2)}, ${((100 * d.ms) / k.sumMs).toFixed(0)}%`).join('; ');
    lines.push(`| ${r.workload} | ${ms(r.msSyncEach)} | ${ms(k.sumMs)} (${k.dispatches}, ${k.timer}) | ${top} |`);
  }
  lines.push('');
  return lines;
}

/**
 * Each workload's matmul work per step against the adapter's FMA ceiling: the fewest ms a step can
 * take doing only its multiply-adds at the ceiling, the share of the ceiling each library's step
 * reaches (its matmul FLOPs / its ms per step), and the share a step 3x faster than the fastest
 * peer's would need: above 100% no kernel can get there; near the best single matmul's share
 * (the matmul table below) the whole step would have to run as fast as one large matmul.
 */
function ceilingTable(meta: RunMeta, results: readonly Result[]): string[] {
  const ceiling = meta.fmaCeilingGflops;
  if (!ceiling || !meta.stepGflop) return [];
  const pct = (gflop: number, ms: number | undefined) => (ms ? `${((100 * gflop) / (ms / 1000) / ceiling).toFixed(0)}%` : '-');
  const lines = [
    `Matmul work per step against this adapter's FMA ceiling (${ceiling.toFixed(2)} GFLOP/s, this run): "% of ceiling" = the step's matmul FLOPs (forward and backward, ` +
      'convolutions included) / its ms per step (loss read every step) / the ceiling; the elementwise work, reductions and update are not counted.',
    '',
    '| workload | matmul GFLOP/step | ms/step at the ceiling | adjoint ms/step (% of ceiling) | fastest peer ms/step (% of ceiling) | 3x the fastest peer: ms/step (% of ceiling needed) |',
    '|---|---:|---:|---:|---:|---:|',
  ];
  for (const [workload, gflop] of Object.entries(meta.stepGflop)) {
    const own = results.find((r) => r.workload === workload && r.library === 'adjoint' && r.status === 'ok');
    const best = fastestPeer(results, workload, (p) => p.msSyncEach);
    const target = best ? best.msSyncEach! / 3 : undefined;
    lines.push(
      `| ${workload} | ${gflop.toFixed(3)} | ${ms((1000 * gflop) / ceiling)} | ${own ? `${ms(own.msSyncEach)} (${pct(gflop, own.msSyncEach)})` : '-'} | ` +
        `${best ? `${ms(best.msSyncEach)} (${pct(gflop, best.msSyncEach)}, ${best.library})` : '-'} | ${target ? `${ms(target)} (${pct(gflop, target)})` : '-'} |`,
    );
  }
  lines.push('');
  return lines;
}

/** The markdown report: header, one table per run, agreement lines, notes. */
export function markdown(meta: RunMeta, results: readonly Result[], agreements: readonly Agreement[]): string {
  const lines: string[] = [];
  lines.push(`# Benchmark: one SGD training step${meta.adapterLabel ? ` on ${meta.adapterLabel}` : ''}`, '');
  lines.push(`- date: ${meta.date}`);
  lines.push(`- command: \`${meta.command}\``);
  lines.push(`- adapter: ${meta.adapter}`);
  lines.push(`- cpu: ${meta.cpu}; node ${meta.node}${meta.env ? `; ${meta.env}` : ''}`);
  lines.push(`- schedule: ${meta.schedule}`);
  lines.push(`- total time: ${meta.totalSeconds.toFixed(0)} s`, '');
  lines.push(
    'Step = upload the batch, forward, backward, SGD update. "sync each": the loss is read back every step; ' +
      '"sync /k": read once every k steps. Medians over the timed steps; "vs adjoint" = this library\'s time / adjoint\'s. ' +
      'Dispatches and submits are per step with the loss read every step; buffers and bytes created per step are shown for both ways of reading ' +
      '(a library that frees buffers only once work completes allocates more when steps queue up). "setup MB" = GPU buffer bytes created from model definition to the end of ' +
      'the first step; "first step" = that time (compile + first run; for adjoint, in brackets, the compile and the program load, i.e. pipeline creation). ' +
      'On a CPU adapter (SwiftShader, lavapipe) every number is CPU time: compare rows of one run, not runs.',
    '',
  );
  lines.push('| workload | library | ms/step sync each | ms/step sync /k | vs adjoint | dispatches/step | submits/step | buffers/step each · /k | KB alloc/step each · /k | setup MB | first step ms | loss@step | loss@50 |');
  lines.push('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of results) {
    if (r.status !== 'ok') {
      lines.push(`| ${r.workload} | ${r.library} | ${r.status}: ${r.reason ?? ''} |  |  |  |  |  |  |  |  |  |  |`);
      continue;
    }
    const check = agreements.find((a) => a.workload === r.workload);
    const p = r.perStep;
    const q = r.perStepBatch;
    lines.push(
      `| ${r.workload} | ${r.library} | ${ms(r.msSyncEach)} | ${ms(r.msSyncBatch)} (k=${r.syncEvery}) | ${ratio(r.ratio)} | ${num(p?.dispatches)} | ${num(p?.submits)} | ` +
        `${num(p?.buffers)} · ${num(q?.buffers)} | ${kb(p?.bufferBytes)} · ${kb(q?.bufferBytes)} | ${mb(r.setupBytes)} | ${ms(r.firstStepMs)}${r.loadMs === undefined ? '' : ` (${ms(r.compileMs)} + ${ms(r.loadMs)})`} | ` +
        `${r.lossCheck === undefined ? '-' : r.lossCheck.toFixed(6)}${check ? ` @${check.checkStep}` : ''} | ${r.loss50 === undefined ? '-' : r.loss50.toFixed(6)} |`,
    );
  }
  lines.push('');
  lines.push(...firstStepTable(results));
  lines.push(...ceilingTable(meta, results));
  lines.push(...kernelTable(results));
  const verdict = (d: number): string => (d <= 1e-3 ? 'agree (<= 1e-3)' : 'DISAGREE (> 1e-3)');
  for (const a of agreements) {
    const at50 = a.at50 ? `; at step 50 (${a.at50.libraries.join(', ')}): ${a.at50.maxRelDiff.toExponential(2)} — ${verdict(a.at50.maxRelDiff)}` : '';
    lines.push(
      `- ${a.workload} (${a.title}): loss at step ${a.checkStep} (all libraries), max relative difference ${a.maxRelDiff.toExponential(2)} — ${verdict(a.maxRelDiff)}${at50}; ` +
        `step-1 loss vs the IR interpreter (float64, ${a.referenceLoss1.toFixed(6)}): max relative difference ${a.maxRelDiffStep1.toExponential(2)}`,
    );
  }
  if (meta.notes.length > 0) {
    lines.push('');
    for (const n of meta.notes) lines.push(`- ${n}`);
  }
  lines.push('');
  lines.push('Libraries:');
  const seen = new Set<string>();
  for (const r of results) {
    if (seen.has(r.library)) continue;
    seen.add(r.library);
    lines.push(`- ${r.library}: ${r.description}`);
  }
  return lines.join('\n') + '\n';
}
