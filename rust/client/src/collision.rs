//! The predicting client's copy of the world: a rapier collision world that the shared movement
//! code ([`nexus_sim::movement::step_character`]) queries, exactly as the server's world does.
//!
//! How it works:
//! - Every object the client knows the shape of (from the welcome and `object_added`) gets a body
//!   of the same type as on the server (dynamic, kinematic, fixed; other avatars kinematic), since
//!   the character controller treats them differently (no auto-step onto dynamic bodies, kinematic
//!   platforms carry the character). The client's own avatar is left out, as the server's query
//!   excludes it; the object it holds is filtered out, as on the server.
//! - Nothing is ever simulated here: bodies only move to the poses the server streams. Pose
//!   updates are kept pending and applied only near the avatar (the movement of one prediction
//!   window cannot reach further), so far-away traffic costs nothing.
//! - Colliders get no active collision types: the broad phase keeps them for queries but never
//!   pairs them, so refreshing the world costs no contact computation.

use std::collections::HashMap;

use nexus_sim::movement::{self, CharacterState, MovementSettings};
use nexus_sim::shapes::{ShapeError, build_shape};
use nexus_sim::{BodyKind, ObjectId, PlayerInput, Shape, TerrainPatch};
use rapier3d::prelude::{
    ActiveCollisionTypes, ColliderBuilder, ColliderHandle, PhysicsWorld, Pose, QueryFilter,
    RigidBodyBuilder, RigidBodyHandle, Rotation, Vector,
};

use crate::error::ClientError;

#[derive(Clone, Debug)]
struct Mirrored {
    body: RigidBodyHandle,
    collider: ColliderHandle,
    shape: Shape,
    bounding_radius: f32,
    position: [f32; 3],
}

#[derive(Clone, Copy, Debug)]
struct PendingPose {
    position: [f32; 3],
    rotation: [f32; 4],
    velocity: [f32; 3],
}

/// See the module documentation.
pub struct CollisionWorld {
    physics: PhysicsWorld,
    objects: HashMap<ObjectId, Mirrored>,
    pending: HashMap<ObjectId, PendingPose>,
    held: Option<ObjectId>,
    /// Pending poses of objects whose bounding sphere comes within this distance (m) of the
    /// avatar are applied before predicting.
    update_radius: f32,
    dirty: bool,
}

impl CollisionWorld {
    /// An empty world; poses are applied within `update_radius` metres of the avatar.
    pub fn new(update_radius: f32) -> Self {
        CollisionWorld {
            physics: PhysicsWorld::new(),
            objects: HashMap::new(),
            pending: HashMap::new(),
            held: None,
            update_radius: update_radius.max(1.0),
            dirty: false,
        }
    }

    /// Number of objects in the copy.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether the copy is empty.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// Whether object `id` is in the copy.
    pub fn contains(&self, id: ObjectId) -> bool {
        self.objects.contains_key(&id)
    }

    /// Adds (or replaces) an object.
    pub fn insert(
        &mut self,
        id: ObjectId,
        kind: BodyKind,
        shape: &Shape,
        position: [f32; 3],
        rotation: [f32; 4],
    ) -> Result<(), ClientError> {
        // The server's own validation and construction: the copy collides exactly as the server.
        let built = build_shape(shape).map_err(|error| {
            ClientError::new(ShapeError::CODE, format!("object {id}: {}", error.message))
        })?;
        if !position.iter().all(|c| c.is_finite()) {
            return Err(ClientError::new(
                "invalid_state",
                format!("object {id}: position {position:?} is not finite"),
            ));
        }
        self.remove(id);
        let bounding_radius = built.bounding_radius;
        let body = match kind {
            BodyKind::Dynamic => RigidBodyBuilder::dynamic(),
            BodyKind::Kinematic | BodyKind::Player => RigidBodyBuilder::kinematic_position_based(),
            BodyKind::Static => RigidBodyBuilder::fixed(),
        }
        .pose(pose(position, rotation))
        .user_data(u128::from(id));
        let body = self.physics.bodies.insert(body);
        let collider = ColliderBuilder::new(built.shape)
            .active_collision_types(ActiveCollisionTypes::empty())
            .user_data(u128::from(id));
        let collider =
            self.physics
                .colliders
                .insert_with_parent(collider, body, &mut self.physics.bodies);
        self.objects.insert(
            id,
            Mirrored {
                body,
                collider,
                shape: shape.clone(),
                bounding_radius,
                position,
            },
        );
        self.dirty = true;
        Ok(())
    }

