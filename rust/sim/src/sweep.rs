//! Closed-form linear casts of a capsule against triangles (heightfield terrain), other capsules
//! (avatars) and balls: what the character controller asks most, answered without GJK.
//!
//! Why: rapier's casts run GJK for every pair, iterating support points until they converge. An
//! avatar's step makes a few casts against the terrain's triangles and its neighbours, and those
//! iterations were most of the server's tick with hundreds of avatars (`benches/avatars.rs`).
//! A capsule is a segment (its core) inflated by a radius, so the first moment it comes within a
//! distance of a triangle is the first moment one of a few feature pairs does: an end of the core
//! against the triangle (its face or an edge, inflated), a corner of the triangle against the
//! inflated core, or the core's interior against an edge's interior. Each is a linear or a
//! quadratic equation; the earliest valid root wins.
//!
//! Conventions follow parry's casts with `stop_at_penetration: false`: a cast that starts within
//! the reach of a piece hits it at distance 0 when it moves closer, and ignores it when it moves
//! away or along it (the pieces are convex: the distance then never shrinks).

use rapier3d::parry::bounding_volume::Aabb;
use rapier3d::parry::shape::HeightField;
use rapier3d::prelude::Vector;

/// A cast that starts this close to its reach counts as starting in contact, m.
const START_TOLERANCE: f32 = 1.0e-5;
/// Motion whose component towards a touching piece is at most this (per metre) moves along it.
const ALONG: f32 = 1.0e-4;

/// A segment: the core of a capsule (both ends equal for a ball).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Core {
    /// One end.
    pub a: Vector,
    /// The other end.
    pub b: Vector,
}

impl Core {
    fn moved(self, by: Vector) -> Core {
        Core {
            a: self.a + by,
            b: self.b + by,
        }
    }
}

/// A distance with the closest point of each side (the moving core's first).
type Closest = (f32, Vector, Vector);

/// Where a cast stops.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SweepHit {
    /// Distance travelled along the cast's unit direction.
    pub toi: f32,
    /// Unit normal of the obstacle at the contact, pointing towards the moving capsule.
    pub normal: Vector,
    /// The contact point on the obstacle.
    pub point: Vector,
}

/// The first distance along the unit `dir`, up to `max`, at which `core` comes within `reach` of
/// the triangle `tri`.
pub fn core_triangle(
    core: Core,
    dir: Vector,
    max: f32,
    reach: f32,
    tri: &[Vector; 3],
) -> Option<SweepHit> {
    let (distance, on_core, on_tri) = match one_side_gap(core, tri) {
        Some(Gap::Exact(closest)) => closest,
        // Too far to come within reach in `max`: most of a heightfield's triangles.
        Some(Gap::AtLeast(bound)) if bound > reach + max + START_TOLERANCE => return None,
        _ => closest_by_features(core, tri),
    };
    if distance <= reach + START_TOLERANCE {
        return touching(dir, distance, on_core, on_tri, || {
            facing_normal(tri, (core.a + core.b) * 0.5)
        });
    }
    if distance > reach + max + START_TOLERANCE {
        return None; // too far to come within reach in `max`
    }
    let mut first = Earliest::new(max);
    if let Some(leading) = leading_end(core, dir) {
        first.consider(point_triangle(leading, dir, reach, tri));
    } else {
        for end in [core.a, core.b] {
            first.consider(point_triangle(end, dir, reach, tri));
        }
        for (i, &corner) in tri.iter().enumerate() {
            first.consider(point_capsule(corner, -dir, core.a, core.b, reach));
            first.consider(lines(core, dir, corner, tri[(i + 1) % 3], reach));
        }
    }
    let toi = first.toi?;
    let (distance, on_core, on_tri) = closest_core_triangle(core.moved(dir * toi), tri);
    Some(SweepHit {
        toi,
        normal: unit_or(on_core - on_tri, distance, || {
            facing_normal(tri, (core.a + core.b) * 0.5)
        }),
        point: on_tri,
    })
}

