//! Routes the Rust crates' `tracing` events (gateway, store, client) to Godot's output, so they show
//! in the editor's Output panel and in a server's log like Godot's own lines: errors with
//! `godot_error!`, warnings with `godot_warn!`, the rest with `godot_print!`. `RUST_LOG` filters
//! them as usual (default: `info`).

use std::fmt::Write as _;

use godot::prelude::*;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the route once per process; a host that set its own subscriber first keeps it.
pub fn install() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(GodotOutput)
        .try_init();
}

struct GodotOutput;

impl<S: Subscriber> Layer<S> for GodotOutput {
    fn on_event(&self, event: &Event<'_>, _context: Context<'_, S>) {
        let mut line = Line::default();
        event.record(&mut line);
        let metadata = event.metadata();
        let text = format!("[{}] {}{}", metadata.target(), line.message, line.fields);
        // Godot's print functions are thread-safe; events come from the gateway's threads too.
        match *metadata.level() {
            Level::ERROR => godot_error!("{text}"),
            Level::WARN => godot_warn!("{text}"),
            _ => godot_print!("{text}"),
        }
    }
}

/// An event as one line: its message, then `key=value` for each other field.
#[derive(Default)]
struct Line {
    message: String,
    fields: String,
}

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }
}
