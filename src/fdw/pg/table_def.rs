//! Reading a foreign table's (or server's) definition from the system catalogs into the pure
//! [`TableDef`] the wrappers see: name, server, options of the server, user mapping, table and
//! columns, and each column's type.
//!
//! These functions take OIDs, not pointers, so they are safe: every lookup either returns
//! catalog data copied into the current memory context or raises an ERROR (which pgrx turns
//! into a Rust panic that unwinds to the calling callback's `#[pg_guard]`).
use super::datum::pg_type;
use super::util::{cstr, options};
use crate::fdw::{ColDef, TableDef};
use pgrx::pg_sys::{self, Oid};

/// `schema.table` of a relation, for messages.
pub(super) fn qualified_name(relid: Oid) -> String {
    // SAFETY: both lookups take an OID and return a palloc'd copy of the name, or NULL for a
    // relation/namespace that does not exist (cstr turns NULL into ""); they only read the
    // syscache, which needs a transaction, and every caller is a planner/executor callback.
    unsafe {
        format!(
            "{}.{}",
            cstr(pg_sys::get_namespace_name(pg_sys::get_rel_namespace(relid))),
            cstr(pg_sys::get_rel_name(relid))
        )
    }
}

/// Reads the definition of foreign table `relid` (options, columns, server).
///
/// Callers hold a lock on the relation already (the parser took it before planning, the
/// executor before BeginForeignScan/Modify); the relation is opened with `NoLock` for that
/// reason.
pub(crate) fn table_def(relid: Oid) -> TableDef {
    // SAFETY: GetForeignTable returns a palloc'd, non-NULL struct or raises an ERROR for an
    // OID that is not a foreign table. relation_open returns a pinned relcache entry (or raises),
    // valid until the RelationClose below; `rd_att` of an open relation is non-NULL and holds
    // `natts` attributes, so every `attrs.add(i)` is in bounds. Strings and option lists are
    // copied into Rust before the relation is closed.
    unsafe {
        let ft = pg_sys::GetForeignTable(relid);
        let mut def = server_def((*ft).serverid);
        def.table_opts = options((*ft).options);
        def.name = qualified_name(relid);
        let rel = pg_sys::relation_open(relid, pg_sys::NoLock as _);
        let desc = (*rel).rd_att;
        for i in 0..(*desc).natts as usize {
            let att = (*desc).attrs.as_ptr().add(i);
            if (*att).attisdropped {
                continue;
            }
            let attnum = (*att).attnum;
            def.columns.push(ColDef {
                name: cstr((*att).attname.data.as_ptr()),
                attnum,
                ty: pg_type((*att).atttypid),
                type_name: cstr(pg_sys::format_type_be((*att).atttypid)),
                type_oid: (*att).atttypid.to_u32(),
                typmod: (*att).atttypmod,
                opts: options(pg_sys::GetForeignColumnOptions(relid, attnum)),
            });
        }
        pg_sys::RelationClose(rel);
        def
    }
}

/// Reads a foreign server (name, owner, options) and the current user's mapping for it, if
/// any. `name`, `table_opts` and `columns` stay empty (IMPORT FOREIGN SCHEMA uses this alone).
pub(crate) fn server_def(server_oid: Oid) -> TableDef {
    // SAFETY: GetForeignServer returns a palloc'd, non-NULL struct or raises an ERROR for an
    // unknown OID; its name is a C string and its `options` a DefElem list, both copied here.
    let mut def = unsafe {
        let srv = pg_sys::GetForeignServer(server_oid);
        TableDef {
            server: cstr((*srv).servername),
            server_oid: server_oid.to_u32(),
            server_owner: (*srv).owner.to_u32(),
            server_opts: options((*srv).options),
            ..Default::default()
        }
    };
    // A user mapping is optional (credentials for servers given by URL/brokers).
    //
    // The catch below swallows a Postgres ERROR without a subtransaction. That is only sound
    // because GetUserMapping's one ERROR ("user mapping not found") is raised after its
    // syscache lookups found nothing, so no buffer pin, syscache reference or lock is held
    // when it is caught.
    let um = pgrx::PgTryBuilder::new(|| {
        // SAFETY: GetUserId reads a backend global; GetUserMapping takes OIDs and returns a
        // palloc'd struct, or raises the ERROR caught here (see above).
        Some(unsafe { pg_sys::GetUserMapping(pg_sys::GetUserId(), server_oid) })
    })
    .catch_others(|_| None)
    .execute();
    if let Some(um) = um.filter(|u| !u.is_null()) {
        // SAFETY: a non-NULL UserMapping from GetUserMapping; `options` is a DefElem list.
        def.user_opts = unsafe { options((*um).options) };
    }
    def
}
