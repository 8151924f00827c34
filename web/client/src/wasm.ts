/** Loading the WebAssembly module once, in a browser or in Node. */

import init, { initSync } from "../wasm/nexus_wasm.js";

/** Where the .wasm comes from: a URL or path, its bytes, or a compiled module. Default: the
 * `nexus_wasm_bg.wasm` shipped next to the SDK (fetched in browsers, read from disk in Node). */
export type WasmSource = string | URL | BufferSource | WebAssembly.Module;

let loading: Promise<void> | null = null;

/** Loads and instantiates the module (once; later calls wait for the first). */
export function loadWasm(source?: WasmSource): Promise<void> {
  loading ??= instantiate(source).catch((error: unknown) => {
    loading = null;
    throw error;
  });
  return loading;
}

async function instantiate(source?: WasmSource): Promise<void> {
  const isNode = typeof process !== "undefined" && !!process.versions?.node && typeof window === "undefined";
  if (source instanceof WebAssembly.Module || ArrayBuffer.isView(source) || source instanceof ArrayBuffer) {
    initSync({ module: source });
    return;
  }
  const location = source ?? new URL("../wasm/nexus_wasm_bg.wasm", import.meta.url);
  if (isNode) {
    // A computed specifier: bundlers for the browser leave this Node-only branch alone.
    const fsModule = "node:fs/promises";
    const { readFile } = (await import(fsModule)) as typeof import("node:fs/promises");
    const path = typeof location === "string" && !location.startsWith("file:") ? location : new URL(location);
    initSync({ module: await readFile(path) });
    return;
  }
  await init({ module_or_path: location });
}
