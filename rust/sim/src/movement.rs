//! Player movement: the one implementation both the server and a predicting client run.
//!
//! A client that predicts its own avatar calls [`step_character`] with the same
//! [`MovementSettings`], the same inputs and a query view of its copy of the world; as long as the
//! world around the avatar agrees, the result is bit-identical to the server's, so reconciliation
//! only corrects real disagreements (other players, late objects), never rounding drift.
//!
//! How it works, per input (one input = one tick of movement):
//! 1. the look direction (if non-zero) becomes the avatar's facing; the movement vector
//!    `[right, forward]` is turned into a horizontal velocity in that frame (walk or run speed);
//! 2. vertical speed: a jump when grounded, then gravity, capped at a terminal speed;
//! 3. rapier's [`KinematicCharacterController`] sweeps the capsule: slides along walls, climbs
//!    slopes up to `max_slope_degrees`, steps up onto ledges up to `step_height`, snaps to the
//!    ground when walking down;
//! 4. the caller applies the collisions to dynamic bodies with [`push_bodies`] (server side).

use rapier3d::control::{
    CharacterAutostep, CharacterCollision, CharacterLength, KinematicCharacterController,
};
use rapier3d::prelude::{Capsule, Pose, QueryPipeline, QueryPipelineMut, Vector};
use serde::{Deserialize, Serialize};

use crate::command::PlayerInput;

/// Tunables of player movement. Part of the world configuration; a predicting client must use the
/// server's values (the welcome message can carry them).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MovementSettings {
    /// Walking speed, m/s.
    pub walk_speed: f32,
    /// Running speed, m/s.
    pub run_speed: f32,
    /// Vertical speed given by a jump, m/s.
    pub jump_speed: f32,
    /// Fastest fall, m/s.
    pub max_fall_speed: f32,
    /// Steepest slope the avatar walks up, degrees.
    pub max_slope_degrees: f32,
    /// From this slope on, the avatar slides down, degrees.
    pub slide_slope_degrees: f32,
    /// Highest ledge the avatar steps onto without jumping, m.
    pub step_height: f32,
    /// Minimum free width on top of a ledge for a step, m.
    pub step_min_width: f32,
    /// The avatar sticks to the ground when it is at most this far below, m.
    pub snap_distance: f32,
    /// Half height of the capsule's cylindrical part, m.
    pub capsule_half_height: f32,
    /// Radius of the capsule, m.
    pub capsule_radius: f32,
    /// Mass used when the avatar pushes dynamic bodies, kg.
    pub mass: f32,
}

impl Default for MovementSettings {
    fn default() -> Self {
        MovementSettings {
            walk_speed: 4.0,
            run_speed: 7.5,
            jump_speed: 5.5,
            max_fall_speed: 50.0,
            max_slope_degrees: 45.0,
            slide_slope_degrees: 50.0,
            step_height: 0.35,
            step_min_width: 0.15,
            snap_distance: 0.25,
            capsule_half_height: 0.55,
            capsule_radius: 0.35,
            mass: 80.0,
        }
    }
}

impl MovementSettings {
    /// The avatar's collision shape.
    pub fn capsule(&self) -> Capsule {
        Capsule::new_y(self.capsule_half_height, self.capsule_radius)
    }

    /// Rapier's character controller configured from these settings.
    pub fn controller(&self) -> KinematicCharacterController {
        KinematicCharacterController {
            up: Vector::Y,
            // A small absolute skin keeps the sweeps numerically stable whatever the capsule size.
            offset: CharacterLength::Absolute(0.02),
            slide: true,
            autostep: Some(CharacterAutostep {
                max_height: CharacterLength::Absolute(self.step_height),
                min_width: CharacterLength::Absolute(self.step_min_width),
                // Stepping onto loose boxes would let players climb stacks they should push.
                include_dynamic_bodies: false,
            }),
            max_slope_climb_angle: self.max_slope_degrees.to_radians(),
            min_slope_slide_angle: self.slide_slope_degrees.to_radians(),
            snap_to_ground: Some(CharacterLength::Absolute(self.snap_distance)),
            ..KinematicCharacterController::default()
        }
    }
}

