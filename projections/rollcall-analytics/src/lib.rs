//! The analytics projection: per-member, per-bot, per-tool and per-workspace usage; in process
//! or in Redis.
//!
//! Per member and per bot: tool calls in total, per tool, per hour and per day; errors (from
//! `ToolCallCompleted`), requests refused for rate limiting, accesses denied, last activity and
//! latency (count, sum, max and fixed histogram buckets, from which p50/p95 are estimated).
//! Per workspace: the same totals, split between humans and bots, and the top tools.
//!
//! Redis layout under the generation prefix `G` (`{P}` when live): `{G}an:workspaces` (set of
//! workspace ids), `{G}an:w:{workspace}` (hash of totals), `{G}an:w:{workspace}:tools` (sorted
//! set), `{G}an:w:{workspace}:subjects` (set), `{G}an:s:{subject}` (hash of totals and latency),
//! `{G}an:s:{subject}:tools|hours|days` (hashes of counts). A batch is folded in memory first,
//! so that a thousand calls by one member become one `HINCRBY` per field.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::aio::ConnectionManager;
use rollcall_core::WorkspaceId;
use rollcall_core::envelope::Position;
use rollcall_core::events::{CallOutcome, Caller, Event};
use rollcall_projection::{
    Generation, InProcess, ProjectedEvent, Projection, ProjectionError, RedisOps, RedisTarget, ViewState,
};
use serde::Serialize;
use uuid::Uuid;

/// The projection's name (in checkpoint keys and status).
pub const PROJECTION_NAME: &str = "analytics";

/// Upper bounds (inclusive, milliseconds) of the latency buckets; a last bucket takes the rest.
pub const LATENCY_BUCKET_BOUNDS_MS: [u64; 9] = [10, 25, 50, 100, 250, 500, 1000, 2500, 10_000];

/// Number of latency buckets (the bounds plus one for anything slower).
pub const LATENCY_BUCKETS: usize = LATENCY_BUCKET_BOUNDS_MS.len() + 1;

/// Member or bot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectKind {
    /// A human member.
    Human,
    /// A bot.
    Bot,
}

impl SubjectKind {
    fn of(caller: &Caller) -> (SubjectKind, Uuid) {
        match caller {
            Caller::Member { member_id } => (SubjectKind::Human, member_id.0),
            Caller::Bot { bot_id } => (SubjectKind::Bot, bot_id.0),
        }
    }

    const fn name(self) -> &'static str {
        match self {
            SubjectKind::Human => "human",
            SubjectKind::Bot => "bot",
        }
    }
}

/// Latency figures of completed calls.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Latency {
    /// Completed calls.
    pub count: u64,
    /// Sum of durations, ms.
    pub sum_ms: u64,
    /// Longest duration, ms.
    pub max_ms: u64,
    /// Calls per bucket (see [`LATENCY_BUCKET_BOUNDS_MS`]).
    pub buckets: [u64; LATENCY_BUCKETS],
}

impl Latency {
    fn bucket_of(duration_ms: u64) -> usize {
        LATENCY_BUCKET_BOUNDS_MS.iter().position(|b| duration_ms <= *b).unwrap_or(LATENCY_BUCKET_BOUNDS_MS.len())
    }

    fn record(&mut self, duration_ms: u64) {
        self.count += 1;
        self.sum_ms += duration_ms;
        self.max_ms = self.max_ms.max(duration_ms);
        self.buckets[Latency::bucket_of(duration_ms)] += 1;
    }

    /// Mean duration, ms.
    pub fn mean_ms(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum_ms as f64 / self.count as f64)
    }

    /// An estimate of the `q` quantile (0..=1): the upper bound of the bucket that holds it
    /// (the maximum for the last bucket), so the true value is at most this.
    pub fn quantile_ms(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(LATENCY_BUCKET_BOUNDS_MS.get(i).map_or(self.max_ms, |b| (*b).min(self.max_ms)));
            }
        }
        Some(self.max_ms)
    }
}

