//! Meshes that show world objects when no `object_scene` is given: Godot's primitive meshes for
//! boxes, spheres, capsules and cylinders; generated surfaces for heightfields and triangle meshes;
//! the bounding box of a convex hull; a small box for an object whose shape is not known (yet).
//!
//! The geometry is computed in plain Rust ([`Geometry`], testable without the engine) and handed
//! to Godot in one call per mesh.

use godot::classes::base_material_3d::CullMode;
use godot::classes::mesh::{ArrayType, PrimitiveType};
use godot::classes::{
    ArrayMesh, BoxMesh, CapsuleMesh, CylinderMesh, Mesh, MeshInstance3D, SphereMesh,
    StandardMaterial3D,
};
use godot::prelude::*;
use nexus_sim::state::{BodyKind, Shape};

/// Side of the box shown for an object whose shape the client has not received.
const UNKNOWN_SHAPE_SIZE: f32 = 0.5;
/// Most samples of a heightfield drawn; larger fields are drawn from every n-th sample.
const MAX_DRAWN_SAMPLES: usize = 512 * 512;

/// A triangle surface: positions, per-vertex normals, and triangles as index triples.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Geometry {
    /// Vertex positions in the body frame.
    pub vertices: Vec<[f32; 3]>,
    /// Unit normals, one per vertex.
    pub normals: Vec<[f32; 3]>,
    /// Three indices per triangle, wound clockwise as seen from the side the normal points to
    /// (Godot's front faces).
    pub indices: Vec<i32>,
}

/// How an object looks: its colour, chosen by what it is.
pub fn object_color(kind: BodyKind, shape: Option<&Shape>, own_avatar: bool) -> Color {
    match (kind, shape) {
        _ if own_avatar => Color::from_rgb(0.25, 0.85, 0.4),
        (BodyKind::Player, _) => Color::from_rgb(0.3, 0.55, 0.95),
        (BodyKind::Static, Some(Shape::Heightfield { .. })) => Color::from_rgb(0.42, 0.58, 0.33),
        (BodyKind::Static, _) => Color::from_rgb(0.55, 0.57, 0.6),
        (BodyKind::Kinematic, _) => Color::from_rgb(0.62, 0.42, 0.9),
        (BodyKind::Dynamic, _) => Color::from_rgb(0.92, 0.56, 0.2),
    }
}

/// A `MeshInstance3D` showing `shape` (or the small placeholder box without one) in `color`.
pub fn mesh_instance(shape: Option<&Shape>, color: Color) -> Gd<MeshInstance3D> {
    let mut instance = MeshInstance3D::new_alloc();
    set_shape(&mut instance, shape, color);
    instance
}

/// Replaces the mesh and material of `instance` to show `shape`.
pub fn set_shape(instance: &mut Gd<MeshInstance3D>, shape: Option<&Shape>, color: Color) {
    let (mesh, generated) = mesh_for(shape);
    let mut material = StandardMaterial3D::new_gd();
    material.set_albedo(color);
    material.set_roughness(0.85);
    if generated {
        // Meshes from the server need not be wound consistently: show both sides.
        material.set_cull_mode(CullMode::DISABLED);
    }
    instance.set_mesh(&mesh);
    instance.set_material_override(&material);
}

/// The mesh of a shape, and whether it was generated from server data.
fn mesh_for(shape: Option<&Shape>) -> (Gd<Mesh>, bool) {
    let placeholder = || {
        let mut m = BoxMesh::new_gd();
        m.set_size(Vector3::splat(UNKNOWN_SHAPE_SIZE));
        m.upcast::<Mesh>()
    };
    let Some(shape) = shape else {
        return (placeholder(), false);
    };
    match shape {
        Shape::Box { half_extents } => {
            let mut m = BoxMesh::new_gd();
            m.set_size(Vector3::new(
                half_extents[0] * 2.0,
                half_extents[1] * 2.0,
                half_extents[2] * 2.0,
            ));
            (m.upcast(), false)
        }
        Shape::Sphere { radius } => {
            let mut m = SphereMesh::new_gd();
            m.set_radius(*radius);
            m.set_height(radius * 2.0);
            (m.upcast(), false)
        }
        Shape::Capsule {
            half_height,
            radius,
        } => {
            // Godot's capsule height includes the caps; ours does not.
            let mut m = CapsuleMesh::new_gd();
            m.set_radius(*radius);
            m.set_height((half_height + radius) * 2.0);
            (m.upcast(), false)
        }
        Shape::Cylinder {
            half_height,
            radius,
        } => {
            let mut m = CylinderMesh::new_gd();
            m.set_top_radius(*radius);
            m.set_bottom_radius(*radius);
            m.set_height(half_height * 2.0);
            (m.upcast(), false)
        }
        Shape::ConvexHull { points } => match bounds(points) {
            Some((min, max)) => (array_mesh(&box_geometry(min, max)).upcast(), true),
            None => (placeholder(), false),
        },
        Shape::TriangleMesh { vertices, indices } => {
            match triangle_mesh_geometry(vertices, indices) {
                Some(geometry) => (array_mesh(&geometry).upcast(), true),
                None => (placeholder(), false),
            }
        }
        Shape::Heightfield {
            rows,
            cols,
            heights,
            size,
        } => match heightfield_geometry(*rows as usize, *cols as usize, heights, *size) {
            Some(geometry) => (array_mesh(&geometry).upcast(), true),
            None => (placeholder(), false),
        },
    }
}

