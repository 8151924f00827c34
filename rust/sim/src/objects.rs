//! World objects: validation of descriptions and their translation into rapier bodies/colliders.

use rapier3d::prelude::{
    ColliderBuilder, ColliderHandle, Pose, RigidBodyBuilder, RigidBodyHandle, Rotation, Vector,
};
use serde::{Deserialize, Serialize};

use crate::error::SimError;
use crate::shapes::{BuiltShape, build_shape};
use crate::state::{BodyKind, ClientId, ObjectDesc, ObjectId, Properties, Shape};

/// Largest coordinate accepted anywhere (m): far enough for any map, near enough that `f32`
/// still resolves millimetres.
pub(crate) const WORLD_LIMIT: f32 = 100_000.0;
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
    let BuiltShape {
        shape,
        bounding_radius,
    } = build_shape(&desc.shape)?;
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
