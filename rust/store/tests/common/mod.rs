//! Helpers shared by the integration tests: scratch directories and sample campaigns.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use nexus_sim::state::{
    BodyKind, EnvironmentState, ObjectDesc, ObjectState, Properties, Shape, WeatherKind,
    WeatherState,
};
use nexus_store::{CampaignRecord, ObjectRecord, PlayerRecord};

pub mod pg;

/// A directory removed when dropped.
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    pub fn new(name: &str) -> ScratchDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "nexus-store-{name}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create scratch dir");
        ScratchDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn environment() -> EnvironmentState {
    EnvironmentState {
        weather: WeatherState {
            kind: WeatherKind::Rain,
            intensity: 0.75,
            wind: [1.5, 0.0, -0.25],
            transition_to: Some(WeatherKind::Storm),
            transition_remaining: 3.5,
        },
        time_of_day: 13.25,
        day_length: 600.0,
        terrain_id: Some(1),
        terrain_revision: 3,
    }
}

fn properties(i: u32) -> Properties {
    let mut p = Properties::new();
    p.insert(
        "color".into(),
        serde_json::json!(["red", "green", "blue"][i as usize % 3]),
    );
    p.insert("pickupable".into(), serde_json::json!(i.is_multiple_of(2)));
    p.insert(
        "weight".into(),
        serde_json::json!(0.1 * f64::from(i) + 1.0 / 3.0),
    );
    p
}

/// A dynamic box (or sphere) with awkward float values, to test exact round trips.
pub fn object(id: u32, variant: u32) -> ObjectRecord {
    let x = id as f32 * 0.1 + 1.0 / 3.0;
    let shape = if id.is_multiple_of(2) {
        Shape::Box {
            half_extents: [0.5, 0.25 + id as f32 * 1e-3, 0.5],
        }
    } else {
        Shape::Sphere {
            radius: 0.3 + id as f32 * 1e-4,
        }
    };
    let desc = ObjectDesc {
        kind: BodyKind::Dynamic,
        shape,
        position: [x, 1.0, -x],
        rotation: [0.0, 0.0, 0.0, 1.0],
        mass: Some(2.5),
        friction: 0.7,
        restitution: 0.1,
        properties: properties(id),
    };
    let v = variant as f32;
    let state = ObjectState {
        id,
        kind: BodyKind::Dynamic,
        position: [x + v, 1.0 + v * 0.5, -x],
        rotation: [0.0, (v * 0.1).sin(), 0.0, (v * 0.1).cos()],
        velocity: [v, -9.81 * v / 60.0, 0.0],
        angular_velocity: [0.0, v * 0.01, 0.0],
        sleeping: variant == 0,
        shape: None,
        properties: properties(id),
    };
    ObjectRecord { desc, state }
}

/// The terrain: a small heightfield, object 1.
pub fn terrain(revision: u32) -> ObjectRecord {
    let rows = 8;
    let cols = 8;
    let heights = (0..rows * cols)
        .map(|i| (i as f32 * 0.37).sin() + revision as f32 * 0.01)
        .collect();
    let shape = Shape::Heightfield {
        rows,
        cols,
        heights,
        size: [64.0, 10.0, 64.0],
    };
    let desc = ObjectDesc {
        kind: BodyKind::Static,
        shape,
        position: [0.0; 3],
        rotation: [0.0, 0.0, 0.0, 1.0],
        mass: None,
        friction: 0.9,
        restitution: 0.0,
        properties: Properties::new(),
    };
    let state = ObjectState {
        id: 1,
        kind: BodyKind::Static,
        position: [0.0; 3],
        rotation: [0.0, 0.0, 0.0, 1.0],
        velocity: [0.0; 3],
        angular_velocity: [0.0; 3],
        sleeping: true,
        shape: None,
        properties: Properties::new(),
    };
    ObjectRecord { desc, state }
}