fn array_mesh(geometry: &Geometry) -> Gd<ArrayMesh> {
    let to_vectors = |items: &[[f32; 3]]| {
        items
            .iter()
            .map(|v| Vector3::new(v[0], v[1], v[2]))
            .collect::<PackedVector3Array>()
    };
    let mut arrays = VarArray::new();
    arrays.resize(ArrayType::MAX.ord() as usize, &Variant::nil());
    arrays.set(
        ArrayType::VERTEX.ord() as usize,
        &to_vectors(&geometry.vertices).to_variant(),
    );
    arrays.set(
        ArrayType::NORMAL.ord() as usize,
        &to_vectors(&geometry.normals).to_variant(),
    );
    arrays.set(
        ArrayType::INDEX.ord() as usize,
        &PackedInt32Array::from(geometry.indices.as_slice()).to_variant(),
    );
    let mut mesh = ArrayMesh::new_gd();
    if !geometry.indices.is_empty() {
        mesh.add_surface_from_arrays(PrimitiveType::TRIANGLES, &arrays);
    }
    mesh
}

/// Smallest and largest coordinates of finite points, `None` without any.
pub fn bounds(points: &[[f32; 3]]) -> Option<([f32; 3], [f32; 3])> {
    let mut finite = points.iter().filter(|p| p.iter().all(|c| c.is_finite()));
    let first = *finite.next()?;
    Some(finite.fold((first, first), |(mut min, mut max), p| {
        for axis in 0..3 {
            min[axis] = min[axis].min(p[axis]);
            max[axis] = max[axis].max(p[axis]);
        }
        (min, max)
    }))
}

/// An axis-aligned box from `min` to `max`, flat-shaded (4 vertices per face).
pub fn box_geometry(min: [f32; 3], max: [f32; 3]) -> Geometry {
    let mut geometry = Geometry::default();
    // Each face: its normal axis and sign; the corners follow from the other two axes.
    for axis in 0..3 {
        for positive in [false, true] {
            let (u, v) = ((axis + 1) % 3, (axis + 2) % 3);
            let level = if positive { max[axis] } else { min[axis] };
            let corner = |a: f32, b: f32| {
                let mut p = [0.0; 3];
                p[axis] = level;
                p[u] = a;
                p[v] = b;
                p
            };
            let quad = [
                corner(min[u], min[v]),
                corner(max[u], min[v]),
                corner(max[u], max[v]),
                corner(min[u], max[v]),
            ];
            let mut normal = [0.0; 3];
            normal[axis] = if positive { 1.0 } else { -1.0 };
            push_quad(&mut geometry, quad, normal);
        }
    }
    geometry
}

/// Adds a planar quad (corners in order around it) as two triangles facing `normal`.
fn push_quad(geometry: &mut Geometry, quad: [[f32; 3]; 4], normal: [f32; 3]) {
    let base = geometry.vertices.len() as i32;
    geometry.vertices.extend_from_slice(&quad);
    geometry.normals.extend_from_slice(&[normal; 4]);
    for (a, b, c) in [(0, 1, 2), (0, 2, 3)] {
        push_facing(
            geometry,
            [base + a, base + b, base + c],
            [quad[a as usize], quad[b as usize], quad[c as usize]],
            normal,
        );
    }
}

