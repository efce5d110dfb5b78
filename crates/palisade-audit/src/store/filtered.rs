//! Filtered, paged reads of the log, built for either backend with `QueryBuilder`
//! (which spells the placeholders); what else the two spell differently is
//! [`Dialect`]'s.
//!
//! The actor, action and resource indexes lead with the event's bucket, `idx >> 14`
//! (16,384 consecutive events), before the actor, action or resource (migration 0007):
//! - Without it, a batch of 1000 events from 1000 actors inserts into 1000 pages
//!   spread over each of those indexes, and every page an append dirties is written
//!   again at commit: a WAL frame on SQLite, a full-page image on PostgreSQL. That was
//!   most of an append's time once the log outgrew the page cache. With the bucket
//!   first, a batch's entries land in the newest bucket's few pages.
//! - An action prefix covers several actions, whose entries the index yields in action
//!   order: a page of the newest sorted every match in the log. Within one bucket it
//!   sorts at most that bucket's.
//!
//! A read filtered by actor, action or resource therefore walks the buckets in its
//! order, a group of buckets per statement (a `UNION ALL` on SQLite, a lateral join
//! over an array of buckets on PostgreSQL). Each bucket is one index seek under its
//! own `LIMIT`, so a statement's work is bounded by its buckets and the page size,
//! whatever the planner does with the rest. Other filters read as one statement,
//! as before.

use super::{AuditStoreError, EVENT_COLUMNS, EventFilter, Order, to_db};
use sqlx::QueryBuilder;

/// Events per bucket of the actor, action and resource indexes, as a shift. The index
/// expressions of migration 0007 spell the same `idx >> 14`, and a query uses an
/// expression index only when it spells the expression the same way.
pub(crate) const BUCKET_BITS: u32 = 14;

/// The most buckets one statement reads. The first statement reads one bucket (a
/// common filter fills its page there); each next one reads four times as many, up
/// to this, so a rare filter over 10 million events (610 buckets) takes 13 statements.
const MAX_GROUP: u64 = 64;

/// What the two backends spell differently in a filtered read.
pub(crate) trait Dialect: sqlx::Database {
    /// "Greater than or equal" and "less than", bytewise, as operators a B-tree index
    /// on `action` serves with bound parameters, so that an action-prefix filter is an
    /// index range scan in a prepared (generic) plan, which a `LIKE $1` is not.
    /// PostgreSQL's index uses `text_pattern_ops`, whose operators are spelled
    /// `~>=~`/`~<~`; SQLite's default collation is bytewise.
    const GE: &'static str;
    /// See [`Dialect::GE`].
    const LT: &'static str;
    /// Whether to name the index a bucket's read must seek. SQLite's planner, without
    /// statistics, prefers the `(tenant, idx)` index for its order and would scan the
    /// log down to the bucket; PostgreSQL has statistics and no such clause.
    const NAMES_INDEX: bool;

    /// One statement reading several buckets, each under its own `LIMIT wanted`, and
    /// the first `wanted` of them all in the read's order.
    fn push_group<'a>(
        read: &FilteredRead<'_>,
        q: &mut QueryBuilder<'a, Self>,
        buckets: &[u64],
        wanted: i64,
    ) -> Result<(), AuditStoreError>;
}

impl Dialect for sqlx::Postgres {
    const GE: &'static str = "~>=~";
    const LT: &'static str = "~<~";
    const NAMES_INDEX: bool = false;

    /// A lateral join over the buckets as one array parameter: the statement's text
    /// does not depend on the group, so it is prepared once and its plan reused (64
    /// `UNION ALL` arms took longer to plan than to run).
    fn push_group<'a>(
        read: &FilteredRead<'_>,
        q: &mut QueryBuilder<'a, Self>,
        buckets: &[u64],
        wanted: i64,
    ) -> Result<(), AuditStoreError> {
        let buckets = buckets
            .iter()
            .map(|&b| to_db(b))
            .collect::<Result<Vec<i64>, _>>()?;
        q.push("SELECT e.* FROM unnest(")
            .push_bind(buckets)
            .push("::bigint[]) AS b(n) CROSS JOIN LATERAL (");
        read.push_select(q, Bucket::Joined, wanted)?;
        q.push(") AS e").push(read.order_by()).push_bind(wanted);
        Ok(())
    }
}

impl Dialect for sqlx::Sqlite {
    const GE: &'static str = ">=";
    const LT: &'static str = "<";
    const NAMES_INDEX: bool = true;

