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
//! 3. the capsule moves in separate sweeps: it is first lifted by [`GROUND_LIFT`]; then it moves
//!    horizontally (slides along walls, climbs slopes up to `max_slope_degrees`, steps onto
//!    ledges up to `step_height` when grounded); then a grounded avatar that did not jump settles
//!    straight down onto the ground within the lift plus `snap_distance`, and any other one
//!    sweeps vertically (jump, fall, sliding down ground steeper than `slide_slope_degrees`);
//! 4. the caller applies the collisions to dynamic bodies with [`push_bodies`] (server side).
//!
//! By default ([`MovementSolver::ClosedForm`]) the sweeps are our own collide-and-slide rather
//! than rapier's `KinematicCharacterController` ([`MovementSolver::RapierController`], same
//! rules): the colliders within reach of the step are gathered from the broad phase once, and
//! the casts against terrain and other avatars are exact and closed-form ([`crate::sweep`]). Rapier's
//! controller walked the broad phase for every cast, ran GJK for every pair, and computed contact
//! manifolds twice per sweep to report a grounded status we do not use: with hundreds of avatars
//! on the terrain that was most of the tick.
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
use rapier3d::parry::bounding_volume::{Aabb, BoundingVolume};
use rapier3d::parry::query::{ShapeCastHit, ShapeCastOptions, ShapeCastStatus};
use rapier3d::parry::shape::TypedShape;
use rapier3d::prelude::{
    Capsule, Collider, ColliderHandle, Pose, QueryPipeline, QueryPipelineMut, Shape, Vector,
};
use serde::{Deserialize, Serialize};

use crate::command::PlayerInput;
use crate::sweep::{self, Core, SweepHit};

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
    /// What performs the sweeps (default: our closed-form casts).
    pub solver: MovementSolver,
}

/// What moves the capsule in [`step_character`]'s sweeps. Both follow the same rules (lift,
/// horizontal sweep with slopes and ledges, settle or vertical sweep) and push the same way; a
/// predicting client must use the server's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MovementSolver {
    /// Our collide-and-slide: the colliders within reach gathered once per step, exact
    /// closed-form casts against terrain triangles, capsules and balls (parry's for other
    /// shapes). About 10 times faster than rapier's controller on terrain.
    #[default]
    ClosedForm,
    /// Rapier's `KinematicCharacterController` (`move_shape`, with its autostep and slope
    /// limits) for the sweeps, parry's shape casts for the lift and the settle.
    RapierController,
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
            solver: MovementSolver::ClosedForm,
        }
    }
}

impl MovementSettings {
    /// The avatar's collision shape.
    pub fn capsule(&self) -> Capsule {
        Capsule::new_y(self.capsule_half_height, self.capsule_radius)
    }

    /// Rapier's character controller configured from these settings: [`push_bodies`] uses its
    /// impulse transfer to dynamic bodies, and [`MovementSolver::RapierController`] its sweeps.
    /// Its own snapping to the ground is off: [`step_character`] settles a grounded avatar
    /// itself, after the horizontal sweep.
    pub fn controller(&self) -> KinematicCharacterController {
        self.controller_stepping(None)
    }

