//! The instance-wide record of which databases have a serving worker, kept as small JSON files
//! in `$PGDATA/pg_flink/` (files survive a crash restart and are copied by pg_basebackup; the
//! launcher, connected to no database, cannot read any database's catalog).
//!
//! `db_<oid>.json` exists while a database's worker serves pg_flink there: its name, the
//! worker's pid, and the REST URLs of the database's clusters (what the launcher needs to stop
//! the database's jobs once the database is dropped). `db_<oid>.dropping` is the same file
//! renamed by DROP DATABASE, so the launcher does not restart the worker it just terminated.
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// One database's entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub oid: u32,
    pub name: String,
    pub pid: i32,
    pub clusters: Vec<String>,
}

fn dir() -> Option<PathBuf> {
    // SAFETY: DataDir is set by the postmaster before any backend or worker starts and never
    // changes afterwards; it is a NUL-terminated string (or NULL, handled).
    let data = unsafe { pgrx::pg_sys::DataDir };
    if data.is_null() {
        return None;
    }
    // SAFETY: non-NULL, NUL-terminated, alive for the whole process (see above).
    let data = unsafe { std::ffi::CStr::from_ptr(data) };
    Some(PathBuf::from(data.to_string_lossy().into_owned()).join("pg_flink"))
}

fn path(oid: u32, ext: &str) -> Option<PathBuf> {
    dir().map(|d| d.join(format!("db_{oid}.{ext}")))
}

/// Writes (or replaces, atomically) the entry of a served database.
pub fn write(e: &Entry) {
    let (Some(d), Some(p)) = (dir(), path(e.oid, "json")) else {
        return;
    };
    let tmp = d.join(format!("db_{}.tmp", e.oid));
    let ok = std::fs::create_dir_all(&d)
        .and_then(|_| std::fs::write(&tmp, serde_json::to_vec(e).unwrap_or_default()))
        .and_then(|_| std::fs::rename(&tmp, &p));
    if let Err(err) = ok {
        pgrx::warning!("pg_flink: cannot write {}: {err}", p.display());
    }
}

fn read_path(p: &PathBuf) -> Option<Entry> {
    serde_json::from_slice(&std::fs::read(p).ok()?).ok()
}

/// The entry of a served database, if any.
pub fn read(oid: u32) -> Option<Entry> {
    read_path(&path(oid, "json")?)
}

/// Removes a database's entry (its pg_flink is gone and its jobs were stopped).
pub fn remove(oid: u32) {
    for ext in ["json", "dropping"] {
        if let Some(p) = path(oid, ext) {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// DROP DATABASE is about to run: keep the entry, but mark it so the launcher does not restart
/// the worker. Returns the entry.
pub fn mark_dropping(oid: u32) -> Option<Entry> {
    let (from, to) = (path(oid, "json")?, path(oid, "dropping")?);
    let e = read_path(&from)?;
    std::fs::rename(from, to).ok()?;
    Some(e)
}

/// A DROP DATABASE that did not happen (the database is still there): serve it again.
pub fn unmark_dropping(oid: u32) {
    if let (Some(from), Some(to)) = (path(oid, "dropping"), path(oid, "json")) {
        let _ = std::fs::rename(from, to);
    }
}

/// Every entry: (entry, marked dropping).
pub fn all() -> Vec<(Entry, bool)> {
    let Some(d) = dir() else {
        return Vec::new();
    };
    let Ok(rd) = std::fs::read_dir(d) else {
        return Vec::new();
    };
    rd.filter_map(Result::ok)
        .filter_map(|f| {
            let p = f.path();
            let dropping = p.extension().is_some_and(|x| x == "dropping");
            let json = p.extension().is_some_and(|x| x == "json");
            (dropping || json).then(|| read_path(&p).map(|e| (e, dropping)))?
        })
        .collect()
}

/// Whether a process with this pid is alive (kill with signal 0).
pub fn alive(pid: i32) -> bool {
    // SAFETY: kill(2) with signal 0 sends nothing; it only checks that the pid exists.
    pid > 0 && unsafe { libc::kill(pid, 0) } == 0
}
