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

    /// CPU time the calling thread has used, in microseconds (-1 where the platform cannot
    /// tell). Benchmarks use it to measure main-thread work apart from time lost to other
    /// processes on a busy machine.
    #[func]
    fn thread_cpu_usec() -> i64 {
        thread_cpu_usec()
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

#[cfg(unix)]
fn thread_cpu_usec() -> i64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec; the clock id is a constant every Unix has.
    let result = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    if result != 0 {
        return -1;
    }
    now.tv_sec * 1_000_000 + now.tv_nsec / 1_000
}

#[cfg(not(unix))]
fn thread_cpu_usec() -> i64 {
    -1
}
