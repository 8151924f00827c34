use godot::classes::{INode, Node};
use godot::prelude::*;
use nexus_sim::shapes::rolling_hills;
use nexus_sim::state::{BodyKind, ObjectDesc, ObjectId, WeatherKind, identity_rotation};
use nexus_sim::{EnvironmentCommand, World};

use crate::convert::{from_dictionary, to_variant, vec3_to_array};
use crate::world_access::{read_parent_world, with_parent_world};

/// Weather kinds, as the inspector shows them.
#[derive(GodotConvert, Var, Export, Default, Clone, Copy, PartialEq, Eq, Debug)]
#[godot(via = i64)]
pub enum Weather {
    /// Clear sky.
    #[default]
    Clear,
    /// Rain.
    Rain,
    /// Storm: rain and strong gusts.
    Storm,
    /// Fog.
    Fog,
}

impl From<Weather> for WeatherKind {
    fn from(weather: Weather) -> Self {
        match weather {
            Weather::Clear => WeatherKind::Clear,
            Weather::Rain => WeatherKind::Rain,
            Weather::Storm => WeatherKind::Storm,
            Weather::Fog => WeatherKind::Fog,
        }
    }
}

/// The environment of its parent `PhysicsWorldServer`'s world: terrain (an editable heightfield),
/// weather with transitions and wind, and the day/night cycle. The `initial_*` properties set
/// up the world when it starts; the methods change it while it runs, and every change is sent to
/// the campaign's clients (`environment:*` events) and signalled here.
#[derive(GodotClass)]
#[class(init, base = Node)]
pub struct EnvironmentManager {
    /// Weather when the world starts.
    #[export]
    initial_weather: Weather,
    /// Wind (m/s) when the world starts; it pushes light bodies and particles.
    #[export]
    initial_wind: Vector3,
    /// Time of day (hours) when the world starts.
    #[export(range = (0.0, 23.99, 0.01, suffix = "h"))]
    #[init(val = 12.0)]
    initial_time_of_day: f32,
    /// Real seconds for a full day.
    #[export(range = (1.0, 86400.0, 1.0, or_greater, suffix = "s"))]
    #[init(val = 600.0)]
    day_length: f32,
    /// Whether the world gets a terrain.
    #[export]
    #[export_group(name = "Terrain", prefix = "terrain_")]
    #[init(val = true)]
    terrain_enabled: bool,
    /// Terrain extent in metres (x, z).
    #[export]
    #[init(val = Vector2::new(120.0, 120.0))]
    terrain_size: Vector2,
    /// Height samples per side.
    #[export(range = (2.0, 513.0, 1.0))]
    #[init(val = 65)]
    terrain_resolution: i32,
    /// Height of the generated hills, m (0: flat).
    #[export(range = (0.0, 50.0, 0.1, or_greater, suffix = "m"))]
    #[init(val = 4.0)]
    terrain_hill_height: f32,
    /// Radius of the flat arena kept in the middle, m.
    #[export(range = (0.0, 500.0, 0.5, or_greater, suffix = "m"))]
    #[init(val = 25.0)]
    terrain_flat_radius: f32,
    /// Where the terrain's centre lies.
    #[export]
    terrain_position: Vector3,
    base: Base<Node>,
}

#[godot_api]
impl INode for EnvironmentManager {}

#[godot_api]
impl EnvironmentManager {
    /// The weather changed or a transition progressed (`kind`, `intensity`, `wind`, ...).
    #[signal]
    fn weather_changed(weather: VarDictionary);
    /// The time of day or the day length changed.
    #[signal]
    fn time_of_day_changed(hours: f32, day_length: f32);
    /// Part of the terrain changed (`terrain_id`, `revision`, `row0`, `col0`, `rows`, `cols`,
    /// `heights`).
    #[signal]
    fn terrain_edited(patch: VarDictionary);

    /// Changes the weather to `kind` (`clear`, `rain`, `storm`, `fog`) over `transition_seconds`.
    #[func]
    fn set_weather(&mut self, kind: GString, transition_seconds: f32) -> bool {
        let kind = match kind.to_string().as_str() {
            "clear" => WeatherKind::Clear,
            "rain" => WeatherKind::Rain,
            "storm" => WeatherKind::Storm,
            "fog" => WeatherKind::Fog,
            other => {
                godot_error!(
                    "EnvironmentManager.set_weather: unknown weather {other:?} (clear, rain, storm, fog)"
                );
                return false;
            }
        };
        self.apply(EnvironmentCommand::SetWeather {
            kind,
            transition_seconds,
        })
    }

    /// Sets the wind velocity (m/s).
    #[func]
    fn set_wind(&mut self, wind: Vector3) -> bool {
        self.apply(EnvironmentCommand::SetWind {
            wind: vec3_to_array(wind),
        })
    }

