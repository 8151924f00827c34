use godot::prelude::*;

/// Facts about the loaded Nexus Physics extension (version, supported event scheme).
#[derive(GodotClass)]
#[class(init, base = RefCounted)]
pub struct NexusInfo {
    base: Base<RefCounted>,
}

#[godot_api]
impl NexusInfo {
    /// The extension's version, e.g. `"0.1.0"`.
    #[func]
    fn version() -> GString {
        env!("CARGO_PKG_VERSION").into()
    }

    /// Whether `event_type` follows the `domain:name:version:kind` scheme of the protocol.
    #[func]
    fn is_valid_event_type(event_type: GString) -> bool {
        let text = event_type.to_string();
        let parts: Vec<&str> = text.split(':').collect();
        parts.len() == 4
            && parts.iter().all(|p| !p.is_empty())
            && parts[2]
                .strip_prefix('v')
                .is_some_and(|n| n.parse::<u32>().is_ok())
            && matches!(parts[3], "requested" | "stream")
    }
}