/// Usage of one member or bot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SubjectUsage {
    /// The workspace.
    pub workspace_id: WorkspaceId,
    /// Human or bot.
    pub kind: SubjectKind,
    /// The member id or bot id.
    pub subject_id: Uuid,
    /// Tool calls.
    pub calls_total: u64,
    /// Tool calls per tool.
    pub calls_per_tool: BTreeMap<String, u64>,
    /// Tool calls per hour (key: start of the hour, unix seconds).
    pub calls_per_hour: BTreeMap<i64, u64>,
    /// Tool calls per day (key: start of the UTC day, unix seconds).
    pub calls_per_day: BTreeMap<i64, u64>,
    /// Calls that ended in an error or with the upstream unavailable.
    pub errors: u64,
    /// Requests refused for rate limiting.
    pub rate_limited: u64,
    /// Requests refused because the token was revoked.
    pub denied: u64,
    /// Time of the last tool call, unix milliseconds.
    pub last_active_ms: Option<i64>,
    /// Latency of completed calls.
    pub latency: Latency,
}

impl SubjectUsage {
    fn new(workspace_id: WorkspaceId, kind: SubjectKind, subject_id: Uuid) -> SubjectUsage {
        SubjectUsage {
            workspace_id,
            kind,
            subject_id,
            calls_total: 0,
            calls_per_tool: BTreeMap::new(),
            calls_per_hour: BTreeMap::new(),
            calls_per_day: BTreeMap::new(),
            errors: 0,
            rate_limited: 0,
            denied: 0,
            last_active_ms: None,
            latency: Latency::default(),
        }
    }

    /// Time of the last tool call.
    pub fn last_active_at(&self) -> Option<DateTime<Utc>> {
        self.last_active_ms.and_then(DateTime::from_timestamp_millis)
    }
}

/// Counters kept per workspace, for everyone, humans only and bots only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Tool calls.
    pub calls: u64,
    /// Calls that failed.
    pub errors: u64,
    /// Requests refused for rate limiting.
    pub rate_limited: u64,
    /// Requests refused for a revoked token.
    pub denied: u64,
}

/// Usage of one workspace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WorkspaceUsage {
    /// The workspace.
    pub workspace_id: WorkspaceId,
    /// Everyone.
    pub total: Totals,
    /// Humans only.
    pub humans: Totals,
    /// Bots only.
    pub bots: Totals,
    /// Tool calls per tool.
    pub calls_per_tool: BTreeMap<String, u64>,
    /// Members and bots with any usage.
    pub subjects: BTreeSet<Uuid>,
}

impl WorkspaceUsage {
    fn new(workspace_id: WorkspaceId) -> WorkspaceUsage {
        WorkspaceUsage {
            workspace_id,
            total: Totals::default(),
            humans: Totals::default(),
            bots: Totals::default(),
            calls_per_tool: BTreeMap::new(),
            subjects: BTreeSet::new(),
        }
    }

    /// The `n` most called tools, most called first (ties by name).
    pub fn top_tools(&self, n: usize) -> Vec<(String, u64)> {
        let mut tools: Vec<(String, u64)> = self.calls_per_tool.iter().map(|(t, c)| (t.clone(), *c)).collect();
        tools.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        tools.truncate(n);
        tools
    }

    fn split(&mut self, kind: SubjectKind) -> [&mut Totals; 2] {
        let Self { total, humans, bots, .. } = self;
        match kind {
            SubjectKind::Human => [total, humans],
            SubjectKind::Bot => [total, bots],
        }
    }
}

/// The whole analytics view.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AnalyticsState {
    /// Per member or bot.
    pub subjects: HashMap<Uuid, SubjectUsage>,
    /// Per workspace.
    pub workspaces: HashMap<WorkspaceId, WorkspaceUsage>,
}

/// One counted fact, shared by both targets so that they count alike.
enum Fact<'a> {
    Called { tool: &'a str, at: DateTime<Utc> },
    Completed { error: bool, duration_ms: u64 },
    RateLimited { refused: u64 },
    Denied,
}

