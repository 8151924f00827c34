/**
 * {@link NexusClient}: one player's connection to a campaign. The socket, timers and events are
 * here; everything the server's code also knows (prediction with the server's movement solver,
 * reconciliation, the binary state decoder and its delta baselines, interpolation buffers, clock
 * sync) runs in the WebAssembly session built from the Rust client (rust/wasm).
 */

import { WasmSession } from "../wasm/nexus_wasm.js";
import { loadWasm, type WasmSource } from "./wasm.js";
import {
  PeerLink,
  WebRtcEvent,
  binaryStateTick,
  filterInputBatch,
  parseInputBatch,
  type RTCPeerConnectionClass,
  type TransportFallback,
  type TransportName,
  type WebRtcPhase,
} from "./webrtc.js";
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
  /** `websocket` (default): everything on the WebSocket. `webrtc`: once welcomed by a server
   * that offers it (`webrtc: true`), the state stream and the inputs move onto unordered,
   * unreliable WebRTC data channels (PROTOCOL.md section 11), with the WebSocket as the
   * signalling path and the fallback; where WebRTC cannot be used (no `RTCPeerConnection`, a
   * server without it, a failed negotiation) the client stays on the WebSocket and says why in
   * `stats().fallbacks` and the `transport` event. */
  transport?: TransportName;
  /** The `RTCPeerConnection` class (default: the global one; Node has none: pass a polyfill's). */
  RTCPeerConnection?: RTCPeerConnectionClass;
  /** How long the data channel may take to open after the offer before the client gives up on
   * it, ms (default 10000; the server gives up 5 s after its answer). */
  webrtcTimeoutMs?: number;
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
  /** Where state messages come from now: `webrtc` while the server sends them on the data
   * channel (the largest still come on the WebSocket). */
  transport: TransportName;
  /** Where inputs and acks go now. */
  inputTransport: TransportName;
  /** States applied, by the transport they came on. */
  statesByTransport: Record<TransportName, number>;
  /** Binary input batches and acks sent, by transport. */
  inputMessagesByTransport: Record<TransportName, number>;
  /** Binary states skipped unread: not newer than the newest applied (a late data-channel
   * message, or one that lost the race against the WebSocket at a switch). */
  staleStates: number;
  /** The data channel's phase (`off` without `transport: "webrtc"`). */
  webrtc: WebRtcPhase;
  /** Offers sent (since connecting, over every reconnection). */
  webrtcOffers: number;
  /** Every time WebRTC could not be used or the client went back to the WebSocket, oldest first
   * (the last 20). */
  fallbacks: TransportFallback[];
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
  /** Where states come from or inputs go changed, or WebRTC was given up (`fallback`). */
  transport: { state: TransportName; input: TransportName; webrtc: WebRtcPhase; fallback?: TransportFallback };
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
/** Inputs in each message while the data channel may carry them (section 11: "the SDK sends up
 * to 8"): the batch's new ones, and as many of the last unacknowledged ones as fit. */