/// The movement state of one avatar. Serialisable: it is part of saves and of what a predicting
/// client keeps per input.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CharacterState {
    /// Centre of the capsule, world space.
    pub position: [f32; 3],
    /// Velocity achieved by the last movement step, m/s.
    pub velocity: [f32; 3],
    /// Vertical speed carried between steps (jumps, falls), m/s.
    pub vertical_speed: f32,
    /// Normalised look direction.
    pub look: [f32; 3],
    /// Standing on something after the last step.
    pub grounded: bool,
}

impl CharacterState {
    /// A character standing at `position`, looking down -Z (Godot's forward).
    pub fn new(position: [f32; 3]) -> Self {
        CharacterState {
            position,
            velocity: [0.0; 3],
            vertical_speed: 0.0,
            look: [0.0, 0.0, -1.0],
            grounded: false,
        }
    }

    /// Unit horizontal facing derived from the look direction (-Z when looking straight up/down).
    pub fn forward(&self) -> Vector {
        let flat = Vector::new(self.look[0], 0.0, self.look[2]);
        let len = flat.length();
        if len > 1.0e-4 {
            flat / len
        } else {
            Vector::new(0.0, 0.0, -1.0)
        }
    }

    /// Yaw-only rotation of the avatar as a quaternion `[x, y, z, w]`.
    pub fn rotation(&self) -> [f32; 4] {
        let forward = self.forward();
        // Rotation about +Y that maps -Z onto `forward`.
        let yaw = (-forward.x).atan2(-forward.z);
        let (s, c) = (yaw * 0.5).sin_cos();
        [0.0, s, 0.0, c]
    }
}

/// Advances one avatar by one input (`dt` seconds) against the world seen through `queries`
/// (which must exclude the avatar's own collider and anything it holds). Collisions with other
/// colliders are appended to `collisions` for [`push_bodies`].
///
/// Inputs are trusted to be validated (finite, movement within -1..=1): the world's input queue
/// guarantees it; the function still clamps the movement vector so a client cannot outrun the
/// server by sending longer vectors.
pub fn step_character(
    settings: &MovementSettings,
    gravity_y: f32,
    dt: f32,
    state: &CharacterState,
    input: &PlayerInput,
    queries: &QueryPipeline,
    collisions: &mut Vec<CharacterCollision>,
) -> CharacterState {
    let mut next = *state;
    let look = Vector::from_array(input.look);
    let look_len = look.length();
    if look_len.is_finite() && look_len > 1.0e-6 {
        next.look = (look / look_len).to_array();
    }

    let forward = next.forward();
    let right = forward.cross(Vector::Y);
    let mut wish = right * input.movement[0] + forward * input.movement[1];
    let wish_len = wish.length();
    if wish_len > 1.0 {
        wish /= wish_len;
    }
    let speed = if input.run {
        settings.run_speed
    } else {
        settings.walk_speed
    };
    let horizontal = wish * speed;

    let mut vertical_speed = state.vertical_speed;
    if state.grounded {
        vertical_speed = if input.jump { settings.jump_speed } else { 0.0 };
    }
    vertical_speed = (vertical_speed + gravity_y * dt).max(-settings.max_fall_speed);

    let desired = Vector::new(horizontal.x * dt, vertical_speed * dt, horizontal.z * dt);
    let controller = settings.controller();
    let capsule = settings.capsule();
    let pose = Pose::from_translation(Vector::from_array(state.position));
    let moved = controller.move_shape(dt, queries, &capsule, &pose, desired, |collision| {
        collisions.push(collision)
    });

    let position = Vector::from_array(state.position) + moved.translation;
    next.position = position.to_array();
    next.velocity = (moved.translation / dt).to_array();
    next.grounded = moved.grounded;
    // Landing or bumping the head ends the vertical motion; otherwise it carries on.
    if (moved.grounded && vertical_speed <= 0.0)
        || (desired.y > 0.0 && moved.translation.y < desired.y * 0.5)
    {
        vertical_speed = 0.0;
    }
    next.vertical_speed = vertical_speed;
    next
}

/// Applies the avatar's collisions of one step to the dynamic bodies it walked into (rapier's
/// approximate impulse transfer), so players push boxes.
pub fn push_bodies(
    settings: &MovementSettings,
    dt: f32,
    queries: &mut QueryPipelineMut,
    collisions: &[CharacterCollision],
) {
    if collisions.is_empty() {
        return;
    }
    let controller = settings.controller();
    controller.solve_character_collision_impulses(
        dt,
        queries,
        &settings.capsule(),
        settings.mass,
        collisions,
    );
}
