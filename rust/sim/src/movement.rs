//! Player movement: the one implementation both the server and a predicting client run.
//!
//! A client that predicts its own avatar calls [`step_character`] with the same
//! [`MovementSettings`], the same inputs and a query view of its copy of the world; as long as the
//! world around the avatar agrees, the result is bit-identical to the server's, so reconciliation
//! only corrects real disagreements (other players, late objects), never rounding drift.
//!
//! How it works, per input (one input = one tick of movement, however many inputs a tick applies):
//! 1. the look direction (if non-zero) becomes the avatar's facing; the movement vector
//!    `[right, forward]` is turned into a horizontal velocity in that frame (walk or run speed);
//! 2. vertical speed: a jump when grounded, then gravity, capped at a terminal speed;
//! 3. the capsule moves in separate sweeps of rapier's [`KinematicCharacterController`]: it is
//!    first lifted by [`GROUND_LIFT`]; then it moves horizontally (slides
//!    along walls, climbs slopes up to `max_slope_degrees`, steps onto ledges up to
//!    `step_height` when grounded); then a grounded avatar that did not jump settles straight
//!    down onto the ground within the lift plus `snap_distance`, and any other one sweeps
//!    vertically (jump, fall, sliding down ground steeper than `slide_slope_degrees`);
//! 4. the caller applies the collisions to dynamic bodies with [`push_bodies`] (server side).
//!
//! Why separate sweeps: one diagonal sweep (walk plus gravity) from a resting height inside the
//! controller's skin hit the floor it stood on, and rapier's slope handling then split the
//! horizontal motion against a floor normal that is vertical up to rounding: the sign of that
//! rounding decided whether the rest of the step was cancelled (about 1 % of flat-ground steps
//! were partly or wholly blocked), and each such hit nudged the avatar up by 0.1 mm, so its
//! height wandered through the skin. Lifted, the horizontal sweep runs clear of a flat floor;
//! the settling cast starts clear of the skin too (casts that start on the skin's boundary can
//! be off by millimetres) and ends exactly at the skin's distance, so every grounded step ends at
//! the same height whatever height it started from: states that differ by less than the skin (an
//! idle step the server applied while a batch was late, a correction to a quantised position)
//! converge instead of drifting apart into lost steps.

use rapier3d::control::{
    CharacterAutostep, CharacterCollision, CharacterLength, KinematicCharacterController,
};
use rapier3d::parry::bounding_volume::BoundingVolume;
use rapier3d::parry::query::ShapeCastOptions;
use rapier3d::prelude::{Capsule, Pose, QueryPipeline, QueryPipelineMut, Shape, Vector};
use serde::{Deserialize, Serialize};

use crate::command::PlayerInput;

