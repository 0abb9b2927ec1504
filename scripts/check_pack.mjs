#!/usr/bin/env node
// `npm run check:pack` (after a build): what `npm pack` would publish of each package under
// packages/, checked as a user's install would need it. Every `exports`, `types` and `bin` target is
// in the tarball; so are README.md and LICENSE; every relative import and `new URL(…,
// import.meta.url)` of a packed .js file (wasm modules, worker threads, package.json) and every
// source a packed source map names resolve to packed files; no test file is packed. Prints one line
// per package and exits 1 listing every problem.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const problems = [];

/** Every string under `value` (the targets of an `exports` map or a `bin` object). */
const targets = (value) =>
  typeof value === 'string'
    ? [value]
    : value && typeof value === 'object'
      ? Object.values(value).flatMap(targets)
      : [];

for (const name of readdirSync(join(root, 'packages')).sort()) {
  const dir = join(root, 'packages', name);
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  const [report] = JSON.parse(
    execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
      cwd: dir,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  const files = new Set(report.files.map((f) => normalize(f.path)));
  const fail = (message) => problems.push(`${pkg.name}: ${message}`);
  const need = (path, why) => {
    const p = normalize(path);
    if (!files.has(p)) fail(`${why} ${p} is not in the tarball`);
  };
  for (const t of [...targets(pkg.exports), ...targets(pkg.bin), ...targets(pkg.types)]) {
    need(t, 'the package.json target');
  }
  need('README.md', 'the readme');
  need('LICENSE', 'the licence');
  for (const f of files) {
    if (/(^|\/)test\/|\.test\.[cm]?[jt]s$/.test(f)) fail(`the test file ${f} is packed`);
    const text = () => readFileSync(join(dir, f), 'utf8');
    if (f.endsWith('.map')) {
      const map = JSON.parse(text());
      for (const s of map.sources ?? [])
        need(join(dirname(f), map.sourceRoot ?? '', s), `${f} names`);
    } else if (/\.[cm]?js$/.test(f)) {
      const src = text();
      const relative = [
        ...src.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)['"](\.{1,2}\/[^'"]+)['"]/g),
        ...src.matchAll(/new URL\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*,\s*import\.meta\.url\s*\)/g),
      ].map((m) => m[1]);
      for (const r of relative) need(join(dirname(f), r), `${f} loads`);
    }
  }
  console.log(
    `${pkg.name}: ${report.entryCount} files, ${(report.size / 1024).toFixed(0)} KiB packed`,
  );
}
if (problems.length > 0) {
  console.error(`check:pack: ${problems.length} problem(s):\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
