/**
 * WebRTC data channels beside the WebSocket (rust/protocol/PROTOCOL.md, section 11): one
 * {@link PeerLink} per offer, and the few byte-level looks at frames the transport needs (the
 * tick of a binary state, the inputs of a binary input batch). Decoding and encoding proper stay
 * in the WebAssembly session; {@link NexusClient} routes frames between the two transports.
 */

/** Where state messages come from, or where inputs go. */
export type TransportName = "websocket" | "webrtc";

/** Where the data channel is: `off` (not asked for, or not welcomed yet), `negotiating`
 * (offer sent, the server has not moved the state stream yet), `open` (states come on the data
 * channel), `closed` (it was given up: see `fallbacks`; {@link NexusClient.retryWebRtc} offers
 * again) or `unavailable` (this environment or this server has no WebRTC). */
export type WebRtcPhase = "off" | "negotiating" | "open" | "closed" | "unavailable";

/** Why the client could not use the data channel, or went back to the WebSocket. Reasons:
 * `unsupported` (no `RTCPeerConnection` here, e.g. Node), `not_offered` (the welcome has no
 * `webrtc: true`), `webrtc_unavailable` / `invalid_payload` / `limit_exceeded` (the server refused
 * the offer), `negotiation_failed` (the browser could not make the offer or take the answer),
 * `timeout` (the channel did not open in time), `channel_closed` (a channel or the peer
 * connection closed), `failed` (the peer connection failed), `unresponsive` and `replaced` (the
 * server's reasons, section 11). */
export interface TransportFallback {
  reason: string;
  message: string;
  /** Who gave the data channel up. */
  by: "client" | "server";
  /** `performance.now()` when it happened, ms. */
  atMs: number;
}

/** What the SDK needs of an `RTCPeerConnection` class (the browser's, or a polyfill's). */
export type RTCPeerConnectionClass = new (configuration?: RTCConfiguration) => RTCPeerConnection;

/** The signalling events (section 11). */
export const WebRtcEvent = {
  offer: "session:webrtc_offer:v1:requested",
  answer: "session:webrtc_answer:v1:stream",
  candidate: "session:webrtc_candidate:v1:requested",
  state: "session:webrtc_state:v1:stream",
} as const;

/** Both channels: the newest state is never held back behind a lost one. */
const CHANNEL_OPTIONS: RTCDataChannelInit = { ordered: false, maxRetransmits: 0 };
const MAX_SDP_BYTES = 16_384;
const MAX_CANDIDATE_BYTES = 1_024;

/** What a {@link PeerLink} asks of its client. */
export interface PeerHost {
  /** Sends a signalling event on the WebSocket. */
  signal(type: string, payload: Record<string, unknown>): void;
  /** A message of the `state` channel. */
  state(data: unknown): void;
  /** A channel opened (the client re-evaluates where inputs go). */
  changed(): void;
  /** The link gave up by itself (it is closed already). */
  failed(reason: string, message: string): void;
}

/** One peer connection with its `state` and `input` channels, from offer to close. */
export class PeerLink {
  /** The server's answer arrived (server signals before it concern an earlier peer). */
  answered = false;
  /** The server said `open`: the state stream is on the data channel. */
  serverOpen = false;
  private readonly pc: RTCPeerConnection;
  private readonly stateChannel: RTCDataChannel;
  private readonly inputChannel: RTCDataChannel;
  private done = false;
  private offerSent = false;
  private endOfCandidatesSent = false;
  private candidates: string[] = [];
  private timer: ReturnType<typeof setTimeout>;

  /** Creates the peer connection and its channels (throws if the class does); call
   * {@link PeerLink.negotiate} next. */
  constructor(
    PeerConnection: RTCPeerConnectionClass,
    private readonly host: PeerHost,
    timeoutMs: number,
  ) {
    this.pc = new PeerConnection({ iceServers: [] });
    try {
      this.stateChannel = this.channel("state");
      this.inputChannel = this.channel("input");
    } catch (error) {
      this.pc.close();
      throw error;
    }
    this.stateChannel.onmessage = (event) => {
      if (!this.done) this.host.state(event.data);
    };
    this.pc.onicecandidate = (event) => this.candidate(event.candidate?.candidate ?? "");
    this.pc.onconnectionstatechange = () => {
      const state = this.pc.connectionState;
      if (state === "failed") this.fail("failed", "the peer connection failed");
      else if (state === "closed") this.fail("channel_closed", "the peer connection closed");
    };
    this.timer = setTimeout(() => {
      if (!this.serverOpen) this.fail("timeout", `the data channel did not open within ${timeoutMs} ms`);
    }, timeoutMs);
  }

  /** Makes the offer and sends it; candidates follow as they are gathered (trickle). */
  async negotiate(): Promise<void> {
    try {
      const offer = await this.pc.createOffer();
      await this.pc.setLocalDescription(offer);
      if (this.done) return;
      const sdp = this.pc.localDescription?.sdp ?? offer.sdp ?? "";
      if (!sdp) throw new Error("the offer has no SDP");
      if (utf8Length(sdp) > MAX_SDP_BYTES) throw new Error(`the offer's SDP is above ${MAX_SDP_BYTES} bytes`);
      this.host.signal(WebRtcEvent.offer, { sdp });
      this.offerSent = true;
      for (const candidate of this.candidates.splice(0)) this.host.signal(WebRtcEvent.candidate, { candidate });
    } catch (error) {
      this.fail("negotiation_failed", `making the offer: ${messageOf(error)}`);
    }
  }

  /** The server's answer. */
  async answer(sdp: string): Promise<void> {
    if (this.done) return;
    this.answered = true;
    try {
      await this.pc.setRemoteDescription({ type: "answer", sdp });
    } catch (error) {
      this.fail("negotiation_failed", `taking the answer: ${messageOf(error)}`);
    }
  }

