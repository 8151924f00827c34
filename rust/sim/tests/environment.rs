//! Weather transitions, wind, the day/night cycle, terrain edits and environment objects.

mod common;

use common::*;
use nexus_sim::*;

fn terrain_desc(rows: u32, cols: u32, size: f32) -> ObjectDesc {
    ObjectDesc {
        kind: BodyKind::Static,
        shape: Shape::Heightfield {
            rows,
            cols,
            heights: vec![0.0; (rows * cols) as usize],
            size: [size, 1.0, size],
        },
        position: [0.0, 0.0, 0.0],
        rotation: identity_rotation(),
        mass: None,
        friction: 0.8,
        restitution: 0.0,
        properties: Default::default(),
    }
}

fn weather_events(world: &mut World) -> Vec<WeatherState> {
    world
        .drain_events()
        .into_iter()
        .filter_map(|e| match e {
            WorldEvent::WeatherChanged { weather } => Some(weather),
            _ => None,
        })
        .collect()
}

#[test]
fn weather_changes_at_once_without_a_transition() {
    let mut world = World::new(WorldConfig::default());
    assert_eq!(world.environment_state().weather.kind, WeatherKind::Clear);
    world
        .apply_environment(EnvironmentCommand::SetWeather {
            kind: WeatherKind::Fog,
            transition_seconds: 0.0,
        })
        .unwrap();
    let events = weather_events(&mut world);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, WeatherKind::Fog);
    assert_eq!(events[0].intensity, 1.0);
    assert_eq!(world.environment_state().weather.kind, WeatherKind::Fog);
}

#[test]
fn a_weather_transition_fades_out_switches_at_midpoint_and_fades_in() {
    let mut world = World::new(WorldConfig::default());
    world
        .apply_environment(EnvironmentCommand::SetWeather {
            kind: WeatherKind::Storm,
            transition_seconds: 2.0,
        })
        .unwrap();
    let start = weather_events(&mut world);
    assert_eq!(start.len(), 1);
    assert_eq!(start[0].transition_to, Some(WeatherKind::Storm));
    assert_eq!(start[0].transition_remaining, 2.0);

    run(&mut world, 30); // 0.5 s: fading out the clear sky
    let w = world.environment_state().weather;
    assert_eq!(w.kind, WeatherKind::Clear);
    assert!((w.intensity - 0.5).abs() < 0.02, "{w:?}");

    run(&mut world, 31); // just past the midpoint: storm starting
    let w = world.environment_state().weather;
    assert_eq!(w.kind, WeatherKind::Storm);
    assert!(w.intensity < 0.1, "{w:?}");
    assert_eq!(w.transition_to, Some(WeatherKind::Storm));

    run(&mut world, 60);
    let w = world.environment_state().weather;
    assert_eq!(w.kind, WeatherKind::Storm);
    assert_eq!(w.intensity, 1.0);
    assert_eq!(w.transition_to, None);

    let events = weather_events(&mut world);
    // Progress every 0.5 s (3 during 2 s, the 4th coincides with the end), the midpoint and the end.
    assert!(events.len() >= 4, "{events:?}");
    let last = events.last().unwrap();
    assert_eq!(last.kind, WeatherKind::Storm);
    assert_eq!(last.transition_to, None);
    assert!(
        events
            .iter()
            .any(|e| e.kind == WeatherKind::Storm && e.transition_to.is_some())
    );
    // Intensity is monotonic within each half.
    run(&mut world, 60);
    assert!(
        weather_events(&mut world).is_empty(),
        "no events once settled"
    );
}

