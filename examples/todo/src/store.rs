//! SQLite storage for lists and items, created on first use.
//!
//! Owns the schema and every SQL statement. Methods are synchronous and short; callers on the
//! async side run them through `actix_web::web::block`. Knows nothing about HTTP or Pusher.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::model::{Item, ItemChanges, List};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS lists (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    token      TEXT    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    list_id    INTEGER NOT NULL REFERENCES lists(id) ON DELETE CASCADE,
    shortdesc  TEXT    NOT NULL DEFAULT '',
    longdesc   TEXT,
    isdone     INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS items_list_id ON items(list_id);
";

const ITEM_COLUMNS: &str = "id, shortdesc, isdone, created_at, updated_at";

/// A storage failure; always our fault, never the client's.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite said no.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database directory could not be created.
    #[error("creating the database directory: {0}")]
    Io(#[from] std::io::Error),
    /// A previous holder of the connection panicked.
    #[error("database connection lock poisoned")]
    Poisoned,
}

/// Cloneable handle to the one SQLite connection.
#[derive(Clone)]
pub struct Store {
    /// One connection is plenty for a demo; the mutex serializes the short statements.
    conn: Arc<Mutex<Connection>>,
}

impl Store {
    /// Opens (creating if needed) the database file and its directory, and the schema.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        Self::init(Connection::open(path)?)
    }

    /// A private in-memory database, for tests.
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Self, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "foreign_keys", true)?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        Ok(f(&conn)?)
    }

    /// Creates a list with the given token.
    pub fn create_list(&self, token: &str) -> Result<List, StoreError> {
        let now = now_millis();
        self.with(|c| {
            c.execute(
                "INSERT INTO lists (token, created_at, updated_at) VALUES (?1, ?2, ?2)",
                params![token, now],
            )?;
            Ok(List {
                id: c.last_insert_rowid(),
                token: token.to_owned(),
            })
        })
    }

    /// The list with this token, if any.
    pub fn find_list(&self, token: &str) -> Result<Option<List>, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT id, token FROM lists WHERE token = ?1",
                params![token],
                |r| {
                    Ok(List {
                        id: r.get(0)?,
                        token: r.get(1)?,
                    })
                },
            )
            .optional()
        })
    }

    /// All items of a list, oldest first.
    pub fn items(&self, list_id: i64) -> Result<Vec<Item>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {ITEM_COLUMNS} FROM items WHERE list_id = ?1 ORDER BY id"
            ))?;
            let rows = stmt.query_map(params![list_id], item_from_row)?;
            rows.collect()
        })
    }

    /// One item of a list; items of other lists are not found.
    pub fn item(&self, list_id: i64, id: i64) -> Result<Option<Item>, StoreError> {
        self.with(|c| find_item(c, list_id, id))
    }

    /// Creates an item; a missing `shortdesc` is empty, a missing `isdone` is false.
    pub fn create_item(&self, list_id: i64, changes: &ItemChanges) -> Result<Item, StoreError> {
        let now = now_millis();
        let shortdesc = changes.shortdesc.clone().unwrap_or_default();
        let isdone = changes.isdone.unwrap_or(false);
        self.with(|c| {
            c.execute(
                "INSERT INTO items (list_id, shortdesc, isdone, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?4)",
                params![list_id, shortdesc, isdone, now],
            )?;
            Ok(Item {
                id: c.last_insert_rowid(),
                shortdesc,
                isdone,
                created_at: now,
                updated_at: now,
            })
        })
    }

    /// Applies the given changes; `None` when the item is not in this list.
    pub fn update_item(
        &self,
        list_id: i64,
        id: i64,
        changes: &ItemChanges,
    ) -> Result<Option<Item>, StoreError> {
        let now = now_millis();
        self.with(|c| {
            let updated = c.execute(
                "UPDATE items SET shortdesc = COALESCE(?3, shortdesc),
                                  isdone = COALESCE(?4, isdone), updated_at = ?5
                 WHERE list_id = ?1 AND id = ?2",
                params![list_id, id, changes.shortdesc, changes.isdone, now],
            )?;
            if updated == 0 {
                return Ok(None);
            }
            find_item(c, list_id, id)
        })
    }

    /// Deletes an item; `false` when it is not in this list.
    pub fn delete_item(&self, list_id: i64, id: i64) -> Result<bool, StoreError> {
        self.with(|c| {
            let deleted = c.execute(
                "DELETE FROM items WHERE list_id = ?1 AND id = ?2",
                params![list_id, id],
            )?;
            Ok(deleted > 0)
        })
    }
}

fn find_item(c: &Connection, list_id: i64, id: i64) -> rusqlite::Result<Option<Item>> {
    c.query_row(
        &format!("SELECT {ITEM_COLUMNS} FROM items WHERE list_id = ?1 AND id = ?2"),
        params![list_id, id],
        item_from_row,
    )
    .optional()
}

fn item_from_row(r: &Row<'_>) -> rusqlite::Result<Item> {
    Ok(Item {
        id: r.get(0)?,
        shortdesc: r.get(1)?,
        isdone: r.get(2)?,
        created_at: r.get(3)?,
        updated_at: r.get(4)?,
    })
}

/// Current time in epoch milliseconds (the Rails app's JSON timestamp format).
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with_list() -> (Store, List) {
        let store = Store::in_memory().expect("in-memory store");
        let list = store.create_list("tok").expect("list");
        (store, list)
    }

    #[test]
    fn items_round_trip_and_stay_in_their_list() {
        let (store, list) = store_with_list();
        let other = store.create_list("other").expect("list");
        let item = store
            .create_item(
                list.id,
                &ItemChanges {
                    shortdesc: Some("a".into()),
                    isdone: None,
                },
            )
            .expect("create");
        assert!(!item.isdone);
        assert_eq!(
            store.item(list.id, item.id).expect("get"),
            Some(item.clone())
        );
        assert_eq!(store.item(other.id, item.id).expect("get"), None);
        assert!(!store.delete_item(other.id, item.id).expect("delete"));
        assert_eq!(store.items(list.id).expect("items"), vec![item]);
    }

    #[test]
    fn update_is_partial() {
        let (store, list) = store_with_list();
        let item = store
            .create_item(
                list.id,
                &ItemChanges {
                    shortdesc: Some("a".into()),
                    isdone: None,
                },
            )
            .expect("create");
        let done = ItemChanges {
            shortdesc: None,
            isdone: Some(true),
        };
        let updated = store.update_item(list.id, item.id, &done).expect("update");
        let updated = updated.expect("found");
        assert_eq!((updated.shortdesc.as_str(), updated.isdone), ("a", true));
        assert!(store.delete_item(list.id, item.id).expect("delete"));
        assert_eq!(
            store.update_item(list.id, item.id, &done).expect("update"),
            None
        );
    }

    #[test]
    fn creates_the_file_and_its_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nested").join("todo.sqlite3");
        let store = Store::open(&path).expect("open");
        store.create_list("x").expect("list");
        drop(store);
        let again = Store::open(&path).expect("reopen");
        assert!(again.find_list("x").expect("find").is_some());
    }
}