fn fact_of(event: &Event) -> Option<(WorkspaceId, &Caller, Fact<'_>)> {
    match event {
        Event::ToolCalled(e) => Some((e.workspace_id, &e.caller, Fact::Called { tool: &e.tool, at: e.called_at })),
        Event::ToolCallCompleted(e) => Some((
            e.workspace_id,
            &e.caller,
            Fact::Completed { error: !matches!(e.outcome, CallOutcome::Ok), duration_ms: e.duration_ms },
        )),
        Event::RateLimited(e) => Some((e.workspace_id, &e.caller, Fact::RateLimited { refused: e.refused })),
        Event::AccessDenied(e) => Some((e.workspace_id, &e.caller, Fact::Denied)),
        _ => None,
    }
}

fn wants(event_type: &str) -> bool {
    matches!(event_type, "ToolCalled" | "ToolCallCompleted" | "RateLimited" | "AccessDenied")
}

/// Counts one more for `key`, allocating the key only the first time it is seen.
fn bump(counts: &mut BTreeMap<String, u64>, key: &str) {
    match counts.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            counts.insert(key.to_owned(), 1);
        }
    }
}

fn hour_of(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(3600) * 3600
}

fn day_of(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(86_400) * 86_400
}

impl ViewState for AnalyticsState {
    fn wants(event_type: &str) -> bool {
        wants(event_type)
    }

    fn apply(&mut self, event: &ProjectedEvent) {
        let Some((workspace_id, caller, fact)) = fact_of(&event.event) else { return };
        let (kind, subject_id) = SubjectKind::of(caller);
        let subject =
            self.subjects.entry(subject_id).or_insert_with(|| SubjectUsage::new(workspace_id, kind, subject_id));
        let workspace = self.workspaces.entry(workspace_id).or_insert_with(|| WorkspaceUsage::new(workspace_id));
        workspace.subjects.insert(subject_id);
        match fact {
            Fact::Called { tool, at } => {
                subject.calls_total += 1;
                bump(&mut subject.calls_per_tool, tool);
                *subject.calls_per_hour.entry(hour_of(at)).or_default() += 1;
                *subject.calls_per_day.entry(day_of(at)).or_default() += 1;
                let ms = at.timestamp_millis();
                subject.last_active_ms = Some(subject.last_active_ms.map_or(ms, |m| m.max(ms)));
                bump(&mut workspace.calls_per_tool, tool);
                workspace.split(kind).into_iter().for_each(|t| t.calls += 1);
            }
            Fact::Completed { error, duration_ms } => {
                subject.latency.record(duration_ms);
                if error {
                    subject.errors += 1;
                    workspace.split(kind).into_iter().for_each(|t| t.errors += 1);
                }
            }
            Fact::RateLimited { refused } => {
                subject.rate_limited += refused;
                workspace.split(kind).into_iter().for_each(|t| t.rate_limited += refused);
            }
            Fact::Denied => {
                subject.denied += 1;
                workspace.split(kind).into_iter().for_each(|t| t.denied += 1);
            }
        }
    }
}

/// Queries the dashboard makes, answered by either target.
#[async_trait]
pub trait AnalyticsView: Send + Sync {
    /// Usage of one member or bot; `Ok(None)` when it has none.
    async fn subject(&self, subject_id: Uuid) -> Result<Option<SubjectUsage>, ProjectionError>;
    /// Usage of one workspace; `Ok(None)` when it has none.
    async fn workspace(&self, workspace_id: WorkspaceId) -> Result<Option<WorkspaceUsage>, ProjectionError>;
    /// Usage of every member and bot of a workspace, humans first, most calls first.
    async fn subjects_of(&self, workspace_id: WorkspaceId) -> Result<Vec<SubjectUsage>, ProjectionError> {
        let Some(workspace) = self.workspace(workspace_id).await? else { return Ok(Vec::new()) };
        let mut out = Vec::with_capacity(workspace.subjects.len());
        for id in workspace.subjects {
            if let Some(usage) = self.subject(id).await? {
                out.push(usage);
            }
        }
        out.sort_by(|a, b| {
            a.kind.cmp(&b.kind).then(b.calls_total.cmp(&a.calls_total)).then(a.subject_id.cmp(&b.subject_id))
        });
        Ok(out)
    }
}

fn unavailable() -> ProjectionError {
    ProjectionError::Unavailable(PROJECTION_NAME.to_owned())
}

/// The analytics view held in this process.
#[derive(Clone)]
pub struct InProcessAnalytics {
    view: Arc<InProcess<AnalyticsState>>,
}