const INPUTS_PER_DATAGRAM = 8;
const MAX_FALLBACKS_KEPT = 20;

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
  // ── WebRTC (section 11) ──
  private rtc: PeerLink | null = null;
  private webrtcPhase: WebRtcPhase = "off";
  /** The newest welcome said `webrtc: true`. */
  private serverOffersWebRtc = false;
  /** The session repeats unacknowledged inputs (for the data channel). */
  private redundantInputs = false;
  /** Seqs of inputs sent on the WebSocket already (repeating them there is useless). */
  private sentOnSocket = new Set<number>();
  private lastStateTick: number | null = null;
  private statesByTransport: Record<TransportName, number> = { websocket: 0, webrtc: 0 };
  private inputMessagesByTransport: Record<TransportName, number> = { websocket: 0, webrtc: 0 };
  private staleStates = 0;
  private webrtcOffers = 0;
  private fallbacks: TransportFallback[] = [];
  private announced: { state: TransportName; input: TransportName; webrtc: WebRtcPhase } = {
    state: "websocket",
    input: "websocket",
    webrtc: "off",
  };

  private constructor(private readonly options: ConnectOptions) {
    this.redundantInputs = options.transport === "webrtc" && (options.encoding ?? "binary") === "binary" && !!this.peerConnectionClass();
  }

  /** Connects and joins; resolves when welcomed, rejects with a {@link NexusError} (a
   * {@link JoinRejectedError} when the server refuses). */
  static async connect(options: ConnectOptions): Promise<NexusClient> {
    if (!options.url || !options.campaign) {
      throw new NexusError("invalid_config", "url and campaign are required");
    }
    if (options.transport !== undefined && options.transport !== "websocket" && options.transport !== "webrtc") {
      throw new NexusError("invalid_config", `transport ${JSON.stringify(options.transport)} is neither "websocket" nor "webrtc"`);
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
      transport: this.transport,
      inputTransport: this.inputTransport(),
      statesByTransport: { ...this.statesByTransport },
      inputMessagesByTransport: { ...this.inputMessagesByTransport },
      staleStates: this.staleStates,
      webrtc: this.webrtcPhase,
      webrtcOffers: this.webrtcOffers,
      fallbacks: this.fallbacks.map((fallback) => ({ ...fallback })),
    };
  }

  /** Where state messages come from now (see {@link ClientStats.transport}). */
  get transport(): TransportName {
    return this.rtc?.serverOpen ? "webrtc" : "websocket";
  }

  /** Offers WebRTC again after a fallback (with `transport: "webrtc"`, to a server that offers
   * it); false when there is nothing to retry (not asked for, unavailable, not active, or a data
   * channel already open or being negotiated). The server takes at most 8 offers per connection;
   * a reconnection offers again by itself. */
  retryWebRtc(): boolean {
    if (this.options.transport !== "webrtc" || this.rtc || this.currentPhase !== "active" || this.webrtcPhase === "unavailable") {
      return false;
    }
    this.startWebRtc();
    return this.rtc !== null;
  }

  /** Leaves the campaign and closes for good (no reconnection). */
  close(): void {
    this.closedByUser = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    if (this.session && this.socket && this.socket.readyState === 1) {
      this.session.leave();
      this.flush();
      this.dropWebRtc();
      this.socket.close(CloseCode.normal, "leave");
    } else {
      this.dropWebRtc();
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
              // Repeated inputs only matter on the lossy data channel (the WebSocket copy of a
              // batch drops those it carried already, see sendBinary).
              redundant_inputs:
                this.redundantInputs && this.encoding === "binary"
                  ? Math.max(0, INPUTS_PER_DATAGRAM - (options.sendIntervalTicks ?? 2))
                  : 0,
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
        this.lastStateTick = null;
        this.serverOffersWebRtc = false;
        this.sentOnSocket.clear();
        this.session.start(nowSeconds());
        this.setPhase("joining");
        this.flush();
      };

      socket.onmessage = ({ data }) => {
        this.delayed(() => {
          if (this.socket !== socket) return;
          this.receive(data, "websocket", (event) => {
            if (event.type === "welcomed") {
              this.attempt = 0;
              this.setPhase("active");
              this.startTicking();
              settle();
              if (this.options.transport === "webrtc") this.startWebRtc();
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
          // The server forgets the peer with the connection; a new welcome offers again.
          this.dropWebRtc();
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

  /** A frame from either transport: both are one stream into the same session. */
  private receive(data: unknown, transport: TransportName, onEvent?: (event: RawEvent) => void): void {
    const session = this.session;
    if (!session) return;
    const now = nowSeconds();
    const before = this.lastStatesApplied;
    try {
      if (typeof data === "string") {
        if (transport === "websocket" && data.includes("webrtc") && this.signalling(data)) return;
        session.receive_text(now, data);
      } else {
        const bytes =
          data instanceof ArrayBuffer
            ? new Uint8Array(data)
            : ArrayBuffer.isView(data)
              ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
              : null;
        if (!bytes) throw new Error(`a frame of an unknown type (${typeof data})`);
        // Messages may come late or twice across the two transports: never decode a state
        // that is not newer than the newest applied.
        const tick = binaryStateTick(bytes);
        if (tick !== null && this.lastStateTick !== null && tick <= this.lastStateTick) {
          this.staleStates += 1;
          return;
        }
        session.receive_binary(now, bytes);
      }
    } catch (error) {
      const message = messageOf(error);
      const code = message.match(/^([a-z_]+): /)?.[1] ?? "malformed_message";
      this.emit("error", new NexusError(code, message.replace(/^[a-z_]+: /, "")));
    }
    const stats = JSON.parse(session.stats());
    this.lastStateTick = stats.last_state_tick ?? null;
    if (stats.states_applied > before) {
      this.lastStatesApplied = stats.states_applied;
      this.statesByTransport[transport] += stats.states_applied - before;
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
    const link = this.rtc;
    for (const frame of session.drain_outgoing() as (string | Uint8Array)[]) {
      this.delayed(() => {
        if (typeof frame === "string") {
          if (socket.readyState === 1) socket.send(frame);
        } else {
          this.sendBinary(socket, link, frame);
        }
      });
    }
  }

  /** A binary client frame (section 7): on the `input` channel while it is open, otherwise on
   * the WebSocket — there without the repeated inputs it carried already (it is reliable), but
   * with those the data channel may have lost. */
  private sendBinary(socket: WebSocketLike, link: PeerLink | null, frame: Uint8Array): void {
    if (link && link === this.rtc && link.inputOpen && link.sendInput(frame)) {
      this.inputMessagesByTransport.webrtc += 1;
      return;
    }
    if (socket.readyState !== 1) return;
    let out = frame;
    if (this.redundantInputs) {
      const batch = parseInputBatch(frame);
      if (batch) {
        out = filterInputBatch(frame, batch, (seq) => !this.sentOnSocket.has(seq));
        for (const { seq } of batch.inputs) this.sentOnSocket.add(seq);
        // Seqs rise: the oldest come first in the set's order.
        for (const seq of this.sentOnSocket) {
          if (this.sentOnSocket.size <= 256) break;
          this.sentOnSocket.delete(seq);
        }
      }
    }
    socket.send(out);
    this.inputMessagesByTransport.websocket += 1;
  }

  // ── WebRTC ───────────────────────────────────────────────────────────

  private peerConnectionClass(): RTCPeerConnectionClass | undefined {
    return this.options.RTCPeerConnection ?? (globalThis as { RTCPeerConnection?: RTCPeerConnectionClass }).RTCPeerConnection;
  }

  private inputTransport(): TransportName {
    return this.rtc?.inputOpen && this.encoding === "binary" ? "webrtc" : "websocket";
  }

  /** After a welcome (or on {@link NexusClient.retryWebRtc}): a peer connection and its offer. */
  private startWebRtc(): void {
    const PeerConnection = this.peerConnectionClass();
    if (!PeerConnection) {
      this.unavailable("unsupported", "no RTCPeerConnection in this environment (pass options.RTCPeerConnection): staying on the WebSocket");
      return;
    }
    if (!this.serverOffersWebRtc) {
      this.unavailable("not_offered", "the server's welcome does not offer WebRTC: staying on the WebSocket");
      return;
    }
    this.dropWebRtc();
    const socket = this.socket;
    let link: PeerLink;
    try {
      link = new PeerLink(
        PeerConnection,
        {
          signal: (type, payload) => {
            if (this.rtc !== link || this.socket !== socket) return;
            const text = JSON.stringify({ type, payload, metadata: { campaign_id: this.options.campaign, client_type: this.options.clientType ?? "web" } });
            this.delayed(() => {
              if (socket && socket.readyState === 1) socket.send(text);
            });
            if (type === WebRtcEvent.offer) this.webrtcOffers += 1;
          },
          state: (data) =>
            this.delayed(() => {
              if (this.rtc === link) this.receive(data, "webrtc");
            }),
          changed: () => {
            if (this.rtc === link) this.announce();
          },
          failed: (reason, message) => {
            if (this.rtc === link) this.fallBack(reason, message, "client");
          },
        },
        this.options.webrtcTimeoutMs ?? 10_000,
      );
    } catch (error) {
      this.fallBack("failed", `creating the peer connection: ${messageOf(error)}`, "client");
      return;
    }
    this.rtc = link;
    this.webrtcPhase = "negotiating";
    this.announce();
    void link.negotiate();
  }

  /** A signalling event on the WebSocket (true: handled here, not for the session). */
  private signalling(text: string): boolean {
    let envelope: { type?: unknown; payload?: Record<string, unknown> };
    try {
      envelope = JSON.parse(text);
    } catch {
      return false; // the session reports it
    }
    const payload = envelope.payload ?? {};
    const link = this.rtc;
    switch (envelope.type) {
      case "session:welcome:v1:stream":
        this.serverOffersWebRtc = payload.webrtc === true;
        return false;
      case WebRtcEvent.answer:
        if (link && !link.answered && typeof payload.sdp === "string") void link.answer(payload.sdp);
        return true;
      case WebRtcEvent.state:
        // Before its answer, the current link is not what the server speaks of: that was an
        // earlier peer connection (closed already on this side).
        if (!link || !link.answered) return true;
        if (payload.state === "open") {
          link.opened();
          this.webrtcPhase = "open";
          this.announce();
        } else if (payload.state === "closed") {
          const reason = typeof payload.reason === "string" ? payload.reason : "closed";
          this.fallBack(reason, `the server moved the state stream back to the WebSocket (${reason})`, "server");
        }
        return true;
      case "system:error:v1:stream": {
        const code = String(payload.code ?? "");
        const offerRefused = code === "webrtc_unavailable" || payload.request_type === WebRtcEvent.offer;
        if (link && !link.serverOpen && offerRefused) {
          this.fallBack(code, `the server refused the offer: ${String(payload.message ?? code)}`, "server");
        }
        return false; // a serverError event too
      }
      default:
        return false;
    }
  }

  /** Back to the WebSocket for both directions; the next state comes there, a delta against a
   * state acknowledged (whichever transport it came on), so nothing is lost. */
  private fallBack(reason: string, message: string, by: TransportFallback["by"]): void {
    this.rtc?.close();
    this.rtc = null;
    this.webrtcPhase = "closed";
    this.announce(this.record({ reason, message, by, atMs: performance.now() }));
  }

  private unavailable(reason: string, message: string): void {
    this.webrtcPhase = "unavailable";
    this.announce(this.record({ reason, message, by: "client", atMs: performance.now() }));
  }

  /** Closes the peer connection without a fallback (leaving, or the WebSocket is gone). */
  private dropWebRtc(): void {
    if (!this.rtc) return;
    this.rtc.close();
    this.rtc = null;
    if (this.webrtcPhase === "negotiating" || this.webrtcPhase === "open") this.webrtcPhase = "closed";
    this.announce();
  }

  private record(fallback: TransportFallback): TransportFallback {
    this.fallbacks.push(fallback);
    if (this.fallbacks.length > MAX_FALLBACKS_KEPT) this.fallbacks.shift();
    return fallback;
  }

  private announce(fallback?: TransportFallback): void {
    const now = { state: this.transport, input: this.inputTransport(), webrtc: this.webrtcPhase };
    const last = this.announced;
    if (!fallback && now.state === last.state && now.input === last.input && now.webrtc === last.webrtc) return;
    this.announced = now;
    this.emit("transport", fallback ? { ...now, fallback } : now);
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
