//! Native particle system: structure of arrays, multi-threaded with rayon, deterministic from a
//! seed whatever the number of threads.
//!
//! How it works:
//! - particles live in parallel arrays (`px, py, pz, vx, vy, vz, life`); a dead particle has
//!   `life <= 0` and its slot goes on a free list that emissions refill;
//! - an emission is `(seed, count, origin, params)`: particle `i` derives only from
//!   `(seed, i)` through [`emission_particle`], so a client that receives the
//!   `ParticlesEmitted` event rebuilds the same particles without a stream of them;
//! - a step updates fixed-size chunks in parallel: gravity, linear drag towards the wind, then
//!   collisions with the terrain (bilinear heightfield sample and its gradient) and with simple
//!   proxies of the colliders near the particles (spheres, capsules, oriented boxes: a box of its
//!   bounding box for any other convex shape) found through a dense uniform grid. Particles do not
//!   push bodies back;
//! - on x86-64 the chunk kernel takes eight particles per instruction (AVX2, detected at run
//!   time) or four (SSE2, which every such CPU has): forces, integration, the terrain contact
//!   (computed for all lanes, selected per lane: particles resting on the ground touch it in no
//!   pattern a branch predictor follows) and a lookup of each particle's cell in the grid; only
//!   particles in a cell holding a proxy, and dying ones, take the exact one-at-a-time path.
//!   Other targets run that path for all. All versions do the same IEEE operations in the same
//!   order (no fused multiply-add), so they give bit-identical results (tested): a client on
//!   another CPU replays an emission exactly. What limits it is arithmetic, not memory
//!   bandwidth: one read and write of every particle array is a small part of a step
//!   (measured; see the crate's README);
//! - every particle's update depends only on its own state and read-only shared data, and
//!   per-chunk results (newly dead slots, bounds) are combined in chunk order, so the outcome is
//!   bit-identical for 1 or N threads.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rayon::prelude::*;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::config::ParticleSettings;
use crate::error::SimError;
use crate::event::EmissionParams;
use crate::objects::WORLD_LIMIT;
use crate::state::Shape;

/// Particles per parallel work unit. Fixed (not derived from the thread count) so results never
/// depend on how many threads run.
const CHUNK: usize = 8192;
/// Largest count of one emission.
pub(crate) const MAX_EMISSION: u32 = 1_000_000;

/// SplitMix64: tiny, fast, statistically fine for effects, and trivially reproducible anywhere.
#[derive(Clone, Copy, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }
}

/// Mixes values into one seed (used for emission seeds).
pub fn mix_seed(parts: &[u64]) -> u64 {
    let mut rng = SplitMix64::new(0x243F_6A88_85A3_08D3);
    let mut acc = 0u64;
    for part in parts {
        rng.0 ^= part.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ acc;
        acc = rng.next_u64();
    }
    acc
}

/// Checks emission parameters.
pub fn validate_params(params: &EmissionParams) -> Result<(), SimError> {
    let bad = |m: String| Err(SimError::new("invalid_argument", m));
    let dir = params.direction;
    if !dir.iter().all(|c| c.is_finite()) || dir.iter().map(|c| c * c).sum::<f32>() < 1.0e-12 {
        return bad(format!(
            "direction must be finite and non-zero, got {dir:?}"
        ));
    }
    if !params.speed.is_finite() || !(0.0..=1000.0).contains(&params.speed) {
        return bad(format!(
            "speed must be within 0..=1000 m/s, got {}",
            params.speed
        ));
    }
    for (name, v) in [
        ("speed_jitter", params.speed_jitter),
        ("lifetime_jitter", params.lifetime_jitter),
    ] {
        if !v.is_finite() || !(0.0..=1.0).contains(&v) {
            return bad(format!("{name} must be within 0..=1, got {v}"));
        }
    }
    if !params.spread.is_finite() || !(0.0..=std::f32::consts::PI).contains(&params.spread) {
        return bad(format!(
            "spread must be within 0..=π radians, got {}",
            params.spread
        ));
    }
    if !params.lifetime.is_finite()
        || !(0.0..=3600.0).contains(&params.lifetime)
        || params.lifetime == 0.0
    {
        return bad(format!(
            "lifetime must be within (0, 3600] s, got {}",
            params.lifetime
        ));
    }
    Ok(())
}

/// Position, velocity and lifetime of particle `index` of an emission. The single definition of
/// what an emission means: server and clients both call it.
pub fn emission_particle(
    seed: u64,
    index: u32,
    origin: [f32; 3],
    params: &EmissionParams,
) -> ([f32; 3], [f32; 3], f32) {
    let mut rng = SplitMix64::new(seed ^ (index as u64).wrapping_mul(0xD1B5_4A32_D192_ED03));
    rng.next_u64();
    // Uniform direction in a cone of half-angle `spread` around `direction`.
    let cos_min = params.spread.cos();
    let cos_t = 1.0 - rng.next_f32() * (1.0 - cos_min);
    let sin_t = (1.0 - cos_t * cos_t).max(0.0).sqrt();
    let phi = rng.next_f32() * std::f32::consts::TAU;
    let d = normalize(params.direction);
    // An orthonormal basis around d.
    let helper = if d[1].abs() < 0.9 {
        [0.0, 1.0, 0.0]
    } else {
        [1.0, 0.0, 0.0]
    };
    let u = normalize(cross(helper, d));
    let w = cross(d, u);
    let (sp, cp) = phi.sin_cos();
    let dir: [f32; 3] = std::array::from_fn(|k| d[k] * cos_t + (u[k] * cp + w[k] * sp) * sin_t);
    let speed = params.speed * (1.0 + params.speed_jitter * (rng.next_f32() * 2.0 - 1.0));
    let life = params.lifetime * (1.0 + params.lifetime_jitter * (rng.next_f32() * 2.0 - 1.0));
    (origin, dir.map(|c| c * speed), life.max(1.0e-3))
}

fn normalize(v: [f32; 3]) -> [f32; 3] {
    let len = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
    if len > 0.0 {
        v.map(|c| c / len)
    } else {
        [0.0, 1.0, 0.0]
    }
}

