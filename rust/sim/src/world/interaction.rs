//! The world's interaction system: every request checked by the authority, then done (see
//! [`crate::interaction`] for the kinds and their reason codes).

use rapier3d::parry::query::{ContactManifold, DefaultQueryDispatcher, PersistentQueryDispatcher};
use rapier3d::prelude::{Pose, QueryFilter, RigidBodyType, Vector};
use serde_json::{Map, Value};

use super::{InteractionHandler, InteractionReply, InteractionVeto, World};
use crate::command::{InteractionKind, InteractionRequest};
use crate::error::SimError;
use crate::event::{InteractionResult, WorldEvent};
use crate::objects;
use crate::state::{BodyKind, ClientId, ObjectId};

/// Penetration (m) below which a built object merely touches its neighbours.
const BUILD_TOLERANCE: f32 = 0.005;

const BUILT_IN: [&str; 5] = ["pickup", "drop", "use", "build", "destroy"];

type Outcome = Result<Map<String, Value>, InteractionReply>;

fn fail(code: &str, message: impl Into<String>) -> InteractionReply {
    InteractionReply::fail(code, message)
}

impl World {
    /// Registers a handler for a custom interaction kind (`InteractionKind::Custom(name)`).
    /// Replaces a previous handler of the same name. Built-in names are refused
    /// (`reserved_name`), as is an empty name (`invalid_argument`).
    pub fn register_interaction(
        &mut self,
        name: &str,
        handler: InteractionHandler,
    ) -> Result<(), SimError> {
        if name.trim().is_empty() {
            return Err(SimError::new(
                "invalid_argument",
                "interaction name is empty",
            ));
        }
        if BUILT_IN.contains(&name) {
            return Err(SimError::new(
                "reserved_name",
                format!("`{name}` is a built-in interaction"),
            ));
        }
        self.hooks.handlers.insert(name.to_string(), handler);
        Ok(())
    }

    /// Removes a custom interaction handler; true if there was one.
    pub fn unregister_interaction(&mut self, name: &str) -> bool {
        self.hooks.handlers.remove(name).is_some()
    }

    /// Names of the registered custom interactions, sorted.
    pub fn custom_interactions(&self) -> Vec<String> {
        self.hooks.handlers.keys().cloned().collect()
    }

    /// Installs (or with `None` removes) the host's veto hook.
    pub fn set_interaction_veto(&mut self, veto: Option<InteractionVeto>) {
        self.hooks.veto = veto;
    }

    pub(crate) fn process_interactions(&mut self) {
        let requests = std::mem::take(&mut self.pending_interactions);
        for (client, request) in requests {
            let reply = self.run_interaction(client, &request);
            let target = match reply.data.get("object_id").and_then(Value::as_u64) {
                Some(id) if request.target.is_none() => Some(id as ObjectId),
                _ => request.target,
            };
            self.events
                .push(WorldEvent::InteractionResult(InteractionResult {
                    client_id: client,
                    request_id: request.request_id,
                    kind: request.kind.clone(),
                    success: reply.success,
                    code: reply.code,
                    message: reply.message,
                    target,
                    data: reply.data,
                }));
        }
    }

    fn run_interaction(
        &mut self,
        client: ClientId,
        request: &InteractionRequest,
    ) -> InteractionReply {
        if !self.players.contains_key(&client) {
            return fail("no_avatar", format!("client {client} has no avatar"));
        }
        let checked = match &request.kind {
            InteractionKind::Pickup => self.check_pickup(client, request),
            InteractionKind::Drop => self.check_drop(client, request),
            InteractionKind::Use => self.check_use(client, request),
            InteractionKind::Build => self.check_build(client, request),
            InteractionKind::Destroy => self.check_destroy(client, request),
            InteractionKind::Custom(name) => {
                if self.hooks.handlers.contains_key(name) {
                    Ok(())
                } else {
                    Err(fail(
                        "unknown_interaction",
                        format!("no interaction named `{name}` is registered"),
                    ))
                }
            }
        };
        if let Err(reply) = checked {
            return reply;
        }
        if let Some(mut veto) = self.hooks.veto.take() {
            let verdict = veto(self, client, request);
            if self.hooks.veto.is_none() {
                self.hooks.veto = Some(veto);
            }
            if let Some(reason) = verdict {
                return fail("vetoed", reason);
            }
        }
        let applied: Outcome = match &request.kind {
            InteractionKind::Pickup => self.apply_pickup(client, request),
            InteractionKind::Drop => self.apply_drop(client, request),
            InteractionKind::Use => self.apply_use(request),
            InteractionKind::Build => self.apply_build(client, request),
            InteractionKind::Destroy => self.apply_destroy(request),
            InteractionKind::Custom(name) => return self.call_handler(name, client, request),
        };
        match applied {
            Ok(data) => InteractionReply::ok(data),
            Err(reply) => reply,
        }
    }

