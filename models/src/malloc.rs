//! glibc malloc settings for training processes.
//!
//! burn allocates a fresh buffer for every tensor an operation produces: per A-CTR step hundreds
//! of buffers of 0.1-30 MB. With glibc's defaults the large ones are `mmap`ed and unmapped again
//! each time, and the heap top is trimmed back to the kernel, so every step faults its working
//! set back in page by page (a quarter of the step in the kernel's page-fault path). Serving
//! those sizes from the heap and keeping the freed top made the A-CTR step 1.4x faster on flex
//! (docs/benchmarks.md).
//!
//! Keeping freed memory is right inside a job and wrong between jobs: a daily run trains
//! several models one after the other, and what one job freed stayed resident (fragmented
//! across the arenas) under the next one, so peak RSS grew job by job while the live heap did
//! not (docs/benchmarks.md, the backfill section). The daily runner calls
//! [`release_freed_memory`] after every job.
//!
//! glibc reads its `MALLOC_*` variables once, at start-up, and the crate forbids `unsafe`
//! (`mallopt` is an FFI call), so the training commands re-execute the program once with the
//! variables added to the environment: [`reexec_with_training_malloc`]. Variables the operator
//! set are left as they are; `CTRFLOW_MALLOC_TUNING=off` turns the whole thing off.

/// The settings, as glibc environment variables: two arenas (memory freed on one thread is
/// reused by the others, so peak memory stays flat over a backfill), heap allocation up to
/// 32 MiB instead of `mmap`, and up to 1 GiB of freed heap top kept (plus 64 MiB of padding on
/// each growth) instead of being returned and faulted in again. Transparent huge pages for
/// malloc's memory (`GLIBC_TUNABLES=glibc.malloc.hugetlb=1`) were measured and left out: an
/// A-CTR step on flex gained 2-10% (docs/benchmarks.md); an operator may still set it.
pub const TRAINING_MALLOC_ENV: [(&str, &str); 4] = [
    ("MALLOC_ARENA_MAX", "2"),
    ("MALLOC_MMAP_THRESHOLD_", "33554432"),
    ("MALLOC_TRIM_THRESHOLD_", "1073741824"),
    ("MALLOC_TOP_PAD_", "67108864"),
];

/// The variables of [`TRAINING_MALLOC_ENV`] as this process sees them (`KEY=value`, space
/// separated, unset ones left out): what is in effect, the operator's own values included.
pub fn settings_in_effect() -> String {
    TRAINING_MALLOC_ENV
        .iter()
        .filter_map(|(key, _)| {
            let value = std::env::var_os(key)?;
            Some(format!("{key}={}", value.to_string_lossy()))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Set in the re-executed process, so that it does not re-execute again.
pub const TUNED_MARKER: &str = "CTRFLOW_MALLOC_TUNED";

/// Whether this process should re-execute itself: a glibc Linux target, not re-executed yet,
/// not turned off with `CTRFLOW_MALLOC_TUNING=off`.
pub fn should_reexec() -> bool {
    cfg!(all(target_os = "linux", target_env = "gnu"))
        && std::env::var_os(TUNED_MARKER).is_none()
        && std::env::var("CTRFLOW_MALLOC_TUNING").map_or(true, |v| v != "off")
}

/// Replaces the process with the same program and arguments, with [`TRAINING_MALLOC_ENV`]
/// (the variables not already set) in its environment. Returns `Ok(())` without doing
/// anything when [`should_reexec`] says no; otherwise it returns only if `exec` failed, with the
/// error (the caller can go on untuned).
#[cfg(unix)]
pub fn reexec_with_training_malloc() -> std::io::Result<()> {
    use std::os::unix::process::CommandExt;
    if !should_reexec() {
        return Ok(());
    }
    let mut args = std::env::args_os();
    let mut command = std::process::Command::new(std::env::current_exe()?);
    if let Some(arg0) = args.next() {
        command.arg0(arg0);
    }
    command.args(args);
    for (key, value) in TRAINING_MALLOC_ENV {
        if std::env::var_os(key).is_none() {
            command.env(key, value);
        }
    }
    command.env(TUNED_MARKER, "1");
    Err(command.exec())
}

/// Non-Unix targets have no glibc: nothing to do.
#[cfg(not(unix))]
pub fn reexec_with_training_malloc() -> std::io::Result<()> {
    Ok(())
}

/// Returns the memory glibc holds free in every arena to the kernel (`malloc_trim(0)`: the free
/// top of each heap and the free pages inside it), and reports whether anything was released.
/// Live allocations are untouched. Call it between jobs, not in a hot loop: glibc locks each
/// arena while it walks it. Other allocators and platforms: nothing to do, `false`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[expect(unsafe_code, reason = "glibc's malloc_trim has no Rust binding")]
pub fn release_freed_memory() -> bool {
    // SAFETY: malloc_trim takes no pointers and only walks glibc's own free lists, under the
    // same arena locks every malloc and free takes.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Other allocators and platforms: nothing to do.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_freed_memory() -> bool {
    false
}

/// This process's resident set in bytes (`VmRSS` in `/proc/self/status`), where Linux reports
/// it.
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(kib * 1024)
}
