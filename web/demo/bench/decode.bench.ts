// How fast the SDK's WebAssembly core decodes the demo's state stream, in Chromium and in Node,
// next to the native build of the same Rust code on the same recording (scripts/web-bench).
//
// 1. Record: the real server on the demo scene (scripts/serve), bots walking about in it, and an
//    SDK client in Node whose socket keeps every frame it receives with its arrival time.
// 2. Replay the recording, the same way everywhere (see rust/wasm/examples/decode_stream.rs):
//    a fresh session per pass, the welcome fed untimed, then the state stream (with the events,
//    pongs and acks between its states) timed as the SDK handles each message.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { expect, test } from "vitest";
import WebSocket from "ws";
import { NexusClient } from "../../client/src/index.js";
import { loadWasm } from "../../client/src/wasm.js";
import { WasmSession } from "../../client/wasm/nexus_wasm.js";
import { freePort, repoRoot, sleep } from "../../client/test/harness.js";

const outputDir = join(repoRoot, "target", "web-bench");
const recordingPath = join(outputDir, "demo-stream.bin");
const release = join(process.env.CARGO_TARGET_DIR ?? join(repoRoot, "target"), "release");
const bots = Number(process.env.NEXUS_WEB_BENCH_BOTS ?? 40);
const recordSeconds = Number(process.env.NEXUS_WEB_BENCH_RECORD_SECONDS ?? 10);
const replaySeconds = Number(process.env.NEXUS_WEB_BENCH_SECONDS ?? 3);

interface Figures {
  passes: number;
  states: number;
  bytes: number;
  objects: number;
  errors: number;
  seconds_per_pass: number;
  states_per_second: number;
  mib_per_second: number;
}

/** The replay, self-contained: Playwright ships its source to the page, so it uses nothing but
 * its arguments and `globalThis.NexusWasmSession`. */
function replay(recording: Uint8Array, budgetSeconds: number): Figures {
  const Session = (globalThis as unknown as { NexusWasmSession: typeof WasmSession }).NexusWasmSession;
  const view = new DataView(recording.buffer, recording.byteOffset, recording.byteLength);
  const decoder = new TextDecoder();
  const frames: { now: number; text: string | null; bytes: Uint8Array }[] = [];
  for (let at = 0; at < recording.byteLength; ) {
    const kind = view.getUint8(at);
    const now = view.getFloat64(at + 1, true);
    const len = view.getUint32(at + 9, true);
    const bytes = recording.subarray(at + 13, at + 13 + len);
    frames.push({ now, text: kind === 0 ? decoder.decode(bytes) : null, bytes });
    at += 13 + len;
  }
  const firstState = frames.findIndex((f) => f.text === null);
  const timed = frames.slice(firstState);
  const states = timed.filter((f) => f.text === null).length;
  const bytes = timed.reduce((sum, f) => sum + f.bytes.byteLength, 0);
  const feed = (session: WasmSession, frame: (typeof frames)[number]): number => {
    try {
      if (frame.text === null) session.receive_binary(frame.now, frame.bytes);
      else session.receive_text(frame.now, frame.text);
      return 0;
    } catch {
      return 1;
    } finally {
      session.poll_events();
      session.drain_outgoing();
    }
  };
  const seconds: number[] = [];
  let errors = 0;
  let objects = 0;
  const started = performance.now();
  while (seconds.length < 3 || performance.now() - started < budgetSeconds * 1000) {
    const session = new Session(JSON.stringify({ campaign: "0", token: "decode-bench" }));
    session.start(frames[0].now);
    let passErrors = 0;
    for (const frame of frames.slice(0, firstState)) passErrors += feed(session, frame);
    const passStart = performance.now();
    for (const frame of timed) passErrors += feed(session, frame);
    seconds.push((performance.now() - passStart) / 1000);
    errors = Math.max(errors, passErrors);
    objects = session.object_ids().length;
    session.free();
  }
  seconds.sort((a, b) => a - b);
  const median = Math.max(seconds[Math.floor(seconds.length / 2)], 1e-9);
  return {
    passes: seconds.length,
    states,
    bytes,
    objects,
    errors,
    seconds_per_pass: median,
    states_per_second: states / median,
    mib_per_second: bytes / median / (1024 * 1024),
  };
}

