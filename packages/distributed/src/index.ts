export { startCoordinator } from './coordinator.js';
export type { Coordinator, CoordinatorOptions } from './coordinator.js';
export { joinRing, Ring } from './ring.js';
export type { AllReduceOptions, RingOptions } from './ring.js';
export { RingError } from './ring_error.js';
export { fromHalf, roundToHalf, toHalf } from './half.js';
