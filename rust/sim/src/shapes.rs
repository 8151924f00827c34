//! Contract shapes into rapier shapes: the one validation and construction that the server and
//! predicting clients share, so a client's copy of the world collides exactly as the server's.
//!
//! Shapes arrive from the network or from saved campaigns: every number is checked and a bad
//! shape is a [`ShapeError`], never a panic.

use std::fmt;

use rapier3d::parry::utils::Array2;
use rapier3d::prelude::{SharedShape, Vector};

use crate::error::SimError;
use crate::state::Shape;

/// Largest size of one shape dimension, and largest coordinate of a hull point, mesh vertex or
/// height (m).
pub const SIZE_LIMIT: f32 = 10_000.0;
/// Largest count of hull points, mesh vertices, triangles or heightfield samples of one shape.
pub const VERTEX_LIMIT: usize = 1 << 22;

/// Why a contract shape cannot be built. Its code in [`SimError`]s and on the wire is
/// [`ShapeError::CODE`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShapeError {
    /// What is wrong, for a person (e.g. `sphere radius must be finite, > 0 and <= 10000, got -1`).
    pub message: String,
}

impl ShapeError {
    /// The stable error code of an invalid shape.
    pub const CODE: &'static str = "invalid_shape";

    fn new(message: impl Into<String>) -> Self {
        ShapeError {
            message: message.into(),
        }
    }
}

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", Self::CODE, self.message)
    }
}

impl std::error::Error for ShapeError {}

impl From<ShapeError> for SimError {
    fn from(error: ShapeError) -> Self {
        SimError::new(ShapeError::CODE, error.message)
    }
}

/// A rapier shape built from a contract shape.
#[derive(Clone)]
pub struct BuiltShape {
    /// The collision shape, in the object's local frame.
    pub shape: SharedShape,
    /// Radius of a sphere around the local origin that contains the whole shape, m.
    pub bounding_radius: f32,
}

impl fmt::Debug for BuiltShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuiltShape")
            .field("shape_type", &self.shape.shape_type())
            .field("bounding_radius", &self.bounding_radius)
            .finish()
    }
}

/// A heightfield of rolling hills around a flat arena: `resolution` samples per side over
/// `size` metres (x, z), hills up to `hill_height` metres, rising over 15 m from `flat_radius`
/// metres off the centre. The demo scene's terrain (`EnvironmentManager`), the benchmarks and the
/// tests share it.
pub fn rolling_hills(resolution: u32, size: [f32; 2], hill_height: f32, flat_radius: f32) -> Shape {
    let n = resolution.max(2);
    let mut heights = Vec::with_capacity((n * n) as usize);
    for row in 0..n {
        for col in 0..n {
            let x = (col as f32 / (n - 1) as f32 - 0.5) * size[0];
            let z = (row as f32 / (n - 1) as f32 - 0.5) * size[1];
            let distance = (x * x + z * z).sqrt();
            let ramp = ((distance - flat_radius) / 15.0).clamp(0.0, 1.0);
            let hills = (x * 0.11).sin() * (z * 0.09).cos() * 0.5 + 0.5;
            heights.push(hill_height * hills * ramp * ramp);
        }
    }
    Shape::Heightfield {
        rows: n,
        cols: n,
        heights,
        size: [size[0], 1.0, size[1]],
    }
}