    /// A `UNION ALL` of one `SELECT` per bucket: SQLite has neither arrays nor
    /// lateral joins, and plans in process, in microseconds.
    fn push_group<'a>(
        read: &FilteredRead<'_>,
        q: &mut QueryBuilder<'a, Self>,
        buckets: &[u64],
        wanted: i64,
    ) -> Result<(), AuditStoreError> {
        for (i, &bucket) in buckets.iter().enumerate() {
            if i > 0 {
                q.push(" UNION ALL ");
            }
            q.push("SELECT * FROM (");
            read.push_select(q, Bucket::One(bucket), wanted)?;
            q.push(format_args!(") AS b{i}"));
        }
        q.push(read.order_by()).push_bind(wanted);
        Ok(())
    }
}

/// Which buckets one `SELECT` reads.
#[derive(Debug, Clone, Copy)]
enum Bucket {
    /// The whole range (no bucket condition).
    All,
    /// This one.
    One(u64),
    /// The `b.n` of the enclosing lateral join.
    Joined,
}

/// The range of actions below `prefix` on a segment boundary: `auth` covers
/// `auth.` up to (not including) `auth/`, since `/` is the byte after `.`.
pub(crate) fn action_range(prefix: &str) -> (String, String) {
    (format!("{prefix}."), format!("{prefix}/"))
}

/// One filtered page, `after < idx < before` in `order`, as the statements that read
/// it: call [`FilteredRead::next_statement`] until it returns `None`, and keep the
/// rows of every statement, in order.
pub(crate) struct FilteredRead<'f> {
    filter: &'f EventFilter,
    after: Option<u64>,
    before: Option<u64>,
    order: Order,
    limit: u32,
    bits: u32,
    plan: Plan,
}

enum Plan {
    /// One statement over the whole range, not yet run.
    Single,
    /// Buckets `next` to `last` (inclusive, in reading order) not yet read, and how
    /// many the next statement reads.
    Buckets { next: u64, last: u64, group: u64 },
    /// Nothing left to read.
    Done,
}

impl<'f> FilteredRead<'f> {
    /// The read of up to `limit` events matching `filter` strictly between `after`
    /// and `before`. `head` is the tree size read before, on the same connection:
    /// the bucket walk stops at its bucket. (Events appended since are read by the
    /// next page, as [`super::read_through`] expects.)
    pub(crate) fn new(
        filter: &'f EventFilter,
        after: Option<u64>,
        before: Option<u64>,
        order: Order,
        limit: u32,
        head: u64,
    ) -> Self {
        Self::with_bucket_bits(filter, after, before, order, limit, head, BUCKET_BITS)
    }

    /// [`FilteredRead::new`] with buckets of `2^bits` events. Only the production
    /// width has indexes; tests use small buckets to cross many of them cheaply,
    /// which is equally correct, only without an index.
    fn with_bucket_bits(
        filter: &'f EventFilter,
        after: Option<u64>,
        before: Option<u64>,
        order: Order,
        limit: u32,
        head: u64,
        bits: u32,
    ) -> Self {
        let bucketed = filter.actor_id.is_some()
            || filter.action_prefix.is_some()
            || filter.resource_type.is_some();
        let mut before = before;
        let plan = if !bucketed {
            Plan::Single
        } else {
            let low = after.map_or(0, |a| a.saturating_add(1));
            let high = before.map_or(head, |b| b.min(head));
            // Bounded by the head throughout, so that every bucket reads the same
            // snapshot of the range, however the statements interleave with appends.
            before = Some(high);
            if limit == 0 || high <= low {
                Plan::Done
            } else {
                let (oldest, newest) = (low >> bits, (high - 1) >> bits);
                let (next, last) = match order {
                    Order::NewestFirst => (newest, oldest),
                    Order::OldestFirst => (oldest, newest),
                };
                Plan::Buckets {
                    next,
                    last,
                    group: 1,
                }
            }
        };
        Self {
            filter,
            after,
            before,
            order,
            limit,
            bits,
            plan,
        }
    }

