//! Command-line parsing and validation into a [`Config`].

use std::time::Duration;

use crate::endpoint::{self, Endpoint};

/// Usage text printed by `--help` and on bad arguments.
pub const USAGE: &str = "\
herald-bench: STOMP-over-WebSocket load generator (loopback only)

USAGE:
    herald-bench <idle|fanout|cluster|persist|sse|flood> [FLAGS]
    herald-bench compare [COMPARE FLAGS] [FLAGS]

SCENARIOS:
    idle     open --connections, CONNECT + SUBSCRIBE to --rooms round-robin, hold --duration seconds
    fanout   --connections subscribers over --rooms, --publishers sending --rate msgs/s in total
    cluster  fanout over several Herald nodes (--nodes URL,URL,…): subscribers and publishers spread
             round-robin over them (logins go to the first node's --http)
    persist  --connections sending receipted SENDs over --rooms, --window outstanding each, --rate total (0 = max)
    sse      (herald only) --connections SSE streams on GET /notifications/stream, one user each; --publishers
             keep-alive HTTP clients POST /notifications to those users, --rate per second in total
    flood    (herald only) --flooders send receipted SENDs as fast as Herald reads them (at most --window
             unanswered each) while --connections calm clients send one receipted SEND every --interval-ms;
             each in its own room. Reports the calm SEND->RECEIPT latency and what became of every flooder SEND
    compare  for each of --targets in turn: start the server, run an idle phase and a fan-out phase with the same
             load, stop it; then print every figure and the ratios to the reference (see COMPARE FLAGS)

FLAGS (default):
    --target herald|reference|rabbitmq   server kind (herald); reference = herald-reference, Herald's protocol
                               without login (the bench makes unsigned JWT-shaped tokens carrying the user name)
    --url URL                  WebSocket URL (herald: ws://127.0.0.1:8080/ws/chat, reference: ws://127.0.0.1:18081/ws/chat,
                               rabbitmq: ws://127.0.0.1:15674/ws)
    --nodes URL,URL,…          cluster: one WebSocket URL per node
    --http URL                 herald REST base for signup/login (http://<url host:port>)
    --users N                  distinct users to sign up and log in, herald only (10; sse: connections + publishers)
    --token-cache PATH         herald: reuse access tokens saved in PATH by an earlier run, save new ones there
    --login-timeout SECS       herald: give up signing up / logging in after this long (60)
    --user-prefix S            user names are <S><i> (bench_user_)
    --password S               password of every bench user (benchpass123)
    --login S / --passcode S   rabbitmq credentials (bench / benchpass)
    --vhost S                  rabbitmq STOMP host header (/)
    --connections N            idle: connections; fanout: subscribers; persist: senders; sse: streams (1000);
                               flood: calm clients (1)
    --flooders N               flood: flooding connections (1)
    --interval-ms N            flood: a calm client's time between two SENDs (50)
    --rooms N                  rooms, named <room-prefix><i> (1)
    --room-prefix S            (bench-room-)
    --publishers N             fanout publisher connections; sse: HTTP publisher threads (10)
    --rate N                   fanout: total SENDs/s (100); persist: total SENDs/s, 0 = as fast as the window allows (0);
                               sse: notifications/s in total (100)
    --delivery-rate N          fanout: set --rate to N / (subscribers per room)
    --window N                 persist: outstanding receipted SENDs per connection (8); flood: per flooder (20000)
    --message-size N           extra padding characters in each message text (0)
    --mention USER             herald: end each message text with @USER, so each SEND also stores and delivers a
                               mention notification (a mention storm at --rate)
    --private-rooms            herald: create the rooms as private rooms of user 0 with every bench user invited
                               first, so each SEND and SUBSCRIBE is authorized as a member's (SPEC 8)
    --stagger                  fanout/cluster: spread the publishers' SENDs evenly over time (publisher i starts i/--rate
                               s late) instead of each thread's publishers sending at the same instants, so no two
                               messages reach the server together and every delivery is its own write
    --duration SECS            hold / publish time (10)
    --connect-rate N           new connections per second (2000)
    --max-pending N            connection handshakes in flight at once (256)
    --ramp-timeout SECS        give up the connect ramp after this long (30)
    --settle SECS              fanout: pause between ramp and first SEND so SUBSCRIBEs land (1)
    --drain SECS               fanout/persist: wait this long at most for in-flight replies (3)
    --threads N                event-loop threads (1)
    --sources N                source addresses 127.0.0.1..127.0.0.N (1)
    --heart-beat CX,CY         STOMP heart-beat asked for in CONNECT (0,0)
    --sub-ids unique|shared    subscription id of each subscriber: sub-<connection index> (unique), or sub-0 for all
                               (shared, what the bench did before issue 12) (unique)
    --server-pid PID           report the server's VmRSS before and after, and its CPU time over the publish window
    --max-connections N        refuse to open more sockets than this (19000)
    --json PATH                also write the results as JSON

COMPARE FLAGS (default); the FLAGS above set the shared load (--connections, --rate, --publishers, ...):
    --targets LIST             servers to run, in this order (herald,reference); any of herald, reference, rabbitmq
    --phases LIST              idle and/or fanout (idle,fanout)
    --idle-connections N       connections held in the idle phase (--connections)
    --idle-hold SECS           how long the idle phase holds them before reading VmRSS (10)
    --idle-heart-beat CX,CY    heart-beat asked for in the idle phase (10000,10000)
    --pause SECS               pause after starting a server and between phases (2)
    --herald-start CMD         shell command that starts Herald and prints its PID last (bench/scripts/herald.sh start)
    --herald-stop CMD          (bench/scripts/herald.sh stop)
    --herald-url URL           (ws://127.0.0.1:18080/ws/chat)
    --reference-start CMD      (bench/scripts/reference.sh start)
    --reference-stop CMD       (bench/scripts/reference.sh stop)
    --reference-url URL        (ws://127.0.0.1:18081/ws/chat)
    --rabbitmq-start CMD       (pgrep -x beam.smp | head -1: the running broker)
    --rabbitmq-stop CMD        (none)
    --rabbitmq-url URL         (ws://127.0.0.1:15674/ws)
    Commands run with `sh -c` from the current directory (the repository root for the defaults).
";

/// Flags that take no value.
const SWITCHES: [&str; 2] = ["private-rooms", "stagger"];

/// Which server the bench talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Herald: JWT login over REST, SEND to `/app/chat.send`.
    Herald,
    /// herald-reference: Herald's STOMP protocol, no login (any bearer token is accepted).
    Reference,
    /// RabbitMQ Web-STOMP: login/passcode, SEND straight to the topic.
    Rabbitmq,
}

impl Target {
    /// The target's CLI name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Herald => "herald",
            Self::Reference => "reference",
            Self::Rabbitmq => "rabbitmq",
        }
    }

    /// Parses a CLI name.
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "herald" => Ok(Self::Herald),
            "reference" => Ok(Self::Reference),
            "rabbitmq" => Ok(Self::Rabbitmq),
            other => Err(format!("target must be herald, reference or rabbitmq, not {other:?}")),
        }
    }

    /// True for the servers that speak Herald's destinations (`/app/chat.send`, `/user/queue/errors`).
    pub fn speaks_herald(self) -> bool {
        matches!(self, Self::Herald | Self::Reference)
    }

    /// The WebSocket URL used when none is given.
    pub fn default_url(self) -> &'static str {
        match self {
            Self::Herald => "ws://127.0.0.1:8080/ws/chat",
            Self::Reference => "ws://127.0.0.1:18081/ws/chat",
            Self::Rabbitmq => "ws://127.0.0.1:15674/ws",
        }
    }
}