/// The first distance along the unit `dir`, up to `max`, at which `core` comes within `reach` of
/// the segment `other` (another capsule's core, or a ball's centre twice).
pub fn core_core(core: Core, dir: Vector, max: f32, reach: f32, other: Core) -> Option<SweepHit> {
    let (distance, on_core, on_other) = closest_segments(core.a, core.b, other.a, other.b);
    if distance <= reach + START_TOLERANCE {
        return touching(dir, distance, on_core, on_other, || -dir);
    }
    if distance > reach + max + START_TOLERANCE {
        return None; // too far to come within reach in `max`
    }
    let mut first = Earliest::new(max);
    if let Some(leading) = leading_end(core, dir) {
        first.consider(point_capsule(leading, dir, other.a, other.b, reach));
    } else {
        for end in [core.a, core.b] {
            first.consider(point_capsule(end, dir, other.a, other.b, reach));
        }
        for end in [other.a, other.b] {
            first.consider(point_capsule(end, -dir, core.a, core.b, reach));
        }
        first.consider(lines(core, dir, other.a, other.b, reach));
    }
    let toi = first.toi?;
    let (distance, on_core, on_other) =
        closest_segments(core.a + dir * toi, core.b + dir * toi, other.a, other.b);
    Some(SweepHit {
        toi,
        normal: unit_or(on_core - on_other, distance, || -dir),
        point: on_other,
    })
}

/// [`core_triangle`] against every triangle of a heightfield the cast can reach, in the
/// heightfield's own frame; `visit` sees each triangle's hit (the nearest is not always the one
/// wanted: ground checks look for any standable piece).
pub fn core_heightfield(
    core: Core,
    dir: Vector,
    max: f32,
    reach: f32,
    field: &HeightField,
    visit: &mut dyn FnMut(SweepHit),
) {
    let end = core.moved(dir * max);
    let mins = core.a.min(core.b).min(end.a).min(end.b) - Vector::splat(reach);
    let maxs = core.a.max(core.b).max(end.a).max(end.b) + Vector::splat(reach);
    field.map_elements_in_local_aabb(&Aabb::new(mins, maxs), &mut |_, tri| {
        if let Some(hit) = core_triangle(core, dir, max, reach, &[tri.a, tri.b, tri.c]) {
            visit(hit);
        }
    });
}

/// The end of `core` that leads when it moves along its own axis (or a ball's centre), if it
/// does: then every other point of the core only passes where the core or that end already
/// was, so a cast that starts out of reach first comes within reach with that end.
fn leading_end(core: Core, dir: Vector) -> Option<Vector> {
    let axis = core.b - core.a;
    if axis.cross(dir).length_squared() > 1.0e-12 * axis.length_squared() {
        return None;
    }
    Some(if axis.dot(dir) > 0.0 { core.b } else { core.a })
}

/// The distance from a core to a triangle, when both ends of the core lie on one side of its
/// plane (else `None`).
enum Gap {
    /// The nearer end's foot lies inside the triangle: that end and its foot are closest (no
    /// point of the core is nearer the plane, nor the triangle nearer than the plane). The usual
    /// case of a capsule standing over a face.
    Exact(Closest),
    /// A lower bound: every point of the core is at least as high as the nearer end, and lies
    /// (across the plane) at least as far beyond some edge's line as both ends do.
    AtLeast(f32),
}

fn one_side_gap(core: Core, tri: &[Vector; 3]) -> Option<Gap> {
    let n = (tri[1] - tri[0]).cross(tri[2] - tri[0]).normalize_or_zero();
    let (ha, hb) = ((core.a - tri[0]).dot(n), (core.b - tri[0]).dot(n));
    if ha * hb <= 0.0 {
        return None; // crossing, touching the plane, or a degenerate triangle
    }
    let (end, height) = if ha.abs() <= hb.abs() {
        (core.a, ha)
    } else {
        (core.b, hb)
    };
    let foot = end - n * height;
    if inside_triangle(foot, tri, n) {
        return Some(Gap::Exact((height.abs(), end, foot)));
    }
    // How far beyond each edge's line both ends lie, across the plane (the normal component of
    // an end's offset drops out of the cross product's dot with the normal).
    let mut beyond = 0.0f32;
    for i in 0..3 {
        let (from, to) = (tri[i], tri[(i + 1) % 3]);
        let edge = to - from;
        let inward = edge
            .cross(core.a - from)
            .dot(n)
            .max(edge.cross(core.b - from).dot(n));
        beyond = beyond.max(-inward / edge.length().max(1.0e-12));
    }
    Some(Gap::AtLeast((height * height + beyond * beyond).sqrt()))
}

