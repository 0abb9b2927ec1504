import { getGradient, registerGradient, version_core } from '@tensorflow/tfjs-core';

/**
 * Registers tfjs-core's own gradient definitions for every kernel that has none yet, and returns
 * the names registered. In Node, `@tensorflow/tfjs-core` alone registers none (its CommonJS entry
 * leaves them out and its ESM files cannot be imported); this package ships them bundled.
 */
export async function registerGradients(): Promise<string[]> {
  const { gradConfigs, tfjsCoreVersion } = await import('./vendor/tfjs-core-gradients.js');
  if (tfjsCoreVersion !== version_core) {
    throw new Error(
      `@thor-ts/backend bundles the gradients of @tensorflow/tfjs-core ${tfjsCoreVersion}, ` +
        `found @tensorflow/tfjs-core ${version_core} installed: install ${tfjsCoreVersion}`,
    );
  }
  const added: string[] = [];
  for (const config of gradConfigs) {
    if (getGradient(config.kernelName) !== undefined) continue;
    registerGradient(config);
    added.push(config.kernelName);
  }
  return added;
}
