use std::collections::HashMap;

use godot::classes::{INode, Node, Os};
use godot::prelude::*;
use nexus_sim::state::ClientId;
use nexus_sim::{InteractionKind, InteractionReply, InteractionRequest, World};

use crate::convert::{dictionary_to_json, to_variant};
use crate::world_access::{read_parent_world, with_parent_world};

/// The interaction rules of its parent `PhysicsWorldServer`'s world, open to scripts.
///
/// The world validates every interaction itself (reach, ownership, overlaps, ...). A script on
/// this node can add to that:
/// - `func _veto_interaction(request: Dictionary) -> String`: called for each request that passed
///   the world's checks; a non-empty string vetoes it (code `vetoed`, the string as message).
/// - `register_interaction(name, handler)`: a new interaction type; `handler(request: Dictionary)`
///   answers `{success: bool, code: String, message: String, data: Dictionary}` (or a bool).
///
/// `request` carries `client_id`, `kind`, `request_id`, `target`, `args`, `avatar_position` and,
/// for a target, `target_state`. Hooks run inside the tick: they must not call the world server
/// (use `call_deferred` for follow-up changes).
#[derive(GodotClass)]
#[class(init, base = Node)]
pub struct InteractionSystem {
    /// Ask the script's `_veto_interaction` about every request.
    #[export]
    #[init(val = true)]
    script_veto: bool,
    handlers: HashMap<String, Callable>,
    base: Base<Node>,
}

#[godot_api]
impl INode for InteractionSystem {}

#[godot_api]
impl InteractionSystem {
    /// An interaction of the parent world finished (success or failure with a reason `code`).
    #[signal]
    fn interaction_completed(result: VarDictionary);

    /// Registers a new interaction type handled by `handler` (see the class description).
    /// Built-in names (pickup, drop, use, build, destroy) are refused.
    #[func]
    fn register_interaction(&mut self, name: GString, handler: Callable) -> bool {
        let name = name.to_string();
        if !handler.is_valid() {
            godot_error!(
                "InteractionSystem.register_interaction({name}): the handler is not a valid Callable"
            );
            return false;
        }
        self.handlers.insert(name.clone(), handler);
        // Installs into a running world now; a world started later installs at start.
        let node = self.base().clone().upcast::<Node>();
        if read_parent_world(&node, |_| ()).is_none() {
            return true;
        }
        let id = node.instance_id();
        match with_parent_world(&node, |world| install_handler(world, id, &name)) {
            Some(Err(message)) => {
                self.handlers.remove(&name);
                godot_error!("InteractionSystem.register_interaction({name}): {message}");
                false
            }
            _ => true,
        }
    }

    /// Names of the interaction types registered by scripts.
    #[func]
    fn get_registered_interactions(&self) -> PackedStringArray {
        let mut names: Vec<&String> = self.handlers.keys().collect();
        names.sort();
        names
            .into_iter()
            .map(|n| GString::from(n.as_str()))
            .collect()
    }
}

impl InteractionSystem {
    /// Installs the script hooks into a freshly built world.
    pub fn install(&self, world: &mut World) {
        let id = self.base().instance_id();
        for name in self.handlers.keys() {
            if let Err(message) = install_handler(world, id, name) {
                godot_error!("InteractionSystem: interaction {name:?}: {message}");
            }
        }
        if self.script_veto {
            world.set_interaction_veto(Some(Box::new(
                move |world: &World, client: ClientId, request: &InteractionRequest| {
                    let mut node = on_main_thread(id)?;
                    if !node.has_method("_veto_interaction") {
                        return None;
                    }
                    let answer = node.call(
                        "_veto_interaction",
                        &[request_dictionary(world, client, request).to_variant()],
                    );
                    let reason = answer
                        .try_to::<GString>()
                        .map(|s| s.to_string())
                        .unwrap_or_default();
                    (!reason.is_empty()).then_some(reason)
                },
            )));
        }
    }

    /// Emits `interaction_completed` after the tick.
    pub fn defer_completed(&mut self, result: Variant) {
        crate::convert::emit_deferred(&mut self.base_mut(), "interaction_completed", &[result]);
    }
}

