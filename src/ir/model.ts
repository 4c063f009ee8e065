/**
 * @file The model: a forward graph plus what training needs to know about it (which output is the
 * loss, which optimizer updates the parameters). Shared by the JSON loader, the builder API and the
 * passes.
 */
import type { Graph } from './graph.js';

export type OptimizerConfig = (
  | {
      readonly kind: 'sgd';
      readonly lr: number;
      /** Heavy-ball momentum; 0 means plain SGD. */
      readonly momentum: number;
      /** L2 weight decay added to the gradient. */
      readonly weightDecay: number;
    }
  | {
      readonly kind: 'adam';
      readonly lr: number;
      readonly beta1: number;
      readonly beta2: number;
      readonly eps: number;
      /** Decoupled weight decay (AdamW). */
      readonly weightDecay: number;
    }
  // ---- issue 16: RMSprop and Adagrad, and the recipe (schedule, clipping, accumulation) ----
  | {
      readonly kind: 'rmsprop';
      readonly lr: number;
      /** Smoothing constant of the squared-gradient average (PyTorch's alpha). */
      readonly alpha: number;
      readonly eps: number;
      readonly momentum: number;
      /** L2 weight decay added to the gradient. */
      readonly weightDecay: number;
    }
  | {
      readonly kind: 'adagrad';
      readonly lr: number;
      readonly eps: number;
      /** The starting value of every squared-gradient sum. */
      readonly initialAccumulator: number;
      /** L2 weight decay added to the gradient. */
      readonly weightDecay: number;
    }
) &
  OptimizerRecipe;

/** What every optimizer may add to its update (docs/model-format.md, Optimizers). */
export interface OptimizerRecipe {
  /** The learning rate as a function of the number of updates done; absent: constant `lr`. */
  readonly schedule?: LrSchedule;
  /** Scale the gradients so that their global norm (over all parameters) is at most this. */
  readonly clipNorm?: number;
  /** Sum the gradients of this many steps (micro-batches) and update on every k-th, with their mean. */
  readonly accumulate?: number;
}

/**
 * lr_t for the update t = 0, 1, 2, … (Optax's conventions): a linear warm-up from
 * `warmupInit`·lr to lr over `warmupSteps` updates, then the decay, counted from the warm-up's end.
 */
export interface LrSchedule {
  readonly warmupSteps: number;
  readonly warmupInit: number;
  readonly decay?:
    /** lr·((1 − alpha)·½(1 + cos(π·min(s, steps)/steps)) + alpha) */
    | { readonly kind: 'cosine'; readonly steps: number; readonly alpha: number }
    /** lr·gamma^floor(s / every) */
    | { readonly kind: 'step'; readonly every: number; readonly gamma: number };
}

export interface Model {
  readonly name: string;
  readonly graph: Graph;
  /** The name of the scalar output that training minimizes. */
  readonly loss?: string;
  readonly optimizer?: OptimizerConfig;
}

export const MODEL_FORMAT_VERSION = 1;
