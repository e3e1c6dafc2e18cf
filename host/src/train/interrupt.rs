//! Stopping a training cleanly when the process is asked to stop: Slurm's SIGTERM (`scancel`,
//! pre-emption, `scontrol requeue`, the time limit) or the early warning a job asks for with
//! `sbatch --signal=B:USR1@SECONDS`.
//!
//! [`install`] replaces the default action of SIGTERM and SIGUSR1 with a handler that only
//! records the signal. The training loop asks [`requested`] after every optimizer step and then
//! returns [`super::TrainError::Interrupted`] without writing anything: the run folder still holds
//! its last committed epoch (see [`super::checkpoint`]), which `--resume` continues exactly. An
//! interruption therefore loses at most the epoch in progress. The handlers are one-shot
//! (`SA_RESETHAND`): a second signal ends the process the default way, so a process that never
//! reaches a step boundary can still be stopped.
//!
//! Only processes that call [`install`] (the tasks of `dermo sweep --executor slurm`) change;
//! everywhere else the signals keep their default action.

use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

/// The signal received, 0 for none.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

/// Why a training was asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM: Slurm is ending the job (cancel, pre-emption, requeue or the time limit).
    Terminate,
    /// SIGUSR1: the job's time limit is near (`sbatch --signal=B:USR1@…`); the job should
    /// requeue itself to continue.
    TimeLimitNear,
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stop::Terminate => "SIGTERM",
            Stop::TimeLimitNear => "SIGUSR1",
        })
    }
}

extern "C" fn record(signal: libc::c_int) {
    RECEIVED.store(signal, Ordering::SeqCst);
}

/// Makes SIGTERM and SIGUSR1 stop trainings at the next step boundary instead of ending the
/// process (once: a second signal ends it).
pub fn install() -> std::io::Result<()> {
    for signal in [libc::SIGTERM, libc::SIGUSR1] {
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; the handler only
        // stores into an atomic, which is async-signal-safe.
        let rc = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = record as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESETHAND;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Whether a stop was asked for since [`install`].
pub fn requested() -> Option<Stop> {
    match RECEIVED.load(Ordering::SeqCst) {
        libc::SIGTERM => Some(Stop::Terminate),
        libc::SIGUSR1 => Some(Stop::TimeLimitNear),
        _ => None,
    }
}

/// Blocks until a stop is asked for.
pub fn wait() -> Stop {
    loop {
        if let Some(stop) = requested() {
            return stop;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
