/**
 * Types of the wire protocol's events (rust/protocol/PROTOCOL.md, section 4), as the SDK hands
 * them to the application. Units: metres, seconds, radians; rotations are `[x, y, z, w]`.
 * @packageDocumentation
 */

/** `[x, y, z]`. */
export type Vec3 = [number, number, number];
/** Unit quaternion `[x, y, z, w]`. */
export type Quat = [number, number, number, number];

/** How an object moves. */
export type BodyKind = "dynamic" | "kinematic" | "static" | "player";

/** A collision shape (`type` names the variant). */
export type Shape =
  | { type: "box"; half_extents: Vec3 }
  | { type: "sphere"; radius: number }
  | { type: "capsule"; half_height: number; radius: number }
  | { type: "cylinder"; half_height: number; radius: number }
  | { type: "convex_hull"; points: Vec3[] }
  | { type: "triangle_mesh"; vertices: Vec3[]; indices: [number, number, number][] }
  | { type: "heightfield"; rows: number; cols: number; heights: number[]; size: Vec3 }
  | { type: string; [field: string]: unknown };

/** One object in a world state. `shape` only in full states. */
export interface ObjectState {
  id: number;
  kind: BodyKind;
  position: Vec3;
  rotation: Quat;
  velocity: Vec3;
  angular_velocity: Vec3;
  sleeping: boolean;
  shape?: Shape;
  properties: Record<string, unknown>;
}

/** Weather (`environment:state`, `environment:weather`). */
export interface Weather {
  kind: string;
  intensity: number;
  wind: Vec3;
  transition_to?: string;
  transition_remaining?: number;
}

/** `environment:state:v1:stream`: with `partial`, only the fields present changed. */
export interface EnvironmentState {
  weather?: Weather;
  time_of_day?: number;
  day_length?: number;
  terrain_id?: number;
  terrain_revision?: number;
  partial?: boolean;
}

/** `interaction:result:v1:stream`. */
export interface InteractionResult {
  client_id: number;
  request_id: number;
  kind: string;
  success: boolean;
  code: string;
  message: string;
  target?: number;
  data?: Record<string, unknown>;
}

/** An input the simulation refused (in `session:ack:v1:stream`). */
export interface InputRejection {
  seq: number;
  code: string;
  message: string;
}

/** An interaction request (`interaction:request:v1:requested`); `request_id` is assigned. */
export interface InteractionRequest {
  /** `pickup`, `drop`, `use`, `build`, `destroy` or a custom kind. */
  kind: string;
  /** The object acted on. */
  target?: number;
  /** The object to build (`build` only). */
  build?: {
    kind: BodyKind;
    shape: Shape;
    position: Vec3;
    rotation?: Quat;
    mass?: number;
    friction?: number;
    restitution?: number;
    properties?: Record<string, unknown>;
  };
  /** Kind-specific arguments, e.g. drop: `{"velocity": [x, y, z]}`. */
  args?: Record<string, unknown>;
}

/** Payloads of every server → client event type, by its `type` name. */
export interface ServerPayloads {
  "session:welcome:v1:stream": {
    client_id: number;
    avatar_id: number | null;
    tick_rate: number;
    state_rate: number;
    world_state: { timestamp: number; tick: number; objects: ObjectState[]; physics: Record<string, unknown>; environment: EnvironmentState };
    name: string;
    role: "player" | "admin";
    protocol_version: number;
    encoding: "json" | "binary";
    subprotocol: string;
    interest_radius: number;
    limits: Record<string, number>;
    server_time: number;
  };
  "physics:world_state:v1:stream": {
    tick: number;
    timestamp: number;
    full: boolean;
    baseline: number | null;
    last_input_seq: number | null;
    objects: Partial<ObjectState>[];
    removed: number[];
    left: number[];
    physics?: Record<string, unknown>;
    environment?: EnvironmentState;
  };
  "physics:object_added:v1:stream": { object: ObjectState };
  "environment:object_added:v1:stream": { object: ObjectState };
  "physics:object_removed:v1:stream": { id: number; reason: string };
  "physics:object_update:v1:stream": { object: ObjectState };
  "physics:particles:v1:stream": {
    emitter_id: number;
    tick: number;
    seed: number;
    count: number;
    origin: Vec3;
    params: { direction: Vec3; speed: number; speed_jitter: number; spread: number; lifetime: number; lifetime_jitter: number };
  };
  "interaction:result:v1:stream": InteractionResult;
  "environment:state:v1:stream": EnvironmentState;
  "environment:weather:v1:stream": { weather: Weather };
  "environment:terrain:v1:stream": {
    terrain_id: number;
    revision: number;
    row0: number;
    col0: number;
    rows: number;
    cols: number;
    heights: number[];
  };
  "session:ack:v1:stream": { last_input_seq: number | null; tick: number; rejected: InputRejection[] };
  "session:pong:v1:stream": { nonce: number; client_time: number | null; server_time: number; tick: number };
  "system:error:v1:stream": { code: string; message: string; request_type?: string };
  "system:custom:v1:stream": { name: string; data: unknown };
}

/** A server event type name. */
export type ServerEventType = keyof ServerPayloads;

/** One server event envelope, typed by its `type`. Unknown future types arrive untyped. */
export type ServerEnvelope =
  | { [T in ServerEventType]: { type: T; payload: ServerPayloads[T]; metadata?: Record<string, unknown> } }[ServerEventType]
  | { type: string; payload: Record<string, unknown>; metadata?: Record<string, unknown> };

/** Close codes the server uses (PROTOCOL.md section 2). */
export const CloseCode = {
  normal: 1000,
  goingAway: 1001,
  protocolError: 1002,
  invalidData: 1007,
  policy: 1008,
  tooBig: 1009,
} as const;

/** The WebSocket subprotocols, by state-stream encoding. */
export const Subprotocol = { json: "nexus.json.v1", binary: "nexus.binary.v1" } as const;