  /** The server moved the state stream onto the data channel. */
  opened(): void {
    this.serverOpen = true;
    clearTimeout(this.timer);
  }

  /** Inputs may go on the `input` channel. */
  get inputOpen(): boolean {
    return !this.done && this.inputChannel.readyState === "open";
  }

  /** Sends one binary client frame on the `input` channel; false if it could not. */
  sendInput(frame: Uint8Array): boolean {
    if (!this.inputOpen) return false;
    try {
      this.inputChannel.send(frame as Uint8Array<ArrayBuffer>);
      return true;
    } catch (error) {
      this.fail("failed", `sending on the input channel: ${messageOf(error)}`);
      return false;
    }
  }

  /** Closes the channels and the peer connection (the server sees `channel_closed`). */
  close(): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.timer);
    for (const channel of [this.stateChannel, this.inputChannel]) {
      channel.onopen = channel.onclosing = channel.onclose = channel.onerror = channel.onmessage = null;
    }
    this.pc.onicecandidate = null;
    this.pc.onconnectionstatechange = null;
    try {
      this.stateChannel.close();
      this.inputChannel.close();
      this.pc.close();
    } catch {
      // Closing what is already closed.
    }
  }

  private channel(label: "state" | "input"): RTCDataChannel {
    const channel = this.pc.createDataChannel(label, CHANNEL_OPTIONS);
    channel.binaryType = "arraybuffer";
    channel.onopen = () => this.host.changed();
    // `closing` comes first where the browser has it (the close is under way: stop using it).
    channel.onclosing = channel.onclose = () => this.fail("channel_closed", `the ${label} data channel closed`);
    channel.onerror = (event) => {
      const error = (event as { error?: unknown }).error;
      this.fail("channel_closed", `the ${label} data channel failed${error ? `: ${messageOf(error)}` : ""}`);
    };
    return channel;
  }

  private candidate(candidate: string): void {
    if (this.done) return;
    // An empty candidate (or none) ends the gathering: say so once.
    if (candidate === "") {
      if (this.endOfCandidatesSent) return;
      this.endOfCandidatesSent = true;
    } else if (utf8Length(candidate) > MAX_CANDIDATE_BYTES) {
      return; // the server learns the address from the connectivity checks anyway
    }
    if (this.offerSent) this.host.signal(WebRtcEvent.candidate, { candidate });
    else this.candidates.push(candidate);
  }

  private fail(reason: string, message: string): void {
    if (this.done) return;
    this.close();
    this.host.failed(reason, message);
  }
}

// ── Frames ─────────────────────────────────────────────────────────────

/** The tick of a binary state message (section 6.2), or null if the bytes are not one (the
 * session then reports them). */
export function binaryStateTick(bytes: Uint8Array): number | null {
  if (bytes.length < 4 || bytes[0] !== 1 || bytes[1] !== 0x01) return null;
  return readVarint(bytes, 3)?.value ?? null;
}

/** A binary input batch (section 7, kind 0x81): where its inputs start and end. */
interface InputBatch {
  /** The bytes up to the count: version, kind, ack + 1. */
  headEnd: number;
  inputs: { seq: number; start: number; end: number }[];
}

/** The inputs of a binary input batch, or null if `bytes` is something else (an ack…). */
export function parseInputBatch(bytes: Uint8Array): InputBatch | null {
  if (bytes.length < 4 || bytes[0] !== 1 || bytes[1] !== 0x81) return null;
  const ack = readVarint(bytes, 2);
  if (!ack) return null;
  const count = readVarint(bytes, ack.next);
  if (!count) return null;
  const inputs: InputBatch["inputs"] = [];
  let at = count.next;
  for (let i = 0; i < count.value; i++) {
    const start = at;
    const seq = readVarint(bytes, at);
    if (!seq || seq.next >= bytes.length) return null;
    const flags = bytes[seq.next];
    at = seq.next + 1;
    if (flags & 0x04) {
      const tick = readVarint(bytes, at);
      if (!tick) return null;
      at = tick.next;
    }
    at += 2 + (flags & 0x08 ? 6 : 0);
    if (at > bytes.length) return null;
    inputs.push({ seq: seq.value, start, end: at });
  }
  return at === bytes.length ? { headEnd: ack.next, inputs } : null;
}

/** The batch with only the inputs `keep` accepts (same ack). */
export function filterInputBatch(bytes: Uint8Array, batch: InputBatch, keep: (seq: number) => boolean): Uint8Array {
  const kept = batch.inputs.filter((input) => keep(input.seq));
  if (kept.length === batch.inputs.length) return bytes;
  const count = varintBytes(kept.length);
  const size = batch.headEnd + count.length + kept.reduce((sum, input) => sum + input.end - input.start, 0);
  const out = new Uint8Array(size);
  out.set(bytes.subarray(0, batch.headEnd));
  out.set(count, batch.headEnd);
  let at = batch.headEnd + count.length;
  for (const input of kept) {
    out.set(bytes.subarray(input.start, input.end), at);
    at += input.end - input.start;
  }
  return out;
}

function readVarint(bytes: Uint8Array, at: number): { value: number; next: number } | null {
  let value = 0;
  for (let shift = 0; shift < 64 && at < bytes.length; shift += 7) {
    const byte = bytes[at++];
    value += (byte & 0x7f) * 2 ** shift;
    if ((byte & 0x80) === 0) return { value, next: at };
  }
  return null;
}

function varintBytes(value: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = value % 128;
    value = Math.floor(value / 128);
    if (value === 0) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

function utf8Length(text: string): number {
  return new TextEncoder().encode(text).length;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