    /// The controller stepping onto ledges up to `step_up` metres (`None`: no stepping).
    fn controller_stepping(&self, step_up: Option<f32>) -> KinematicCharacterController {
        KinematicCharacterController {
            up: Vector::Y,
            offset: CharacterLength::Absolute(SKIN),
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

    /// Smallest vertical component of the normal of ground the avatar stands on: steeper ground
    /// (beyond `slide_slope_degrees`) makes it slide.
    fn standable_normal_y(&self) -> f32 {
        self.slide_slope_degrees.to_radians().cos()
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

    let start = Vector::from_array(state.position);
    let walk = Vector::new(horizontal.x * dt, 0.0, horizontal.z * dt);
    let rise = vertical_speed * dt;
    let (position, grounded) = match settings.solver {
        MovementSolver::ClosedForm => {
            let nearby = Nearby::gather(settings, queries, start, walk.length(), rise);
            sweep_step(&nearby, settings, state, walk, rise, collisions)
        }
        MovementSolver::RapierController => {
            let controller = RapierSweeps {
                settings,
                queries,
                capsule: settings.capsule(),
                dt,
            };
            sweep_step(&controller, settings, state, walk, rise, collisions)
        }
    };

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

/// The sweeps of one step, from `state` by `walk` horizontally and `rise` vertically: where the
/// avatar ends and whether it stands on ground there.
fn sweep_step(
    sweeps: &impl Sweeps,
    settings: &MovementSettings,
    state: &CharacterState,
    walk: Vector,
    rise: f32,
    collisions: &mut Vec<CharacterCollision>,
) -> (Vector, bool) {
    let mut position = Vector::from_array(state.position);

    // 1. Lift the avatar clear of the floor's skin (less under a low ceiling). Airborne ones
    //    too: one that just landed, or was placed at rest, is within the skin as well, and the
    //    vertical sweep below takes the lift back.
    let lifted = sweeps
        .cast(position, Vector::Y, GROUND_LIFT)
        .map_or(GROUND_LIFT, |(toi, _)| toi);
    position.y += lifted;

    // 2. Horizontal: walls, slopes, ledges. Ledges are stepped onto only from the ground (never
    //    in mid-air), measured from the feet: the lift comes off the step height.
    if walk != Vector::ZERO {
        let step_up = state.grounded.then_some(settings.step_height - lifted);
        position = sweeps.slide(position, walk, step_up, collisions);
    }

    // 3. Walking on (no jump): settle onto the ground below, down the lift plus up to the snap
    //    distance, so the avatar follows the ground down slopes and off small ledges. One cast
    //    from the lifted height: it starts clear of the skin, and it leaves the avatar exactly
    //    at the skin's distance, so every grounded step ends at the same height.
    let mut grounded = false;
    if state.grounded && rise <= 0.0 {
        let reach = lifted + settings.snap_distance.max(-rise);
        if let Some((toi, normal)) = sweeps.cast(position, -Vector::Y, reach)
            && normal.y >= settings.standable_normal_y()
        {
            position.y -= toi;
            grounded = true;
        }
    }

    // 4. Otherwise a vertical sweep: the jump, the fall (off a ledge, from a jump), or sliding
    //    along what the cast met first if it is no ground to stand on: a wall the avatar is
    //    pressed against, a ledge's edge, a steep slope. Grounded again once standable ground is
    //    just below (every nearby piece counts: in the crease where a steep slope meets the
    //    floor, the floor does).
    if !grounded {
        let fall = Vector::new(0.0, rise - lifted, 0.0);
        position = sweeps.slide(position, fall, None, collisions);
        grounded = sweeps.stands_on_ground(position);
    }
    (position, grounded)
}

/// The sweeping primitives [`sweep_step`] needs; see [`MovementSolver`].
trait Sweeps {
    /// How far the capsule at `from` moves along the unit `dir`, up to `max`, before it comes
    /// within [`SKIN`] of something, and the normal of what it meets.
    fn cast(&self, from: Vector, dir: Vector, max: f32) -> Option<(f32, Vector)>;
    /// Moves the capsule from `from` by `motion`, sliding along what it meets and stepping onto
    /// ledges up to `step_up`; dynamic bodies met go to `collisions`. Returns where it ends.
    fn slide(
        &self,
        from: Vector,
        motion: Vector,
        step_up: Option<f32>,
        collisions: &mut Vec<CharacterCollision>,
    ) -> Vector;
    /// Whether standable ground lies within [`GROUND_PROBE`] beyond the skin under the capsule
    /// at `position`.
    fn stands_on_ground(&self, position: Vector) -> bool;
}

impl Sweeps for Nearby<'_> {
    fn cast(&self, from: Vector, dir: Vector, max: f32) -> Option<(f32, Vector)> {
        Nearby::cast(self, from, dir, max, Pieces::All).map(|hit| (hit.toi, hit.normal))
    }

    /// Moves the capsule from `from` by `motion`, sliding along what it meets (up to
    /// [`MAX_SLIDES`] times) and stepping onto ledges up to `step_up` high; the dynamic bodies it
    /// walks into go to `collisions`. Returns where it ends.
    fn slide(
        &self,
        from: Vector,
        motion: Vector,
        step_up: Option<f32>,
        collisions: &mut Vec<CharacterCollision>,
    ) -> Vector {
        let mut position = from;
        let mut remaining = motion;
        for _ in 0..MAX_SLIDES {
            let length = remaining.length();
            if length < 1.0e-5 {
                break;
            }
            let dir = remaining / length;
            let Some(hit) = self.cast(position, dir, length, Pieces::All) else {
                position += remaining;
                break;
            };
            position += dir * hit.toi;
            remaining = dir * (length - hit.toi);
            if hit.dynamic {
                collisions.push(self.collision(&hit, position, from, remaining));
            }
            if let Some(height) = step_up
                && !hit.dynamic
                && self.is_wall(hit.normal)
                && let Some((rise, nudge)) = self.step_onto_ledge(position, remaining, height)
            {
                position += Vector::Y * rise + nudge;
                remaining -= nudge;
                continue;
            }
            remaining = self.slide_along(remaining, hit.normal);
        }
        position
    }

    /// Whether standable ground lies within [`GROUND_PROBE`] beyond the skin under the capsule
    /// at `position`. Every nearby piece is checked, not only the nearest: in the crease where
    /// a steep ramp meets the floor both touch the capsule, and the floor must count.
    fn stands_on_ground(&self, position: Vector) -> bool {
        let steepest = self.settings.standable_normal_y();
        let swept = self.swept_aabb(position, -Vector::Y, GROUND_PROBE);
        self.candidates.iter().any(|candidate| {
            let mut standable = false;
            if candidate.aabb.intersects(&swept) {
                self.cast_pieces(candidate, position, -Vector::Y, GROUND_PROBE, &mut |hit| {
                    standable |= hit.normal.y >= steepest;
                });
            }
            standable
        })
    }
}

/// [`MovementSolver::RapierController`]: rapier's character controller and parry's casts.
struct RapierSweeps<'a> {
    settings: &'a MovementSettings,
    queries: &'a QueryPipeline<'a>,
    capsule: Capsule,
    dt: f32,
}

impl Sweeps for RapierSweeps<'_> {
    fn cast(&self, from: Vector, dir: Vector, max: f32) -> Option<(f32, Vector)> {
        self.queries
            .cast_shape(&pose(from), dir, &self.capsule, skin_cast(max))
            .map(|(_, hit)| (hit.time_of_impact, hit.normal1))
    }

    fn slide(
        &self,
        from: Vector,
        motion: Vector,
        step_up: Option<f32>,
        collisions: &mut Vec<CharacterCollision>,
    ) -> Vector {
        let controller = self.settings.controller_stepping(step_up);
        let moved = controller.move_shape(
            self.dt,
            self.queries,
            &self.capsule,
            &pose(from),
            motion,
            |collision| collisions.push(collision),
        );
        from + moved.translation
    }

    fn stands_on_ground(&self, position: Vector) -> bool {
        let steepest = self.settings.standable_normal_y();
        let reach = SKIN + GROUND_PROBE;
        let at = pose(position);
        let nearby = self.capsule.compute_aabb(&at).loosened(reach);
        self.queries
            .intersect_aabb_conservative(nearby)
            .any(|(_, collider)| {
                let relative = at.inv_mul(collider.position());
                // `normal1` points from the capsule towards the collider: the ground's own
                // normal is its opposite.
                matches!(
                    self.queries
                        .dispatcher
                        .contact(&relative, &self.capsule, collider.shape(), reach),
                    Ok(Some(contact)) if contact.dist <= reach && -contact.normal1.y >= steepest
                )
            })
    }
}

/// Most slide iterations per sweep: enough for a corner of two walls and the floor.
const MAX_SLIDES: usize = 4;

/// Which pieces a cast considers.
#[derive(Clone, Copy, PartialEq)]
enum Pieces {
    All,
    /// Ledges are never loose boxes: stepping onto them would let players climb stacks they
    /// should push.
    NotDynamic,
}

/// What a cast met.
struct Hit {
    collider: ColliderHandle,
    toi: f32,
    /// The obstacle's unit normal at the contact, pointing towards the avatar.
    normal: Vector,
    point: Vector,
    dynamic: bool,
}

/// A collider near the avatar, with what the casts need of it.
struct Candidate<'a> {
    handle: ColliderHandle,
    collider: &'a Collider,
    aabb: Aabb,
    dynamic: bool,
}

