//! The Kafka message codec (pure): what each column of a Kafka table holds ([`ColKind`],
//! from the column names, the table's `format` and the columns' `path`/`index` options), how
//! a message becomes a row ([`decode`], tolerant: a bad value gives NULLs and an `_error`
//! text, as `on_error` says), and how a written row becomes a message value
//! ([`encode_value`]).
use crate::fdw::value::{self, JsonFields, PgType, Val};
use crate::fdw::{ColDef, TableDef};
use serde_json::Value;

/// A conversion of text to a column type.
pub type TextInput<'a> = &'a dyn Fn(&str, &PgType) -> Result<Val, value::Mismatch>;

/// What a column of a Kafka table holds.
#[derive(Debug, Clone, PartialEq)]
pub enum ColKind {
    Partition,
    Offset,
    Timestamp,
    Key(PgType),
    Headers,
    Error,
    /// The whole value (`_value`, or the only value column of a `text` table).
    Value(PgType),
    /// A field of a JSON value, as JSON-pointer tokens.
    Field(Vec<String>, PgType),
    /// A field of a CSV value (0-based).
    Csv(usize, PgType),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Text,
    /// CSV with this field delimiter (table option `delimiter`, default `,`).
    Csv(char),
}

impl Format {
    /// The table's `format` (and, for CSV, `delimiter`) options, already validated.
    pub fn of(table: &TableDef) -> Format {
        match table.opt("format") {
            Some("text") => Format::Text,
            Some("csv") => Format::Csv(
                table
                    .opt("delimiter")
                    .and_then(|d| d.chars().next())
                    .unwrap_or(','),
            ),
            _ => Format::Json,
        }
    }
}

/// What to do with a message whose value cannot be decoded into its columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Affected columns NULL, `_error` says why (default).
    Null,
    /// The scan fails.
    Error,
    /// The message is left out.
    Skip,
}

impl OnError {
    pub fn parse(s: Option<&str>) -> OnError {
        match s {
            Some("error") => OnError::Error,
            Some("skip") => OnError::Skip,
            _ => OnError::Null,
        }
    }
}

/// A JSON pointer (`/a/b`) or dotted path (`a.b`) as tokens.
pub fn path_tokens(path: &str) -> Vec<String> {
    if let Some(p) = path.strip_prefix('/') {
        p.split('/')
            .map(|t| t.replace("~1", "/").replace("~0", "~"))
            .collect()
    } else {
        path.split('.').map(str::to_string).collect()
    }
}

/// The role of every column of `table` (in table order).
pub fn col_kinds(table: &TableDef) -> Vec<(i16, ColKind)> {
    let format = Format::of(table);
    let value_cols = table
        .columns
        .iter()
        .filter(|c| !c.name.starts_with('_'))
        .count();
    let mut csv_index = 0usize;
    table
        .columns
        .iter()
        .map(|c: &ColDef| {
            let ty = c.ty.clone().unwrap_or(PgType::Text);
            let kind = match c.name.as_str() {
                "_partition" => ColKind::Partition,
                "_offset" => ColKind::Offset,
                "_timestamp" => ColKind::Timestamp,
                "_key" => ColKind::Key(ty),
                "_headers" => ColKind::Headers,
                "_error" => ColKind::Error,
                "_value" => ColKind::Value(ty),
                name => match format {
                    Format::Json => ColKind::Field(
                        path_tokens(c.opts.get("path").map(String::as_str).unwrap_or(name)),
                        ty,
                    ),
                    Format::Text if value_cols == 1 => ColKind::Value(ty),
                    Format::Text => ColKind::Value(ty),
                    Format::Csv(_) => {
                        let i = c
                            .opts
                            .get("index")
                            .and_then(|v| v.parse::<usize>().ok())
                            .map(|i| i.saturating_sub(1))
                            .unwrap_or(csv_index);
                        csv_index += 1;
                        ColKind::Csv(i, ty)
                    }
                },
            };
            (c.attnum, kind)
        })
        .collect()
}

