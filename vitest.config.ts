import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Safety nets, not performance checks: synthesizing a stack (Template.fromStack) takes
    // 40 s and more when the 2-core CI machine runs every suite at once.
    testTimeout: 90_000,
    hookTimeout: 180_000,
    pool: 'forks',
    reporters: ['default', 'json'],
    outputFile: { json: '.tmp/vitest-report.json' },
  },
});
