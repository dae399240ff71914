//! A directory tree read only beneath its root: every file and directory is opened relative to
//! the root's descriptor without following a symbolic link anywhere on the way, so nothing
//! outside the tree is listed or read, also when a link is swapped in after the listing.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

/// openat2(2)'s `struct open_how` (linux/openat2.h, the first version).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// Opens `rel` (`/`-separated, no empty, `.` or `..` segment) beneath the directory `root`
/// with `flags`, following no symbolic link: openat2 with `RESOLVE_BENEATH |
/// RESOLVE_NO_SYMLINKS`, or where the kernel has no openat2 (before Linux 5.6, or a seccomp
/// filter refuses it) one `openat(O_NOFOLLOW)` per segment. A link on the way fails with
/// `ELOOP` ([`is_link`]).
pub fn open(root: &File, rel: &str, flags: libc::c_int) -> io::Result<OwnedFd> {
    if rel.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{rel:?} is not a relative path")));
    }
    match openat2(root, rel, flags) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => open_by_segment(root, rel, flags),
        other => other,
    }
}

/// Whether `e` says a symbolic link was on the way.
pub fn is_link(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ELOOP)
}

fn c_string(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("{s:?} holds a NUL byte")))
}

fn owned(fd: RawFd) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a non-negative result of open is a new descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn openat2(root: &File, rel: &str, flags: libc::c_int) -> io::Result<OwnedFd> {
    let path = c_string(rel)?;
    let how = OpenHow {
        flags: u64::from((flags | libc::O_CLOEXEC).unsigned_abs()),
        mode: 0,
        resolve: libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: `path` is NUL-terminated and `how` an open_how of the size passed; the kernel
    // reads both during the call only.
    let fd = unsafe {
        libc::syscall(libc::SYS_openat2, root.as_raw_fd(), path.as_ptr(), &how as *const OpenHow, size_of::<OpenHow>())
    };
    owned(RawFd::try_from(fd).unwrap_or(-1))
}

/// `rel` one segment at a time, each opened with `O_NOFOLLOW` relative to the one before.
fn open_by_segment(root: &File, rel: &str, flags: libc::c_int) -> io::Result<OwnedFd> {
    let mut segments = rel.split('/').peekable();
    let mut dir: Option<OwnedFd> = None;
    while let Some(segment) = segments.next() {
        let at = dir.as_ref().map_or(root.as_raw_fd(), AsRawFd::as_raw_fd);
        if segments.peek().is_none() {
            return openat(at, segment, flags | libc::O_NOFOLLOW);
        }
        // A link opened with O_PATH | O_NOFOLLOW is the link itself: refused as openat2 would.
        let step = File::from(openat(at, segment, libc::O_PATH | libc::O_NOFOLLOW)?);
        if step.metadata()?.file_type().is_symlink() {
            return Err(io::Error::from_raw_os_error(libc::ELOOP));
        }
        dir = Some(step.into());
    }
    dir.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "an empty path"))
}

fn openat(dir: RawFd, name: &str, flags: libc::c_int) -> io::Result<OwnedFd> {
    let name = c_string(name)?;
    // SAFETY: `name` is NUL-terminated; `dir` is a descriptor the caller holds open.
    owned(unsafe { libc::openat(dir, name.as_ptr(), flags | libc::O_CLOEXEC) })
}

/// The regular file `rel` beneath `root`, opened for reading as [`open`] does (a FIFO or
/// device is refused, without waiting on it).
pub fn open_file(root: &File, rel: &str) -> io::Result<File> {
    let file = File::from(open(root, rel, libc::O_RDONLY | libc::O_NONBLOCK)?);
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
    }
    Ok(file)
}

/// What an entry of a directory is, as it is (a link is [`Kind::Other`], never followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub kind: Kind,
    pub size: u64,
    pub mtime_ms: i64,
    /// Inode and change time (nanoseconds): together they change with every write, also one
    /// that keeps the size and sets the modification time back.
    pub ino: u64,
    pub ctime_ns: i64,
}

/// An open directory stream.
struct Dir(*mut libc::DIR);

impl Drop for Dir {
    fn drop(&mut self) {
        // SAFETY: the stream came from fdopendir and is closed once, here.
        unsafe { libc::closedir(self.0) };
    }
}

/// The entries of the directory `rel` beneath `root` (`""`: the root itself), opened as
/// [`open`] does, each with its status or why it has none.
pub fn entries(root: &File, rel: &str) -> io::Result<Vec<(OsString, io::Result<Status>)>> {
    let flags = libc::O_RDONLY | libc::O_DIRECTORY;
    let fd = if rel.is_empty() { openat(root.as_raw_fd(), ".", flags)? } else { open(root, rel, flags)? };
    let raw = fd.as_raw_fd();
    // SAFETY: on success the stream owns the descriptor (closed by closedir), so it is
    // released from `fd` only then.
    let stream = unsafe { libc::fdopendir(raw) };
    if stream.is_null() {
        return Err(io::Error::last_os_error());
    }
    std::mem::forget(fd);
    let dir = Dir(stream);
    let mut out = Vec::new();
    loop {
        // SAFETY: errno is this thread's; clearing it tells the stream's end from an error.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: `dir.0` is an open stream; the entry stays valid until the next readdir.
        let entry = unsafe { libc::readdir(dir.0) };
        if entry.is_null() {
            let e = io::Error::last_os_error();
            return if e.raw_os_error() == Some(0) { Ok(out) } else { Err(e) };
        }
        // SAFETY: d_name is NUL-terminated within the entry.
        let name = unsafe { CStr::from_ptr((*entry).d_name.as_ptr()) };
        if matches!(name.to_bytes(), b"." | b"..") {
            continue;
        }
        let status = stat(&dir, name);
        out.push((OsStr::from_bytes(name.to_bytes()).to_owned(), status));
    }
}

