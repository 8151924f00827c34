import { defineConfig } from "vitest/config";

// Real processes and sockets: a cold cargo build inside a hook or a test can take minutes on a
// fresh machine (scripts/test builds them first; these limits are for running vitest alone).
export default defineConfig({
  test: {
    testTimeout: 120_000,
    hookTimeout: 600_000,
  },
});