    /// Removes an object (no-op if absent).
    pub fn remove(&mut self, id: ObjectId) {
        self.pending.remove(&id);
        if let Some(mirrored) = self.objects.remove(&id) {
            self.physics.remove_body(mirrored.body);
            self.dirty = true;
        }
    }

    /// Records the newest streamed pose of an object; applied by [`CollisionWorld::prepare`] when
    /// the object is near the avatar.
    pub fn set_pose(
        &mut self,
        id: ObjectId,
        position: [f32; 3],
        rotation: [f32; 4],
        velocity: [f32; 3],
    ) {
        if self.objects.contains_key(&id) {
            self.pending.insert(
                id,
                PendingPose {
                    position,
                    rotation,
                    velocity,
                },
            );
        }
    }

    /// The object the avatar holds (left out of the movement queries, as on the server).
    pub fn set_held(&mut self, held: Option<ObjectId>) {
        self.held = held;
    }

    /// Applies a terrain edit to a heightfield object.
    pub fn apply_terrain_patch(&mut self, patch: &TerrainPatch) -> Result<(), ClientError> {
        let Some(mirrored) = self.objects.get(&patch.terrain_id) else {
            return Ok(()); // a terrain the client never received: nothing to keep in sync
        };
        let Shape::Heightfield {
            rows,
            cols,
            heights,
            size,
        } = &mirrored.shape
        else {
            return Err(ClientError::new(
                "invalid_event",
                format!(
                    "terrain patch for object {} which is no heightfield",
                    patch.terrain_id
                ),
            ));
        };
        let (rows, cols) = (*rows, *cols);
        let fits = patch
            .row0
            .checked_add(patch.rows)
            .is_some_and(|r| r <= rows)
            && patch
                .col0
                .checked_add(patch.cols)
                .is_some_and(|c| c <= cols)
            && patch.heights.len() as u64 == u64::from(patch.rows) * u64::from(patch.cols);
        if !fits {
            return Err(ClientError::new(
                "invalid_event",
                format!(
                    "terrain patch {}x{} at ({}, {}) does not fit the {rows}x{cols} terrain",
                    patch.rows, patch.cols, patch.row0, patch.col0
                ),
            ));
        }
        let mut heights = heights.clone();
        for r in 0..patch.rows {
            for c in 0..patch.cols {
                let target = ((patch.row0 + r) * cols + patch.col0 + c) as usize;
                heights[target] = patch.heights[(r * patch.cols + c) as usize];
            }
        }
        let shape = Shape::Heightfield {
            rows,
            cols,
            heights,
            size: *size,
        };
        let body = &self.physics.bodies[mirrored.body];
        let position = body.translation().to_array();
        let rotation = body.rotation().to_array();
        self.insert(
            patch.terrain_id,
            BodyKind::Static,
            &shape,
            position,
            rotation,
        )
    }

    /// Applies the pending poses of objects near `center` and refreshes the broad phase. Call it
    /// before predicting.
    pub fn prepare(&mut self, center: [f32; 3]) {
        let mut applied = Vec::new();
        for (id, pose_update) in &self.pending {
            let Some(mirrored) = self.objects.get(id) else {
                continue;
            };
            let reach = self.update_radius + mirrored.bounding_radius;
            let near = |p: [f32; 3]| distance(p, center) <= reach;
            if near(mirrored.position) || near(pose_update.position) {
                applied.push(*id);
            }
        }
        for id in applied {
            let Some(update) = self.pending.remove(&id) else {
                continue;
            };
            let Some(mirrored) = self.objects.get_mut(&id) else {
                continue;
            };
            mirrored.position = update.position;
            if let Some(body) = self.physics.bodies.get_mut(mirrored.body) {
                body.set_position(pose(update.position, update.rotation), false);
                if body.is_kinematic() && update.velocity.iter().all(|v| v.is_finite()) {
                    // A kinematic platform carries the character by its velocity (as the server's).
                    body.set_linvel(Vector::from_array(update.velocity), false);
                }
            }
            self.dirty = true;
        }
        if self.dirty {
            self.physics.detect_collisions(&(), &());
            self.dirty = false;
        }
    }

