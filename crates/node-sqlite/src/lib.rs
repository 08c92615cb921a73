//! The `sqlite` node kind: an embedded, file-backed time-series store.
//!
//! Layout: `series(id, measurement, tags)` holds each distinct tag set once; `points(series_id,
//! time, fields)` is a `WITHOUT ROWID` table keyed by (series, time). A point written at the
//! same series and timestamp as a stored one is merged into it field by field, as in InfluxDB
//! (the `Node::write` contract); `Node::replace` swaps whole points in one transaction. Fields are a compact binary
//! encoding that keeps each field's type. WAL mode; one transaction per batch.
//!
//! Fields are stored in the binary encoding of [`codec`].
//!
//! Reconciliation: tips read each tag set's newest row at or before the horizon (and the
//! newest after it); digests fold the points of a range, a page at a time, with
//! [`digest_points`], the reference every node kind agrees with; deletes remove the rows of
//! every tag set of one series at the given times in one transaction, and tag sets left
//! without a point (an InfluxDB series without points is gone too).

mod codec;

use codec::{KeyInterner, Unreadable, decode_fields, encode_fields};
use dms_core::model::{Batch, Name, Nanos, Point, SeriesKey, TimeRange};
use dms_core::node::digest::{Depth, Digests, Tip, digest_points, fingerprint};
use dms_core::node::{BatchStream, ErrorKind, Node, NodeError, Probe, Role};
use dms_core::schema::Schema;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::functions::FunctionFlags;
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

type Pool = r2d2::Pool<SqliteConnectionManager>;
type Conn = r2d2::PooledConnection<SqliteConnectionManager>;

const SCHEMA_SQL: &str = "
CREATE TABLE IF NOT EXISTS series (
    id          INTEGER PRIMARY KEY,
    measurement TEXT NOT NULL,
    tags        TEXT NOT NULL,
    UNIQUE (measurement, tags)
);
CREATE TABLE IF NOT EXISTS points (
    series_id INTEGER NOT NULL,
    time      INTEGER NOT NULL,
    fields    BLOB NOT NULL,
    PRIMARY KEY (series_id, time)
) WITHOUT ROWID;
";

/// Points a digest reads per page: the most it holds in memory at once.
const DIGEST_PAGE: usize = 10_000;

/// An embedded SQLite time-series store.
#[derive(Clone)]
pub struct SqliteNode {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    path: PathBuf,
    schema: Schema,
    pool: Pool,
    /// The file did not exist before this node opened (and created) it.
    created: bool,
}

/// One stored tag set, decoded.
#[derive(Clone)]
struct SeriesRow {
    id: i64,
    measurement: Name,
    tags: dms_core::model::Tags,
}

/// The version of the SQLite library stores are kept with (`3.46.0`).
pub fn sqlite_version() -> &'static str {
    rusqlite::version()
}

impl SqliteNode {
    /// Opens (creating if needed) the store at `path` with `pool_size` connections.
    ///
    /// # Errors
    /// [`ErrorKind::Storage`] when the folder or file cannot be created or is not a database.
    pub fn open(
        name: &str,
        path: &Path,
        schema: Schema,
        pool_size: usize,
    ) -> Result<Self, NodeError> {
        let err = |e: &dyn std::fmt::Display| {
            NodeError::new(
                name,
                ErrorKind::Storage,
                format!("cannot open {}: {e}", path.display()),
            )
        };
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| err(&e))?;
        }
        let created = !path.exists();
        // Check the file and create the tables on a plain connection first: a pool would retry
        // a broken file until its timeout instead of saying what is wrong.
        let mut conn = rusqlite::Connection::open(path).map_err(|e| err(&e))?;
        init_connection(&mut conn).map_err(|e| err(&e))?;
        conn.execute_batch(SCHEMA_SQL).map_err(|e| err(&e))?;
        drop(conn);
        let manager = SqliteConnectionManager::file(path).with_init(init_connection);
        let pool = r2d2::Pool::builder()
            .max_size(u32::try_from(pool_size.max(1)).unwrap_or(u32::MAX))
            .min_idle(Some(1))
            .connection_timeout(std::time::Duration::from_secs(30))
            .build(manager)
            .map_err(|e| err(&e))?;
        Ok(SqliteNode {
            inner: Arc::new(Inner {
                name: name.to_string(),
                path: path.to_path_buf(),
                schema,
                pool,
                created,
            }),
        })
    }

    async fn blocking<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<R, NodeError> + Send + 'static,
    ) -> Result<R, NodeError> {
        let inner = self.inner.clone();
        run_blocking(inner, f).await
    }
}

