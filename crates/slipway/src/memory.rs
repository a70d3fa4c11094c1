//! glibc malloc settings for the long-running server.
//!
//! With glibc's defaults the server kept 60-90 MiB resident after large metric-history and
//! registry pages: each response body (several MiB of JSON) is freed into one of up to
//! 8 x cores per-thread arenas, and glibc's dynamic mmap threshold has by then grown so that
//! such buffers come from a heap, which goes back to the OS only when its top is free. A fixed
//! mmap threshold keeps large buffers in their own mappings (unmapped on free), a fixed trim
//! threshold returns freed heap tops, and fewer arenas bound what stays fragmented.
//!
//! The workspace forbids `unsafe`, so instead of `mallopt` the settings go through glibc's
//! tunables, which glibc reads only at process start: the server re-executes itself (same
//! pid, same arguments) with `GLIBC_TUNABLES` set, unless the operator already set it.

/// Allocations of 256 KiB or more get their own mapping; heap tops over 1 MiB free are
/// trimmed; 4 arenas are enough that tokio workers and database threads seldom contend.
const TUNABLES: &str =
    "glibc.malloc.mmap_threshold=262144:glibc.malloc.trim_threshold=1048576:glibc.malloc.arena_max=4";

/// Re-executes this process with [`TUNABLES`]; returns only when the settings are already in
/// effect (or were chosen by the operator) or the re-exec failed (the server then runs with
/// glibc's defaults). Call before any thread is started.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn tune() {
    use std::os::unix::process::CommandExt;
    if std::env::var_os("GLIBC_TUNABLES").is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else { return };
    let mut args = std::env::args_os();
    let mut cmd = std::process::Command::new(exe);
    if let Some(arg0) = args.next() {
        cmd.arg0(arg0);
    }
    let err = cmd.args(args).env("GLIBC_TUNABLES", TUNABLES).exec();
    eprintln!("slipway: could not apply malloc settings (re-exec failed: {err}); using glibc's defaults");
}

/// Other C libraries: nothing to tune.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn tune() {}
