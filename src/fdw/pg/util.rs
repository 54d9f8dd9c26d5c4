//! Small helpers shared by the callbacks: reading a Postgres `List` and C strings, `DefElem`
//! option lists, and arming the memory-context reset callback that frees a scan's or a
//! modification's Rust state if the statement ends in an error.
use crate::fdw::Opts;
use pgrx::pg_sys;
use std::ffi::{c_void, CStr};

/// The `ptr_value` of every cell of a pointer `List` (NIL is empty).
///
/// # Safety
/// `list` is NULL (NIL) or points to a valid pointer `List` (`T_List`, not an integer or OID
/// list) that stays alive and unmodified for the duration of the call. The returned pointers
/// are only as valid as the list's cells: they belong to whatever memory context owns the
/// nodes (the planner's or executor's), not to the caller.
pub(super) unsafe fn list_ptrs(list: *mut pg_sys::List) -> Vec<*mut c_void> {
    if list.is_null() {
        return vec![];
    }
    let n = (*list).length as usize;
    (0..n)
        .map(|i| (*(*list).elements.add(i)).ptr_value)
        .collect()
}

/// A C string as an owned `String` (NULL is empty; invalid UTF-8 is replaced).
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that stays valid during the call.
pub(super) unsafe fn cstr(p: *const std::ffi::c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

/// An option list (`List` of `DefElem`, as in `ForeignTable.options`) as name → value.
///
/// # Safety
/// `list` is NIL or a valid `List` of `DefElem` nodes, as found in the `options` fields of
/// the structs `GetForeignTable`, `GetForeignServer`, `GetUserMapping` and
/// `GetForeignColumnOptions` return (palloc'd in the current memory context).
pub(super) unsafe fn options(list: *mut pg_sys::List) -> Opts {
    let mut out = Opts::new();
    for p in list_ptrs(list) {
        let def = p as *mut pg_sys::DefElem;
        out.insert(cstr((*def).defname), cstr(pg_sys::defGetString(def)));
    }
    out
}

/// Frees `arg` with `f` when `cxt` is reset/deleted (error paths), unless disarmed first.
///
/// The callback struct is allocated in `cxt` itself, so it lives exactly as long as the
/// registration. Disarming is `(*cb).arg = null` (the `drop_*_state` functions ignore NULL);
/// the normal End callbacks do that before freeing the state themselves.
///
/// # Safety
/// `cxt` is a valid memory context (the executor's `es_query_cxt`). `arg` is a pointer `f`
/// may free exactly once (a `Box::into_raw` of the type `f` expects), and whoever frees it
/// otherwise must first disarm the returned callback. `f` must not unwind: it runs inside
/// `MemoryContextReset`/`Delete`, i.e. inside Postgres C code, possibly during error
/// recovery.
pub(super) unsafe fn arm(
    cxt: pg_sys::MemoryContext,
    f: unsafe extern "C-unwind" fn(*mut c_void),
    arg: *mut c_void,
) -> *mut pg_sys::MemoryContextCallback {
    let cb =
        pg_sys::MemoryContextAllocZero(cxt, std::mem::size_of::<pg_sys::MemoryContextCallback>())
            as *mut pg_sys::MemoryContextCallback;
    (*cb).func = Some(f);
    (*cb).arg = arg;
    pg_sys::MemoryContextRegisterResetCallback(cxt, cb);
    cb
}
