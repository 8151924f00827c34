import { defineConfig } from "vitest/config";

// Real Godot servers and a real Chromium: starting them on a cold 2-core machine takes a while.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 180_000,
    hookTimeout: 600_000,
    fileParallelism: false,
  },
});