/// [`core_triangle`] against the faces of a box with half extents `half`, centred at the origin
/// of its own frame (the frame of `core` and `dir`): the earliest hit, or `None` inside `Some`
/// for a miss. A core that starts inside the box gets `None` (the caller decides another way).
pub fn core_cuboid(
    core: Core,
    dir: Vector,
    max: f32,
    reach: f32,
    half: Vector,
) -> Option<Option<SweepHit>> {
    if segment_meets_box(core, half) {
        return None;
    }
    let faces = box_triangles(half);
    // Within reach at the start: the box is convex, so the cast is a hit at 0 when moving closer
    // to its nearest point, and meets nothing later otherwise (unlike a lone triangle of it).
    let mut nearest: Option<(Closest, &[Vector; 3])> = None;
    for tri in &faces {
        let closest = match one_side_gap(core, tri) {
            Some(Gap::Exact(closest)) => closest,
            Some(Gap::AtLeast(bound)) if bound > reach + START_TOLERANCE => continue,
            _ => closest_by_features(core, tri),
        };
        if closest.0 <= reach + START_TOLERANCE && nearest.is_none_or(|(n, _)| closest.0 < n.0) {
            nearest = Some((closest, tri));
        }
    }
    if let Some(((distance, on_core, on_box), tri)) = nearest {
        return Some(touching(dir, distance, on_core, on_box, || {
            facing_normal(tri, (core.a + core.b) * 0.5)
        }));
    }
    // Out of reach: the capsule meets the surface before anything inside it, and the surface is
    // the faces' triangles.
    let mut first: Option<SweepHit> = None;
    for tri in &faces {
        let limit = first.map_or(max, |hit| hit.toi);
        if let Some(hit) = core_triangle(core, dir, limit, reach, tri)
            && first.is_none_or(|best| hit.toi < best.toi)
        {
            first = Some(hit);
        }
    }
    Some(first)
}

/// The surface of a box with half extents `half` at the origin: two triangles per face.
fn box_triangles(half: Vector) -> [[Vector; 3]; 12] {
    let mut triangles = [[Vector::ZERO; 3]; 12];
    for axis in 0..3 {
        for (s, side) in [-1.0, 1.0].into_iter().enumerate() {
            // The face's four corners in order around it.
            let quad = [(-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0)].map(|(u, v)| {
                let mut c = Vector::ZERO;
                c[axis] = side * half[axis];
                c[(axis + 1) % 3] = u * half[(axis + 1) % 3];
                c[(axis + 2) % 3] = v * half[(axis + 2) % 3];
                c
            });
            let face = 2 * (2 * axis + s);
            triangles[face] = [quad[0], quad[1], quad[2]];
            triangles[face + 1] = [quad[0], quad[2], quad[3]];
        }
    }
    triangles
}

/// Whether the segment `core` touches the box with half extents `half` at the origin (slabs).
fn segment_meets_box(core: Core, half: Vector) -> bool {
    let d = core.b - core.a;
    let (mut enter, mut leave) = (0.0f32, 1.0f32);
    for axis in 0..3 {
        let (start, step, extent) = (core.a[axis], d[axis], half[axis]);
        if step.abs() < 1.0e-12 {
            if start.abs() > extent {
                return false;
            }
            continue;
        }
        let (t1, t2) = ((-extent - start) / step, (extent - start) / step);
        enter = enter.max(t1.min(t2));
        leave = leave.min(t1.max(t2));
        if enter > leave {
            return false;
        }
    }
    true
}

/// The result of a cast that starts within reach: a hit at 0 when moving closer.
fn touching(
    dir: Vector,
    distance: f32,
    on_core: Vector,
    on_obstacle: Vector,
    fallback: impl FnOnce() -> Vector,
) -> Option<SweepHit> {
    let normal = unit_or(on_core - on_obstacle, distance, fallback);
    (dir.dot(normal) < -ALONG).then_some(SweepHit {
        toi: 0.0,
        normal,
        point: on_obstacle,
    })
}

fn unit_or(v: Vector, length: f32, fallback: impl FnOnce() -> Vector) -> Vector {
    if length > 1.0e-6 {
        v / length
    } else {
        fallback()
    }
}

/// The triangle's unit normal on the side of `point` (+Y for a degenerate triangle).
fn facing_normal(tri: &[Vector; 3], point: Vector) -> Vector {
    let n = (tri[1] - tri[0])
        .cross(tri[2] - tri[0])
        .normalize_or(Vector::Y);
    if (point - tri[0]).dot(n) < 0.0 { -n } else { n }
}

/// The smallest valid root seen so far, within `0..=max`.
struct Earliest {
    max: f32,
    toi: Option<f32>,
}

impl Earliest {
    fn new(max: f32) -> Self {
        Earliest { max, toi: None }
    }

    fn consider(&mut self, t: Option<f32>) {
        if let Some(t) = t
            && (0.0..=self.max).contains(&t)
        {
            self.max = t;
            self.toi = Some(t);
        }
    }
}

