//! `herald-bench compare`: the same load against each target in turn (Herald, herald-reference, optionally
//! RabbitMQ), each server started by its own command and stopped after its phases, then every figure side by side
//! and its ratio to the reference.
//!
//! Phases per target: `idle` (connections CONNECTed and SUBSCRIBEd, held, VmRSS delta / connections held, connect
//! rate of the ramp) and `fanout` (server CPU per delivery from `/proc/<pid>/stat` over the publish window and the
//! drain, SEND→MESSAGE percentiles).

use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::cli::{CompareConfig, CompareTarget, Target};
use crate::{procfs, run_scenario, RunError};

/// The figures compared, as `(key, label, where in the phase report)`; lower is better for all but the connect rate.
const FIGURES: [(&str, &str, &str, &str); 9] = [
    (
        "cpu_per_delivery_us",
        "server CPU per delivery (µs)",
        "fanout",
        "/server_cpu_per_delivery_us",
    ),
    (
        "p50_ms",
        "SEND→MESSAGE p50 (ms)",
        "fanout",
        "/send_to_message_latency/p50_ms",
    ),
    (
        "p99_ms",
        "SEND→MESSAGE p99 (ms)",
        "fanout",
        "/send_to_message_latency/p99_ms",
    ),
    (
        "p999_ms",
        "SEND→MESSAGE p99.9 (ms)",
        "fanout",
        "/send_to_message_latency/p999_ms",
    ),
    (
        "rss_per_idle_conn_kib",
        "RSS per idle subscribed connection (KiB)",
        "idle",
        "/server_rss_per_connection_kib",
    ),
    (
        "connects_per_s",
        "connects/s during the idle ramp",
        "idle",
        "/connect_rate_per_s",
    ),
    (
        "deliveries_per_s",
        "deliveries/s (publish window)",
        "fanout",
        "/deliveries_per_s",
    ),
    (
        "deliveries_missing",
        "deliveries missing",
        "fanout",
        "/deliveries_missing",
    ),
    (
        "idle_connections_held",
        "idle connections held",
        "idle",
        "/connections_held_at_end",
    ),
];

/// Figures whose ratio to the reference is reported.
const RATIOS: [&str; 6] = [
    "cpu_per_delivery_us",
    "p50_ms",
    "p99_ms",
    "p999_ms",
    "rss_per_idle_conn_kib",
    "connects_per_s",
];

/// Runs every target's phases in turn, prints the comparison and writes the JSON.
pub fn run(cc: &CompareConfig) -> Result<(), RunError> {
    let started = unix_s();
    let mut results = Map::new();
    let mut failed = Vec::new();
    for t in &cc.targets {
        let name = t.target.name();
        eprintln!("herald-bench compare: {name}: starting ({})", t.start);
        let result = run_target(cc, t);
        if let Some(e) = result.get("error").and_then(Value::as_str) {
            eprintln!("herald-bench compare: {name}: {e}");
            failed.push(format!("{name}: {e}"));
        }
        results.insert(name.to_string(), result);
    }
    let ratios = ratios(cc, &results);
    let out = json!({
        "mode": "compare",
        "args": cc.args,
        "started_unix_s": started,
        "finished_unix_s": unix_s(),
        "load": {
            "phases": phases(cc),
            "fanout_subscribers": cc.base.connections,
            "rooms": cc.base.rooms,
            "publishers": cc.base.publishers,
            "rate_msgs_per_s": cc.base.rate,
            "offered_deliveries_per_s": cc.base.rate * cc.base.connections as f64 / cc.base.rooms as f64,
            "duration_s": cc.base.duration.as_secs_f64(),
            "message_size": cc.base.message_size,
            "subscription_ids": if cc.base.unique_sub_ids { "unique" } else { "shared" },
            "fanout_heart_beat": format!("{},{}", cc.base.heart_beat.0, cc.base.heart_beat.1),
            "idle_connections": cc.idle_connections,
            "idle_hold_s": cc.idle_hold.as_secs_f64(),
            "idle_heart_beat": format!("{},{}", cc.idle_heart_beat.0, cc.idle_heart_beat.1),
            "connect_rate": cc.base.connect_rate,
            "threads": cc.base.threads,
            "sources": cc.base.sources,
        },
        "targets": results,
        "ratios": ratios,
    });
    print!("{}", text(cc, &out));
    if let Some(path) = &cc.json {
        let text = serde_json::to_string_pretty(&out).unwrap_or_default();
        std::fs::write(path, text + "\n").map_err(|e| RunError::Setup(format!("writing {path}: {e}")))?;
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(RunError::Unreachable(failed.join("; ")))
    }
}