/// WAL, normal sync, a long busy wait, and a page cache of 256 KiB per connection: reads and
/// writes here are sequential scans and appends at the right edge of one index, which a small
/// cache serves as fast as a large one (same sync speed on the bench with 1 MiB), and a pool
/// of connections per node multiplies it (peak RSS of the bench's sqlite sync 65 → 57 MB).
/// Every connection also gets `dms_merge_fields(old, new)`, the field-wise merge of writes.
fn init_connection(c: &mut rusqlite::Connection) -> rusqlite::Result<()> {
    c.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000; PRAGMA cache_size=-256;",
    )?;
    c.create_scalar_function(
        "dms_merge_fields",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let blob = |i: usize| {
                ctx.get_raw(i)
                    .as_blob()
                    .map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e)))
            };
            codec::merge_encoded(blob(0)?, blob(1)?)
                .map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e)))
        },
    )
}

/// How [`Inner::insert`] treats a point stored at the same tag set and time.
#[derive(Clone, Copy)]
enum Insert {
    /// Field by field: the new fields win, the old ones the new point lacks stay.
    Merge,
    /// The new point replaces the stored one whole.
    Replace,
}

async fn run_blocking<R: Send + 'static>(
    inner: Arc<Inner>,
    f: impl FnOnce(&Inner) -> Result<R, NodeError> + Send + 'static,
) -> Result<R, NodeError> {
    let name = inner.name.clone();
    tokio::task::spawn_blocking(move || f(&inner))
        .await
        .map_err(|e| {
            NodeError::new(
                &name,
                ErrorKind::Storage,
                format!("storage task failed: {e}"),
            )
        })?
}

impl Inner {
    fn conn(&self) -> Result<Conn, NodeError> {
        self.pool.get().map_err(|e| self.storage(&e))
    }

    fn storage(&self, e: &dyn std::fmt::Display) -> NodeError {
        NodeError::new(
            &self.name,
            ErrorKind::Storage,
            format!("{}: {e}", self.path.display()),
        )
    }

    /// Every stored tag set that belongs to `series` (or all, with `None`), per the schema.
    fn series_rows(
        &self,
        conn: &rusqlite::Connection,
        wanted: Option<&SeriesKey>,
    ) -> Result<Vec<(SeriesKey, SeriesRow)>, NodeError> {
        let mut stmt = conn
            .prepare_cached("SELECT id, measurement, tags FROM series ORDER BY id")
            .map_err(|e| self.storage(&e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(|e| self.storage(&e))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, measurement, tags_json) = row.map_err(|e| self.storage(&e))?;
            if !self.schema.matches_measurement(&measurement) {
                continue;
            }
            let tags: Vec<(String, String)> = serde_json::from_str(&tags_json).map_err(|e| {
                NodeError::new(
                    &self.name,
                    ErrorKind::Storage,
                    format!("series {id} has unreadable tags: {e}"),
                )
            })?;
            let key = self.schema.series_of_parts(&measurement, |k| {
                tags.iter().find(|(tk, _)| tk == k).map(|(_, v)| v.as_str())
            });
            let Some(key) = key else { continue };
            if wanted.is_some_and(|w| w != &key) {
                continue;
            }
            out.push((
                key,
                SeriesRow {
                    id,
                    measurement: Arc::from(measurement.as_str()),
                    tags: tags
                        .into_iter()
                        .map(|(k, v)| (Arc::from(k.as_str()), Arc::from(v.as_str())))
                        .collect(),
                },
            ));
        }
        Ok(out)
    }

