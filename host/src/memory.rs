//! Giving the system back the memory that compiling plugins used.
//!
//! Cranelift allocates a lot while it compiles a component and frees nearly all of it, but
//! glibc keeps freed pages in its arenas (one per compiling thread) rather than returning them:
//! a host that compiled five plugins on its first start stayed 15 to 290 MiB above the same
//! host started with the compiled-code cache filled (BENCHMARKS.md, "Memory on a first
//! start"). `malloc_trim(0)` hands the whole free pages of every arena back.
//!
//! The `host` binary allocates with mimalloc (src/main.rs), which gives freed pages back by
//! itself; this is for the library on glibc's allocator (its tests, an embedding program).

/// Returns the allocator's free pages to the system. Call it after compiling, never on a hot
/// path: glibc walks and locks every arena in turn. Does nothing off glibc (musl, macOS and
/// Windows allocators have no such call).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub(crate) fn give_back_freed_memory() {
    // SAFETY: malloc_trim takes no pointer and has no precondition; glibc serialises it with
    // every other allocator call (it is MT-Safe).
    let released = unsafe { libc::malloc_trim(0) } == 1;
    tracing::debug!(released, "gave the allocator's free pages back to the system");
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn give_back_freed_memory() {}