    fn call_handler(
        &mut self,
        name: &str,
        client: ClientId,
        request: &InteractionRequest,
    ) -> InteractionReply {
        // The handler gets `&mut World`, so it must be out of the world while it runs.
        let Some(mut handler) = self.hooks.handlers.remove(name) else {
            return fail("unknown_interaction", format!("`{name}` was unregistered"));
        };
        let reply = handler(self, client, request);
        self.hooks
            .handlers
            .entry(name.to_string())
            .or_insert(handler);
        reply
    }

    fn avatar_position(&self, client: ClientId) -> Vector {
        Vector::from_array(self.players[&client].character.position)
    }

    /// Distance from the client's avatar centre to the surface of an object.
    fn distance_to(&self, client: ClientId, id: ObjectId) -> f32 {
        let record = &self.objects[&id];
        let collider = &self.physics.colliders[record.collider];
        collider
            .shape()
            .distance_to_point(collider.position(), self.avatar_position(client), true)
    }

    fn check_reach(&self, client: ClientId, id: ObjectId) -> Result<(), InteractionReply> {
        let reach = self.config.interaction.reach;
        let distance = self.distance_to(client, id);
        if distance > reach {
            return Err(fail(
                "out_of_reach",
                format!("object {id} is {distance:.2} m away; reach is {reach} m"),
            ));
        }
        Ok(())
    }

    fn target(&self, request: &InteractionRequest) -> Result<ObjectId, InteractionReply> {
        let id = request
            .target
            .ok_or_else(|| fail("missing_target", "this interaction needs a target object"))?;
        if !self.objects.contains_key(&id) {
            return Err(fail("unknown_object", format!("no object with id {id}")));
        }
        Ok(id)
    }

    fn check_pickup(
        &self,
        client: ClientId,
        request: &InteractionRequest,
    ) -> Result<(), InteractionReply> {
        let id = self.target(request)?;
        let record = &self.objects[&id];
        let flagged_off = record.properties.get("pickupable") == Some(&Value::Bool(false));
        if record.kind != BodyKind::Dynamic || flagged_off {
            return Err(fail(
                "not_pickupable",
                format!("object {id} cannot be picked up"),
            ));
        }
        match record.held_by {
            Some(holder) if holder == client => {
                return Err(fail(
                    "already_held",
                    format!("you already hold object {id}"),
                ));
            }
            Some(holder) => {
                return Err(fail(
                    "held_by_other",
                    format!("object {id} is held by client {holder}"),
                ));
            }
            None => {}
        }
        if let Some(held) = self.players[&client].held {
            return Err(fail(
                "hands_full",
                format!("you already hold object {held}; drop it first"),
            ));
        }
        let max = self.config.interaction.max_pickup_mass;
        if record.mass > max {
            return Err(fail(
                "too_heavy",
                format!(
                    "object {id} weighs {:.1} kg; the limit is {max} kg",
                    record.mass
                ),
            ));
        }
        self.check_reach(client, id)
    }

