//! 👍/👎 on replies and "which of these two is better", stored durably in SQLite, and exported
//! in the shapes TRL's trainers read: KTO (`prompt`, `completion`, `label`) and DPO (`prompt`,
//! `chosen`, `rejected`).
//!
//! Each row keeps the whole prompt twice: the messages as JSON (to re-render with another
//! template later) and the exact text the model read (rendered by the server's template, not
//! taken from the client), with the reply, the sampling settings, the model id and a hash of
//! the weights. The database runs in WAL mode with `synchronous=FULL`: a row is on disk before
//! the request that wrote it is answered, so a crash loses no acknowledged feedback and never
//! leaves half a row.

use crate::error::ApiError;
use crate::routes::{body, messages};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jielong_core::{Error, Result};
use rusqlite::{params, Connection};
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('rating', 'pair')),
    model TEXT NOT NULL,
    checkpoint_hash TEXT NOT NULL,
    messages TEXT NOT NULL,
    prompt TEXT NOT NULL,
    reply TEXT NOT NULL,
    rejected TEXT,
    rating INTEGER CHECK (rating IN (-1, 1)),
    comment TEXT,
    settings TEXT NOT NULL
);";

/// One stored judgement. For a pair, `reply` is the chosen reply and `rejected` the other.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub id: i64,
    pub created: i64,
    pub kind: String,
    pub model: String,
    pub checkpoint_hash: String,
    pub messages: String,
    pub prompt: String,
    pub reply: String,
    pub rejected: Option<String>,
    pub rating: Option<i64>,
    pub comment: Option<String>,
    pub settings: String,
}

#[derive(Debug)]
pub struct Store {
    conn: Connection,
    pub path: PathBuf,
}

fn db_err(path: &Path, e: rusqlite::Error) -> Error {
    Error::format(path, format!("feedback database: {e}"))
}