    /// Writes `batch` in one transaction, each point merged field by field into a stored one
    /// at the same tag set and time ([`codec::merge_encoded`]).
    fn write(&self, batch: &Batch) -> Result<(), NodeError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.storage(&e))?;
        self.insert(&tx, &batch.points, Insert::Merge)?;
        tx.commit().map_err(|e| self.storage(&e))
    }

    /// Makes the points of `series` at `times` exactly `points`, in one transaction.
    fn replace(
        &self,
        series: &SeriesKey,
        times: &[Nanos],
        points: &[Point],
    ) -> Result<(), NodeError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.storage(&e))?;
        self.delete_in(&tx, series, times)?;
        self.insert(&tx, points, Insert::Replace)?;
        tx.commit().map_err(|e| self.storage(&e))
    }

    /// Inserts points inside a transaction.
    fn insert(
        &self,
        tx: &rusqlite::Transaction<'_>,
        points: &[Point],
        how: Insert,
    ) -> Result<(), NodeError> {
        let mut insert_series = tx
            .prepare_cached(
                "INSERT INTO series (measurement, tags) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            )
            .map_err(|e| self.storage(&e))?;
        let mut find_series = tx
            .prepare_cached("SELECT id FROM series WHERE measurement = ?1 AND tags = ?2")
            .map_err(|e| self.storage(&e))?;
        let mut insert_point = tx
            .prepare_cached(match how {
                Insert::Merge => {
                    "INSERT INTO points (series_id, time, fields) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (series_id, time) DO UPDATE SET fields = dms_merge_fields(fields, excluded.fields)"
                }
                Insert::Replace => {
                    "INSERT OR REPLACE INTO points (series_id, time, fields) VALUES (?1, ?2, ?3)"
                }
            })
            .map_err(|e| self.storage(&e))?;
        let mut buf = Vec::with_capacity(128);
        let mut current: Option<(&Point, i64)> = None;
        for p in points {
            check_point(&self.name, p)?;
            let same =
                current.is_some_and(|(c, _)| c.measurement == p.measurement && c.tags == p.tags);
            let id = match current {
                Some((_, id)) if same => id,
                _ => {
                    let tags = tags_json(&p.tags);
                    insert_series
                        .execute(params![&*p.measurement, tags])
                        .map_err(|e| self.storage(&e))?;
                    let id: i64 = find_series
                        .query_row(params![&*p.measurement, tags], |r| r.get(0))
                        .map_err(|e| self.storage(&e))?;
                    id
                }
            };
            current = Some((p, id));
            buf.clear();
            encode_fields(&p.fields, &mut buf);
            insert_point
                .execute(params![id, p.time, &buf])
                .map_err(|e| self.storage(&e))?;
        }
        Ok(())
    }

    /// Reads up to `limit` points from `start` (inclusive) to `end` (inclusive) and returns them
    /// with the cursor to continue from, never splitting one timestamp's points.
    fn read_page(
        &self,
        rows: &[SeriesRow],
        start: Nanos,
        end: Nanos,
        limit: usize,
        keys: &mut KeyInterner,
    ) -> Result<(Vec<Point>, Option<Nanos>), NodeError> {
        let conn = self.conn()?;
        let ids: Vec<String> = rows.iter().map(|r| r.id.to_string()).collect();
        // The ids are integers this store assigned; formatting them into the SQL is safe.
        let in_list = ids.join(",");
        let sql = format!(
            "SELECT series_id, time, fields FROM points WHERE series_id IN ({in_list}) \
             AND time >= ?1 AND time <= ?2 ORDER BY time, series_id LIMIT ?3"
        );
        // One row more than a batch tells whether the last timestamp continues past it.
        let limit_i = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
        let mut points = self.query_points(
            &conn,
            &sql,
            rows,
            PageBounds {
                start,
                end,
                limit: limit_i,
            },
            keys,
        )?;
        if points.len() <= limit {
            return Ok((points, None));
        }
        let extra = points.pop().map(|p| p.time);
        let last = points.last().map(|p| p.time).unwrap_or(end);
        if extra != Some(last) {
            return Ok((points, last.checked_add(1).filter(|n| *n <= end)));
        }
        // The last timestamp's points continue into the next page: keep them together.
        while points.last().is_some_and(|p| p.time == last) {
            points.pop();
        }
        if points.is_empty() {
            // One timestamp fills the page: take all of its points at once.
            let all = self.query_points(
                &conn,
                &sql,
                rows,
                PageBounds {
                    start: last,
                    end: last,
                    limit: i64::MAX,
                },
                keys,
            )?;
            return Ok((all, last.checked_add(1).filter(|n| *n <= end)));
        }
        Ok((points, Some(last)))
    }

    /// Runs one page query (`sql` binds start, end and limit) and decodes its rows.
    fn query_points(
        &self,
        conn: &Conn,
        sql: &str,
        rows: &[SeriesRow],
        page: PageBounds,
        keys: &mut KeyInterner,
    ) -> Result<Vec<Point>, NodeError> {
        let mut stmt = conn.prepare_cached(sql).map_err(|e| self.storage(&e))?;
        let mut q = stmt
            .query(params![page.start, page.end, page.limit])
            .map_err(|e| self.storage(&e))?;
        let mut out = Vec::new();
        while let Some(r) = q.next().map_err(|e| self.storage(&e))? {
            let sid: i64 = r.get(0).map_err(|e| self.storage(&e))?;
            let time: i64 = r.get(1).map_err(|e| self.storage(&e))?;
            let blob = r.get_ref(2).map_err(|e| self.storage(&e))?;
            let bytes = blob.as_blob().map_err(|e| self.storage(&e))?;
            let fields = decode_fields(bytes, keys).map_err(|m| self.unreadable(sid, time, &m))?;
            let Some(row) = rows.iter().find(|s| s.id == sid) else {
                continue;
            };
            out.push(Point {
                measurement: row.measurement.clone(),
                tags: row.tags.clone(),
                fields,
                time,
            });
        }
        Ok(out)
    }
}

