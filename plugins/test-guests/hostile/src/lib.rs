//! TEST ONLY, never deploy: a processor that misbehaves on purpose when it sees the `poison`
//! value, for the host's sandbox tests. Otherwise it counts the readings it has seen (its state,
//! kept by snapshot/restore) and publishes the count after each one: topic `count`, sensor id
//! `hostile`, kind `count`, value = the count, unit `""`, time = the reading's.
//!
//! Config:
//! - `mode` (required): what the poison value does:
//!   - `loop`: spins forever (the host's CPU deadline must stop it);
//!   - `oom`: allocates 1 MiB chunks until allocation fails (the memory cap must stop it);
//!   - `trap`: panics, which aborts the instance;
//!   - `error`: returns an error (the instance lives on);
//!   - `flood`: emits `flood_count` messages on the topic `flood` (the message cap must cut them);
//!   - `flood_points`: the same as points of one series (WIT 0.3.0), which the host must cut
//!     before it makes their messages;
//!   - `series_gap`: declares series 5 while none is declared (WIT 0.3.0: a trap);
//!   - `undeclared`: publishes a point of series 99, never declared (a trap);
//!   - `series_bomb`: declares series of 1 MiB topics without end (the host's 16 MiB budget for
//!     the series of an instance must stop it, with a trap);
//!   - `publish_in_init`: not a poison value: `init` itself calls `host.publish`, which only
//!     `on-readings` and `on-tick` may (a trap, so `init` fails);
//!   - `loop_on_replay`: an ordinary reading on the instance that first sees it, but spins
//!     forever on an instance restored from a snapshot: a call that passed once and runs past
//!     the deadline when the host replays it after a restart (a slow plugin on a busy machine);
//!   - `escape`: tries to get out of the sandbox (files, environment, arguments, a TCP connection
//!     to `target`) and reports on the topic `escape`, one field per attempt, 1 if it got through.
//! - `poison` (a number): without it nothing bad ever happens;
//! - `trap_value` (a number, any mode): a reading of this value panics;
//! - `flood_count` (default 100000);
//! - `work_us` (any mode, default 0): each reading keeps the CPU busy this many microseconds
//!   first (a plugin slow per reading);
//! - `target` (`host:port` for `escape`, default `127.0.0.1:1883`).
//!
//! The poison reading is not counted (unless it did nothing: `loop_on_replay` before a restore).

use garonne_sdk::{Config, Message, Output, Processor, Reading, Series};
use serde::{Deserialize, Serialize};

#[derive(Default, Serialize, Deserialize)]
struct Hostile {
    count: u64,
    #[serde(skip)]
    mode: Mode,
    #[serde(skip)]
    poison: Option<f64>,
    #[serde(skip)]
    trap_value: Option<f64>,
    /// False on a new instance, true on one restored from a snapshot.
    #[serde(skip, default = "restored")]
    restored: bool,
    #[serde(skip)]
    flood_count: u64,
    #[serde(skip)]
    target: String,
    #[serde(skip)]
    work_us: u64,
}

const VALID_MODES: &str = "use loop, oom, trap, error, flood, flood_points, series_gap, undeclared, series_bomb, publish_in_init, \
     loop_on_replay or escape";

fn restored() -> bool {
    true
}

/// What the poison value does; `Default` only because serde-skipped fields need one.
#[derive(Default, Clone, Copy)]
enum Mode {
    #[default]
    Loop,
    Oom,
    Trap,
    Error,
    Flood,
    FloodPoints,
    SeriesGap,
    Undeclared,
    SeriesBomb,
    PublishInInit,
    LoopOnReplay,
    Escape,
}

impl Processor for Hostile {
    fn init(&mut self, config: &Config) -> Result<(), String> {
        self.mode = match config.get_str("mode") {
            Some("loop") => Mode::Loop,
            Some("oom") => Mode::Oom,
            Some("trap") => Mode::Trap,
            Some("error") => Mode::Error,
            Some("flood") => Mode::Flood,
            Some("flood_points") => Mode::FloodPoints,
            Some("series_gap") => Mode::SeriesGap,
            Some("undeclared") => Mode::Undeclared,
            Some("publish_in_init") => Mode::PublishInInit,
            Some("series_bomb") => Mode::SeriesBomb,
            Some("loop_on_replay") => Mode::LoopOnReplay,
            Some("escape") => Mode::Escape,
            Some(other) => return Err(format!("unknown mode {other:?}: {VALID_MODES}")),
            None => return Err(format!("config `mode` is missing: {VALID_MODES}")),
        };
        self.poison = config.get_f64("poison")?;
        self.trap_value = config.get_f64("trap_value")?;
        self.flood_count = config.u64_or("flood_count", 100_000)?;
        self.work_us = config.u64_or("work_us", 0)?;
        self.target = config.str_or("target", "127.0.0.1:1883").to_owned();
        if let Mode::PublishInInit = self.mode {
            break_the_series_rules(self.mode);
        }
        Ok(())
    }

