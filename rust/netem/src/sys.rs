//! The few system calls the emulator needs: TUN devices, an eventfd to stop the forwarders, and
//! entering a network namespace.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::NetemError;

/// `struct ifreq` as `TUNSETIFF` reads it: the name, the flags, and the rest of the union.
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// Opens a new (non-persistent) IP-level TUN device named after `template` (`%d` is replaced by
/// the kernel with a free number). Returns the fd, non-blocking and close-on-exec, and the name.
/// The device disappears when the fd is closed, in whichever namespace it then is.
pub fn open_tun(template: &str) -> Result<(OwnedFd, String), NetemError> {
    // SAFETY: a plain open(2) of a NUL-terminated path.
    let fd = unsafe {
        libc::open(
            c"/dev/net/tun".as_ptr(),
            libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(NetemError::TunUnavailable {
            source: io::Error::last_os_error(),
        });
    }
    // SAFETY: fd was just opened and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut request = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short,
        _pad: [0; 22],
    };
    let template = template.as_bytes();
    assert!(
        template.len() < libc::IFNAMSIZ,
        "TUN name template too long"
    );
    request.name[..template.len()].copy_from_slice(template);
    // SAFETY: TUNSETIFF reads and writes a struct ifreq, which IfReq lays out.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut request) } < 0 {
        return Err(NetemError::Sys {
            what: format!(
                "ioctl TUNSETIFF (IFF_TUN | IFF_NO_PI, name {})",
                String::from_utf8_lossy(template)
            ),
            source: io::Error::last_os_error(),
        });
    }
    let len = request
        .name
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(libc::IFNAMSIZ);
    let name = String::from_utf8_lossy(&request.name[..len]).into_owned();
    Ok((fd, name))
}

/// An eventfd that, once signalled, stays readable: the forwarders poll it to know when to stop.
pub fn stop_event() -> Result<OwnedFd, NetemError> {
    // SAFETY: eventfd(2) with flags only.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(NetemError::Sys {
            what: "eventfd".into(),
            source: io::Error::last_os_error(),
        });
    }
    // SAFETY: fd was just created and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub fn signal_event(fd: &OwnedFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64 to an eventfd.
    unsafe { libc::write(fd.as_raw_fd(), (&raw const one).cast(), 8) };
}

/// Moves the calling thread into the network namespace `name` (one made by `ip netns add`).
/// Only this thread changes namespace; sockets it creates stay in the namespace for good.
pub fn enter_namespace(name: &str) -> Result<(), NetemError> {
    let path = namespace_path(name);
    let file = File::open(&path).map_err(|source| NetemError::Sys {
        what: format!("open {path}"),
        source,
    })?;
    // SAFETY: setns(2) on an open namespace file, for this thread only.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } < 0 {
        return Err(NetemError::Sys {
            what: format!("setns into network namespace {name}"),
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

pub fn namespace_path(name: &str) -> String {
    format!("/run/netns/{name}")
}

/// Lowers this thread's timer slack to 1 µs (the default is 50 µs) so delays are kept to the
/// microsecond.
pub fn precise_timers() {
    // SAFETY: prctl with integer arguments, affecting only this thread.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong) };
}

pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Writes a sysctl file of the calling thread's network namespace, e.g.
/// `net/ipv4/conf/DEV/rp_filter`. Missing files (no IPv6 in this kernel) are not an error.
pub fn write_sysctl(key: &str, value: &str) -> Result<(), NetemError> {
    let path = format!("/proc/sys/{key}");
    match std::fs::write(&path, value) {
        Err(source) if source.kind() != io::ErrorKind::NotFound => Err(NetemError::Sys {
            what: format!("write {value} to {path}"),
            source,
        }),
        _ => Ok(()),
    }
}
