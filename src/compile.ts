/**
 * @file The compiler, top to bottom. `STAGES` lists every stage from a model's graph to an
 * artifact in the order they run (tinygrad's `full_rewrite_to_sink`, QBE's `main.c`): the graph
 * passes (graph -> graph), then the stages that make plans (fusion, lowering, schedule, variants,
 * WGSL, memory) and the artifact. Each stage reads what the stages before it made (a `Work`
 * record, never changed in place) and adds its own result; each has a name that `--dump`
 * accepts and prints that result as text. The list lives here because this is the layer allowed
 * to call both src/passes and src/codegen: imports point down only (ir <- passes <- codegen <-
 * compile <- cli; test/layers.test.ts checks it), and a plan is data handed to the next stage.
 *
 * A model with a loss and an optimizer gets a training program (forward, loss, backward and
 * update in one step: every stage) and a forward program (the eval mode: the stages marked
 * `train` are skipped); both are plain artifacts that the runtime runs without the compiler.
 */
import { AdjointError, internal } from './ir/errors.js';
import type { Graph, ValueId } from './ir/graph.js';
import type { Model, OptimizerConfig } from './ir/model.js';
import { printGraph } from './ir/printer.js';
import { verify } from './ir/verify.js';
import { grad } from './passes/autodiff.js';
import { planFusion, printFusionPlan, type FusionPlan } from './passes/fusion.js';
import { printKernels, type Kernel } from './passes/kernel.js';
import { lowerPlan } from './passes/lower.js';
import { planBuffers, printBufferPlan, type BufferPlan } from './passes/memory.js';
import { specializeMode } from './passes/mode.js';
import { optimizerPass } from './passes/optimizer.js';
import { ScheduleCycle, scheduleKernels } from './passes/schedule.js';
import { simplify } from './passes/simplify.js';
import { assembleArtifact, printArtifact, SPEC_LIMITS, type DeviceLimits } from './codegen/emit.js';
import {
  DEFAULT_LIMITS, emitProgram, printProgram, printVariants, programVariants, type CodegenLimits, type EmittedProgram, type KernelVariants,
} from './codegen/wgsl.js';
import type { Artifact } from './runtime/artifact.js';

export { SPEC_LIMITS, type DeviceLimits };

export type ProgramKind = 'train' | 'forward';

/** What the stages know of one program: the settings, then each stage's result as it is made. */
export interface Work {
  readonly program: ProgramKind;
  readonly name: string;
  readonly limits: DeviceLimits;
  readonly fuse: boolean;
  readonly naiveMatmul: boolean;
  /** Emit only these kernel variants (see EmitOptions.variants). */
  readonly variantNames?: readonly string[];
  readonly loss?: string;
  readonly optimizer?: OptimizerConfig;
  readonly graph: Graph;
  readonly diagnostics: readonly string[];
  /** Whether fusion may compute updates in place, and the updates it must not (set by the schedule stage). */
  readonly inPlace: boolean;
  readonly outOfPlace: ReadonlySet<ValueId>;
  readonly fusion?: FusionPlan;
  /** The lowered kernels, in the fusion plan's order; after the schedule stage, in dispatch order. */
  readonly kernels?: readonly Kernel[];
  readonly variants?: readonly KernelVariants[];
  readonly wgsl?: EmittedProgram;
  readonly memory?: BufferPlan;
  readonly artifact?: Artifact;
}

/** A stage sends the work back to an earlier stage (the schedule, to fusion), with new settings. */
interface Back {
  readonly back: string;
  readonly work: Work;
}

interface Stage {
  readonly name: string;
  /** Only the training program runs it. */
  readonly train?: boolean;
  /** A graph pass: the verifier may run after it. */
  readonly graphPass?: boolean;
  run(w: Work): Work | Back;
  /** The stage's result as text (`--dump <name>`). */
  print(w: Work): string;
}