/// First time the point `p` moving along the unit `dir` comes within `reach` of the triangle,
/// given that it starts farther: through the face, or through an edge (or corner).
fn point_triangle(p: Vector, dir: Vector, reach: f32, tri: &[Vector; 3]) -> Option<f32> {
    let mut first = Earliest::new(f32::INFINITY);
    let n = (tri[1] - tri[0]).cross(tri[2] - tri[0]);
    let n_len = n.length();
    if n_len > 1.0e-12 {
        let n = n / n_len;
        let height = (p - tri[0]).dot(n);
        let closing = dir.dot(n);
        // From outside the slab around the face, towards it.
        if height.abs() > reach && height * closing < 0.0 {
            let side = height.signum();
            let t = (side * reach - height) / closing;
            let foot = p + dir * t - n * (side * reach);
            if inside_triangle(foot, tri, n) {
                first.consider(Some(t));
            }
        }
    }
    for i in 0..3 {
        first.consider(point_capsule(p, dir, tri[i], tri[(i + 1) % 3], reach));
    }
    first.toi
}

/// Whether `x` (on the triangle's plane) lies inside the triangle with unit normal `n`.
fn inside_triangle(x: Vector, tri: &[Vector; 3], n: Vector) -> bool {
    const SLACK: f32 = -1.0e-6;
    (0..3).all(|i| {
        let (from, to) = (tri[i], tri[(i + 1) % 3]);
        (to - from).cross(x - from).dot(n) >= SLACK * (to - from).length_squared()
    })
}

/// First time the point `p` moving along the unit `dir` comes within `reach` of the segment
/// `from..to`, given that it starts farther: the cylinder around it or a sphere at an end.
fn point_capsule(p: Vector, dir: Vector, from: Vector, to: Vector, reach: f32) -> Option<f32> {
    let mut first = Earliest::new(f32::INFINITY);
    let axis = to - from;
    let axis_len2 = axis.length_squared();
    if axis_len2 > 1.0e-12 {
        // The parts of the offset and of the direction across the axis.
        let w = p - from;
        let w_across = w - axis * (w.dot(axis) / axis_len2);
        let d_across = dir - axis * (dir.dot(axis) / axis_len2);
        let a = d_across.length_squared();
        if a > 1.0e-12 {
            let b = w_across.dot(d_across);
            let c = w_across.length_squared() - reach * reach;
            let disc = b * b - a * c;
            if disc >= 0.0 {
                let t = (-b - disc.sqrt()) / a;
                let along = (w + dir * t).dot(axis) / axis_len2;
                if t >= 0.0 && (0.0..=1.0).contains(&along) {
                    first.consider(Some(t));
                }
            }
        }
    }
    first.consider(point_sphere(p, dir, from, reach));
    if axis_len2 > 1.0e-12 {
        first.consider(point_sphere(p, dir, to, reach));
    }
    first.toi
}

/// First time the point `p` moving along the unit `dir` comes within `reach` of `center`.
fn point_sphere(p: Vector, dir: Vector, center: Vector, reach: f32) -> Option<f32> {
    let w = p - center;
    let b = w.dot(dir);
    let c = w.length_squared() - reach * reach;
    if c < 0.0 || b >= 0.0 {
        return None;
    }
    let disc = b * b - c;
    (disc >= 0.0).then(|| -b - disc.sqrt())
}

/// First time the interior of `core` moving along the unit `dir` comes within `reach` of the
/// interior of the segment `from..to` (they are not parallel and start farther apart).
fn lines(core: Core, dir: Vector, from: Vector, to: Vector, reach: f32) -> Option<f32> {
    let u = core.b - core.a;
    let v = to - from;
    let n = u.cross(v);
    let n_len = n.length();
    if n_len <= 1.0e-6 * u.length() * v.length() || n_len == 0.0 {
        return None;
    }
    let n = n / n_len;
    let gap = (core.a - from).dot(n);
    let closing = dir.dot(n);
    if gap.abs() <= reach || gap * closing >= 0.0 {
        return None;
    }
    let t = (gap.signum() * reach - gap) / closing;
    // Where the closest points of the two lines lie at that time.
    let r = core.a + dir * t - from;
    let (uu, uv, vv) = (u.dot(u), u.dot(v), v.dot(v));
    let (ur, vr) = (u.dot(r), v.dot(r));
    let denom = uu * vv - uv * uv;
    let s = (uv * vr - vv * ur) / denom;
    let w = (uu * vr - uv * ur) / denom;
    ((0.0..=1.0).contains(&s) && (0.0..=1.0).contains(&w)).then_some(t)
}

/// Distance between `core` and the triangle, with the closest point of each.
fn closest_core_triangle(core: Core, tri: &[Vector; 3]) -> Closest {
    match one_side_gap(core, tri) {
        Some(Gap::Exact(closest)) => closest,
        _ => closest_by_features(core, tri),
    }
}