fn cross(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

/// Most emission bursts (and events) per second from one emitter.
pub const EMISSIONS_PER_SECOND: u32 = 10;

/// A continuous emitter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmitterDesc {
    /// Emission point, world space.
    pub origin: [f32; 3],
    /// Particles per second.
    pub rate: f32,
    /// Direction, speed, spread and lifetime of the particles.
    pub params: EmissionParams,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Emitter {
    pub(crate) desc: EmitterDesc,
    pub(crate) accumulator: f32,
}

/// Forces and step parameters shared by all particles of a step.
#[derive(Clone, Copy, Debug)]
pub struct ParticleForces {
    /// Step length, s.
    pub dt: f32,
    /// Gravity, m/s².
    pub gravity: [f32; 3],
    /// Wind velocity, m/s.
    pub wind: [f32; 3],
}

/// A heightfield for particle collisions (row-major samples, centred on `offset`; the terrain's
/// rotation is ignored: terrains are laid flat).
#[derive(Clone, Debug, Default)]
pub struct TerrainSampler {
    rows: usize,
    cols: usize,
    /// Heights already multiplied by the vertical scale and shifted by the offset.
    heights: Vec<f32>,
    /// Samples per metre along X and Z.
    per_metre: [f32; 2],
    /// World X and Z of sample (0, 0).
    origin: [f32; 2],
    /// Highest point: particles above it skip the sampling.
    top: f32,
}

impl TerrainSampler {
    /// A sampler of a contract heightfield placed at `offset`; `None` for other shapes.
    pub fn new(shape: &Shape, offset: [f32; 3]) -> Option<Self> {
        let Shape::Heightfield {
            rows,
            cols,
            heights,
            size,
        } = shape
        else {
            return None;
        };
        let heights: Vec<f32> = heights.iter().map(|h| h * size[1] + offset[1]).collect();
        let top = heights.iter().fold(f32::MIN, |m, h| m.max(*h));
        Some(TerrainSampler {
            rows: *rows as usize,
            cols: *cols as usize,
            heights,
            per_metre: [(*cols - 1) as f32 / size[0], (*rows - 1) as f32 / size[2]],
            origin: [offset[0] - size[0] * 0.5, offset[2] - size[2] * 0.5],
            top,
        })
    }

    /// Bilinear height of a row-major grid at local `x`, `z` (scaled by `size[1]`), or `None`
    /// outside the grid.
    pub fn sample_grid(
        rows: usize,
        cols: usize,
        heights: &[f32],
        size: [f32; 3],
        x: f32,
        z: f32,
    ) -> Option<f32> {
        let fc = (x / size[0] + 0.5) * (cols - 1) as f32;
        let fr = (z / size[2] + 0.5) * (rows - 1) as f32;
        bilinear(rows, cols, heights, fc, fr).map(|(h, _, _)| h * size[1])
    }

    /// World height and slope `(h, dh/dx, dh/dz)` at world `x`, `z`, or `None` outside the
    /// terrain.
    #[inline]
    pub fn height_and_slope(&self, x: f32, z: f32) -> Option<(f32, f32, f32)> {
        let fc = (x - self.origin[0]) * self.per_metre[0];
        let fr = (z - self.origin[1]) * self.per_metre[1];
        bilinear(self.rows, self.cols, &self.heights, fc, fr)
            .map(|(h, dx, dz)| (h, dx * self.per_metre[0], dz * self.per_metre[1]))
    }

    /// The highest terrain point.
    pub fn top(&self) -> f32 {
        self.top
    }
}

/// Bilinear interpolation at fractional sample coordinates `(fc, fr)`: height and its
/// derivatives per sample step.
#[inline]
fn bilinear(
    rows: usize,
    cols: usize,
    heights: &[f32],
    fc: f32,
    fr: f32,
) -> Option<(f32, f32, f32)> {
    let sx = (cols - 1) as f32;
    let sz = (rows - 1) as f32;
    if !(fc >= 0.0 && fc <= sx && fr >= 0.0 && fr <= sz) {
        return None;
    }
    // In range (checked above), so the cheap signed conversion is exact.
    let c = (fc as i32 as usize).min(cols - 2);
    let r = (fr as i32 as usize).min(rows - 2);
    let (tx, tz) = (fc - c as f32, fr - r as f32);
    let i = r * cols + c;
    let near = &heights[i..i + 2];
    let far = &heights[i + cols..i + cols + 2];
    let top = near[0] + (near[1] - near[0]) * tx;
    let bottom = far[0] + (far[1] - far[0]) * tx;
    let h = top + (bottom - top) * tz;
    let dhdx = (near[1] - near[0]) * (1.0 - tz) + (far[1] - far[0]) * tz;
    let dhdz = bottom - top;
    Some((h, dhdx, dhdz))
}

/// Cheap collision proxy of one collider.
#[derive(Clone, Copy, Debug)]
pub enum ProxyShape {
    /// Ball of a radius.
    Sphere {
        /// Radius.
        radius: f32,
    },
    /// Segment from `center - axis` to `center + axis`, inflated by `radius`.
    Capsule {
        /// Half segment (world space).
        axis: [f32; 3],
        /// Radius.
        radius: f32,
    },
    /// Oriented box.
    Box {
        /// Half extents along the box axes.
        half: [f32; 3],
        /// The box axes (rows: local X, Y, Z in world space).
        axes: [[f32; 3]; 3],
    },
}

/// A collider as seen by particles.
#[derive(Clone, Copy, Debug)]
pub struct ColliderProxy {
    /// Centre, world space.
    pub center: [f32; 3],
    /// Velocity of the body (bounces are computed relative to it).
    pub velocity: [f32; 3],
    /// Shape.
    pub shape: ProxyShape,
    /// Bounding radius around the centre.
    pub radius: f32,
}

impl ColliderProxy {
    /// Half extents of the proxy's world-space bounding box.
    pub fn half_extents(&self) -> [f32; 3] {
        match self.shape {
            ProxyShape::Sphere { radius } => [radius; 3],
            ProxyShape::Capsule { axis, radius } => axis.map(|a| a.abs() + radius),
            ProxyShape::Box { half, axes } => std::array::from_fn(|k| {
                axes[0][k].abs() * half[0] + axes[1][k].abs() * half[1] + axes[2][k].abs() * half[2]
            }),
        }
    }
}

/// Colliders near the particles, bucketed in a dense uniform grid.
#[derive(Clone, Debug, Default)]
pub struct ColliderGrid {
    proxies: Vec<ColliderProxy>,
    /// World bounding box of each proxy: a cheap test before the exact one.
    bounds: Vec<([f32; 3], [f32; 3])>,
    origin: [f32; 3],
    inv_cell: f32,
    dims: [usize; 3],
    /// `dims` as floats, for the per-particle range test.
    dims_f: [f32; 3],
    /// Index of an extra, always empty cell: where particles outside the grid look.
    empty_cell: usize,
    starts: Vec<u32>,
    items: Vec<u32>,
    /// Per cell (the empty one included): whether any proxy is in it.
    occupied: Vec<bool>,
    /// Scratch of the build, kept with the other arrays for the next one.
    fill: Vec<u32>,
}

/// Most grid cells (memory and build time bound).
const MAX_GRID_CELLS: usize = 1 << 18;

impl ColliderGrid {
    /// Buckets proxies into a grid whose cells are about a third of the typical proxy's size.
    pub fn new(proxies: Vec<ColliderProxy>) -> Self {
        let mut grid = ColliderGrid::default();
        grid.rebuild(proxies);
        grid
    }

    /// [`ColliderGrid::new`] into this grid's arrays: a grid rebuilt every step then allocates
    /// (and the system zeroes fresh pages) only when it grows.
    pub fn rebuild(&mut self, proxies: Vec<ColliderProxy>) {
        self.proxies = proxies;
        self.bounds.clear();
        self.starts.clear();
        self.items.clear();
        self.occupied.clear();
        if self.proxies.is_empty() {
            // Nothing to find: every particle is outside (dims 0) and looks in no cell.
            self.dims = [0; 3];
            self.dims_f = [0.0; 3];
            self.inv_cell = 0.0;
            self.empty_cell = 0;
            return;
        }
        let proxies = &self.proxies;
        self.bounds.extend(proxies.iter().map(|p| {
            let h = p.half_extents();
            (
                std::array::from_fn(|k| p.center[k] - h[k]),
                std::array::from_fn(|k| p.center[k] + h[k]),
            )
        }));
        let bounds = &self.bounds;
        let mut lo = [f32::MAX; 3];
        let mut hi = [f32::MIN; 3];
        let mut size_sum = 0.0;
        for (a, b) in bounds {
            for k in 0..3 {
                lo[k] = lo[k].min(a[k]);
                hi[k] = hi[k].max(b[k]);
                size_sum += b[k] - a[k];
            }
        }
        let extent: [f32; 3] = std::array::from_fn(|k| (hi[k] - lo[k]).max(1.0e-3));
        // Cells about a third of the mean box size: a proxy covers a few dozen cells, a cell
        // holds few, and the occupied cells hug the proxies, so that particles in an occupied
        // cell (those that take the slow, exact path) are mostly really near one.
        let mut cell = (size_sum / (3 * proxies.len()) as f32 * 0.35).max(0.25);
        let cells_for = |cell: f32| -> [usize; 3] {
            std::array::from_fn(|k| ((extent[k] / cell).ceil() as usize).max(1))
        };
        let mut dims = cells_for(cell);
        while dims.iter().product::<usize>() > MAX_GRID_CELLS {
            cell *= 1.5;
            dims = cells_for(cell);
        }
        let inv_cell = 1.0 / cell;
        let total = dims.iter().product::<usize>();
        // Counting sort into CSR arrays: each proxy goes into every cell its box touches.
        let range = |i: usize, k: usize| {
            let (a, b) = &bounds[i];
            let first = ((a[k] - lo[k]) * inv_cell).floor().max(0.0) as usize;
            let last = ((b[k] - lo[k]) * inv_cell).floor().max(0.0) as usize;
            (first.min(dims[k] - 1), last.min(dims[k] - 1))
        };
        let each_cell = |i: usize, f: &mut dyn FnMut(usize)| {
            let (x0, x1) = range(i, 0);
            let (y0, y1) = range(i, 1);
            let (z0, z1) = range(i, 2);
            for x in x0..=x1 {
                for y in y0..=y1 {
                    for z in z0..=z1 {
                        f((x * dims[1] + y) * dims[2] + z);
                    }
                }
            }
        };
        // One extra cell (index `total`) that stays empty.
        let counts = &mut self.starts;
        counts.resize(total + 2, 0);
        for i in 0..proxies.len() {
            each_cell(i, &mut |c| counts[c + 1] += 1);
        }
        for c in 0..=total {
            counts[c + 1] += counts[c];
        }
        self.fill.clear();
        self.fill.extend_from_slice(counts);
        self.items.resize(counts[total] as usize, 0);
        let (fill, items) = (&mut self.fill, &mut self.items);
        for i in 0..proxies.len() {
            each_cell(i, &mut |c| {
                items[fill[c] as usize] = i as u32;
                fill[c] += 1;
            });
        }
        self.occupied
            .extend(counts.windows(2).map(|w| w[0] != w[1]));
        self.origin = lo;
        self.inv_cell = inv_cell;
        self.dims = dims;
        self.dims_f = dims.map(|d| d as f32);
        self.empty_cell = total;
    }

    /// Number of proxies.
    pub fn len(&self) -> usize {
        self.proxies.len()
    }

    /// Whether there are no proxies.
    pub fn is_empty(&self) -> bool {
        self.proxies.is_empty()
    }

    #[inline(always)]
    fn candidates(&self, p: [f32; 3]) -> &[u32] {
        if self.proxies.is_empty() {
            return &[];
        }
        // Branch-free on purpose: whether a particle is inside the grid is random from one
        // particle to the next, and mispredicted branches cost more than this arithmetic.
        let f: [f32; 3] = std::array::from_fn(|k| (p[k] - self.origin[k]) * self.inv_cell);
        // Non-short-circuit `&`; NaN fails every comparison, so it lands in the empty cell.
        let inside = (f[0] >= 0.0)
            & (f[0] < self.dims_f[0])
            & (f[1] >= 0.0)
            & (f[1] < self.dims_f[1])
            & (f[2] >= 0.0)
            & (f[2] < self.dims_f[2]);
        let idx: [usize; 3] =
            std::array::from_fn(|k| (f[k] as i32).clamp(0, self.dims[k] as i32 - 1) as usize);
        let cell = (idx[0] * self.dims[1] + idx[1]) * self.dims[2] + idx[2];
        let c = if inside { cell } else { self.empty_cell };
        &self.items[self.starts[c] as usize..self.starts[c + 1] as usize]
    }
}

/// Particle state and emitters.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ParticleSystem {
    pub(crate) settings: ParticleSettings,
    #[serde(with = "f32_base64")]
    px: Vec<f32>,
    #[serde(with = "f32_base64")]
    py: Vec<f32>,
    #[serde(with = "f32_base64")]
    pz: Vec<f32>,
    #[serde(with = "f32_base64")]
    vx: Vec<f32>,
    #[serde(with = "f32_base64")]
    vy: Vec<f32>,
    #[serde(with = "f32_base64")]
    vz: Vec<f32>,
    #[serde(with = "f32_base64")]
    life: Vec<f32>,
    #[serde(with = "u32_base64")]
    free: Vec<u32>,
    pub(crate) live: usize,
    /// Bounds of the live particles after the last step (min, max).
    pub(crate) bounds: Option<([f32; 3], [f32; 3])>,
    pub(crate) emitters: BTreeMap<u32, Emitter>,
    pub(crate) next_emitter: u32,
    pub(crate) bursts: u64,
    #[serde(skip)]
    pub(crate) terrain: Option<TerrainSampler>,
    #[serde(skip, default = "dirty")]
    pub(crate) terrain_dirty: bool,
    /// The colliders near the particles, rebuilt every step in place.
    #[serde(skip)]
    pub(crate) grid: ColliderGrid,
}

