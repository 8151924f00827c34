use godot::classes::{
    BaseMaterial3D, BoxMesh, CapsuleMesh, CylinderMesh, Engine, INode3D, Mesh, MeshInstance3D,
    Node3D, SphereMesh, StandardMaterial3D,
};
use godot::prelude::*;
use nexus_sim::state::{BodyKind, ObjectDesc, Shape};

use crate::convert::{dictionary_to_json, quat_to_array, vec3_to_array};

/// How a [`NetworkedBody`] moves.
#[derive(GodotConvert, Var, Export, Default, Clone, Copy, PartialEq, Eq, Debug)]
#[godot(via = i64)]
pub enum BodyType {
    /// Moved by forces and collisions.
    #[default]
    Dynamic,
    /// Moved by code; pushes dynamic bodies.
    Kinematic,
    /// Never moves.
    Static,
}

/// The collision shape of a [`NetworkedBody`].
#[derive(GodotConvert, Var, Export, Default, Clone, Copy, PartialEq, Eq, Debug)]
#[godot(via = i64)]
pub enum ShapeType {
    /// A box of `size`.
    #[default]
    Box,
    /// A sphere of diameter `size.x`.
    Sphere,
    /// A capsule of diameter `size.x` and total height `size.y`, along Y.
    Capsule,
    /// A cylinder of diameter `size.x` and height `size.y`, along Y.
    Cylinder,
}

/// A physics object placed in a scene. When its `PhysicsWorldServer` starts, the body becomes an
/// object of the authoritative world (at the node's global transform); while the world runs, the
/// node's transform follows the simulation. In the editor it shows its collision shape.
#[derive(GodotClass)]
#[class(init, tool, base = Node3D)]
pub struct NetworkedBody {
    /// Dynamic, kinematic or static.
    #[export]
    body_type: BodyType,
    /// Box, sphere, capsule or cylinder.
    #[export]
    shape: ShapeType,
    /// Size in metres (box: full extents; sphere: diameter in x; capsule and cylinder: diameter in
    /// x, height in y).
    #[export]
    #[init(val = Vector3::ONE)]
    size: Vector3,
    /// Mass in kg; 0 derives it from the volume (density 1).
    #[export(range = (0.0, 10000.0, 0.01, or_greater, suffix = "kg"))]
    mass: f32,
    /// Friction coefficient.
    #[export(range = (0.0, 2.0, 0.01, or_greater))]
    #[init(val = 0.5)]
    friction: f32,
    /// Bounciness: 0 absorbs, 1 bounces fully.
    #[export(range = (0.0, 1.0, 0.01))]
    restitution: f32,
    /// Whether players may pick it up.
    #[export]
    pickupable: bool,
    /// Whether players may destroy it.
    #[export]
    destructible: bool,
    /// Free-form properties sent to clients with the object's state.
    #[export]
    properties: VarDictionary,
    /// The id of this body in the world, or -1 while it is not part of a running world.
    #[var(no_set)]
    #[init(val = -1)]
    object_id: i64,
    preview: Option<(ShapeType, Vector3, Gd<MeshInstance3D>)>,
    base: Base<Node3D>,
}

#[godot_api]
impl INode3D for NetworkedBody {
    fn ready(&mut self) {
        if Engine::singleton().is_editor_hint() {
            self.refresh_preview();
            self.base_mut().set_process(true);
        } else {
            // Godot turns processing on for every class that overrides `process`; outside the
            // editor there is nothing to refresh, and a thousand bodies would each cost a call
            // per frame.
            self.base_mut().set_process(false);
            self.base_mut().add_to_group(Self::GROUP);
        }
    }

    // Editor only: keeps the shape preview in step with the inspector.
    fn process(&mut self, _delta: f64) {
        self.refresh_preview();
    }
}

#[godot_api]
impl NetworkedBody {
    /// Group every running `NetworkedBody` joins, so its world server can find it.
    pub const GROUP: &'static str = "nexus_networked_bodies";