/// The colliders one step of one avatar can touch, gathered once from the broad phase: every
/// cast of the step tests these instead of walking the broad phase again. Heightfields, other
/// capsules and balls are cast against in closed form ([`crate::sweep`]); other shapes through
/// parry's casts.
struct Nearby<'a> {
    settings: &'a MovementSettings,
    queries: &'a QueryPipeline<'a>,
    capsule: Capsule,
    candidates: Vec<Candidate<'a>>,
}

impl<'a> Nearby<'a> {
    /// Everything within the reach of one step from `start`: a walk of `walk` metres (with a
    /// ledge and its landing), the lift, the settle or a vertical move of `rise`.
    fn gather(
        settings: &'a MovementSettings,
        queries: &'a QueryPipeline<'a>,
        start: Vector,
        walk: f32,
        rise: f32,
    ) -> Self {
        let capsule = settings.capsule();
        let margin = 2.0 * SKIN + GROUND_PROBE;
        let across = walk + settings.step_min_width + margin;
        let up = GROUND_LIFT + settings.step_height.max(0.0) + walk + rise.max(0.0) + margin;
        let down = GROUND_LIFT + settings.snap_distance.max(0.0) + (-rise).max(0.0) + margin;
        let body = capsule.compute_aabb(&pose(start));
        let reach = Aabb::new(
            body.mins - Vector::new(across, down, across),
            body.maxs + Vector::new(across, up, across),
        );
        let candidates = queries
            .intersect_aabb_conservative(reach)
            .map(|(handle, collider)| Candidate {
                handle,
                collider,
                aabb: collider.compute_aabb(),
                dynamic: collider
                    .parent()
                    .and_then(|body| queries.bodies.get(body))
                    .is_some_and(|body| body.is_dynamic()),
            })
            .collect();
        Nearby {
            settings,
            queries,
            capsule,
            candidates,
        }
    }

