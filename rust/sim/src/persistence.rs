//! Rebuilding a world piece by piece, for incremental persistence: read an object's full
//! description, then create it again later under the same id, with the same pose and motion.
//!
//! How it works:
//! - **Reading**: [`World::object_desc`] gives what [`World::add_object`] would need to build the
//!   object as it is now (current pose, current terrain heights, the mass, friction and
//!   restitution it was given, current properties); [`World::object_state`] gives its motion.
//!   A host saves both for the objects in [`World::changed_since`] and drops those in
//!   [`World::removed_objects_since`], so a save costs what changed, not the world.
//! - **Avatars** belong to their players, not to the campaign: `object_desc` has none for them,
//!   and `removed_objects_since` leaves departed avatars out.
//! - **Rebuilding**: on a new world, [`World::restore_object`] for every saved object (any
//!   order), then [`World::restore_environment`], [`World::set_next_object_id`] and
//!   [`World::set_tick`]. Restored objects are stamped before the restored tick, so
//!   `changed_since(tick)` afterwards reports only what changes from then on.
//! - Objects keep their exact saved bits (the rotation is not renormalised, velocities are set
//!   on the new body), so a rebuilt world's snapshot equals the original's but for the sleeping
//!   flags. What is not restored: sleep (restored bodies start awake, see
//!   [`World::restore_object`]: they fall asleep again within a second, and are reported by
//!   `changed_since` meanwhile), contacts and solver warm-starts (resting bodies may settle by
//!   micrometres; [`World::save`] is the bit-exact alternative), ownership of built objects
//!   (client ids do not outlive a connection) and holding (a held object comes back as a free
//!   dynamic body).

use crate::error::SimError;
use crate::objects;
use crate::state::{BodyKind, ClientId, ObjectDesc, ObjectId, ObjectState, Tick};
use crate::world::{MAX_OBJECT_ID, StartMotion, World};

/// Property the world sets on a held object; a rebuilt object is held by nobody.
const HELD_BY_PROPERTY: &str = "held_by";

/// A rotation this close to unit length (squared norm) is used as saved; renormalising it would
/// only change its last bits.
const UNIT_ROTATION_TOLERANCE: f32 = 1.0e-4;

impl World {
    /// The description that builds this object again as it is now, or `None` for an unknown id
    /// or a player's avatar (avatars are recreated with [`World::spawn_player`]).
    ///
    /// It has the current kind, shape (an edited terrain's current heights), position and
    /// rotation, the mass it was created with (`None` when derived from the shape), friction,
    /// restitution and current properties, except the `held_by` marker of a held object (a
    /// rebuilt object is held by nobody).
    pub fn object_desc(&self, id: ObjectId) -> Option<ObjectDesc> {
        let record = self.objects.get(&id)?;
        if record.kind == BodyKind::Player {
            return None;
        }
        let body = self.physics.bodies.get(record.body)?;
        let collider = self.physics.colliders.get(record.collider)?;
        let mut properties = record.properties.clone();
        if record.held_by.is_some() {
            properties.remove(HELD_BY_PROPERTY);
        }
        // Objects are built with the default density 1 unless given a mass, and a given mass is
        // kept verbatim by the collider: this gives back exactly what was asked for.
        let mass = (collider.density() != 1.0).then(|| collider.mass());
        Some(ObjectDesc {
            kind: record.kind,
            shape: record.shape.clone(),
            position: body.translation().to_array(),
            rotation: body.rotation().to_array(),
            mass,
            friction: collider.friction(),
            restitution: collider.restitution(),
            properties,
        })
    }

    /// Whether the object was added as part of the environment
    /// ([`World::add_environment_object`], or restored with `environment: true`). False for an
    /// unknown id.
    pub fn is_environment_object(&self, id: ObjectId) -> bool {
        self.objects.get(&id).is_some_and(|r| r.environment)
    }

    /// The id the next added object will get (every id ever handed out is below it).
    pub fn next_object_id(&self) -> ObjectId {
        self.next_id
    }