#[test]
fn invalid_environment_commands_are_refused() {
    let mut world = World::new(WorldConfig::default());
    let cases = [
        EnvironmentCommand::SetWeather {
            kind: WeatherKind::Rain,
            transition_seconds: -1.0,
        },
        EnvironmentCommand::SetWeather {
            kind: WeatherKind::Rain,
            transition_seconds: f32::NAN,
        },
        EnvironmentCommand::SetWind {
            wind: [f32::INFINITY, 0.0, 0.0],
        },
        EnvironmentCommand::SetWind {
            wind: [500.0, 0.0, 0.0],
        },
        EnvironmentCommand::SetTimeOfDay { hours: 24.0 },
        EnvironmentCommand::SetTimeOfDay { hours: -1.0 },
        EnvironmentCommand::SetDayLength { seconds: 0.0 },
    ];
    for cmd in cases {
        let err = world.apply_environment(cmd.clone()).unwrap_err();
        assert_eq!(err.code, "invalid_argument", "{cmd:?}");
    }
    let err = world
        .apply_environment(EnvironmentCommand::EditTerrain {
            center: [0.0, 0.0],
            radius: 2.0,
            delta: 1.0,
        })
        .unwrap_err();
    assert_eq!(err.code, "no_terrain");
    let err = world
        .apply_environment(EnvironmentCommand::RemoveObject { id: 77 })
        .unwrap_err();
    assert_eq!(err.code, "unknown_object");
    assert!(
        world.drain_events().is_empty(),
        "refused commands emit nothing"
    );
}

#[test]
fn wind_pushes_light_bodies_but_not_heavy_ones() {
    let mut world = world_with_ground();
    let mut light = crate_at([0.0, 0.25, 0.0], 0.25);
    light.mass = Some(1.0);
    light.friction = 0.1;
    let light = world.add_object(light).unwrap();
    let mut heavy = crate_at([0.0, 0.25, 5.0], 0.25);
    heavy.mass = Some(500.0);
    heavy.friction = 0.1;
    let heavy = world.add_object(heavy).unwrap();
    run(&mut world, 200);
    assert!(
        world.object_state(light).unwrap().sleeping,
        "at rest before the wind"
    );
    world.drain_events();
    world
        .apply_environment(EnvironmentCommand::SetWind {
            wind: [15.0, 0.0, 0.0],
        })
        .unwrap();
    let events = weather_events(&mut world);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].wind, [15.0, 0.0, 0.0]);
    run(&mut world, 60);
    let l = world.object_state(light).unwrap();
    let h = world.object_state(heavy).unwrap();
    assert!(l.position[0] > 0.5, "light box blown downwind: {l:?}");
    assert!(h.position[0].abs() < 1e-3, "heavy box stays: {h:?}");
}

#[test]
fn the_day_night_cycle_advances_and_emits_hourly_events() {
    let mut config = WorldConfig::default();
    config.environment.day_length = 24.0; // one in-game hour per second
    config.environment.start_time_of_day = 5.5;
    let mut world = World::new(config);
    run(&mut world, 60);
    let env = world.environment_state();
    assert!((env.time_of_day - 6.5).abs() < 0.01, "{env:?}");
    let hours: Vec<f32> = world
        .drain_events()
        .into_iter()
        .filter_map(|e| match e {
            WorldEvent::TimeOfDayChanged { time_of_day, .. } => Some(time_of_day),
            _ => None,
        })
        .collect();
    assert_eq!(hours.len(), 1, "{hours:?}");
    assert!(hours[0] >= 6.0 && hours[0] < 6.1);
    world
        .apply_environment(EnvironmentCommand::SetTimeOfDay { hours: 23.99 })
        .unwrap();
    world
        .apply_environment(EnvironmentCommand::SetDayLength { seconds: 600.0 })
        .unwrap();
    let events = world.drain_events();
    assert_eq!(events.len(), 2);
    assert!(matches!(
        events[1],
        WorldEvent::TimeOfDayChanged { day_length, .. } if day_length == 600.0
    ));
    run(&mut world, 60);
    assert!(
        world.environment_state().time_of_day < 1.0,
        "wrapped past midnight"
    );
}