/// A campaign with a terrain (id 1), objects 2..=objects+1 and two players.
pub fn campaign(id: &str, objects: u32) -> CampaignRecord {
    let mut record = CampaignRecord::new(id, environment());
    record.tick = 600;
    record.objects.insert(1, terrain(3));
    for i in 2..objects + 2 {
        record.objects.insert(i, object(i, 0));
    }
    record.next_object_id = objects + 2;
    let mut ann = PlayerRecord::at([1.0, 2.0, 3.0]);
    ann.held_items = vec![2];
    ann.last_seen_tick = 590;
    ann.properties.insert("score".into(), serde_json::json!(12));
    record.players.insert("ann".into(), ann);
    record
        .players
        .insert("bob".into(), PlayerRecord::at([-4.0, 0.5, 9.25]));
    record.world.insert("seed".into(), serde_json::json!(42));
    record
}

/// Asserts two records are equal, naming the first difference instead of printing both whole.
#[track_caller]
pub fn assert_same(actual: Option<&CampaignRecord>, expected: &CampaignRecord) {
    let Some(actual) = actual else {
        panic!("campaign {:?} is missing", expected.campaign_id);
    };
    if actual == expected {
        return;
    }
    let header = |r: &CampaignRecord| {
        (
            r.campaign_id.clone(),
            r.tick,
            r.next_object_id,
            r.environment.clone(),
            r.world.clone(),
        )
    };
    assert_eq!(header(actual), header(expected), "campaign header differs");
    for (id, object) in &expected.objects {
        assert_eq!(actual.objects.get(id), Some(object), "object {id} differs");
    }
    let extra: Vec<_> = actual
        .objects
        .keys()
        .filter(|id| !expected.objects.contains_key(id))
        .collect();
    assert!(extra.is_empty(), "unexpected objects {extra:?}");
    assert_eq!(actual.players, expected.players, "players differ");
    panic!("records differ");
}

/// A small ext4 filesystem in an image file, mounted through a loop device, that a test can
/// break the way real disks break: `abort` makes every write fail with "Read-only file system"
/// (ext4's own reaction to an I/O error, `errors=remount-ro`), even through files already open.
/// Needs root (mount, loop devices); `mount` says why not otherwise.
pub struct LoopDisk {
    pub path: PathBuf,
    image: PathBuf,
    _scratch: ScratchDir,
}

impl LoopDisk {
    pub fn mount(name: &str, megabytes: u32) -> Result<LoopDisk, String> {
        let scratch = ScratchDir::new(name);
        let image = scratch.path().join("disk.img");
        let path = scratch.path().join("disk");
        std::fs::create_dir_all(&path).map_err(|e| e.to_string())?;
        let file = std::fs::File::create(&image).map_err(|e| e.to_string())?;
        file.set_len(u64::from(megabytes) << 20)
            .map_err(|e| e.to_string())?;
        run("mkfs.ext4", &["-q", "-F", &image.to_string_lossy()])?;
        let disk = LoopDisk {
            path,
            image,
            _scratch: scratch,
        };
        disk.attach()?;
        Ok(disk)
    }

    fn attach(&self) -> Result<(), String> {
        run(
            "mount",
            &[
                "-o",
                "loop",
                &self.image.to_string_lossy(),
                &self.path.to_string_lossy(),
            ],
        )
    }

    /// The filesystem fails: from now on every write to it fails.
    pub fn abort(&self) {
        run(
            "mount",
            &["-o", "remount,abort", &self.path.to_string_lossy()],
        )
        .expect("ext4 takes the abort option");
    }

    /// Takes the failed filesystem away (lazily: files still open keep it alive), leaving the
    /// bare mount point, as after an operator unmounts a broken disk.
    pub fn unmount(&self) {
        run("umount", &["-l", &self.path.to_string_lossy()]).expect("umount");
    }

    /// Repairs the image (as an operator runs fsck) and mounts it again at the same place.
    pub fn repair_and_mount(&self) {
        // e2fsck exits 1 when it fixed something, which is the point here.
        let status = std::process::Command::new("e2fsck")
            .args(["-f", "-y"])
            .arg(&self.image)
            .output()
            .expect("e2fsck runs");
        assert!(
            status.status.code().is_some_and(|code| code <= 1),
            "e2fsck: {}",
            String::from_utf8_lossy(&status.stdout)
        );
        self.attach().expect("the repaired disk mounts");
    }
}

impl Drop for LoopDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let output = std::process::Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}