    /// Moves the id counter up to `next`, so that ids handed out before a restart (and removed
    /// since) are never handed out again. Refuses to go down (`invalid_id`: ids would be reused)
    /// or past [`MAX_OBJECT_ID`]` + 1`.
    pub fn set_next_object_id(&mut self, next: ObjectId) -> Result<(), SimError> {
        if next < self.next_id {
            return Err(SimError::new(
                "invalid_id",
                format!(
                    "the next object id cannot go down from {} to {next}: ids would be reused",
                    self.next_id
                ),
            ));
        }
        if next > MAX_OBJECT_ID + 1 {
            return Err(SimError::new(
                "invalid_id",
                format!("the next object id {next} is beyond the largest id {MAX_OBJECT_ID} + 1"),
            ));
        }
        self.next_id = next;
        Ok(())
    }

    /// Moves the world's clock forward to `tick`, e.g. to the tick of a restored campaign (call
    /// it after restoring the objects, so that they count as unchanged since `tick`). Refuses to
    /// go back (`invalid_tick`): change tracking relies on ticks only growing.
    pub fn set_tick(&mut self, tick: Tick) -> Result<(), SimError> {
        if tick < self.tick {
            return Err(SimError::new(
                "invalid_tick",
                format!("the tick cannot go back from {} to {tick}", self.tick),
            ));
        }
        self.tick = tick;
        Ok(())
    }

    /// Creates an object under exactly `id`, as it was saved: kind, shape, mass, friction and
    /// restitution from `desc`; position, rotation, velocities and properties from `state`
    /// (they win over `desc`'s). Moves the id counter past `id`. `environment` flags it as an
    /// environment object; a static heightfield becomes the terrain when the world has none yet
    /// (as with [`World::add_object`]; [`World::restore_environment`] then names the saved one).
    /// Emits `ObjectAdded`.
    ///
    /// The object starts awake whatever `state.sleeping` says: rapier misses the contacts of a
    /// body inserted asleep for several steps (a resting box sinks centimetres into the ground,
    /// then slides), whereas an awake one stays put and falls asleep again once still, about
    /// half a second later.
    ///
    /// Refuses, changing nothing: an id in use (`id_in_use`), 0 or above [`MAX_OBJECT_ID`]
    /// (`invalid_id`), a `state` of another id or kind (`state_mismatch`), an avatar (use
    /// [`World::spawn_player`]), non-finite velocities (`non_finite`), and whatever
    /// [`World::add_object`] refuses. The restored object has no owner and is held by nobody
    /// (a `held_by` property is dropped).
    pub fn restore_object(
        &mut self,
        id: ObjectId,
        mut desc: ObjectDesc,
        state: &ObjectState,
        environment: bool,
    ) -> Result<(), SimError> {
        if id == 0 || id > MAX_OBJECT_ID {
            return Err(SimError::new(
                "invalid_id",
                format!("object ids are within 1..={MAX_OBJECT_ID}, got {id}"),
            ));
        }
        if self.objects.contains_key(&id) {
            return Err(SimError::new(
                "id_in_use",
                format!("object id {id} is already in use"),
            ));
        }
        if state.id != id || state.kind != desc.kind {
            return Err(SimError::new(
                "state_mismatch",
                format!(
                    "object {id} ({:?}) was given the state of object {} ({:?})",
                    desc.kind, state.id, state.kind
                ),
            ));
        }
        let finite = |v: &[f32; 3]| v.iter().all(|c| c.is_finite());
        if !finite(&state.velocity) || !finite(&state.angular_velocity) {
            return Err(SimError::new(
                "non_finite",
                format!(
                    "object {id}: velocities must be finite, got {:?} and {:?}",
                    state.velocity, state.angular_velocity
                ),
            ));
        }
        let unit = objects::normalized_rotation(state.rotation)?;
        let norm_squared: f32 = state.rotation.iter().map(|c| c * c).sum();
        let rotation = if (norm_squared - 1.0).abs() <= UNIT_ROTATION_TOLERANCE {
            state.rotation
        } else {
            unit
        };
        desc.position = state.position;
        desc.rotation = rotation;
        desc.properties = state.properties.clone();
        desc.properties.remove(HELD_BY_PROPERTY);
        let start = StartMotion {
            rotation,
            linvel: state.velocity,
            angvel: state.angular_velocity,
        };
        self.insert_object_as(id, desc, None, environment, Some(start))
    }

    /// Objects removed after `tick`, avatars left out (they are not persisted as objects).
    /// Removals are remembered for one minute of ticks: check
    /// [`World::removals_complete_since`] when `tick` may be older.
    pub fn removed_objects_since(&self, tick: Tick) -> Vec<ObjectId> {
        self.changes.removed_objects_since(tick)
    }

