import type { CurvatureTaps } from './curvature_taps.js';

/** What a forward pass is asked to do. */
export interface ForwardContext {
  /** Batch norm uses (and updates the running averages of) the batch's statistics. */
  training: boolean;
  /** Capture inputs and output gradients of convolutions and linear layers for curvature. */
  taps?: CurvatureTaps;
}