/// The load shape to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Hold subscribed connections and measure memory.
    Idle,
    /// Publish to rooms with many subscribers and measure delivery latency.
    Fanout,
    /// Receipted SENDs and measure commit latency.
    Persist,
    /// SSE notification streams and direct notifications.
    Sse,
    /// Flooding connections next to calm ones: fairness of the SEND path.
    Flood,
}

impl Scenario {
    /// The scenario's CLI name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Fanout => "fanout",
            Self::Persist => "persist",
            Self::Sse => "sse",
            Self::Flood => "flood",
        }
    }
}

/// Everything a run needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Load shape.
    pub scenario: Scenario,
    /// Server kind.
    pub target: Target,
    /// WebSocket endpoint (the first node's).
    pub ws: Endpoint,
    /// Every node's WebSocket endpoint (`cluster --nodes`); connection `i` goes to `i % len`.
    pub nodes: Vec<Endpoint>,
    /// REST endpoint (herald only).
    pub http: Endpoint,
    /// Distinct users (herald).
    pub users: usize,
    /// User name prefix.
    pub user_prefix: String,
    /// Password for bench users.
    pub password: String,
    /// RabbitMQ login.
    pub login: String,
    /// RabbitMQ passcode.
    pub passcode: String,
    /// RabbitMQ virtual host for the STOMP `host` header.
    pub vhost: String,
    /// Idle connections, fanout subscribers or persist senders.
    pub connections: usize,
    /// Number of rooms.
    pub rooms: usize,
    /// Room name prefix.
    pub room_prefix: String,
    /// Fanout publishers.
    pub publishers: usize,
    /// Flood: flooding connections.
    pub flooders: usize,
    /// Flood: a calm client's time between two SENDs.
    pub interval: Duration,
    /// Total SENDs per second (0 = unthrottled, persist only).
    pub rate: f64,
    /// Persist window per connection.
    pub window: usize,
    /// Padding characters per message.
    pub message_size: usize,
    /// A username mentioned in every message (`@name`), if any.
    pub mention: Option<String>,
    /// Make the rooms private rooms with the bench users as members before the load (herald).
    pub private_rooms: bool,
    /// Offset each publisher's schedule by its index / rate, so that SENDs never coincide.
    pub stagger: bool,
    /// Hold or publish time.
    pub duration: Duration,
    /// New connections per second.
    pub connect_rate: f64,
    /// Handshakes in flight at once.
    pub max_pending: usize,
    /// Connect ramp deadline.
    pub ramp_timeout: Duration,
    /// Pause before publishing.
    pub settle: Duration,
    /// Wait for in-flight replies after publishing.
    pub drain: Duration,
    /// Event-loop threads.
    pub threads: usize,
    /// Source addresses.
    pub sources: usize,
    /// Heart-beat header value for CONNECT.
    pub heart_beat: (u64, u64),
    /// Every subscriber gets its own subscription id (`sub-<global index>`) instead of `sub-0`.
    pub unique_sub_ids: bool,
    /// Server process to measure.
    pub server_pid: Option<u32>,
    /// Socket guard.
    pub max_connections: usize,
    /// JSON output path.
    pub json: Option<String>,
    /// File of cached access tokens (herald).
    pub token_cache: Option<String>,
    /// Deadline of the signup/login phase.
    pub login_timeout: Duration,
}