/// One page of a read: times from `start` to `end` (inclusive), at most `limit` rows.
#[derive(Clone, Copy)]
struct PageBounds {
    start: Nanos,
    end: Nanos,
    limit: i64,
}

/// The stored tag sets of each wanted series.
type TagSets = BTreeMap<SeriesKey, Vec<SeriesRow>>;

impl Inner {
    /// The stored tag sets of the `wanted` series, grouped by series.
    fn tag_sets(
        &self,
        conn: &rusqlite::Connection,
        wanted: &HashSet<SeriesKey>,
    ) -> Result<TagSets, NodeError> {
        let mut out = TagSets::new();
        for (key, row) in self.series_rows(conn, None)? {
            if wanted.contains(&key) {
                out.entry(key).or_default().push(row);
            }
        }
        Ok(out)
    }

    /// The tips of the `wanted` series: per tag set, its newest row at or before `horizon`
    /// (fingerprinted, as a point) and its newest time after it, folded per series.
    fn tips(
        &self,
        wanted: &HashSet<SeriesKey>,
        horizon: Nanos,
    ) -> Result<HashMap<SeriesKey, Tip>, NodeError> {
        let conn = self.conn()?;
        let mut newest = conn
            .prepare_cached(
                "SELECT time, fields FROM points WHERE series_id = ?1 AND time <= ?2 \
                 ORDER BY time DESC LIMIT 1",
            )
            .map_err(|e| self.storage(&e))?;
        let mut future = conn
            .prepare_cached("SELECT MAX(time) FROM points WHERE series_id = ?1 AND time > ?2")
            .map_err(|e| self.storage(&e))?;
        let mut keys = KeyInterner::default();
        let mut out: HashMap<SeriesKey, Tip> = HashMap::new();
        for (key, rows) in self.tag_sets(&conn, wanted)? {
            for row in rows {
                let found: Option<(i64, Vec<u8>)> = newest
                    .query_row(params![row.id, horizon], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
                    .map_err(|e| self.storage(&e))?;
                if let Some((time, blob)) = found {
                    let fields = decode_fields(&blob, &mut keys)
                        .map_err(|m| self.unreadable(row.id, time, &m))?;
                    let point = Point {
                        measurement: row.measurement.clone(),
                        tags: row.tags.clone(),
                        fields,
                        time,
                    };
                    let tip = out.entry(key.clone()).or_default();
                    tip.add_newest(time, fingerprint(&point));
                }
                let after: Option<i64> = future
                    .query_row(params![row.id, horizon], |r| r.get(0))
                    .map_err(|e| self.storage(&e))?;
                if let Some(t) = after {
                    out.entry(key.clone()).or_default().add_future(t);
                }
            }
        }
        Ok(out)
    }

    /// Digests of the `wanted` series over `range`: each series' points read in time order,
    /// [`DIGEST_PAGE`] at a time, and folded with [`digest_points`].
    fn digests(
        &self,
        wanted: &HashSet<SeriesKey>,
        range: TimeRange,
        window: Nanos,
        depth: Depth,
    ) -> Result<Digests, NodeError> {
        let sets = self.tag_sets(&*self.conn()?, wanted)?;
        let mut keys = KeyInterner::default();
        let mut out = Digests::new();
        for (key, rows) in sets {
            let mut windows = BTreeMap::new();
            let mut cursor = (!range.is_empty()).then_some(range.start);
            while let Some(from) = cursor {
                let (points, next) =
                    self.read_page(&rows, from, range.end, DIGEST_PAGE, &mut keys)?;
                digest_points(&points, window, depth, &self.schema.key_field, &mut windows);
                cursor = next;
            }
            if !windows.is_empty() {
                out.insert(key, windows);
            }
        }
        Ok(out)
    }

    /// Deletes the rows of every tag set of `series` at `times`, and the tag sets this
    /// leaves empty, in one transaction.
    fn delete(&self, series: &SeriesKey, times: &[Nanos]) -> Result<(), NodeError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.storage(&e))?;
        self.delete_in(&tx, series, times)?;
        tx.commit().map_err(|e| self.storage(&e))
    }

    /// Deletes the points of every tag set of `series` at `times` inside a transaction, and
    /// the tag sets left without a point.
    fn delete_in(
        &self,
        tx: &rusqlite::Transaction<'_>,
        series: &SeriesKey,
        times: &[Nanos],
    ) -> Result<(), NodeError> {
        let mut delete_point = tx
            .prepare_cached("DELETE FROM points WHERE series_id = ?1 AND time = ?2")
            .map_err(|e| self.storage(&e))?;
        let mut delete_empty = tx
            .prepare_cached(
                "DELETE FROM series WHERE id = ?1 \
                 AND NOT EXISTS (SELECT 1 FROM points WHERE series_id = ?1)",
            )
            .map_err(|e| self.storage(&e))?;
        for (_, row) in self.series_rows(tx, Some(series))? {
            for t in times {
                delete_point
                    .execute(params![row.id, t])
                    .map_err(|e| self.storage(&e))?;
            }
            delete_empty
                .execute(params![row.id])
                .map_err(|e| self.storage(&e))?;
        }
        Ok(())
    }

    /// The error for a stored point whose fields cannot be decoded.
    fn unreadable(&self, series_id: i64, time: Nanos, why: &Unreadable) -> NodeError {
        NodeError::new(
            &self.name,
            ErrorKind::Storage,
            format!("point {series_id}/{time} is unreadable: {why}"),
        )
    }
}