impl Store {
    /// Open (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let conn = Connection::open(path).map_err(|e| db_err(path, e))?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(|e| db_err(path, e))?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(|e| db_err(path, e))?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(|e| db_err(path, e))?;
        conn.execute_batch(SCHEMA).map_err(|e| db_err(path, e))?;
        Ok(Self { conn, path: path.to_path_buf() })
    }

    /// Open an existing database for reading; a missing file is a user error.
    pub fn open_existing(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::input(format!(
                "{}: no feedback database here; `jielong serve` writes one (see its --feedback-db)",
                path.display()
            )));
        }
        Self::open(path)
    }

    /// Insert one row (its `id` is ignored); returns the new id once it is on disk.
    pub fn insert(&self, r: &Row) -> Result<i64> {
        self.conn
            .execute(
                "INSERT INTO feedback (created, kind, model, checkpoint_hash, messages, prompt, reply, rejected, rating, comment, settings)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![r.created, r.kind, r.model, r.checkpoint_hash, r.messages, r.prompt, r.reply, r.rejected, r.rating, r.comment, r.settings],
            )
            .map_err(|e| db_err(&self.path, e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Every row, oldest first.
    pub fn rows(&self) -> Result<Vec<Row>> {
        let mut st = self
            .conn
            .prepare("SELECT id, created, kind, model, checkpoint_hash, messages, prompt, reply, rejected, rating, comment, settings FROM feedback ORDER BY id")
            .map_err(|e| db_err(&self.path, e))?;
        let rows = st
            .query_map([], |r| {
                Ok(Row {
                    id: r.get(0)?,
                    created: r.get(1)?,
                    kind: r.get(2)?,
                    model: r.get(3)?,
                    checkpoint_hash: r.get(4)?,
                    messages: r.get(5)?,
                    prompt: r.get(6)?,
                    reply: r.get(7)?,
                    rejected: r.get(8)?,
                    rating: r.get(9)?,
                    comment: r.get(10)?,
                    settings: r.get(11)?,
                })
            })
            .map_err(|e| db_err(&self.path, e))?;
        rows.collect::<std::result::Result<Vec<_>, _>>().map_err(|e| db_err(&self.path, e))
    }
}

/// The export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One line per 👍/👎: `{"prompt", "completion", "label"}`.
    Kto,
    /// One line per preference pair: `{"prompt", "chosen", "rejected"}`, from "which is better"
    /// rows and from a 👍 and a 👎 reply to the same prompt.
    Dpo,
    /// Every row with every field.
    Jsonl,
}

/// The lines of an export, in row order.
pub fn export(rows: &[Row], format: Format) -> Vec<Value> {
    match format {
        Format::Kto => rows
            .iter()
            .filter_map(|r| Some(json!({"prompt": r.prompt, "completion": r.reply, "label": r.rating? > 0})))
            .collect(),
        Format::Dpo => {
            let mut out: Vec<Value> = rows
                .iter()
                .filter_map(|r| Some(json!({"prompt": r.prompt, "chosen": r.reply, "rejected": r.rejected.as_ref()?})))
                .collect();
            // A 👍 and a 👎 on replies to the same prompt make a pair as well.
            let rated: Vec<&Row> = rows.iter().filter(|r| r.rating.is_some()).collect();
            for up in rated.iter().filter(|r| r.rating == Some(1)) {
                for down in rated.iter().filter(|r| r.rating == Some(-1) && r.prompt == up.prompt && r.reply != up.reply) {
                    out.push(json!({"prompt": up.prompt, "chosen": up.reply, "rejected": down.reply}));
                }
            }
            out
        }
        Format::Jsonl => rows
            .iter()
            .map(|r| {
                json!({
                    "id": r.id, "created": r.created, "kind": r.kind, "model": r.model,
                    "checkpoint_hash": r.checkpoint_hash,
                    "messages": serde_json::from_str::<Value>(&r.messages).unwrap_or(Value::Null),
                    "prompt": r.prompt, "reply": r.reply, "rejected": r.rejected, "rating": r.rating,
                    "comment": r.comment,
                    "settings": serde_json::from_str::<Value>(&r.settings).unwrap_or(Value::Null),
                })
            })
            .collect(),
    }
}

/// A human summary: counts by kind, by model and checkpoint, and how many training examples
/// each export would give.
pub fn stats(rows: &[Row]) -> String {
    use std::collections::BTreeMap;
    let up = rows.iter().filter(|r| r.rating == Some(1)).count();
    let down = rows.iter().filter(|r| r.rating == Some(-1)).count();
    let pairs = rows.iter().filter(|r| r.kind == "pair").count();
    let comments = rows.iter().filter(|r| r.comment.as_deref().is_some_and(|c| !c.trim().is_empty())).count();
    let mut by_model: BTreeMap<(String, String), (usize, usize, usize)> = BTreeMap::new();
    for r in rows {
        let e = by_model.entry((r.model.clone(), r.checkpoint_hash.chars().take(12).collect())).or_default();
        match r.rating {
            Some(1) => e.0 += 1,
            Some(_) => e.1 += 1,
            None => e.2 += 1,
        }
    }
    let mut s = format!(
        "{} rows: {up} 👍, {down} 👎, {pairs} pairwise choices, {comments} with a comment\n",
        rows.len()
    );
    s.push_str(&format!(
        "exports: kto {} lines, dpo {} lines\n",
        export(rows, Format::Kto).len(),
        export(rows, Format::Dpo).len()
    ));
    for ((model, hash), (u, d, p)) in by_model {
        s.push_str(&format!("  {model} @ {hash}: {u} 👍, {d} 👎, {p} pairs\n"));
    }
    s
}

#[derive(Deserialize)]
struct RateBody {
    /// The model (base or adapter) that wrote the reply; absent: the base.
    model: Option<String>,
    messages: Vec<crate::request::ChatMessage>,
    reply: String,
    /// "up" / "down" (or 1 / -1).
    rating: Value,
    comment: Option<String>,
    #[serde(default)]
    settings: Value,
}

#[derive(Deserialize)]
struct CompareBody {
    model: Option<String>,
    messages: Vec<crate::request::ChatMessage>,
    chosen: String,
    rejected: String,
    comment: Option<String>,
    #[serde(default)]
    settings: Value,
}

fn store(state: &AppState) -> std::result::Result<&std::sync::Mutex<Store>, ApiError> {
    state.feedback.as_deref().ok_or_else(|| {
        ApiError::invalid("", "this server keeps no feedback (start it with --feedback-db FILE)").with_status(StatusCode::NOT_FOUND)
    })
}

/// Row fields the server decides: the rendered prompt (through the named model's template),
/// model, hash, time.
fn base(root: &Arc<AppState>, model: Option<&str>, msgs: &[crate::request::ChatMessage], settings: Value) -> std::result::Result<Row, ApiError> {
    let state = root.pick(model)?;
    let m = messages(msgs)?;
    let prompt = state.template.render(&m, true)?;
    let created = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    Ok(Row {
        id: 0,
        created,
        kind: String::new(),
        model: state.model_id.clone(),
        checkpoint_hash: state.checkpoint_hash.clone(),
        messages: serde_json::to_string(&m).unwrap_or_default(),
        prompt,
        reply: String::new(),
        rejected: None,
        rating: None,
        comment: None,
        settings: if settings.is_null() { "{}".into() } else { settings.to_string() },
    })
}

fn save(state: &AppState, row: Row) -> Response {
    let result = store(state).and_then(|s| {
        let s = s.lock().map_err(|_| ApiError::server("the feedback store is unavailable"))?;
        s.insert(&row).map_err(|e| ApiError::server(e.to_string()))
    });
    match result {
        Ok(id) => axum::Json(json!({"id": id, "object": "feedback", "kind": row.kind})).into_response(),
        Err(e) => e.into_response(),
    }
}

/// POST /v1/feedback: 👍 or 👎 on one reply.
pub async fn rate(State(state): State<Arc<AppState>>, b: Result<Bytes, BytesRejection>) -> Response {
    let run = || -> std::result::Result<Row, ApiError> {
        store(&state)?;
        let req: RateBody = crate::request::parse(&body(b)?)?;
        let rating = match &req.rating {
            Value::String(s) if s == "up" => 1,
            Value::String(s) if s == "down" => -1,
            Value::Number(n) if n.as_i64() == Some(1) => 1,
            Value::Number(n) if n.as_i64() == Some(-1) => -1,
            other => return Err(ApiError::invalid("rating", format!("`rating` is {other}: use \"up\" or \"down\""))),
        };
        let mut row = base(&state, req.model.as_deref(), &req.messages, req.settings)?;
        row.kind = "rating".into();
        row.reply = req.reply;
        row.rating = Some(rating);
        row.comment = req.comment.filter(|c| !c.trim().is_empty());
        Ok(row)
    };
    match run() {
        Ok(row) => save(&state, row),
        Err(e) => e.into_response(),
    }
}

/// POST /v1/feedback/compare: which of two replies to the same conversation is better.
pub async fn compare(State(state): State<Arc<AppState>>, b: Result<Bytes, BytesRejection>) -> Response {
    let run = || -> std::result::Result<Row, ApiError> {
        store(&state)?;
        let req: CompareBody = crate::request::parse(&body(b)?)?;
        if req.chosen == req.rejected {
            return Err(ApiError::invalid("rejected", "`chosen` and `rejected` are the same text: a preference needs two different replies"));
        }
        let mut row = base(&state, req.model.as_deref(), &req.messages, req.settings)?;
        row.kind = "pair".into();
        row.reply = req.chosen;
        row.rejected = Some(req.rejected);
        row.comment = req.comment.filter(|c| !c.trim().is_empty());
        Ok(row)
    };
    match run() {
        Ok(row) => save(&state, row),
        Err(e) => e.into_response(),
    }
}

/// GET /v1/feedback: the stored rows (newest last), as the `jsonl` export shows them.
pub async fn list(State(state): State<Arc<AppState>>) -> Response {
    let result = store(&state).and_then(|s| {
        let s = s.lock().map_err(|_| ApiError::server("the feedback store is unavailable"))?;
        s.rows().map_err(|e| ApiError::server(e.to_string()))
    });
    match result {
        Ok(rows) => axum::Json(json!({"object": "list", "data": export(&rows, Format::Jsonl)})).into_response(),
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kind: &str, prompt: &str, reply: &str, rating: Option<i64>, rejected: Option<&str>) -> Row {
        Row {
            id: 0,
            created: 1,
            kind: kind.into(),
            model: "m".into(),
            checkpoint_hash: "abc".into(),
            messages: "[]".into(),
            prompt: prompt.into(),
            reply: reply.into(),
            rejected: rejected.map(String::from),
            rating,
            comment: None,
            settings: "{}".into(),
        }
    }

    #[test]
    fn feedback_store_round_trips_and_exports_trl_shapes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/fb.sqlite");
        let s = Store::open(&path).unwrap();
        let mode: String = s.conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        s.insert(&row("rating", "User: 你好\nAssistant:", " 好 🙂", Some(1), None)).unwrap();
        s.insert(&row("rating", "User: 你好\nAssistant:", " 不", Some(-1), None)).unwrap();
        s.insert(&row("pair", "P", "good", None, Some("bad"))).unwrap();
        drop(s);
        let rows = Store::open_existing(&path).unwrap().rows().unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].reply, " 好 🙂");
        let kto = export(&rows, Format::Kto);
        assert_eq!(kto, vec![
            json!({"prompt": "User: 你好\nAssistant:", "completion": " 好 🙂", "label": true}),
            json!({"prompt": "User: 你好\nAssistant:", "completion": " 不", "label": false}),
        ]);
        let dpo = export(&rows, Format::Dpo);
        assert_eq!(dpo, vec![
            json!({"prompt": "P", "chosen": "good", "rejected": "bad"}),
            json!({"prompt": "User: 你好\nAssistant:", "chosen": " 好 🙂", "rejected": " 不"}),
        ]);
        assert_eq!(export(&rows, Format::Jsonl).len(), 3);
        let st = stats(&rows);
        assert!(st.starts_with("3 rows: 1 👍, 1 👎, 1 pairwise choices"), "{st}");
        assert!(st.contains("kto 2 lines, dpo 2 lines"), "{st}");
        assert!(Store::open_existing(&dir.path().join("none.sqlite")).unwrap_err().is_user_error());
    }
}
