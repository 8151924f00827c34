// The page is built with relative asset paths so the server can serve it from any directory;
// the dev server proxies the gateway (scripts/web-dev) so the page talks to a real server.
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

const gateway = process.env.NEXUS_GATEWAY ?? "127.0.0.1:9090";

export default defineConfig({
  base: "./",
  resolve: {
    // The SDK from source: no separate build step for the page, and its wasm glue resolves
    // next to it (client/wasm, built by scripts/build-wasm).
    alias: { "@nexus-physics/client": fileURLToPath(new URL("../client/src/index.ts", import.meta.url)) },
  },
  build: { outDir: "dist", emptyOutDir: true, target: "es2022", chunkSizeWarningLimit: 1024 },
  server: {
    host: "127.0.0.1",
    port: 5173,
    proxy: {
      "/ws": { target: `ws://${gateway}`, ws: true },
      "/health": { target: `http://${gateway}` },
      "/metrics": { target: `http://${gateway}` },
    },
  },
});