/** A result of an earlier stage; missing, the list is out of order. */
function need<T>(x: T | undefined, what: string): T {
  return x ?? internal(`no ${what} yet: the stages in src/compile.ts are out of order`);
}

const graphPass = (name: string, run: (w: Work) => Graph, opts: { train?: boolean } = {}) => ({
  name, graphPass: true, train: opts.train ?? false, run: (w: Work): Work => ({ ...w, graph: run(w) }), print: (w: Work) => printGraph(w.graph),
});

const codegenLimits = (w: Work): CodegenLimits => ({ ...DEFAULT_LIMITS, ...w.limits });

/** Every stage of the compiler, in order. */
export const STAGES = [
  graphPass('mode', (w) => specializeMode(w.graph, w.program === 'train' ? 'train' : 'eval')), // first: is_training -> 1 or 0, so no later stage sees it
  graphPass('simplify-forward', (w) => simplify(w.graph), { train: true }), // before autodiff, so no adjoint is built for x*1, dead code, …
  {
    name: 'autodiff', graphPass: true, train: true, print: (w: Work) => printGraph(w.graph), // adds the outputs grad:<param>
    run: (w: Work): Work => {
      const r = grad(w.graph, { loss: need(w.loss, 'loss') });
      return { ...w, graph: r.graph, diagnostics: r.diagnostics };
    },
  },
  graphPass('optimizer', (w) => optimizerPass(need(w.optimizer, 'optimizer')).run(w.graph), { train: true }), // after autodiff: reads and drops its grad:<param> outputs
  graphPass('simplify', (w) => simplify(w.graph)), // last graph pass: folds the optimizer's constants, shares work between forward, backward and update, drops the dead
  {
    name: 'fusion', // which values are stored and which kernels compute them; lowers candidate kernels to count their bindings
    run: (w: Work): Work => ({
      ...w, fusion: planFusion(w.graph, { maxBindings: w.limits.maxStorageBuffersPerShaderStage, fuse: w.fuse, inPlace: w.inPlace, outOfPlace: w.outOfPlace }),
    }),
    print: (w: Work) => printFusionPlan(w.graph, need(w.fusion, 'fusion plan')),
  },
  {
    name: 'lowering', // each kernel of the plan as a description: map, reduce, matmul or rows
    run: (w: Work): Work => ({ ...w, kernels: lowerPlan(w.graph, need(w.fusion, 'fusion plan'), { naiveMatmul: w.naiveMatmul }) }),
    print: (w: Work) => printKernels(w.graph, need(w.kernels, 'kernels')),
  },
  {
    name: 'schedule', // an order of the kernels; when in-place waits make a cycle: back to fusion with those updates out of place
    run: (w: Work): Work | Back => {
      try {
        return { ...w, kernels: scheduleKernels(w.graph, need(w.kernels, 'kernels')) };
      } catch (e) {
        if (!(e instanceof ScheduleCycle)) throw e;
        // Kernel boundaries may make a reader of an old value depend on its new value: fusion plans
        // again with the updates of the cycle written out of place (the others stay in place), as
        // kernels joined on the bindings that updates in place save may not fit without them (found
        // by the gradient fuzzer: Adam on two parameters); as a last resort with none in place.
        if (w.inPlace && e.targets.some((t) => !w.outOfPlace.has(t))) return { back: 'fusion', work: { ...w, outOfPlace: new Set([...w.outOfPlace, ...e.targets]) } };
        if (w.inPlace) return { back: 'fusion', work: { ...w, inPlace: false } };
        return internal('the kernels read each other\'s outputs: no order exists');
      }
    },
    print: (w: Work) => printKernels(w.graph, need(w.kernels, 'kernels')),
  },
  {
    name: 'variants', // after the schedule, which may send the kernels back to fusion: the ways each kernel may be computed
    run: (w: Work): Work => ({
      ...w, variants: programVariants(w.graph, need(w.kernels, 'kernels'), codegenLimits(w), w.variantNames ? { variants: w.variantNames } : {}),
    }),
    print: (w: Work) => printVariants(w.graph, need(w.variants, 'variants')),
  },
  {
    name: 'wgsl', // before memory: emission decides the dispatches and scratch buffers (a split reduction is two dispatches)
    run: (w: Work): Work => ({ ...w, wgsl: emitProgram(w.graph, need(w.variants, 'variants'), codegenLimits(w)) }),
    print: (w: Work) => printProgram(need(w.wgsl, 'WGSL')),
  },
  {
    name: 'memory', // lifetimes over the dispatches in order -> arenas and offsets
    run: (w: Work): Work => {
      const p = need(w.wgsl, 'WGSL');
      return { ...w, memory: planBuffers(w.graph, need(w.fusion, 'fusion plan').materialized, need(w.kernels, 'kernels'), p.dispatches, p.scratchBytes, w.limits) };
    },
    print: (w: Work) => printBufferPlan(need(w.memory, 'memory plan')),
  },
  {
    name: 'artifact', // last: assembles the stages' results, decides nothing
    run: (w: Work): Work => ({
      ...w, artifact: assembleArtifact(w.graph, need(w.wgsl, 'WGSL'), need(w.memory, 'memory plan'), { name: w.name, limits: w.limits, ...(w.loss !== undefined ? { loss: w.loss } : {}) }),
    }),
    print: (w: Work) => printArtifact(need(w.artifact, 'artifact')),
  },
] as const satisfies readonly Stage[];