/// Adds the triangle `indices` (positions `corners`) wound as a front face towards `normal`.
fn push_facing(
    geometry: &mut Geometry,
    indices: [i32; 3],
    corners: [[f32; 3]; 3],
    normal: [f32; 3],
) {
    let n = triangle_normal(corners);
    // Counter-clockwise (right-hand) towards the normal is a back face for Godot: flip it.
    if dot(n, normal) > 0.0 {
        geometry
            .indices
            .extend_from_slice(&[indices[0], indices[2], indices[1]]);
    } else {
        geometry.indices.extend_from_slice(&indices);
    }
}

/// A triangle mesh, flat-shaded (3 vertices per triangle). Triangles with an index out of range
/// or without area are skipped; `None` when none remains.
pub fn triangle_mesh_geometry(vertices: &[[f32; 3]], indices: &[[u32; 3]]) -> Option<Geometry> {
    let mut geometry = Geometry::default();
    for triangle in indices {
        let Some(corners) = triangle
            .iter()
            .map(|&i| vertices.get(i as usize).copied())
            .collect::<Option<Vec<_>>>()
        else {
            continue;
        };
        let corners = [corners[0], corners[1], corners[2]];
        let n = triangle_normal(corners);
        let Some(normal) = normalize(n) else {
            continue;
        };
        let base = geometry.vertices.len() as i32;
        geometry.vertices.extend_from_slice(&corners);
        geometry.normals.extend_from_slice(&[normal; 3]);
        push_facing(&mut geometry, [base, base + 1, base + 2], corners, normal);
    }
    (!geometry.indices.is_empty()).then_some(geometry)
}

/// A heightfield as the simulation reads it (rapier's convention): `rows` samples along Z and
/// `cols` along X, centred on the origin, spanning `size[0]` × `size[2]`, heights times
/// `size[1]`. Smooth normals; very large fields are drawn from every n-th sample. `None` for an
/// inconsistent field.
pub fn heightfield_geometry(
    rows: usize,
    cols: usize,
    heights: &[f32],
    size: [f32; 3],
) -> Option<Geometry> {
    if rows < 2 || cols < 2 || heights.len() != rows.checked_mul(cols)? {
        return None;
    }
    if !size.iter().chain(heights).all(|v| v.is_finite()) {
        return None;
    }
    let step = {
        let mut step = 1;
        while rows.div_ceil(step) * cols.div_ceil(step) > MAX_DRAWN_SAMPLES {
            step += 1;
        }
        step
    };
    // Every `step`-th sample, always keeping the last row and column so the edges stay put.
    let pick = |count: usize| {
        let mut picked: Vec<usize> = (0..count).step_by(step).collect();
        if picked.last() != Some(&(count - 1)) {
            picked.push(count - 1);
        }
        picked
    };
    let (row_ids, col_ids) = (pick(rows), pick(cols));
    let mut geometry = Geometry::default();
    for &r in &row_ids {
        for &c in &col_ids {
            geometry.vertices.push([
                (c as f32 / (cols - 1) as f32 - 0.5) * size[0],
                heights[r * cols + c] * size[1],
                (r as f32 / (rows - 1) as f32 - 0.5) * size[2],
            ]);
        }
    }
    let width = col_ids.len();
    let mut sums = vec![[0.0f32; 3]; geometry.vertices.len()];
    for i in 0..row_ids.len() - 1 {
        for j in 0..width - 1 {
            let a = i * width + j; // (row i, col j)
            let b = a + 1; // next column (+X)
            let d = a + width; // next row (+Z)
            let e = d + 1;
            for corners in [[a, d, b], [b, d, e]] {
                let positions = corners.map(|k| geometry.vertices[k]);
                // (a, d, b) turns from +Z to +X: its right-hand normal points up.
                let n = triangle_normal(positions);
                for &k in &corners {
                    for axis in 0..3 {
                        sums[k][axis] += n[axis];
                    }
                }
                let indices = corners.map(|k| k as i32);
                push_facing(&mut geometry, indices, positions, [0.0, 1.0, 0.0]);
            }
        }
    }
    geometry.normals = sums
        .into_iter()
        .map(|n| normalize(n).unwrap_or([0.0, 1.0, 0.0]))
        .collect();
    Some(geometry)
}