    fn apply_pickup(&mut self, client: ClientId, request: &InteractionRequest) -> Outcome {
        let id = request.target.expect("checked");
        let stamp = self.stamp();
        let point = self.hold_point(&self.players[&client].character);
        let record = self.objects.get_mut(&id).expect("checked");
        record.held_by = Some(client);
        record.properties.insert("held_by".into(), client.into());
        let body = &mut self.physics.bodies[record.body];
        body.set_body_type(RigidBodyType::KinematicPositionBased, true);
        body.set_linvel(Vector::ZERO, false);
        body.set_angvel(Vector::ZERO, false);
        body.set_next_kinematic_translation(point);
        self.players.get_mut(&client).expect("checked").held = Some(id);
        self.changes.touch(id, stamp);
        Ok(Map::new())
    }

    fn throw_velocity(
        &self,
        request: &InteractionRequest,
    ) -> Result<Option<Vector>, InteractionReply> {
        let Some(value) = request.args.get("velocity") else {
            return Ok(None);
        };
        let parsed: Option<Vec<f32>> = value
            .as_array()
            .and_then(|items| items.iter().map(|v| v.as_f64().map(|f| f as f32)).collect());
        let velocity = match parsed.as_deref() {
            Some([x, y, z]) if x.is_finite() && y.is_finite() && z.is_finite() => {
                Vector::new(*x, *y, *z)
            }
            _ => {
                return Err(fail(
                    "invalid_args",
                    "args.velocity must be an array of 3 finite numbers",
                ));
            }
        };
        let max = self.config.interaction.max_throw_speed;
        if velocity.length() > max {
            return Err(fail(
                "invalid_args",
                format!("throw speed {:.1} m/s exceeds {max} m/s", velocity.length()),
            ));
        }
        Ok(Some(velocity))
    }

    fn check_drop(
        &self,
        client: ClientId,
        request: &InteractionRequest,
    ) -> Result<(), InteractionReply> {
        let Some(held) = self.players[&client].held else {
            return Err(fail("nothing_held", "you are not holding anything"));
        };
        if let Some(target) = request.target
            && target != held
        {
            return Err(fail(
                "not_held",
                format!("you hold object {held}, not object {target}"),
            ));
        }
        self.throw_velocity(request).map(|_| ())
    }

    fn apply_drop(&mut self, client: ClientId, request: &InteractionRequest) -> Outcome {
        let held = self.players[&client].held.expect("checked");
        let velocity = self.throw_velocity(request)?;
        self.release_held(held, velocity);
        let mut data = Map::new();
        data.insert("object_id".into(), held.into());
        Ok(data)
    }

    fn check_use(
        &self,
        client: ClientId,
        request: &InteractionRequest,
    ) -> Result<(), InteractionReply> {
        let id = self.target(request)?;
        let record = &self.objects[&id];
        if record.kind == BodyKind::Player
            || record.properties.get("usable") == Some(&Value::Bool(false))
        {
            return Err(fail("not_usable", format!("object {id} cannot be used")));
        }
        if let Some(holder) = record.held_by
            && holder != client
        {
            return Err(fail(
                "held_by_other",
                format!("object {id} is held by client {holder}"),
            ));
        }
        self.check_reach(client, id)
    }

    fn apply_use(&mut self, request: &InteractionRequest) -> Outcome {
        let id = request.target.expect("checked");
        let stamp = self.stamp();
        let record = self.objects.get_mut(&id).expect("checked");
        let active = !record
            .properties
            .get("active")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        record.properties.insert("active".into(), active.into());
        self.changes.touch(id, stamp);
        let mut data = Map::new();
        data.insert("active".into(), active.into());
        Ok(data)
    }

