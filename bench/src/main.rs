//! herald-bench: a mio-based STOMP-over-WebSocket load generator for Herald and RabbitMQ Web-STOMP (loopback only).
//!
//! The main thread logs in (herald), starts the event-loop threads, and acts as the controller: it ends the connect
//! ramp, sets the publish window, prints a progress line every second, and builds the report.

mod cli;
mod compare;
mod conn;
mod endpoint;
mod flood;
mod login;
mod procfs;
mod report;
mod rooms;
mod shared;
mod sse;
mod stats;
mod stomp;
mod worker;
mod ws;

use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::time::Duration;

use thiserror::Error;

use crate::cli::{Config, Scenario, Target};
use crate::report::{latency, round2, Report};
use crate::shared::{Counters, Shared};
use crate::stats::Histograms;
use crate::worker::{Plan, Planned, ThreadResult};

/// Sockets kept free for the poller, stdio and login.
const SPARE_FDS: u64 = 32;
/// How often the controller looks at the counters.
const CONTROL_TICK: Duration = Duration::from_millis(20);

/// Why a run could not produce results; every variant exits with status 2.
#[derive(Debug, Error)]
enum RunError {
    /// The machine is not set up for the requested run (file limit, bad JSON path, …).
    #[error("{0}")]
    Setup(String),
    /// The target did not answer; start the server or fix `--url`.
    #[error("cannot reach the target: {0}")]
    Unreachable(String),
    /// Tokens could not be obtained from Herald's REST API.
    #[error("login: {0}")]
    Login(#[from] login::LoginError),
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("compare") {
        let cc = match cli::parse_compare(&args[1..]) {
            Ok(cc) => cc,
            Err(msg) if msg.is_empty() => {
                print!("{}", cli::USAGE);
                return;
            }
            Err(msg) => {
                eprintln!("herald-bench: {msg}\n\n{}", cli::USAGE);
                std::process::exit(64);
            }
        };
        if let Err(e) = compare::run(&cc) {
            eprintln!("herald-bench: {e}");
            std::process::exit(2);
        }
        return;
    }
    let cfg = match cli::parse(&args) {
        Ok(cfg) => cfg,
        Err(msg) if msg.is_empty() => {
            print!("{}", cli::USAGE);
            return;
        }
        Err(msg) => {
            eprintln!("herald-bench: {msg}\n\n{}", cli::USAGE);
            std::process::exit(64);
        }
    };
    if let Err(e) = run(&cfg) {
        eprintln!("herald-bench: {e}");
        std::process::exit(2);
    }
}

fn run(cfg: &Config) -> Result<(), RunError> {
    let report = run_scenario(cfg)?;
    emit(cfg, &report)
}

/// Runs one scenario against one server and returns its report.
fn run_scenario(cfg: &Config) -> Result<Report, RunError> {
    let need = cfg.total_connections() as u64 + SPARE_FDS;
    if let Some(limit) = procfs::open_files_soft_limit() {
        if limit < need {
            return Err(RunError::Setup(format!(
                "open-file limit is {limit}, this run needs {need}: run `ulimit -n 20000` first or lower --connections"
            )));
        }
    }
    TcpStream::connect_timeout(&cfg.ws.addr, Duration::from_secs(2))
        .map_err(|e| RunError::Unreachable(format!("{}: {e}", cfg.ws.addr)))?;
    let tokens = match cfg.target {
        Target::Herald => {
            eprintln!(
                "herald-bench: signing up / logging in {} users at {}",
                cfg.users,
                cfg.http.host_header()
            );
            let tokens = login::tokens(cfg)?;
            if cfg.private_rooms {
                rooms::make_private(cfg, &tokens)?;
            }
            tokens
        }
        Target::Reference => login::unsigned_tokens(cfg),
        Target::Rabbitmq => Vec::new(),
    };
    let server_pid = cfg.server_pid.map(|p| p.to_string());
    if cfg.scenario == Scenario::Flood {
        return flood::run(cfg, &tokens, server_pid.as_deref()).map_err(RunError::Unreachable);
    }
    let rss_before = server_pid.as_deref().and_then(procfs::vm_rss_kib);
    let shared = Shared::new(cfg.rooms);
    let per_thread = plans(cfg);
    if cfg.scenario == Scenario::Sse {
        let (timeline, results) = std::thread::scope(|s| {
            let mut handles = Vec::new();
            for t in 0..cfg.threads {
                let users: Vec<usize> = (0..cfg.connections).filter(|i| i % cfg.threads == t).collect();
                let (shared, tokens) = (&shared, &tokens);
                handles.push(
                    std::thread::Builder::new()
                        .name(format!("sse-{t}"))
                        .spawn_scoped(s, move || sse::run_streams(cfg, shared, tokens, users)),
                );
            }
            for index in 0..cfg.publishers {
                let (shared, tokens) = (&shared, &tokens);
                handles.push(
                    std::thread::Builder::new()
                        .name(format!("pub-{index}"))
                        .spawn_scoped(s, move || sse::run_publisher(cfg, shared, tokens, index)),
                );
            }
            let timeline = control(cfg, &shared, server_pid.as_deref());
            shared.stop.store(true, Ordering::Relaxed);
            let results: Vec<sse::SseResult> = handles
                .into_iter()
                .filter_map(|h| h.ok().and_then(|h| h.join().ok()))
                .collect();
            (timeline, results)
        });
        if let Some(why) = &timeline.aborted {
            return Err(RunError::Unreachable(why.clone()));
        }
        let mut report = build_report(cfg, &shared, &timeline, &[], rss_before);
        sse_report(&mut report, cfg, &shared, &timeline, &results);
        return Ok(report);
    }
    let (timeline, results) = std::thread::scope(|s| {
        let handles: Vec<_> = per_thread
            .into_iter()
            .enumerate()
            .map(|(t, plans)| {
                let (shared, tokens) = (&shared, &tokens);
                std::thread::Builder::new()
                    .name(format!("bench-{t}"))
                    .spawn_scoped(s, move || worker::run(cfg, shared, tokens, plans))
            })
            .collect();
        let timeline = control(cfg, &shared, server_pid.as_deref());
        shared.stop.store(true, Ordering::Relaxed);
        let results: Vec<ThreadResult> = handles
            .into_iter()
            .filter_map(|h| h.ok().and_then(|h| h.join().ok()))
            .collect();
        (timeline, results)
    });
    if let Some(why) = &timeline.aborted {
        return Err(RunError::Unreachable(why.clone()));
    }
    Ok(build_report(cfg, &shared, &timeline, &results, rss_before))
}

fn emit(cfg: &Config, report: &Report) -> Result<(), RunError> {
    print!("{}", report.to_text());
    if let Some(path) = &cfg.json {
        let text = serde_json::to_string_pretty(&report.to_json()).unwrap_or_default();
        std::fs::write(path, text + "\n").map_err(|e| RunError::Setup(format!("writing {path}: {e}")))?;
    }
    Ok(())
}

/// The `sse` results: notifications created and received, and their latencies.
fn sse_report(r: &mut Report, cfg: &Config, shared: &Shared, t: &Timeline, results: &[sse::SseResult]) {
    let c = &shared.counters;
    let hist = sse::merge(results);
    let (missing, extra, streams) = sse::missing_extra(results);
    let secs = t.publish_secs.max(1e-3);
    r.add("streams", streams);
    r.add("publishers", cfg.publishers);
    r.add("target_rate_per_s", round2(cfg.rate));
    r.add("publish_s", round2(secs));
    r.add("posted", Counters::get(&c.sent));
    r.add("created", Counters::get(&c.receipts));
    r.add("created_per_s", round2(t.receipts_in_window as f64 / secs));
    r.add("received", Counters::get(&c.delivered));
    r.add("received_per_s", round2(t.delivered_in_window as f64 / secs));
    r.add("missing", missing);
    r.add("extra", extra);
    r.add("drain_s", round2(t.drain_secs));
    r.add("create_to_receive_latency", latency(&hist.delivery));
    r.add("post_to_201_latency", latency(&hist.receipt));
}

/// Splits the run's connections over the threads, round-robin by global index.
fn plans(cfg: &Config) -> Vec<Vec<Planned>> {
    let mut all = Vec::with_capacity(cfg.total_connections());
    match cfg.scenario {
        Scenario::Idle => all.extend((0..cfg.connections).map(|i| Plan::Subscriber { room: i % cfg.rooms })),
        Scenario::Fanout => {
            all.extend((0..cfg.publishers).map(|index| Plan::Publisher { index }));
            all.extend((0..cfg.connections).map(|i| Plan::Subscriber { room: i % cfg.rooms }));
        }
        Scenario::Persist => all.extend((0..cfg.connections).map(|i| Plan::Sender { room: i % cfg.rooms })),
        Scenario::Sse | Scenario::Flood => {}
    }
    let mut per_thread: Vec<Vec<Planned>> = (0..cfg.threads).map(|_| Vec::new()).collect();
    for (global, plan) in all.into_iter().enumerate() {
        per_thread[global % cfg.threads].push(Planned { global, plan });
    }
    per_thread
}

/// What the controller observed.
#[derive(Default)]
struct Timeline {
    aborted: Option<String>,
    ramp_secs: f64,
    established_at_ramp_end: u64,
    held_at_end: u64,
    publish_secs: f64,
    sent_in_window: u64,
    delivered_in_window: u64,
    receipts_in_window: u64,
    drain_secs: f64,
    rss_after: Option<u64>,
    /// CPU seconds of (server, this process) when the publish window opened, and at the end of the drain.
    cpu_at_publish: Option<CpuSample>,
    cpu_at_drain_end: Option<CpuSample>,
}

/// CPU time of the server (if its PID is known) and of the bench, with deliveries so far.
#[derive(Clone, Copy)]
struct CpuSample {
    at_ns: u64,
    server_s: Option<f64>,
    bench_s: Option<f64>,
    delivered: u64,
}

impl CpuSample {
    fn take(shared: &Shared, server_pid: Option<&str>) -> Self {
        CpuSample {
            at_ns: shared.now_ns(),
            server_s: server_pid.and_then(procfs::cpu_seconds),
            bench_s: procfs::cpu_seconds("self"),
            delivered: Counters::get(&shared.counters.delivered),
        }
    }
}

enum Phase {
    Ramp,
    Hold { until: u64 },
    Publish { start: u64, end: u64 },
    Drain { since: u64, until: u64 },
}

fn control(cfg: &Config, shared: &Shared, server_pid: Option<&str>) -> Timeline {
    let c = &shared.counters;
    // sse publishers are plain HTTP clients that never count as established; the ramp waits for the streams only
    let total = match cfg.scenario {
        Scenario::Sse => cfg.connections,
        _ => cfg.total_connections(),
    } as u64;
    let secs = |d: Duration| d.as_nanos() as u64;
    let start = shared.now_ns();
    let mut t = Timeline::default();
    let mut phase = Phase::Ramp;
    let mut progress = Progress::new(start);
    loop {
        std::thread::sleep(CONTROL_TICK);
        let now = shared.now_ns();
        progress.maybe_print(shared, now, total, &phase);
        let established = Counters::get(&c.established);
        match phase {
            Phase::Ramp => {
                let settled = established + Counters::get(&c.failed) >= total;
                if !settled && now < start + secs(cfg.ramp_timeout) {
                    continue;
                }
                shared.stop_ramp.store(true, Ordering::Relaxed);
                t.ramp_secs = (now - start) as f64 / 1e9;
                t.established_at_ramp_end = established;
                if established == 0 {
                    t.aborted = Some(format!(
                        "no connection reached STOMP CONNECTED ({} failed); first errors: {:?}",
                        Counters::get(&c.failed),
                        shared.errors()
                    ));
                    return t;
                }
                if cfg.scenario == Scenario::Idle {
                    phase = Phase::Hold {
                        until: now + secs(cfg.duration),
                    };
                    continue;
                }
                if Counters::get(&c.senders_ready) == 0 {
                    t.aborted = Some("no publisher/sender connection reached CONNECTED".into());
                    return t;
                }
                let publish_start = now + secs(cfg.settle);
                let publish_end = publish_start + secs(cfg.duration);
                shared.publish_start_ns.store(publish_start, Ordering::Relaxed);
                shared.publish_end_ns.store(publish_end, Ordering::Relaxed);
                phase = Phase::Publish {
                    start: publish_start,
                    end: publish_end,
                };
            }
            Phase::Hold { until } => {
                if now >= until {
                    t.held_at_end = established - Counters::get(&c.dropped).min(established);
                    t.rss_after = server_pid.and_then(procfs::vm_rss_kib);
                    return t;
                }
            }
            Phase::Publish {
                start: publish_start,
                end,
            } => {
                if now >= publish_start && t.cpu_at_publish.is_none() {
                    t.cpu_at_publish = Some(CpuSample::take(shared, server_pid));
                }
                if now >= end {
                    t.publish_secs = (now - publish_start) as f64 / 1e9;
                    t.sent_in_window = Counters::get(&c.sent);
                    t.delivered_in_window = Counters::get(&c.delivered);
                    t.receipts_in_window = Counters::get(&c.receipts);
                    t.rss_after = server_pid.and_then(procfs::vm_rss_kib);
                    phase = Phase::Drain {
                        since: now,
                        until: now + secs(cfg.drain),
                    };
                }
            }
            Phase::Drain { since, until } => {
                let done = match cfg.scenario {
                    Scenario::Fanout => Counters::get(&c.delivered) >= shared.expected_deliveries(),
                    Scenario::Sse => Counters::get(&c.delivered) >= Counters::get(&c.receipts),
                    _ => Counters::get(&c.receipts) + Counters::get(&c.app_errors) >= Counters::get(&c.sent),
                };
                if done || now >= until {
                    t.cpu_at_drain_end = Some(CpuSample::take(shared, server_pid));
                    t.drain_secs = (now - since) as f64 / 1e9;
                    t.held_at_end = established - Counters::get(&c.dropped).min(established);
                    return t;
                }
            }
        }
    }
}

/// The once-a-second progress line on stderr.
struct Progress {
    next_ns: u64,
    start_ns: u64,
    last: [u64; 3],
}

impl Progress {
    fn new(start_ns: u64) -> Self {
        Self {
            next_ns: start_ns + 1_000_000_000,
            start_ns,
            last: [0; 3],
        }
    }

