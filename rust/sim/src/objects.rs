//! World objects: validation of descriptions and their translation into rapier bodies/colliders.

use rapier3d::parry::utils::Array2;
use rapier3d::prelude::{
    ColliderBuilder, ColliderHandle, Pose, RigidBodyBuilder, RigidBodyHandle, Rotation,
    SharedShape, Vector,
};
use serde::{Deserialize, Serialize};

use crate::error::SimError;
use crate::state::{BodyKind, ClientId, ObjectDesc, ObjectId, Properties, Shape};

/// Largest coordinate accepted anywhere (m): far enough for any map, near enough that `f32`
/// still resolves millimetres.
pub(crate) const WORLD_LIMIT: f32 = 100_000.0;
/// Largest size of one shape dimension (m).
const SIZE_LIMIT: f32 = 10_000.0;
/// Largest vertex/height count of one mesh or heightfield.
const VERTEX_LIMIT: usize = 1 << 22;

/// What the world remembers of one object besides rapier's body and collider.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ObjectRecord {
    pub id: ObjectId,
    pub kind: BodyKind,
    pub shape: Shape,
    pub body: RigidBodyHandle,
    pub collider: ColliderHandle,
    pub properties: Properties,
    /// Added through the environment (reported as such in `object_added`).
    pub environment: bool,
    /// The client that built it (build interaction) or whose avatar it is.
    pub owner: Option<ClientId>,
    /// The client currently holding it.
    pub held_by: Option<ClientId>,
    /// Radius of a sphere around the body's origin containing the whole shape.
    pub bounding_radius: f32,
    /// Mass in kg (0 for static/kinematic).
    pub mass: f32,
}

/// A validated description, ready to be inserted.
pub(crate) struct PreparedObject {
    pub body: RigidBodyBuilder,
    pub collider: ColliderBuilder,
    pub rotation: [f32; 4],
    pub bounding_radius: f32,
}

fn finite3(v: [f32; 3]) -> bool {
    v.iter().all(|c| c.is_finite())
}

fn check_size(value: f32, what: &str) -> Result<(), SimError> {
    if !value.is_finite() || value <= 0.0 || value > SIZE_LIMIT {
        return Err(SimError::new(
            "invalid_shape",
            format!("{what} must be finite, > 0 and <= {SIZE_LIMIT}, got {value}"),
        ));
    }
    Ok(())
}

/// Normalises a quaternion `[x, y, z, w]`, refusing non-finite or zero ones.
pub(crate) fn normalized_rotation(rotation: [f32; 4]) -> Result<[f32; 4], SimError> {
    let norm = rotation.iter().map(|c| c * c).sum::<f32>().sqrt();
    if !norm.is_finite() || norm < 1.0e-6 {
        return Err(SimError::new(
            "invalid_rotation",
            format!("rotation must be a finite non-zero quaternion, got {rotation:?}"),
        ));
    }
    Ok(rotation.map(|c| c / norm))
}

/// Checks a position is finite and inside the world limits.
pub(crate) fn check_position(position: [f32; 3]) -> Result<(), SimError> {
    if !finite3(position) || position.iter().any(|c| c.abs() > WORLD_LIMIT) {
        return Err(SimError::new(
            "invalid_position",
            format!("position must be finite and within ±{WORLD_LIMIT} m, got {position:?}"),
        ));
    }
    Ok(())
}

