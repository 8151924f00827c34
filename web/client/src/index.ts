/**
 * `@nexus-physics/client`: a predicted, interpolated, reconciled view of a Nexus Physics
 * campaign, for browsers and Node. Start with {@link NexusClient.connect}.
 * @packageDocumentation
 */

export {
  NexusClient,
  NexusError,
  JoinRejectedError,
  type AvatarView,
  type ClientEvents,
  type ClientStats,
  type ConnectionPhase,
  type ConnectOptions,
  type Controls,
  type ObjectInfo,
  type ObjectView,
  type ReconnectOptions,
  type WebSocketClass,
  type WebSocketLike,
} from "./client.js";
export { loadWasm, type WasmSource } from "./wasm.js";
export { type RTCPeerConnectionClass, type TransportFallback, type TransportName, type WebRtcPhase } from "./webrtc.js";
export * from "./protocol.js";