/// The status of `name` in `dir`, not following a link.
fn stat(dir: &Dir, name: &CStr) -> io::Result<Status> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `dir.0` is an open stream, `name` NUL-terminated, `st` large enough.
    let rc = unsafe { libc::fstatat(libc::dirfd(dir.0), name.as_ptr(), st.as_mut_ptr(), libc::AT_SYMLINK_NOFOLLOW) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstatat succeeded, so it filled `st`.
    let st = unsafe { st.assume_init() };
    let kind = match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => Kind::Dir,
        libc::S_IFREG => Kind::File,
        _ => Kind::Other,
    };
    Ok(Status {
        kind,
        size: u64::try_from(st.st_size).unwrap_or(0),
        // Before 1970 counts as 1970.
        mtime_ms: st.st_mtime.saturating_mul(1000).saturating_add(st.st_mtime_nsec / 1_000_000).max(0),
        ino: st.st_ino,
        ctime_ns: st.st_ctime.saturating_mul(1_000_000_000).saturating_add(st.st_ctime_nsec),
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    /// root/{a.txt, d/b.txt, link.txt -> outside/x.txt, dlink -> outside}, outside/x.txt.
    fn trees() -> (std::path::PathBuf, File) {
        let base =
            std::env::temp_dir().join(format!("beneath-{}-{:?}", std::process::id(), std::thread::current().id()));
        let _ = std::fs::remove_dir_all(&base);
        let (root, outside) = (base.join("root"), base.join("outside"));
        std::fs::create_dir_all(root.join("d")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(root.join("a.txt"), "a").unwrap();
        std::fs::write(root.join("d/b.txt"), "b").unwrap();
        std::fs::write(outside.join("x.txt"), "secret").unwrap();
        std::fs::write(outside.join("b.txt"), "secret").unwrap();
        symlink(outside.join("x.txt"), root.join("link.txt")).unwrap();
        symlink(&outside, root.join("dlink")).unwrap();
        let dir = File::open(&root).unwrap();
        (base, dir)
    }

    fn read(fd: OwnedFd) -> String {
        std::io::read_to_string(File::from(fd)).unwrap()
    }

    #[test]
    fn files_open_beneath_the_root_and_links_on_the_way_are_refused() {
        let (base, root) = trees();
        type Opener = fn(&File, &str, libc::c_int) -> io::Result<OwnedFd>;
        // openat2, and the fallback for kernels without it, alike.
        for open in [open as Opener, open_by_segment as Opener] {
            assert_eq!(read(open(&root, "a.txt", libc::O_RDONLY).unwrap()), "a");
            assert_eq!(read(open(&root, "d/b.txt", libc::O_RDONLY).unwrap()), "b");
            for through_a_link in ["link.txt", "dlink/x.txt", "dlink/b.txt"] {
                let e = open(&root, through_a_link, libc::O_RDONLY).unwrap_err();
                assert!(is_link(&e), "{through_a_link}: {e}");
            }
        }
        for bad in ["", "../outside/x.txt", "d/../a.txt", "./a.txt", "d//b.txt", "/etc/passwd"] {
            assert_eq!(open(&root, bad, libc::O_RDONLY).unwrap_err().kind(), io::ErrorKind::InvalidInput, "{bad}");
        }
        let _ = std::fs::remove_dir_all(base);
    }

    #[test]
    fn a_listing_shows_links_as_links_and_refuses_to_enter_one() {
        let (base, root) = trees();
        let mut listed: Vec<(String, Kind)> = entries(&root, "")
            .unwrap()
            .into_iter()
            .map(|(name, status)| (name.into_string().unwrap(), status.unwrap().kind))
            .collect();
        listed.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            listed,
            [
                ("a.txt".to_owned(), Kind::File),
                ("d".to_owned(), Kind::Dir),
                ("dlink".to_owned(), Kind::Other),
                ("link.txt".to_owned(), Kind::Other)
            ]
        );
        let (name, status) = entries(&root, "d").unwrap().pop().unwrap();
        assert_eq!((name.to_str().unwrap(), status.unwrap().size), ("b.txt", 1));
        assert!(is_link(&entries(&root, "dlink").unwrap_err()));
        let _ = std::fs::remove_dir_all(base);
    }

    #[test]
    fn only_regular_files_are_read() {
        let (base, root) = trees();
        assert_eq!(open_file(&root, "d").unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert!(is_link(&open_file(&root, "link.txt").unwrap_err()));
        assert_eq!(std::io::read_to_string(open_file(&root, "a.txt").unwrap()).unwrap(), "a");
        let _ = std::fs::remove_dir_all(base);
    }
}