/// Builds the rapier shape of a contract shape, validating every number.
pub(crate) fn build_shape(shape: &Shape) -> Result<(SharedShape, f32), SimError> {
    match shape {
        Shape::Box { half_extents } => {
            for (axis, h) in ["x", "y", "z"].iter().zip(half_extents) {
                check_size(*h, &format!("box half extent {axis}"))?;
            }
            let [x, y, z] = *half_extents;
            Ok((SharedShape::cuboid(x, y, z), (x * x + y * y + z * z).sqrt()))
        }
        Shape::Sphere { radius } => {
            check_size(*radius, "sphere radius")?;
            Ok((SharedShape::ball(*radius), *radius))
        }
        Shape::Capsule {
            half_height,
            radius,
        } => {
            check_size(*half_height, "capsule half height")?;
            check_size(*radius, "capsule radius")?;
            Ok((
                SharedShape::capsule_y(*half_height, *radius),
                half_height + radius,
            ))
        }
        Shape::Cylinder {
            half_height,
            radius,
        } => {
            check_size(*half_height, "cylinder half height")?;
            check_size(*radius, "cylinder radius")?;
            Ok((
                SharedShape::cylinder(*half_height, *radius),
                (half_height * half_height + radius * radius).sqrt(),
            ))
        }
        Shape::ConvexHull { points } => {
            if points.len() < 4 || points.len() > VERTEX_LIMIT {
                return Err(SimError::new(
                    "invalid_shape",
                    format!(
                        "a convex hull needs 4..={VERTEX_LIMIT} points, got {}",
                        points.len()
                    ),
                ));
            }
            let points = checked_points(points, "convex hull point")?;
            let radius = max_length(&points);
            let shape = SharedShape::convex_hull(&points).ok_or_else(|| {
                SimError::new(
                    "invalid_shape",
                    "the convex hull points are degenerate (coplanar or duplicates)",
                )
            })?;
            Ok((shape, radius))
        }
        Shape::TriangleMesh { vertices, indices } => {
            if vertices.len() < 3 || vertices.len() > VERTEX_LIMIT {
                return Err(SimError::new(
                    "invalid_shape",
                    format!(
                        "a triangle mesh needs 3..={VERTEX_LIMIT} vertices, got {}",
                        vertices.len()
                    ),
                ));
            }
            if indices.is_empty() || indices.len() > VERTEX_LIMIT {
                return Err(SimError::new(
                    "invalid_shape",
                    format!(
                        "a triangle mesh needs 1..={VERTEX_LIMIT} triangles, got {}",
                        indices.len()
                    ),
                ));
            }
            if let Some(bad) = indices
                .iter()
                .flatten()
                .find(|i| **i as usize >= vertices.len())
            {
                return Err(SimError::new(
                    "invalid_shape",
                    format!(
                        "triangle index {bad} is out of range ({} vertices)",
                        vertices.len()
                    ),
                ));
            }
            let points = checked_points(vertices, "mesh vertex")?;
            let radius = max_length(&points);
            let shape = SharedShape::trimesh(points, indices.clone()).map_err(|e| {
                SimError::new("invalid_shape", format!("invalid triangle mesh: {e:?}"))
            })?;
            Ok((shape, radius))
        }
        Shape::Heightfield {
            rows,
            cols,
            heights,
            size,
        } => {
            let (rows, cols) = (*rows as usize, *cols as usize);
            if rows < 2 || cols < 2 || rows.saturating_mul(cols) > VERTEX_LIMIT {
                return Err(SimError::new(
                    "invalid_shape",
                    format!(
                        "a heightfield needs at least 2x2 samples (and at most {VERTEX_LIMIT}), got {rows}x{cols}"
                    ),
                ));
            }
            if heights.len() != rows * cols {
                return Err(SimError::new(
                    "invalid_shape",
                    format!(
                        "heightfield of {rows}x{cols} needs {} heights, got {}",
                        rows * cols,
                        heights.len()
                    ),
                ));
            }
            if let Some(bad) = heights
                .iter()
                .find(|h| !h.is_finite() || h.abs() > SIZE_LIMIT)
            {
                return Err(SimError::new(
                    "invalid_shape",
                    format!(
                        "heightfield heights must be finite and within ±{SIZE_LIMIT}, got {bad}"
                    ),
                ));
            }
            check_size(size[0], "heightfield size x")?;
            check_size(size[1], "heightfield vertical scale")?;
            check_size(size[2], "heightfield size z")?;
            let shape = SharedShape::heightfield(
                heightfield_array(rows, cols, heights),
                Vector::from_array(*size),
            );
            let max_h = heights.iter().fold(0.0f32, |m, h| m.max(h.abs())) * size[1];
            let radius =
                (size[0] * size[0] * 0.25 + size[2] * size[2] * 0.25 + max_h * max_h).sqrt();
            Ok((shape, radius))
        }
    }
}