fn check_point(node: &str, p: &Point) -> Result<(), NodeError> {
    if p.measurement.is_empty() {
        return Err(NodeError::new(
            node,
            ErrorKind::InvalidData,
            "a point has no measurement",
        ));
    }
    if p.fields.is_empty() {
        return Err(NodeError::new(
            node,
            ErrorKind::InvalidData,
            format!("point at {} in {} has no field", p.time, p.measurement),
        ));
    }
    Ok(())
}

fn tags_json(tags: &[(Name, Name)]) -> String {
    let pairs: Vec<(&str, &str)> = tags.iter().map(|(k, v)| (&**k, &**v)).collect();
    // Serializing a list of string pairs cannot fail.
    serde_json::to_string(&pairs).unwrap_or_default()
}

struct ReadState {
    node: SqliteNode,
    series: SeriesKey,
    rows: Option<Vec<SeriesRow>>,
    cursor: Option<Nanos>,
    end: Nanos,
    batch_size: usize,
    keys: KeyInterner,
}

#[async_trait::async_trait]
impl Node for SqliteNode {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn describe(&self) -> String {
        format!("sqlite {}", self.inner.path.display())
    }

    async fn ping(&self) -> Result<(), NodeError> {
        self.blocking(|inner| {
            let conn = inner.conn()?;
            conn.query_row("SELECT count(*) FROM series", [], |r| r.get::<_, i64>(0))
                .map(|_| ())
                .map_err(|e| inner.storage(&e))
        })
        .await
    }