/// Gap the controller keeps between the capsule and everything else, m. Absolute so the sweeps
/// stay numerically stable whatever the capsule size.
pub const SKIN: f32 = 0.02;
/// How far the avatar is lifted before its horizontal sweep, m: the sweep then starts a clear
/// centimetre outside the floor's skin instead of on its boundary.
pub const GROUND_LIFT: f32 = 0.01;
/// An avatar whose feet are within this distance of standable ground beyond the skin counts as
/// grounded (it may jump; its next step settles onto that ground). Small: resting on a steep
/// slope a few centimetres above the floor is not standing on the floor.
pub const GROUND_PROBE: f32 = 0.005;

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

    /// Rapier's character controller configured from these settings, as [`step_character`]'s
    /// sweeps use it. Its own snapping to the ground is off: [`step_character`] settles a
    /// grounded avatar itself, after the horizontal sweep.
    pub fn controller(&self) -> KinematicCharacterController {
        self.controller_stepping(Some(self.step_height))
    }

    /// Smallest vertical component of the normal of ground the avatar stands on: steeper ground
    /// (beyond `slide_slope_degrees`) makes it slide.
    fn standable_normal_y(&self) -> f32 {
        self.slide_slope_degrees.to_radians().cos()
    }

    /// The controller with ledges up to `step_up` metres stepped onto (`None`: no stepping).
    fn controller_stepping(&self, step_up: Option<f32>) -> KinematicCharacterController {
        KinematicCharacterController {
            up: Vector::Y,
            offset: CharacterLength::Absolute(SKIN),
            slide: true,
            autostep: step_up.map(|height| CharacterAutostep {
                max_height: CharacterLength::Absolute(height.max(0.0)),
                min_width: CharacterLength::Absolute(self.step_min_width),
                // Stepping onto loose boxes would let players climb stacks they should push.
                include_dynamic_bodies: false,
            }),
            max_slope_climb_angle: self.max_slope_degrees.to_radians(),
            min_slope_slide_angle: self.slide_slope_degrees.to_radians(),
            snap_to_ground: None,
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

    let capsule = settings.capsule();
    let start = Vector::from_array(state.position);
    let mut position = start;
    let mut push = |collision| collisions.push(collision);

    // 1. Lift the avatar clear of the floor's skin (less under a low ceiling). Airborne ones
    //    too: one that just landed, or was placed at rest, is within the skin as well, and the
    //    vertical sweep below takes the lift back.
    let lifted = cast_capsule(queries, &capsule, position, Vector::Y, GROUND_LIFT)
        .map_or(GROUND_LIFT, |(free, _)| free);
    position.y += lifted;

    // 2. Horizontal: walls, slopes, ledges.
    let walk = Vector::new(horizontal.x * dt, 0.0, horizontal.z * dt);
    if walk != Vector::ZERO {
        // Ledges are stepped onto only from the ground (never in mid-air), measured from the
        // feet: the lift comes off the step height.
        let step_up = state.grounded.then_some(settings.step_height - lifted);
        let controller = settings.controller_stepping(step_up);
        let moved = controller.move_shape(dt, queries, &capsule, &pose(position), walk, &mut push);
        position += moved.translation;
    }

    // 3. Walking on (no jump): settle onto the ground below, down the lift plus up to the snap
    //    distance, so the avatar follows the ground down slopes and off small ledges. One cast
    //    from the lifted height: it starts clear of the skin, where shape casts are accurate (a
    //    cast starting on the skin's boundary can be off by millimetres), and it leaves the
    //    avatar exactly at the skin's distance, so every grounded step ends at the same height.
    let rise = vertical_speed * dt;
    let mut grounded = false;
    if state.grounded && rise <= 0.0 {
        let reach = lifted + settings.snap_distance.max(-rise);
        if let Some((drop, normal)) = cast_capsule(queries, &capsule, position, -Vector::Y, reach)
            && normal.y >= settings.standable_normal_y()
        {
            position.y -= drop;
            grounded = true;
        }
    }

    // 4. Otherwise a vertical sweep: the jump, the fall (off a ledge, from a jump), or sliding
    //    along what the cast met first if it is no ground to stand on: a wall the avatar is
    //    pressed against, a ledge's edge, a steep slope. Grounded again once standable ground is
    //    just below (all nearby colliders count: in the crease where a steep slope meets the
    //    floor, the floor does).
    if !grounded {
        let controller = settings.controller();
        let fall = Vector::new(0.0, rise - lifted, 0.0);
        let moved = controller.move_shape(dt, queries, &capsule, &pose(position), fall, &mut push);
        position += moved.translation;
        grounded = stands_on_ground(settings, queries, &capsule, position);
    }

    let translation = position - start;
    next.position = position.to_array();
    next.velocity = (translation / dt).to_array();
    next.grounded = grounded;
    // Landing or bumping the head ends the vertical motion; otherwise it carries on.
    if (grounded && vertical_speed <= 0.0) || (rise > 0.0 && translation.y < rise * 0.5) {
        vertical_speed = 0.0;
    }
    next.vertical_speed = vertical_speed;
    next
}

/// Whether standable ground lies within [`GROUND_PROBE`] beyond the skin under the capsule at
/// `position`. Every nearby collider is checked, not only the nearest: in the crease where a
/// steep ramp meets the floor both touch the capsule, and the floor must count.
fn stands_on_ground(
    settings: &MovementSettings,
    queries: &QueryPipeline,
    capsule: &Capsule,
    position: Vector,
) -> bool {
    let steepest = settings.standable_normal_y();
    let reach = SKIN + GROUND_PROBE;
    let pose = pose(position);
    let nearby = capsule.compute_aabb(&pose).loosened(reach);
    queries
        .intersect_aabb_conservative(nearby)
        .any(|(_, collider)| {
            let relative = pose.inv_mul(collider.position());
            // `normal1` points from the capsule (not rotated) towards the collider: the ground's
            // own normal is its opposite.
            matches!(
                queries.dispatcher.contact(&relative, capsule, collider.shape(), reach),
                Ok(Some(contact)) if contact.dist <= reach && -contact.normal1.y >= steepest
            )
        })
}

fn pose(position: Vector) -> Pose {
    Pose::from_translation(position)
}

/// How far the capsule at `position` can move along the unit `direction`, up to `max`, before it
/// comes within [`SKIN`] of something, with the normal of what it meets; `None` when nothing is
/// that close.
fn cast_capsule(
    queries: &QueryPipeline,
    capsule: &Capsule,
    position: Vector,
    direction: Vector,
    max: f32,
) -> Option<(f32, Vector)> {
    queries
        .cast_shape(
            &pose(position),
            direction,
            capsule,
            ShapeCastOptions {
                target_distance: SKIN,
                stop_at_penetration: false,
                max_time_of_impact: max,
                compute_impact_geometry_on_penetration: true,
            },
        )
        .map(|(_, hit)| (hit.time_of_impact, hit.normal1))
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
