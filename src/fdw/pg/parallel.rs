//! Parallel foreign scans: IsForeignScanParallelSafe and the DSM callbacks
//! (Estimate/Initialize/ReInitialize DSM, InitializeWorker, Shutdown), and a participant's
//! loop over the work units it claims.
//!
//! ## Design
//!
//! - **One snapshot.** In EstimateDSMForeignScan the leader resolves the request once
//!   ([`Scan::units`]: for Kafka, the partition ranges up to the high watermarks at that
//!   moment, split into units) and keeps the units; InitializeDSMForeignScan writes them into
//!   the scan's DSM chunk as a fixed array, with an atomic next-unit counter, before any
//!   worker is launched. Nothing else is shared: each participant opens its own remote scan.
//! - **Claiming.** Every participant (the leader unless `parallel_leader_participation` is
//!   off, and each worker) takes the next unit with `pg_atomic_fetch_add_u32` and reads
//!   exactly it ([`Scan::start_unit`], then [`Scan::next`] to its end). A unit is claimed by
//!   one participant only, so every row of the snapshot is returned exactly once.
//! - **Rescans** (ReInitializeDSMForeignScan, in the leader while no worker runs) reset the
//!   counter: the same snapshot is read again (a serial scan takes a new one per rescan).
//! - **Counts.** Each worker adds the units it read and the messages it fetched to its own
//!   slot (by `ParallelWorkerNumber`) after each unit and at its ShutdownForeignScan; the
//!   leader's ShutdownForeignScan (which Postgres runs before the Gather destroys the DSM, and,
//!   when the Gather ran to completion, after every worker finished) hands them to its scan
//!   for EXPLAIN ANALYZE.
//! - **Without workers.** A Parallel Foreign Scan whose Gather runs without a DSM (a cursor,
//!   or parallel mode not available at execution) is never attached: it reads serially.
//!
//! Errors a worker raises (e.g. `on_error 'error'`) are ordinary ERRORs there; Postgres sends
//! them to the leader, which raises them with the same SQLSTATE, message and hint.
//!
//! ## The DSM chunk
//!
//! `[Header][SharedUnit; nunits][WorkerSlot; nworkers]`, all `#[repr(C)]` with 8-byte
//! alignment; `shm_toc_allocate` returns BUFFERALIGN'ed (at least 8-byte aligned) memory of
//! the size EstimateDSMForeignScan returned, which [`layout`] computes for both.
use super::scan::state;
use crate::fdw::cond::{Cond, Request};
use crate::fdw::value::Val;
use crate::fdw::{fdw_error, ParallelStats, Scan, Unit, Wrapper};
use crate::interruptible::ReportError;
use pgrx::pg_sys;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use std::ffi::c_void;
use std::mem::size_of;

#[repr(C)]
struct Header {
    /// Index of the next unclaimed unit (may run past `nunits`).
    next: pg_sys::pg_atomic_uint32,
    nunits: u32,
    nworkers: u32,
    /// 1 once the leader wrote the units.
    ready: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct SharedUnit {
    part: i32,
    _pad: i32,
    start: i64,
    end: i64,
}

#[repr(C)]
struct WorkerSlot {
    units: pg_sys::pg_atomic_uint64,
    fetched: pg_sys::pg_atomic_uint64,
}

/// Byte offsets of the units and worker slots, and the total size.
fn layout(nunits: usize, nworkers: usize) -> (usize, usize, usize) {
    let units = size_of::<Header>();
    let slots = units + nunits * size_of::<SharedUnit>();
    (units, slots, slots + nworkers * size_of::<WorkerSlot>())
}

/// This process's part in a parallel scan (in `ScanState::par`).
///
/// Invariant: `shared` is NULL, or points to the DSM chunk of this scan, initialised by the
/// leader's InitializeDSMForeignScan and mapped in this process. It is set only by the DSM
/// callbacks and cleared by ShutdownForeignScan, which Postgres runs before the chunk goes
/// (the leader's Gather destroys it after its children's shutdown and end; a worker detaches
/// after its plan ended); on an error, nothing dereferences it after the abort (this type has
/// no Drop that reads it).
pub(super) struct Participant {
    shared: *mut Header,
    /// The leader's units, from EstimateDSM until InitializeDSM writes them.
    planned: Vec<Unit>,
    nworkers: usize,
    /// This process's worker number (None: the leader).
    worker: Option<usize>,
    /// A claimed unit is being read.
    reading: bool,
    units_read: u64,
    /// What this worker added to its slot so far.
    published: (u64, u64),
}

impl Participant {
    pub(super) fn attached(&self) -> bool {
        !self.shared.is_null()
    }

