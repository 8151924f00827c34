/**
 * {@link NexusClient}: one player's connection to a campaign. The socket, timers and events are
 * here; everything the server's code also knows (prediction with the server's movement solver,
 * reconciliation, the binary state decoder and its delta baselines, interpolation buffers, clock
 * sync) runs in the WebAssembly session built from the Rust client (rust/wasm).
 */

import { WasmSession } from "../wasm/nexus_wasm.js";
import { loadWasm, type WasmSource } from "./wasm.js";
import {
  CloseCode,
  Subprotocol,
  type BodyKind,
  type InputRejection,
  type InteractionRequest,
  type InteractionResult,
  type Quat,
  type ServerEnvelope,
  type Shape,
  type Vec3,
} from "./protocol.js";

/** Where the connection is. */
export type ConnectionPhase = "connecting" | "joining" | "active" | "reconnecting" | "closed";

/** What the player wants now; sampled every simulation tick. */
export interface Controls {
  /** Right (+) / left (-), -1..1. */
  right: number;
  /** Forward (+) / back (-), -1..1, along `look`. */
  forward: number;
  /** Look direction in world space (need not be unit length); zero keeps the current one. */
  look: Vec3;
  jump: boolean;
  run: boolean;
}

/** Backoff of automatic reconnection. */
export interface ReconnectOptions {
  /** First delay (default 250 ms); doubles each attempt. */
  initialDelayMs?: number;
  /** Longest delay (default 5000 ms). */
  maxDelayMs?: number;
  /** Attempts before giving up (default: forever). */
  maxAttempts?: number;
}

/** Options of {@link NexusClient.connect}. */
export interface ConnectOptions {
  /** `ws://host:9090/ws` or `wss://…`. */
  url: string;
  /** The campaign (world) to join. */
  campaign: string;
  /** A signed token, or in development mode the player's name. */
  token: string;
  /** Preferred display name. */
  name?: string;
  /** State-stream encoding asked for (default `binary`); the server may answer with JSON. */
  encoding?: "binary" | "json";
  /** Interest radius to ask for, metres. */
  interestRadius?: number;
  /** Inputs are batched over this many ticks (default 2: 30 messages a second at 60 Hz). */
  sendIntervalTicks?: number;
  /** Predict the own avatar (default true). */
  predict?: boolean;
  /** Longest time a remote object is extrapolated past its newest state, ms (default 0: remote
   * objects never move beyond what the server sent; they hold their last pose until the next). */
  maxExtrapolationMs?: number;
  /** Reconnect after a lost connection (default true; `false` to never). */
  reconnect?: boolean | ReconnectOptions;
  /** Added round trip, ms, half on sending and half on receiving: for testing on bad links. */
  emulatedRttMs?: number;
  /** How long to wait for the welcome, ms (default 10000). */
  joinTimeoutMs?: number;
  /** The `WebSocket` class (default: the global one; in Node pass the `ws` package's). */
  WebSocket?: WebSocketClass;
  /** The .wasm module (default: next to the SDK); see {@link loadWasm}. */
  wasm?: WasmSource;
  /** `metadata.client_type` (default `web`). */
  clientType?: string;
}

/** The own avatar as it should be drawn now. */
export interface AvatarView {
  id: number;
  position: Vec3;
  rotation: Quat;
  /** Where the prediction is after the newest input. */
  predicted: Vec3;
  /** The correction still being smoothed away, metres. */
  correctionOffset: Vec3;
  velocity: Vec3;
  grounded: boolean;
}

/** A remote object at the playback time. */
export interface ObjectView {
  id: number;
  kind: BodyKind;
  position: Vec3;
  rotation: Quat;
}

/** What the client knows of an object besides its pose. */
export interface ObjectInfo {
  kind: BodyKind;
  shape: Shape | null;
  properties: Record<string, unknown>;
}

