// Real processes and sockets for the SDK's tests: the pure-Rust loopback server (gateway + one
// campaign, rust/client/examples/loopback-server.rs) on 127.0.0.1, an independent JSON observer,
// and a proxy that can corrupt or hold back frames.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createSocket } from "node:dgram";
import { createConnection, createServer } from "node:net";
import { fileURLToPath } from "node:url";
import WebSocket, { WebSocketServer } from "ws";

export const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));

/** Builds the cargo example once (a quiet no-op when scripts/test built it already). */
export function cargoExample(pkg: string, example: string): string {
  const built = spawnSync("cargo", ["build", "-q", "-p", pkg, "--example", example], { cwd: repoRoot, stdio: "inherit" });
  if (built.status !== 0) throw new Error(`cargo build of ${example} failed`);
  const target = process.env.CARGO_TARGET_DIR ?? `${repoRoot}target`;
  return `${target}/debug/examples/${example}`;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

/** A UDP port nothing listens on now (for the server's WebRTC port). */
export async function freeUdpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = createSocket("udp4");
    socket.once("error", reject);
    socket.bind(0, "127.0.0.1", () => {
      const { port } = socket.address();
      socket.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = createConnection({ port, host: "127.0.0.1" }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.on("error", () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${port} after ${timeoutMs} ms`);
    await sleep(100);
  }
}

export class LoopbackServer {
  private constructor(
    readonly port: number,
    private child: ChildProcess,
  ) {}

  get url(): string {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  /** `webrtcPort`: the server also takes WebRTC offers, on this UDP port (section 11). */
  static async start(port?: number, options: { webrtcPort?: number } = {}): Promise<LoopbackServer> {
    const binary = cargoExample("nexus-client", "loopback-server");
    const chosen = port ?? (await freePort());
    const args = ["--port", String(chosen), "--duration", "120", "--boxes", "20"];
    if (options.webrtcPort !== undefined) args.push("--webrtc-port", String(options.webrtcPort));
    const child = spawn(binary, args, {
      stdio: ["ignore", "ignore", "inherit"],
    });
    await waitForPort(chosen, 30000);
    return new LoopbackServer(chosen, child);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.child.once("exit", resolve));
    this.child.kill("SIGKILL");
    await exited;
  }
}

/** An independent client: raw WebSocket, JSON encoding, never sends inputs; records the newest
 * position of every object from the state stream. */
export class Observer {
  readonly positions = new Map<number, [number, number, number]>();
  private constructor(private socket: WebSocket) {}

  static async join(url: string, name = "observer"): Promise<Observer> {
    const socket = new WebSocket(url, ["nexus.json.v1"]);
    const observer = new Observer(socket);
    await new Promise<void>((resolve, reject) => {
      socket.on("error", reject);
      socket.on("open", () =>
        socket.send(JSON.stringify({ type: "session:join:v1:requested", payload: { token: name }, metadata: { campaign_id: "0" } })),
      );
      socket.on("message", (data) => {
        const envelope = JSON.parse(String(data));
        if (envelope.type === "session:welcome:v1:stream") {
          for (const object of envelope.payload.world_state.objects) observer.positions.set(object.id, object.position);
          resolve();
        } else if (envelope.type === "physics:world_state:v1:stream") {
          const state = envelope.payload;
          for (const object of state.objects) observer.positions.set(object.id, object.position);
          socket.send(JSON.stringify({ type: "session:ack:v1:requested", payload: { tick: state.tick }, metadata: {} }));
        }
      });
    });
    return observer;
  }

  close(): void {
    this.socket.close();
  }
}

/** A WebSocket proxy in front of a server: forwards everything, except that the test can inject
 * frames towards the client or hold back binary frames (the state stream). */
export class Proxy {
  holdStates = false;
  private clients = new Set<WebSocket>();
  private pairs = new Set<[WebSocket, WebSocket]>();
  private constructor(
    private server: WebSocketServer,
    readonly port: number,
  ) {}

  get url(): string {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  static async start(upstream: string): Promise<Proxy> {
    const port = await freePort();
    const server = new WebSocketServer({ host: "127.0.0.1", port, handleProtocols: (protocols) => [...protocols][0] ?? false });
    const proxy = new Proxy(server, port);
    server.on("connection", (client, request) => {
      proxy.clients.add(client);
      const protocol = request.headers["sec-websocket-protocol"]?.split(",")[0]?.trim();
      const up = new WebSocket(upstream, protocol ? [protocol] : []);
      proxy.pairs.add([client, up]);
      const queue: [WebSocket.RawData, boolean][] = [];
      up.on("open", () => queue.splice(0).forEach(([data, binary]) => up.send(data, { binary })));
      client.on("message", (data, binary) => (up.readyState === 1 ? up.send(data, { binary }) : queue.push([data, binary])));
      up.on("message", (data, binary) => {
        if (binary && proxy.holdStates) return;
        client.send(data, { binary });
      });
      client.on("close", () => up.close());
      up.on("close", () => client.close());
    });
    await new Promise((resolve) => server.once("listening", resolve));
    return proxy;
  }

  /** Cuts every connection as a failing network would: both sides just see the TCP connection
   * end, with no WebSocket close frame. */
  cut(): void {
    for (const [client, up] of this.pairs) {
      client.removeAllListeners("close");
      up.removeAllListeners("close");
      client.terminate();
      up.terminate();
    }
    this.pairs.clear();
    this.clients.clear();
  }

  /** Sends a frame to every connected client as if the server had. */
  inject(data: Uint8Array | string): void {
    for (const client of this.clients) client.send(data, { binary: typeof data !== "string" });
  }

  close(): Promise<void> {
    for (const client of this.clients) client.terminate();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export async function until(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

export function distance(a: readonly number[], b: readonly number[]): number {
  return Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);
}