    async fn probe(&self, role: Role) -> Result<Probe, NodeError> {
        self.blocking(move |inner| {
            let conn = inner.conn()?;
            let series: i64 = conn
                .query_row("SELECT count(*) FROM series", [], |r| r.get(0))
                .map_err(|e| inner.storage(&e))?;
            let shown = inner.path.display();
            let detail = match role {
                Role::Primary if inner.created && series == 0 => {
                    format!("store {shown} holds nothing: it did not exist, dms created it")
                }
                Role::Primary => format!("store {shown} can be read ({series} tag sets)"),
                Role::Backup => {
                    // Take the write lock and give it back: the file can be written.
                    conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;")
                        .map_err(|e| inner.storage(&e))?;
                    format!("store {shown} can be written")
                }
            };
            Ok(Probe {
                server: format!("SQLite {}", sqlite_version()),
                detail,
                note: None,
            })
        })
        .await
    }

    async fn list_series(&self) -> Result<Vec<SeriesKey>, NodeError> {
        self.blocking(|inner| {
            let conn = inner.conn()?;
            let mut keys: Vec<SeriesKey> = inner
                .series_rows(&conn, None)?
                .into_iter()
                .map(|(k, _)| k)
                .collect();
            keys.sort();
            keys.dedup();
            Ok(keys)
        })
        .await
    }

