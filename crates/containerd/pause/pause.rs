//! The pause container's process (upstream `build/pause/linux/pause.c`, in Rust): the
//! first process of every pod sandbox. It holds the pod's namespaces open by doing
//! nothing: it blocks in `pause()` forever, reaps zombies on SIGCHLD (it is PID 1 of the
//! pod's PID namespace when that is shared), and exits 0 on SIGINT/SIGTERM after
//! printing "Shutting down, got signal: …". `-v` prints the version. Not being PID 1 is
//! only a warning, as upstream: pause sees use outside of infra containers.
//!
//! Standalone on purpose: compiled by the crate's build.rs with `$RUSTC` alone (no
//! Cargo, no dependencies), linked statically so the image needs no libc, and embedded
//! in the pause image. The libc functions it needs are declared here by hand.

use std::ffi::{c_char, c_int, c_void};

// The constants and struct layout below are those of Linux with glibc on these.
#[cfg(not(all(
    target_os = "linux",
    target_env = "gnu",
    any(
        target_arch = "x86_64",
        target_arch = "aarch64",
        target_arch = "riscv64"
    )
)))]
compile_error!("pause.rs: port the sigaction layout and signal numbers to this target first");

/// Linux signal numbers (the same on every architecture Rust's std supports for Linux
/// except MIPS/SPARC, which have other SIGCHLD values).
const SIGINT: c_int = 2;
const SIGTERM: c_int = 15;
const SIGCHLD: c_int = 17;
/// `sa_flags`: no SIGCHLD when a child merely stops.
const SA_NOCLDSTOP: c_int = 1;
/// `waitpid` option: do not block.
const WNOHANG: c_int = 1;

/// glibc's `struct sigaction` on Linux (x86_64, aarch64, riscv64, …): the handler, a
/// 1024-bit signal mask, the flags, the restorer.
#[repr(C)]
struct SigAction {
    sa_handler: extern "C" fn(c_int),
    sa_mask: [u64; 16],
    sa_flags: c_int,
    sa_restorer: *const c_void,
}

extern "C" {
    fn sigaction(signum: c_int, act: *const SigAction, oldact: *mut SigAction) -> c_int;
    fn pause() -> c_int;
    fn waitpid(pid: c_int, status: *mut c_int, options: c_int) -> c_int;
    fn psignal(sig: c_int, s: *const c_char);
    fn exit(status: c_int) -> !;
}

extern "C" fn sigdown(signo: c_int) {
    // SAFETY: a NUL-terminated static string; psignal and exit are what upstream calls
    // from this handler too.
    unsafe {
        psignal(signo, c"Shutting down, got signal".as_ptr());
        exit(0);
    }
}

extern "C" fn sigreap(_signo: c_int) {
    // SAFETY: waitpid with a null status pointer is allowed and async-signal-safe.
    while unsafe { waitpid(-1, std::ptr::null_mut(), WNOHANG) } > 0 {}
}

/// Installs `handler` for `signo` with an empty mask; false when sigaction fails.
fn install(signo: c_int, handler: extern "C" fn(c_int), flags: c_int) -> bool {
    let action = SigAction {
        sa_handler: handler,
        sa_mask: [0; 16],
        sa_flags: flags,
        sa_restorer: std::ptr::null(),
    };
    // SAFETY: `action` is a valid, initialised struct sigaction that outlives the call;
    // the old action is not wanted (null).
    unsafe { sigaction(signo, &action, std::ptr::null_mut()) == 0 }
}

fn main() {
    if std::env::args()
        .skip(1)
        .any(|a| a.eq_ignore_ascii_case("-v"))
    {
        println!(
            "pause.rs {}",
            option_env!("PAUSE_VERSION").unwrap_or("HEAD")
        );
        return;
    }
    if std::process::id() != 1 {
        // Not an error because pause sees use outside of infra containers.
        eprintln!("Warning: pause should be the first process");
    }
    if !install(SIGINT, sigdown, 0) {
        std::process::exit(1);
    }
    if !install(SIGTERM, sigdown, 0) {
        std::process::exit(2);
    }
    if !install(SIGCHLD, sigreap, SA_NOCLDSTOP) {
        std::process::exit(3);
    }
    loop {
        // SAFETY: pause has no preconditions; it returns after each handled signal.
        unsafe {
            pause();
        }
    }
}