/// Parry stores heights column-major with rows along Z and columns along X; the contract is
/// row-major, so this transposes the storage order (not the meaning).
pub(crate) fn heightfield_array(rows: usize, cols: usize, heights: &[f32]) -> Array2<f32> {
    Array2::from_fn(rows, cols, |r, c| heights[r * cols + c])
}

fn checked_points(points: &[[f32; 3]], what: &str) -> Result<Vec<Vector>, SimError> {
    points
        .iter()
        .map(|p| {
            if finite3(*p) && p.iter().all(|c| c.abs() <= SIZE_LIMIT) {
                Ok(Vector::from_array(*p))
            } else {
                Err(SimError::new(
                    "invalid_shape",
                    format!("{what} must be finite and within ±{SIZE_LIMIT}, got {p:?}"),
                ))
            }
        })
        .collect()
}

fn max_length(points: &[Vector]) -> f32 {
    points.iter().fold(0.0f32, |m, p| m.max(p.length()))
}

/// Validates a description and prepares rapier builders for it. `object_id` goes into the
/// body's and collider's user data, so queries map hits back to objects.
pub(crate) fn prepare(desc: &ObjectDesc, object_id: ObjectId) -> Result<PreparedObject, SimError> {
    check_position(desc.position)?;
    let rotation = normalized_rotation(desc.rotation)?;
    if let Some(mass) = desc.mass
        && (!mass.is_finite() || mass <= 0.0 || mass > 1.0e7)
    {
        return Err(SimError::new(
            "invalid_mass",
            format!("mass must be finite, > 0 and <= 1e7 kg, got {mass}"),
        ));
    }
    if !desc.friction.is_finite() || !(0.0..=100.0).contains(&desc.friction) {
        return Err(SimError::new(
            "invalid_material",
            format!("friction must be within 0..=100, got {}", desc.friction),
        ));
    }
    if !desc.restitution.is_finite() || !(0.0..=1.0).contains(&desc.restitution) {
        return Err(SimError::new(
            "invalid_material",
            format!("restitution must be within 0..=1, got {}", desc.restitution),
        ));
    }
    let body = match desc.kind {
        BodyKind::Dynamic => RigidBodyBuilder::dynamic(),
        BodyKind::Kinematic => RigidBodyBuilder::kinematic_position_based(),
        BodyKind::Static => RigidBodyBuilder::fixed(),
        BodyKind::Player => {
            return Err(SimError::new(
                "invalid_kind",
                "player avatars are created with spawn_player",
            ));
        }
    };
    let volumeless = matches!(
        desc.shape,
        Shape::TriangleMesh { .. } | Shape::Heightfield { .. }
    );
    if volumeless && desc.kind == BodyKind::Dynamic {
        return Err(SimError::new(
            "invalid_shape",
            "triangle meshes and heightfields have no volume: they can only be static or kinematic",
        ));
    }
    let (shape, bounding_radius) = build_shape(&desc.shape)?;
    let quat = Rotation::from_array(rotation);
    let body = body
        .pose(Pose::from_parts(Vector::from_array(desc.position), quat))
        .user_data(object_id as u128);
    let mut collider = ColliderBuilder::new(shape)
        .friction(desc.friction)
        .restitution(desc.restitution)
        .user_data(object_id as u128);
    if let Some(mass) = desc.mass {
        collider = collider.mass(mass);
    }
    Ok(PreparedObject {
        body,
        collider,
        rotation,
        bounding_radius,
    })
}