/// A message as the decoder sees it.
pub struct Msg<'a> {
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: Option<i64>,
    pub key: Option<&'a [u8]>,
    pub headers: Vec<(&'a str, Option<&'a [u8]>)>,
    pub payload: Option<&'a [u8]>,
}

/// Fills `row` (one slot per entry of `cols`) from `m`. Returns the decoding problem, if
/// any (the `_error` slot gets it prefixed with the message's partition and offset); affected
/// slots are left NULL.
/// `input` converts text (keys, `text`/`csv` values) to a column type: the type's Postgres
/// input function in a scan (`pg::input::text_input`), [`value::from_text`] in unit tests.
pub fn decode(
    m: &Msg,
    cols: &[ColKind],
    format: Format,
    row: &mut [Val],
    input: TextInput<'_>,
) -> Option<String> {
    let mut errors: Vec<String> = vec![];
    let mut err_slot = None;
    let text = |b: &[u8], what: &str, errors: &mut Vec<String>| match std::str::from_utf8(b) {
        Ok(s) => Some(s.to_string()),
        Err(e) => {
            errors.push(format!("{what} is not UTF-8: {e}"));
            None
        }
    };
    // The value is split into its top-level fields once (without building values), and only
    // if a column needs it; each wanted field is then converted straight from its JSON text.
    let needs_json = format == Format::Json && cols.iter().any(|c| matches!(c, ColKind::Field(..)));
    let mut doc: Option<JsonFields> = None;
    if needs_json {
        if let Some(p) = m.payload {
            match serde_json::from_slice::<JsonFields>(p) {
                Ok(o) => doc = Some(o),
                // Valid JSON that is not an object has no fields to read columns from: an error
                // too, so `_error` and on_error see it.
                Err(_) => match serde_json::from_slice::<serde::de::IgnoredAny>(p) {
                    Err(e) => errors.push(format!("value is not JSON: {e}")),
                    Ok(_) => errors.push("value is JSON but not an object".to_string()),
                },
            }
        }
    }
    let csv: Option<Vec<String>> = match format {
        Format::Csv(delimiter) if cols.iter().any(|c| matches!(c, ColKind::Csv(..))) => m
            .payload
            .and_then(|p| text(p, "value", &mut errors))
            .map(|s| split_csv(&s, delimiter)),
        _ => None,
    };
    for (i, c) in cols.iter().enumerate() {
        row[i] = match c {
            ColKind::Partition => Val::Int(m.partition as i64),
            ColKind::Offset => Val::Int(m.offset),
            ColKind::Timestamp => m
                .timestamp_ms
                .map(|ms| Val::Ts(ms * 1000))
                .unwrap_or(Val::Null),
            ColKind::Key(ty) => match m.key {
                None => Val::Null,
                Some(k) if *ty == PgType::Bytea => Val::Bytes(k.to_vec()),
                Some(k) => match text(k, "key", &mut errors).map(|s| input(&s, ty)) {
                    Some(Ok(v)) => v,
                    Some(Err(e)) => {
                        errors.push(format!("key: {}", e.0));
                        Val::Null
                    }
                    None => Val::Null,
                },
            },
            ColKind::Headers => {
                let mut obj = serde_json::Map::new();
                for (k, v) in &m.headers {
                    obj.insert(
                        k.to_string(),
                        v.map(|b| Value::String(String::from_utf8_lossy(b).into_owned()))
                            .unwrap_or(Value::Null),
                    );
                }
                Val::Json(Value::Object(obj))
            }
            ColKind::Error => {
                err_slot = Some(i);
                Val::Null
            }
            ColKind::Value(ty) => match m.payload {
                None => Val::Null,
                Some(p) if *ty == PgType::Bytea => Val::Bytes(p.to_vec()),
                Some(p) => match text(p, "value", &mut errors).map(|s| input(&s, ty)) {
                    Some(Ok(v)) => v,
                    Some(Err(e)) => {
                        errors.push(format!("value: {}", e.0));
                        Val::Null
                    }
                    None => Val::Null,
                },
            },
            ColKind::Field(path, ty) => {
                match doc.as_ref().and_then(|d| d.convert(path, None, ty)) {
                    None => Val::Null,
                    Some(Ok(x)) => x,
                    Some(Err(e)) => {
                        errors.push(format!("field {}: {}", path.join("."), e.0));
                        Val::Null
                    }
                }
            }
            ColKind::Csv(idx, ty) => match csv.as_ref().and_then(|f| f.get(*idx)) {
                None => Val::Null,
                Some(s) if s.is_empty() && *ty != PgType::Text => Val::Null,
                Some(s) => match input(s, ty) {
                    Ok(v) => v,
                    Err(e) => {
                        errors.push(format!("field {}: {}", idx + 1, e.0));
                        Val::Null
                    }
                },
            },
        };
    }
    if errors.is_empty() {
        return None;
    }
    // The error names the message's position itself; `_error` carries it in its text.
    let msg = errors.join("; ");
    if let Some(i) = err_slot {
        row[i] = Val::Text(format!(
            "partition {} offset {}: {msg}",
            m.partition, m.offset
        ));
    }
    Some(msg)
}

