// Bundles tfjs-core's gradient definitions into one ESM file, dist/vendor/tfjs-core-gradients.js.
//
// tfjs-core ships them only as unbundled ESM with extensionless imports, which Node cannot load,
// and its CommonJS `main` registers none. The bundle exports the configs without registering them;
// `registerTrainingKernels()` registers the ones missing. The copy of tfjs-core code inside it
// shares the engine and registries with the caller's tfjs-core (tfjs keeps them on the global
// object), so version 4.22.0 of both must match; the build fails if they do not.
import { build } from 'esbuild';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const corePkgPath = require.resolve('@tensorflow/tfjs-core/package.json');
const coreDir = dirname(corePkgPath);
const { version } = JSON.parse(await readFile(corePkgPath, 'utf8'));
const expected = JSON.parse(await readFile(join(here, '..', 'package.json'), 'utf8'))
  .peerDependencies['@tensorflow/tfjs-core'];
if (version !== expected) {
  throw new Error(`expected @tensorflow/tfjs-core ${expected} at ${coreDir}, found ${version}`);
}

const registry = await readFile(join(coreDir, 'dist', 'register_all_gradients.js'), 'utf8');
const imports = [...registry.matchAll(/import \{ (\w+) \} from '\.\/(gradients\/\w+)';/g)];
if (imports.length < 50) {
  throw new Error(`expected the gradient imports of tfjs-core ${version}, found ${imports.length}`);
}
const entry = [
  ...imports.map(([, name, path]) => `import { ${name} } from './dist/${path}.js';`),
  `export const gradConfigs = [${imports.map(([, name]) => name).join(', ')}];`,
  `export const tfjsCoreVersion = ${JSON.stringify(version)};`,
].join('\n');

const outDir = join(here, '..', 'dist', 'vendor');
await mkdir(outDir, { recursive: true });
await build({
  stdin: { contents: entry, resolveDir: coreDir, sourcefile: 'tfjs-core-gradients.js' },
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  outfile: join(outDir, 'tfjs-core-gradients.js'),
  legalComments: 'eof',
  logLevel: 'warning',
});
await writeFile(
  join(outDir, 'tfjs-core-gradients.d.ts'),
  [
    "import type { GradConfig } from '@tensorflow/tfjs-core';",
    'export declare const gradConfigs: GradConfig[];',
    'export declare const tfjsCoreVersion: string;',
    '',
  ].join('\n'),
);
console.log(`bundled ${imports.length} gradients of tfjs-core ${version}`);