impl Default for InProcessAnalytics {
    fn default() -> InProcessAnalytics {
        InProcessAnalytics::new()
    }
}

impl InProcessAnalytics {
    /// An empty view, unavailable until its projector has built it.
    pub fn new() -> InProcessAnalytics {
        InProcessAnalytics { view: Arc::new(InProcess::new(PROJECTION_NAME)) }
    }

    /// The projection to hand to a [`rollcall_projection::Projector`].
    pub fn projection(&self) -> Arc<dyn Projection> {
        self.view.clone()
    }

    /// The underlying in-process view.
    pub fn view(&self) -> &Arc<InProcess<AnalyticsState>> {
        &self.view
    }

    /// A copy of the whole view; `None` while unavailable.
    pub fn snapshot(&self) -> Option<AnalyticsState> {
        self.view.snapshot()
    }
}

#[async_trait]
impl AnalyticsView for InProcessAnalytics {
    async fn subject(&self, subject_id: Uuid) -> Result<Option<SubjectUsage>, ProjectionError> {
        self.view.read(|s| s.subjects.get(&subject_id).cloned()).ok_or_else(unavailable)
    }

    async fn workspace(&self, workspace_id: WorkspaceId) -> Result<Option<WorkspaceUsage>, ProjectionError> {
        self.view.read(|s| s.workspaces.get(&workspace_id).cloned()).ok_or_else(unavailable)
    }
}

/// The analytics view in Redis.
#[derive(Clone)]
pub struct RedisAnalytics {
    target: RedisTarget,
}

/// A batch folded into per-field changes before it becomes Redis operations.
#[derive(Default)]
struct Deltas {
    incr: HashMap<(String, String), i64>,
    max: HashMap<(String, String), i64>,
    set: HashMap<(String, String), String>,
    zincr: HashMap<(String, String), i64>,
    sadd: BTreeSet<(String, String)>,
}

impl Deltas {
    fn incr(&mut self, key: &str, field: &str, delta: i64) {
        *self.incr.entry((key.to_owned(), field.to_owned())).or_default() += delta;
    }

    fn max(&mut self, key: &str, field: &str, value: i64) {
        let slot = self.max.entry((key.to_owned(), field.to_owned())).or_insert(value);
        *slot = (*slot).max(value);
    }

    fn add(&mut self, event: &Event) {
        let Some((workspace_id, caller, fact)) = fact_of(event) else { return };
        let (kind, subject_id) = SubjectKind::of(caller);
        let s = format!("an:s:{subject_id}");
        let w = format!("an:w:{workspace_id}");
        if !self.set.contains_key(&(s.clone(), "kind".to_owned())) {
            self.set.insert((s.clone(), "kind".to_owned()), kind.name().to_owned());
            self.set.insert((s.clone(), "ws".to_owned()), workspace_id.to_string());
            self.sadd.insert(("an:workspaces".to_owned(), workspace_id.to_string()));
            self.sadd.insert((format!("{w}:subjects"), subject_id.to_string()));
        }
        let split = |deltas: &mut Deltas, field: &str, n: i64| {
            deltas.incr(&w, field, n);
            deltas.incr(&w, &format!("{}_{field}", kind.name()), n);
        };
        match fact {
            Fact::Called { tool, at } => {
                self.incr(&s, "calls", 1);
                self.incr(&format!("{s}:tools"), tool, 1);
                self.incr(&format!("{s}:hours"), &hour_of(at).to_string(), 1);
                self.incr(&format!("{s}:days"), &day_of(at).to_string(), 1);
                self.max(&s, "last_active", at.timestamp_millis());
                *self.zincr.entry((format!("{w}:tools"), tool.to_owned())).or_default() += 1;
                split(self, "calls", 1);
            }
            Fact::Completed { error, duration_ms } => {
                let ms = duration_ms as i64;
                self.incr(&s, "lat_count", 1);
                self.incr(&s, "lat_sum", ms);
                self.max(&s, "lat_max", ms);
                self.incr(&s, &format!("lat_b{}", Latency::bucket_of(duration_ms)), 1);
                if error {
                    self.incr(&s, "errors", 1);
                    split(self, "errors", 1);
                }
            }
            Fact::RateLimited { refused } => {
                self.incr(&s, "rate_limited", refused as i64);
                split(self, "rate_limited", refused as i64);
            }
            Fact::Denied => {
                self.incr(&s, "denied", 1);
                split(self, "denied", 1);
            }
        }
    }