    async fn newest(&self, series: &[SeriesKey]) -> Result<HashMap<SeriesKey, Nanos>, NodeError> {
        let wanted: std::collections::HashSet<SeriesKey> = series.iter().cloned().collect();
        self.blocking(move |inner| {
            let conn = inner.conn()?;
            let mut stmt = conn
                .prepare_cached("SELECT MAX(time) FROM points WHERE series_id = ?1")
                .map_err(|e| inner.storage(&e))?;
            let mut out: HashMap<SeriesKey, Nanos> = HashMap::new();
            for (key, row) in inner.series_rows(&conn, None)? {
                if !wanted.contains(&key) {
                    continue;
                }
                let max: Option<i64> = stmt
                    .query_row(params![row.id], |r| r.get(0))
                    .optional()
                    .map_err(|e| inner.storage(&e))?
                    .flatten();
                if let Some(t) = max {
                    let e = out.entry(key).or_insert(t);
                    *e = (*e).max(t);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn tips(
        &self,
        series: &[SeriesKey],
        horizon: Nanos,
    ) -> Result<HashMap<SeriesKey, Tip>, NodeError> {
        let wanted: HashSet<SeriesKey> = series.iter().cloned().collect();
        self.blocking(move |inner| inner.tips(&wanted, horizon))
            .await
    }

    async fn digests(
        &self,
        series: &[SeriesKey],
        range: TimeRange,
        window: Nanos,
        depth: Depth,
    ) -> Result<Digests, NodeError> {
        if window <= 0 {
            return Err(NodeError::new(
                self.name(),
                ErrorKind::InvalidData,
                format!("a digest window must be positive, not {window} ns"),
            ));
        }
        let wanted: HashSet<SeriesKey> = series.iter().cloned().collect();
        self.blocking(move |inner| inner.digests(&wanted, range, window, depth))
            .await
    }

    async fn delete(&self, series: &SeriesKey, times: &[Nanos]) -> Result<u64, NodeError> {
        if times.is_empty() {
            return Ok(0);
        }
        let (key, asked) = (series.clone(), times.to_vec());
        self.blocking(move |inner| inner.delete(&key, &asked))
            .await?;
        Ok(times.len() as u64)
    }

    fn read(&self, series: &SeriesKey, range: TimeRange, batch_size: usize) -> BatchStream {
        let state = ReadState {
            node: self.clone(),
            series: series.clone(),
            rows: None,
            cursor: (!range.is_empty()).then_some(range.start),
            end: range.end,
            batch_size: batch_size.max(1),
            keys: KeyInterner::default(),
        };
        Box::pin(futures::stream::try_unfold(state, |mut st| async move {
            loop {
                let Some(cursor) = st.cursor else {
                    return Ok(None);
                };
                let inner = st.node.inner.clone();
                let series = st.series.clone();
                let rows = st.rows.take();
                let (end, limit) = (st.end, st.batch_size);
                let mut keys = std::mem::take(&mut st.keys);
                let (rows, points, next, keys) = run_blocking(inner, move |inner| {
                    let rows = match rows {
                        Some(r) => r,
                        None => {
                            let conn = inner.conn()?;
                            inner
                                .series_rows(&conn, Some(&series))?
                                .into_iter()
                                .map(|(_, r)| r)
                                .collect()
                        }
                    };
                    if rows.is_empty() {
                        return Ok((rows, Vec::new(), None, keys));
                    }
                    let (points, next) = inner.read_page(&rows, cursor, end, limit, &mut keys)?;
                    Ok((rows, points, next, keys))
                })
                .await?;
                st.rows = Some(rows);
                st.keys = keys;
                st.cursor = next;
                if !points.is_empty() {
                    return Ok(Some((Batch::new(points), st)));
                }
            }
        }))
    }

    async fn write(&self, batch: Arc<Batch>) -> Result<(), NodeError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.blocking(move |inner| inner.write(&batch)).await
    }

    async fn replace(
        &self,
        series: &SeriesKey,
        times: &[Nanos],
        points: Arc<Batch>,
    ) -> Result<(), NodeError> {
        if times.is_empty() {
            return Ok(());
        }
        let (key, times) = (series.clone(), times.to_vec());
        self.blocking(move |inner| inner.replace(&key, &times, &points.points))
            .await
    }

    fn replace_is_atomic(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dms_core::model::FieldValue;
    use dms_core::node::digest::Digest;
    use futures::TryStreamExt;

    fn open_node(dir: &tempfile::TempDir) -> SqliteNode {
        SqliteNode::open("s1", &dir.path().join("s.db"), Schema::default(), 2).unwrap()
    }

    /// A 1m bar of `symbol`, with an extra `venue` tag when given.
    fn bar(symbol: &str, venue: Option<&str>, time: Nanos, close: f64) -> Point {
        let (measurement, tags) = Schema::default().identity(&SeriesKey::new(symbol, "1m"));
        let mut tags = tags.to_vec();
        if let Some(v) = venue {
            tags.push((Arc::from("venue"), Arc::from(v)));
        }
        Point {
            measurement,
            tags: tags.into(),
            fields: vec![
                (Arc::from("close"), FieldValue::Float(close)),
                (Arc::from("volume"), FieldValue::Integer(time)),
                (Arc::from("note"), FieldValue::String("n".into())),
            ],
            time,
        }
    }

    async fn put(node: &SqliteNode, points: Vec<Point>) {
        node.write(Arc::new(Batch::new(points))).await.unwrap();
    }

    #[tokio::test]
    async fn tips_add_the_tag_sets_at_the_newest_time_and_keep_the_future_apart() {
        let dir = tempfile::tempdir().unwrap();
        let node = open_node(&dir);
        let (a, b) = (SeriesKey::new("A", "1m"), SeriesKey::new("B", "1m"));
        let x = bar("A", Some("x"), 20, 2.0);
        let y = bar("A", Some("y"), 20, 3.0);
        let future = bar("A", None, 90, 9.0);
        put(
            &node,
            vec![bar("A", Some("x"), 10, 1.0), x.clone(), y.clone()],
        )
        .await;
        put(
            &node,
            vec![bar("A", Some("y"), 5, 0.5), future, bar("B", None, 7, 1.0)],
        )
        .await;
        let tips = node
            .tips(&[a.clone(), SeriesKey::new("C", "1m")], 50)
            .await
            .unwrap();
        assert_eq!(tips.len(), 1, "only asked series with data: {tips:?}");
        let fp = fingerprint(&x).wrapping_add(fingerprint(&y));
        assert_eq!(tips[&a].newest, Some((20, fp)));
        assert_eq!(tips[&a].future, Some(90));
        // Before the horizon moves past 20, only x's older point counts.
        let early = node.tips(&[a.clone(), b.clone()], 12).await.unwrap();
        assert_eq!(
            early[&a].newest,
            Some((10, fingerprint(&bar("A", Some("x"), 10, 1.0))))
        );
        assert_eq!(early[&a].future, Some(90));
        assert_eq!(early[&b].newest_time(), Some(7));
        assert_eq!(early[&b].future, None);
    }

    #[tokio::test]
    async fn digests_are_the_reference_fold_of_the_points_in_range() {
        let dir = tempfile::tempdir().unwrap();
        let node = open_node(&dir);
        let a = SeriesKey::new("A", "1m");
        let mut points = Vec::new();
        for t in 0..25_000 {
            points.push(bar("A", None, t, 0.1 * t as f64));
            if t % 7 == 0 {
                points.push(bar("A", Some("v"), t, 1.0 + t as f64));
            }
        }
        put(&node, points.clone()).await;
        put(&node, vec![bar("B", None, 100, 5.0)]).await;
        let range = TimeRange::new(3, 23_456);
        for depth in [Depth::Cheap, Depth::Full] {
            let got = node
                .digests(std::slice::from_ref(&a), range, 1000, depth)
                .await
                .unwrap();
            let mut want = BTreeMap::new();
            let in_range: Vec<&Point> = points
                .iter()
                .filter(|p| p.time >= range.start && p.time <= range.end)
                .collect();
            digest_points(in_range, 1000, depth, "close", &mut want);
            assert_eq!(got.len(), 1);
            assert_eq!(got[&a].len(), 24);
            for (w, d) in &want {
                assert_eq!(
                    &got[&a][w], d,
                    "window {w}: the reference fold, bit for bit"
                );
            }
        }
        let err = node.digests(&[a], range, 0, Depth::Full).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidData);
    }

    #[tokio::test]
    async fn delete_removes_exactly_those_times_of_that_series() {
        let dir = tempfile::tempdir().unwrap();
        let node = open_node(&dir);
        let (a, b) = (SeriesKey::new("A", "1m"), SeriesKey::new("B", "1m"));
        let mut points = Vec::new();
        for t in 1..=5 {
            points.push(bar("A", None, t, 1.0));
            points.push(bar("B", None, t, 1.0));
        }
        points.push(bar("A", Some("v"), 3, 1.0));
        put(&node, points).await;
        assert_eq!(node.delete(&a, &[2, 3, 42]).await.unwrap(), 3);
        let left = |s: &SeriesKey| {
            let node = node.clone();
            let s = s.clone();
            async move {
                let batches: Vec<Batch> = node
                    .read(&s, TimeRange::new(0, 100), 100)
                    .try_collect()
                    .await
                    .unwrap();
                batches
                    .into_iter()
                    .flat_map(|b| b.points)
                    .map(|p| (p.time, p.tags.len()))
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(left(&a).await, [(1, 2), (4, 2), (5, 2)]);
        assert_eq!(left(&b).await.len(), 5, "another series keeps every point");
        // A series whose last points go is gone from the listing, as on InfluxDB.
        node.delete(&a, &[1, 4, 5]).await.unwrap();
        assert_eq!(node.list_series().await.unwrap(), std::slice::from_ref(&b));
        assert_eq!(node.delete(&b, &[]).await.unwrap(), 0);
        let digests = node
            .digests(&[a, b.clone()], TimeRange::new(0, 100), 10, Depth::Cheap)
            .await
            .unwrap();
        assert_eq!(digests.len(), 1);
        assert_eq!(digests[&b][&0], {
            let mut d = Digest::default();
            for t in 1..=5 {
                d.add(&bar("B", None, t, 1.0), Depth::Cheap, "close");
            }
            d
        });
    }
}
