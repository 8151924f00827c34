//! A real `nexus_sim::World` through the store: its exact save survives a save/load cycle and
//! the restored world continues bit for bit like the original.

mod common;

use common::ScratchDir;
use nexus_sim::state::{BodyKind, ObjectDesc, Properties, Shape};
use nexus_sim::{World, WorldConfig};
use nexus_store::world_save::{attach_world_save, world_save_of};
use nexus_store::{CampaignRecord, CampaignStore, Saver, SaverConfig, SqliteStore};

fn desc(kind: BodyKind, shape: Shape, position: [f32; 3]) -> ObjectDesc {
    ObjectDesc {
        kind,
        shape,
        position,
        rotation: [0.0, 0.0, 0.0, 1.0],
        mass: None,
        friction: 0.5,
        restitution: 0.2,
        properties: Properties::new(),
    }
}

fn positions(world: &World) -> Vec<(u32, [f32; 3], [f32; 4])> {
    world
        .snapshot(false)
        .objects
        .iter()
        .map(|o| (o.id, o.position, o.rotation))
        .collect()
}

#[test]
fn a_saved_world_restores_and_continues_identically() {
    let dir = ScratchDir::new("world");
    let mut world = World::new(WorldConfig::default());
    world
        .add_object(desc(
            BodyKind::Static,
            Shape::Box {
                half_extents: [20.0, 0.5, 20.0],
            },
            [0.0, -0.5, 0.0],
        ))
        .unwrap();
    for i in 0..8 {
        let shape = Shape::Sphere { radius: 0.4 };
        world
            .add_object(desc(
                BodyKind::Dynamic,
                shape,
                [i as f32 * 0.3, 1.0 + i as f32, 0.0],
            ))
            .unwrap();
    }
    for _ in 0..40 {
        world.step();
    }

    let mut record = CampaignRecord::new("sim", world.environment_state());
    record.next_object_id = 100;
    attach_world_save(&mut record, &world.save()).unwrap();
    assert_eq!(record.tick, world.tick());
    let (mut saver, _) = Saver::start(
        Box::new(SqliteStore::open(dir.path()).unwrap()),
        "sim",
        SaverConfig::default(),
    )
    .unwrap();
    saver.submit_snapshot(record).unwrap();
    saver.shutdown().unwrap();

    let loaded = SqliteStore::open(dir.path())
        .unwrap()
        .load_campaign("sim")
        .unwrap()
        .unwrap();
    let save = world_save_of(&loaded)
        .unwrap()
        .expect("the world save is stored");
    let mut restored = World::restore(&save).unwrap();
    assert_eq!(restored.tick(), world.tick());
    assert_eq!(positions(&restored), positions(&world));
    for _ in 0..60 {
        world.step();
        restored.step();
    }
    assert_eq!(
        positions(&restored),
        positions(&world),
        "continuation differs"
    );
}

#[test]
fn a_damaged_world_save_is_reported() {
    let mut record = CampaignRecord::new(
        "sim",
        World::new(WorldConfig::default()).environment_state(),
    );
    assert!(world_save_of(&record).unwrap().is_none());
    record.world.insert(
        "world_save".into(),
        serde_json::json!({"format": 1, "tick": "x"}),
    );
    let error = world_save_of(&record).unwrap_err();
    assert_eq!(error.code(), "corrupt_record", "{error}");
}