impl Config {
    /// Total sockets the run opens.
    pub fn total_connections(&self) -> usize {
        match self.scenario {
            Scenario::Fanout | Scenario::Sse => self.connections + self.publishers,
            Scenario::Flood => self.connections + self.flooders,
            _ => self.connections,
        }
    }

    /// Room name `i`.
    pub fn room(&self, i: usize) -> String {
        format!("{}{}", self.room_prefix, i % self.rooms)
    }
}

/// Parses `args` (without the program name); `Err` carries the message to print before [`USAGE`].
pub fn parse(args: &[String]) -> Result<Config, String> {
    let mut it = args.iter();
    let scenario = match it.next().map(String::as_str) {
        Some("idle") => Scenario::Idle,
        // A fan-out whose connections are spread over several nodes (`--nodes`).
        Some("fanout" | "cluster") => Scenario::Fanout,
        Some("persist") => Scenario::Persist,
        Some("sse") => Scenario::Sse,
        Some("flood") => Scenario::Flood,
        Some("-h" | "--help") | None => return Err(String::new()),
        Some(other) => return Err(format!("unknown scenario {other:?}")),
    };
    let mut flags: Vec<(String, String)> = Vec::new();
    while let Some(arg) = it.next() {
        if arg == "-h" || arg == "--help" {
            return Err(String::new());
        }
        let Some(name) = arg.strip_prefix("--") else {
            return Err(format!("unexpected argument {arg:?}"));
        };
        let (name, value) = match name.split_once('=') {
            Some((n, v)) => (n.to_string(), v.to_string()),
            // A switch: takes no value.
            None if SWITCHES.contains(&name) => (name.to_string(), "true".to_string()),
            None => {
                let v = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
                (name.to_string(), v.clone())
            }
        };
        flags.push((name, value));
    }
    let mut f = Flags(flags);
    let target = match f.take("target") {
        None => Target::Herald,
        Some(name) => Target::parse(&name).map_err(|e| format!("--{e}"))?,
    };
    let cluster = args.first().map(String::as_str) == Some("cluster");
    let nodes: Vec<Endpoint> = match f.take("nodes") {
        Some(list) => list
            .split(',')
            .map(|url| endpoint::parse(url.trim(), "ws"))
            .collect::<Result<_, _>>()?,
        None if cluster => return Err("cluster needs --nodes URL,URL,… (one WebSocket URL per node)".into()),
        None => Vec::new(),
    };
    let ws = match nodes.first() {
        Some(first) => first.clone(),
        None => endpoint::parse(&f.take("url").unwrap_or_else(|| target.default_url().into()), "ws")?,
    };
    let nodes = if nodes.is_empty() { vec![ws.clone()] } else { nodes };
    let http_url = f.take("http").unwrap_or_else(|| format!("http://{}", ws.host_header()));
    let http = endpoint::parse(&http_url, "http")?;
    let flood = scenario == Scenario::Flood;
    let connections = f.num("connections", if flood { 1 } else { 1000 })?;
    let rooms = f.num("rooms", 1)?.max(1);
    let delivery_rate = f.take("delivery-rate");
    let default_rate = if scenario == Scenario::Persist { 0.0 } else { 100.0 };
    let mut rate = f.float("rate", default_rate)?;
    if let Some(d) = delivery_rate {
        let d: f64 = d.parse().map_err(|_| format!("--delivery-rate: bad number {d:?}"))?;
        let per_room = (connections as f64 / rooms as f64).max(1.0);
        rate = d / per_room;
    }
    let heart_beat = match f.take("heart-beat") {
        None => (0, 0),
        Some(v) => parse_heart_beat("heart-beat", &v)?,
    };
    let unique_sub_ids = match f.take("sub-ids").as_deref() {
        None | Some("unique") => true,
        Some("shared") => false,
        Some(other) => return Err(format!("--sub-ids must be unique or shared, not {other:?}")),
    };
    let cfg = Config {
        scenario,
        target,
        ws,
        nodes,
        http,
        users: f.num("users", 10)?.max(1),
        token_cache: f.take("token-cache"),
        login_timeout: f.secs("login-timeout", 60.0)?,
        user_prefix: f.take("user-prefix").unwrap_or_else(|| "bench_user_".into()),
        password: f.take("password").unwrap_or_else(|| "benchpass123".into()),
        login: f.take("login").unwrap_or_else(|| "bench".into()),
        passcode: f.take("passcode").unwrap_or_else(|| "benchpass".into()),
        vhost: f.take("vhost").unwrap_or_else(|| "/".into()),
        connections,
        rooms,
        room_prefix: f.take("room-prefix").unwrap_or_else(|| "bench-room-".into()),
        publishers: f.num("publishers", 10)?,
        flooders: f.num("flooders", 1)?,
        interval: Duration::from_millis(f.num("interval-ms", 50)?.max(1) as u64),
        rate,
        window: f.num("window", if flood { 20_000 } else { 8 })?.max(1),
        message_size: f.num("message-size", 0)?,
        mention: f.take("mention"),
        private_rooms: match f.take("private-rooms").as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => return Err(format!("--private-rooms: expected true or false, got {other:?}")),
        },
        stagger: match f.take("stagger").as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => return Err(format!("--stagger: expected true or false, got {other:?}")),
        },
        duration: f.secs("duration", 10.0)?,
        connect_rate: f.float("connect-rate", 2000.0)?,
        max_pending: f.num("max-pending", 256)?.max(1),
        ramp_timeout: f.secs("ramp-timeout", 30.0)?,
        settle: f.secs("settle", 1.0)?,
        drain: f.secs("drain", 3.0)?,
        threads: f.num("threads", 1)?.clamp(1, 64),
        sources: f.num("sources", 1)?.clamp(1, 254),
        heart_beat,
        unique_sub_ids,
        server_pid: f
            .take("server-pid")
            .map(|p| p.parse().map_err(|_| format!("--server-pid: bad pid {p:?}")))
            .transpose()?,
        max_connections: f.num("max-connections", 19_000)?,
        json: f.take("json"),
    };
    if let Some((name, _)) = f.0.first() {
        return Err(format!("unknown flag --{name}"));
    }
    let mut cfg = cfg;
    if cfg.scenario == Scenario::Sse {
        // one user per stream, plus one sender user per publisher
        cfg.users = cfg.connections + cfg.publishers;
    }
    if cfg.scenario == Scenario::Flood {
        // one user and one room per connection: calm ones first, then the flooders
        cfg.users = cfg.connections + cfg.flooders;
        cfg.rooms = cfg.users;
    }
    validate(&cfg)?;
    Ok(cfg)
}

