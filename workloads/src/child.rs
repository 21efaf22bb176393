//! Child processes that do not outlive the process that started them: the harness's servers
//! and drivers, and the S3 test cluster (`garage`).

use std::process::Command;

/// Makes the child receive SIGTERM when the thread that spawns it ends, which includes this
/// process being killed with SIGKILL: a server, driver or cluster left behind would go on
/// using CPU and disk under the next run. The caller must keep the spawning thread alive for
/// as long as the child should run (the harness's runner starts and stops servers and drivers
/// on one thread; `Garage` spawns its script from a thread of its own).
pub fn stop_with_parent(cmd: &mut Command) {
    // SAFETY: the closure runs between fork and exec; prctl is async-signal-safe and touches
    // no memory of the parent.
    let parent = std::process::id();
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(cmd, move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent died before the signal was armed: do not start at all. (ESRCH, "no
            // such process", because nothing may allocate between fork and exec.)
            if libc::getppid() as u32 != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}