/** Frames as the SDK received them: `[kind][f64 time][u32 length][bytes]`, kind 0 text, 1 binary. */
class Recording {
  private chunks: Buffer[] = [];
  add(data: unknown): void {
    const bytes =
      typeof data === "string" ? Buffer.from(data, "utf8") : data instanceof ArrayBuffer ? Buffer.from(new Uint8Array(data)) : null;
    if (!bytes) return;
    const header = Buffer.alloc(13);
    header.writeUInt8(typeof data === "string" ? 0 : 1, 0);
    header.writeDoubleLE(performance.now() / 1000, 1);
    header.writeUInt32LE(bytes.byteLength, 9);
    this.chunks.push(header, bytes);
  }
  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

function spawnLogged(command: string, args: string[], label: string): { child: ChildProcess; log: () => string } {
  let log = "";
  const child = spawn(command, args, { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"], detached: true });
  const collect = (chunk: Buffer) => (log = (log + chunk.toString()).slice(-10_000));
  child.stdout!.on("data", collect);
  child.stderr!.on("data", collect);
  child.on("exit", (code) => code && code > 0 && console.error(`[web-bench] ${label} exited with ${code}:\n${log}`));
  return { child, log: () => log };
}

async function stopGroup(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  process.kill(-child.pid!, "SIGTERM");
  const timer = setTimeout(() => process.kill(-child.pid!, "SIGKILL"), 20_000);
  await exited;
  clearTimeout(timer);
}

async function record(): Promise<Buffer> {
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), "nexus-web-bench-"));
  const server = spawnLogged(join(repoRoot, "scripts/serve"), ["--port", String(port), "--data-dir", dataDir, "--no-web"], "scripts/serve");
  let botsProcess: ChildProcess | null = null;
  try {
    for (let waited = 0; !(await fetch(`http://127.0.0.1:${port}/health`).catch(() => null))?.ok; waited += 250) {
      if (server.child.exitCode !== null || waited > 300_000) throw new Error(`scripts/serve did not start:\n${server.log()}`);
      await sleep(250);
    }
    const url = `ws://127.0.0.1:${port}/ws`;
    console.log(`[web-bench] recording ${recordSeconds} s of the demo scene's stream with ${bots} bots walking`);
    botsProcess = spawnLogged(
      join(release, "nexus-bots"),
      ["--url", url, "--count", String(bots), "--duration", String(recordSeconds + 20)],
      "nexus-bots",
    ).child;
    await sleep(3000);
    const recording = new Recording();
    class RecordingSocket extends WebSocket {
      constructor(address: string, protocols?: string | string[]) {
        super(address, protocols);
        this.addEventListener("message", (event) => recording.add(event.data));
      }
    }
    const client = await NexusClient.connect({ url, campaign: "0", token: "web-bench-recorder", WebSocket: RecordingSocket as never });
    await sleep(recordSeconds * 1000);
    client.close();
    return recording.bytes();
  } finally {
    if (botsProcess) await stopGroup(botsProcess);
    await stopGroup(server.child);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

function nativeReplay(): Figures {
  const run = spawnSync(join(release, "examples", "decode_stream"), [recordingPath, String(replaySeconds)], { encoding: "utf8" });
  if (run.status !== 0) throw new Error(`decode_stream failed (${run.status}): ${run.stderr}`);
  return JSON.parse(run.stdout) as Figures;
}

async function nodeReplay(recordingBytes: Buffer): Promise<Figures> {
  await loadWasm();
  (globalThis as unknown as { NexusWasmSession: typeof WasmSession }).NexusWasmSession = WasmSession;
  return replay(new Uint8Array(recordingBytes), replaySeconds);
}

async function chromiumReplay(recordingBytes: Buffer): Promise<{ figures: Figures; version: string }> {
  const browser = await chromium.launch({
    executablePath: process.env.NEXUS_CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox"],
  });
  try {
    const page = await browser.newPage();
    const wasmDir = join(repoRoot, "web", "client", "wasm");
    const types: Record<string, string> = { js: "text/javascript", wasm: "application/wasm", bin: "application/octet-stream", html: "text/html" };
    await page.route("http://bench.invalid/**", async (route) => {
      const path = new URL(route.request().url()).pathname;
      const body =
        path === "/"
          ? Buffer.from("<!doctype html><title>decode bench</title>")
          : path === "/stream.bin"
            ? recordingBytes
            : readFileSync(join(wasmDir, path.replace(/^\/wasm\//, "").replace(/[^A-Za-z0-9_.-]/g, "")));
      await route.fulfill({ body, contentType: types[path.split(".").pop() ?? ""] ?? types.html });
    });
    await page.goto("http://bench.invalid/");
    await page.addScriptTag({
      type: "module",
      content: `import init, { WasmSession } from "/wasm/nexus_wasm.js";
        await init({ module_or_path: "/wasm/nexus_wasm_bg.wasm" });
        globalThis.NexusWasmSession = WasmSession;`,
    });
    await page.waitForFunction(() => "NexusWasmSession" in globalThis, null, { timeout: 30_000 });
    const figures = await page.evaluate(
      async ([source, seconds]) => {
        // The test runner's transpiler may wrap inner functions in a name-keeping helper.
        (globalThis as unknown as { __name?: unknown }).__name ??= (target: unknown) => target;
        const bytes = new Uint8Array(await (await fetch("/stream.bin")).arrayBuffer());
        const run = new Function(`return (${source})`)() as (recording: Uint8Array, seconds: number) => Figures;
        return run(bytes, seconds);
      },
      [replay.toString(), replaySeconds] as const,
    );
    return { figures, version: browser.version() };
  } finally {
    await browser.close();
  }
}

test("decode throughput of the demo's state stream: native, wasm in Node, wasm in Chromium", async () => {
  mkdirSync(outputDir, { recursive: true });
  const recordingBytes = await record();
  writeFileSync(recordingPath, recordingBytes);
  const native = nativeReplay();
  const node = await nodeReplay(recordingBytes);
  const { figures: browser, version } = await chromiumReplay(recordingBytes);

  console.log(
    `\n[web-bench] recording: ${native.states} states, ${(native.bytes / 1024).toFixed(0)} KiB after the welcome, ` +
      `${native.objects} objects known at the end (${recordingPath})`,
  );
  const row = (name: string, f: Figures) =>
    `  ${name.padEnd(30)} ${f.states_per_second.toFixed(0).padStart(9)} states/s ${f.mib_per_second.toFixed(1).padStart(7)} MiB/s ` +
    `${(f.seconds_per_pass * 1000).toFixed(1).padStart(8)} ms/pass  ${(f.states_per_second / native.states_per_second).toFixed(2)}x native  ` +
    `(${f.passes} passes)`;
  console.log(row("native (release, this CPU)", native));
  console.log(row("wasm in Node " + process.versions.node, node));
  console.log(row(`wasm in Chromium ${version}`, browser));
  console.log(
    `  a client receiving 20 states/s spends ${((20 / browser.states_per_second) * 100).toFixed(2)} % of one core decoding them in Chromium`,
  );
  // Every side decoded the whole stream the same way.
  for (const figures of [native, node, browser]) {
    expect(figures.errors).toBe(0);
    expect(figures.states).toBe(native.states);
    expect(figures.objects).toBe(native.objects);
  }
  expect(native.states).toBeGreaterThan(recordSeconds * 5);
});