    /// Whether [`World::removed_since`] and [`World::removed_objects_since`] of `tick` list
    /// every removal after it. False once removals after `tick` have been forgotten (they are
    /// kept for one minute of ticks); a host saving changes must then save a full record.
    pub fn removals_complete_since(&self, tick: Tick) -> bool {
        self.changes.removals_complete_since(tick)
    }

    /// The name a client's avatar was spawned with.
    pub fn player_name(&self, client_id: ClientId) -> Option<&str> {
        self.players.get(&client_id).map(|p| p.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::command::{EnvironmentCommand, InteractionKind, InteractionRequest};
    use crate::config::WorldConfig;
    use crate::event::WorldEvent;
    use crate::state::{Properties, Shape, WeatherKind, identity_rotation};

    fn desc(kind: BodyKind, shape: Shape, position: [f32; 3]) -> ObjectDesc {
        ObjectDesc {
            kind,
            shape,
            position,
            rotation: identity_rotation(),
            mass: None,
            friction: 0.5,
            restitution: 0.0,
            properties: Properties::new(),
        }
    }

    fn cube(position: [f32; 3], half: f32) -> ObjectDesc {
        desc(
            BodyKind::Dynamic,
            Shape::Box {
                half_extents: [half; 3],
            },
            position,
        )
    }

    fn heightfield(rows: u32, cols: u32, size: f32, position: [f32; 3]) -> ObjectDesc {
        desc(
            BodyKind::Static,
            Shape::Heightfield {
                rows,
                cols,
                heights: vec![0.0; (rows * cols) as usize],
                size: [size, 1.0, size],
            },
            position,
        )
    }

    fn run(world: &mut World, ticks: usize) {
        for _ in 0..ticks {
            world.step();
        }
    }

    struct Scene {
        world: World,
        terrain: ObjectId,
        ramp: ObjectId,
        heavy: ObjectId,
        falling: ObjectId,
        resting: ObjectId,
        held: ObjectId,
    }

    /// Every kind of object in every state worth saving: resting and sleeping, falling,
    /// spinning, held by a player, a moving platform, an edited terrain with a body on it, a
    /// second heightfield, a weather transition under way.
    fn scene() -> Scene {
        let mut world = World::new(WorldConfig::default());
        let mut ground = desc(
            BodyKind::Static,
            Shape::Box {
                half_extents: [20.0, 0.5, 20.0],
            },
            [0.0, -0.5, 0.0],
        );
        ground.friction = 0.8;
        world.add_object(ground).unwrap();
        let terrain = world
            .add_environment_object(heightfield(33, 33, 32.0, [0.0, 0.0, 60.0]))
            .unwrap();
        let ramp = world
            .add_object(heightfield(5, 5, 8.0, [60.0, 0.0, 0.0]))
            .unwrap();
        let mut heavy = cube([2.0, 0.5, 2.0], 0.5);
        heavy.mass = Some(3.7);
        heavy.restitution = 0.3;
        heavy.rotation = [0.0, 0.382_683_43, 0.0, 0.923_879_5];
        heavy.properties = json!({"color": "red", "destructible": true})
            .as_object()
            .unwrap()
            .clone();
        let heavy = world.add_object(heavy).unwrap();
        let resting = world.add_object(cube([-3.0, 0.25, 1.0], 0.25)).unwrap();
        let on_terrain = world
            .add_object(desc(
                BodyKind::Dynamic,
                Shape::Sphere { radius: 0.5 },
                [4.0, 0.5, 64.0],
            ))
            .unwrap();
        world
            .add_environment_object(desc(
                BodyKind::Static,
                Shape::Cylinder {
                    half_height: 1.0,
                    radius: 0.3,
                },
                [-6.0, 1.0, -6.0],
            ))
            .unwrap();
        let platform = world
            .add_object(desc(
                BodyKind::Kinematic,
                Shape::Box {
                    half_extents: [1.0, 0.1, 1.0],
                },
                [8.0, 1.0, 0.0],
            ))
            .unwrap();
        let held = world.add_object(cube([0.0, 0.25, -1.5], 0.25)).unwrap();
        world.spawn_player(1, "ana", Some([0.0, 1.0, 0.0])).unwrap();
        run(&mut world, 240);
        world.request_interaction(
            1,
            InteractionRequest {
                request_id: 1,
                kind: InteractionKind::Pickup,
                target: Some(held),
                build: None,
                args: Default::default(),
            },
        );
        world.edit_terrain([4.0, 64.0], 3.0, 1.5).unwrap();
        world
            .apply_environment(EnvironmentCommand::SetWeather {
                kind: WeatherKind::Storm,
                transition_seconds: 10.0,
            })
            .unwrap();
        let falling = world
            .add_object(desc(
                BodyKind::Dynamic,
                Shape::Sphere { radius: 0.2 },
                [-15.0, 40.0, -15.0],
            ))
            .unwrap();
        world.apply_impulse(falling, [0.0, 0.0, 0.05]).unwrap();
        world.apply_impulse(heavy, [0.5, 2.0, 0.0]).unwrap();
        world
            .move_kinematic(platform, [8.5, 1.0, 0.0], identity_rotation())
            .unwrap();
        run(&mut world, 20);
        assert_eq!(world.held_by(1), Some(held), "the pickup worked");
        assert!(!world.object_state(falling).unwrap().sleeping);
        assert!(world.object_state(resting).unwrap().sleeping);
        assert!(!world.object_state(on_terrain).unwrap().sleeping);
        world.drain_events();
        Scene {
            world,
            terrain,
            ramp,
            heavy,
            falling,
            resting,
            held,
        }
    }

    /// A new world built from `original`'s descriptions and states, restored in reverse id
    /// order (the order must not matter).
    fn rebuild(original: &World) -> World {
        let mut world = World::new(original.config().clone());
        for id in original.object_ids().into_iter().rev() {
            let Some(desc) = original.object_desc(id) else {
                continue;
            };
            let state = original.object_state(id).unwrap();
            world
                .restore_object(id, desc, &state, original.is_environment_object(id))
                .unwrap();
        }
        world
            .restore_environment(original.environment_state())
            .unwrap();
        world.set_next_object_id(original.next_object_id()).unwrap();
        world.set_tick(original.tick()).unwrap();
        world
    }

    /// What a rebuilt world restores of a state: all but holding and sleep.
    fn restorable(mut state: ObjectState) -> ObjectState {
        state.properties.remove(HELD_BY_PROPERTY);
        state.sleeping = false;
        state
    }

    #[test]
    fn object_desc_describes_the_object_as_it_is_now() {
        let scene = scene();
        let world = &scene.world;
        let heavy = world.object_desc(scene.heavy).unwrap();
        let state = world.object_state(scene.heavy).unwrap();
        assert_eq!(heavy.kind, BodyKind::Dynamic);
        assert_eq!(heavy.mass, Some(3.7), "the given mass, verbatim");
        assert_eq!((heavy.friction, heavy.restitution), (0.5, 0.3));
        assert_eq!(heavy.properties.get("color"), Some(&json!("red")));
        assert_eq!(
            (heavy.position, heavy.rotation),
            (state.position, state.rotation)
        );
        assert_ne!(
            heavy.position,
            [2.0, 0.5, 2.0],
            "current pose, not the first"
        );
        let resting = world.object_desc(scene.resting).unwrap();
        assert_eq!(resting.mass, None, "a derived mass stays derived");
        // The terrain's current heights, edit included.
        let Shape::Heightfield { heights, .. } = world.object_desc(scene.terrain).unwrap().shape
        else {
            panic!("the terrain is a heightfield");
        };
        assert!(heights.iter().any(|h| *h > 1.0));
        // A held object is described free; avatars and unknown ids have no description.
        assert!(
            world
                .object_state(scene.held)
                .unwrap()
                .properties
                .contains_key("held_by")
        );
        let held = world.object_desc(scene.held).unwrap();
        assert!(!held.properties.contains_key("held_by"));
        assert_eq!(held.kind, BodyKind::Dynamic);
        assert_eq!(world.object_desc(world.avatar_of(1).unwrap()), None);
        assert_eq!(world.object_desc(9999), None);
        assert!(world.is_environment_object(scene.terrain));
        assert!(!world.is_environment_object(scene.ramp));
        assert!(!world.is_environment_object(9999));
        assert_eq!(world.player_name(1), Some("ana"));
    }

    #[test]
    fn a_world_rebuilt_from_descriptions_and_states_equals_the_original() {
        let scene = scene();
        let original = &scene.world;
        let rebuilt = rebuild(original);
        let avatar = original.avatar_of(1).unwrap();

        assert_eq!(rebuilt.tick(), original.tick());
        assert_eq!(rebuilt.next_object_id(), original.next_object_id());
        assert_eq!(rebuilt.environment_state(), original.environment_state());
        assert_eq!(
            rebuilt.environment_state().terrain_id,
            Some(scene.terrain),
            "the saved terrain, though the other heightfield was restored first"
        );
        assert_eq!(rebuilt.environment_state().terrain_revision, 1);
        let expected: Vec<ObjectState> = original
            .snapshot(true)
            .objects
            .into_iter()
            .filter(|o| o.id != avatar)
            .map(restorable)
            .collect();
        let objects = rebuilt.snapshot(true).objects;
        assert!(
            objects.iter().all(|o| !o.sleeping),
            "restored bodies start awake"
        );
        assert_eq!(objects, expected);
        for id in original.object_ids() {
            assert_eq!(
                rebuilt.object_desc(id),
                original.object_desc(id),
                "object {id}"
            );
            assert_eq!(
                rebuilt.is_environment_object(id),
                original.is_environment_object(id)
            );
        }
        for (x, z) in [(4.0, 64.0), (5.5, 63.0), (-10.0, 50.0)] {
            assert_eq!(rebuilt.terrain_height(x, z), original.terrain_height(x, z));
        }
        // Nothing counts as changed since the restored tick.
        assert!(rebuilt.changed_since(rebuilt.tick()).is_empty());
        assert!(!rebuilt.changed_since(0).is_empty());
    }

    #[test]
    fn a_rebuilt_world_goes_on_like_the_original() {
        let scene = scene();
        let mut original = scene.world;
        let mut rebuilt = rebuild(&original);
        run(&mut original, 30);
        run(&mut rebuilt, 30);
        // Free flight involves nothing but the restored state: bit for bit the same.
        assert_eq!(
            rebuilt.object_state(scene.falling),
            original.object_state(scene.falling)
        );
        // The weather transition goes on the same way.
        let (a, b) = (original.environment_state(), rebuilt.environment_state());
        assert_eq!(a.weather.kind, b.weather.kind);
        assert!((a.weather.intensity - b.weather.intensity).abs() < 1e-3);
        // A body saved asleep starts awake, stays where it lay and falls asleep again.
        run(&mut original, 90);
        run(&mut rebuilt, 90);
        let resting = rebuilt.object_state(scene.resting).unwrap();
        let lay = original.object_state(scene.resting).unwrap();
        assert!(resting.sleeping, "{resting:?}");
        for axis in 0..3 {
            let drift = (resting.position[axis] - lay.position[axis]).abs();
            assert!(drift < 1e-4, "{resting:?} vs {lay:?}");
        }
        // New objects get ids after every restored one.
        let next = original.next_object_id();
        assert_eq!(
            rebuilt.add_object(cube([0.0, 5.0, 0.0], 0.2)).unwrap(),
            next
        );
    }

    #[test]
    fn restore_object_refuses_bad_input_and_changes_nothing() {
        let scene = scene();
        let original = &scene.world;
        let mut world = World::new(WorldConfig::default());
        let heavy = original.object_desc(scene.heavy).unwrap();
        let state = original.object_state(scene.heavy).unwrap();
        world
            .restore_object(scene.heavy, heavy.clone(), &state, false)
            .unwrap();
        world.drain_events();
        let refuse = |world: &mut World, id, desc: ObjectDesc, state: &ObjectState| {
            let before = (world.object_count(), world.next_object_id());
            let err = world.restore_object(id, desc, state, false).unwrap_err();
            assert_eq!((world.object_count(), world.next_object_id()), before);
            assert!(world.drain_events().is_empty());
            assert!(!err.message.is_empty());
            err.code
        };
        assert_eq!(
            refuse(&mut world, scene.heavy, heavy.clone(), &state),
            "id_in_use"
        );
        let other = |id: ObjectId| ObjectState {
            id,
            ..state.clone()
        };
        assert_eq!(
            refuse(&mut world, 0, heavy.clone(), &other(0)),
            "invalid_id"
        );
        let huge = MAX_OBJECT_ID + 1;
        assert_eq!(
            refuse(&mut world, huge, heavy.clone(), &other(huge)),
            "invalid_id"
        );
        assert_eq!(
            refuse(&mut world, 50, heavy.clone(), &state),
            "state_mismatch"
        );
        let statik = ObjectDesc {
            kind: BodyKind::Static,
            ..heavy.clone()
        };
        assert_eq!(refuse(&mut world, 50, statik, &other(50)), "state_mismatch");
        let avatar = ObjectDesc {
            kind: BodyKind::Player,
            ..heavy.clone()
        };
        let avatar_state = ObjectState {
            kind: BodyKind::Player,
            ..other(50)
        };
        assert_eq!(
            refuse(&mut world, 50, avatar, &avatar_state),
            "invalid_kind"
        );
        let spinning = ObjectState {
            angular_velocity: [f32::NAN, 0.0, 0.0],
            ..other(50)
        };
        assert_eq!(
            refuse(&mut world, 50, heavy.clone(), &spinning),
            "non_finite"
        );
        let nowhere = ObjectState {
            position: [f32::INFINITY, 0.0, 0.0],
            ..other(50)
        };
        assert_eq!(
            refuse(&mut world, 50, heavy.clone(), &nowhere),
            "invalid_position"
        );
        let flat = ObjectState {
            rotation: [0.0; 4],
            ..other(50)
        };
        assert_eq!(
            refuse(&mut world, 50, heavy.clone(), &flat),
            "invalid_rotation"
        );
        let broken = ObjectDesc {
            shape: Shape::Sphere { radius: -1.0 },
            ..heavy.clone()
        };
        assert_eq!(refuse(&mut world, 50, broken, &other(50)), "invalid_shape");
        // A rotation far from unit length is normalised, not taken as is.
        let long = ObjectState {
            rotation: [0.0, 0.0, 0.0, 2.0],
            ..other(50)
        };
        world.restore_object(50, heavy, &long, false).unwrap();
        assert_eq!(
            world.object_state(50).unwrap().rotation,
            identity_rotation()
        );
        assert_eq!(world.next_object_id(), 51);
    }

    #[test]
    fn restored_objects_are_announced_and_move_the_id_counter() {
        let mut world = World::new(WorldConfig::default());
        let state = ObjectState {
            id: 40,
            kind: BodyKind::Dynamic,
            position: [1.0, 5.0, 2.0],
            rotation: identity_rotation(),
            velocity: [0.0, 0.0, 3.0],
            angular_velocity: [0.0, 1.0, 0.0],
            sleeping: false,
            shape: None,
            properties: json!({"held_by": 3, "tag": "x"})
                .as_object()
                .unwrap()
                .clone(),
        };
        world
            .restore_object(40, cube([0.0; 3], 0.5), &state, true)
            .unwrap();
        assert_eq!(world.next_object_id(), 41);
        // A lower id fills a gap without moving the counter back.
        world
            .restore_object(
                7,
                cube([0.0; 3], 0.5),
                &ObjectState {
                    id: 7,
                    ..state.clone()
                },
                false,
            )
            .unwrap();
        assert_eq!(world.next_object_id(), 41);
        let restored = world.object_state(40).unwrap();
        assert_eq!(restored.velocity, [0.0, 0.0, 3.0]);
        assert_eq!(restored.angular_velocity, [0.0, 1.0, 0.0]);
        assert_eq!(restored.position, [1.0, 5.0, 2.0]);
        assert_eq!(restored.properties.get("tag"), Some(&json!("x")));
        assert!(
            !restored.properties.contains_key("held_by"),
            "held by nobody"
        );
        assert_eq!(world.holder_of(40), None);
        assert_eq!(world.owner_of(40), None);
        assert!(world.is_environment_object(40));
        assert!(!world.is_environment_object(7));
        let added: Vec<(ObjectId, bool)> = world
            .drain_events()
            .into_iter()
            .filter_map(|e| match e {
                WorldEvent::ObjectAdded {
                    object,
                    environment,
                } => Some((object.id, environment)),
                _ => None,
            })
            .collect();
        assert_eq!(added, vec![(40, true), (7, false)]);
        assert_eq!(world.add_object(cube([5.0, 5.0, 5.0], 0.5)).unwrap(), 41);
    }

    #[test]
    fn the_id_counter_and_the_clock_only_move_forward() {
        let mut world = World::new(WorldConfig::default());
        world.set_next_object_id(100).unwrap();
        assert_eq!(world.add_object(cube([0.0; 3], 0.5)).unwrap(), 100);
        assert_eq!(world.set_next_object_id(50).unwrap_err().code, "invalid_id");
        assert_eq!(
            world
                .set_next_object_id(MAX_OBJECT_ID + 2)
                .unwrap_err()
                .code,
            "invalid_id"
        );
        assert_eq!(world.next_object_id(), 101);
        world.set_tick(500).unwrap();
        assert_eq!(world.tick(), 500);
        world.step();
        assert_eq!(world.tick(), 501);
        assert_eq!(world.set_tick(10).unwrap_err().code, "invalid_tick");
        assert_eq!(world.tick(), 501);
    }

    #[test]
    fn a_restored_environment_heightfield_is_the_terrain() {
        let scene = scene();
        let original = &scene.world;
        let mut world = World::new(WorldConfig::default());
        let desc = original.object_desc(scene.terrain).unwrap();
        let state = original.object_state(scene.terrain).unwrap();
        world
            .restore_object(scene.terrain, desc, &state, true)
            .unwrap();
        assert_eq!(world.environment_state().terrain_id, Some(scene.terrain));
        assert!(world.is_environment_object(scene.terrain));
        assert_eq!(
            world.terrain_height(4.0, 64.0),
            original.terrain_height(4.0, 64.0)
        );
        assert!(
            world.terrain_height(4.0, 64.0).unwrap() > 1.0,
            "the edit came along"
        );
        world.edit_terrain([-4.0, 56.0], 2.0, 1.0).unwrap();
        assert!((world.terrain_height(-4.0, 56.0).unwrap() - 1.0).abs() < 1e-5);
        // An environment object can be removed as one.
        world
            .apply_environment(EnvironmentCommand::RemoveObject { id: scene.terrain })
            .unwrap();
        assert_eq!(world.environment_state().terrain_id, None);
    }

    #[test]
    fn restore_environment_validates_then_applies_everything() {
        let scene = scene();
        let mut world = scene.world;
        let saved = world.environment_state();
        let bad = |change: &dyn Fn(&mut crate::state::EnvironmentState)| {
            let mut state = saved.clone();
            change(&mut state);
            state
        };
        let cases: Vec<(crate::state::EnvironmentState, &str)> = vec![
            (bad(&|s| s.weather.intensity = 1.5), "invalid_argument"),
            (
                bad(&|s| s.weather.wind = [f32::NAN, 0.0, 0.0]),
                "invalid_argument",
            ),
            (
                bad(&|s| s.weather.wind = [500.0, 0.0, 0.0]),
                "invalid_argument",
            ),
            (
                bad(&|s| s.weather.transition_remaining = -1.0),
                "invalid_argument",
            ),
            (bad(&|s| s.time_of_day = 25.0), "invalid_argument"),
            (bad(&|s| s.day_length = 0.5), "invalid_argument"),
            (bad(&|s| s.terrain_id = Some(9999)), "unknown_object"),
            (bad(&|s| s.terrain_id = Some(scene.heavy)), "not_terrain"),
        ];
        world.drain_events();
        for (state, code) in cases {
            assert_eq!(world.restore_environment(state).unwrap_err().code, code);
            assert_eq!(world.environment_state(), saved, "unchanged after {code}");
        }
        assert!(world.drain_events().is_empty());
        let wanted = crate::state::EnvironmentState {
            weather: crate::state::WeatherState {
                kind: WeatherKind::Fog,
                intensity: 0.5,
                wind: [2.0, 0.0, 1.0],
                transition_to: None,
                transition_remaining: 0.0,
            },
            time_of_day: 24.0,
            day_length: 90.0,
            terrain_id: Some(scene.ramp),
            terrain_revision: 12,
        };
        world.restore_environment(wanted.clone()).unwrap();
        let got = world.environment_state();
        assert_eq!(got.time_of_day, 0.0, "24 h is midnight");
        assert_eq!(
            got,
            crate::state::EnvironmentState {
                time_of_day: 0.0,
                ..wanted
            }
        );
        let events = world.drain_events();
        assert!(
            events
                .iter()
                .any(|e| matches!(e, WorldEvent::WeatherChanged { .. }))
        );
        assert!(
            events
                .iter()
                .any(|e| matches!(e, WorldEvent::TimeOfDayChanged { .. }))
        );
    }

    /// Weather (kind, intensity) for `ticks` ticks.
    fn weather_course(world: &mut World, ticks: usize) -> Vec<(WeatherKind, f32)> {
        (0..ticks)
            .map(|_| {
                world.step();
                let weather = world.environment_state().weather;
                (weather.kind, weather.intensity)
            })
            .collect()
    }

    #[test]
    fn a_restored_weather_transition_goes_on_smoothly_and_ends_on_time() {
        // Saved in the first half (fading out) and in the second half (fading in) of 4 s.
        for saved_after in [60, 180] {
            let mut original = World::new(WorldConfig::default());
            original
                .apply_environment(EnvironmentCommand::SetWeather {
                    kind: WeatherKind::Storm,
                    transition_seconds: 4.0,
                })
                .unwrap();
            run(&mut original, saved_after);
            let mut restored = World::new(WorldConfig::default());
            restored
                .restore_environment(original.environment_state())
                .unwrap();
            let saved = original.environment_state().weather.intensity;
            let expected = weather_course(&mut original, 240 - saved_after + 5);
            let got = weather_course(&mut restored, 240 - saved_after + 5);
            let switch = |course: &[(WeatherKind, f32)]| {
                course.iter().position(|(k, _)| *k == WeatherKind::Storm)
            };
            let end = |course: &[(WeatherKind, f32)]| {
                course
                    .iter()
                    .position(|(k, i)| *k == WeatherKind::Storm && *i == 1.0)
            };
            assert_eq!(switch(&got), switch(&expected), "saved after {saved_after}");
            assert_eq!(end(&got), end(&expected), "saved after {saved_after}");
            // No jump: one tick moves the intensity by at most what the original's fade does.
            let step_limit = 2.0 / 120.0 + 1e-4;
            assert!(
                (got[0].1 - saved).abs() <= step_limit,
                "{} vs {saved}",
                got[0].1
            );
            for pair in got.windows(2) {
                if pair[0].0 == pair[1].0 {
                    assert!((pair[1].1 - pair[0].1).abs() <= step_limit, "{pair:?}");
                }
            }
            if saved_after == 180 {
                // Fading in, the saved state gives the transition's length back exactly.
                for (g, e) in got.iter().zip(&expected) {
                    assert_eq!(g.0, e.0);
                    assert!((g.1 - e.1).abs() < 1e-3, "{g:?} vs {e:?}");
                }
            }
        }
    }

    #[test]
    fn removed_objects_since_leaves_avatars_out() {
        let mut world = World::new(WorldConfig::default());
        let a = world.add_object(cube([0.0, 0.5, 0.0], 0.5)).unwrap();
        world.spawn_player(3, "bo", Some([5.0, 1.0, 0.0])).unwrap();
        let avatar = world.avatar_of(3).unwrap();
        run(&mut world, 2);
        let since = world.tick();
        world.remove_object(a).unwrap();
        world.remove_player(3);
        assert_eq!(world.removed_since(since), vec![a, avatar]);
        assert_eq!(world.removed_objects_since(since), vec![a]);
        assert!(world.removals_complete_since(since));
        assert!(world.removals_complete_since(0));
    }

    #[test]
    fn a_terrain_edit_reports_the_bodies_it_lifts_at_once() {
        let mut world = World::new(WorldConfig::default());
        world
            .add_environment_object(heightfield(33, 33, 32.0, [0.0; 3]))
            .unwrap();
        let ball = world
            .add_object(desc(
                BodyKind::Dynamic,
                Shape::Sphere { radius: 0.5 },
                [4.0, 0.5, 4.0],
            ))
            .unwrap();
        run(&mut world, 200);
        assert!(world.object_state(ball).unwrap().sleeping);
        let since = world.tick();
        let before = world.object_state(ball).unwrap().position;
        world.edit_terrain([4.0, 4.0], 3.0, 2.0).unwrap();
        let after = world.object_state(ball).unwrap().position;
        assert!(
            after[1] > before[1] + 1.0,
            "lifted: {before:?} -> {after:?}"
        );
        assert!(world.changed_since(since).contains(&ball));
    }
}