fn dirty() -> bool {
    true
}

impl Default for ParticleSystem {
    fn default() -> Self {
        ParticleSystem::new(ParticleSettings::default())
    }
}

/// What one chunk reports after a step.
struct ChunkReport {
    died: Vec<u32>,
    bounds: Option<([f32; 3], [f32; 3])>,
}

impl ParticleSystem {
    /// An empty system.
    pub fn new(settings: ParticleSettings) -> Self {
        ParticleSystem {
            settings,
            px: Vec::new(),
            py: Vec::new(),
            pz: Vec::new(),
            vx: Vec::new(),
            vy: Vec::new(),
            vz: Vec::new(),
            life: Vec::new(),
            free: Vec::new(),
            live: 0,
            bounds: None,
            emitters: BTreeMap::new(),
            next_emitter: 1,
            bursts: 0,
            terrain: None,
            terrain_dirty: true,
            grid: ColliderGrid::default(),
        }
    }

    /// Live particles.
    pub fn live_count(&self) -> usize {
        self.live
    }

    /// Slots in the arrays (live + free).
    pub fn slot_count(&self) -> usize {
        self.px.len()
    }

    /// Bytes used by particle storage (arrays and free list, by capacity).
    pub fn memory_bytes(&self) -> usize {
        let arrays = [
            &self.px, &self.py, &self.pz, &self.vx, &self.vy, &self.vz, &self.life,
        ];
        arrays.iter().map(|a| a.capacity() * 4).sum::<usize>() + self.free.capacity() * 4
    }

    /// Position, velocity and remaining life of the particle in `slot`, if alive.
    pub fn particle(&self, slot: usize) -> Option<([f32; 3], [f32; 3], f32)> {
        let life = *self.life.get(slot)?;
        (life > 0.0).then(|| {
            (
                [self.px[slot], self.py[slot], self.pz[slot]],
                [self.vx[slot], self.vy[slot], self.vz[slot]],
                life,
            )
        })
    }

    /// All live particles' positions, in slot order.
    pub fn positions(&self) -> Vec<[f32; 3]> {
        (0..self.px.len())
            .filter(|i| self.life[*i] > 0.0)
            .map(|i| [self.px[i], self.py[i], self.pz[i]])
            .collect()
    }

    /// Bounds of the live particles after the last step.
    pub fn bounds(&self) -> Option<([f32; 3], [f32; 3])> {
        self.bounds
    }

    /// Emits up to `count` particles (cut short at `max_particles`); returns how many.
    pub fn emit(
        &mut self,
        seed: u64,
        count: u32,
        origin: [f32; 3],
        params: &EmissionParams,
    ) -> u32 {
        let room = self.settings.max_particles.saturating_sub(self.live);
        let count = (count as usize).min(room) as u32;
        for i in 0..count {
            let (p, v, life) = emission_particle(seed, i, origin, params);
            let slot = match self.free.pop() {
                Some(slot) => slot as usize,
                None => {
                    self.px.push(0.0);
                    self.py.push(0.0);
                    self.pz.push(0.0);
                    self.vx.push(0.0);
                    self.vy.push(0.0);
                    self.vz.push(0.0);
                    self.life.push(0.0);
                    self.px.len() - 1
                }
            };
            self.px[slot] = p[0];
            self.py[slot] = p[1];
            self.pz[slot] = p[2];
            self.vx[slot] = v[0];
            self.vy[slot] = v[1];
            self.vz[slot] = v[2];
            self.life[slot] = life;
        }
        self.live += count as usize;
        if count > 0 {
            let (lo, hi) = self.bounds.unwrap_or((origin, origin));
            self.bounds = Some((
                std::array::from_fn(|k| lo[k].min(origin[k])),
                std::array::from_fn(|k| hi[k].max(origin[k])),
            ));
        }
        count
    }

