// The demo page in real headless Chromium (Debian's package, driven by playwright-core) against
// the real authoritative server (scripts/serve: headless Godot on the demo scene, serving the
// built page on its port). What the page's client does is checked by independent clients: a raw
// JSON observer and other SDK clients in Node over 127.0.0.1.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, expect, test } from "vitest";
import WebSocket from "ws";
import { NexusClient } from "../../client/src/index.js";
import { Observer, distance, freePort, repoRoot, sleep, until } from "../../client/test/harness.js";

const chromiumPath = process.env.NEXUS_CHROMIUM ?? "/usr/bin/chromium";
const outputDir = join(repoRoot, "target", "browser-tests");

/** `scripts/serve` on a port of its own, with its campaigns in a fresh directory. */
class Server {
  private child: ChildProcess | null = null;
  log = "";
  constructor(
    readonly port: number,
    readonly dataDir: string,
  ) {}

  get httpUrl(): string {
    return `http://127.0.0.1:${this.port}/`;
  }
  get wsUrl(): string {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  async start(): Promise<void> {
    const child = spawn(join(repoRoot, "scripts/serve"), ["--port", String(this.port), "--data-dir", this.dataDir], {
      cwd: repoRoot,
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    this.child = child;
    const collect = (chunk: Buffer) => (this.log = (this.log + chunk.toString()).slice(-20_000));
    child.stdout!.on("data", collect);
    child.stderr!.on("data", collect);
    const deadline = Date.now() + 300_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`scripts/serve exited with ${child.exitCode}:\n${this.log}`);
      const health = await fetch(`${this.httpUrl}health`).catch(() => null);
      if (health?.ok) return;
      if (Date.now() > deadline) throw new Error(`scripts/serve did not answer /health:\n${this.log}`);
      await sleep(250);
    }
  }

  /** SIGTERM to the whole process group (the server saves and quits cleanly). */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    process.kill(-child.pid!, "SIGTERM");
    const timer = setTimeout(() => process.kill(-child.pid!, "SIGKILL"), 20_000);
    await exited;
    clearTimeout(timer);
    this.child = null;
  }
}

interface DemoState {
  phase: string;
  framesRendered: number;
  firstStateRenderedMs: number | null;
  objectsDrawn: number;
  error: string | null;
}

let server: Server;
let browser: Browser;
let dataDir: string;

beforeAll(async () => {
  mkdirSync(outputDir, { recursive: true });
  dataDir = mkdtempSync(join(tmpdir(), "nexus-browser-"));
  server = new Server(await freePort(), dataDir);
  await server.start();
  browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    // SwiftShader draws WebGL without a GPU; the sandbox cannot start as root.
    // The last two let WebRTC reach the server on loopback (host candidates, not mDNS names).
    args: [
      "--no-sandbox",
      "--use-angle=swiftshader",
      "--enable-unsafe-swiftshader",
      "--allow-loopback-in-peer-connection",
      "--disable-features=WebRtcHideLocalIpsWithMdns",
    ],
  });
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

/** The page, once joined and drawing. Chromium draws WebGL in software (SwiftShader) here, on the
 * cores the server uses too: tests of timing-sensitive behaviour ask for `quality=low` and a
 * small viewport so the page's own event loop is not what they measure. */
async function openDemo(query: string, viewport = { width: 960, height: 600 }): Promise<Page> {
  const page = await browser.newPage({ viewport });
  const problems: string[] = [];
  page.on("pageerror", (error) => problems.push(String(error)));
  await page.goto(`${server.httpUrl}?${query}`);
  await page.waitForFunction(() => (window as unknown as { nexusDemo?: DemoState }).nexusDemo?.phase === "active", null, {
    timeout: 30_000,
  });
  await page.waitForFunction(() => (window as unknown as { nexusDemo: DemoState }).nexusDemo.firstStateRenderedMs !== null);
  expect(problems).toEqual([]);
  return page;
}

const demoState = (page: Page): Promise<DemoState> =>
  page.evaluate(() => {
    const { phase, framesRendered, firstStateRenderedMs, objectsDrawn, error } = (window as unknown as { nexusDemo: DemoState }).nexusDemo;
    return { phase, framesRendered, firstStateRenderedMs, objectsDrawn, error };
  });
const avatarId = (page: Page) =>
  page.evaluate(() => (window as unknown as { nexusDemo: { client: { avatarId: number } } }).nexusDemo.client.avatarId);
const pageStats = (page: Page) =>
  page.evaluate(() => (window as unknown as { nexusDemo: { client: NexusClient } }).nexusDemo.client.stats());

