//! `ctrflow_models::malloc::release_freed_memory` gives freed, fragmented heap back to the
//! kernel. Its own test binary, so no other test allocates in the process meanwhile.

use ctrflow_models::malloc::{release_freed_memory, resident_bytes};

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn freed_fragmented_heap_is_returned_to_the_kernel() {
    const CHUNK: usize = 64 * 1024; // below glibc's mmap threshold: served from the heap
    const CHUNKS: usize = 4096; // 256 MiB
    let start = resident_bytes().expect("VmRSS");
    let mut chunks: Vec<Vec<u8>> = (0..CHUNKS)
        .map(|i| vec![(i % 251) as u8 + 1; CHUNK])
        .collect();
    let filled = resident_bytes().expect("VmRSS");
    assert!(
        filled > start + 200 * (1 << 20),
        "the chunks are resident: {start} -> {filled}"
    );
    // Free all but every 64th chunk: the survivors pin the heap, so trimming only its top
    // cannot give the holes back.
    let mut index = 0;
    chunks.retain(|_| {
        index += 1;
        index % 64 == 0
    });
    let fragmented = resident_bytes().expect("VmRSS");
    assert!(release_freed_memory(), "glibc reports nothing released");
    let released = resident_bytes().expect("VmRSS");
    assert!(
        released + 150 * (1 << 20) < fragmented,
        "RSS {fragmented} -> {released} bytes after releasing ~250 MiB of freed chunks"
    );
    // The live chunks are untouched.
    assert_eq!(chunks.len(), CHUNKS / 64);
    for (j, chunk) in chunks.iter().enumerate() {
        let original = (j + 1) * 64 - 1;
        assert!(chunk.iter().all(|&b| b == (original % 251) as u8 + 1));
    }
}
