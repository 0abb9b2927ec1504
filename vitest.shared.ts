import { defineConfig } from 'vitest/config';

/** Every package's test settings: test/*.test.ts, in two forked processes (one wasm thread each). */
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
