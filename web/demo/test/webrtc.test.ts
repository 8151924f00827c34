// The SDK's WebRTC transport (PROTOCOL.md section 11) in real headless Chromium against the real
// server: the pure-Rust loopback server (gateway + one campaign) with its WebRTC UDP port, on
// 127.0.0.1. The page is as small as it gets: the SDK's own TypeScript, transpiled as served,
// and its WebAssembly module (scripts/build-wasm), from a Node HTTP server in this test.
import { readFile } from "node:fs/promises";
import { createServer, type Server as HttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import ts from "typescript";
import { afterAll, beforeAll, expect, test } from "vitest";
import type { ClientStats, NexusClient } from "../../client/src/index.js";
import { parseInputBatch } from "../../client/src/webrtc.js";
import { LoopbackServer, Observer, Proxy, distance, freeUdpPort, repoRoot, sleep } from "../../client/test/harness.js";

const chromiumPath = process.env.NEXUS_CHROMIUM ?? "/usr/bin/chromium";
const clientDir = join(repoRoot, "web", "client");

// The page keeps every data channel the SDK creates (through a subclass it passes as the SDK's
// `RTCPeerConnection`), so the test can close one as a browser would.
const PAGE = `<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><title>nexus webrtc</title>
<script type="module">
import { NexusClient } from "/src/index.js";
const channels = [];
const transports = [];
const sentOnInput = [];
class RecordingPeerConnection extends RTCPeerConnection {
  createDataChannel(label, init) {
    const channel = super.createDataChannel(label, init);
    channels.push(channel);
    if (label === "input") {
      const send = channel.send.bind(channel);
      channel.send = (data) => {
        sentOnInput.push(Array.from(data));
        if (sentOnInput.length > 400) sentOnInput.shift();
        send(data);
      };
    }
    return channel;
  }
}
window.nexusTest = {
  channels,
  transports,
  sentOnInput,
  welcomes: [],
  async connect(url, token, encoding) {
    const client = await NexusClient.connect({
      url, campaign: "0", token, encoding, transport: "webrtc", RTCPeerConnection: RecordingPeerConnection,
      reconnect: { initialDelayMs: 100, maxDelayMs: 500 },
    });
    client.on("transport", (event) => transports.push(event));
    client.on("welcome", (welcome) => window.nexusTest.welcomes.push(welcome));
    window.nexusTest.client = client;
  },
};
</script>`;

/** `/` is the page, `/src/*.js` the SDK's TypeScript transpiled, `/wasm/*` its module. */
function servePage(): Promise<HttpServer> {
  const server = createServer(async (request, response) => {
    const path = new URL(request.url ?? "/", "http://localhost").pathname;
    try {
      if (path === "/") {
        response.writeHead(200, { "content-type": "text/html" }).end(PAGE);
      } else if (/^\/src\/[a-z]+\.js$/.test(path)) {
        const source = await readFile(join(clientDir, path.replace(/\.js$/, ".ts")), "utf8");
        const { outputText } = ts.transpileModule(source, {
          compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ES2022 },
        });
        response.writeHead(200, { "content-type": "text/javascript" }).end(outputText);
      } else if (/^\/wasm\/nexus_wasm(_bg)?\.(js|wasm)$/.test(path)) {
        const type = path.endsWith(".wasm") ? "application/wasm" : "text/javascript";
        response.writeHead(200, { "content-type": type }).end(await readFile(join(clientDir, path)));
      } else {
        response.writeHead(404).end();
      }
    } catch (error) {
      response.writeHead(500).end(String(error));
    }
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

let server: LoopbackServer;
let http: HttpServer;
let browser: Browser;

beforeAll(async () => {
  server = await LoopbackServer.start(undefined, { webrtcPort: await freeUdpPort() });
  http = await servePage();
  browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    // Loopback WebRTC: allow 127.0.0.1 candidates, and do not hide them behind mDNS names.
    args: ["--no-sandbox", "--allow-loopback-in-peer-connection", "--disable-features=WebRtcHideLocalIpsWithMdns"],
  });
});

afterAll(async () => {
  await browser?.close();
  await new Promise((resolve) => (http ? http.close(resolve) : resolve(null)));
  await server?.stop();
});

type TestWindow = {
  nexusTest: {
    client: NexusClient;
    channels: RTCDataChannel[];
    transports: { state: string; input: string; webrtc: string; fallback?: { reason: string; by: string } }[];
    welcomes: { clientId: number; resumed: boolean }[];
    sentOnInput: number[][];
    connect(url: string, token: string, encoding: "binary" | "json"): Promise<void>;
  };
};

async function openPage(token: string, url = server.url, encoding: "binary" | "json" = "binary"): Promise<Page> {
  const page = await browser.newPage();
  const problems: string[] = [];
  page.on("pageerror", (error) => problems.push(String(error)));
  page.on("console", (message) => message.type() === "error" && problems.push(message.text()));
  await page.goto(`http://127.0.0.1:${(http.address() as AddressInfo).port}/`);
  await page.waitForFunction(() => "nexusTest" in window);
  await page.evaluate(
    ([url, name, encoding]) => (window as unknown as TestWindow).nexusTest.connect(url, name, encoding as "binary" | "json"),
    [url, token, encoding],
  );
  expect(problems).toEqual([]);
  return page;
}

const stats = (page: Page): Promise<ClientStats> => page.evaluate(() => (window as unknown as TestWindow).nexusTest.client.stats());

async function waitFor(page: Page, what: string, condition: (stats: ClientStats) => boolean, timeoutMs = 15_000): Promise<ClientStats> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const now = await stats(page);
    if (condition(now)) return now;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}: ${JSON.stringify(now)}`);
    await sleep(100);
  }
}

test("states come on the data channel and inputs go on it: the avatar walks", async () => {
  const page = await openPage("rtc-walker");
  const observer = await Observer.join(server.url, "rtc-observer");
  try {
    const opened = await waitFor(page, "states on the data channel", (s) => s.transport === "webrtc" && s.statesByTransport.webrtc > 10);
    expect(opened.webrtc).toBe("open");
    expect(opened.webrtcOffers).toBe(1);
    expect(opened.fallbacks).toEqual([]);
    expect(opened.inputTransport).toBe("webrtc");
    const channels = await page.evaluate(() =>
      (window as unknown as TestWindow).nexusTest.channels.map((c) => ({ label: c.label, ordered: c.ordered, maxRetransmits: c.maxRetransmits, state: c.readyState })),
    );
    expect(channels).toEqual([
      { label: "state", ordered: false, maxRetransmits: 0, state: "open" },
      { label: "input", ordered: false, maxRetransmits: 0, state: "open" },
    ]);

    const id = await page.evaluate(() => (window as unknown as TestWindow).nexusTest.client.avatarId!);
    const deadline = Date.now() + 5000;
    while (!observer.positions.has(id) && Date.now() < deadline) await sleep(50);
    const start = observer.positions.get(id)!;
    const inputsBefore = (await stats(page)).inputMessagesByTransport;
    await page.evaluate(() => (window as unknown as TestWindow).nexusTest.client.setControls({ forward: 1, look: [0, 0, 1] }));
    await sleep(1500);
    await page.evaluate(() => (window as unknown as TestWindow).nexusTest.client.setControls({ forward: 0 }));
    await sleep(800);
    const walked = await stats(page);
    // The inputs went on the data channel only, and the server moved the avatar by them.
    expect(walked.inputMessagesByTransport.webrtc).toBeGreaterThan(inputsBefore.webrtc + 20);
    expect(walked.inputMessagesByTransport.websocket).toBe(inputsBefore.websocket);
    expect(distance(start, observer.positions.get(id)!)).toBeGreaterThan(1.5);
    const predicted = await page.evaluate(() => (window as unknown as TestWindow).nexusTest.client.avatar()!.predicted);
    expect(distance(predicted, observer.positions.get(id)!)).toBeLessThan(0.05);
    expect(walked.transport).toBe("webrtc");
    expect(walked.statesByTransport.webrtc).toBeGreaterThan(opened.statesByTransport.webrtc + 20);
    expect(walked.malformedFrames).toBe(0);
    // Each input batch on the channel: its new inputs and the last unacknowledged ones, at most 8
    // in all (2 new ones per batch here), so a lost datagram loses no input.
    const batches = (await page.evaluate(() => (window as unknown as TestWindow).nexusTest.sentOnInput))
      .map((bytes) => parseInputBatch(new Uint8Array(bytes)))
      .filter((batch) => batch !== null);
    expect(batches.length).toBeGreaterThan(20);
    const counts = batches.map((batch) => batch.inputs.length);
    expect(Math.max(...counts)).toBeLessThanOrEqual(8);
    expect(counts.filter((count) => count > 2).length).toBeGreaterThan(batches.length / 2);
    const seqs = batches.flatMap((batch) => batch.inputs.map((input) => input.seq));
    // Seqs come again in later batches, and every seq of the walk was sent.
    expect(new Set(seqs).size).toBeLessThan(seqs.length);
    expect(new Set(seqs).size).toBe(Math.max(...seqs) - Math.min(...seqs) + 1);
    console.log(
      `[figures] webrtc in Chromium: ${walked.statesByTransport.webrtc} states on the data channel, ` +
        `${walked.statesByTransport.websocket} on the WebSocket, ${walked.staleStates} stale skipped, ${walked.statesPerSecond} states/s, ping ${walked.pingMs?.toFixed(1)} ms`,
    );
  } finally {
    observer.close();
    await page.close();
  }
});

test("closing the data channel from the page falls back to the WebSocket: states go on; a retry opens it again", async () => {
  const page = await openPage("rtc-closer");
  try {
    await waitFor(page, "states on the data channel", (s) => s.transport === "webrtc" && s.statesByTransport.webrtc > 10);
    // Closed, then the time until the next state applied (on the WebSocket), measured in the page.
    const { closedAt, gapMs } = await page.evaluate(async () => {
      const test = (window as unknown as TestWindow).nexusTest;
      const closedAt = test.client.stats();
      const started = performance.now();
      test.channels.find((c) => c.label === "state")!.close();
      while (test.client.stats().statesByTransport.websocket === closedAt.statesByTransport.websocket && performance.now() - started < 5000) {
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
      return { closedAt, gapMs: performance.now() - started };
    });
    console.log(`[figures] closing the state channel to the next state on the WebSocket: ${gapMs.toFixed(0)} ms (states every 50 ms)`);
    // The server hears of the close at once and streams on the WebSocket from the next state.
    expect(gapMs).toBeLessThan(500);
    const fellBack = await waitFor(page, "the fallback", (s) => s.transport === "websocket");
    expect(fellBack.webrtc).toBe("closed");
    expect(fellBack.inputTransport).toBe("websocket");
    // Whichever noticed first: the page's channel, or the server (its notice can overtake the
    // browser's own close event).
    expect(fellBack.fallbacks.map((f) => f.reason)).toEqual(["channel_closed"]);
    // States keep coming, now on the WebSocket, decoded as deltas against what was acknowledged.
    const after = await waitFor(page, "states on the WebSocket", (s) => s.statesByTransport.websocket > closedAt.statesByTransport.websocket + 20);
    expect(after.statesByTransport.webrtc - fellBack.statesByTransport.webrtc).toBeLessThanOrEqual(1);
    expect(after.malformedFrames).toBe(0);
    expect(after.statesPerSecond).toBeGreaterThan(10);
    const events = await page.evaluate(() => (window as unknown as TestWindow).nexusTest.transports);
    expect(events.at(-1)).toMatchObject({ state: "websocket", input: "websocket", webrtc: "closed", fallback: { reason: "channel_closed" } });

    expect(await page.evaluate(() => (window as unknown as TestWindow).nexusTest.client.retryWebRtc())).toBe(true);
    const reopened = await waitFor(page, "the data channel again", (s) => s.transport === "webrtc" && s.statesByTransport.webrtc > after.statesByTransport.webrtc + 10);
    expect(reopened.webrtcOffers).toBe(2);
    expect(reopened.malformedFrames).toBe(0);
  } finally {
    await page.close();
  }
});

test("a dropped WebSocket resumes the session and offers WebRTC again", async () => {
  const proxy = await Proxy.start(server.url);
  const page = await openPage("rtc-resumer", proxy.url);
  try {
    const before = await waitFor(page, "states on the data channel", (s) => s.transport === "webrtc" && s.statesByTransport.webrtc > 10);
    proxy.cut();
    const resumed = await waitFor(
      page,
      "the data channel after the resume",
      (s) => s.reconnects === 1 && s.webrtcOffers === 2 && s.transport === "webrtc" && s.statesByTransport.webrtc > before.statesByTransport.webrtc + 10,
    );
    const welcomes = await page.evaluate(() => (window as unknown as TestWindow).nexusTest.welcomes);
    expect(welcomes.map((welcome) => welcome.resumed)).toEqual([true]);
    // A lost connection is no fallback: the client offers again with the new welcome.
    expect(resumed.fallbacks).toEqual([]);
    expect(resumed.malformedFrames).toBe(0);
  } finally {
    await page.close();
    await proxy.close();
  }
});

test("with the JSON stream, states come on the data channel as text; inputs (JSON) stay on the WebSocket", async () => {
  const page = await openPage("rtc-json", server.url, "json");
  try {
    const opened = await waitFor(page, "JSON states on the data channel", (s) => s.transport === "webrtc" && s.statesByTransport.webrtc > 10);
    expect(await page.evaluate(() => (window as unknown as TestWindow).nexusTest.client.encoding)).toBe("json");
    expect(opened.inputTransport).toBe("websocket");
    expect(opened.inputMessagesByTransport.webrtc).toBe(0);
    expect(opened.malformedFrames).toBe(0);
  } finally {
    await page.close();
  }
});