/// Splits one CSV record (RFC 4180 quoting) at `delimiter`.
pub fn split_csv(s: &str, delimiter: char) -> Vec<String> {
    let mut out = vec![];
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = s.trim_end_matches(['\r', '\n']).chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if cur.is_empty() => quoted = true,
            (c, false) if c == delimiter => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// Builds a message value from a row (INSERT): a JSON object of the value columns (nested by
/// their paths), or the text of the value column.
pub fn encode_value(cols: &[(ColKind, Val)], format: Format) -> Option<Vec<u8>> {
    if let Some((_, v)) = cols.iter().find(|(k, _)| matches!(k, ColKind::Value(_))) {
        return match v {
            Val::Null => None,
            Val::Bytes(b) => Some(b.clone()),
            Val::Json(j) => Some(j.to_string().into_bytes()),
            other => other.to_text().map(String::into_bytes),
        };
    }
    match format {
        Format::Csv(delimiter) => {
            let mut fields: Vec<(usize, String)> = cols
                .iter()
                .filter_map(|(k, v)| match k {
                    ColKind::Csv(i, _) => {
                        Some((*i, csv_field(&v.to_text().unwrap_or_default(), delimiter)))
                    }
                    _ => None,
                })
                .collect();
            fields.sort_by_key(|(i, _)| *i);
            Some(
                fields
                    .into_iter()
                    .map(|(_, s)| s)
                    .collect::<Vec<_>>()
                    .join(&delimiter.to_string())
                    .into_bytes(),
            )
        }
        _ => {
            let mut doc = Value::Object(Default::default());
            for (k, v) in cols {
                if let ColKind::Field(path, _) = k {
                    if matches!(v, Val::Null) {
                        continue;
                    }
                    let mut cur = &mut doc;
                    for (i, t) in path.iter().enumerate() {
                        let Value::Object(o) = cur else { break };
                        if i + 1 == path.len() {
                            o.insert(t.clone(), v.to_json());
                            break;
                        }
                        cur = o
                            .entry(t.clone())
                            .or_insert_with(|| Value::Object(Default::default()));
                    }
                }
            }
            Some(doc.to_string().into_bytes())
        }
    }
}

fn csv_field(s: &str, delimiter: char) -> String {
    if s.contains([delimiter, '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(payload: &'static [u8]) -> Msg<'static> {
        Msg {
            partition: 1,
            offset: 42,
            timestamp_ms: Some(1000),
            key: Some(b"k1"),
            headers: vec![("h", Some(b"v"))],
            payload: Some(payload),
        }
    }

    #[test]
    fn decoding_is_tolerant_and_says_why() {
        let cols = vec![
            ColKind::Partition,
            ColKind::Field(vec!["a".into()], PgType::Int4),
            ColKind::Field(vec!["b".into(), "c".into()], PgType::Text),
            ColKind::Error,
            ColKind::Headers,
            ColKind::Key(PgType::Text),
        ];
        let mut row = vec![Val::Null; cols.len()];
        assert_eq!(
            decode(
                &msg(br#"{"a": 5, "b": {"c": "x"}}"#),
                &cols,
                Format::Json,
                &mut row,
                &value::from_text
            ),
            None
        );
        assert_eq!(row[1], Val::Int(5));
        assert_eq!(row[2], Val::Text("x".into()));
        assert_eq!(row[3], Val::Null);
        assert_eq!(row[5], Val::Text("k1".into()));
        let e = decode(
            &msg(b"not json"),
            &cols,
            Format::Json,
            &mut row,
            &value::from_text,
        )
        .unwrap();
        assert!(e.starts_with("value is not JSON"), "{e}");
        assert_eq!(row[0], Val::Int(1));
        assert_eq!(row[1], Val::Null);
        assert_eq!(row[3], Val::Text(format!("partition 1 offset 42: {e}")));
        let e = decode(
            &msg(br#"{"a": "many"}"#),
            &cols,
            Format::Json,
            &mut row,
            &value::from_text,
        )
        .unwrap();
        assert_eq!(e, "field a: value \"many\" does not fit type integer");
        assert_eq!(row[3], Val::Text(format!("partition 1 offset 42: {e}")));
    }

    #[test]
    fn csv_with_another_delimiter_round_trips() {
        assert_eq!(split_csv("a;\"b;c\";d", ';'), vec!["a", "b;c", "d"]);
        assert_eq!(split_csv("a,b;c", ';'), vec!["a,b", "c"]);
        let cols = vec![
            (ColKind::Csv(0, PgType::Int8), Val::Int(7)),
            (ColKind::Csv(1, PgType::Text), Val::Text("x;y,z".into())),
        ];
        let bytes = encode_value(&cols, Format::Csv(';')).unwrap();
        assert_eq!(bytes, b"7;\"x;y,z\"");
        assert_eq!(
            split_csv(std::str::from_utf8(&bytes).unwrap(), ';'),
            vec!["7", "x;y,z"]
        );
    }

    #[test]
    fn csv_and_text_values() {
        assert_eq!(
            split_csv("a,\"b,c\",\"d\"\"e\",\n", ','),
            vec!["a", "b,c", "d\"e", ""]
        );
        let cols = vec![ColKind::Csv(0, PgType::Int8), ColKind::Csv(1, PgType::Text)];
        let mut row = vec![Val::Null; 2];
        assert_eq!(
            decode(
                &msg(b"7,\"x,y\""),
                &cols,
                Format::Csv(','),
                &mut row,
                &value::from_text
            ),
            None
        );
        assert_eq!(row, vec![Val::Int(7), Val::Text("x,y".into())]);
        let enc = encode_value(
            &[
                (cols[0].clone(), Val::Int(7)),
                (cols[1].clone(), Val::Text("x,y".into())),
            ],
            Format::Csv(','),
        );
        assert_eq!(enc.unwrap(), b"7,\"x,y\"");
        let enc = encode_value(
            &[
                (
                    ColKind::Field(vec!["a".into(), "b".into()], PgType::Int4),
                    Val::Int(1),
                ),
                (ColKind::Field(vec!["c".into()], PgType::Text), Val::Null),
            ],
            Format::Json,
        );
        assert_eq!(enc.unwrap(), br#"{"a":{"b":1}}"#);
        assert_eq!(path_tokens("/a~1b/c"), vec!["a/b", "c"]);
        assert_eq!(path_tokens("a.b"), vec!["a", "b"]);
    }
}