fn validate(cfg: &Config) -> Result<(), String> {
    let total = cfg.total_connections();
    if total == 0 {
        return Err("nothing to do: --connections is 0".into());
    }
    if total > cfg.max_connections {
        return Err(format!(
            "{total} connections exceed --max-connections {}",
            cfg.max_connections
        ));
    }
    if cfg.duration > Duration::from_secs(600) || cfg.ramp_timeout > Duration::from_secs(300) {
        return Err("runs are bounded: --duration ≤ 600 s, --ramp-timeout ≤ 300 s".into());
    }
    if matches!(cfg.scenario, Scenario::Fanout | Scenario::Sse) && (cfg.publishers == 0 || cfg.rate <= 0.0) {
        return Err("fanout and sse need --publishers ≥ 1 and --rate > 0".into());
    }
    if matches!(cfg.scenario, Scenario::Sse | Scenario::Flood) && cfg.target != Target::Herald {
        return Err("sse and flood are herald scenarios".into());
    }
    if cfg.private_rooms && (cfg.target != Target::Herald || cfg.scenario == Scenario::Sse) {
        return Err("--private-rooms is for herald's chat scenarios".into());
    }
    if cfg.stagger && cfg.scenario != Scenario::Fanout {
        return Err("--stagger is for the fanout and cluster scenarios".into());
    }
    if cfg.login_timeout > Duration::from_secs(3600) {
        return Err("runs are bounded: --login-timeout ≤ 3600 s".into());
    }
    if cfg.message_size > 1900 {
        return Err("--message-size ≤ 1900 (herald's message limit is 2000 characters)".into());
    }
    if cfg.connect_rate <= 0.0 {
        return Err("--connect-rate must be > 0".into());
    }
    Ok(())
}