    fn check_build(
        &self,
        client: ClientId,
        request: &InteractionRequest,
    ) -> Result<(), InteractionReply> {
        let desc = request.build.as_ref().ok_or_else(|| {
            fail(
                "missing_build",
                "a build request needs an object description",
            )
        })?;
        if !matches!(desc.kind, BodyKind::Dynamic | BodyKind::Static) {
            return Err(fail(
                "invalid_object",
                "players can build only dynamic or static objects",
            ));
        }
        let prepared = objects::prepare(desc, 0)
            .map_err(|e| fail("invalid_object", format!("{}: {}", e.code, e.message)))?;
        let distance = (Vector::from_array(desc.position) - self.avatar_position(client)).length();
        let reach = self.config.interaction.build_reach;
        if distance > reach {
            return Err(fail(
                "out_of_reach",
                format!("build position is {distance:.2} m away; build reach is {reach} m"),
            ));
        }
        let limit = self.config.interaction.max_built_per_client;
        let owned = self
            .objects
            .values()
            .filter(|r| r.owner == Some(client) && r.kind != BodyKind::Player)
            .count();
        if owned >= limit {
            return Err(fail(
                "limit_reached",
                format!("you already own {owned} objects (limit {limit})"),
            ));
        }
        let pose = Pose::from_parts(
            Vector::from_array(desc.position),
            rapier3d::prelude::Rotation::from_array(prepared.rotation),
        );
        let shape = prepared.collider.shape.clone();
        let query = self
            .physics
            .query_pipeline_with_filter(QueryFilter::default().exclude_sensors());
        // Candidates by bounds: parry's plain intersection test does not support heightfields.
        let bounds = shape.compute_aabb(&pose);
        for (_, collider) in query.intersect_aabb_conservative(bounds) {
            // Touching is fine (blocks are built resting on things); penetrating is not.
            // Manifolds (unlike single contacts) also work against meshes and heightfields.
            let relative = pose.inv_mul(collider.position());
            let mut manifolds: Vec<ContactManifold<(), ()>> = Vec::new();
            let computed = DefaultQueryDispatcher.contact_manifolds(
                &relative,
                shape.as_ref(),
                collider.shape(),
                0.0,
                &mut manifolds,
                &mut None,
            );
            let penetrates = match computed {
                Ok(()) => manifolds
                    .iter()
                    .flat_map(|m| m.points.iter())
                    .any(|p| p.dist < -BUILD_TOLERANCE),
                // No contact algorithm for this pair: fall back to the intersection test.
                Err(_) => query
                    .dispatcher
                    .intersection_test(&relative, shape.as_ref(), collider.shape())
                    .map_or(true, |hit| hit.intersecting),
            };
            if penetrates {
                let other = collider.user_data as ObjectId;
                return Err(fail(
                    "overlaps",
                    format!("the new object would overlap object {other}"),
                ));
            }
        }
        Ok(())
    }

    fn apply_build(&mut self, client: ClientId, request: &InteractionRequest) -> Outcome {
        let mut desc = request.build.clone().expect("checked");
        desc.properties.insert("owner".into(), client.into());
        let id = self
            .insert_object(desc, Some(client), false)
            .map_err(|e| fail("invalid_object", e.message))?;
        let mut data = Map::new();
        data.insert("object_id".into(), id.into());
        Ok(data)
    }

    fn check_destroy(
        &self,
        client: ClientId,
        request: &InteractionRequest,
    ) -> Result<(), InteractionReply> {
        let id = self.target(request)?;
        let record = &self.objects[&id];
        let admin = self.admins.contains(&client);
        if record.kind == BodyKind::Player || self.env.terrain_id == Some(id) {
            return Err(fail(
                "forbidden",
                format!("object {id} (an avatar or the terrain) cannot be destroyed"),
            ));
        }
        let destructible = record.properties.get("destructible") == Some(&Value::Bool(true));
        if !(admin || record.owner == Some(client) || destructible) {
            return Err(fail(
                "forbidden",
                format!("object {id} is not yours and not destructible"),
            ));
        }
        if let Some(holder) = record.held_by
            && holder != client
        {
            return Err(fail(
                "held_by_other",
                format!("object {id} is held by client {holder}"),
            ));
        }
        // Admins destroy from anywhere (moderation tools); others must be close.
        if admin {
            Ok(())
        } else {
            self.check_reach(client, id)
        }
    }

    fn apply_destroy(&mut self, request: &InteractionRequest) -> Outcome {
        let id = request.target.expect("checked");
        self.remove_object_with_reason(id, "destroyed")
            .map_err(|e| fail(e.code, e.message))?;
        Ok(Map::new())
    }
}