export type StageName = (typeof STAGES)[number]['name'];

/** The stages' names, in order: what `--dump` accepts. */
export const STAGE_NAMES: readonly StageName[] = STAGES.map((s) => s.name);

/** Receives each stage's result as it is made: `text()` prints it (the CLI's `--dump`); `work` holds it as data. */
export type DumpFn = (stage: StageName, text: () => string, program: ProgramKind, work: Work) => void;

export interface RunOptions {
  /** Run the verifier after every graph pass (tests do). */
  readonly verify?: boolean;
  readonly dump?: DumpFn;
}

const stageIndex = (name: string): number => {
  const i = STAGES.findIndex((s) => s.name === name);
  return i >= 0 ? i : internal(`no stage named ${name}`);
};

/** Runs the stages from `from` to `to`, in order (a stage may send the work back to an earlier one). */
function runStages(work: Work, from: StageName, to: StageName, opts: RunOptions): Work {
  let w = work;
  const last = stageIndex(to);
  for (let i = stageIndex(from); i <= last;) {
    const s: Stage = STAGES[i]!;
    if (s.train && w.program !== 'train') {
      i++;
      continue;
    }
    const r = s.run(w);
    if ('back' in r) {
      w = r.work;
      i = stageIndex(r.back);
      continue;
    }
    const done = r;
    if (opts.verify && s.graphPass) verify(done.graph, s.name);
    opts.dump?.(s.name as StageName, () => s.print(done), done.program, done);
    w = done;
    i++;
  }
  return w;
}

/** The model cannot be trained as it is (no loss, no optimizer). */
export class TrainingError extends AdjointError {
  override name = 'TrainingError';
}

export interface TrainingProgram {
  readonly graph: Graph;
  /** Notes for the user, e.g. a parameter the loss does not depend on. */
  readonly diagnostics: readonly string[];
}

function start(program: ProgramKind, graph: Graph, s: { name: string; limits?: Partial<DeviceLimits>; fuse?: boolean; naiveMatmul?: boolean; variants?: readonly string[]; loss?: string; optimizer?: OptimizerConfig }): Work {
  return {
    program, name: s.name, limits: { ...SPEC_LIMITS, ...s.limits }, fuse: s.fuse ?? true, naiveMatmul: s.naiveMatmul ?? false,
    ...(s.variants ? { variantNames: s.variants } : {}), ...(s.loss !== undefined ? { loss: s.loss } : {}), ...(s.optimizer ? { optimizer: s.optimizer } : {}),
    graph, diagnostics: [], inPlace: true, outOfPlace: new Set(),
  };
}