    /// One movement step of the avatar: the server's code, against this copy of the world.
    pub fn step_character(
        &self,
        settings: &MovementSettings,
        gravity_y: f32,
        dt: f32,
        state: &CharacterState,
        input: &PlayerInput,
    ) -> CharacterState {
        let mut filter = QueryFilter::default().exclude_sensors();
        if let Some(held) = self.held.and_then(|h| self.objects.get(&h)) {
            filter = filter.exclude_collider(held.collider);
        }
        let query = self.physics.broad_phase.as_query_pipeline(
            self.physics.narrow_phase.query_dispatcher(),
            &self.physics.bodies,
            &self.physics.colliders,
            filter,
        );
        // The server pushes bodies with these collisions; the client only needs its own motion.
        let mut collisions = Vec::new();
        movement::step_character(
            settings,
            gravity_y,
            dt,
            state,
            input,
            &query,
            &mut collisions,
        )
    }
}

fn distance(a: [f32; 3], b: [f32; 3]) -> f32 {
    let d = [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
    (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt()
}

fn pose(position: [f32; 3], rotation: [f32; 4]) -> Pose {
    Pose::from_parts(Vector::from_array(position), unit_rotation(rotation))
}

/// A unit quaternion from `[x, y, z, w]` (identity for a degenerate one).
pub(crate) fn unit_rotation(q: [f32; 4]) -> Rotation {
    let norm = q.iter().map(|c| c * c).sum::<f32>().sqrt();
    if norm.is_finite() && norm > 1e-6 {
        Rotation::from_array(q.map(|c| c / norm))
    } else {
        Rotation::IDENTITY
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ground() -> Shape {
        Shape::Box {
            half_extents: [50.0, 0.5, 50.0],
        }
    }

    #[test]
    fn the_avatar_stands_on_mirrored_ground() {
        let mut world = CollisionWorld::new(30.0);
        world
            .insert(
                1,
                BodyKind::Static,
                &ground(),
                [0.0, -0.5, 0.0],
                [0.0, 0.0, 0.0, 1.0],
            )
            .unwrap();
        world.prepare([0.0, 1.0, 0.0]);
        let settings = MovementSettings::default();
        let mut state = CharacterState::new([0.0, 1.5, 0.0]);
        let input = PlayerInput {
            seq: 1,
            tick: None,
            movement: [0.0, 0.0],
            look: [0.0, 0.0, -1.0],
            jump: false,
            run: false,
        };
        for _ in 0..120 {
            state = world.step_character(&settings, -9.81, 1.0 / 60.0, &state, &input);
        }
        let resting = settings.capsule_half_height + settings.capsule_radius;
        assert!(state.grounded);
        assert!(
            (state.position[1] - resting).abs() < 0.05,
            "{:?}",
            state.position
        );
    }

    #[test]
    fn bad_shapes_are_errors() {
        let mut world = CollisionWorld::new(30.0);
        let bad = Shape::Heightfield {
            rows: 3,
            cols: 3,
            heights: vec![0.0; 4],
            size: [1.0, 1.0, 1.0],
        };
        let err = world
            .insert(2, BodyKind::Static, &bad, [0.0; 3], [0.0, 0.0, 0.0, 1.0])
            .unwrap_err();
        assert_eq!(err.code, "invalid_shape");
        let bad = Shape::Box {
            half_extents: [1.0, -1.0, f32::NAN],
        };
        assert!(
            world
                .insert(3, BodyKind::Dynamic, &bad, [0.0; 3], [0.0; 4])
                .is_err()
        );
        assert!(world.is_empty());
    }

    #[test]
    fn far_pose_updates_wait_until_the_avatar_comes_near() {
        let mut world = CollisionWorld::new(10.0);
        let unit = Shape::Box {
            half_extents: [0.5, 0.5, 0.5],
        };
        world
            .insert(
                5,
                BodyKind::Dynamic,
                &unit,
                [100.0, 0.5, 0.0],
                [0.0, 0.0, 0.0, 1.0],
            )
            .unwrap();
        world.set_pose(5, [101.0, 0.5, 0.0], [0.0, 0.0, 0.0, 1.0], [0.0; 3]);
        world.prepare([0.0, 0.0, 0.0]);
        assert_eq!(world.objects[&5].position, [100.0, 0.5, 0.0]);
        world.prepare([95.0, 0.0, 0.0]);
        assert_eq!(world.objects[&5].position, [101.0, 0.5, 0.0]);
    }
}
