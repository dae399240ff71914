//! Rewrites the change time can tell and size and modification time cannot (issue 19, part 5).
//! Not in `common`: the migration worker's tests share that, and these need `libc`.

use std::path::Path;

/// Returns once a write to `path` would get a later change time than its last change: the
/// kernel stamps change times from its coarse clock (a few ms a tick), and a test's rewrite
/// must come in a later tick, as a real one would.
pub fn after_a_ctime_tick(path: &Path) {
    let ctime_ns = |p: &Path| {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(p).unwrap();
        i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec())
    };
    let coarse_now_ns = || {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `ts` is a valid timespec for the call to fill.
        unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
        i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
    };
    let last_change = ctime_ns(path);
    while coarse_now_ns() <= last_change {
        std::thread::yield_now();
    }
}

/// Rewrites `path` in place (same inode) with one byte flipped, keeping its size and
/// modification time: only the change time tells.
pub fn rewrite_keeping_size_and_mtime(path: &Path) {
    after_a_ctime_tick(path);
    let mtime = std::fs::metadata(path).unwrap().modified().unwrap();
    let mut bytes = std::fs::read(path).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(path, &bytes).unwrap();
    std::fs::File::options().write(true).open(path).unwrap().set_modified(mtime).unwrap();
}