    /// Advances every live particle by one step.
    pub fn step(
        &mut self,
        forces: &ParticleForces,
        terrain: Option<&TerrainSampler>,
        colliders: &ColliderGrid,
    ) {
        if self.live == 0 {
            self.bounds = None;
            return;
        }
        let kernel = Kernel {
            dt: forces.dt,
            gravity: forces.gravity,
            wind: forces.wind,
            drag: self.settings.drag,
            restitution: self.settings.restitution,
            friction: self.settings.friction,
            kill_height: self.settings.kill_height,
            terrain,
            colliders,
        };
        let reports: Vec<ChunkReport> = if self.px.len() <= CHUNK {
            // One chunk: on this thread (handing it to the pool costs more than it saves).
            let whole = (
                &mut self.px[..],
                &mut self.py[..],
                &mut self.pz[..],
                &mut self.vx[..],
                &mut self.vy[..],
                &mut self.vz[..],
                &mut self.life[..],
            );
            vec![kernel.run(0, Chunk::of(whole))]
        } else {
            (
                self.px.par_chunks_mut(CHUNK),
                self.py.par_chunks_mut(CHUNK),
                self.pz.par_chunks_mut(CHUNK),
                self.vx.par_chunks_mut(CHUNK),
                self.vy.par_chunks_mut(CHUNK),
                self.vz.par_chunks_mut(CHUNK),
                self.life.par_chunks_mut(CHUNK),
            )
                .into_par_iter()
                .enumerate()
                .map(|(chunk, slices)| kernel.run((chunk * CHUNK) as u32, Chunk::of(slices)))
                .collect()
        };
        let mut bounds: Option<([f32; 3], [f32; 3])> = None;
        for report in reports {
            self.live -= report.died.len();
            self.free.extend(report.died);
            if let Some((lo, hi)) = report.bounds {
                bounds = Some(match bounds {
                    None => (lo, hi),
                    Some((a, b)) => (
                        std::array::from_fn(|k| a[k].min(lo[k])),
                        std::array::from_fn(|k| b[k].max(hi[k])),
                    ),
                });
            }
        }
        self.bounds = bounds;
        if self.live == 0 {
            // Everything died: drop the slots instead of carrying a long free list.
            for a in [
                &mut self.px,
                &mut self.py,
                &mut self.pz,
                &mut self.vx,
                &mut self.vy,
                &mut self.vz,
                &mut self.life,
            ] {
                a.clear();
            }
            self.free.clear();
        }
    }

    /// The terrain (or a static object) changed: rebuild the height sampler before the next step.
    pub(crate) fn invalidate_terrain(&mut self) {
        self.terrain_dirty = true;
    }

    pub(crate) fn validate(&self) -> Result<(), SimError> {
        let n = self.px.len();
        let lens = [
            self.py.len(),
            self.pz.len(),
            self.vx.len(),
            self.vy.len(),
            self.vz.len(),
            self.life.len(),
        ];
        let live = self.life.iter().filter(|l| **l > 0.0).count();
        if lens.iter().any(|l| *l != n)
            || self.free.iter().any(|f| *f as usize >= n)
            || live != self.live
            || live + self.free.len() != n
        {
            return Err(SimError::new(
                "invalid_save",
                "particle arrays are inconsistent",
            ));
        }
        Ok(())
    }
}

struct Kernel<'a> {
    dt: f32,
    gravity: [f32; 3],
    wind: [f32; 3],
    drag: f32,
    restitution: f32,
    friction: f32,
    kill_height: f32,
    terrain: Option<&'a TerrainSampler>,
    colliders: &'a ColliderGrid,
}

/// The arrays of one chunk of particles.
struct Chunk<'s> {
    px: &'s mut [f32],
    py: &'s mut [f32],
    pz: &'s mut [f32],
    vx: &'s mut [f32],
    vy: &'s mut [f32],
    vz: &'s mut [f32],
    life: &'s mut [f32],
}

/// A chunk's arrays in [`Chunk`]'s field order.
type ChunkSlices<'s> = (
    &'s mut [f32],
    &'s mut [f32],
    &'s mut [f32],
    &'s mut [f32],
    &'s mut [f32],
    &'s mut [f32],
    &'s mut [f32],
);

impl<'s> Chunk<'s> {
    fn of((px, py, pz, vx, vy, vz, life): ChunkSlices<'s>) -> Self {
        Chunk {
            px,
            py,
            pz,
            vx,
            vy,
            vz,
            life,
        }
    }
}

impl Kernel<'_> {
    /// Bounce velocity `v` off a surface of normal `n` moving at `surface_v`.
    #[inline]
    fn bounce(&self, v: [f32; 3], n: [f32; 3], surface_v: [f32; 3]) -> [f32; 3] {
        let rel: [f32; 3] = std::array::from_fn(|k| v[k] - surface_v[k]);
        let vn = rel[0] * n[0] + rel[1] * n[1] + rel[2] * n[2];
        if vn >= 0.0 {
            return v;
        }
        std::array::from_fn(|k| {
            let tangent = rel[k] - vn * n[k];
            tangent * self.friction - vn * self.restitution * n[k] + surface_v[k]
        })
    }

    /// Advances one chunk (slots `base..`): forces, integration, collisions, ageing, death.
    fn run(&self, base: u32, mut chunk: Chunk<'_>) -> ChunkReport {
        let mut died = Vec::new();
        let mut bounds = Bounds::EMPTY;
        #[cfg(target_arch = "x86_64")]
        let done = if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: this CPU has AVX2 (checked just above).
            unsafe { self.run_avx2(base, &mut chunk, &mut bounds, &mut died) }
        } else {
            // SAFETY: SSE2 is part of the x86-64 base instruction set: every such CPU has it.
            unsafe { self.run_sse2(base, &mut chunk, &mut bounds, &mut died) }
        };
        #[cfg(not(target_arch = "x86_64"))]
        let done = 0;
        self.run_scalar(base, &mut chunk, done, &mut bounds, &mut died);
        ChunkReport {
            died,
            bounds: bounds.get(),
        }
    }

    /// The reference implementation, one particle at a time, for slots `from..` of the chunk.
    /// Other targets run it for all; the SIMD version for the few slots past its last whole
    /// group of lanes, with the very same results (the same operations in the same order,
    /// each rounded the same way).
    fn run_scalar(
        &self,
        base: u32,
        c: &mut Chunk<'_>,
        from: usize,
        bounds: &mut Bounds,
        died: &mut Vec<u32>,
    ) {
        for i in from..c.life.len() {
            let (p, v) = self.integrate([c.px[i], c.py[i], c.pz[i]], [c.vx[i], c.vy[i], c.vz[i]]);
            (c.px[i], c.py[i], c.pz[i]) = (p[0], p[1], p[2]);
            (c.vx[i], c.vy[i], c.vz[i]) = (v[0], v[1], v[2]);
            // Tested as the SIMD version tests it: a NaN life (which no save can hold) is dead.
            if c.life[i].partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
                continue;
            }
            if let Some(terrain) = self.terrain {
                let (p, v) = self.terrain_contact(terrain, p, v);
                (c.py[i], c.vx[i], c.vy[i], c.vz[i]) = (p[1], v[0], v[1], v[2]);
            }
            self.finish(base, c, i, bounds, died);
        }
    }

    /// Gravity, linear drag towards the wind, then the motion of one step.
    #[inline(always)]
    fn integrate(&self, p: [f32; 3], v: [f32; 3]) -> ([f32; 3], [f32; 3]) {
        let dt = self.dt;
        let k = (self.drag * dt).min(1.0);
        let v: [f32; 3] =
            std::array::from_fn(|a| v[a] + self.gravity[a] * dt + (self.wind[a] - v[a]) * k);
        (std::array::from_fn(|a| p[a] + v[a] * dt), v)
    }

    /// A particle that sank into the terrain is put back on it and bounced.
    #[inline]
    fn terrain_contact(
        &self,
        terrain: &TerrainSampler,
        mut p: [f32; 3],
        mut v: [f32; 3],
    ) -> ([f32; 3], [f32; 3]) {
        if p[1] < terrain.top
            && let Some((h, dx, dz)) = terrain.height_and_slope(p[0], p[2])
            && p[1] < h
        {
            p[1] = h;
            let inv = 1.0 / (dx * dx + 1.0 + dz * dz).sqrt();
            v = self.bounce(v, [-dx * inv, inv, -dz * inv], [0.0; 3]);
        }
        (p, v)
    }

    /// The rest of a live particle's step after the terrain (slot `i` holds its integrated and
    /// terrain-corrected state): colliders, ageing, death, bounds.
    fn finish(
        &self,
        base: u32,
        c: &mut Chunk<'_>,
        i: usize,
        bounds: &mut Bounds,
        died: &mut Vec<u32>,
    ) {
        let mut p = [c.px[i], c.py[i], c.pz[i]];
        let mut v = [c.vx[i], c.vy[i], c.vz[i]];
        let remaining = c.life[i] - self.dt;
        let mut touched = false;
        for &id in self.colliders.candidates(p) {
            let (a, b) = &self.colliders.bounds[id as usize];
            if p[0] < a[0]
                || p[0] > b[0]
                || p[1] < a[1]
                || p[1] > b[1]
                || p[2] < a[2]
                || p[2] > b[2]
            {
                continue;
            }
            let proxy = &self.colliders.proxies[id as usize];
            if let Some((surface, normal)) = push_out(proxy, p) {
                p = surface;
                v = self.bounce(v, normal, proxy.velocity);
                touched = true;
            }
        }
        let dead = remaining <= 0.0
            || p[1] < self.kill_height
            || !(p[0].abs() <= WORLD_LIMIT
                && p[1].abs() <= WORLD_LIMIT
                && p[2].abs() <= WORLD_LIMIT);
        if dead {
            c.life[i] = 0.0;
            died.push(base + i as u32);
            return;
        }
        c.life[i] = remaining;
        if touched {
            (c.px[i], c.py[i], c.pz[i]) = (p[0], p[1], p[2]);
            (c.vx[i], c.vy[i], c.vz[i]) = (v[0], v[1], v[2]);
        }
        bounds.add(p);
    }
}