    /// The world object this node describes, at its current global transform.
    #[func]
    fn describe(&self) -> VarDictionary {
        match self.object_desc() {
            Ok(desc) => crate::convert::to_variant(&desc).to(),
            Err(error) => {
                godot_error!("NetworkedBody {}: {error}", self.base().get_name());
                VarDictionary::new()
            }
        }
    }
}

impl NetworkedBody {
    /// The core description of this body, or an error for an invalid configuration.
    pub fn object_desc(&self) -> Result<ObjectDesc, String> {
        let size = self.size;
        if !(size.x > 0.0 && size.y > 0.0 && size.z > 0.0 && size.is_finite()) {
            return Err(format!("size must be positive in every axis, got {size}"));
        }
        let radius = size.x / 2.0;
        let shape = match self.shape {
            ShapeType::Box => Shape::Box {
                half_extents: vec3_to_array(size / 2.0),
            },
            ShapeType::Sphere => Shape::Sphere { radius },
            ShapeType::Capsule => Shape::Capsule {
                half_height: ((size.y / 2.0) - radius).max(0.0),
                radius,
            },
            ShapeType::Cylinder => Shape::Cylinder {
                half_height: size.y / 2.0,
                radius,
            },
        };
        let mut properties = dictionary_to_json(&self.properties)?;
        if self.pickupable {
            properties.insert("pickupable".into(), true.into());
        }
        if self.destructible {
            properties.insert("destructible".into(), true.into());
        }
        properties
            .entry("name")
            .or_insert_with(|| self.base().get_name().to_string().into());
        let transform = self.base().get_global_transform();
        Ok(ObjectDesc {
            kind: match self.body_type {
                BodyType::Dynamic => BodyKind::Dynamic,
                BodyType::Kinematic => BodyKind::Kinematic,
                BodyType::Static => BodyKind::Static,
            },
            shape,
            position: vec3_to_array(transform.origin),
            rotation: quat_to_array(transform.basis.get_quaternion()),
            mass: (self.mass > 0.0).then_some(self.mass),
            friction: self.friction,
            restitution: self.restitution,
            properties,
        })
    }

    /// Records the world object this node now stands for.
    pub fn bind_object(&mut self, id: Option<u32>) {
        self.object_id = id.map_or(-1, i64::from);
    }

    fn refresh_preview(&mut self) {
        if let Some((shape, size, _)) = &self.preview
            && *shape == self.shape
            && *size == self.size
        {
            return;
        }
        if let Some((_, _, mut old)) = self.preview.take() {
            old.queue_free();
        }
        let mesh: Gd<Mesh> = match self.shape {
            ShapeType::Box => {
                let mut m = BoxMesh::new_gd();
                m.set_size(self.size);
                m.upcast()
            }
            ShapeType::Sphere => {
                let mut m = SphereMesh::new_gd();
                m.set_radius(self.size.x / 2.0);
                m.set_height(self.size.x);
                m.upcast()
            }
            ShapeType::Capsule => {
                let mut m = CapsuleMesh::new_gd();
                m.set_radius(self.size.x / 2.0);
                m.set_height(self.size.y.max(self.size.x));
                m.upcast()
            }
            ShapeType::Cylinder => {
                let mut m = CylinderMesh::new_gd();
                m.set_top_radius(self.size.x / 2.0);
                m.set_bottom_radius(self.size.x / 2.0);
                m.set_height(self.size.y);
                m.upcast()
            }
        };
        let mut material = StandardMaterial3D::new_gd();
        material.set_albedo(Color::from_rgba(0.2, 0.7, 1.0, 0.45));
        material.set_transparency(godot::classes::base_material_3d::Transparency::ALPHA);
        material.set_shading_mode(godot::classes::base_material_3d::ShadingMode::UNSHADED);
        let mut instance = MeshInstance3D::new_alloc();
        instance.set_mesh(&mesh);
        instance.set_material_override(&material.upcast::<BaseMaterial3D>());
        // Not owned by the scene, so the preview is never saved into the .tscn.
        self.base_mut().add_child(&instance);
        self.preview = Some((self.shape, self.size, instance));
    }
}
