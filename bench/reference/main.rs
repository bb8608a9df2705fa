//! herald-reference: the floor Herald is measured against (issue 12). It speaks the same bytes as Herald on
//! `/ws/chat` (WebSocket upgrade, STOMP 1.2 CONNECT/CONNECTED, SUBSCRIBE to `/topic/chat.<room>`, SEND to
//! `/app/chat.send` broadcast as Herald's MESSAGE frame with Herald's JSON body, RECEIPTs, heart-beats) with the same
//! structure (one mio reactor per core, each with its own `SO_REUSEPORT` listener and slab, bounded outbound
//! buffers flushed once per loop pass), and does no application work: no token check, no store, no metrics.
//!
//! ```text
//! herald-reference [--bind 127.0.0.1:18081] [--reactors 0] [--heartbeat-ms 10000] [--max-connections 19800]
//!                  [--outbound-bytes 1048576] [--max-frame-bytes 65536] [--max-subscriptions 100]
//!                  [--flush-inbox-stride 64]
//! ```
//! It runs until killed (SIGTERM/SIGINT end the process).

mod hub;
mod reactor;
mod stomp;
mod timer;
mod ws;

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use mio::{Poll, Waker};

use crate::hub::Hub;
use crate::reactor::{Parts, Reactor, Settings, Shared};

const USAGE: &str = "\
herald-reference: a minimal STOMP-over-WebSocket broadcaster with Herald's wire format (the bench's floor)

USAGE:
    herald-reference [FLAGS]

FLAGS (default):
    --bind ADDR               listen address (127.0.0.1:18081)
    --reactors N              event loops, 0 = one per core (0)
    --heartbeat-ms MS         heart-beat offered both ways in CONNECTED, 0 = none (10000)
    --max-connections N       connections held by the process (19800)
    --outbound-bytes N        unwritten bytes per connection before it is closed as a slow consumer (1048576)
    --max-frame-bytes N       largest WebSocket payload / STOMP frame accepted (65536)
    --max-subscriptions N     subscriptions per connection (100)
    --flush-inbox-stride N    connections a flush writes between two looks at the inbox, as Herald does;
                              0 = never (the structure before issue 12's pass joining) (64)
";

struct Args {
    bind: SocketAddr,
    reactors: usize,
    settings: Settings,
}

fn parse_args(args: &[String]) -> Result<Args, String> {
    let mut out = Args {
        bind: SocketAddr::from(([127, 0, 0, 1], 18081)),
        reactors: 0,
        settings: Settings::default(),
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("{flag}: bad number {value:?}"))
        };
        match flag.as_str() {
            "--bind" => out.bind = value.parse().map_err(|_| format!("--bind: bad address {value:?}"))?,
            "--reactors" => out.reactors = num()? as usize,
            "--heartbeat-ms" => out.settings.heartbeat_ms = num()?,
            "--max-connections" => out.settings.max_connections = num()? as usize,
            "--outbound-bytes" => out.settings.outbound_bytes = num()? as usize,
            "--max-frame-bytes" => out.settings.max_frame_bytes = (num()? as usize).max(1024),
            "--max-subscriptions" => out.settings.max_subscriptions = num()? as usize,
            "--flush-inbox-stride" => out.settings.flush_inbox_stride = num()? as usize,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if out.reactors == 0 {
        out.reactors = std::thread::available_parallelism().map_or(1, |n| n.get());
    }
    Ok(out)
}

fn bind_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse_args(&args) {
        Ok(a) => a,
        Err(msg) if msg.is_empty() => {
            print!("{USAGE}");
            return;
        }
        Err(msg) => {
            eprintln!("herald-reference: {msg}\n\n{USAGE}");
            std::process::exit(64);
        }
    };
    if let Err(e) = run(args) {
        eprintln!("herald-reference: {e}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> std::io::Result<()> {
    // A second process on a port in use must fail: probe without SO_REUSEPORT first.
    drop(std::net::TcpListener::bind(args.bind)?);
    let mut polls = Vec::with_capacity(args.reactors);
    let mut wakers = Vec::with_capacity(args.reactors);
    let mut listeners = Vec::with_capacity(args.reactors);
    for _ in 0..args.reactors {
        let poll = Poll::new()?;
        wakers.push(Waker::new(poll.registry(), reactor::waker_token())?);
        polls.push(poll);
        listeners.push(bind_listener(args.bind)?);
    }
    let (hub, inboxes) = Hub::new(wakers);
    let shared = Arc::new(Shared {
        settings: args.settings,
        hub,
        open: AtomicUsize::new(0),
    });
    eprintln!(
        "herald-reference: listening on ws://{}/ws/chat with {} reactors",
        args.bind, args.reactors
    );
    let mut threads = Vec::with_capacity(args.reactors);
    for (id, ((poll, listener), inbox)) in polls.into_iter().zip(listeners).zip(inboxes).enumerate() {
        let parts = Parts {
            id,
            poll,
            listener,
            inbox,
        };
        let shared = Arc::clone(&shared);
        // A reactor holds `Rc`s (room names shared by its subscribers), so it is built on its own thread.
        threads.push(
            std::thread::Builder::new()
                .name(format!("reference-{id}"))
                .spawn(move || match Reactor::new(parts, shared) {
                    Ok(reactor) => reactor.run(),
                    Err(e) => eprintln!("herald-reference: reactor {id}: {e}"),
                })?,
        );
    }
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}