fn parse_heart_beat(flag: &str, v: &str) -> Result<(u64, u64), String> {
    v.split_once(',')
        .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)))
        .ok_or_else(|| format!("--{flag}: expected CX,CY in ms, got {v:?}"))
}

/// One server of a `compare` run and how to start and stop it.
#[derive(Debug, Clone)]
pub struct CompareTarget {
    /// Server kind.
    pub target: Target,
    /// WebSocket endpoint.
    pub ws: Endpoint,
    /// Shell command that starts it and prints its PID on its last line of output.
    pub start: String,
    /// Shell command that stops it (empty: nothing to do).
    pub stop: String,
}

/// A `compare` run: the same load against each target in turn.
#[derive(Debug, Clone)]
pub struct CompareConfig {
    /// The load of the fan-out phase (scenario `fanout`); the idle phase is derived from it.
    pub base: Config,
    /// Servers, in the order they run.
    pub targets: Vec<CompareTarget>,
    /// Run the idle phase.
    pub idle: bool,
    /// Run the fan-out phase.
    pub fanout: bool,
    /// Connections of the idle phase.
    pub idle_connections: usize,
    /// Hold time of the idle phase.
    pub idle_hold: Duration,
    /// Heart-beat of the idle phase.
    pub idle_heart_beat: (u64, u64),
    /// Pause after a server starts and between phases.
    pub pause: Duration,
    /// JSON output path.
    pub json: Option<String>,
    /// The command line, for the record.
    pub args: Vec<String>,
}