/// Bounds of a set of points.
#[derive(Clone, Copy)]
struct Bounds {
    lo: [f32; 3],
    hi: [f32; 3],
}

impl Bounds {
    const EMPTY: Bounds = Bounds {
        lo: [f32::MAX; 3],
        hi: [f32::MIN; 3],
    };

    #[inline]
    fn add(&mut self, p: [f32; 3]) {
        // Plain comparisons (positions are finite here): `f32::min` pays for NaN handling.
        for (a, &coordinate) in p.iter().enumerate() {
            if coordinate < self.lo[a] {
                self.lo[a] = coordinate;
            }
            if coordinate > self.hi[a] {
                self.hi[a] = coordinate;
            }
        }
    }

    fn get(&self) -> Option<([f32; 3], [f32; 3])> {
        (self.lo[0] <= self.hi[0]).then_some((self.lo, self.hi))
    }
}

/// Thin names over the SSE2 intrinsics the particle kernel uses (SSE2 is part of every x86-64
/// CPU). Each is the packed form of the scalar operation, rounded the same way.
#[cfg(target_arch = "x86_64")]
mod sse2 {
    use std::arch::x86_64::*;

    pub const LANES: usize = 4;
    pub type F32x = __m128;

    #[inline]
    #[target_feature(enable = "sse2")]
    pub fn splat(x: f32) -> F32x {
        _mm_set1_ps(x)
    }
    #[inline]
    #[target_feature(enable = "sse2")]
    pub fn load(a: &[f32], i: usize) -> F32x {
        let four = &a[i..i + 4];
        // SAFETY: `four` is four readable, contiguous `f32`s; the load has no alignment needs.
        unsafe { _mm_loadu_ps(four.as_ptr()) }
    }
    #[inline]
    #[target_feature(enable = "sse2")]
    pub fn store(a: &mut [f32], i: usize, x: F32x) {
        let four = &mut a[i..i + 4];
        // SAFETY: `four` is four writable, contiguous `f32`s; the store has no alignment needs.
        unsafe { _mm_storeu_ps(four.as_mut_ptr(), x) }
    }
    #[inline]
    #[target_feature(enable = "sse2")]
    pub fn lanes(x: F32x) -> [f32; LANES] {
        let mut out = [0.0; LANES];
        // SAFETY: `out` is four writable, contiguous `f32`s.
        unsafe { _mm_storeu_ps(out.as_mut_ptr(), x) };
        out
    }
    #[inline]
    #[target_feature(enable = "sse2")]
    pub fn from_lanes(x: [f32; LANES]) -> F32x {
        // SAFETY: `x` is four readable, contiguous `f32`s.
        unsafe { _mm_loadu_ps(x.as_ptr()) }
    }
    #[inline]
    #[target_feature(enable = "sse2")]
    pub fn add(a: F32x, b: F32x) -> F32x {
        _mm_add_ps(a, b)
    }
    #[inline]
    #[target_feature(enable = "sse2")]
    pub fn sub(a: F32x, b: F32x) -> F32x {
        _mm_sub_ps(a, b)
    }
    #[inline]
    #[target_feature(enable = "sse2")]
    pub fn mul(a: F32x, b: F32x) -> F32x {
        _mm_mul_ps(a, b)
    }
    #[inline]
    #[target_feature(enable = "sse2")]
    pub fn div(a: F32x, b: F32x) -> F32x {
        _mm_div_ps(a, b)
    }
    #[inline]
    #[target_feature(enable = "sse2")]
    pub fn sqrt(a: F32x) -> F32x {
        _mm_sqrt_ps(a)
    }
    #[inline]
    #[target_feature(enable = "sse2")]
    pub fn neg(a: F32x) -> F32x {
        _mm_xor_ps(a, _mm_set1_ps(-0.0))
    }
    #[inline]
    #[target_feature(enable = "sse2")]
    pub fn abs(a: F32x) -> F32x {
        _mm_andnot_ps(_mm_set1_ps(-0.0), a)
    }
    /// Lane-wise minimum; only for numbers (not NaN).
    #[inline]
    #[target_feature(enable = "sse2")]
    pub fn min(a: F32x, b: F32x) -> F32x {
        _mm_min_ps(a, b)
    }
    /// Lane-wise maximum; only for numbers (not NaN).
    #[inline]
    #[target_feature(enable = "sse2")]
    pub fn max(a: F32x, b: F32x) -> F32x {
        _mm_max_ps(a, b)
    }
    // Comparisons give all-ones lanes where true; NaN compares false, as in scalar code.
    #[inline]
    #[target_feature(enable = "sse2")]
    pub fn lt(a: F32x, b: F32x) -> F32x {
        _mm_cmplt_ps(a, b)
    }
    #[inline]
    #[target_feature(enable = "sse2")]
    pub fn le(a: F32x, b: F32x) -> F32x {
        _mm_cmple_ps(a, b)
    }
    #[inline]
    #[target_feature(enable = "sse2")]
    pub fn gt(a: F32x, b: F32x) -> F32x {
        _mm_cmpgt_ps(a, b)
    }
    #[inline]
    #[target_feature(enable = "sse2")]
    pub fn ge(a: F32x, b: F32x) -> F32x {
        _mm_cmpge_ps(a, b)
    }
    #[inline]
    #[target_feature(enable = "sse2")]
    pub fn and(a: F32x, b: F32x) -> F32x {
        _mm_and_ps(a, b)
    }
    #[inline]
    #[target_feature(enable = "sse2")]
    pub fn or(a: F32x, b: F32x) -> F32x {
        _mm_or_ps(a, b)
    }
    #[inline]
    #[target_feature(enable = "sse2")]
    pub fn not(a: F32x) -> F32x {
        _mm_xor_ps(a, _mm_castsi128_ps(_mm_set1_epi32(-1)))
    }
    /// `a` where `m` is set, `b` elsewhere.
    #[inline]
    #[target_feature(enable = "sse2")]
    pub fn select(m: F32x, a: F32x, b: F32x) -> F32x {
        _mm_or_ps(_mm_and_ps(m, a), _mm_andnot_ps(m, b))
    }
    /// Toward zero, to a whole number (for values well inside the `i32` range).
    #[inline]
    #[target_feature(enable = "sse2")]
    pub fn trunc(a: F32x) -> F32x {
        _mm_cvtepi32_ps(_mm_cvttps_epi32(a))
    }
    /// Whole numbers to indices (each lane toward zero).
    #[inline]
    #[target_feature(enable = "sse2")]
    pub fn to_indices(a: F32x) -> [i32; LANES] {
        let mut out = [0i32; LANES];
        // SAFETY: `out` is sixteen writable bytes; the store has no alignment needs.
        unsafe { _mm_storeu_si128(out.as_mut_ptr().cast(), _mm_cvttps_epi32(a)) };
        out
    }
    /// One bit per lane of a comparison result (lane 0 in bit 0).
    #[inline]
    #[target_feature(enable = "sse2")]
    pub fn mask(m: F32x) -> u32 {
        _mm_movemask_ps(m) as u32
    }
    /// The comparison result with the lanes of `bits` set.
    #[inline]
    #[target_feature(enable = "sse2")]
    pub fn lanes_mask(bits: u32) -> F32x {
        let lane = |j: u32| if bits & (1 << j) != 0 { -1 } else { 0 };
        _mm_castsi128_ps(_mm_setr_epi32(lane(0), lane(1), lane(2), lane(3)))
    }
}