/** Share of the canvas's pixels that differ clearly from its top-left pixel (the sky). */
async function canvasVariety(page: Page): Promise<number> {
  return page.evaluate(() => {
    const canvas = document.getElementById("view") as HTMLCanvasElement;
    const copy = document.createElement("canvas");
    copy.width = 160;
    copy.height = 100;
    const context = copy.getContext("2d")!;
    context.drawImage(canvas, 0, 0, copy.width, copy.height);
    const pixels = context.getImageData(0, 0, copy.width, copy.height).data;
    let different = 0;
    for (let i = 0; i < pixels.length; i += 4) {
      const delta = Math.abs(pixels[i] - pixels[0]) + Math.abs(pixels[i + 1] - pixels[1]) + Math.abs(pixels[i + 2] - pixels[2]);
      if (delta > 24) different++;
    }
    return different / (pixels.length / 4);
  });
}

test("the served page loads, joins, draws the world, and keys move the avatar on the server", async () => {
  const started = Date.now();
  const page = await openDemo("name=browser-walker");
  const loadToFirstState = Date.now() - started;
  // The first state drawn may hold the avatar alone; the rest of the world follows.
  await page.waitForFunction(() => (window as unknown as { nexusDemo: DemoState }).nexusDemo.objectsDrawn > 1, null, {
    timeout: 10_000,
  });
  const state = await demoState(page);
  expect(state.error).toBeNull();
  await sleep(500);
  await page.screenshot({ path: join(outputDir, "demo.png") });
  // Not a blank canvas: terrain, bodies and sky differ.
  expect(await canvasVariety(page)).toBeGreaterThan(0.05);
  const hud = await page.textContent("#hud");
  expect(hud).toContain("states/s");
  expect(hud).toContain("ping");

  const id = await avatarId(page);
  const observer = await Observer.join(server.wsUrl, "browser-observer");
  try {
    await until(() => observer.positions.has(id), 5000, "the observer to see the page's avatar");
    const before = observer.positions.get(id)!;
    const statesBefore = (await pageStats(page)).statesApplied;
    await page.keyboard.down("KeyW");
    await sleep(1500);
    await page.keyboard.up("KeyW");
    await sleep(800);
    const after = observer.positions.get(id)!;
    expect(distance(before, after)).toBeGreaterThan(1.5);
    const stats = await pageStats(page);
    // States kept arriving and being applied while walking (a count: rates depend on the machine).
    expect(stats.statesApplied).toBeGreaterThan(statesBefore + 10);
    console.log(`[figures] page load to first rendered state: ${loadToFirstState} ms; states/s in Chromium: ${stats.statesPerSecond}`);
  } finally {
    observer.close();
    await page.close();
  }
});

test("with transport=webrtc the page gets its states over a data channel from the Godot server", async () => {
  const page = await openDemo("name=rtc-page&transport=webrtc&quality=low");
  try {
    await page.waitForFunction(
      () => {
        const stats = (window as unknown as { nexusDemo: { client: NexusClient } }).nexusDemo.client.stats();
        return stats.transport === "webrtc" && stats.statesByTransport.webrtc > 40;
      },
      null,
      { timeout: 30_000 },
    );
    const stats = await pageStats(page);
    expect(stats.transport).toBe("webrtc");
    expect(stats.statesByTransport.webrtc).toBeGreaterThan(stats.statesByTransport.websocket);
    expect(stats.fallbacks).toEqual([]);
    const metrics = await (await fetch(`${server.httpUrl}metrics`)).text();
    expect(metrics).toMatch(/nexus_gateway_clients_by_transport\{transport="webrtc"\} [1-9]/);
  } finally {
    await page.close();
  }
});

test("other clients appear on the page and move", async () => {
  const page = await openDemo("name=browser-watcher&quality=low&fps=20", { width: 480, height: 300 });
  const bots = await Promise.all(
    [0, 1, 2].map((n) => NexusClient.connect({ url: server.wsUrl, campaign: "0", token: `bot-${n}`, WebSocket: WebSocket as never })),
  );
  try {
    const botIds = bots.map((bot) => bot.avatarId!);
    const positionsOnPage = () =>
      page.evaluate(
        (ids) => {
          const client = (window as unknown as { nexusDemo: { client: NexusClient } }).nexusDemo.client;
          const seen = new Map(client.objects().map((o) => [o.id, o.position]));
          return ids.map((id) => seen.get(id) ?? null);
        },
        botIds,
      );
    let first = await positionsOnPage();
    for (let i = 0; i < 100 && first.some((p) => p === null); i++) {
      await sleep(100);
      first = await positionsOnPage();
    }
    expect(first.every((p) => p !== null)).toBe(true);
    bots.forEach((bot, n) => bot.setControls({ forward: 1, look: [Math.cos(n * 2), 0, Math.sin(n * 2)] }));
    await sleep(1500);
    bots.forEach((bot) => bot.setControls({ forward: 0 }));
    await sleep(600);
    const last = await positionsOnPage();
    last.forEach((position, n) => expect(distance(first[n]!, position!)).toBeGreaterThan(1));
  } finally {
    bots.forEach((bot) => bot.close());
    await page.close();
  }
});

