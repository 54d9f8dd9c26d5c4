//! Reading a catalog datasource's secrets for a foreign server: the one place where the
//! wrappers change the current user. Review this file as a security boundary.
//!
//! ## Privilege model
//!
//! A foreign server names its connection either directly (`brokers` / `url`, credentials in
//! the user mapping) or through the `datasource` option, naming a row of `flink.datasource`
//! whose secrets live in `flink.datasource_secret` (readable by flink_admin and superusers
//! only).
//!
//! - **Who may attach a datasource to a server:** only a server owned by a superuser or a
//!   member of `flink_admin`. Turning catalog credentials into a server that others can query
//!   is an admin decision; the check is on the server *owner*, not on the querying user, so
//!   a user of the server never needs (or gets) access to the secrets table. The check runs
//!   at every use, so an `ALTER SERVER ... OWNER TO` a non-admin disables the server.
//! - **As whom the secrets are read:** as the owner of `flink.datasource_secret` (the
//!   extension's owner), for the one query that reads the row, through
//!   `SetUserIdAndSecContext(owner, sec | SECURITY_LOCAL_USERID_CHANGE)`, and back to the
//!   saved user and security context right after. The owner check and the lookup of that
//!   owner run as the calling user.
//! - **What leaves this file:** a [`Source`] with the secrets, used only to connect (the
//!   Elasticsearch client scrubs them from network error messages).
//!
//! If the secret query raises an ERROR, the restore below is skipped: the ERROR unwinds to
//! the callback's `#[pg_guard]` and on to (sub)transaction abort, which resets the user id
//! and security context (`AbortTransaction`/`AbortSubTransaction`). No code in between
//! catches the error.
use crate::datasource::Kind;
use crate::datasource::Source;
use crate::fdw::{fdw_error, OptionRules, TableDef};
use pgrx::pg_sys::{self, Oid};
use pgrx::prelude::*;
use pgrx::{JsonB, PgSqlErrorCode};

/// Reads a catalog datasource (with secrets) for a foreign server's `datasource` option.
///
/// The server must be owned by a superuser or a member of flink_admin: only they may turn a
/// datasource's credentials into a server others can use. The read runs as the extension's
/// owner, so users of the server never need (or get) access to the secrets table.
pub fn datasource(
    server: &TableDef,
    name: &str,
) -> Result<Source, pgrx::pg_sys::panic::ErrorReport> {
    let owner_ok = Spi::get_one_with_args::<bool>(
        "SELECT r.rolsuper OR pg_catalog.pg_has_role(r.oid, 'flink_admin', 'MEMBER') FROM pg_catalog.pg_roles r WHERE r.oid = $1",
        &[Oid::from(server.server_owner).into()],
    )
    .ok()
    .flatten()
    .unwrap_or(false);
    if !owner_ok {
        return Err(fdw_error(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "foreign server \"{}\" names datasource \"{name}\" but its owner is not a member of flink_admin",
                server.server
            ),
            "Have a flink_admin member (or a superuser) own the server: ALTER SERVER … OWNER TO ….",
        ));
    }
    let mut uid = Oid::INVALID;
    let mut sec = 0;
    // SAFETY: GetUserIdAndSecContext only writes the current user id and security context
    // (backend globals) through the two pointers, which point to live locals.
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut uid, &mut sec);
    }
    let owner: Option<Oid> = Spi::get_one("SELECT c.relowner FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'flink' AND c.relname = 'datasource_secret'")
        .ok()
        .flatten();
    let Some(owner) = owner else {
        return Err(fdw_error(
            PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            "pg_flink's catalog is missing (flink.datasource_secret)",
            "CREATE EXTENSION pg_flink in this database.",
        ));
    };
    // SAFETY: SetUserIdAndSecContext only sets two backend globals; `owner` is an existing
    // role (the owner of a table that exists). Memory-wise it cannot fail; privilege-wise this
    // is the switch the module doc describes, undone right after the one query below.
    unsafe {
        pg_sys::SetUserIdAndSecContext(owner, sec | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32);
    }
    let row = Spi::get_two_with_args::<String, JsonB>(
        "SELECT d.kind, jsonb_build_object('options', d.options, 'secrets', COALESCE(s.secrets, '{}'))
           FROM flink.datasource d LEFT JOIN flink.datasource_secret s ON s.datasource = d.name WHERE d.name = $1",
        &[name.into()],
    );
    // SAFETY: restores exactly the user id and security context saved above.
    unsafe {
        pg_sys::SetUserIdAndSecContext(uid, sec);
    }
    let (kind, body) = match row {
        Ok((Some(k), Some(b))) => (k, b.0),
        _ => {
            return Err(fdw_error(
                PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
                format!("datasource \"{name}\" (option datasource of foreign server \"{}\") does not exist", server.server),
                "See flink.datasources for registered datasources, or register it with flink.register_datasource().",
            ))
        }
    };
    let kind = crate::datasource::check_kind(name, Some(&kind)).map_err(|e| {
        fdw_error(
            PgSqlErrorCode::ERRCODE_DATA_EXCEPTION,
            e.to_string(),
            "Re-register the datasource.",
        )
    })?;
    let obj = |k: &str| {
        body.get(k)
            .and_then(|v| v.as_object())
            .cloned()
            .unwrap_or_default()
    };
    Ok(Source {
        name: name.to_string(),
        kind,
        options: obj("options"),
        secrets: obj("secrets"),
    })
}

/// The connection of a table's server: the catalog datasource named by its `datasource`
/// option (which must be of `kind`), else the one `direct` builds from the server's own
/// options (the other option of `rules.server_one_of`); then the table's (or server's)
/// `timeout_ms`.
pub fn server_source(
    t: &TableDef,
    rules: &OptionRules,
    kind: Kind,
    direct: impl FnOnce(&str) -> Source,
) -> Result<Source, pgrx::pg_sys::panic::ErrorReport> {
    let (by_name, by_address) = rules.server_one_of;
    let bad = |msg: String| {
        fdw_error(
            PgSqlErrorCode::ERRCODE_FDW_INVALID_OPTION_NAME,
            msg,
            format!(
                "Fix the options of the server (see the {} documentation under docs/).",
                rules.wrapper
            ),
        )
    };
    let mut src = if let Some(ds) = t.server_opts.get(by_name) {
        let s = datasource(t, ds)?;
        if s.kind != kind {
            return Err(bad(format!(
                "foreign server \"{}\": datasource \"{ds}\" is of kind {}, not {}",
                t.server,
                s.kind.as_str(),
                kind.as_str()
            )));
        }
        s
    } else if let Some(address) = t.server_opts.get(by_address) {
        direct(address)
    } else {
        return Err(bad(format!(
            "foreign server \"{}\" needs option {by_name} or {by_address}",
            t.server
        )));
    };
    if let Some(ms) = t.opt("timeout_ms").and_then(|v| v.parse::<i64>().ok()) {
        src.options
            .insert("timeout_ms".into(), serde_json::Value::from(ms));
    }
    Ok(src)
}