fn triangle_normal([a, b, c]: [[f32; 3]; 3]) -> [f32; 3] {
    let u = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
    let v = [c[0] - a[0], c[1] - a[1], c[2] - a[2]];
    [
        u[1] * v[2] - u[2] * v[1],
        u[2] * v[0] - u[0] * v[2],
        u[0] * v[1] - u[1] * v[0],
    ]
}

fn dot(a: [f32; 3], b: [f32; 3]) -> f32 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn normalize(v: [f32; 3]) -> Option<[f32; 3]> {
    let length = dot(v, v).sqrt();
    (length.is_finite() && length > 1e-12).then(|| [v[0] / length, v[1] / length, v[2] / length])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Godot's front faces are clockwise seen from where the normal points: the right-hand
    /// normal of the index order must point away from the vertex normal.
    fn assert_front_faces(geometry: &Geometry) {
        for triangle in geometry.indices.chunks(3) {
            let corners = [0, 1, 2].map(|k| geometry.vertices[triangle[k] as usize]);
            let normal = geometry.normals[triangle[0] as usize];
            assert!(
                dot(triangle_normal(corners), normal) < 0.0,
                "triangle {triangle:?} is wound as a back face"
            );
        }
    }

    #[test]
    fn a_flat_heightfield_is_a_centred_upward_grid() {
        let geometry = heightfield_geometry(3, 2, &[1.0; 6], [4.0, 2.0, 10.0]).unwrap();
        assert_eq!(geometry.vertices.len(), 6);
        assert_eq!(geometry.indices.len(), 2 * 2 * 3);
        assert_eq!(geometry.vertices[0], [-2.0, 2.0, -5.0]);
        assert_eq!(geometry.vertices[5], [2.0, 2.0, 5.0]);
        assert!(geometry.normals.iter().all(|n| *n == [0.0, 1.0, 0.0]));
        assert_front_faces(&geometry);
    }

    #[test]
    fn heightfield_samples_follow_the_row_major_layout() {
        // Row 1 (z = +half) column 0 (x = -half) is raised.
        let geometry = heightfield_geometry(2, 2, &[0.0, 0.0, 1.0, 0.0], [2.0, 3.0, 2.0]).unwrap();
        assert_eq!(geometry.vertices[2], [-1.0, 3.0, 1.0]);
    }

    #[test]
    fn huge_heightfields_are_decimated_but_keep_their_edges() {
        let n = 1100;
        let geometry = heightfield_geometry(n, n, &vec![0.0; n * n], [100.0, 1.0, 100.0]).unwrap();
        assert!(geometry.vertices.len() <= MAX_DRAWN_SAMPLES + 2 * n);
        assert_eq!(*geometry.vertices.last().unwrap(), [50.0, 0.0, 50.0]);
    }

    #[test]
    fn inconsistent_heightfields_are_refused() {
        assert!(heightfield_geometry(2, 2, &[0.0; 3], [1.0; 3]).is_none());
        assert!(heightfield_geometry(1, 4, &[0.0; 4], [1.0; 3]).is_none());
        assert!(heightfield_geometry(2, 2, &[0.0, f32::NAN, 0.0, 0.0], [1.0; 3]).is_none());
    }

    #[test]
    fn triangle_meshes_skip_bad_triangles() {
        let vertices = [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]];
        let geometry =
            triangle_mesh_geometry(&vertices, &[[0, 1, 2], [0, 1, 7], [0, 0, 1]]).unwrap();
        assert_eq!(geometry.indices.len(), 3);
        assert_front_faces(&geometry);
        assert!(triangle_mesh_geometry(&vertices, &[[0, 1, 9]]).is_none());
    }

    #[test]
    fn a_box_has_six_outward_faces() {
        let geometry = box_geometry([-1.0, 0.0, -2.0], [1.0, 3.0, 2.0]);
        assert_eq!(geometry.vertices.len(), 24);
        assert_eq!(geometry.indices.len(), 36);
        assert_front_faces(&geometry);
        assert_eq!(
            bounds(&geometry.vertices),
            Some(([-1.0, 0.0, -2.0], [1.0, 3.0, 2.0]))
        );
    }

    #[test]
    fn bounds_ignore_non_finite_points() {
        assert_eq!(bounds(&[]), None);
        assert_eq!(
            bounds(&[[f32::NAN, 0.0, 0.0], [1.0, 2.0, 3.0], [-1.0, 5.0, 0.0]]),
            Some(([-1.0, 2.0, 0.0], [1.0, 5.0, 3.0]))
        );
    }
}