/** One walk along a clear path (towards -X from the spawn point): strafe, run, jump, turn.
 * Pushing the scene's loose bodies is mispredicted by any client (it sees them in the past), so
 * the path stays away from them and what is measured is the prediction itself. */
async function walkClearPath(page: Page): Promise<void> {
  const press = async (key: string, ms: number) => {
    await page.keyboard.down(key);
    await sleep(ms);
    await page.keyboard.up(key);
  };
  await press("KeyA", 800);
  await page.keyboard.down("ShiftLeft");
  await press("KeyA", 500);
  await page.keyboard.down("KeyA");
  await press("Space", 300);
  await page.keyboard.up("KeyA");
  await press("KeyW", 500);
  await page.keyboard.up("ShiftLeft");
  await sleep(1000);
}

/** Longer than this without the page's client ticking, its inputs reach the server after the
 * server gave up waiting for them (`idle_after_ticks`: 10 ticks, 167 ms). */
const STALL_LIMIT_MS = 150;

for (const rtt of [100, 200]) {
  test(`prediction stays close to the server with ${rtt} ms emulated round trip`, async () => {
    // A run that missed the mark while the page froze for several server ticks (software
    // rendering and the server share 2 cores), the server refused inputs (queued past its
    // limits) or streamed far below its rate measured the machine, not the prediction: its inputs
    // reached the server late. Such a run is retried, twice; any other failure fails at once.
    for (let attempt = 1; ; attempt++) {
      const page = await openDemo(`name=browser-lag-${rtt}-${attempt}&rtt=${rtt}&quality=low&fps=20`, { width: 480, height: 300 });
      try {
        // Loading and compiling the page stalls it; wait for that to leave the stats' window
        // (5 s, longer than the walk, so the figure read after it covers all of the walk).
        for (let waited = 0; waited < 10_000 && (await pageStats(page)).longestStallMs >= STALL_LIMIT_MS; waited += 250) await sleep(250);
        await walkClearPath(page);
        const stats = await pageStats(page);
        const rejected = await page.evaluate(
          () => (window as unknown as { nexusDemo: { inputsRejected: Record<string, number> } }).nexusDemo.inputsRejected,
        );
        console.log(
          `[figures] ${rtt} ms RTT (attempt ${attempt}): prediction error p99 ${stats.predictionErrorP99Mm.toFixed(2)} mm, ` +
            `ping ${stats.pingMs?.toFixed(0)} ms, ${stats.reconciliations} reconciliations, ${stats.corrections} corrections, ` +
            `inputs rejected ${JSON.stringify(rejected)}, ${stats.statesPerSecond} states/s, ` +
            `page stalled up to ${stats.longestStallMs.toFixed(0)} ms`,
        );
        // The server streams 20 states/s; far fewer means the server itself was short of CPU.
        const machineStarved =
          Object.keys(rejected).length > 0 || stats.longestStallMs > STALL_LIMIT_MS || stats.statesPerSecond < 10;
        const passes =
          Object.keys(rejected).length === 0 &&
          (stats.pingMs ?? 0) > rtt * 0.8 &&
          stats.statesApplied > 20 &&
          stats.predictionErrorP99Mm < 50;
        if (machineStarved && !passes && attempt < 3) continue;
        expect(rejected).toEqual({});
        expect(stats.pingMs).toBeGreaterThan(rtt * 0.8);
        expect(stats.statesApplied).toBeGreaterThan(20);
        // The same movement code on both sides: only float noise, nowhere near a visible jump.
        expect(stats.predictionErrorP99Mm).toBeLessThan(50);
        return;
      } finally {
        await page.close();
      }
    }
  });
}

test("a server restart shows a clear reconnecting state, then the page resumes", async () => {
  const page = await openDemo("name=browser-restart&quality=low&fps=20", { width: 480, height: 300 });
  try {
    await server.stop();
    await page.waitForFunction(() => (window as unknown as { nexusDemo: DemoState }).nexusDemo.phase === "reconnecting", null, {
      timeout: 15_000,
    });
    expect(await page.isVisible("#banner")).toBe(true);
    expect(await page.textContent("#banner")).toMatch(/reconnecting/i);
    expect(await page.textContent("#phase")).toMatch(/reconnecting/i);
    await page.screenshot({ path: join(outputDir, "demo-reconnecting.png") });
    await server.start();
    await page.waitForFunction(() => (window as unknown as { nexusDemo: DemoState }).nexusDemo.phase === "active", null, {
      timeout: 60_000,
    });
    expect(await page.isVisible("#banner")).toBe(false);
    // States flow again (polled: how fast depends on how busy this machine's 2 cores are).
    const before = (await pageStats(page)).statesApplied;
    for (let waited = 0; waited < 10_000 && (await pageStats(page)).statesApplied <= before + 5; waited += 100) await sleep(100);
    expect((await pageStats(page)).statesApplied).toBeGreaterThan(before + 5);
  } finally {
    await page.close();
  }
});
