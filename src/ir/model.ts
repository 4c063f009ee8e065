/**
 * @file The model: a forward graph plus what training needs to know about it (which output is the
 * loss, which optimizer updates the parameters). Shared by the JSON loader, the builder API and the
 * passes.
 */
import type { Graph } from './graph.js';

export type OptimizerConfig =
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
    };

export interface Model {
  readonly name: string;
  readonly graph: Graph;
  /** The name of the scalar output that training minimizes. */
  readonly loss?: string;
  readonly optimizer?: OptimizerConfig;
}

export const MODEL_FORMAT_VERSION = 1;