    fn into_ops(self) -> RedisOps {
        let mut ops = RedisOps::new();
        for ((key, field), value) in &self.set {
            ops.hset(key, field, value);
        }
        for (key, member) in &self.sadd {
            ops.sadd(key, member);
        }
        for ((key, field), delta) in &self.incr {
            ops.hincr(key, field, *delta);
        }
        for ((key, field), value) in &self.max {
            ops.hmax(key, field, *value);
        }
        for ((key, member), delta) in &self.zincr {
            ops.zincr(key, member, *delta);
        }
        ops
    }
}

fn number<T: std::str::FromStr>(fields: &HashMap<String, String>, name: &str) -> Result<T, ProjectionError> {
    match fields.get(name) {
        None => "0".parse().map_err(|_| ProjectionError::Malformed(name.to_owned())),
        Some(text) => {
            text.parse().map_err(|_| ProjectionError::Malformed(format!("analytics field {name} is {text:?}")))
        }
    }
}

fn counts<K: std::str::FromStr + Ord>(raw: HashMap<String, String>) -> Result<BTreeMap<K, u64>, ProjectionError> {
    raw.into_iter()
        .map(|(k, v)| {
            let key = k.parse().map_err(|_| ProjectionError::Malformed(format!("analytics bucket {k:?}")))?;
            let value = v.parse().map_err(|_| ProjectionError::Malformed(format!("analytics count {v:?}")))?;
            Ok((key, value))
        })
        .collect()
}

impl RedisAnalytics {
    /// The view under key prefix `prefix` (e.g. `rollcall:`).
    pub fn new(conn: ConnectionManager, prefix: &str) -> RedisAnalytics {
        RedisAnalytics { target: RedisTarget::new(conn, prefix, PROJECTION_NAME) }
    }

    /// The same view, whose every write checks that `fence`'s projector lease is still held
    /// (for several `rollcall project` processes, of which only the lease holder writes).
    pub fn with_fence(self, fence: rollcall_projection::Fence) -> RedisAnalytics {
        RedisAnalytics { target: self.target.with_fence(fence) }
    }

    /// The underlying target.
    pub fn target(&self) -> &RedisTarget {
        &self.target
    }

    async fn require_live(&self) -> Result<(), ProjectionError> {
        match self.target.checkpoint(Generation::Live).await? {
            Some(_) => Ok(()),
            None => Err(unavailable()),
        }
    }

    async fn hgetall(&self, suffix: &str) -> Result<HashMap<String, String>, ProjectionError> {
        Ok(redis::cmd("HGETALL").arg(self.target.live_key(suffix)).query_async(&mut self.target.connection()).await?)
    }

    /// The whole live view, read back; `None` while unavailable.
    pub async fn snapshot(&self) -> Result<Option<AnalyticsState>, ProjectionError> {
        if self.target.checkpoint(Generation::Live).await?.is_none() {
            return Ok(None);
        }
        let ids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.target.live_key("an:workspaces"))
            .query_async(&mut self.target.connection())
            .await?;
        let mut state = AnalyticsState::default();
        for id in ids {
            let workspace_id: WorkspaceId =
                id.parse::<Uuid>().map_err(|_| ProjectionError::Malformed(format!("workspace id {id:?}")))?.into();
            let Some(usage) = self.workspace(workspace_id).await? else { continue };
            for subject in &usage.subjects {
                if let Some(s) = self.subject(*subject).await? {
                    state.subjects.insert(*subject, s);
                }
            }
            state.workspaces.insert(workspace_id, usage);
        }
        Ok(Some(state))
    }
}