    fn on_reading(&mut self, reading: &Reading<'_>, out: &mut Output) -> Result<(), String> {
        busy_for(std::time::Duration::from_micros(self.work_us));
        if Some(reading.value()) == self.trap_value {
            panic!("hostile: trap value {}", reading.value());
        }
        let harmless = matches!(self.mode, Mode::LoopOnReplay) && !self.restored;
        if Some(reading.value()) == self.poison && !harmless {
            if let Mode::Error = self.mode {
                return Err(format!("hostile: refusing poison value {}", reading.value()));
            }
            self.misbehave(reading, out);
            return Ok(());
        }
        self.count += 1;
        out.emit(Message::new("count", "hostile", "count", self.count as f64, "", reading.time()));
        Ok(())
    }
}

impl Hostile {
    fn misbehave(&self, reading: &Reading<'_>, out: &mut Output) {
        match self.mode {
            Mode::Loop | Mode::LoopOnReplay => spin_forever(),
            Mode::Oom => eat_memory(),
            Mode::Trap => panic!("hostile: poison value {}", reading.value()),
            Mode::Error => {} // answered in on_reading, which can return the error
            Mode::Flood => {
                for i in 0..self.flood_count {
                    out.emit(Message::new("flood", "hostile", "flood", i as f64, "", reading.time()));
                }
            }
            Mode::FloodPoints => {
                for i in 0..self.flood_count {
                    out.point(0, i as f64, reading.time(), &[], || {
                        Series::new("flood", "hostile", "flood", "")
                    });
                }
            }
            Mode::SeriesGap | Mode::Undeclared | Mode::SeriesBomb => break_the_series_rules(self.mode),
            Mode::PublishInInit => {} // done in init
            Mode::Escape => out.emit(try_to_escape(&self.target, reading.time())),
        }
    }
}

/// Calls the host's series functions directly, as a plugin without the SDK could, against the
/// rules of WIT 0.3.0. (Only in WebAssembly: a native build has no host to call.)
fn break_the_series_rules(mode: Mode) {
    #[cfg(target_arch = "wasm32")]
    {
        use garonne_sdk::processor_bindings::garonne::plugin::{host, types};
        let series = |topic: String| types::Series {
            topic,
            sensor_id: "hostile".into(),
            kind: "count".into(),
            unit: String::new(),
            position: None,
            field_names: Vec::new(),
            tags: Vec::new(),
        };
        match mode {
            Mode::SeriesGap => host::declare_series(5, &series("gap".into())),
            Mode::Undeclared => {
                let points =
                    types::Points { series: vec![99], values: vec![1.0], times: vec![0], fields: vec![] };
                host::publish(&points, &[]);
            }
            Mode::PublishInInit => {
                let points = types::Points { series: vec![], values: vec![], times: vec![], fields: vec![] };
                host::publish(&points, &[]);
            }
            Mode::SeriesBomb => {
                for index in 0.. {
                    host::declare_series(index, &series(format!("{index}/{}", "x".repeat(1 << 20))));
                }
            }
            _ => {}
        }
    }
    #[cfg(not(target_arch = "wasm32"))]
    let _ = mode;
}

fn try_to_escape(target: &str, time: i64) -> Message {
    let got = |ok: bool| if ok { 1.0 } else { 0.0 };
    let read_root = std::fs::read_dir("/").is_ok();
    let read_file = std::fs::read("/etc/passwd").is_ok();
    let write_file = std::fs::write("escape.txt", b"out").is_ok();
    let env = std::env::vars().count() > 0;
    let args = std::env::args().count() > 0;
    let connect = std::net::TcpStream::connect(target).is_ok();
    Message::new("escape", "hostile", "escape", 0.0, "", time)
        .field("read_root", got(read_root))
        .field("read_file", got(read_file))
        .field("write_file", got(write_file))
        .field("env", got(env))
        .field("args", got(args))
        .field("connect", got(connect))
}

fn busy_for(time: std::time::Duration) {
    let start = std::time::Instant::now();
    while start.elapsed() < time {
        std::hint::spin_loop();
    }
}

fn spin_forever() -> ! {
    let mut n: u64 = 0;
    loop {
        // black_box keeps the optimiser from proving the loop useless.
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

fn eat_memory() -> ! {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        // Each chunk grows the linear memory until the host's cap refuses; the failed
        // allocation then aborts, which is a trap. Writing to the chunk and black_box keep the
        // optimiser from dropping allocations it could prove unused.
        let mut chunk = vec![0u8; 1 << 20];
        chunk[0] = 1;
        hoard.push(std::hint::black_box(chunk));
    }
}

garonne_sdk::export_processor!(Hostile);