    /// The next row of the units this process claims; false once none is left.
    pub(super) fn next(
        &mut self,
        scan: &mut dyn Scan,
        req: &Request,
        row: &mut [Val],
    ) -> Result<bool, ErrorReport> {
        loop {
            if self.reading {
                if scan.next(row)? {
                    return Ok(true);
                }
                self.reading = false;
                self.publish(scan);
            }
            let Some(unit) = self.claim() else {
                return Ok(false);
            };
            self.reading = true;
            self.units_read += 1;
            scan.start_unit(req, &unit)?;
        }
    }

    /// A rescan: the unit being read is abandoned (ReInitializeDSM resets the counter).
    pub(super) fn rescan(&mut self) {
        self.reading = false;
    }

    /// Takes the next unit, if any is left.
    fn claim(&mut self) -> Option<Unit> {
        if self.shared.is_null() {
            return None;
        }
        // SAFETY: `shared` is non-NULL, so by the type's invariant it points to the live,
        // initialised chunk (the leader wrote the header, units and counter before launching
        // any worker, and reads here happen after). The counter is only touched through
        // pg_atomic_* calls; `nunits` is written once before the workers start. Units are
        // read at an index below `nunits`, inside the chunk (see `layout`).
        unsafe {
            let h = self.shared;
            let n = (*h).nunits;
            let next = std::ptr::addr_of_mut!((*h).next);
            // Once the counter is past the end, stop incrementing it (no wrap-around).
            if pg_sys::pg_atomic_read_u32(next) >= n {
                return None;
            }
            let i = pg_sys::pg_atomic_fetch_add_u32(next, 1);
            if i >= n {
                return None;
            }
            let base = (h as *mut u8).add(layout(0, 0).0) as *const SharedUnit;
            let u = *base.add(i as usize);
            Some(Unit {
                part: u.part,
                start: u.start,
                end: u.end,
            })
        }
    }