fn phases(cc: &CompareConfig) -> Vec<&'static str> {
    let mut p = Vec::new();
    if cc.idle {
        p.push("idle");
    }
    if cc.fanout {
        p.push("fanout");
    }
    p
}

fn unix_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Starts the target, runs the phases, stops it; the result holds every phase report and the picked figures.
fn run_target(cc: &CompareConfig, t: &CompareTarget) -> Value {
    let mut out = Map::new();
    out.insert("start".into(), t.start.clone().into());
    out.insert("stop".into(), t.stop.clone().into());
    out.insert("url".into(), format!("ws://{}{}", t.ws.host_header(), t.ws.path).into());
    out.insert("loadavg_before".into(), procfs::loadavg().into());
    let pid = match start(&t.start) {
        Ok(pid) => pid,
        Err(e) => {
            out.insert("error".into(), format!("start: {e}").into());
            stop(&t.stop);
            return Value::Object(out);
        }
    };
    out.insert("pid".into(), pid.into());
    std::thread::sleep(cc.pause);
    let mut error = None;
    for (idle, name) in [(true, "idle"), (false, "fanout")] {
        if (idle && !cc.idle) || (!idle && !cc.fanout) {
            continue;
        }
        eprintln!("herald-bench compare: {}: {name} phase (pid {pid})", t.target.name());
        match run_scenario(&cc.phase(t, idle, pid)) {
            Ok(report) => {
                out.insert(name.into(), report.to_json());
            }
            Err(e) => {
                error = Some(format!("{name}: {e}"));
                break;
            }
        }
        std::thread::sleep(cc.pause);
    }
    out.insert("loadavg_after".into(), procfs::loadavg().into());
    stop(&t.stop);
    let mut figures = Map::new();
    for (key, _, phase, pointer) in FIGURES {
        let v = out
            .get(phase)
            .and_then(|r| r.pointer(pointer))
            .cloned()
            .unwrap_or(Value::Null);
        figures.insert(key.into(), v);
    }
    out.insert("figures".into(), Value::Object(figures));
    if let Some(e) = error {
        out.insert("error".into(), e.into());
    }
    Value::Object(out)
}

/// Runs `sh -c cmd`; its last line of output must be the server's PID, and that process must exist.
fn start(cmd: &str) -> Result<u32, String> {
    let output = Command::new("sh")
        .args(["-c", cmd])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    let pid: u32 = last
        .parse()
        .map_err(|_| format!("{cmd}: expected a PID on the last line of its output, got {last:?}"))?;
    if !std::path::Path::new(&format!("/proc/{pid}/stat")).exists() {
        return Err(format!("{cmd}: process {pid} is not running"));
    }
    Ok(pid)
}

fn stop(cmd: &str) {
    if cmd.trim().is_empty() {
        return;
    }
    match Command::new("sh").args(["-c", cmd]).stdin(Stdio::null()).status() {
        Ok(s) if s.success() => {}
        Ok(s) => eprintln!("herald-bench compare: `{cmd}` exited with {s}"),
        Err(e) => eprintln!("herald-bench compare: `{cmd}`: {e}"),
    }
    // Let the kernel finish closing the sockets of the last phase before the next server starts.
    std::thread::sleep(Duration::from_secs(1));
}

/// `<target>/reference` for every figure of [`RATIOS`] and every target but the reference.
fn ratios(cc: &CompareConfig, results: &Map<String, Value>) -> Value {
    let figure = |target: &str, key: &str| {
        results
            .get(target)
            .and_then(|r| r.pointer(&format!("/figures/{key}")))
            .and_then(Value::as_f64)
    };
    let reference = Target::Reference.name();
    let mut out = Map::new();
    if !results.contains_key(reference) {
        return Value::Object(out);
    }
    for t in cc.targets.iter().map(|t| t.target.name()).filter(|n| *n != reference) {
        let mut r = Map::new();
        for key in RATIOS {
            let ratio = match (figure(t, key), figure(reference, key)) {
                (Some(a), Some(b)) if b > 0.0 => Value::from((a / b * 1000.0).round() / 1000.0),
                _ => Value::Null,
            };
            r.insert(key.into(), ratio);
        }
        out.insert(format!("{t}/{reference}"), Value::Object(r));
    }
    Value::Object(out)
}

