// The SDK against a real server (the gateway and simulation of the Rust crates, over 127.0.0.1):
// joining, moving as seen by an independent client, reconciliation under latency, malformed
// frames, interpolation without extrapolation, rejected joins, reconnection.
import { afterAll, beforeAll, expect, test } from "vitest";
import WebSocket from "ws";
import { JoinRejectedError, NexusClient, type ConnectOptions, type NexusError } from "../src/index.js";
import { LoopbackServer, Observer, Proxy, distance, sleep, until } from "./harness.js";

let server: LoopbackServer;

beforeAll(async () => {
  server = await LoopbackServer.start();
}, 120_000);

afterAll(async () => {
  await server?.stop();
});

function options(extra: Partial<ConnectOptions> = {}): ConnectOptions {
  return { url: server.url, campaign: "0", token: "alice", WebSocket: WebSocket as never, ...extra };
}

test("walking moves the avatar on the server, as an independent client sees it", async () => {
  const client = await NexusClient.connect(options({ token: "walker" }));
  const observer = await Observer.join(server.url);
  try {
    expect(client.phase).toBe("active");
    expect(client.encoding).toBe("binary");
    const avatarId = client.avatarId!;
    await until(() => observer.positions.has(avatarId), 3000, "the observer to see the avatar");
    await sleep(500);
    const start = observer.positions.get(avatarId)!;
    client.setControls({ forward: 1, look: [0, 0, 1] });
    await sleep(1500);
    client.setControls({ forward: 0 });
    await sleep(800);
    const end = observer.positions.get(avatarId)!;
    expect(distance(start, end)).toBeGreaterThan(1.5);
    // The prediction agrees with the server once the inputs are acknowledged.
    expect(distance(client.avatar()!.predicted, end)).toBeLessThan(0.05);
    const stats = client.stats();
    expect(stats.statesPerSecond).toBeGreaterThan(10);
    expect(stats.malformedFrames).toBe(0);
  } finally {
    observer.close();
    client.close();
  }
}, 30_000);

test("with 200 ms of round trip the prediction reconciles and converges on the server", async () => {
  const client = await NexusClient.connect(options({ token: "laggy", emulatedRttMs: 200 }));
  const observer = await Observer.join(server.url);
  try {
    const avatarId = client.avatarId!;
    for (const look of [[0, 0, 1], [1, 0, 0], [0, 0, -1]] as const) {
      client.setControls({ forward: 1, run: true, look: [...look] });
      await sleep(600);
    }
    client.setControls({ forward: 0, run: false });
    await sleep(1200);
    const stats = client.stats();
    // Every state was compared with the prediction for the input it acknowledges, while up to
    // 200 ms of inputs were still unacknowledged and replayed on top of it.
    expect(stats.reconciliations).toBeGreaterThan(20);
    expect(stats.predictionErrorP99Mm).toBeLessThan(50);
    const server = observer.positions.get(avatarId)!;
    expect(distance(client.avatar()!.predicted, server)).toBeLessThan(0.05);
    expect(distance(client.avatar()!.position, server)).toBeLessThan(0.05);
  } finally {
    observer.close();
    client.close();
  }
}, 30_000);

test("a blocked event loop shows up as a stall in the stats", async () => {
  const client = await NexusClient.connect(options({ token: "staller" }));
  try {
    await sleep(300);
    const calm = client.stats().longestStallMs;
    const blockedUntil = performance.now() + 300;
    while (performance.now() < blockedUntil) {
      // A page busy rendering or collecting garbage: no timer runs.
    }
    await sleep(50);
    expect(calm).toBeLessThan(250);
    expect(client.stats().longestStallMs).toBeGreaterThanOrEqual(290);
  } finally {
    client.close();
  }
}, 30_000);

test("a malformed or truncated state is an error event and the client goes on", async () => {
  const proxy = await Proxy.start(server.url);
  const client = await NexusClient.connect(options({ url: proxy.url, token: "victim" }));
  const errors: NexusError[] = [];
  client.on("error", (error) => errors.push(error));
  try {
    await until(() => client.stats().statesApplied > 5, 3000, "states");
    proxy.inject(new Uint8Array([0xff, 0x01, 0x02]));
    proxy.inject(new Uint8Array(0));
    proxy.inject("{not json");
    await until(() => errors.length >= 3, 3000, "three error events");
    expect(errors.every((error) => error.code.length > 0 && error.message.length > 0)).toBe(true);
    const applied = client.stats().statesApplied;
    await sleep(500);
    expect(client.phase).toBe("active");
    expect(client.stats().statesApplied).toBeGreaterThan(applied + 5);
  } finally {
    client.close();
    await proxy.close();
  }
}, 30_000);

test("remote objects are never extrapolated past the newest state", async () => {
  const proxy = await Proxy.start(server.url);
  const viewer = await NexusClient.connect(options({ url: proxy.url, token: "viewer" }));
  const runner = await NexusClient.connect(options({ token: "runner" }));
  const observer = await Observer.join(server.url);
  try {
    runner.setControls({ forward: 1, run: true, look: [1, 0, 0] });
    const runnerId = runner.avatarId!;
    const seen = () => viewer.objects().find((object) => object.id === runnerId);
    await until(() => seen() !== undefined, 3000, "the viewer to see the runner");
    await sleep(800);
    const moving = seen()!.position;
    await sleep(200);
    expect(distance(moving, seen()!.position)).toBeGreaterThan(0.3);
    // No more states reach the viewer while the runner keeps running (+x) on the server.
    proxy.holdStates = true;
    const lastSent = observer.positions.get(runnerId)!;
    await sleep(1000);
    const held = seen()!.position;
    // Playback ends at (or before) the newest state that arrived; an extrapolation would have
    // carried the runner on, past it.
    expect(held[0]).toBeLessThanOrEqual(lastSent[0] + 0.05);
    await sleep(500);
    expect(seen()!.position).toEqual(held);
  } finally {
    observer.close();
    runner.close();
    viewer.close();
    await proxy.close();
  }
}, 30_000);

