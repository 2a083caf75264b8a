//! nginx in front of test servers: [`Nginx`] stops it through its master (SIGTERM, then
//! SIGKILL), so no orphaned worker keeps running with the descriptors it inherited (the test
//! runner's included); [`free_port`] for its listener.

use std::process::Child;
use std::time::Duration;

/// A running nginx and its prefix directory (removed when it stops, unless a test failed).
pub struct Nginx {
    pub url: String,
    pub child: Child,
    pub prefix: std::path::PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        for _ in 0..250 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.prefix);
        }
    }
}

/// A TCP port free on the loopback now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