/// The side-by-side table for stdout.
fn text(cc: &CompareConfig, out: &Value) -> String {
    let names: Vec<&str> = cc.targets.iter().map(|t| t.target.name()).collect();
    let reference = Target::Reference.name();
    let mut s = String::new();
    let load = &out["load"];
    s.push_str(&format!(
        "compare: phases {}; fan-out {} subscribers in {} room(s), {} msg/s ({} deliveries/s offered) for {} s; idle {} connections held {} s\n",
        load["phases"],
        load["fanout_subscribers"],
        load["rooms"],
        load["rate_msgs_per_s"],
        load["offered_deliveries_per_s"],
        load["duration_s"],
        load["idle_connections"],
        load["idle_hold_s"],
    ));
    for n in &names {
        let t = &out["targets"][n];
        s.push_str(&format!(
            "  {n}: pid {}, load average before {} / after {}\n",
            t["pid"], t["loadavg_before"], t["loadavg_after"]
        ));
    }
    let mut header = format!("{:42}", "figure");
    for n in &names {
        header.push_str(&format!("{n:>14}"));
    }
    let others: Vec<&str> = names.iter().copied().filter(|n| *n != reference).collect();
    let with_ratios = names.contains(&reference);
    if with_ratios {
        for n in &others {
            header.push_str(&format!("{:>22}", format!("{n}/{reference}")));
        }
    }
    s.push_str(&header);
    s.push('\n');
    for (key, label, phase, _) in FIGURES {
        if (phase == "idle" && !cc.idle) || (phase == "fanout" && !cc.fanout) {
            continue;
        }
        let mut line = format!("{label:42}");
        for n in &names {
            let v = &out["targets"][n]["figures"][key];
            line.push_str(&format!("{:>14}", number(v)));
        }
        if with_ratios && RATIOS.contains(&key) {
            for n in &others {
                let v = &out["ratios"][format!("{n}/{reference}")][key];
                let shown = v.as_f64().map_or("n/a".to_string(), |r| format!("{r:.2}×"));
                line.push_str(&format!("{shown:>22}"));
            }
        }
        s.push_str(&line);
        s.push('\n');
    }
    s
}

fn number(v: &Value) -> String {
    match v {
        Value::Null => "n/a".into(),
        Value::Number(n) if n.is_f64() => n.as_f64().map_or("n/a".into(), |f| {
            if f.abs() >= 100.0 {
                format!("{f:.0}")
            } else {
                format!("{f:.3}")
            }
        }),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cc(args: &str) -> CompareConfig {
        let args: Vec<String> = args.split_whitespace().map(String::from).collect();
        crate::cli::parse_compare(&args).unwrap()
    }

    #[test]
    fn every_connection_of_a_phase_goes_to_its_target() {
        let cc = cc("--herald-url ws://127.0.0.1:28080/ws/chat --reference-url ws://127.0.0.1:28081/ws/chat");
        for t in &cc.targets {
            for idle in [true, false] {
                let cfg = cc.phase(t, idle, 1);
                assert_eq!(cfg.nodes.len(), 1);
                assert_eq!(cfg.nodes[0].addr, t.ws.addr, "{:?}", t.target.name());
                assert_eq!(cfg.ws.addr, t.ws.addr);
            }
        }
    }

    #[test]
    fn ratios_divide_by_the_reference_and_skip_missing_figures() {
        let cc = cc("--targets herald,reference,rabbitmq");
        let mut results = Map::new();
        results.insert(
            "herald".into(),
            json!({"figures": {"cpu_per_delivery_us": 3.0, "p99_ms": 10.0, "rss_per_idle_conn_kib": null}}),
        );
        results.insert(
            "reference".into(),
            json!({"figures": {"cpu_per_delivery_us": 2.0, "p99_ms": 0.0, "rss_per_idle_conn_kib": 1.0}}),
        );
        results.insert("rabbitmq".into(), json!({"error": "start: no pid"}));
        let r = ratios(&cc, &results);
        assert_eq!(r["herald/reference"]["cpu_per_delivery_us"], json!(1.5));
        assert_eq!(r["herald/reference"]["p99_ms"], Value::Null);
        assert_eq!(r["herald/reference"]["rss_per_idle_conn_kib"], Value::Null);
        assert_eq!(r["rabbitmq/reference"]["p99_ms"], Value::Null);
        let shown = text(
            &cc,
            &json!({"load": {}, "targets": Value::Object(results), "ratios": r}),
        );
        assert!(shown.contains("1.50×"), "{shown}");
    }

    #[test]
    fn start_reads_the_pid_from_the_last_line() {
        // the shell itself has exited by the time its PID is checked
        assert!(start("echo starting; echo $$").is_err());
        assert!(start("echo nothing").is_err());
        assert!(start("echo 4294967295").is_err());
        let me = std::process::id();
        assert_eq!(start(&format!("echo starting; echo {me}")), Ok(me));
    }
}