test("a refused join rejects with the server's reason", async () => {
  const attempt = NexusClient.connect(options({ token: "", reconnect: false }));
  await expect(attempt).rejects.toBeInstanceOf(JoinRejectedError);
  await expect(attempt).rejects.toMatchObject({ serverCode: "invalid_payload" });
}, 15_000);

test("bad options are clear errors", async () => {
  await expect(NexusClient.connect(options({ campaign: "" }))).rejects.toMatchObject({ code: "invalid_config" });
  await expect(
    NexusClient.connect(options({ url: "ws://127.0.0.1:1/ws", reconnect: false })),
  ).rejects.toMatchObject({ code: "connect_failed" });
});

test("a dropped connection resumes the same session: same client, same avatar, walking on", async () => {
  const proxy = await Proxy.start(server.url);
  const client = await NexusClient.connect(
    options({ url: proxy.url, token: "resumer", reconnect: { initialDelayMs: 100, maxDelayMs: 500 } }),
  );
  const observer = await Observer.join(server.url);
  const welcomes: { clientId: number; avatarId: number | null; resumed: boolean }[] = [];
  client.on("welcome", (welcome) => welcomes.push(welcome));
  try {
    const clientId = client.clientId;
    const avatarId = client.avatarId!;
    client.setControls({ forward: 1, look: [1, 0, 0] });
    await until(() => observer.positions.has(avatarId), 3000, "the observer to see the avatar");
    await sleep(500);
    proxy.cut();
    await until(() => welcomes.length === 1, 10_000, "the welcome after the drop");
    expect(welcomes[0]).toEqual({ clientId, avatarId, resumed: true });
    expect(client.clientId).toBe(clientId);
    const before = observer.positions.get(avatarId)![0];
    await sleep(800);
    // The same avatar walks on (+x) under the same client's inputs.
    expect(observer.positions.get(avatarId)![0]).toBeGreaterThan(before + 1);
    expect(client.phase).toBe("active");
  } finally {
    observer.close();
    client.close();
    await proxy.close();
  }
}, 30_000);

test("after the server restarts the client reconnects by itself", async () => {
  const client = await NexusClient.connect(options({ token: "patient", reconnect: { initialDelayMs: 100, maxDelayMs: 500 } }));
  const phases: string[] = [];
  client.on("phase", (phase) => phases.push(phase));
  try {
    await server.stop();
    await until(() => client.phase === "reconnecting", 5000, "the reconnecting phase");
    server = await LoopbackServer.start(server.port);
    await until(() => client.phase === "active", 15000, "the client to be active again");
    expect(phases).toContain("reconnecting");
    expect(client.stats().reconnects).toBe(1);
    await until(() => client.stats().statesApplied > 5, 3000, "states after the reconnection");
  } finally {
    client.close();
  }
}, 60_000);

test("transport webrtc in Node (no RTCPeerConnection) stays on the WebSocket and says why", async () => {
  const client = await NexusClient.connect(options({ token: "no-rtc", transport: "webrtc" }));
  try {
    await until(() => client.stats().statesApplied > 5, 3000, "states");
    const stats = client.stats();
    expect(stats.transport).toBe("websocket");
    expect(stats.inputTransport).toBe("websocket");
    expect(stats.webrtc).toBe("unavailable");
    expect(stats.fallbacks.map((fallback) => fallback.reason)).toEqual(["unsupported"]);
    expect(stats.fallbacks[0].message).toMatch(/RTCPeerConnection/);
    expect(stats.webrtcOffers).toBe(0);
    expect(stats.statesByTransport).toEqual({ websocket: stats.statesApplied, webrtc: 0 });
    expect(client.retryWebRtc()).toBe(false);
  } finally {
    client.close();
  }
}, 30_000);

test("transport webrtc against a server that does not offer it: the WebSocket, inputs and all", async () => {
  // Never constructed: the welcome has no `webrtc: true`.
  class NoPeerConnection {
    constructor() {
      throw new Error("no offer may be made to this server");
    }
  }
  const client = await NexusClient.connect(
    options({ token: "rtc-unoffered", transport: "webrtc", RTCPeerConnection: NoPeerConnection as never }),
  );
  const observer = await Observer.join(server.url);
  try {
    expect(client.stats().fallbacks.map((fallback) => fallback.reason)).toEqual(["not_offered"]);
    expect(client.stats().webrtc).toBe("unavailable");
    // The session repeats inputs for the data channel; on the WebSocket they go once each, and
    // the avatar walks as usual.
    const avatarId = client.avatarId!;
    await until(() => observer.positions.has(avatarId), 3000, "the observer to see the avatar");
    const start = observer.positions.get(avatarId)!;
    client.setControls({ forward: 1, look: [0, 0, 1] });
    await sleep(1200);
    client.setControls({ forward: 0 });
    await sleep(600);
    expect(distance(start, observer.positions.get(avatarId)!)).toBeGreaterThan(1.5);
    expect(distance(client.avatar()!.predicted, observer.positions.get(avatarId)!)).toBeLessThan(0.05);
    const stats = client.stats();
    expect(stats.inputMessagesByTransport.websocket).toBeGreaterThan(20);
    expect(stats.inputMessagesByTransport.webrtc).toBe(0);
  } finally {
    observer.close();
    client.close();
  }
}, 30_000);

test("an unknown transport is a clear error", async () => {
  await expect(NexusClient.connect(options({ transport: "carrier-pigeon" as never }))).rejects.toMatchObject({ code: "invalid_config" });
});
