import { defineConfig } from "vitest/config";

// scripts/web-bench: benchmarks that print figures (not part of scripts/test).
export default defineConfig({
  test: {
    include: ["bench/**/*.bench.ts"],
    testTimeout: 900_000,
    hookTimeout: 600_000,
    fileParallelism: false,
  },
});