    /// A worker adds what it did since the last call to its slot.
    fn publish(&mut self, scan: &dyn Scan) {
        let Some(w) = self.worker.filter(|w| *w < self.nworkers) else {
            return;
        };
        if self.shared.is_null() {
            return;
        }
        let fetched = scan.fetched();
        let du = self.units_read.saturating_sub(self.published.0);
        let df = fetched.saturating_sub(self.published.1);
        self.published = (self.units_read, fetched);
        // SAFETY: attached (invariant of the type); slot `w` is below `nworkers`, inside the
        // chunk (`layout`); slot w is written by worker w only, through atomics.
        unsafe {
            let slot = slot(self.shared, w);
            pg_sys::pg_atomic_fetch_add_u64(std::ptr::addr_of_mut!((*slot).units), du as i64);
            pg_sys::pg_atomic_fetch_add_u64(std::ptr::addr_of_mut!((*slot).fetched), df as i64);
        }
    }
}

/// Worker slot `w` of the chunk at `h`.
///
/// # Safety
/// `h` is an initialised chunk with at least `w + 1` worker slots.
unsafe fn slot(h: *mut Header, w: usize) -> *mut WorkerSlot {
    let (_, slots, _) = layout((*h).nunits as usize, 0);
    ((h as *mut u8).add(slots) as *mut WorkerSlot).add(w)
}

fn not_ready(table: &str) -> ErrorReport {
    fdw_error(
        PgSqlErrorCode::ERRCODE_FDW_ERROR,
        format!("parallel scan of foreign table {table}: the shared scan state was not initialised"),
        "Run the query without parallel workers (SET max_parallel_workers_per_gather = 0) and report this.",
    )
}

/// IsForeignScanParallelSafe: only wrappers whose scans can be shared.
///
/// # Safety
/// Called by Postgres only, with the arguments of `IsForeignScanParallelSafe_function`.
#[pg_guard]
pub(super) unsafe extern "C-unwind" fn is_parallel_safe<W: Wrapper>(
    _root: *mut pg_sys::PlannerInfo,
    _rel: *mut pg_sys::RelOptInfo,
    _rte: *mut pg_sys::RangeTblEntry,
) -> bool {
    W::PARALLEL
}

/// EstimateDSMForeignScan (leader): resolves the snapshot into units (see the module doc)
/// and returns the size of the chunk holding them.
///
/// # Safety
/// Called by Postgres only, with the arguments of `EstimateDSMForeignScan_function`, for a
/// parallel-aware scan after BeginForeignScan.
#[pg_guard]
pub(super) unsafe extern "C-unwind" fn estimate_dsm(
    node: *mut pg_sys::ForeignScanState,
    pcxt: *mut pg_sys::ParallelContext,
) -> pg_sys::Size {
    let nworkers = (*pcxt).nworkers.max(0) as usize;
    let Some(st) = state(node) else {
        return layout(0, nworkers).2;
    };
    let name = st.table.name.clone();
    // A partial path is only planned for requests without parameters (cost.rs).
    if st.req.conds.iter().any(Cond::has_params) {
        not_ready(&name).report_error();
    }
    let req = st.req.clone();
    let Some(scan) = st.scan.as_mut() else {
        return layout(0, nworkers).2;
    };
    let units = match scan.units(&req, nworkers + 1) {
        Ok(u) => u,
        Err(e) => e.report_error(),
    };
    if units.len() > u32::MAX as usize / 2 {
        fdw_error(
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            format!(
                "parallel scan of foreign table {name}: too many work units ({})",
                units.len()
            ),
            "Run the query without parallel workers (SET max_parallel_workers_per_gather = 0).",
        )
        .report_error();
    }
    let size = layout(units.len(), nworkers).2;
    st.par = Some(Participant {
        shared: std::ptr::null_mut(),
        planned: units,
        nworkers,
        worker: None,
        reading: false,
        units_read: 0,
        published: (0, 0),
    });
    size
}

/// InitializeDSMForeignScan (leader, before the workers are launched): writes the units and
/// the counter into the chunk and attaches the leader.
///
/// # Safety
/// Called by Postgres only, with the arguments of `InitializeDSMForeignScan_function`:
/// `coordinate` is a fresh chunk of the size [`estimate_dsm`] returned for this node.
#[pg_guard]
pub(super) unsafe extern "C-unwind" fn initialize_dsm(
    node: *mut pg_sys::ForeignScanState,
    pcxt: *mut pg_sys::ParallelContext,
    coordinate: *mut c_void,
) {
    let h = coordinate as *mut Header;
    let nworkers = (*pcxt).nworkers.max(0) as usize;
    let planned = state(node)
        .and_then(|st| st.par.as_mut())
        .map(|p| std::mem::take(&mut p.planned));
    let units = planned.as_deref().unwrap_or(&[]);
    // SAFETY (the writes below): `coordinate` is BUFFERALIGN'ed DSM of layout(units,
    // nworkers) bytes (what estimate_dsm returned from the same `planned` units and
    // `pcxt->nworkers`), mapped in this process; no worker runs yet, so plain writes are
    // unobserved until the launch (which orders them before the workers' reads), and every
    // atomic gets its pg_atomic_init_* here, before anyone uses it. Without planned units
    // (cannot happen: EstimateDSM always plans them) the header says not ready, and workers
    // refuse to run rather than read nothing.
    (*h).nunits = units.len() as u32;
    (*h).nworkers = nworkers as u32;
    pg_sys::pg_atomic_init_u32(std::ptr::addr_of_mut!((*h).next), 0);
    let base = (h as *mut u8).add(layout(0, 0).0) as *mut SharedUnit;
    for (i, u) in units.iter().enumerate() {
        base.add(i).write(SharedUnit {
            part: u.part,
            _pad: 0,
            start: u.start,
            end: u.end,
        });
    }
    for w in 0..nworkers {
        let s = slot(h, w);
        pg_sys::pg_atomic_init_u64(std::ptr::addr_of_mut!((*s).units), 0);
        pg_sys::pg_atomic_init_u64(std::ptr::addr_of_mut!((*s).fetched), 0);
    }
    (*h).ready = u32::from(planned.is_some());
    if let Some(p) = state(node).and_then(|st| st.par.as_mut()) {
        p.shared = h;
        p.nworkers = nworkers;
        p.reading = false;
    }
}

/// ReInitializeDSMForeignScan (leader, before a rescan relaunches workers): the same units
/// are read again.
///
/// # Safety
/// Called by Postgres only, with the arguments of `ReInitializeDSMForeignScan_function`:
/// `coordinate` is the chunk [`initialize_dsm`] wrote; no worker of this scan is running.
#[pg_guard]
pub(super) unsafe extern "C-unwind" fn reinitialize_dsm(
    node: *mut pg_sys::ForeignScanState,
    _pcxt: *mut pg_sys::ParallelContext,
    coordinate: *mut c_void,
) {
    let h = coordinate as *mut Header;
    // SAFETY: the initialised chunk (see above); the workers of the previous scan have
    // finished (ExecReScanGather waited for them), so nobody claims concurrently.
    pg_sys::pg_atomic_write_u32(std::ptr::addr_of_mut!((*h).next), 0);
    if let Some(p) = state(node).and_then(|st| st.par.as_mut()) {
        p.shared = h;
        p.reading = false;
    }
}

/// InitializeWorkerForeignScan (worker, after its BeginForeignScan): attaches to the chunk.
///
/// # Safety
/// Called by Postgres only, with the arguments of `InitializeWorkerForeignScan_function`:
/// `coordinate` is the leader's chunk for this node, mapped in this worker.
#[pg_guard]
pub(super) unsafe extern "C-unwind" fn initialize_worker(
    node: *mut pg_sys::ForeignScanState,
    _toc: *mut pg_sys::shm_toc,
    coordinate: *mut c_void,
) {
    let h = coordinate as *mut Header;
    let Some(st) = state(node) else { return };
    // SAFETY: a non-NULL chunk the leader initialised before launching this worker (`ready`
    // and `nworkers` are plain fields written before the launch, which orders them before
    // these reads).
    if h.is_null() || (*h).ready != 1 {
        not_ready(&st.table.name).report_error();
    }
    let nworkers = (*h).nworkers as usize;
    let worker = usize::try_from(pg_sys::ParallelWorkerNumber).ok();
    st.par = Some(Participant {
        shared: h,
        planned: vec![],
        nworkers,
        worker,
        reading: false,
        units_read: 0,
        published: (0, 0),
    });
}

/// ShutdownForeignScan: a worker publishes its counts; the leader collects everyone's for
/// EXPLAIN ANALYZE. Both detach: the chunk goes away after this.
///
/// # Safety
/// Called by Postgres only, with the arguments of `ShutdownForeignScan_function`, while the
/// DSM is still mapped (before the Gather's cleanup).
#[pg_guard]
pub(super) unsafe extern "C-unwind" fn shutdown(node: *mut pg_sys::ForeignScanState) {
    let Some(st) = state(node) else { return };
    let Some(par) = st.par.as_mut() else { return };
    if par.shared.is_null() {
        return;
    }
    let Some(scan) = st.scan.as_mut() else {
        par.shared = std::ptr::null_mut();
        return;
    };
    if par.worker.is_some() {
        par.publish(scan.as_ref());
    } else {
        let h = par.shared;
        // SAFETY: attached, so the chunk is live (Participant's invariant); the slots are
        // read through atomics.
        let n = (*h).nworkers as usize;
        let workers = (0..n)
            .map(|w| {
                let s = slot(h, w);
                (
                    pg_sys::pg_atomic_read_u64(std::ptr::addr_of_mut!((*s).units)),
                    pg_sys::pg_atomic_read_u64(std::ptr::addr_of_mut!((*s).fetched)),
                )
            })
            .collect();
        let units = (*h).nunits;
        scan.parallel_stats(ParallelStats {
            units,
            leader_units: par.units_read,
            leader_fetched: scan.fetched(),
            workers,
        });
    }
    par.shared = std::ptr::null_mut();
    par.reading = false;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_keeps_atomics_aligned() {
        assert_eq!(size_of::<Header>(), 16);
        assert_eq!(size_of::<SharedUnit>(), 24);
        assert_eq!(std::mem::align_of::<WorkerSlot>(), 8);
        for (n, w) in [(0, 0), (1, 2), (7, 3)] {
            let (units, slots, size) = layout(n, w);
            assert_eq!(units % 8, 0);
            assert_eq!(slots % 8, 0);
            assert_eq!(size, 16 + 24 * n + 16 * w);
        }
    }
}