/** The graph of a model's training program: the graph passes of the training program (forward, loss, backward, update). */
export function trainingGraph(model: Model, opts: RunOptions = {}): TrainingProgram {
  if (model.loss === undefined) {
    throw new TrainingError(`model "${model.name}" has no loss: set "loss" to the name of a scalar f32 output (outputs: ${model.graph.outputs.map((o) => o.name).join(', ') || 'none'})`);
  }
  if (model.optimizer === undefined) {
    throw new TrainingError(`model "${model.name}" has no optimizer: set "optimizer", e.g. { "kind": "sgd", "lr": 0.1 }`);
  }
  const w = runStages(start('train', model.graph, { name: model.name, loss: model.loss, optimizer: model.optimizer }), 'mode', 'simplify', opts);
  return { graph: w.graph, diagnostics: w.diagnostics };
}

export interface EmitOptions {
  readonly name?: string;
  /** The limits of the device the program will run on (default: the spec defaults). */
  readonly limits?: Partial<DeviceLimits>;
  /** Fuse kernels (default true); false gives one kernel per op, the baseline. */
  readonly fuse?: boolean;
  /** Name of the loss output, recorded in the artifact. */
  readonly loss?: string;
  /** Lower matmul and the convolutions as one-thread-per-output contractions (benchmark baseline). */
  readonly naiveMatmul?: boolean;
  /**
   * Emit only these kernel variants (by name, see codegen/wgsl.ts; a kernel none of them fits
   * keeps its default). Absent: every variant that fits, for the runtime to choose from.
   */
  readonly variants?: readonly string[];
  readonly dump?: DumpFn;
}

/**
 * Graph -> artifact: the stages after the graph passes (fusion to artifact) on a graph that is
 * already one program. Without fusion every op is its own kernel except constants, `iota` and
 * `stop_gradient`, which are always inlined.
 */
export function emitArtifact(g: Graph, opts: EmitOptions = {}): Artifact {
  const w = start(opts.loss !== undefined ? 'train' : 'forward', g, { ...opts, name: opts.name ?? 'model' });
  return need(runStages(w, 'fusion', 'artifact', opts.dump ? { dump: opts.dump } : {}).artifact, 'artifact');
}

export interface CompileOptions {
  /** Limits of the device the artifacts must run on; default: the WebGPU spec defaults. */
  readonly limits?: Partial<DeviceLimits>;
  /** Called with every stage's result (for `--dump`). */
  readonly dump?: DumpFn;
  /** Fuse kernels (default true); false: one kernel per op, the baseline fusion is measured against. */
  readonly fuse?: boolean;
}

export interface Compiled {
  readonly model: Model;
  /** The one training program: forward, loss, backward, optimizer update. */
  readonly train?: Artifact;
  /** Forward only (the eval mode: no dropout, batch norm's running statistics): every output of the model. */
  readonly forward: Artifact;
  /** Notes for the user (e.g. a parameter the loss does not depend on). */
  readonly diagnostics: readonly string[];
}

/** A model -> its forward program and, with a loss and an optimizer, its training program: every stage for each. */
export function compile(model: Model, opts: CompileOptions = {}): Compiled {
  const settings = { name: model.name, ...(opts.limits ? { limits: opts.limits } : {}), ...(opts.fuse !== undefined ? { fuse: opts.fuse } : {}) };
  const run = opts.dump ? { dump: opts.dump } : {};
  const forward = need(runStages(start('forward', model.graph, settings), 'mode', 'artifact', run).artifact, 'artifact');
  if (model.loss === undefined || model.optimizer === undefined) return { model, forward, diagnostics: [] };
  const t = runStages(start('train', model.graph, { ...settings, loss: model.loss, optimizer: model.optimizer }), 'mode', 'artifact', run);
  return { model, train: need(t.artifact, 'artifact'), forward, diagnostics: t.diagnostics };
}
