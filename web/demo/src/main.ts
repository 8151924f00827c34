/**
 * The demo page: joins a campaign of the server that served it and draws it with three.js — the
 * terrain, every body, the own avatar (predicted by the SDK) and the others (interpolated), with
 * a HUD of the connection's figures. Query parameters: `campaign` (default 0), `name`, `token`
 * (default: the name, for development-mode servers), `server` (a ws:// URL; default this host's
 * /ws), `rtt` (an emulated round trip, ms, for trying bad links), `quality=low` (no shadows or
 * antialiasing, one pixel per CSS pixel: for software rendering and slow machines), `fps` (draw at
 * most this many frames a second, which leaves the CPU to the rest of the page).
 *
 * `window.nexusDemo` exposes the client and a few counters for tests and for the console.
 */

import * as THREE from "three";
import {
  NexusClient,
  NexusError,
  JoinRejectedError,
  type ConnectionPhase,
  type ObjectInfo,
  type ServerEnvelope,
  type Shape,
} from "@nexus-physics/client";
import { applyTerrainPatch, colorOf, meshFor, type HeightfieldShape } from "./meshes.js";

const params = new URLSearchParams(location.search);
const campaign = params.get("campaign") ?? "0";
const name = params.get("name") ?? `web-${Math.floor(Math.random() * 1e6)}`;
const token = params.get("token") ?? name;
const server = params.get("server") ?? `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
const emulatedRttMs = Number(params.get("rtt") ?? 0) || 0;
const lowQuality = params.get("quality") === "low";
const maxFps = Number(params.get("fps") ?? 0) || Infinity;
// `transport=webrtc`: states and inputs on WebRTC data channels when the server offers them.
const transport = params.get("transport") === "webrtc" ? "webrtc" : "websocket";

/** What tests and the console can read. */
interface DemoState {
  client: NexusClient | null;
  phase: ConnectionPhase;
  framesRendered: number;
  /** Milliseconds from navigation to the first frame that drew a state. */
  firstStateRenderedMs: number | null;
  objectsDrawn: number;
  lastInteraction: string | null;
  /** Inputs the server refused, by its code (each is also a correction of the prediction). */
  inputsRejected: Record<string, number>;
  error: string | null;
}
const demo: DemoState = {
  client: null,
  phase: "connecting",
  framesRendered: 0,
  firstStateRenderedMs: null,
  objectsDrawn: 0,
  lastInteraction: null,
  inputsRejected: {},
  error: null,
};
(window as unknown as { nexusDemo: DemoState }).nexusDemo = demo;

const canvas = document.getElementById("view") as HTMLCanvasElement;
const phaseLine = document.getElementById("phase")!;
const figures = document.getElementById("figures")!;
const messageLine = document.getElementById("message")!;
const banner = document.getElementById("banner")!;

function showBanner(text: string | null): void {
  banner.hidden = text === null;
  banner.textContent = text ?? "";
}

function fail(text: string): void {
  demo.error = text;
  showBanner(text);
  phaseLine.textContent = "not connected";
  phaseLine.dataset.phase = "closed";
}

// ── Scene ────────────────────────────────────────────────────────────────

let renderer: THREE.WebGLRenderer;
try {
  // preserveDrawingBuffer: the canvas can be read back (screenshots, tests).
  renderer = new THREE.WebGLRenderer({ canvas, antialias: !lowQuality, preserveDrawingBuffer: true });
} catch (error) {
  fail(`This browser cannot draw WebGL: ${String(error)}`);
  throw error;
}
renderer.setPixelRatio(lowQuality ? 1 : Math.min(devicePixelRatio, 2));
renderer.shadowMap.enabled = !lowQuality;
const scene = new THREE.Scene();
scene.background = new THREE.Color(0x9cc3e6);
scene.fog = new THREE.Fog(0x9cc3e6, 60, 220);
const camera = new THREE.PerspectiveCamera(60, 1, 0.1, 500);
scene.add(new THREE.HemisphereLight(0xdfeaff, 0x4a4032, 1.1));
const sun = new THREE.DirectionalLight(0xffffff, 1.6);
sun.position.set(30, 60, 20);
sun.castShadow = true;
sun.shadow.mapSize.set(1024, 1024);
Object.assign(sun.shadow.camera, { left: -40, right: 40, top: 40, bottom: -40, far: 150 });
scene.add(sun, sun.target);

function resize(): void {
  renderer.setSize(innerWidth, innerHeight, false);
  camera.aspect = innerWidth / Math.max(1, innerHeight);
  camera.updateProjectionMatrix();
}
addEventListener("resize", resize);
resize();

interface Drawn {
  mesh: THREE.Mesh;
  shapeKnown: boolean;
  field: HeightfieldShape | null;
  ownAvatar: boolean;
}
const drawn = new Map<number, Drawn>();

/** The mesh of object `id`, made once its shape is known (a placeholder until then) and remade
 * when it becomes or stops being the own avatar (its colour). */
function draw(client: NexusClient, id: number, ownAvatar: boolean): Drawn {
  const entry = drawn.get(id);
  const current = entry?.ownAvatar === ownAvatar ? entry : undefined;
  if (current?.shapeKnown) return current;
  const info: ObjectInfo | null = client.objectInfo(id);
  const shape: Shape | null = info?.shape ?? null;
  if (current && !shape) return current;
  forget(id);
  const mesh = meshFor(shape, colorOf(info?.kind ?? "dynamic", shape, ownAvatar));
  const field = shape?.type === "heightfield" ? structuredClone(shape as HeightfieldShape) : null;
  scene.add(mesh);
  const made = { mesh, shapeKnown: shape !== null, field, ownAvatar };
  drawn.set(id, made);
  return made;
}

function forget(id: number): void {
  const entry = drawn.get(id);
  if (!entry) return;
  scene.remove(entry.mesh);
  entry.mesh.geometry.dispose();
  (entry.mesh.material as THREE.Material).dispose();
  drawn.delete(id);
}

// ── Input ────────────────────────────────────────────────────────────────

const keys = new Set<string>();
let yaw = 0;
let pitch = 0.35;
let distance = 9;
let dragging = false;
addEventListener("keydown", (event) => {
  if (event.repeat) return;
  keys.add(event.code);
  if (event.code === "KeyE") interactNearest();
  if (event.code === "Space") event.preventDefault();
});
addEventListener("keyup", (event) => keys.delete(event.code));
addEventListener("blur", () => keys.clear());
canvas.addEventListener("pointerdown", (event) => {
  dragging = true;
  canvas.setPointerCapture(event.pointerId);
  canvas.focus();
});
canvas.addEventListener("pointerup", () => (dragging = false));
canvas.addEventListener("pointermove", (event) => {
  if (!dragging) return;
  yaw -= event.movementX * 0.005;
  pitch = Math.min(1.3, Math.max(-0.2, pitch + event.movementY * 0.005));
});
canvas.addEventListener("wheel", (event) => {
  distance = Math.min(40, Math.max(3, distance * (event.deltaY > 0 ? 1.1 : 0.9)));
  event.preventDefault();
});

const pressed = (...codes: string[]) => codes.some((code) => keys.has(code));

function updateControls(client: NexusClient): void {
  const forward = (pressed("KeyW", "ArrowUp") ? 1 : 0) - (pressed("KeyS", "ArrowDown") ? 1 : 0);
  const right = (pressed("KeyD", "ArrowRight") ? 1 : 0) - (pressed("KeyA", "ArrowLeft") ? 1 : 0);
  // Movement is relative to where the camera looks, flattened onto the ground.
  client.setControls({
    forward,
    right,
    look: [-Math.sin(yaw), 0, -Math.cos(yaw)],
    jump: pressed("Space"),
    run: pressed("ShiftLeft", "ShiftRight"),
  });
}

let held: number | null = null;

function interactNearest(): void {
  const client = demo.client;
  if (!client || client.phase !== "active") return;
  if (held !== null) {
    client.interact({ kind: "drop" });
    return;
  }
  const me = client.avatar();
  if (!me) return;
  let best: { id: number; distance: number } | null = null;
  for (const object of client.objects()) {
    if (client.objectInfo(object.id)?.properties.pickupable !== true) continue;
    const d = Math.hypot(...object.position.map((v, i) => v - me.position[i]));
    if (!best || d < best.distance) best = { id: object.id, distance: d };
  }
  // The server judges the reach; the nearest is the best candidate.
  if (best) client.interact({ kind: "pickup", target: best.id });
  else messageLine.textContent = "nothing to pick up here";
}

// ── HUD ──────────────────────────────────────────────────────────────────

let lastHud = 0;
function updateHud(client: NexusClient, now: number): void {
  if (now - lastHud < 250) return;
  lastHud = now;
  const stats = client.stats();
  const me = client.avatar();
  const rows: [string, string][] = [
    ["campaign", campaign],
    ["player", `${name}${client.clientId !== null ? ` (#${client.clientId})` : ""}`],
    ["ping", stats.pingMs === null ? "–" : `${stats.pingMs.toFixed(0)} ms`],
    ["states/s", String(stats.statesPerSecond)],
    ["prediction error", `${stats.predictionErrorMm.toFixed(1)} mm (p99 ${stats.predictionErrorP99Mm.toFixed(1)})`],
    ["interpolation", `${stats.interpolationDelayMs.toFixed(0)} ms behind`],
    ["objects", String(demo.objectsDrawn)],
    ["received", `${(stats.bytesReceived / 1024).toFixed(0)} KiB`],
    ["position", me ? me.position.map((v) => v.toFixed(1)).join(", ") : "–"],
  ];
  if (emulatedRttMs) rows.push(["emulated RTT", `${emulatedRttMs} ms`]);
  // The page itself froze (its inputs went out late): worth knowing when corrections show.
  if (stats.longestStallMs > 100) rows.push(["page stalled", `${stats.longestStallMs.toFixed(0)} ms`]);
  figures.replaceChildren(
    ...rows.flatMap(([term, value]) => {
      const dt = document.createElement("dt");
      dt.textContent = term;
      const dd = document.createElement("dd");
      dd.textContent = value;
      dd.dataset.figure = term;
      return [dt, dd];
    }),
  );
}

function setPhase(phase: ConnectionPhase): void {
  demo.phase = phase;
  phaseLine.dataset.phase = phase;
  phaseLine.textContent =
    phase === "active" ? "connected" : phase === "reconnecting" ? "reconnecting…" : phase === "closed" ? "disconnected" : `${phase}…`;
  showBanner(phase === "reconnecting" ? "Connection lost — reconnecting…" : null);
}

// ── Frame ────────────────────────────────────────────────────────────────

const target = new THREE.Vector3();
const toCamera = new THREE.Vector3();
const cameraRay = new THREE.Raycaster();

/** Orbits the camera around the avatar, pulled in front of whatever stands between them (a
 * camera inside a box would show its insides). */
function placeCamera(avatarId: number | null): void {
  toCamera.set(Math.cos(pitch) * Math.sin(yaw), Math.sin(pitch), Math.cos(pitch) * Math.cos(yaw));
  cameraRay.set(target, toCamera);
  cameraRay.far = distance;
  const obstacles = [...drawn].filter(([id]) => id !== avatarId).map(([, entry]) => entry.mesh);
  const hit = cameraRay.intersectObjects(obstacles, false)[0];
  const reach = hit ? Math.max(0.5, hit.distance - 0.3) : distance;
  camera.position.copy(target).addScaledVector(toCamera, reach);
  camera.lookAt(target);
}
function frame(client: NexusClient, now: number): void {
  updateControls(client);
  const seen = new Set<number>();
  const me = client.avatar();
  if (me) {
    const entry = draw(client, me.id, true);
    entry.mesh.position.set(...me.position);
    entry.mesh.quaternion.set(...me.rotation);
    seen.add(me.id);
    target.set(me.position[0], me.position[1] + 1, me.position[2]);
  }
  for (const object of client.objects()) {
    if (object.id === me?.id) continue;
    const entry = draw(client, object.id, false);
    entry.mesh.position.set(...object.position);
    entry.mesh.quaternion.set(...object.rotation);
    seen.add(object.id);
  }
  for (const id of drawn.keys()) if (!seen.has(id)) forget(id);
  demo.objectsDrawn = seen.size;

  placeCamera(me?.id ?? null);
  sun.position.set(target.x + 30, target.y + 60, target.z + 20);
  sun.target.position.copy(target);
  renderer.render(scene, camera);
  demo.framesRendered++;
  if (demo.firstStateRenderedMs === null && seen.size > 0) demo.firstStateRenderedMs = performance.now();
  updateHud(client, now);
}

function onEvent(event: ServerEnvelope): void {
  if (event.type !== "environment:terrain:v1:stream") return;
  const patch = event.payload as { terrain_id: number; row0: number; col0: number; rows: number; cols: number; heights: number[] };
  const entry = drawn.get(patch.terrain_id);
  if (entry?.field) applyTerrainPatch(entry.mesh, entry.field, patch);
}

async function start(): Promise<void> {
  phaseLine.textContent = `connecting to ${server}…`;
  let client: NexusClient;
  try {
    client = await NexusClient.connect({ url: server, campaign, token, name, emulatedRttMs, transport });
  } catch (error) {
    if (error instanceof JoinRejectedError) fail(`The server refused to join campaign ${campaign}: ${error.serverCode}`);
    else if (error instanceof NexusError) fail(`Could not connect to ${server}: ${error.message}`);
    else fail(`Could not start: ${String(error)}`);
    return;
  }
  demo.client = client;
  setPhase(client.phase);
  client.on("phase", setPhase);
  client.on("event", onEvent);
  client.on("welcome", () => {
    // A new connection sends full states again; draw from them.
    for (const id of [...drawn.keys()]) forget(id);
    held = null;
  });
  client.on("interactionResult", (result) => {
    if (result.client_id !== client.clientId) return;
    if (result.success && result.kind === "pickup") held = result.target ?? null;
    if (result.success && result.kind === "drop") held = null;
    demo.lastInteraction = `${result.kind}: ${result.code}`;
    messageLine.textContent = result.success ? `${result.kind}: done` : `${result.kind}: ${result.message || result.code}`;
  });
  client.on("inputRejected", ({ code }) => (demo.inputsRejected[code] = (demo.inputsRejected[code] ?? 0) + 1));
  client.on("serverError", (error) => (messageLine.textContent = `server: ${error.code} ${error.message}`));
  client.on("close", ({ code, reason, willReconnect }) => {
    if (!willReconnect) fail(`Disconnected (${code}${reason ? `: ${reason}` : ""})`);
  });
  canvas.focus();
  let lastFrame = -Infinity;
  const loop = (now: number) => {
    // Half a frame of slack, so that a cap equal to the display's rate does not halve it.
    if (now - lastFrame >= 1000 / maxFps - 8) {
      lastFrame = now;
      frame(client, now);
    }
    requestAnimationFrame(loop);
  };
  requestAnimationFrame(loop);
}

void start();
