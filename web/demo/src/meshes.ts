/** Three.js meshes for the protocol's shapes, coloured by what the object is. */

import * as THREE from "three";
import type { BodyKind, Shape, Vec3 } from "@nexus-physics/client";

/** Side of the placeholder box drawn until an object's shape is known. */
const PLACEHOLDER_SIZE = 0.5;
/** Most samples of a heightfield drawn; larger fields are drawn from every n-th sample. */
const MAX_DRAWN_SAMPLES = 256 * 256;

export function colorOf(kind: BodyKind, shape: Shape | null, ownAvatar: boolean): number {
  if (ownAvatar) return 0x40d966;
  if (kind === "player") return 0x4d8cf2;
  if (kind === "static") return shape?.type === "heightfield" ? 0x6b9454 : 0x8c9199;
  if (kind === "kinematic") return 0x9e6be6;
  return 0xeb8f33;
}

/** A mesh showing `shape` (a small box when unknown). */
export function meshFor(shape: Shape | null, color: number): THREE.Mesh {
  const generated = shape?.type === "heightfield" || shape?.type === "triangle_mesh" || shape?.type === "convex_hull";
  const material = new THREE.MeshStandardMaterial({
    color,
    roughness: 0.85,
    flatShading: shape?.type === "convex_hull",
    // Server meshes need not be wound consistently: show both sides.
    side: generated ? THREE.DoubleSide : THREE.FrontSide,
  });
  const mesh = new THREE.Mesh(geometryFor(shape), material);
  mesh.castShadow = shape?.type !== "heightfield";
  mesh.receiveShadow = true;
  return mesh;
}

function geometryFor(shape: Shape | null): THREE.BufferGeometry {
  switch (shape?.type) {
    case "box": {
      const [x, y, z] = (shape as { half_extents: Vec3 }).half_extents;
      return new THREE.BoxGeometry(2 * x, 2 * y, 2 * z);
    }
    case "sphere":
      return new THREE.SphereGeometry((shape as { radius: number }).radius, 24, 16);
    case "capsule": {
      const { half_height, radius } = shape as { half_height: number; radius: number };
      return new THREE.CapsuleGeometry(radius, 2 * half_height, 6, 16);
    }
    case "cylinder": {
      const { half_height, radius } = shape as { half_height: number; radius: number };
      return new THREE.CylinderGeometry(radius, radius, 2 * half_height, 24);
    }
    case "convex_hull":
      return boundingBox((shape as { points: Vec3[] }).points);
    case "triangle_mesh": {
      const { vertices, indices } = shape as { vertices: Vec3[]; indices: [number, number, number][] };
      const geometry = new THREE.BufferGeometry();
      geometry.setAttribute("position", new THREE.Float32BufferAttribute(vertices.flat(), 3));
      geometry.setIndex(indices.flat());
      geometry.computeVertexNormals();
      return geometry;
    }
    case "heightfield":
      return heightfieldGeometry(shape as HeightfieldShape);
    default:
      return new THREE.BoxGeometry(PLACEHOLDER_SIZE, PLACEHOLDER_SIZE, PLACEHOLDER_SIZE);
  }
}

function boundingBox(points: Vec3[]): THREE.BufferGeometry {
  const box = new THREE.Box3().setFromPoints(points.map(([x, y, z]) => new THREE.Vector3(x, y, z)));
  const size = box.getSize(new THREE.Vector3());
  const center = box.getCenter(new THREE.Vector3());
  return new THREE.BoxGeometry(size.x, size.y, size.z).translate(center.x, center.y, center.z);
}

export interface HeightfieldShape {
  type: "heightfield";
  rows: number;
  cols: number;
  heights: number[];
  size: Vec3;
}

/** The drawn grid of a heightfield: every `step`-th sample, centred on the body's origin, rows
 * along Z and columns along X (the simulation's layout). */
function heightfieldGeometry(field: HeightfieldShape): THREE.BufferGeometry {
  const step = Math.max(1, Math.ceil(Math.sqrt((field.rows * field.cols) / MAX_DRAWN_SAMPLES)));
  const rows = Math.floor((field.rows - 1) / step) + 1;
  const cols = Math.floor((field.cols - 1) / step) + 1;
  const positions = new Float32Array(rows * cols * 3);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const sr = r * step;
      const sc = c * step;
      const at = (r * cols + c) * 3;
      positions[at] = (sc / (field.cols - 1) - 0.5) * field.size[0];
      positions[at + 1] = (field.heights[sr * field.cols + sc] ?? 0) * field.size[1];
      positions[at + 2] = (sr / (field.rows - 1) - 0.5) * field.size[2];
    }
  }
  const indices: number[] = [];
  for (let r = 0; r + 1 < rows; r++) {
    for (let c = 0; c + 1 < cols; c++) {
      const a = r * cols + c;
      indices.push(a, a + cols, a + 1, a + 1, a + cols, a + cols + 1);
    }
  }
  const geometry = new THREE.BufferGeometry();
  geometry.setAttribute("position", new THREE.BufferAttribute(positions, 3));
  geometry.setIndex(indices);
  geometry.computeVertexNormals();
  geometry.userData = { step, rows, cols };
  return geometry;
}

/** Applies a terrain edit (a block of samples, row-major) to the field and its drawn mesh. */
export function applyTerrainPatch(
  mesh: THREE.Mesh,
  field: HeightfieldShape,
  patch: { row0: number; col0: number; rows: number; cols: number; heights: number[] },
): void {
  for (let r = 0; r < patch.rows; r++) {
    for (let c = 0; c < patch.cols; c++) {
      const row = patch.row0 + r;
      const col = patch.col0 + c;
      if (row < field.rows && col < field.cols) field.heights[row * field.cols + col] = patch.heights[r * patch.cols + c];
    }
  }
  const { step, cols } = mesh.geometry.userData as { step: number; cols: number };
  const position = mesh.geometry.getAttribute("position") as THREE.BufferAttribute;
  const firstRow = Math.floor(patch.row0 / step);
  const lastRow = Math.floor((patch.row0 + patch.rows - 1) / step);
  const firstCol = Math.floor(patch.col0 / step);
  const lastCol = Math.floor((patch.col0 + patch.cols - 1) / step);
  for (let r = firstRow; r <= lastRow; r++) {
    for (let c = firstCol; c <= Math.min(lastCol, cols - 1); c++) {
      const sample = field.heights[r * step * field.cols + c * step] ?? 0;
      if (r * cols + c < position.count) position.setY(r * cols + c, sample * field.size[1]);
    }
  }
  position.needsUpdate = true;
  mesh.geometry.computeVertexNormals();
}