/** Live figures for a HUD. */
export interface ClientStats {
  /** Smoothed round trip, ms (null before the first pong). */
  pingMs: number | null;
  /** States applied over the last second. */
  statesPerSecond: number;
  /** Distance between the server's avatar and the prediction for the same input at the last
   * state, mm. */
  predictionErrorMm: number;
  /** 99th percentile of that over the last 1000 states, mm. */
  predictionErrorP99Mm: number;
  /** Playback delay of remote objects, ms. */
  interpolationDelayMs: number;
  statesApplied: number;
  bytesReceived: number;
  reconciliations: number;
  corrections: number;
  malformedFrames: number;
  reconnects: number;
  /** The server's tick estimated now. */
  serverTick: number | null;
  /** Longest gap between two of the client's own ticks over the last 5 s, ms (about 8 when all
   * is well). A page whose event loop is blocked longer than a few server ticks (rendering,
   * garbage collection, a background tab) sends its inputs late: expect corrections then. */
  longestStallMs: number;
}

/** Events of a {@link NexusClient} and their arguments. */
export interface ClientEvents {
  /** Welcomed (also after each reconnection). `resumed`: the server kept the session through a
   * lost connection, so the client id and avatar are the same as before and the inputs it had
   * not acknowledged were sent again; `false` after a fresh join (a new avatar). */
  welcome: { clientId: number; avatarId: number | null; resumed: boolean };
  /** The phase changed. */
  phase: ConnectionPhase;
  objectAdded: { id: number; kind: BodyKind };
  objectRemoved: { id: number; reason: string };
  interactionResult: InteractionResult;
  inputRejected: InputRejection;
  /** A `system:error` event from the server. */
  serverError: { code: string; message: string };
  /** Any other server event (environment, particles, custom, object updates…). */
  event: ServerEnvelope;
  /** Something the client could not understand (a malformed frame); the session goes on. */
  error: NexusError;
  /** The connection was lost; the next attempt comes after `delayMs`. */
  reconnecting: { attempt: number; delayMs: number; code: number; reason: string };
  /** The socket closed. `willReconnect` tells whether the client tries again. */
  close: { code: number; reason: string; willReconnect: boolean };
}

/** An error with a stable snake_case `code` (`malformed_message`, `join_rejected`,
 * `connect_failed`, `timeout`, `closed`, `invalid_config`, `invalid_request`…). */
export class NexusError extends Error {
  constructor(
    readonly code: string,
    message: string,
    /** The WebSocket close code, when the error is a close. */
    readonly closeCode?: number,
  ) {
    super(`${code}: ${message}`);
    this.name = "NexusError";
  }
}

/** The server refused the join (bad token, unknown campaign, full server…). */
export class JoinRejectedError extends NexusError {
  constructor(
    /** The server's error code (`invalid_token`, `too_many_connections`…). */
    readonly serverCode: string,
    message: string,
    closeCode?: number,
  ) {
    super("join_rejected", `${serverCode}: ${message}`, closeCode);
    this.name = "JoinRejectedError";
  }
}

/** What the SDK needs of a WebSocket class (the browser's, or the `ws` package's). */
export interface WebSocketClass {
  new (url: string, protocols?: string | string[]): WebSocketLike;
}

/** What the SDK needs of a WebSocket. */
export interface WebSocketLike {
  binaryType: string;
  readonly protocol: string;
  readonly readyState: number;
  send(data: string | ArrayBufferView | ArrayBuffer): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}

const KINDS: BodyKind[] = ["dynamic", "kinematic", "static", "player"];
const REMOTE_STRIDE = 9;
/** The server's close codes after which trying again cannot help. */
const FINAL_SERVER_CODES = new Set(["invalid_token", "campaign_mismatch", "unknown_campaign", "forbidden"]);
const TICK_INTERVAL_MS = 1000 / 120;
const STALL_WINDOW_MS = 5000;

type Handler<T> = (value: T) => void;

/**
 * One player's connection. {@link NexusClient.connect} resolves once welcomed; then call
 * {@link NexusClient.setControls} whenever input changes and read {@link NexusClient.avatar} and
 * {@link NexusClient.objects} each frame. The client ticks itself (inputs at the server's tick
 * rate), reconnects by itself and reports through {@link NexusClient.on}.
 */
