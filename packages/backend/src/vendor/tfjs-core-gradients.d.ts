// Types of dist/vendor/tfjs-core-gradients.js, which scripts/bundle-gradients.mjs writes at build.
import type { GradConfig } from '@tensorflow/tfjs-core';

export declare const gradConfigs: GradConfig[];
export declare const tfjsCoreVersion: string;