    /// The first piece the capsule at `from` meets moving along the unit `dir`, up to `max`, as
    /// it comes within [`SKIN`] of it.
    fn cast(&self, from: Vector, dir: Vector, max: f32, pieces: Pieces) -> Option<Hit> {
        let mut first: Option<Hit> = None;
        let swept = self.swept_aabb(from, dir, max);
        for candidate in &self.candidates {
            if (pieces == Pieces::NotDynamic && candidate.dynamic)
                || !candidate.aabb.intersects(&swept)
            {
                continue;
            }
            let limit = first.as_ref().map_or(max, |hit| hit.toi);
            self.cast_pieces(candidate, from, dir, limit, &mut |hit| {
                if first.as_ref().is_none_or(|best| hit.toi < best.toi) {
                    first = Some(Hit {
                        collider: candidate.handle,
                        toi: hit.toi,
                        normal: hit.normal,
                        point: hit.point,
                        dynamic: candidate.dynamic,
                    });
                }
            });
        }
        first
    }

    /// The capsule's bounds over a cast, with the skin.
    fn swept_aabb(&self, from: Vector, dir: Vector, max: f32) -> Aabb {
        let start = self.capsule.compute_aabb(&pose(from));
        let end = self.capsule.compute_aabb(&pose(from + dir * max));
        start.merged(&end).loosened(SKIN)
    }

    /// Casts against one collider; `visit` sees each hit piece (every triangle of a
    /// heightfield, the collider itself otherwise), in world space.
    fn cast_pieces(
        &self,
        candidate: &Candidate,
        from: Vector,
        dir: Vector,
        max: f32,
        visit: &mut dyn FnMut(SweepHit),
    ) {
        let frame = candidate.collider.position();
        let half = self.capsule.half_height();
        // The avatar's core in the collider's frame.
        let core = Core {
            a: frame.inverse_transform_point(from - Vector::Y * half),
            b: frame.inverse_transform_point(from + Vector::Y * half),
        };
        let local_dir = frame.inverse_transform_vector(dir);
        let to_world = |hit: SweepHit| SweepHit {
            toi: hit.toi,
            normal: frame.transform_vector(hit.normal),
            point: frame.transform_point(hit.point),
        };
        let radius = self.capsule.radius + SKIN;
        match candidate.collider.shape().as_typed_shape() {
            TypedShape::HeightField(field) => {
                sweep::core_heightfield(core, local_dir, max, radius, field, &mut |hit| {
                    visit(to_world(hit))
                });
            }
            TypedShape::Capsule(other) => {
                let other_core = Core {
                    a: other.segment.a,
                    b: other.segment.b,
                };
                let reach = radius + other.radius;
                if let Some(hit) = sweep::core_core(core, local_dir, max, reach, other_core) {
                    visit(to_world(hit));
                }
            }
            TypedShape::Ball(ball) => {
                let centre = Core {
                    a: Vector::ZERO,
                    b: Vector::ZERO,
                };
                let reach = radius + ball.radius;
                if let Some(hit) = sweep::core_core(core, local_dir, max, reach, centre) {
                    visit(to_world(hit));
                }
            }
            TypedShape::Cuboid(cuboid) => {
                match sweep::core_cuboid(core, local_dir, max, radius, cuboid.half_extents) {
                    Some(hit) => hit.into_iter().for_each(|hit| visit(to_world(hit))),
                    // The core starts inside the box: parry decides.
                    None => self.parry_cast(candidate, from, local_dir, max, visit),
                }
            }
            _ => self.parry_cast(candidate, from, local_dir, max, visit),
        }
    }