#[async_trait]
impl AnalyticsView for RedisAnalytics {
    async fn subject(&self, subject_id: Uuid) -> Result<Option<SubjectUsage>, ProjectionError> {
        self.require_live().await?;
        let s = format!("an:s:{subject_id}");
        let fields = self.hgetall(&s).await?;
        let (Some(kind), Some(ws)) = (fields.get("kind"), fields.get("ws")) else { return Ok(None) };
        let kind = match kind.as_str() {
            "human" => SubjectKind::Human,
            "bot" => SubjectKind::Bot,
            other => return Err(ProjectionError::Malformed(format!("subject kind {other:?}"))),
        };
        let workspace_id: WorkspaceId =
            ws.parse::<Uuid>().map_err(|_| ProjectionError::Malformed(format!("workspace id {ws:?}")))?.into();
        let mut latency = Latency {
            count: number(&fields, "lat_count")?,
            sum_ms: number(&fields, "lat_sum")?,
            max_ms: number(&fields, "lat_max")?,
            buckets: [0; LATENCY_BUCKETS],
        };
        for (i, slot) in latency.buckets.iter_mut().enumerate() {
            *slot = number(&fields, &format!("lat_b{i}"))?;
        }
        Ok(Some(SubjectUsage {
            workspace_id,
            kind,
            subject_id,
            calls_total: number(&fields, "calls")?,
            calls_per_tool: counts(self.hgetall(&format!("{s}:tools")).await?)?,
            calls_per_hour: counts(self.hgetall(&format!("{s}:hours")).await?)?,
            calls_per_day: counts(self.hgetall(&format!("{s}:days")).await?)?,
            errors: number(&fields, "errors")?,
            rate_limited: number(&fields, "rate_limited")?,
            denied: number(&fields, "denied")?,
            last_active_ms: fields.get("last_active").map(|_| number(&fields, "last_active")).transpose()?,
            latency,
        }))
    }

    async fn workspace(&self, workspace_id: WorkspaceId) -> Result<Option<WorkspaceUsage>, ProjectionError> {
        self.require_live().await?;
        let w = format!("an:w:{workspace_id}");
        let mut conn = self.target.connection();
        let subjects: Vec<String> =
            redis::cmd("SMEMBERS").arg(self.target.live_key(&format!("{w}:subjects"))).query_async(&mut conn).await?;
        if subjects.is_empty() {
            return Ok(None);
        }
        let fields = self.hgetall(&w).await?;
        let totals = |prefix: &str| -> Result<Totals, ProjectionError> {
            Ok(Totals {
                calls: number(&fields, &format!("{prefix}calls"))?,
                errors: number(&fields, &format!("{prefix}errors"))?,
                rate_limited: number(&fields, &format!("{prefix}rate_limited"))?,
                denied: number(&fields, &format!("{prefix}denied"))?,
            })
        };
        let tools: Vec<(String, f64)> = redis::cmd("ZRANGE")
            .arg(self.target.live_key(&format!("{w}:tools")))
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query_async(&mut conn)
            .await?;
        Ok(Some(WorkspaceUsage {
            workspace_id,
            total: totals("")?,
            humans: totals("human_")?,
            bots: totals("bot_")?,
            calls_per_tool: tools.into_iter().map(|(t, n)| (t, n as u64)).collect(),
            subjects: subjects
                .iter()
                .map(|s| s.parse().map_err(|_| ProjectionError::Malformed(format!("subject id {s:?}"))))
                .collect::<Result<_, _>>()?,
        }))
    }
}

#[async_trait]
impl Projection for RedisAnalytics {
    fn name(&self) -> &str {
        PROJECTION_NAME
    }

    fn wants(&self, event_type: &str) -> bool {
        wants(event_type)
    }

    async fn checkpoint(&self, generation: Generation) -> Result<Option<Position>, ProjectionError> {
        self.target.checkpoint(generation).await
    }

    async fn apply(
        &self,
        generation: Generation,
        expected: Position,
        events: &[ProjectedEvent],
        to: Position,
    ) -> Result<(), ProjectionError> {
        let mut deltas = Deltas::default();
        for event in events.iter().filter(|e| e.position > expected) {
            deltas.add(&event.event);
        }
        self.target.apply(generation, expected, &deltas.into_ops(), to).await
    }

    async fn reset_staging(&self) -> Result<(), ProjectionError> {
        self.target.reset_staging().await
    }

    async fn promote_staging(&self) -> Result<Position, ProjectionError> {
        self.target.promote_staging().await
    }
}