export class NexusClient {
  private session: WasmSession | null = null;
  private socket: WebSocketLike | null = null;
  private currentPhase: ConnectionPhase = "connecting";
  private controls: Controls = { right: 0, forward: 0, look: [0, 0, 0], jump: false, run: false };
  private handlers = new Map<keyof ClientEvents, Set<Handler<never>>>();
  private timer: ReturnType<typeof setInterval> | null = null;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private closedByUser = false;
  private attempt = 0;
  private reconnectCount = 0;
  private stateTimes: number[] = [];
  private predictionErrors: number[] = [];
  private lastStatesApplied = 0;
  /** Gaps between ticks longer than usual: [when (ms), gap (ms)], the last 5 s. */
  private stalls: [number, number][] = [];
  private lastTickAt: number | null = null;
  private pending: { clientId: number; avatarId: number | null; resumed: boolean } | null = null;

  private constructor(private readonly options: ConnectOptions) {}

  /** Connects and joins; resolves when welcomed, rejects with a {@link NexusError} (a
   * {@link JoinRejectedError} when the server refuses). */
  static async connect(options: ConnectOptions): Promise<NexusClient> {
    if (!options.url || !options.campaign) {
      throw new NexusError("invalid_config", "url and campaign are required");
    }
    await loadWasm(options.wasm);
    const client = new NexusClient(options);
    await client.open();
    return client;
  }

  /** The connection's phase. */
  get phase(): ConnectionPhase {
    return this.currentPhase;
  }

  /** The client's id (the same after a resumed reconnection, a new one after a fresh join). */
  get clientId(): number | null {
    return this.session?.client_id() ?? null;
  }

  /** The object the client drives. */
  get avatarId(): number | null {
    return this.session?.avatar_id() ?? null;
  }

  /** The encoding the server chose for the state stream. */
  encoding: "binary" | "json" = "binary";

  /** Subscribes to an event; returns the unsubscribe function. */
  on<K extends keyof ClientEvents>(event: K, handler: Handler<ClientEvents[K]>): () => void {
    let set = this.handlers.get(event);
    if (!set) {
      set = new Set();
      this.handlers.set(event, set);
    }
    set.add(handler as Handler<never>);
    return () => set.delete(handler as Handler<never>);
  }

  /** The controls used from the next tick on. Values are clamped; non-finite ones count as 0. */
  setControls(controls: Partial<Controls>): void {
    this.controls = { ...this.controls, ...controls };
  }

  /** Asks for an interaction; returns its request id (the result comes as `interactionResult`). */
  interact(request: InteractionRequest): number {
    const session = this.requireSession();
    let id: number;
    try {
      id = session.interact(JSON.stringify(request));
    } catch (error) {
      throw new NexusError("invalid_request", messageOf(error));
    }
    this.flush();
    return id;
  }

  /** The own avatar as it should be drawn now (predicted, with corrections smoothed). */
  avatar(): AvatarView | null {
    const a = this.session?.avatar();
    if (!a) return null;
    return {
      id: a[0],
      position: [a[1], a[2], a[3]],
      rotation: [a[4], a[5], a[6], a[7]],
      predicted: [a[8], a[9], a[10]],
      correctionOffset: [a[11], a[12], a[13]],
      velocity: [a[14], a[15], a[16]],
      grounded: a[17] !== 0,
    };
  }

  /** Every remote object at the playback time (interpolated from the jitter buffers). */
  objects(): ObjectView[] {
    const flat = this.session?.remote_objects();
    if (!flat) return [];
    const views: ObjectView[] = [];
    for (let i = 0; i + REMOTE_STRIDE <= flat.length; i += REMOTE_STRIDE) {
      views.push({
        id: flat[i],
        kind: KINDS[flat[i + 1]] ?? "dynamic",
        position: [flat[i + 2], flat[i + 3], flat[i + 4]],
        rotation: [flat[i + 5], flat[i + 6], flat[i + 7], flat[i + 8]],
      });
    }
    return views;
  }

  /** Kind, shape and properties of an object the client knows of. */
  objectInfo(id: number): ObjectInfo | null {
    const text = this.session?.object_info(id);
    return text ? (JSON.parse(text) as ObjectInfo) : null;
  }

  /** Ids of every object the client knows of (static ones too). */
  objectIds(): number[] {
    return Array.from(this.session?.object_ids() ?? []);
  }

