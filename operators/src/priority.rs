//! CPU priority of ctrflow's own threads against librdkafka's.
//!
//! When the CPU is saturated (ingest drains a backlog; a broker, a sidecar or another job shares
//! the host) ctrflow's CPU-heavy work (decoding, Parquet encoding, training: all on tokio's worker
//! and blocking threads) should be the work that waits, not librdkafka's network threads: those
//! send the next fetch, the group heartbeats and the commits, and while they wait for a core the
//! broker has nothing to serve. So the binary lowers the priority of its tokio threads as they
//! start ([`set_current_thread_niceness`], `[runtime] worker-niceness`), and librdkafka clients and
//! the Kafka poll thread are created through [`at_base_priority`], on a thread that kept the
//! process's own priority: a Linux thread inherits the niceness of the thread that creates it, and
//! librdkafka starts its threads inside `rd_kafka_new` (later ones from those).
//!
//! Linux keeps niceness per thread (`setpriority(PRIO_PROCESS, 0, n)` changes the calling
//! thread only). Raising it needs no privilege; lowering it again does, which is why the
//! base-priority thread must be started before any thread is reniced
//! ([`start_base_priority_thread`], from `main`). On other systems both are no-ops.

use std::sync::OnceLock;
use std::sync::mpsc;

/// A job for the base-priority thread.
type Job = Box<dyn FnOnce() + Send>;

/// The queue of the thread started by [`start_base_priority_thread`].
static BASE_PRIORITY: OnceLock<mpsc::Sender<Job>> = OnceLock::new();

/// Starts the thread [`at_base_priority`] runs its jobs on, at the calling thread's priority.
/// Call it once from `main` before any thread is reniced; later calls do nothing.
pub fn start_base_priority_thread() -> std::io::Result<()> {
    if BASE_PRIORITY.get().is_some() {
        return Ok(());
    }
    let (tx, rx) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("ctrflow-base-prio".into())
        .spawn(move || {
            for job in rx {
                job();
            }
        })?;
    // A concurrent first call may have won: its thread serves, this one ends with `tx`.
    let _ = BASE_PRIORITY.set(tx);
    Ok(())
}

/// Runs `f` on the base-priority thread and returns its result, so threads `f` creates (such
/// as librdkafka's) keep the process's priority however the caller was reniced. Without that
/// thread (a library user that never started it) `f` runs on the calling thread. A panic in
/// `f` resumes on the calling thread; the base-priority thread carries on.
pub fn at_base_priority<T, F>(f: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let Some(queue) = BASE_PRIORITY.get() else {
        return f();
    };
    let (reply, result) = mpsc::sync_channel(1);
    let job: Job = Box::new(move || {
        let _ = reply.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    });
    if let Err(mpsc::SendError(job)) = queue.send(job) {
        // The thread is gone (it cannot be, short of process teardown): run the job here.
        job();
    }
    match result.recv() {
        Ok(Ok(value)) => value,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(mpsc::RecvError) => panic!("the base-priority thread dropped a job"),
    }
}

/// The niceness `increment` steps below the calling thread's priority (capped at 19, the
/// lowest): what `main` computes once for the worker threads.
pub fn niceness_below_current(increment: u8) -> std::io::Result<i32> {
    Ok((current_thread_niceness()? + i32::from(increment)).min(19))
}

/// Sets the calling thread's niceness to `niceness` unless it is there already. A thread that
/// starts another passes its niceness on, so a pool's threads set the same absolute value
/// rather than adding to what they inherited. Raising niceness needs no privilege; lowering it
/// does.
pub fn set_current_thread_niceness(niceness: i32) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    if current_thread_niceness()? != niceness {
        rustix::process::setpriority_process(None, niceness)?;
    }
    Ok(())
}

/// The calling thread's niceness (-20 highest priority .. 19 lowest); 0 off Linux.
pub fn current_thread_niceness() -> std::io::Result<i32> {
    #[cfg(target_os = "linux")]
    {
        Ok(rustix::process::getpriority_process(None)?)
    }
    #[cfg(not(target_os = "linux"))]
    {
        Ok(0)
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn niceness() -> i32 {
        current_thread_niceness().expect("niceness")
    }

    fn on_new_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::spawn(f).join().expect("join")
    }

    /// The thread under test is lowered; work sent through `at_base_priority`, and threads
    /// that work starts, run at the priority the process started with.
    #[test]
    fn base_priority_work_and_its_threads_keep_the_original_niceness() {
        // The test harness's own threads run at the process's niceness; start from one.
        let base = niceness();
        start_base_priority_thread().expect("start the thread");
        let target = niceness_below_current(5).expect("target");
        let seen = on_new_thread(move || {
            set_current_thread_niceness(target).expect("lower");
            let mine = niceness();
            let child_of_lowered = on_new_thread(niceness);
            let (at_base, child_of_base) =
                at_base_priority(|| (niceness(), on_new_thread(niceness)));
            (mine, child_of_lowered, at_base, child_of_base)
        });
        assert_eq!(target, (base + 5).min(19));
        assert_eq!(seen.0, target, "the lowered thread");
        assert_eq!(seen.1, target, "a thread it starts inherits it");
        assert_eq!(seen.2, base, "work sent to the base-priority thread");
        assert_eq!(seen.3, base, "a thread that work starts");
    }

    /// A pool thread started by an already lowered thread ends at the same niceness, not
    /// lowered twice (tokio's blocking threads are started by its lowered workers).
    #[test]
    fn setting_an_inherited_niceness_again_changes_nothing() {
        let target = niceness_below_current(3).expect("target");
        let (worker, started_by_worker) = on_new_thread(move || {
            set_current_thread_niceness(target).expect("worker");
            let started = on_new_thread(move || {
                set_current_thread_niceness(target).expect("its thread");
                niceness()
            });
            (niceness(), started)
        });
        assert_eq!((worker, started_by_worker), (target, target));
    }

    #[test]
    fn the_target_is_capped_at_19_and_zero_steps_is_the_current_niceness() {
        assert_eq!(niceness_below_current(0).expect("target"), niceness());
        let capped = on_new_thread(|| {
            set_current_thread_niceness(niceness_below_current(19).expect("target"))
                .expect("lower");
            niceness_below_current(19).expect("target again")
        });
        assert_eq!(capped, 19);
    }

    #[test]
    fn a_panic_in_base_priority_work_reaches_the_caller_and_the_thread_carries_on() {
        start_base_priority_thread().expect("start the thread");
        let caught = std::panic::catch_unwind(|| at_base_priority(|| panic!("boom")));
        assert!(caught.is_err());
        assert_eq!(at_base_priority(|| 41 + 1), 42);
    }
}