fn install_handler(world: &mut World, id: InstanceId, name: &str) -> Result<(), String> {
    let handler_name = name.to_string();
    world
        .register_interaction(
            name,
            Box::new(
                move |world: &mut World, client: ClientId, request: &InteractionRequest| {
                    let Some(node) = on_main_thread(id) else {
                        return InteractionReply::fail(
                            "unavailable",
                            "the interaction's script is gone",
                        );
                    };
                    let handler = node.bind().handlers.get(&handler_name).cloned();
                    let Some(handler) = handler else {
                        return InteractionReply::fail(
                            "unknown_interaction",
                            format!("{handler_name} is not registered"),
                        );
                    };
                    let answer =
                        handler.call(&[request_dictionary(world, client, request).to_variant()]);
                    reply_from_variant(&answer)
                },
            ),
        )
        .map_err(|e| e.to_string())
}

/// The hook's node, when we are on Godot's main thread (the world's tick thread in Godot).
fn on_main_thread(id: InstanceId) -> Option<Gd<InteractionSystem>> {
    let os = Os::singleton();
    if os.get_thread_caller_id() != os.get_main_thread_id() {
        return None;
    }
    Gd::try_from_instance_id(id).ok()
}

/// The name of an interaction kind as the protocol spells it (`pickup`, ..., or the custom name).
pub fn kind_name(kind: &InteractionKind) -> String {
    match kind {
        InteractionKind::Pickup => "pickup".into(),
        InteractionKind::Drop => "drop".into(),
        InteractionKind::Use => "use".into(),
        InteractionKind::Build => "build".into(),
        InteractionKind::Destroy => "destroy".into(),
        InteractionKind::Custom(name) => name.clone(),
    }
}

/// An interaction request from a Dictionary whose `kind` is a name, as on the wire.
pub fn request_from_dictionary(dict: &VarDictionary) -> Result<InteractionRequest, String> {
    let mut json = dictionary_to_json(dict)?;
    if let Some(serde_json::Value::String(name)) = json.get("kind") {
        let kind = match name.as_str() {
            "pickup" | "drop" | "use" | "build" | "destroy" => {
                serde_json::Value::String(name.clone())
            }
            custom => serde_json::json!({ "custom": custom }),
        };
        json.insert("kind".into(), kind);
    }
    serde_json::from_value(serde_json::Value::Object(json)).map_err(|e| e.to_string())
}

fn request_dictionary(
    world: &World,
    client: ClientId,
    request: &InteractionRequest,
) -> VarDictionary {
    let mut dict: VarDictionary = to_variant(request).to();
    dict.set("kind", kind_name(&request.kind).as_str());
    dict.set("client_id", i64::from(client));
    if let Some(avatar) = world.avatar_of(client).and_then(|a| world.object_state(a)) {
        dict.set(
            "avatar_position",
            Vector3::new(avatar.position[0], avatar.position[1], avatar.position[2]),
        );
    }
    if let Some(target) = request.target.and_then(|t| world.object_state(t)) {
        dict.set("target_state", &to_variant(&target));
    }
    dict
}

fn reply_from_variant(answer: &Variant) -> InteractionReply {
    if let Ok(success) = answer.try_to::<bool>() {
        return if success {
            InteractionReply::ok(Default::default())
        } else {
            InteractionReply::fail("refused", "the handler refused")
        };
    }
    let Ok(dict) = answer.try_to::<VarDictionary>() else {
        return InteractionReply::fail(
            "handler_error",
            "the handler returned neither a Dictionary nor a bool",
        );
    };
    let text = |key: &str| dict.get(key).map(|v| v.to_string()).unwrap_or_default();
    let success = dict
        .get("success")
        .and_then(|v| v.try_to::<bool>().ok())
        .unwrap_or(false);
    let data = dict
        .get("data")
        .and_then(|v| v.try_to::<VarDictionary>().ok())
        .map(|d| dictionary_to_json(&d).unwrap_or_default())
        .unwrap_or_default();
    let code = text("code");
    let mut reply = if success {
        InteractionReply::ok(data)
    } else {
        InteractionReply::fail(
            if code.is_empty() { "refused" } else { &code },
            text("message"),
        )
    };
    if success && !code.is_empty() {
        reply.code = code;
    }
    if success {
        reply.message = text("message");
    }
    reply
}