/// The same names as [`sse2`] over AVX2 intrinsics: eight lanes. The same IEEE operations,
/// rounded the same way (no fused multiply-add), so the results are bit-identical.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    pub const LANES: usize = 8;
    pub type F32x = __m256;

    #[inline]
    #[target_feature(enable = "avx2")]
    pub fn splat(x: f32) -> F32x {
        _mm256_set1_ps(x)
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    pub fn load(a: &[f32], i: usize) -> F32x {
        let eight = &a[i..i + 8];
        // SAFETY: `eight` is eight readable, contiguous `f32`s; the load has no alignment needs.
        unsafe { _mm256_loadu_ps(eight.as_ptr()) }
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    pub fn store(a: &mut [f32], i: usize, x: F32x) {
        let eight = &mut a[i..i + 8];
        // SAFETY: `eight` is eight writable, contiguous `f32`s; the store has no alignment needs.
        unsafe { _mm256_storeu_ps(eight.as_mut_ptr(), x) }
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    pub fn lanes(x: F32x) -> [f32; LANES] {
        let mut out = [0.0; LANES];
        // SAFETY: `out` is eight writable, contiguous `f32`s.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), x) };
        out
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    pub fn from_lanes(x: [f32; LANES]) -> F32x {
        // SAFETY: `x` is eight readable, contiguous `f32`s.
        unsafe { _mm256_loadu_ps(x.as_ptr()) }
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    pub fn add(a: F32x, b: F32x) -> F32x {
        _mm256_add_ps(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    pub fn sub(a: F32x, b: F32x) -> F32x {
        _mm256_sub_ps(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    pub fn mul(a: F32x, b: F32x) -> F32x {
        _mm256_mul_ps(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    pub fn div(a: F32x, b: F32x) -> F32x {
        _mm256_div_ps(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    pub fn sqrt(a: F32x) -> F32x {
        _mm256_sqrt_ps(a)
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    pub fn neg(a: F32x) -> F32x {
        _mm256_xor_ps(a, _mm256_set1_ps(-0.0))
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    pub fn abs(a: F32x) -> F32x {
        _mm256_andnot_ps(_mm256_set1_ps(-0.0), a)
    }
    /// Lane-wise minimum; only for numbers (not NaN).
    #[inline]
    #[target_feature(enable = "avx2")]
    pub fn min(a: F32x, b: F32x) -> F32x {
        _mm256_min_ps(a, b)
    }
    /// Lane-wise maximum; only for numbers (not NaN).
    #[inline]
    #[target_feature(enable = "avx2")]
    pub fn max(a: F32x, b: F32x) -> F32x {
        _mm256_max_ps(a, b)
    }
    // Ordered comparisons: NaN compares false, as in scalar code.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub fn lt(a: F32x, b: F32x) -> F32x {
        _mm256_cmp_ps::<_CMP_LT_OQ>(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    pub fn le(a: F32x, b: F32x) -> F32x {
        _mm256_cmp_ps::<_CMP_LE_OQ>(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    pub fn gt(a: F32x, b: F32x) -> F32x {
        _mm256_cmp_ps::<_CMP_GT_OQ>(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    pub fn ge(a: F32x, b: F32x) -> F32x {
        _mm256_cmp_ps::<_CMP_GE_OQ>(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    pub fn and(a: F32x, b: F32x) -> F32x {
        _mm256_and_ps(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    pub fn or(a: F32x, b: F32x) -> F32x {
        _mm256_or_ps(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    pub fn not(a: F32x) -> F32x {
        _mm256_xor_ps(a, _mm256_castsi256_ps(_mm256_set1_epi32(-1)))
    }
    /// `a` where `m` is set, `b` elsewhere.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub fn select(m: F32x, a: F32x, b: F32x) -> F32x {
        _mm256_or_ps(_mm256_and_ps(m, a), _mm256_andnot_ps(m, b))
    }
    /// Toward zero, to a whole number (for values well inside the `i32` range).
    #[inline]
    #[target_feature(enable = "avx2")]
    pub fn trunc(a: F32x) -> F32x {
        _mm256_cvtepi32_ps(_mm256_cvttps_epi32(a))
    }
    /// Whole numbers to indices (each lane toward zero).
    #[inline]
    #[target_feature(enable = "avx2")]
    pub fn to_indices(a: F32x) -> [i32; LANES] {
        let mut out = [0i32; LANES];
        // SAFETY: `out` is thirty-two writable bytes; the store has no alignment needs.
        unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast(), _mm256_cvttps_epi32(a)) };
        out
    }
    /// One bit per lane of a comparison result (lane 0 in bit 0).
    #[inline]
    #[target_feature(enable = "avx2")]
    pub fn mask(m: F32x) -> u32 {
        _mm256_movemask_ps(m) as u32
    }
    /// The comparison result with the lanes of `bits` set.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub fn lanes_mask(bits: u32) -> F32x {
        let lane = |j: u32| if bits & (1 << j) != 0 { -1 } else { 0 };
        _mm256_castsi256_ps(_mm256_setr_epi32(
            lane(0),
            lane(1),
            lane(2),
            lane(3),
            lane(4),
            lane(5),
            lane(6),
            lane(7),
        ))
    }
}

/// The SIMD kernel, written once over the operations of `$ops` (one module per instruction
/// set, each with the same names), compiled for each with its target feature.
#[cfg(target_arch = "x86_64")]
macro_rules! simd_kernel {
    ($ops:ident, $feature:literal, $run:ident, $occupied:ident, $terrain:ident) => {
        impl Kernel<'_> {
            /// The SIMD version of [`Kernel::run_scalar`]: `LANES` particles per instruction
            /// for forces, integration, the terrain contact and the classification; particles
            /// near a collider or dying finish one at a time. Returns how many slots it did (the
            /// rest are for the scalar version).
            #[target_feature(enable = $feature)]
            fn $run(
                &self,
                base: u32,
                c: &mut Chunk<'_>,
                bounds: &mut Bounds,
                died: &mut Vec<u32>,
            ) -> usize {
                use $ops::*;
                let n = c.life.len();
                let whole = n - n % LANES;
                let dt = self.dt;
                let k = splat((self.drag * dt).min(1.0));
                let gdt = self.gravity.map(|g| splat(g * dt));
                let wind = self.wind.map(|w| splat(w));
                let (step, zero, one) = (splat(dt), splat(0.0), splat(1.0));
                let (friction, restitution) = (splat(self.friction), splat(self.restitution));
                let kill = splat(self.kill_height);
                let limit = splat(WORLD_LIMIT);
                let grid = self.colliders;
                let mut lo = [splat(f32::MAX); 3];
                let mut hi = [splat(f32::MIN); 3];
                let mut heavy = Vec::new();
                for i in (0..whole).step_by(LANES) {
                    let mut v = [load(c.vx, i), load(c.vy, i), load(c.vz, i)];
                    let mut p = [load(c.px, i), load(c.py, i), load(c.pz, i)];
                    for a in 0..3 {
                        v[a] = add(add(v[a], gdt[a]), mul(sub(wind[a], v[a]), k));
                        p[a] = add(p[a], mul(v[a], step));
                    }
                    let life = load(c.life, i);
                    let alive = gt(life, zero);
                    if let Some(terrain) = self.terrain {
                        let below = and(alive, lt(p[1], splat(terrain.top)));
                        if mask(below) != 0 {
                            self.$terrain(
                                terrain,
                                below,
                                &mut p,
                                &mut v,
                                [zero, one],
                                [friction, restitution],
                            );
                        }
                    }
                    let remaining = sub(life, step);
                    let in_world = and(
                        le(abs(p[0]), limit),
                        and(le(abs(p[1]), limit), le(abs(p[2]), limit)),
                    );
                    let dying = or(le(remaining, zero), or(lt(p[1], kill), not(in_world)));
                    let mut finish = mask(and(alive, dying));
                    if !grid.is_empty() {
                        finish |= self.$occupied(&p, alive, zero) & !finish;
                    }
                    let light = and(alive, not(lanes_mask(finish)));
                    store(c.px, i, p[0]);
                    store(c.py, i, p[1]);
                    store(c.pz, i, p[2]);
                    store(c.vx, i, v[0]);
                    store(c.vy, i, v[1]);
                    store(c.vz, i, v[2]);
                    store(c.life, i, select(light, remaining, life));
                    for a in 0..3 {
                        lo[a] = min(lo[a], select(light, p[a], splat(f32::MAX)));
                        hi[a] = max(hi[a], select(light, p[a], splat(f32::MIN)));
                    }
                    for j in 0..LANES {
                        if finish & (1 << j) != 0 {
                            heavy.push(i + j);
                        }
                    }
                }
                for a in 0..3 {
                    for j in 0..LANES {
                        bounds.lo[a] = bounds.lo[a].min(lanes(lo[a])[j]);
                        bounds.hi[a] = bounds.hi[a].max(lanes(hi[a])[j]);
                    }
                }
                for i in heavy {
                    self.finish(base, c, i, bounds, died);
                }
                whole
            }

            /// One bit per lane of `alive` whose particle lies in a grid cell with a proxy (the
            /// cell `candidates` would look in): the cell index in float arithmetic (exact: the
            /// grid has fewer than 2^24 cells), then one byte per lane.
            #[inline]
            #[target_feature(enable = $feature)]
            fn $occupied(&self, p: &[$ops::F32x; 3], alive: $ops::F32x, zero: $ops::F32x) -> u32 {
                use $ops::*;
                let grid = self.colliders;
                let mut inside = alive;
                let mut cell = zero;
                for (a, &coordinate) in p.iter().enumerate() {
                    let f = mul(sub(coordinate, splat(grid.origin[a])), splat(grid.inv_cell));
                    inside = and(inside, and(ge(f, zero), lt(f, splat(grid.dims_f[a]))));
                    // In the grid, 0 <= f < dims: truncation is the floor `candidates` takes.
                    // The multiplier of the first axis is dims[1], of the second dims[2].
                    let scale = if a == 0 { zero } else { splat(grid.dims_f[a]) };
                    cell = add(mul(cell, scale), trunc(f));
                }
                if mask(inside) == 0 {
                    return 0;
                }
                // Lanes outside the grid look in the extra cell, which is always empty: no
                // branch per lane (whether a particle is in the grid is random lane to lane).
                let cells = to_indices(select(inside, cell, splat(grid.empty_cell as f32)));
                let mut bits = 0;
                for (j, &cell) in cells.iter().enumerate() {
                    bits |= u32::from(grid.occupied[cell as usize]) << j;
                }
                bits
            }

            /// [`Kernel::terrain_contact`] for `LANES` particles, those of `below` (alive,
            /// under the terrain's top): both outcomes computed, one selected per lane.
            #[inline]
            #[target_feature(enable = $feature)]
            fn $terrain(
                &self,
                terrain: &TerrainSampler,
                below: $ops::F32x,
                p: &mut [$ops::F32x; 3],
                v: &mut [$ops::F32x; 3],
                [zero, one]: [$ops::F32x; 2],
                [friction, restitution]: [$ops::F32x; 2],
            ) {
                use $ops::*;
                let (rows, cols) = (terrain.rows, terrain.cols);
                let fc = mul(
                    sub(p[0], splat(terrain.origin[0])),
                    splat(terrain.per_metre[0]),
                );
                let fr = mul(
                    sub(p[2], splat(terrain.origin[1])),
                    splat(terrain.per_metre[1]),
                );
                let inside = and(
                    and(ge(fc, zero), le(fc, splat((cols - 1) as f32))),
                    and(ge(fr, zero), le(fr, splat((rows - 1) as f32))),
                );
                // The cell of each particle, clamped into the grid as `bilinear` clamps it (the
                // same whole numbers for lanes inside; lanes outside are discarded below), and
                // its four samples gathered lane by lane. Index arithmetic in floats is exact: a
                // heightfield has fewer than 2^24 samples.
                let column = trunc(min(max(fc, zero), splat((cols - 2) as f32)));
                let row = trunc(min(max(fr, zero), splat((rows - 2) as f32)));
                let first = to_indices(add(mul(row, splat(cols as f32)), column));
                let mut corner = [[0.0f32; LANES]; 4];
                for j in 0..LANES {
                    let i = first[j] as usize;
                    let near = &terrain.heights[i..i + 2];
                    let far = &terrain.heights[i + cols..i + cols + 2];
                    (corner[0][j], corner[1][j], corner[2][j], corner[3][j]) =
                        (near[0], near[1], far[0], far[1]);
                }
                let [n0, n1, f0, f1] = corner.map(|q| from_lanes(q));
                let tx = sub(fc, column);
                let tz = sub(fr, row);
                let top = add(n0, mul(sub(n1, n0), tx));
                let bottom = add(f0, mul(sub(f1, f0), tx));
                let h = add(top, mul(sub(bottom, top), tz));
                let dhdx = add(mul(sub(n1, n0), sub(one, tz)), mul(sub(f1, f0), tz));
                let dx = mul(dhdx, splat(terrain.per_metre[0]));
                let dz = mul(sub(bottom, top), splat(terrain.per_metre[1]));
                let contact = and(and(below, inside), lt(p[1], h));
                if mask(contact) == 0 {
                    return;
                }
                let inv = div(one, sqrt(add(add(mul(dx, dx), one), mul(dz, dz))));
                let normal = [mul(neg(dx), inv), inv, mul(neg(dz), inv)];
                let rel = v.map(|va| sub(va, zero));
                let vn = add(
                    add(mul(rel[0], normal[0]), mul(rel[1], normal[1])),
                    mul(rel[2], normal[2]),
                );
                let separating = ge(vn, zero);
                for a in 0..3 {
                    let tangent = sub(rel[a], mul(vn, normal[a]));
                    let out = add(
                        sub(mul(tangent, friction), mul(mul(vn, restitution), normal[a])),
                        zero,
                    );
                    let bounced = select(separating, v[a], out);
                    v[a] = select(contact, bounced, v[a]);
                }
                p[1] = select(contact, h, p[1]);
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
simd_kernel!(sse2, "sse2", run_sse2, occupied_sse2, terrain_sse2);
#[cfg(target_arch = "x86_64")]
simd_kernel!(avx2, "avx2", run_avx2, occupied_avx2, terrain_avx2);

/// If `p` is inside the proxy: the nearest surface point and the outward normal.
#[inline]
fn push_out(proxy: &ColliderProxy, p: [f32; 3]) -> Option<([f32; 3], [f32; 3])> {
    let d: [f32; 3] = std::array::from_fn(|k| p[k] - proxy.center[k]);
    match proxy.shape {
        ProxyShape::Sphere { radius } => sphere_out(proxy.center, d, radius),
        ProxyShape::Capsule { axis, radius } => {
            let aa = axis[0] * axis[0] + axis[1] * axis[1] + axis[2] * axis[2];
            let t = if aa > 0.0 {
                ((d[0] * axis[0] + d[1] * axis[1] + d[2] * axis[2]) / aa).clamp(-1.0, 1.0)
            } else {
                0.0
            };
            let q: [f32; 3] = std::array::from_fn(|k| proxy.center[k] + axis[k] * t);
            sphere_out(q, std::array::from_fn(|k| p[k] - q[k]), radius)
        }
        ProxyShape::Box { half, axes } => {
            let local: [f32; 3] =
                std::array::from_fn(|a| d[0] * axes[a][0] + d[1] * axes[a][1] + d[2] * axes[a][2]);
            let mut best = 0;
            let mut depth = f32::MAX;
            for a in 0..3 {
                let pen = half[a] - local[a].abs();
                if pen <= 0.0 {
                    return None;
                }
                if pen < depth {
                    depth = pen;
                    best = a;
                }
            }
            let sign = if local[best] >= 0.0 { 1.0 } else { -1.0 };
            let n = axes[best].map(|c| c * sign);
            Some((std::array::from_fn(|k| p[k] + n[k] * depth), n))
        }
    }
}

#[inline]
fn sphere_out(center: [f32; 3], d: [f32; 3], radius: f32) -> Option<([f32; 3], [f32; 3])> {
    let d2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
    if d2 >= radius * radius {
        return None;
    }
    let len = d2.sqrt();
    let n = if len > 1.0e-6 {
        d.map(|c| c / len)
    } else {
        [0.0, 1.0, 0.0]
    };
    Some((std::array::from_fn(|k| center[k] + n[k] * radius), n))
}

/// Serde adapters: particle arrays as base64 of little-endian bytes (compact, exact).
mod f32_base64 {
    use super::*;

    pub fn serialize<S: Serializer>(v: &[f32], s: S) -> Result<S::Ok, S::Error> {
        let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
        s.serialize_str(&BASE64.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f32>, D::Error> {
        Ok(decode_words(d)?
            .into_iter()
            .map(f32::from_le_bytes)
            .collect())
    }

    /// The 4-byte little-endian words of a base64 string.
    pub(super) fn decode_words<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<[u8; 4]>, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = BASE64.decode(text).map_err(serde::de::Error::custom)?;
        if bytes.len() % 4 != 0 {
            return Err(serde::de::Error::custom(
                "array byte length is not a multiple of 4",
            ));
        }
        Ok(bytes
            .chunks_exact(4)
            .map(|c| [c[0], c[1], c[2], c[3]])
            .collect())
    }
}

mod u32_base64 {
    use super::*;

    pub fn serialize<S: Serializer>(v: &[u32], s: S) -> Result<S::Ok, S::Error> {
        let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
        s.serialize_str(&BASE64.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u32>, D::Error> {
        Ok(super::f32_base64::decode_words(d)?
            .into_iter()
            .map(u32::from_le_bytes)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Arrays of `n` particles of every kind the kernel distinguishes: in the open air, sinking
    /// into hilly terrain, off the terrain, inside or near boxes, spheres and capsules (one of
    /// them moving), about to die of age, below the kill height, leaving the world, not finite,
    /// and free slots.
    fn varied(n: usize) -> [Vec<f32>; 7] {
        let mut rng = SplitMix64::new(99);
        let mut arrays: [Vec<f32>; 7] = std::array::from_fn(|_| Vec::with_capacity(n));
        for i in 0..n {
            let mut r = |lo: f32, hi: f32| lo + (hi - lo) * rng.next_f32();
            let mut p = [r(-40.0, 40.0), r(-1.0, 6.0), r(-40.0, 40.0)];
            let v = [r(-8.0, 8.0), r(-12.0, 4.0), r(-8.0, 8.0)];
            let mut life = r(0.001, 3.0);
            match i % 11 {
                0 => life = 0.0,
                1 => life = r(0.0, 0.03),
                2 => p[1] = -99.99,
                3 => p[0] = WORLD_LIMIT - 0.01,
                4 => p = [f32::NAN, 1.0, 2.0],
                5 => p = [r(-2.0, 2.0), r(0.0, 3.0), r(-2.0, 2.0)],
                6 => p = [10.0 + r(-1.5, 1.5), r(0.0, 2.5), r(-1.5, 1.5)],
                7 => p = [r(-60.0, -40.0), r(-1.0, 2.0), r(-60.0, 60.0)],
                _ => {}
            }
            for (array, value) in arrays
                .iter_mut()
                .zip([p[0], p[1], p[2], v[0], v[1], v[2], life])
            {
                array.push(value);
            }
        }
        arrays
    }

    fn chunk(a: &mut [Vec<f32>; 7]) -> Chunk<'_> {
        let [px, py, pz, vx, vy, vz, life] = a;
        Chunk::of((px, py, pz, vx, vy, vz, life))
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_simd_kernels_match_the_scalar_one_bit_for_bit() {
        let side = 17u32;
        let heights = (0..side * side)
            .map(|i| ((i % side) as f32 * 0.7).sin() * 1.5 + ((i / side) as f32 * 0.4).cos())
            .collect();
        let shape = Shape::Heightfield {
            rows: side,
            cols: side,
            heights,
            size: [80.0, 1.0, 80.0],
        };
        let terrain = TerrainSampler::new(&shape, [0.0, 0.5, 0.0]).unwrap();
        let tilted = std::f32::consts::FRAC_1_SQRT_2;
        let proxies = vec![
            ColliderProxy {
                center: [0.0, 1.0, 0.0],
                velocity: [0.0; 3],
                shape: ProxyShape::Box {
                    half: [1.5, 1.0, 1.0],
                    axes: [
                        [tilted, 0.0, tilted],
                        [0.0, 1.0, 0.0],
                        [-tilted, 0.0, tilted],
                    ],
                },
                radius: 2.1,
            },
            ColliderProxy {
                center: [10.0, 1.0, 0.0],
                velocity: [0.5, 0.0, -1.0],
                shape: ProxyShape::Sphere { radius: 1.2 },
                radius: 1.2,
            },
            ColliderProxy {
                center: [-10.0, 1.0, 5.0],
                velocity: [0.0; 3],
                shape: ProxyShape::Capsule {
                    axis: [0.0, 1.0, 0.5],
                    radius: 0.6,
                },
                radius: 1.8,
            },
        ];
        let grid = ColliderGrid::new(proxies);
        let kernel = Kernel {
            dt: 1.0 / 60.0,
            gravity: [0.0, -9.81, 0.0],
            wind: [2.0, 0.0, -1.0],
            drag: 0.1,
            restitution: 0.3,
            friction: 0.8,
            kill_height: -100.0,
            terrain: Some(&terrain),
            colliders: &grid,
        };
        // Not a multiple of four or eight: the scalar tail runs too.
        let n = 4003;
        let start = varied(n);
        let mut scalar = start.clone();
        // Each instruction set this CPU has, as `Kernel::run` would run it alone.
        let mut paths: Vec<(&str, [Vec<f32>; 7])> = vec![("sse2", start.clone())];
        if std::arch::is_x86_feature_detected!("avx2") {
            paths.push(("avx2", start.clone()));
        }
        let mut seen_dead = 0;
        for _ in 0..40 {
            let mut bounds = Bounds::EMPTY;
            let mut died = Vec::new();
            kernel.run_scalar(7, &mut chunk(&mut scalar), 0, &mut bounds, &mut died);
            for (name, arrays) in &mut paths {
                let mut simd_bounds = Bounds::EMPTY;
                let mut simd_died = Vec::new();
                let mut c = chunk(arrays);
                // SAFETY: SSE2 is part of x86-64; AVX2 only when detected above.
                let done = unsafe {
                    match *name {
                        "sse2" => kernel.run_sse2(7, &mut c, &mut simd_bounds, &mut simd_died),
                        _ => kernel.run_avx2(7, &mut c, &mut simd_bounds, &mut simd_died),
                    }
                };
                kernel.run_scalar(7, &mut c, done, &mut simd_bounds, &mut simd_died);
                assert_eq!(simd_died, died, "{name}");
                assert_eq!(simd_bounds.get(), bounds.get(), "{name}");
                for (a, b) in arrays.iter().zip(&scalar) {
                    let bits = |x: &Vec<f32>| x.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(a), bits(b), "{name}");
                }
            }
            seen_dead += died.len();
        }
        let simd = &scalar;
        let live = simd[6].iter().filter(|l| **l > 0.0).count();
        assert!(
            seen_dead > 500 && live > 1000,
            "{seen_dead} died, {live} live"
        );
    }
}
