// The WebAssembly movement solver against the native one (the server's code) over 3000 ticks of
// walking, running, turning and jumping among obstacles on a heightfield.
import { spawnSync } from "node:child_process";
import { expect, test } from "vitest";
import { movement_trace } from "../wasm/nexus_wasm.js";
import { loadWasm } from "../src/wasm.js";
import { cargoExample } from "./harness.js";

const TICKS = 3000;

test("wasm and native movement give the same positions", async () => {
  await loadWasm();
  const binary = cargoExample("nexus-wasm", "movement_trace");
  for (const seed of [7, 1234]) {
    const run = spawnSync(binary, [String(TICKS), String(seed)], { encoding: "utf8" });
    expect(run.status, run.stderr).toBe(0);
    const native: number[] = JSON.parse(run.stdout).positions;
    const wasm = movement_trace(TICKS, seed);
    expect(wasm.length).toBe(TICKS * 3);
    expect(native.length).toBe(TICKS * 3);
    let maxDifference = 0;
    let identical = 0;
    for (let i = 0; i < wasm.length; i++) {
      const difference = Math.abs(wasm[i] - Math.fround(native[i]));
      maxDifference = Math.max(maxDifference, difference);
      if (difference === 0) identical += 1;
    }
    // The walk really went somewhere (a trace that stands still would prove nothing).
    const end = TICKS * 3 - 3;
    expect(Math.hypot(wasm[end] - wasm[0], wasm[end + 2] - wasm[2])).toBeGreaterThan(2);
    console.log(`seed ${seed}: ${identical}/${wasm.length} coordinates bit-identical, largest difference ${maxDifference} m`);
    // Stated epsilon: 1 µm (bit-identical is what this machine shows; libm's transcendental
    // functions could differ by an ulp elsewhere).
    expect(maxDifference).toBeLessThanOrEqual(1e-6);
  }
});