/// Builds the rapier shape of a contract shape, checking every number: sizes finite, positive and
/// at most [`SIZE_LIMIT`]; points finite and within ±[`SIZE_LIMIT`]; counts within
/// [`VERTEX_LIMIT`]; hulls not degenerate; triangle indices in range; heightfields with exactly
/// `rows * cols` heights.
///
/// ```
/// use nexus_sim::Shape;
/// use nexus_sim::shapes::build_shape;
///
/// let built = build_shape(&Shape::Sphere { radius: 0.5 })?;
/// assert_eq!(built.bounding_radius, 0.5);
/// let error = build_shape(&Shape::Sphere { radius: f32::NAN }).unwrap_err();
/// assert!(error.message.contains("sphere radius"));
/// # Ok::<(), nexus_sim::shapes::ShapeError>(())
/// ```
pub fn build_shape(shape: &Shape) -> Result<BuiltShape, ShapeError> {
    let (shape, bounding_radius) = match shape {
        Shape::Box { half_extents } => {
            for (axis, h) in ["x", "y", "z"].iter().zip(half_extents) {
                check_size(*h, &format!("box half extent {axis}"))?;
            }
            let [x, y, z] = *half_extents;
            (SharedShape::cuboid(x, y, z), (x * x + y * y + z * z).sqrt())
        }
        Shape::Sphere { radius } => {
            check_size(*radius, "sphere radius")?;
            (SharedShape::ball(*radius), *radius)
        }
        Shape::Capsule {
            half_height,
            radius,
        } => {
            check_size(*half_height, "capsule half height")?;
            check_size(*radius, "capsule radius")?;
            (
                SharedShape::capsule_y(*half_height, *radius),
                half_height + radius,
            )
        }
        Shape::Cylinder {
            half_height,
            radius,
        } => {
            check_size(*half_height, "cylinder half height")?;
            check_size(*radius, "cylinder radius")?;
            (
                SharedShape::cylinder(*half_height, *radius),
                (half_height * half_height + radius * radius).sqrt(),
            )
        }
        Shape::ConvexHull { points } => {
            if points.len() < 4 || points.len() > VERTEX_LIMIT {
                return Err(ShapeError::new(format!(
                    "a convex hull needs 4..={VERTEX_LIMIT} points, got {}",
                    points.len()
                )));
            }
            let points = checked_points(points, "convex hull point")?;
            let radius = max_length(&points);
            let shape = SharedShape::convex_hull(&points).ok_or_else(|| {
                ShapeError::new("the convex hull points are degenerate (coplanar or duplicates)")
            })?;
            (shape, radius)
        }
        Shape::TriangleMesh { vertices, indices } => {
            if vertices.len() < 3 || vertices.len() > VERTEX_LIMIT {
                return Err(ShapeError::new(format!(
                    "a triangle mesh needs 3..={VERTEX_LIMIT} vertices, got {}",
                    vertices.len()
                )));
            }
            if indices.is_empty() || indices.len() > VERTEX_LIMIT {
                return Err(ShapeError::new(format!(
                    "a triangle mesh needs 1..={VERTEX_LIMIT} triangles, got {}",
                    indices.len()
                )));
            }
            if let Some(bad) = indices
                .iter()
                .flatten()
                .find(|i| **i as usize >= vertices.len())
            {
                return Err(ShapeError::new(format!(
                    "triangle index {bad} is out of range ({} vertices)",
                    vertices.len()
                )));
            }
            let points = checked_points(vertices, "mesh vertex")?;
            let radius = max_length(&points);
            let shape = SharedShape::trimesh(points, indices.clone())
                .map_err(|e| ShapeError::new(format!("invalid triangle mesh: {e:?}")))?;
            (shape, radius)
        }
        Shape::Heightfield {
            rows,
            cols,
            heights,
            size,
        } => {
            let (rows, cols) = (*rows as usize, *cols as usize);
            if rows < 2 || cols < 2 || rows.saturating_mul(cols) > VERTEX_LIMIT {
                return Err(ShapeError::new(format!(
                    "a heightfield needs at least 2x2 samples (and at most {VERTEX_LIMIT}), got {rows}x{cols}"
                )));
            }
            if heights.len() != rows * cols {
                return Err(ShapeError::new(format!(
                    "heightfield of {rows}x{cols} needs {} heights, got {}",
                    rows * cols,
                    heights.len()
                )));
            }
            if let Some(bad) = heights
                .iter()
                .find(|h| !h.is_finite() || h.abs() > SIZE_LIMIT)
            {
                return Err(ShapeError::new(format!(
                    "heightfield heights must be finite and within ±{SIZE_LIMIT}, got {bad}"
                )));
            }
            check_size(size[0], "heightfield size x")?;
            check_size(size[1], "heightfield vertical scale")?;
            check_size(size[2], "heightfield size z")?;
            let shape = SharedShape::heightfield(
                heightfield_array(rows, cols, heights),
                Vector::from_array(*size),
            );
            let max_h = heights.iter().fold(0.0f32, |m, h| m.max(h.abs())) * size[1];
            let radius =
                (size[0] * size[0] * 0.25 + size[2] * size[2] * 0.25 + max_h * max_h).sqrt();
            (shape, radius)
        }
    };
    Ok(BuiltShape {
        shape,
        bounding_radius,
    })
}