    /// Sets the time of day (hours, 0 to 24).
    #[func]
    fn set_time_of_day(&mut self, hours: f32) -> bool {
        self.apply(EnvironmentCommand::SetTimeOfDay { hours })
    }

    /// Raises (positive `delta`, m) or lowers the terrain around `center` (x, z) within `radius`.
    #[func]
    fn edit_terrain(&mut self, center: Vector2, radius: f32, delta: f32) -> bool {
        self.apply(EnvironmentCommand::EditTerrain {
            center: [center.x, center.y],
            radius,
            delta,
        })
    }

    /// Adds an environment object from a description Dictionary; returns its id or -1.
    #[func]
    fn add_environment_object(&mut self, description: VarDictionary) -> i64 {
        let desc: ObjectDesc = match from_dictionary(&description) {
            Ok(desc) => desc,
            Err(error) => {
                godot_error!(
                    "EnvironmentManager.add_environment_object: invalid description: {error}"
                );
                return -1;
            }
        };
        match self.with_world(|world| {
            world
                .add_environment_object(desc)
                .map_err(|e| e.to_string())
        }) {
            Some(Ok(id)) => i64::from(id),
            Some(Err(error)) => {
                godot_error!("EnvironmentManager.add_environment_object: {error}");
                -1
            }
            None => -1,
        }
    }

    /// Removes an environment object; false when `object_id` is not one.
    #[func]
    fn remove_environment_object(&mut self, object_id: i64) -> bool {
        let Ok(id) = ObjectId::try_from(object_id) else {
            return false;
        };
        self.apply(EnvironmentCommand::RemoveObject { id })
    }

    /// The environment: `weather`, `time_of_day`, `day_length`, `terrain_id`, `terrain_revision`.
    #[func]
    fn get_environment_state(&self) -> VarDictionary {
        read_parent_world(&self.base(), |w| to_variant(&w.environment_state()).to())
            .unwrap_or_default()
    }

    /// The terrain height at (x, z), or NAN outside the terrain or without one.
    #[func]
    fn get_terrain_height(&self, x: f32, z: f32) -> f32 {
        read_parent_world(&self.base(), |w| w.terrain_height(x, z))
            .flatten()
            .unwrap_or(f32::NAN)
    }
}

impl EnvironmentManager {
    fn with_world<R>(&mut self, f: impl FnOnce(&mut World) -> R) -> Option<R> {
        let node = self.base().clone().upcast::<Node>();
        if crate::world_access::parent_world(&node).is_none() {
            godot_error!("EnvironmentManager must be a child of a PhysicsWorldServer");
            return None;
        }
        with_parent_world(&node, f)
    }

    fn apply(&mut self, command: EnvironmentCommand) -> bool {
        match self.with_world(|world| world.apply_environment(command)) {
            Some(Ok(())) => true,
            Some(Err(error)) => {
                godot_error!("EnvironmentManager: {error}");
                false
            }
            None => false,
        }
    }

    /// Sets up a freshly built world: weather, wind, time of day, day length and the terrain.
    pub fn configure(&self, world: &mut World) {
        let commands = [
            EnvironmentCommand::SetWeather {
                kind: self.initial_weather.into(),
                transition_seconds: 0.0,
            },
            EnvironmentCommand::SetWind {
                wind: vec3_to_array(self.initial_wind),
            },
            EnvironmentCommand::SetTimeOfDay {
                hours: self.initial_time_of_day.rem_euclid(24.0),
            },
            EnvironmentCommand::SetDayLength {
                seconds: self.day_length,
            },
        ];
        for command in commands {
            if let Err(error) = world.apply_environment(command) {
                godot_error!("EnvironmentManager: {error}");
            }
        }
        if self.terrain_enabled
            && let Err(error) = world.add_environment_object(self.terrain_desc())
        {
            godot_error!("EnvironmentManager: the terrain: {error}");
        }
        // The set-up is the initial state, not news for clients.
        world.drain_events();
    }

    /// Rolling hills around a flat arena, deterministic from the properties.
    fn terrain_desc(&self) -> ObjectDesc {
        let mut properties = serde_json::Map::new();
        properties.insert("name".into(), "terrain".into());
        ObjectDesc {
            kind: BodyKind::Static,
            shape: rolling_hills(
                self.terrain_resolution.clamp(2, 513) as u32,
                [self.terrain_size.x, self.terrain_size.y],
                self.terrain_hill_height,
                self.terrain_flat_radius,
            ),
            position: vec3_to_array(self.terrain_position),
            rotation: identity_rotation(),
            mass: None,
            friction: 0.8,
            restitution: 0.0,
            properties,
        }
    }

    /// Emits one of this node's signals after the tick.
    pub fn defer_emit(&mut self, signal: &str, args: &[Variant]) {
        crate::convert::emit_deferred(&mut self.base_mut(), signal, args);
    }
}