/// [`closest_core_triangle`] from the crossing, the ends against the triangle and the core
/// against each edge.
fn closest_by_features(core: Core, tri: &[Vector; 3]) -> Closest {
    if let Some(x) = crossing(core, tri) {
        return (0.0, x, x);
    }
    let mut best = (f32::INFINITY, core.a, tri[0]);
    let mut keep = |on_core: Vector, on_tri: Vector| {
        let d = on_core.distance(on_tri);
        if d < best.0 {
            best = (d, on_core, on_tri);
        }
    };
    for end in [core.a, core.b] {
        keep(end, closest_on_triangle(end, tri));
    }
    for i in 0..3 {
        let (_, on_core, on_edge) = closest_segments(core.a, core.b, tri[i], tri[(i + 1) % 3]);
        keep(on_core, on_edge);
    }
    best
}

/// Where `core` passes through the triangle, if it does (not when lying in its plane).
fn crossing(core: Core, tri: &[Vector; 3]) -> Option<Vector> {
    let n = (tri[1] - tri[0]).cross(tri[2] - tri[0]);
    let da = (core.a - tri[0]).dot(n);
    let db = (core.b - tri[0]).dot(n);
    if da * db > 0.0 || da == db {
        return None;
    }
    let x = core.a + (core.b - core.a) * (da / (da - db));
    inside_triangle(x, tri, n.normalize_or_zero()).then_some(x)
}

/// The point of the triangle closest to `p` (by Voronoi regions of its corners, edges and face).
fn closest_on_triangle(p: Vector, tri: &[Vector; 3]) -> Vector {
    let [a, b, c] = *tri;
    let ab = b - a;
    let ac = c - a;
    let ap = p - a;
    let d1 = ab.dot(ap);
    let d2 = ac.dot(ap);
    if d1 <= 0.0 && d2 <= 0.0 {
        return a;
    }
    let bp = p - b;
    let d3 = ab.dot(bp);
    let d4 = ac.dot(bp);
    if d3 >= 0.0 && d4 <= d3 {
        return b;
    }
    let vc = d1 * d4 - d3 * d2;
    if vc <= 0.0 && d1 >= 0.0 && d3 <= 0.0 {
        return a + ab * (d1 / (d1 - d3));
    }
    let cp = p - c;
    let d5 = ab.dot(cp);
    let d6 = ac.dot(cp);
    if d6 >= 0.0 && d5 <= d6 {
        return c;
    }
    let vb = d5 * d2 - d1 * d6;
    if vb <= 0.0 && d2 >= 0.0 && d6 <= 0.0 {
        return a + ac * (d2 / (d2 - d6));
    }
    let va = d3 * d6 - d5 * d4;
    if va <= 0.0 && (d4 - d3) >= 0.0 && (d5 - d6) >= 0.0 {
        return b + (c - b) * ((d4 - d3) / ((d4 - d3) + (d5 - d6)));
    }
    let denom = va + vb + vc;
    if denom.abs() < f32::MIN_POSITIVE {
        // Degenerate (zero-area) triangle: its longest edge.
        let candidates = [
            closest_on_segment(p, a, b),
            closest_on_segment(p, b, c),
            closest_on_segment(p, c, a),
        ];
        return candidates
            .into_iter()
            .min_by(|x, y| x.distance_squared(p).total_cmp(&y.distance_squared(p)))
            .unwrap_or(a);
    }
    a + ab * (vb / denom) + ac * (vc / denom)
}

fn closest_on_segment(p: Vector, from: Vector, to: Vector) -> Vector {
    let axis = to - from;
    let len2 = axis.length_squared();
    if len2 <= f32::MIN_POSITIVE {
        return from;
    }
    from + axis * ((p - from).dot(axis) / len2).clamp(0.0, 1.0)
}