#[test]
fn editing_the_terrain_emits_a_patch_moves_the_ground_and_wakes_bodies() {
    let mut world = World::new(WorldConfig::default());
    let terrain = world
        .add_environment_object(terrain_desc(33, 33, 32.0))
        .unwrap();
    assert_eq!(world.environment_state().terrain_id, Some(terrain));
    let events = world.drain_events();
    assert!(matches!(
        &events[0],
        WorldEvent::ObjectAdded { environment: true, object } if object.id == terrain && object.shape.is_some()
    ));
    let ball = world
        .add_object(ObjectDesc {
            shape: Shape::Sphere { radius: 0.5 },
            ..crate_at([4.0, 0.5, 4.0], 0.5)
        })
        .unwrap();
    run(&mut world, 200);
    assert!(world.object_state(ball).unwrap().sleeping);
    world.drain_events();

    // 1 sample per metre; raise a 3 m radius mound of 2 m at (4, 4).
    world
        .apply_environment(EnvironmentCommand::EditTerrain {
            center: [4.0, 4.0],
            radius: 3.0,
            delta: 2.0,
        })
        .unwrap();
    let patch = world
        .drain_events()
        .into_iter()
        .find_map(|e| match e {
            WorldEvent::TerrainEdited(p) => Some(p),
            _ => None,
        })
        .expect("terrain patch event");
    assert_eq!(patch.terrain_id, terrain);
    assert_eq!(patch.revision, 1);
    // Samples 17..=23 in both directions: every sample within the radius.
    assert_eq!(
        (patch.row0, patch.col0, patch.rows, patch.cols),
        (17, 17, 7, 7)
    );
    assert_eq!(patch.heights.len(), 49);
    let centre = patch.heights[3 * 7 + 3];
    assert!(
        (centre - 2.0).abs() < 1e-5,
        "full delta at the centre: {centre}"
    );
    assert!(
        patch.heights[0] == 0.0,
        "corner beyond the radius untouched"
    );
    assert_eq!(world.environment_state().terrain_revision, 1);
    assert!((world.terrain_height(4.0, 4.0).unwrap() - 2.0).abs() < 1e-5);
    assert!(world.changed_since(world.tick()).contains(&terrain));
    // The snapshot's terrain shape carries the edit.
    let snap = world.snapshot(true);
    let t = snap.objects.iter().find(|o| o.id == terrain).unwrap();
    let Some(Shape::Heightfield { heights, .. }) = &t.shape else {
        panic!()
    };
    assert!((heights[20 * 33 + 20] - 2.0).abs() < 1e-5);
    // The ball was woken and rolls off the mound.
    assert!(!world.object_state(ball).unwrap().sleeping);
    run(&mut world, 30);
    let b = world.object_state(ball).unwrap();
    assert!(b.position[1] > 0.5, "pushed up by the new ground: {b:?}");

    // Lowering below an object's feet, and edits that miss.
    let err = world.edit_terrain([100.0, 100.0], 2.0, 1.0).unwrap_err();
    assert_eq!(err.code, "out_of_bounds");
    for (r, d) in [
        (0.0, 1.0),
        (-1.0, 1.0),
        (2.0, f32::NAN),
        (f32::INFINITY, 1.0),
    ] {
        assert_eq!(
            world.edit_terrain([0.0, 0.0], r, d).unwrap_err().code,
            "invalid_argument"
        );
    }
    let p2 = world.edit_terrain([-4.0, -4.0], 1.5, -1.0).unwrap();
    assert_eq!(p2.revision, 2);
    assert!((world.terrain_height(-4.0, -4.0).unwrap() + 1.0).abs() < 1e-5);
}

#[test]
fn environment_objects_are_added_and_removed_with_events() {
    let mut world = World::new(WorldConfig::default());
    world
        .apply_environment(EnvironmentCommand::AddObject {
            object: crate_at([0.0, 5.0, 0.0], 1.0),
        })
        .unwrap();
    let id = match &world.drain_events()[0] {
        WorldEvent::ObjectAdded {
            object,
            environment: true,
        } => object.id,
        other => panic!("{other:?}"),
    };
    let normal = world.add_object(crate_at([5.0, 5.0, 0.0], 1.0)).unwrap();
    let err = world
        .apply_environment(EnvironmentCommand::RemoveObject { id: normal })
        .unwrap_err();
    assert_eq!(err.code, "not_environment");
    world
        .apply_environment(EnvironmentCommand::RemoveObject { id })
        .unwrap();
    let events = world.drain_events();
    assert!(matches!(
        &events[..],
        [WorldEvent::ObjectAdded { .. }, WorldEvent::ObjectRemoved { id: removed, reason }]
            if *removed == id && reason == "environment"
    ));
    assert!(world.object_state(id).is_none());
}
