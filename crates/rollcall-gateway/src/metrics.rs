//! Prometheus metrics, written in the text exposition format without a metrics library: a few
//! atomics are all the hot path needs.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How a request ended, for `rollcall_gateway_requests_total{outcome}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Forwarded and answered by the upstream.
    Ok,
    /// Missing, malformed or unknown token.
    Unauthorized,
    /// Revoked token.
    Revoked,
    /// Token of another workspace.
    Forbidden,
    /// Over the rate limit.
    RateLimited,
    /// Malformed or oversized request.
    BadRequest,
    /// The token check or the log could not be reached.
    Unavailable,
    /// The upstream could not be reached or is not configured.
    UpstreamUnavailable,
    /// A bug.
    Internal,
}

const OUTCOMES: [(Outcome, &str); 9] = [
    (Outcome::Ok, "ok"),
    (Outcome::Unauthorized, "unauthorized"),
    (Outcome::Revoked, "revoked"),
    (Outcome::Forbidden, "forbidden"),
    (Outcome::RateLimited, "rate_limited"),
    (Outcome::BadRequest, "bad_request"),
    (Outcome::Unavailable, "unavailable"),
    (Outcome::UpstreamUnavailable, "upstream_unavailable"),
    (Outcome::Internal, "internal"),
];

/// Upper bounds of the latency buckets, in microseconds.
const BUCKETS_US: [u64; 16] =
    [50, 100, 250, 500, 750, 1_000, 1_500, 2_000, 3_000, 5_000, 7_500, 10_000, 25_000, 50_000, 100_000, 500_000];

/// A latency histogram in the Prometheus style: cumulative buckets, a count and a sum.
#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS_US.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    fn observe(&self, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        if let Some(i) = BUCKETS_US.iter().position(|&b| us <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, bound) in BUCKETS_US.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let le = *bound as f64 / 1e6;
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// Reports each projection's lag in events, for `rollcall_projection_lag_events`.
pub type LagProbe = Arc<dyn Fn() -> Vec<(String, u64)> + Send + Sync>;

/// The gateway's counters.
#[derive(Default)]
pub struct Metrics {
    outcomes: [AtomicU64; OUTCOMES.len()],
    check: Histogram,
    record: Histogram,
    upstream: Histogram,
    request: Histogram,
    streams_closed_revoked: AtomicU64,
    tool_calls: AtomicU64,
}

impl Metrics {
    /// Counts one request's outcome.
    pub fn outcome(&self, outcome: Outcome) {
        let index = OUTCOMES.iter().position(|(o, _)| *o == outcome).unwrap_or(0);
        self.outcomes[index].fetch_add(1, Ordering::Relaxed);
    }

    /// Records one token check's latency.
    pub fn check_latency(&self, elapsed: Duration) {
        self.check.observe(elapsed);
    }

    /// Records how long a tool call waited for its `ToolCalled` record to be durable.
    pub fn record_latency(&self, elapsed: Duration) {
        self.record.observe(elapsed);
    }

    /// Records how long the upstream took to answer with its response headers.
    pub fn upstream_latency(&self, elapsed: Duration) {
        self.upstream.observe(elapsed);
    }

    /// Records how long the gateway took to answer a request with its response headers (for a
    /// JSON answer, its whole body).
    pub fn request_latency(&self, elapsed: Duration) {
        self.request.observe(elapsed);
    }

    /// Counts streams closed because their token was revoked.
    pub fn streams_closed(&self, count: usize) {
        self.streams_closed_revoked.fetch_add(count as u64, Ordering::Relaxed);
    }

    /// Counts tool calls recorded.
    pub fn tool_call(&self) {
        self.tool_calls.fetch_add(1, Ordering::Relaxed);
    }

    /// The number of requests that ended with `outcome` so far.
    pub fn count(&self, outcome: Outcome) -> u64 {
        let index = OUTCOMES.iter().position(|(o, _)| *o == outcome).unwrap_or(0);
        self.outcomes[index].load(Ordering::Relaxed)
    }

    /// Renders the text exposition format.
    pub fn render(&self, open_streams: usize, lag: Option<&LagProbe>) -> String {
        let mut out = String::with_capacity(2048);
        out.push_str("# HELP rollcall_gateway_requests_total Requests to /mcp by outcome.\n");
        out.push_str("# TYPE rollcall_gateway_requests_total counter\n");
        for (i, (_, name)) in OUTCOMES.iter().enumerate() {
            let value = self.outcomes[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "rollcall_gateway_requests_total{{outcome=\"{name}\"}} {value}");
        }
        self.check.render(&mut out, "rollcall_gateway_check_seconds", "Latency of the token check and rate limit.");
        self.record.render(
            &mut out,
            "rollcall_gateway_record_seconds",
            "Wait for a tool call's ToolCalled record to be durable before it is forwarded.",
        );
        self.upstream.render(
            &mut out,
            "rollcall_gateway_upstream_seconds",
            "Time from forwarding a request to the upstream's response headers.",
        );
        self.request.render(
            &mut out,
            "rollcall_gateway_request_seconds",
            "Time from a request's arrival at /mcp to the gateway's response headers (a whole JSON answer).",
        );
        out.push_str("# HELP rollcall_gateway_open_streams Event streams open through the gateway.\n");
        out.push_str("# TYPE rollcall_gateway_open_streams gauge\n");
        let _ = writeln!(out, "rollcall_gateway_open_streams {open_streams}");
        out.push_str(
            "# HELP rollcall_gateway_streams_closed_revoked_total Streams closed because their token was revoked.\n",
        );
        out.push_str("# TYPE rollcall_gateway_streams_closed_revoked_total counter\n");
        let closed = self.streams_closed_revoked.load(Ordering::Relaxed);
        let _ = writeln!(out, "rollcall_gateway_streams_closed_revoked_total {closed}");
        out.push_str("# HELP rollcall_gateway_tool_calls_total Tool calls recorded and forwarded.\n");
        out.push_str("# TYPE rollcall_gateway_tool_calls_total counter\n");
        let _ = writeln!(out, "rollcall_gateway_tool_calls_total {}", self.tool_calls.load(Ordering::Relaxed));
        if let Some(probe) = lag {
            out.push_str("# HELP rollcall_projection_lag_events Events a projection has yet to apply.\n");
            out.push_str("# TYPE rollcall_projection_lag_events gauge\n");
            for (name, lag) in probe() {
                let _ = writeln!(out, "rollcall_projection_lag_events{{projection=\"{name}\"}} {lag}");
            }
        }
        out
    }
}