    fn maybe_print(&mut self, shared: &Shared, now: u64, total: u64, phase: &Phase) {
        if now < self.next_ns {
            return;
        }
        self.next_ns += 1_000_000_000;
        let c = &shared.counters;
        let current = [
            Counters::get(&c.sent),
            Counters::get(&c.delivered),
            Counters::get(&c.receipts),
        ];
        let rate: Vec<u64> = current.iter().zip(self.last).map(|(a, b)| a - b).collect();
        self.last = current;
        let (established, failed, dropped) = (
            Counters::get(&c.established),
            Counters::get(&c.failed),
            Counters::get(&c.dropped),
        );
        let pending = Counters::get(&c.attempted).saturating_sub(established + failed);
        let name = match phase {
            Phase::Ramp => "ramp",
            Phase::Hold { .. } => "hold",
            Phase::Publish { start, .. } if now < *start => "settle",
            Phase::Publish { .. } => "publish",
            Phase::Drain { .. } => "drain",
        };
        eprintln!(
            "[{:6.1}s] {name:7} conns {}/{total} pend {pending} fail {failed} drop {dropped} | sent/s {} deliv/s {} rcpt/s {} | ERROR {} app-err {} proto-err {}",
            (now - self.start_ns) as f64 / 1e9,
            established - dropped.min(established),
            rate[0],
            rate[1],
            rate[2],
            Counters::get(&c.stomp_errors),
            Counters::get(&c.app_errors),
            Counters::get(&c.protocol_errors),
        );
    }
}

fn build_report(
    cfg: &Config,
    shared: &Shared,
    t: &Timeline,
    results: &[ThreadResult],
    rss_before: Option<u64>,
) -> Report {
    let c = &shared.counters;
    let mut hist = Histograms::new();
    for r in results {
        hist.merge(&r.hist);
    }
    let total = cfg.total_connections() as u64;
    let established = Counters::get(&c.established);
    let last_connected = Counters::get(&c.last_established_ns);
    let ramp_active = (last_connected as f64 / 1e9).max(1e-3);
    let mut r = Report::default();
    r.add("scenario", cfg.scenario.name());
    r.add(
        "target",
        match cfg.target {
            Target::Herald => "herald",
            Target::Reference => "reference (herald-reference: no auth, no store)",
            Target::Rabbitmq => "rabbitmq (Web-STOMP, no persistence)",
        },
    );
    r.add("subscription_ids", if cfg.unique_sub_ids { "unique" } else { "shared" });
    r.add("loadavg_at_end", procfs::loadavg());
    r.add("url", format!("ws://{}{}", cfg.ws.host_header(), cfg.ws.path));
    r.add("nodes", cfg.nodes.len());
    r.add("threads", cfg.threads);
    r.add("sources", cfg.sources);
    r.add("rooms", cfg.rooms);
    r.add("private_rooms", cfg.private_rooms);
    r.add("connections_requested", total);
    r.add("connections_established", established);
    r.add("connections_failed", Counters::get(&c.failed));
    r.add("connections_dropped", Counters::get(&c.dropped));
    r.add("connections_held_at_end", t.held_at_end);
    r.add("connect_ramp_s", round2(t.ramp_secs));
    r.add("connect_rate_per_s", round2(established as f64 / ramp_active));
    r.add("stomp_error_frames", Counters::get(&c.stomp_errors));
    r.add("app_errors", Counters::get(&c.app_errors));
    r.add("protocol_errors", Counters::get(&c.protocol_errors));
    r.add("first_errors", shared.errors());
    match cfg.scenario {
        Scenario::Idle | Scenario::Sse | Scenario::Flood => {}
        Scenario::Fanout => fanout_report(&mut r, cfg, shared, t, results, &hist),
        Scenario::Persist => {
            let receipts = Counters::get(&c.receipts);
            let sent = Counters::get(&c.sent);
            r.add(
                "target_rate_per_s",
                if cfg.rate > 0.0 {
                    cfg.rate.into()
                } else {
                    serde_json::Value::from("max")
                },
            );
            r.add("window_per_connection", cfg.window);
            r.add("publish_s", round2(t.publish_secs));
            r.add("sent", sent);
            r.add("receipts", receipts);
            r.add("receipts_in_window", t.receipts_in_window);
            r.add(
                "committed_per_s",
                round2(t.receipts_in_window as f64 / t.publish_secs.max(1e-3)),
            );
            r.add(
                "unreceipted",
                sent.saturating_sub(receipts + Counters::get(&c.app_errors)),
            );
            r.add("unsent_schedule_slots", results.iter().map(|x| x.unsent).sum::<u64>());
            r.add("drain_s", round2(t.drain_secs));
            r.add("send_to_receipt_latency", latency(&hist.receipt));
        }
    }
    if let (Some(a), Some(b)) = (t.cpu_at_publish, t.cpu_at_drain_end) {
        cpu_report(&mut r, &a, &b);
    }
    let kib = |v: Option<u64>| v.map(serde_json::Value::from).unwrap_or(serde_json::Value::Null);
    r.add("server_rss_before_kib", kib(rss_before));
    r.add("server_rss_after_kib", kib(t.rss_after));
    let per_conn = match (rss_before, t.rss_after) {
        (Some(b), Some(a)) if t.held_at_end > 0 => {
            serde_json::Value::from(round2(a.saturating_sub(b) as f64 / t.held_at_end as f64))
        }
        _ => serde_json::Value::Null,
    };
    r.add("server_rss_per_connection_kib", per_conn);
    r.add("bench_rss_kib", kib(procfs::vm_rss_kib("self")));
    r
}

/// CPU spent from the opening of the publish window to the end of the drain (every delivery of the messages sent
/// in the window has arrived, or the drain timed out), per delivery received in that span.
fn cpu_report(r: &mut Report, a: &CpuSample, b: &CpuSample) {
    let seconds = |x: Option<f64>, y: Option<f64>| match (x, y) {
        (Some(x), Some(y)) => serde_json::Value::from(round4((y - x).max(0.0))),
        _ => serde_json::Value::Null,
    };
    let deliveries = b.delivered.saturating_sub(a.delivered);
    let per_delivery_us = |x: Option<f64>, y: Option<f64>| match (x, y) {
        (Some(x), Some(y)) if deliveries > 0 => {
            serde_json::Value::from(round4((y - x).max(0.0) * 1e6 / deliveries as f64))
        }
        _ => serde_json::Value::Null,
    };
    r.add("cpu_window_s", round2(b.at_ns.saturating_sub(a.at_ns) as f64 / 1e9));
    r.add("cpu_window_deliveries", deliveries);
    r.add("server_cpu_s", seconds(a.server_s, b.server_s));
    r.add("server_cpu_per_delivery_us", per_delivery_us(a.server_s, b.server_s));
    r.add("bench_cpu_s", seconds(a.bench_s, b.bench_s));
    r.add("bench_cpu_per_delivery_us", per_delivery_us(a.bench_s, b.bench_s));
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

fn fanout_report(
    r: &mut Report,
    cfg: &Config,
    shared: &Shared,
    t: &Timeline,
    results: &[ThreadResult],
    hist: &Histograms,
) {
    let c = &shared.counters;
    let sent_per_room: Vec<u64> = shared.sent_per_room.iter().map(Counters::get).collect();
    let (mut missing, mut extra, mut id_regressions, mut seq_regressions, mut seq_gaps, mut subscribers) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    let mut subscribers_missing_any = 0u64;
    for track in results.iter().flat_map(|x| &x.subscribers) {
        subscribers += 1;
        let expected = sent_per_room.get(track.room).copied().unwrap_or(0);
        missing += expected.saturating_sub(track.received);
        extra += track.received.saturating_sub(expected);
        if track.received < expected {
            subscribers_missing_any += 1;
        }
        id_regressions += track.id_regressions;
        seq_regressions += track.seq_regressions;
        seq_gaps += track.seq_gaps;
    }
    let secs = t.publish_secs.max(1e-3);
    r.add("subscribers", subscribers);
    r.add("publishers", cfg.publishers);
    r.add("target_rate_per_s", round2(cfg.rate));
    r.add(
        "target_deliveries_per_s",
        round2(cfg.rate * subscribers as f64 / cfg.rooms as f64),
    );
    r.add("publish_s", round2(secs));
    r.add("sent", Counters::get(&c.sent));
    r.add("sent_per_s", round2(t.sent_in_window as f64 / secs));
    r.add("deliveries_per_s", round2(t.delivered_in_window as f64 / secs));
    r.add("deliveries_expected", shared.expected_deliveries());
    r.add("deliveries_received", Counters::get(&c.delivered));
    r.add("deliveries_missing", missing);
    r.add("deliveries_extra", extra);
    r.add("subscribers_missing_some", subscribers_missing_any);
    r.add("order_id_regressions", id_regressions);
    r.add("order_seq_regressions", seq_regressions);
    r.add("seq_gaps", seq_gaps);
    r.add("unsent_schedule_slots", results.iter().map(|x| x.unsent).sum::<u64>());
    r.add("drain_s", round2(t.drain_secs));
    r.add("send_to_message_latency", latency(&hist.delivery));
}