    /// [`Self::cast_pieces`] for the shapes without a closed form: parry's GJK cast, `dir` in
    /// the collider's frame.
    fn parry_cast(
        &self,
        candidate: &Candidate,
        from: Vector,
        local_dir: Vector,
        max: f32,
        visit: &mut dyn FnMut(SweepHit),
    ) {
        let frame = candidate.collider.position();
        let cast = self.queries.dispatcher.cast_shapes(
            &frame.inv_mul(&pose(from)),
            local_dir,
            candidate.collider.shape(),
            &self.capsule,
            skin_cast(max),
        );
        if let Ok(Some(hit)) = cast {
            visit(SweepHit {
                toi: hit.time_of_impact,
                normal: frame.transform_vector(hit.normal1),
                point: frame.transform_point(hit.witness1),
            });
        }
    }

    /// Too steep to walk up (and no ceiling).
    fn is_wall(&self, normal: Vector) -> bool {
        normal.y >= 0.0 && normal.y <= self.settings.max_slope_degrees.to_radians().cos()
    }

    /// What is left of `remaining` after meeting a surface with this normal: the part along it,
    /// except that walls are not climbed (only the horizontal part along them remains) and
    /// standable ground is not slid down.
    fn slide_along(&self, remaining: Vector, normal: Vector) -> Vector {
        let into = remaining.dot(normal);
        if into >= 0.0 {
            return remaining;
        }
        let along = remaining - normal * into;
        let climbs_wall = along.y > 0.0 && self.is_wall(normal);
        let slips_down = along.y < 0.0 && normal.y >= self.settings.standable_normal_y();
        if climbs_wall || slips_down {
            let across = normal.cross(Vector::Y).normalize_or_zero();
            across * remaining.dot(across)
        } else {
            along
        }
    }

    /// Whether the capsule at `at`, blocked while moving by `remaining`, can step onto a ledge
    /// at most `height` above its feet: room above, room on the ledge for the capsule's
    /// minimum width, and standable ground there. Returns the rise and the horizontal nudge
    /// onto the ledge.
    fn step_onto_ledge(&self, at: Vector, remaining: Vector, height: f32) -> Option<(f32, Vector)> {
        let settings = self.settings;
        let ahead = Vector::new(remaining.x, 0.0, remaining.z);
        let ahead_length = ahead.length();
        if ahead_length < 1.0e-5 || height <= 0.0 {
            return None;
        }
        let ahead = ahead / ahead_length;
        let height = height + SKIN;
        let width = settings.step_min_width + SKIN;
        if self
            .cast(at, Vector::Y, height, Pieces::NotDynamic)
            .is_some()
        {
            return None;
        }
        let raised = at + Vector::Y * height;
        if self
            .cast(raised, ahead, width, Pieces::NotDynamic)
            .is_some()
        {
            return None;
        }
        let landing = self.cast(
            raised + ahead * width,
            -Vector::Y,
            height,
            Pieces::NotDynamic,
        )?;
        // A ramp too steep to walk up is no ledge.
        if self.is_wall(landing.normal) || landing.toi >= height {
            return None;
        }
        Some((height - landing.toi, ahead * ahead_length.min(width)))
    }

    /// The record [`push_bodies`] needs of a hit on a dynamic body.
    fn collision(
        &self,
        hit: &Hit,
        position: Vector,
        from: Vector,
        remaining: Vector,
    ) -> CharacterCollision {
        CharacterCollision {
            handle: hit.collider,
            character_pos: pose(position),
            translation_applied: position - from,
            translation_remaining: remaining,
            hit: ShapeCastHit {
                time_of_impact: hit.toi,
                witness1: hit.point,
                witness2: hit.point - position,
                normal1: hit.normal,
                normal2: -hit.normal,
                status: ShapeCastStatus::Converged,
                subshape1: 0,
                subshape2: 0,
            },
        }
    }
}

/// Shape-cast options of the sweeps: stop [`SKIN`] short of contact, within `max`.
fn skin_cast(max: f32) -> ShapeCastOptions {
    ShapeCastOptions {
        target_distance: SKIN,
        stop_at_penetration: false,
        max_time_of_impact: max,
        compute_impact_geometry_on_penetration: true,
    }
}

fn pose(position: Vector) -> Pose {
    Pose::from_translation(position)
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