impl CompareConfig {
    /// The configuration of one phase (`idle` or fan-out) against one target with the server's PID.
    pub fn phase(&self, t: &CompareTarget, idle: bool, pid: u32) -> Config {
        let mut cfg = self.base.clone();
        cfg.target = t.target;
        cfg.ws = t.ws.clone();
        // Every connection goes to this target (the base's node list is the default URL's).
        cfg.nodes = vec![t.ws.clone()];
        cfg.http = Endpoint {
            path: "/".into(),
            ..t.ws.clone()
        };
        cfg.server_pid = Some(pid);
        cfg.json = None;
        if idle {
            cfg.scenario = Scenario::Idle;
            cfg.connections = self.idle_connections;
            cfg.duration = self.idle_hold;
            cfg.heart_beat = self.idle_heart_beat;
        }
        cfg
    }
}

/// Parses `compare` arguments (without the program name and the word `compare`).
pub fn parse_compare(args: &[String]) -> Result<CompareConfig, String> {
    const OWN: [&str; 15] = [
        "targets",
        "phases",
        "idle-connections",
        "idle-hold",
        "idle-heart-beat",
        "pause",
        "herald-start",
        "herald-stop",
        "herald-url",
        "reference-start",
        "reference-stop",
        "reference-url",
        "rabbitmq-start",
        "rabbitmq-stop",
        "rabbitmq-url",
    ];
    let mut own = Flags(Vec::new());
    let mut rest = vec!["fanout".to_string()];
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let name = arg.strip_prefix("--").unwrap_or("");
        let (name, inline) = match name.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (name, None),
        };
        if ["target", "url", "http", "server-pid"].contains(&name) {
            return Err(format!("--{name} is set per target in compare (see COMPARE FLAGS)"));
        }
        if !OWN.contains(&name) {
            rest.push(arg.clone());
            continue;
        }
        let value = match inline {
            Some(v) => v,
            None => it.next().ok_or_else(|| format!("--{name} needs a value"))?.clone(),
        };
        own.0.push((name.to_string(), value));
    }
    let base = parse(&rest)?;
    let phases = own.take("phases").unwrap_or_else(|| "idle,fanout".into());
    let (mut idle, mut fanout) = (false, false);
    for p in phases.split(',').map(str::trim) {
        match p {
            "idle" => idle = true,
            "fanout" => fanout = true,
            other => return Err(format!("--phases: unknown phase {other:?}")),
        }
    }
    let mut targets = Vec::new();
    for name in own
        .take("targets")
        .unwrap_or_else(|| "herald,reference".into())
        .split(',')
        .map(str::trim)
    {
        let target = Target::parse(name).map_err(|e| format!("--targets: {e}"))?;
        let (start, stop, url) = match target {
            Target::Herald => (
                "bench/scripts/herald.sh start",
                "bench/scripts/herald.sh stop",
                "ws://127.0.0.1:18080/ws/chat",
            ),
            Target::Reference => (
                "bench/scripts/reference.sh start",
                "bench/scripts/reference.sh stop",
                target.default_url(),
            ),
            Target::Rabbitmq => ("pgrep -x beam.smp | head -1", "", target.default_url()),
        };
        let n = target.name();
        targets.push(CompareTarget {
            target,
            ws: endpoint::parse(&own.take(&format!("{n}-url")).unwrap_or_else(|| url.into()), "ws")?,
            start: own.take(&format!("{n}-start")).unwrap_or_else(|| start.into()),
            stop: own.take(&format!("{n}-stop")).unwrap_or_else(|| stop.into()),
        });
    }
    if targets.is_empty() || !(idle || fanout) {
        return Err("compare needs at least one target and one phase".into());
    }
    let idle_connections = own.num("idle-connections", base.connections)?;
    if idle && (idle_connections == 0 || idle_connections > base.max_connections) {
        return Err(format!(
            "--idle-connections must be 1..={} (--max-connections)",
            base.max_connections
        ));
    }
    let idle_hold = own.secs("idle-hold", 10.0)?;
    let pause = own.secs("pause", 2.0)?;
    if idle_hold > Duration::from_secs(600) || pause > Duration::from_secs(60) {
        return Err("runs are bounded: --idle-hold ≤ 600 s, --pause ≤ 60 s".into());
    }
    let idle_heart_beat = match own.take("idle-heart-beat") {
        None => (10_000, 10_000),
        Some(v) => parse_heart_beat("idle-heart-beat", &v)?,
    };
    if let Some((name, _)) = own.0.first() {
        return Err(format!("--{name} given for a target not in --targets"));
    }
    Ok(CompareConfig {
        json: base.json.clone(),
        base,
        targets,
        idle,
        fanout,
        idle_connections,
        idle_hold,
        idle_heart_beat,
        pause,
        args: args.to_vec(),
    })
}