/// Parry stores heights column-major with rows along Z and columns along X; the contract is
/// row-major, so this transposes the storage order (not the meaning).
pub(crate) fn heightfield_array(rows: usize, cols: usize, heights: &[f32]) -> Array2<f32> {
    Array2::from_fn(rows, cols, |r, c| heights[r * cols + c])
}

fn check_size(value: f32, what: &str) -> Result<(), ShapeError> {
    if !value.is_finite() || value <= 0.0 || value > SIZE_LIMIT {
        return Err(ShapeError::new(format!(
            "{what} must be finite, > 0 and <= {SIZE_LIMIT}, got {value}"
        )));
    }
    Ok(())
}

fn checked_points(points: &[[f32; 3]], what: &str) -> Result<Vec<Vector>, ShapeError> {
    points
        .iter()
        .map(|p| {
            if p.iter().all(|c| c.is_finite() && c.abs() <= SIZE_LIMIT) {
                Ok(Vector::from_array(*p))
            } else {
                Err(ShapeError::new(format!(
                    "{what} must be finite and within ±{SIZE_LIMIT}, got {p:?}"
                )))
            }
        })
        .collect()
}

fn max_length(points: &[Vector]) -> f32 {
    points.iter().fold(0.0f32, |m, p| m.max(p.length()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_numbers_are_errors_with_the_invalid_shape_code() {
        let bad = [
            Shape::Box {
                half_extents: [1.0, -1.0, 1.0],
            },
            Shape::Sphere {
                radius: f32::INFINITY,
            },
            Shape::Capsule {
                half_height: 0.5,
                radius: SIZE_LIMIT * 2.0,
            },
            Shape::ConvexHull {
                points: vec![[0.0; 3]; 3],
            },
            Shape::ConvexHull {
                points: vec![[0.0; 3]; 4],
            },
            Shape::TriangleMesh {
                vertices: vec![[0.0; 3], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]],
                indices: vec![[0, 1, 3]],
            },
            Shape::Heightfield {
                rows: 3,
                cols: 3,
                heights: vec![0.0; 4],
                size: [1.0, 1.0, 1.0],
            },
            Shape::Heightfield {
                rows: 2,
                cols: 2,
                heights: vec![0.0, f32::NAN, 0.0, 0.0],
                size: [1.0, 1.0, 1.0],
            },
        ];
        for shape in bad {
            let error = build_shape(&shape).unwrap_err();
            assert!(!error.message.is_empty());
            let sim: SimError = error.clone().into();
            assert_eq!(sim.code, ShapeError::CODE, "{shape:?}");
            assert_eq!(sim.message, error.message);
        }
    }

    #[test]
    fn bounding_radii_contain_the_shapes() {
        let boxed = build_shape(&Shape::Box {
            half_extents: [1.0, 2.0, 2.0],
        })
        .unwrap();
        assert_eq!(boxed.bounding_radius, 3.0);
        let mesh = build_shape(&Shape::TriangleMesh {
            vertices: vec![[0.0; 3], [3.0, 0.0, 4.0], [0.0, 0.0, 1.0]],
            indices: vec![[0, 1, 2]],
        })
        .unwrap();
        assert_eq!(mesh.bounding_radius, 5.0);
        let terrain = build_shape(&Shape::Heightfield {
            rows: 2,
            cols: 2,
            heights: vec![0.0, 0.0, 0.0, 2.0],
            size: [6.0, 1.0, 8.0],
        })
        .unwrap();
        let aabb = terrain.shape.compute_local_aabb();
        let farthest = aabb.mins.abs().max(aabb.maxs.abs()).length();
        assert!(
            (terrain.bounding_radius - farthest).abs() < 1e-4,
            "{aabb:?}"
        );
    }
}