    /// The next statement to run, given how many rows all earlier ones returned;
    /// `None` when the page is complete.
    pub(crate) fn next_statement<'a, DB>(
        &mut self,
        rows_so_far: usize,
    ) -> Result<Option<QueryBuilder<'a, DB>>, AuditStoreError>
    where
        DB: sqlx::Database + Dialect,
        String: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
        i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    {
        let wanted = (self.limit as usize).saturating_sub(rows_so_far);
        let wanted = i64::try_from(wanted).unwrap_or(i64::MAX);
        match std::mem::replace(&mut self.plan, Plan::Done) {
            Plan::Done => Ok(None),
            Plan::Single => {
                let mut q = QueryBuilder::new("");
                self.push_select(&mut q, Bucket::All, self.limit.into())?;
                Ok(Some(q))
            }
            Plan::Buckets { .. } if wanted == 0 => Ok(None),
            Plan::Buckets { next, last, group } => {
                let buckets = self.take_group(next, last, group);
                let mut q = QueryBuilder::new("");
                if let [bucket] = buckets[..] {
                    self.push_select(&mut q, Bucket::One(bucket), wanted)?;
                } else {
                    DB::push_group(self, &mut q, &buckets, wanted)?;
                }
                Ok(Some(q))
            }
        }
    }

    /// Up to `group` buckets from `next` towards `last`, and the plan for the rest.
    fn take_group(&mut self, next: u64, last: u64, group: u64) -> Vec<u64> {
        let remaining = next.abs_diff(last) + 1;
        let taken = group.min(remaining);
        let buckets: Vec<u64> = match self.order {
            Order::NewestFirst => (0..taken).map(|i| next - i).collect(),
            Order::OldestFirst => (0..taken).map(|i| next + i).collect(),
        };
        if taken < remaining {
            self.plan = Plan::Buckets {
                next: match self.order {
                    Order::NewestFirst => next - taken,
                    Order::OldestFirst => next + taken,
                },
                last,
                group: (group * 4).min(MAX_GROUP),
            };
        }
        buckets
    }

    /// The bucketed index a bucket's read seeks: an exact actor or resource before
    /// a range of actions.
    fn bucket_index(&self) -> &'static str {
        if self.filter.actor_id.is_some() {
            "audit_entries_actor_bucketed"
        } else if self.filter.resource_type.is_some() {
            "audit_entries_resource_bucketed"
        } else {
            "audit_entries_action_bucketed"
        }
    }

    fn order_by(&self) -> &'static str {
        match self.order {
            Order::NewestFirst => " ORDER BY idx DESC LIMIT ",
            Order::OldestFirst => " ORDER BY idx ASC LIMIT ",
        }
    }

    /// `SELECT ... WHERE ... ORDER BY ... LIMIT` within `bucket`.
    fn push_select<'a, DB>(
        &self,
        q: &mut QueryBuilder<'a, DB>,
        bucket: Bucket,
        limit: i64,
    ) -> Result<(), AuditStoreError>
    where
        DB: sqlx::Database + Dialect,
        String: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
        i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    {
        let filter = self.filter;
        q.push(format_args!("SELECT {EVENT_COLUMNS} FROM audit_entries"));
        if !matches!(bucket, Bucket::All) && DB::NAMES_INDEX {
            q.push(format_args!(" INDEXED BY {}", self.bucket_index()));
        }
        q.push(" WHERE tenant = ");
        q.push_bind(filter.tenant.clone());
        match bucket {
            Bucket::All => {}
            Bucket::One(bucket) => {
                q.push(format_args!(" AND (idx >> {}) = ", self.bits))
                    .push_bind(to_db(bucket)?);
            }
            Bucket::Joined => {
                q.push(format_args!(" AND (idx >> {}) = b.n", self.bits));
            }
        }
        if let Some(actor) = &filter.actor_id {
            q.push(" AND actor_id = ").push_bind(actor.clone());
        }
        if let Some(prefix) = &filter.action_prefix {
            // One range the index seeks, `prefix <= action < prefix/`, then the
            // segment boundary: `prefix` itself or `prefix.` onwards, not `prefix-x`.
            let (segment, high) = action_range(prefix);
            q.push(format_args!(" AND action {} ", DB::GE))
                .push_bind(prefix.clone());
            q.push(format_args!(" AND action {} ", DB::LT))
                .push_bind(high);
            q.push(" AND (action = ").push_bind(prefix.clone());
            q.push(format_args!(" OR action {} ", DB::GE))
                .push_bind(segment)
                .push(")");
        }
        if let Some(kind) = &filter.resource_type {
            q.push(" AND resource_type = ").push_bind(kind.clone());
        }
        if let Some(id) = &filter.resource_id {
            q.push(" AND resource_id = ").push_bind(id.clone());
        }
        if let Some(outcome) = filter.outcome {
            q.push(" AND outcome = ")
                .push_bind(outcome.as_str().to_owned());
        }
        if let Some(from) = filter.from_ms {
            q.push(" AND received_at_ms >= ").push_bind(from);
        }
        if let Some(to) = filter.to_ms {
            q.push(" AND received_at_ms < ").push_bind(to);
        }
        if let Some(after) = self.after {
            q.push(" AND idx > ").push_bind(to_db(after)?);
        }
        if let Some(before) = self.before {
            q.push(" AND idx < ").push_bind(to_db(before)?);
        }
        q.push(self.order_by()).push_bind(limit);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::NoteSigner;
    use crate::event::{EventLimits, NewEvent};
    use crate::store::{AuditStore, StoredEvent};
    use palisade_core::principal::TenantId;
    use palisade_store::{Database, DatabaseConfig, SqliteDb};
    use proptest::prelude::*;
    use serde_json::json;
    use sqlx::{Sqlite, SqliteConnection};
    use time::OffsetDateTime;
    use uuid::Uuid;

    const EVENTS: u64 = 300;
    const ACTORS: u64 = 7;

    /// Event `n`: actor `n % 7`, resource `n % 5`, two tenants, half logins.
    fn event(n: u64) -> crate::event::PreparedEvent {
        let new: NewEvent = serde_json::from_value(json!({
            "action": if n.is_multiple_of(2) { "auth.login" } else { "doc.read" },
            "actor": {"id": format!("user-{}", n % ACTORS)},
            "resource": {"type": "doc", "id": format!("{}", n % 5)},
            "outcome": if n.is_multiple_of(3) { "failure" } else { "success" },
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let tenant = if n.is_multiple_of(11) {
            "other"
        } else {
            "acme"
        };
        new.prepare(
            TenantId::parse(tenant).unwrap_or_else(|e| panic!("{e}")),
            Uuid::now_v7(),
            OffsetDateTime::from_unix_timestamp(1_767_225_600 + n as i64)
                .unwrap_or_else(|e| panic!("{e}")),
            &EventLimits::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Migrates `db` and appends the `EVENTS` events in batches of 64.
    async fn fill(db: &Database) {
        db.migrate().await.unwrap_or_else(|e| panic!("{e}"));
        let signer = NoteSigner::from_seed("test", &[7u8; 32]).unwrap_or_else(|e| panic!("{e}"));
        let store = AuditStore::new(db.clone());
        let events: Vec<_> = (0..EVENTS).map(event).collect();
        for batch in events.chunks(64) {
            store
                .append(batch, &signer, "test", 1)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }

    struct Log {
        db: SqliteDb,
        _dir: tempfile::TempDir,
    }

    fn log(rt: &tokio::runtime::Runtime) -> Log {
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let db = Database::connect(&DatabaseConfig::default(), dir.path())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            fill(&db).await;
            let Database::Sqlite(db) = db else {
                unreachable!("the default database is SQLite")
            };
            Log { db, _dir: dir }
        })
    }

    /// A read through the SQLite store's own statement loop.
    async fn run(conn: &mut SqliteConnection, read: FilteredRead<'_>) -> Vec<StoredEvent> {
        crate::store::sqlite::read_filtered(conn, read)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// A read through the PostgreSQL store's own statement loop.
    async fn run_pg(conn: &mut sqlx::PgConnection, read: FilteredRead<'_>) -> Vec<StoredEvent> {
        crate::store::postgres::read_filtered(conn, read)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The same log on PostgreSQL, and what keeps its schema alive.
    struct PgLog {
        pool: sqlx::PgPool,
        _schema: palisade_testkit::postgres::TestDatabase,
    }

    fn pg_log(rt: &tokio::runtime::Runtime) -> PgLog {
        rt.block_on(async {
            let schema = palisade_testkit::postgres::TestDatabase::create()
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let db = Database::connect(
                &DatabaseConfig::postgres(schema.url()),
                std::path::Path::new("."),
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
            fill(&db).await;
            let Database::Postgres(db) = db else {
                unreachable!("a PostgreSQL URL opens PostgreSQL")
            };
            PgLog {
                pool: db.primary().clone(),
                _schema: schema,
            }
        })
    }

    /// One generated read of the `EVENTS`-event log.
    #[derive(Debug, Clone)]
    struct Case {
        filter: EventFilter,
        after: Option<u64>,
        before: Option<u64>,
        order: Order,
        limit: u32,
        /// A head below the tree size stands for appends the size read did not see.
        head: u64,
    }

    impl Case {
        /// The walk over buckets of 4 events, and one statement over the same range
        /// to compare it with. A walk stops at the head's bucket; one statement is
        /// bounded by `before` only, so it is given the head as a bound.
        fn walk_and_single(&self) -> (FilteredRead<'_>, FilteredRead<'_>) {
            let (after, before, order, limit, head) =
                (self.after, self.before, self.order, self.limit, self.head);
            let walk =
                FilteredRead::with_bucket_bits(&self.filter, after, before, order, limit, head, 2);
            let bound = match walk.plan {
                Plan::Single => before,
                _ => Some(before.map_or(head, |b| b.min(head))),
            };
            let mut single =
                FilteredRead::with_bucket_bits(&self.filter, after, bound, order, limit, head, 2);
            single.plan = Plan::Single;
            (walk, single)
        }
    }

    fn case_strategy() -> impl Strategy<Value = Case> {
        (
            filter_strategy(),
            prop::option::of(0..EVENTS + 5),
            prop::option::of(0..EVENTS + 5),
            prop::bool::ANY,
            0u32..40,
            0..3u64,
        )
            .prop_map(
                |(filter, after, before, newest_first, limit, head_short)| Case {
                    filter,
                    after,
                    before,
                    order: if newest_first {
                        Order::NewestFirst
                    } else {
                        Order::OldestFirst
                    },
                    limit,
                    head: EVENTS - head_short,
                },
            )
    }

    thread_local! {
        /// One runtime per test thread for the proptests, whose logs live as long.
        static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
    }
    fn filter_strategy() -> impl Strategy<Value = EventFilter> {
        (
            prop::option::of(0..ACTORS + 1),
            prop::option::of(prop::bool::ANY),
            prop::option::of(prop::bool::ANY),
            prop::option::of(prop::sample::select(vec!["auth", "doc"])),
        )
            .prop_map(|(actor, resource, failed, action)| EventFilter {
                tenant: "acme".into(),
                // `ACTORS` itself names nobody: a filter that matches nothing.
                actor_id: actor.map(|a| format!("user-{a}")),
                resource_type: resource.map(|_| "doc".into()),
                resource_id: resource.filter(|&with_id| with_id).map(|_| "3".into()),
                outcome: failed.map(|f| {
                    if f {
                        crate::event::Outcome::Failure
                    } else {
                        crate::event::Outcome::Success
                    }
                }),
                action_prefix: action.map(str::to_owned),
                ..Default::default()
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Walking buckets of 4 events returns exactly what one statement over the
        /// whole range returns, in both orders, for any filter, window and limit.
        #[test]
        fn the_bucket_walk_reads_what_one_statement_reads(case in case_strategy()) {
            static LOG: std::sync::OnceLock<Log> = std::sync::OnceLock::new();
            RT.with(|rt| {
                let log = LOG.get_or_init(|| log(rt));
                rt.block_on(async {
                    let mut conn = log.db.reader().acquire().await.unwrap_or_else(|e| panic!("{e}"));
                    let (walk, single) = case.walk_and_single();
                    let expected = run(&mut conn, single).await;
                    prop_assert_eq!(run(&mut conn, walk).await, expected);
                    Ok(())
                })
            })?;
        }

        /// The same on PostgreSQL, whose groups of buckets are a lateral join over an
        /// array of them rather than a `UNION ALL`.
        #[test]
        fn the_bucket_walk_reads_what_one_statement_reads_on_postgres(case in case_strategy()) {
            static LOG: std::sync::OnceLock<PgLog> = std::sync::OnceLock::new();
            RT.with(|rt| {
                let log = LOG.get_or_init(|| pg_log(rt));
                rt.block_on(async {
                    let mut conn = log.pool.acquire().await.unwrap_or_else(|e| panic!("{e}"));
                    let (walk, single) = case.walk_and_single();
                    let expected = run_pg(&mut conn, single).await;
                    prop_assert_eq!(run_pg(&mut conn, walk).await, expected);
                    Ok(())
                })
            })?;
        }
    }

    /// A prefix matches whole segments: `auth` is `auth` and `auth.*`, never
    /// `auth-x`, `authz` or `aut`, in one statement and in a bucket walk alike.
    #[tokio::test]
    async fn action_prefixes_match_whole_segments() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let db = Database::connect(&DatabaseConfig::default(), dir.path())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        db.migrate().await.unwrap_or_else(|e| panic!("{e}"));
        let signer = NoteSigner::from_seed("test", &[7u8; 32]).unwrap_or_else(|e| panic!("{e}"));
        let actions = [
            "auth",
            "auth.login",
            "auth-x",
            "authz",
            "aut",
            "auth.mfa.sms",
            "b",
        ];
        let events: Vec<_> = actions
            .iter()
            .map(|action| {
                let new: NewEvent = serde_json::from_value(json!({
                    "action": action, "actor": {"id": "u"}, "outcome": "success",
                }))
                .unwrap_or_else(|e| panic!("{e}"));
                new.prepare(
                    TenantId::default_tenant(),
                    Uuid::now_v7(),
                    OffsetDateTime::now_utc(),
                    &EventLimits::default(),
                )
                .unwrap_or_else(|e| panic!("{e}"))
            })
            .collect();
        AuditStore::new(db.clone())
            .append(&events, &signer, "test", 1)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let Database::Sqlite(db) = db else {
            unreachable!("the default database is SQLite")
        };
        let mut conn = db
            .reader()
            .acquire()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let filter = EventFilter {
            tenant: TenantId::default_tenant().as_str().to_owned(),
            action_prefix: Some("auth".into()),
            ..Default::default()
        };
        for bits in [0, BUCKET_BITS] {
            let mut read = FilteredRead::with_bucket_bits(
                &filter,
                None,
                None,
                Order::OldestFirst,
                50,
                7,
                bits,
            );
            if bits == BUCKET_BITS {
                read.plan = Plan::Single;
            }
            let found: Vec<u64> = run(&mut conn, read).await.iter().map(|e| e.index).collect();
            assert_eq!(found, [0, 1, 5], "buckets of 2^{bits}");
        }
    }

    /// SQLite seeks the bucketed actor index for each bucket: the migration and
    /// this module spell the same expression.
    #[tokio::test]
    async fn each_bucket_is_one_seek_of_the_bucketed_index() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let db = Database::connect(&DatabaseConfig::default(), dir.path())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        db.migrate().await.unwrap_or_else(|e| panic!("{e}"));
        let Database::Sqlite(db) = db else {
            unreachable!("the default database is SQLite")
        };
        for (filter, index) in [
            (
                EventFilter {
                    tenant: "acme".into(),
                    actor_id: Some("user-1".into()),
                    ..Default::default()
                },
                "audit_entries_actor_bucketed",
            ),
            (
                EventFilter {
                    tenant: "acme".into(),
                    action_prefix: Some("auth".into()),
                    ..Default::default()
                },
                "audit_entries_action_bucketed",
            ),
            (
                EventFilter {
                    tenant: "acme".into(),
                    resource_type: Some("doc".into()),
                    resource_id: Some("3".into()),
                    ..Default::default()
                },
                "audit_entries_resource_bucketed",
            ),
        ] {
            // Three buckets' worth of head: the second statement is a UNION ALL.
            let head = 3 << BUCKET_BITS;
            let mut read = FilteredRead::new(&filter, None, None, Order::NewestFirst, 50, head);
            for _ in 0..2 {
                let q = read
                    .next_statement::<Sqlite>(0)
                    .unwrap_or_else(|e| panic!("{e}"))
                    .unwrap_or_else(|| panic!("a statement"));
                let sql = format!("EXPLAIN QUERY PLAN {}", q.sql());
                let mut explain = sqlx::query(&sql);
                for _ in 0..sql.matches('?').count() {
                    explain = explain.bind(None::<i64>);
                }
                let plan: Vec<String> = explain
                    .fetch_all(db.reader())
                    .await
                    .unwrap_or_else(|e| panic!("{e}"))
                    .iter()
                    .map(|row| sqlx::Row::get::<String, _>(row, "detail"))
                    .collect();
                let searches: Vec<_> = plan
                    .iter()
                    .filter(|d| d.contains("audit_entries"))
                    .collect();
                assert!(!searches.is_empty(), "{plan:?}");
                for detail in searches {
                    assert!(
                        detail.contains(&format!("USING INDEX {index} (tenant=? AND <expr>=?")),
                        "{detail} in {plan:?}"
                    );
                }
            }
        }
    }
}
