//! Environment: weather with transitions, wind, the day/night cycle, editable terrain and
//! environment objects. Every change emits an event.
//!
//! How it works:
//! - **Weather** `A → B` over `T` seconds: during the first half A's intensity fades to 0, at the
//!   midpoint the kind becomes B, during the second half B's intensity rises to 1. Events: at the
//!   start, every `transition_event_interval` seconds, at the midpoint and at the end.
//! - **Wind** pushes awake dynamic bodies lighter than `light_body_mass` (quadratic drag on their
//!   cross-section) and every particle. Changing the wind wakes the light bodies.
//! - **Time of day** advances `24 h / day_length` per real second; an event at every in-game hour
//!   and on every explicit change.
//! - **Terrain**: the first static heightfield object is the terrain. An edit raises or lowers the
//!   samples within a radius with a smooth `(1 - (d/r)²)²` falloff, rebuilds the collider, wakes
//!   the bodies nearby and emits the changed block of samples as a `TerrainPatch`.

use std::collections::BTreeSet;

use rapier3d::prelude::Vector;
use serde::{Deserialize, Serialize};

use crate::config::EnvironmentSettings;
use crate::state::{BodyKind, ObjectId, WeatherKind, WeatherState};

/// Environment state kept by the world.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Environment {
    pub weather: WeatherState,
    pub time_of_day: f32,
    pub day_length: f32,
    pub terrain_id: Option<ObjectId>,
    pub terrain_revision: u32,
    pub(crate) transition_total: f32,
    pub(crate) start_intensity: f32,
    pub(crate) since_progress_event: f32,
    /// Dynamic bodies light enough for the wind.
    pub(crate) light_bodies: BTreeSet<ObjectId>,
}

impl Environment {
    pub fn new(settings: &EnvironmentSettings) -> Self {
        Environment {
            weather: WeatherState {
                kind: WeatherKind::Clear,
                intensity: 1.0,
                wind: [0.0; 3],
                transition_to: None,
                transition_remaining: 0.0,
            },
            time_of_day: settings.start_time_of_day.rem_euclid(24.0),
            day_length: settings.day_length.max(1.0),
            terrain_id: None,
            terrain_revision: 0,
            transition_total: 0.0,
            start_intensity: 1.0,
            since_progress_event: 0.0,
            light_bodies: BTreeSet::new(),
        }
    }

    pub fn on_object_added(
        &mut self,
        id: ObjectId,
        kind: BodyKind,
        mass: f32,
        settings: &EnvironmentSettings,
    ) {
        if kind == BodyKind::Dynamic && mass < settings.light_body_mass {
            self.light_bodies.insert(id);
        }
    }

    pub fn on_object_removed(&mut self, id: ObjectId) {
        self.light_bodies.remove(&id);
    }

    pub(crate) fn wind(&self) -> Vector {
        Vector::from_array(self.weather.wind)
    }

    /// Takes a saved weather as the current one. The state does not carry an ongoing
    /// transition's length and starting intensity: they are solved for from the saved intensity
    /// and time left, so that the transition goes on from the saved intensity without a jump and
    /// ends when it would have ended (exactly so when it started from a settled weather, as
    /// transitions usually do).
    pub(crate) fn restore_weather(&mut self, weather: WeatherState) {
        self.weather = weather;
        self.since_progress_event = 0.0;
        let Some(target) = self.weather.transition_to else {
            self.weather.transition_remaining = 0.0;
            self.transition_total = 0.0;
            self.start_intensity = self.weather.intensity;
            return;
        };
        let remaining = self.weather.transition_remaining;
        let intensity = self.weather.intensity;
        let half = if self.weather.kind != target {
            // First half, fading out: intensity = start * (remaining - half) / half, taking the
            // start as a settled 1.
            self.start_intensity = 1.0;
            remaining / (1.0 + intensity)
        } else {
            // Second half, fading in: intensity = (half - remaining) / half.
            self.start_intensity = intensity;
            remaining / (1.0 - intensity).max(1.0e-3)
        };
        self.transition_total = 2.0 * half;
    }
}