struct Flags(Vec<(String, String)>);

impl Flags {
    fn take(&mut self, name: &str) -> Option<String> {
        let i = self.0.iter().rposition(|(n, _)| n == name)?;
        let value = self.0.remove(i).1;
        self.0.retain(|(n, _)| n != name);
        Some(value)
    }

    fn num(&mut self, name: &str, default: usize) -> Result<usize, String> {
        self.take(name)
            .map(|v| {
                v.replace('_', "")
                    .parse()
                    .map_err(|_| format!("--{name}: bad number {v:?}"))
            })
            .unwrap_or(Ok(default))
    }

    fn float(&mut self, name: &str, default: f64) -> Result<f64, String> {
        self.take(name)
            .map(|v| v.parse().map_err(|_| format!("--{name}: bad number {v:?}")))
            .unwrap_or(Ok(default))
    }

    fn secs(&mut self, name: &str, default: f64) -> Result<Duration, String> {
        let s = self.float(name, default)?;
        Duration::try_from_secs_f64(s).map_err(|_| format!("--{name}: bad duration {s}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_fanout_with_delivery_rate() {
        let c = parse(&args(
            "fanout --target rabbitmq --connections 1000 --delivery-rate=20000",
        ))
        .unwrap();
        assert_eq!((c.target, c.connections, c.rate), (Target::Rabbitmq, 1000, 20.0));
        assert_eq!(c.ws.addr.port(), 15674);
        assert_eq!(c.total_connections(), 1010);
    }

    #[test]
    fn sse_gets_one_user_per_stream() {
        let c = parse(&args("sse --connections 100 --publishers 2 --rate 50")).unwrap();
        assert_eq!((c.scenario, c.users, c.total_connections()), (Scenario::Sse, 102, 102));
        assert!(parse(&args("sse --target rabbitmq")).is_err());
    }

    #[test]
    fn stagger_is_a_switch_for_fanout() {
        assert!(parse(&args("fanout --stagger --target reference")).unwrap().stagger);
        assert!(!parse(&args("fanout")).unwrap().stagger);
        assert!(parse(&args("persist --stagger")).is_err());
    }

    #[test]
    fn private_rooms_is_a_switch_for_herald_chat() {
        let c = parse(&args("persist --private-rooms --rooms 4")).unwrap();
        assert!(c.private_rooms);
        assert_eq!(c.rooms, 4);
        assert!(!parse(&args("persist")).unwrap().private_rooms);
        assert!(parse(&args("fanout --private-rooms --target rabbitmq")).is_err());
        assert!(parse(&args("sse --private-rooms")).is_err());
    }

    #[test]
    fn flood_defaults_to_one_calm_client_and_one_flooder() {
        let c = parse(&args("flood")).unwrap();
        assert_eq!((c.connections, c.flooders, c.window), (1, 1, 20_000));
        assert_eq!((c.users, c.rooms, c.total_connections()), (2, 2, 2));
        assert_eq!(c.interval, Duration::from_millis(50));
        let c = parse(&args("flood --connections 3 --flooders 0 --interval-ms 20")).unwrap();
        assert_eq!(
            (c.users, c.total_connections(), c.interval),
            (3, 3, Duration::from_millis(20))
        );
        assert!(parse(&args("flood --target rabbitmq")).is_err());
    }

    #[test]
    fn compare_splits_its_own_flags_from_the_load() {
        let c = parse_compare(&args(
            "--connections 2000 --rate 5 --targets herald,reference,rabbitmq --phases fanout \
             --reference-start=./ref.sh --idle-heart-beat 0,0 --json out.json --sub-ids shared",
        ))
        .unwrap();
        assert_eq!(
            (c.base.scenario, c.base.connections, c.base.rate),
            (Scenario::Fanout, 2000, 5.0)
        );
        assert_eq!(
            (c.idle, c.fanout, c.idle_connections, c.idle_heart_beat),
            (false, true, 2000, (0, 0))
        );
        let names: Vec<_> = c.targets.iter().map(|t| t.target.name()).collect();
        assert_eq!(names, ["herald", "reference", "rabbitmq"]);
        assert_eq!(c.targets[1].start, "./ref.sh");
        assert_eq!(c.targets[0].ws.addr.port(), 18080);
        assert_eq!(c.json.as_deref(), Some("out.json"));
        assert!(!c.base.unique_sub_ids);
        let idle = c.phase(&c.targets[1], true, 7);
        assert_eq!(
            (idle.scenario, idle.target, idle.server_pid, idle.ws.addr.port()),
            (Scenario::Idle, Target::Reference, Some(7), 18081)
        );
        assert!(parse_compare(&args("--url ws://127.0.0.1:1/ws")).is_err());
        assert!(parse_compare(&args("--targets herald --reference-start x")).is_err());
        assert!(parse_compare(&args("--phases nothing")).is_err());
        assert!(parse_compare(&args("--idle-connections 30000")).is_err());
    }

    #[test]
    fn cluster_spreads_over_nodes() {
        let c = parse(&args(
            "cluster --nodes ws://127.0.0.1:1/ws/chat,ws://127.0.0.1:2/ws/chat --connections 10",
        ))
        .unwrap();
        assert_eq!((c.scenario, c.nodes.len(), c.ws.addr.port()), (Scenario::Fanout, 2, 1));
        assert!(parse(&args("cluster --connections 10")).is_err(), "--nodes is required");
        assert_eq!(parse(&args("fanout")).unwrap().nodes.len(), 1);
    }

    #[test]
    fn refuses_bad_input() {
        assert!(parse(&args("idle --url ws://192.168.1.1/ws")).is_err());
        assert!(parse(&args("idle --connections 30000")).is_err());
        assert!(parse(&args("idle --bogus 1")).is_err());
        assert!(parse(&args("nope")).is_err());
    }
}