/// Distance between the segments `p1..q1` and `p2..q2`, with the closest point of each.
fn closest_segments(p1: Vector, q1: Vector, p2: Vector, q2: Vector) -> (f32, Vector, Vector) {
    let d1 = q1 - p1;
    let d2 = q2 - p2;
    let r = p1 - p2;
    let a = d1.length_squared();
    let e = d2.length_squared();
    let f = d2.dot(r);
    const TINY: f32 = 1.0e-12;
    let (s, t) = if a <= TINY && e <= TINY {
        (0.0, 0.0)
    } else if a <= TINY {
        (0.0, (f / e).clamp(0.0, 1.0))
    } else {
        let c = d1.dot(r);
        if e <= TINY {
            ((-c / a).clamp(0.0, 1.0), 0.0)
        } else {
            let b = d1.dot(d2);
            let denom = a * e - b * b;
            let mut s = if denom > TINY * a * e {
                ((b * f - c * e) / denom).clamp(0.0, 1.0)
            } else {
                0.0
            };
            let mut t = (b * s + f) / e;
            if t < 0.0 {
                t = 0.0;
                s = (-c / a).clamp(0.0, 1.0);
            } else if t > 1.0 {
                t = 1.0;
                s = ((b - c) / a).clamp(0.0, 1.0);
            }
            (s, t)
        }
    };
    let c1 = p1 + d1 * s;
    let c2 = p2 + d2 * t;
    (c1.distance(c2), c1, c2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rapier3d::parry::query::{self, ShapeCastOptions};
    use rapier3d::parry::shape::{Ball, Capsule, Cuboid, Triangle};
    use rapier3d::prelude::Pose;

    /// A small deterministic generator (xorshift), so failures reproduce.
    struct Rng(u64);

    impl Rng {
        fn unit(&mut self) -> f32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 40) as f32 / (1u64 << 24) as f32
        }
        fn range(&mut self, lo: f32, hi: f32) -> f32 {
            lo + (hi - lo) * self.unit()
        }
        fn vector(&mut self, extent: f32) -> Vector {
            Vector::new(
                self.range(-extent, extent),
                self.range(-extent, extent),
                self.range(-extent, extent),
            )
        }
        fn direction(&mut self) -> Vector {
            loop {
                let v = self.vector(1.0);
                if v.length() > 0.1 {
                    return v.normalize();
                }
            }
        }
    }

    const RADIUS: f32 = 0.35;
    const HALF: f32 = 0.55;
    const SKIN: f32 = 0.02;

    fn parry_cast(
        from: Vector,
        dir: Vector,
        max: f32,
        obstacle: &dyn rapier3d::parry::shape::Shape,
    ) -> Option<rapier3d::parry::query::ShapeCastHit> {
        query::cast_shapes(
            &Pose::from_translation(from),
            dir,
            &Capsule::new_y(HALF, RADIUS),
            &Pose::identity(),
            Vector::ZERO,
            obstacle,
            ShapeCastOptions {
                target_distance: SKIN,
                stop_at_penetration: false,
                max_time_of_impact: max,
                compute_impact_geometry_on_penetration: true,
            },
        )
        .expect("supported pair")
    }

    fn core_at(p: Vector) -> Core {
        Core {
            a: p - Vector::Y * HALF,
            b: p + Vector::Y * HALF,
        }
    }

    /// Ground truth, by brute force: the gap between the capsule around `core` and `shape`
    /// beyond the skin, and the obstacle's normal there, from parry's exact point projections
    /// onto the obstacle of 256 points along the core. (parry's GJK distance and contact queries
    /// are off by up to a millimetre or a few degrees here, so they cannot judge.)
    fn brute_gap(shape: &dyn rapier3d::parry::shape::Shape, core: Core) -> (f32, Vector) {
        use rapier3d::parry::query::PointQuery;
        let mut best = (f32::INFINITY, Vector::Y);
        for k in 0..=256 {
            let x = core.a + (core.b - core.a) * (k as f32 / 256.0);
            let (on, inflate) = if let Some(tri) = shape.as_triangle() {
                (tri.project_local_point(x, true).point, 0.0)
            } else if let Some(cap) = shape.as_capsule() {
                (cap.segment.project_local_point(x, true).point, cap.radius)
            } else if let Some(cuboid) = shape.as_cuboid() {
                (cuboid.project_local_point(x, true).point, 0.0)
            } else {
                (Vector::ZERO, shape.as_ball().unwrap().radius)
            };
            let d = x.distance(on) - inflate;
            if d < best.0 {
                best = (d, (x - on).normalize_or(Vector::Y));
            }
        }
        (best.0 - RADIUS - SKIN, best.1)
    }

    /// Checks our casts on random configurations against the brute-force truth (where a cast
    /// stops the gap is zero, nowhere before it is it negative, and a miss never comes within
    /// the skin) and against parry's own casts (the same hits, except grazing ones at the very
    /// end or start of the cast; parry's GJK casts overshoot by up to a few millimetres).
    fn casts_are_exact(
        cases: usize,
        mut make: impl FnMut(&mut Rng) -> (Box<dyn rapier3d::parry::shape::Shape>, Vector, Vector),
        ours: impl Fn(Vector, Vector, f32, &dyn rapier3d::parry::shape::Shape) -> Option<SweepHit>,
    ) {
        const TOLERANCE: f32 = 2.0e-5;
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let (mut hits, mut misses) = (0, 0);
        for case in 0..cases {
            let (shape, from, dir) = make(&mut rng);
            let max = rng.range(0.0, 3.0);
            let gap = |t: f32| brute_gap(shape.as_ref(), core_at(from + dir * t));
            let mine = ours(from, dir, max, shape.as_ref());
            let clear_until = |end: f32| {
                for k in 0..16 {
                    let t = end * k as f32 / 16.0;
                    let (g, _) = gap(t);
                    assert!(
                        g > -TOLERANCE,
                        "case {case}: gap {g} at {t} before {mine:?}"
                    );
                }
            };
            match mine {
                Some(hit) => {
                    hits += 1;
                    assert!(hit.normal.is_finite() && (hit.normal.length() - 1.0).abs() < 1e-4);
                    if hit.toi > 0.0 {
                        let (g, normal) = gap(hit.toi);
                        assert!(g.abs() < TOLERANCE, "case {case}: gap {g} at {hit:?}");
                        assert!(
                            normal.dot(hit.normal) > 0.9999,
                            "case {case}: normal {normal} vs {hit:?}"
                        );
                        clear_until(hit.toi - 1.0e-4);
                    } else {
                        // Within reach at the start and moving closer (or overlapping already).
                        let (start, later) = (gap(0.0).0, gap(1.0e-3).0);
                        assert!(
                            start < TOLERANCE && (later < start || start < -SKIN),
                            "case {case}: {hit:?} gaps {start} {later}"
                        );
                    }
                }
                None => {
                    misses += 1;
                    let (start, later) = (gap(0.0).0, gap(1.0e-3).0);
                    if start < TOLERANCE {
                        // Within reach at the start: it must be moving away or along (unless it
                        // starts inside the obstacle, where either answer will do).
                        assert!(
                            later >= start - 1.0e-6 || start < -SKIN,
                            "case {case}: gaps {start} {later}"
                        );
                    } else {
                        clear_until(max);
                    }
                }
            }
            let theirs = parry_cast(from, dir, max, shape.as_ref());
            let grazing = |toi: f32| toi > max - 5.0e-3 || toi < 1.0e-4;
            match (theirs, mine) {
                (Some(_), Some(_)) | (None, None) => {}
                (Some(t), None) => assert!(grazing(t.time_of_impact), "case {case}: parry {t:?}"),
                (None, Some(m)) => assert!(grazing(m.toi), "case {case}: ours {m:?}"),
            }
        }
        assert!(
            hits > cases / 5 && misses > cases / 10,
            "{hits} hits, {misses} misses"
        );
    }

    /// Mostly along `aim` (so that most casts hit), else straight up or down (along the
    /// capsule's core, which has its own shortcut) or anywhere.
    fn cast_direction(rng: &mut Rng, aim: Vector) -> Vector {
        let pick = rng.unit();
        if pick < 0.6 {
            aim.normalize_or(Vector::Y)
        } else if pick < 0.8 {
            if aim.y < 0.0 { -Vector::Y } else { Vector::Y }
        } else {
            rng.direction()
        }
    }

    #[test]
    fn capsule_triangle_casts_agree_with_parry() {
        casts_are_exact(
            3_000,
            |rng| {
                let tri = Triangle::new(rng.vector(2.0), rng.vector(2.0), rng.vector(2.0));
                let from = rng.vector(2.5);
                let aim = (tri.a + tri.b + tri.c) / 3.0 + rng.vector(0.8) - from;
                (Box::new(tri), from, cast_direction(rng, aim))
            },
            |from, dir, max, shape| {
                let tri = shape.as_triangle().unwrap();
                core_triangle(
                    core_at(from),
                    dir,
                    max,
                    RADIUS + SKIN,
                    &[tri.a, tri.b, tri.c],
                )
            },
        );
    }

    #[test]
    fn capsule_cuboid_casts_agree_with_parry() {
        casts_are_exact(
            3_000,
            |rng| {
                let half = Vector::new(
                    rng.range(0.1, 1.5),
                    rng.range(0.1, 1.5),
                    rng.range(0.1, 1.5),
                );
                // The core starts outside the box (inside, the caller casts another way).
                let from = loop {
                    let from = rng.vector(2.5);
                    if !segment_meets_box(core_at(from), half) {
                        break from;
                    }
                };
                let aim = rng.vector(0.8) - from;
                (Box::new(Cuboid::new(half)), from, cast_direction(rng, aim))
            },
            |from, dir, max, shape| {
                let half = shape.as_cuboid().unwrap().half_extents;
                core_cuboid(core_at(from), dir, max, RADIUS + SKIN, half)
                    .expect("the core starts outside")
            },
        );
    }

    #[test]
    fn a_core_inside_a_box_is_left_to_the_caller() {
        let half = Vector::new(1.0, 0.2, 1.0);
        // Through the box, and wholly inside a taller one.
        let through = core_at(Vector::new(0.3, 0.0, -0.2));
        assert!(core_cuboid(through, Vector::X, 1.0, 0.4, half).is_none());
        let tall = Vector::new(1.0, 2.0, 1.0);
        assert!(core_cuboid(through, -Vector::Y, 1.0, 0.4, tall).is_none());
        // Beside it, even within reach: answered.
        let beside = core_at(Vector::new(1.2, 0.0, 0.0));
        assert!(core_cuboid(beside, -Vector::X, 1.0, 0.4, half).is_some());
    }

    #[test]
    fn capsule_capsule_and_ball_casts_agree_with_parry() {
        casts_are_exact(
            3_000,
            |rng| {
                let (centre, shape): (Vector, Box<dyn rapier3d::parry::shape::Shape>) =
                    if rng.unit() < 0.5 {
                        let centre = rng.vector(1.5);
                        let axis = rng.direction() * rng.range(0.0, 1.0);
                        let radius = rng.range(0.05, 0.6);
                        (
                            centre,
                            Box::new(Capsule::new(centre - axis, centre + axis, radius)),
                        )
                    } else {
                        // parry's balls sit at their frame's origin.
                        (Vector::ZERO, Box::new(Ball::new(rng.range(0.05, 0.8))))
                    };
                let from = rng.vector(3.0);
                let aim = centre + rng.vector(0.5) - from;
                (shape, from, cast_direction(rng, aim))
            },
            |from, dir, max, shape| {
                let (other, radius) = if let Some(c) = shape.as_capsule() {
                    (
                        Core {
                            a: c.segment.a,
                            b: c.segment.b,
                        },
                        c.radius,
                    )
                } else {
                    let ball = shape.as_ball().unwrap();
                    (
                        Core {
                            a: Vector::ZERO,
                            b: Vector::ZERO,
                        },
                        ball.radius,
                    )
                };
                core_core(core_at(from), dir, max, RADIUS + radius + SKIN, other)
            },
        );
    }

    #[test]
    fn a_capsule_resting_on_a_face_lifts_freely_and_cannot_sink() {
        let floor = [
            Vector::new(-5.0, 0.0, -5.0),
            Vector::new(5.0, 0.0, 5.0),
            Vector::new(5.0, 0.0, -5.0),
        ];
        // Resting exactly at the skin's distance.
        let rest = Vector::new(1.0, HALF + RADIUS + SKIN, -1.0);
        let reach = RADIUS + SKIN;
        assert_eq!(
            core_triangle(core_at(rest), Vector::Y, 1.0, reach, &floor),
            None
        );
        assert_eq!(
            core_triangle(core_at(rest), Vector::X, 1.0, reach, &floor),
            None,
            "sliding along the face"
        );
        let down = core_triangle(core_at(rest), -Vector::Y, 1.0, reach, &floor).unwrap();
        assert_eq!(down.toi, 0.0);
        assert!((down.normal - Vector::Y).length() < 1e-6, "{down:?}");
        // From 10 cm up, it lands after 10 cm, on the face.
        let above = rest + Vector::Y * 0.1;
        let land = core_triangle(core_at(above), -Vector::Y, 1.0, reach, &floor).unwrap();
        assert!((land.toi - 0.1).abs() < 1e-5, "{land:?}");
        assert!((land.point - Vector::new(1.0, 0.0, -1.0)).length() < 1e-5);
    }

    #[test]
    fn degenerate_pieces_do_not_panic_or_produce_nan() {
        let p = Vector::new(0.3, 0.2, 0.1);
        let flat = [p, p, p];
        let line = [Vector::ZERO, Vector::X, Vector::X * 2.0];
        for tri in [flat, line] {
            for dir in [Vector::X, -Vector::Y, Vector::new(0.6, 0.0, 0.8)] {
                for from in [Vector::new(-2.0, 0.5, 0.1), Vector::new(0.5, 0.0, 0.0)] {
                    if let Some(hit) = core_triangle(core_at(from), dir, 5.0, 0.37, &tri) {
                        assert!(hit.toi.is_finite() && hit.normal.is_finite(), "{hit:?}");
                        assert!((hit.normal.length() - 1.0).abs() < 1e-4, "{hit:?}");
                    }
                }
            }
        }
        let point = Core { a: p, b: p };
        let hit = core_core(
            point,
            Vector::X,
            5.0,
            0.5,
            Core {
                a: p + Vector::X,
                b: p + Vector::X,
            },
        )
        .unwrap();
        assert!((hit.toi - 0.5).abs() < 1e-5 && (hit.normal + Vector::X).length() < 1e-5);
    }
}