  /** Figures for a HUD. */
  stats(): ClientStats {
    const now = nowSeconds();
    const session = this.session;
    const raw = session ? JSON.parse(session.stats()) : {};
    const timing = session ? JSON.parse(session.timing(now)) : {};
    const cutoff = performance.now() - 1000;
    while (this.stateTimes.length > 0 && this.stateTimes[0] < cutoff) this.stateTimes.shift();
    while (this.stalls.length > 0 && this.stalls[0][0] < performance.now() - STALL_WINDOW_MS) this.stalls.shift();
    const sorted = [...this.predictionErrors].sort((a, b) => a - b);
    const p99 = sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))] : 0;
    return {
      pingMs: typeof timing.rtt === "number" ? timing.rtt * 1000 : null,
      statesPerSecond: this.stateTimes.length,
      predictionErrorMm: (raw.prediction_error_last ?? 0) * 1000,
      predictionErrorP99Mm: p99 * 1000,
      interpolationDelayMs: (timing.interpolation_delay ?? 0) * 1000,
      statesApplied: raw.states_applied ?? 0,
      bytesReceived: raw.bytes_received ?? 0,
      reconciliations: raw.reconciliations ?? 0,
      corrections: raw.corrections ?? 0,
      malformedFrames: raw.malformed_frames ?? 0,
      reconnects: this.reconnectCount,
      serverTick: timing.server_tick ?? null,
      longestStallMs: this.stalls.reduce((longest, [, gap]) => Math.max(longest, gap), 0),
    };
  }

  /** Leaves the campaign and closes for good (no reconnection). */
  close(): void {
    this.closedByUser = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    if (this.session && this.socket && this.socket.readyState === 1) {
      this.session.leave();
      this.flush();
      this.socket.close(CloseCode.normal, "leave");
    } else {
      this.socket?.close();
    }
    this.stopTicking();
    this.setPhase("closed");
  }

  // ── Connection ───────────────────────────────────────────────────────

  private open(): Promise<void> {
    const options = this.options;
    const Socket = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketClass }).WebSocket;
    if (!Socket) {
      return Promise.reject(new NexusError("invalid_config", "no WebSocket class: pass options.WebSocket"));
    }
    const protocols = options.encoding === "json" ? [Subprotocol.json] : [Subprotocol.binary, Subprotocol.json];
    this.setPhase(this.reconnectCount > 0 || this.attempt > 0 ? "reconnecting" : "connecting");
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const settle = (error?: NexusError) => {
        if (settled) return;
        settled = true;
        clearTimeout(joinTimer);
        if (error) reject(error);
        else resolve();
      };
      let socket: WebSocketLike;
      try {
        socket = new Socket(options.url, protocols);
      } catch (error) {
        settle(new NexusError("connect_failed", messageOf(error)));
        return;
      }
      this.socket = socket;
      socket.binaryType = "arraybuffer";
      const joinTimer = setTimeout(() => {
        settle(new NexusError("timeout", `no welcome within ${options.joinTimeoutMs ?? 10000} ms`));
        socket.close();
      }, options.joinTimeoutMs ?? 10000);

      socket.onopen = () => {
        this.encoding = socket.protocol === Subprotocol.binary ? "binary" : "json";
        const previous = this.session;
        try {
          this.session = new WasmSession(
            JSON.stringify({
              campaign: options.campaign,
              token: options.token,
              name: options.name,
              encoding: this.encoding,
              client_type: options.clientType ?? "web",
              interest_radius: options.interestRadius,
              send_interval_ticks: options.sendIntervalTicks ?? 2,
              predict: options.predict ?? true,
              max_extrapolation: (options.maxExtrapolationMs ?? 0) / 1000,
            }),
          );
        } catch (error) {
          settle(new NexusError("invalid_config", messageOf(error)));
          socket.close();
          return;
        }
        if (previous) {
          // Take the lost session back (same client id and avatar, unacknowledged inputs sent
          // again) if the server still keeps it; otherwise the join is a fresh one.
          this.session.resume_from(previous);
          previous.free();
        }
        this.lastStatesApplied = 0;
        this.session.start(nowSeconds());
        this.setPhase("joining");
        this.flush();
      };

      socket.onmessage = ({ data }) => {
        this.delayed(() => {
          if (this.socket !== socket) return;
          this.receive(data, (event) => {
            if (event.type === "welcomed") {
              this.attempt = 0;
              this.setPhase("active");
              this.startTicking();
              settle();
            } else if (event.type === "server_error" && this.currentPhase === "joining") {
              // Before the welcome, an error answers the join: the join failed, whether or not
              // the server also closes (it does not for a malformed join payload).
              const rejection = new JoinRejectedError(event.code, event.message);
              settle(rejection);
              this.closedByUser = true;
              socket.close(CloseCode.normal, "join rejected");
              this.setPhase("closed");
            }
          });
        });
      };

      socket.onerror = () => {
        // The close event follows with the code; nothing more to learn here.
      };

      socket.onclose = ({ code, reason }) => {
        this.delayed(() => {
          if (this.socket !== socket) return;
          this.stopTicking();
          this.session?.on_closed(reason || `closed with code ${code}`);
          this.drainEvents();
          const serverCode = reason.split(":")[0];
          const joinRefused = this.currentPhase === "joining" || this.currentPhase === "connecting";
          if (!settled) {
            settle(
              joinRefused && reason
                ? new JoinRejectedError(serverCode, reason, code)
                : new NexusError("connect_failed", `closed with code ${code}${reason ? `: ${reason}` : ""}`, code),
            );
            this.setPhase("closed");
            return;
          }
          const willReconnect = !this.closedByUser && this.reconnectAllowed(serverCode);
          this.emit("close", { code, reason, willReconnect });
          if (willReconnect) this.scheduleReconnect(code, reason);
          else this.setPhase("closed");
        });
      };
    });
  }

  private reconnectAllowed(serverCode: string): boolean {
    const option = this.options.reconnect ?? true;
    if (option === false) return false;
    const max = typeof option === "object" ? option.maxAttempts : undefined;
    if (max !== undefined && this.attempt >= max) return false;
    return !FINAL_SERVER_CODES.has(serverCode);
  }

  private scheduleReconnect(code: number, reason: string): void {
    const option = typeof this.options.reconnect === "object" ? this.options.reconnect : {};
    const initial = option.initialDelayMs ?? 250;
    const max = option.maxDelayMs ?? 5000;
    this.attempt += 1;
    const delayMs = Math.min(max, initial * 2 ** (this.attempt - 1));
    this.setPhase("reconnecting");
    this.emit("reconnecting", { attempt: this.attempt, delayMs, code, reason });
    this.reconnectTimer = setTimeout(() => {
      if (this.closedByUser) return;
      this.open().then(
        () => {
          this.reconnectCount += 1;
        },
        (error: NexusError) => {
          if (this.closedByUser) return;
          if (error instanceof JoinRejectedError && FINAL_SERVER_CODES.has(error.serverCode)) {
            this.emit("error", error);
            this.setPhase("closed");
          }
          // Otherwise the socket's close handler already scheduled the next attempt… unless the
          // join timed out on an open socket: then schedule it here.
          else if (this.currentPhase !== "reconnecting") this.scheduleReconnect(error.closeCode ?? 1006, error.message);
        },
      );
    }, delayMs);
  }

  // ── Frames ───────────────────────────────────────────────────────────

  private receive(data: unknown, onEvent: (event: RawEvent) => void): void {
    const session = this.session;
    if (!session) return;
    const now = nowSeconds();
    const before = this.lastStatesApplied;
    try {
      if (typeof data === "string") session.receive_text(now, data);
      else if (data instanceof ArrayBuffer) session.receive_binary(now, new Uint8Array(data));
      else if (ArrayBuffer.isView(data)) {
        session.receive_binary(now, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      } else {
        throw new Error(`a frame of an unknown type (${typeof data})`);
      }
    } catch (error) {
      const message = messageOf(error);
      const code = message.match(/^([a-z_]+): /)?.[1] ?? "malformed_message";
      this.emit("error", new NexusError(code, message.replace(/^[a-z_]+: /, "")));
    }
    const stats = JSON.parse(session.stats());
    if (stats.states_applied > before) {
      this.lastStatesApplied = stats.states_applied;
      this.stateTimes.push(performance.now());
      if (stats.reconciliations > 0) {
        this.predictionErrors.push(stats.prediction_error_last);
        if (this.predictionErrors.length > 1000) this.predictionErrors.shift();
      }
    }
    this.drainEvents(onEvent);
    this.flush();
  }

  private drainEvents(onEvent?: (event: RawEvent) => void): void {
    const session = this.session;
    if (!session) return;
    const events = JSON.parse(session.poll_events()) as RawEvent[];
    for (const event of events) {
      onEvent?.(event);
      switch (event.type) {
        case "welcomed":
          this.pending = { clientId: event.client_id, avatarId: event.avatar_id, resumed: event.resumed };
          this.emit("welcome", this.pending);
          break;
        case "object_added":
          this.emit("objectAdded", { id: event.id, kind: event.kind });
          break;
        case "object_removed":
          this.emit("objectRemoved", { id: event.id, reason: event.reason });
          break;
        case "interaction_result":
          this.emit("interactionResult", event.result);
          break;
        case "input_rejected":
          this.emit("inputRejected", event.rejection);
          break;
        case "server_error":
          this.emit("serverError", { code: event.code, message: event.message });
          break;
        case "event":
          this.emit("event", event.event);
          break;
        case "closed":
          break;
      }
    }
  }

  /** Sends what the session queued (after the emulated half round trip, if any). */
  private flush(): void {
    const session = this.session;
    const socket = this.socket;
    if (!session || !socket) return;
    for (const frame of session.drain_outgoing()) {
      this.delayed(() => {
        if (socket.readyState === 1) socket.send(frame as string | Uint8Array);
      });
    }
  }

  private startTicking(): void {
    this.stopTicking();
    this.lastTickAt = null; // the time between connections is not a stall
    this.timer = setInterval(() => this.tick(), TICK_INTERVAL_MS);
  }

  private stopTicking(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private tick(): void {
    const session = this.session;
    if (!session || this.currentPhase !== "active") return;
    const at = performance.now();
    if (this.lastTickAt !== null && at - this.lastTickAt > 2 * TICK_INTERVAL_MS) {
      this.stalls.push([at, at - this.lastTickAt]);
      if (this.stalls.length > 1000) this.stalls.shift();
    }
    this.lastTickAt = at;
    const c = this.controls;
    session.update(nowSeconds(), c.right, c.forward, c.look[0], c.look[1], c.look[2], c.jump, c.run);
    this.drainEvents();
    this.flush();
  }

  // Emulated latency keeps order: one FIFO per direction would be exact, but setTimeout with the
  // same delay already fires in order.
  private delayed(action: () => void): void {
    const half = (this.options.emulatedRttMs ?? 0) / 2;
    if (half > 0) setTimeout(action, half);
    else action();
  }

  private requireSession(): WasmSession {
    if (!this.session) throw new NexusError("closed", "not connected");
    return this.session;
  }

  private setPhase(phase: ConnectionPhase): void {
    if (this.currentPhase === phase) return;
    this.currentPhase = phase;
    this.emit("phase", phase);
  }

  private emit<K extends keyof ClientEvents>(event: K, value: ClientEvents[K]): void {
    for (const handler of this.handlers.get(event) ?? []) {
      try {
        (handler as Handler<ClientEvents[K]>)(value);
      } catch (error) {
        // An application's handler must not break the client's own bookkeeping.
        console.error(`NexusClient: a '${event}' handler threw`, error);
      }
    }
  }
}

type RawEvent =
  | { type: "welcomed"; client_id: number; avatar_id: number | null; resumed: boolean }
  | { type: "object_added"; id: number; kind: BodyKind }
  | { type: "object_removed"; id: number; reason: string }
  | { type: "interaction_result"; result: InteractionResult }
  | { type: "input_rejected"; rejection: InputRejection }
  | { type: "server_error"; code: string; message: string }
  | { type: "event"; event: ServerEnvelope }
  | { type: "closed"; reason: string };

function nowSeconds(): number {
  return performance.now() / 1000;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
