//! Hostile plugins: each misbehaviour stops only its own instance, is reported, and the state
//! comes back from the last checkpoint; a well-behaved plugin beside it keeps working.

use std::sync::Arc;
use std::time::{Duration, Instant};

use garonne::clock::VirtualClock;
use garonne::sandbox::{Limits, Outcome, PluginEngine, ProcessorSupervisor};

use crate::support::{plugin, readings, temp_dir};

const POISON: f64 = 13.0;

/// Limits for tests that are not about the deadline: generous enough that a loaded CI machine
/// never turns a slow call into a spurious deadline failure.
fn relaxed() -> Limits {
    Limits { call_deadline_ms: 20_000, init_deadline_ms: 20_000, ..Limits::default() }
}

fn engine() -> PluginEngine {
    PluginEngine::new(Some(&temp_dir("cache"))).expect("engine")
}

fn hostile(
    engine: &PluginEngine,
    mode: &str,
    limits: Limits,
    checkpoint_every: usize,
) -> ProcessorSupervisor {
    hostile_with(engine, mode, limits, checkpoint_every, &[])
}

fn hostile_with(
    engine: &PluginEngine,
    mode: &str,
    limits: Limits,
    checkpoint_every: usize,
    extra: &[(&str, &str)],
) -> ProcessorSupervisor {
    let loaded = Arc::new(engine.load(&plugin("hostile")).expect("hostile guest loads"));
    let mut config = vec![
        ("mode".to_owned(), mode.to_owned()),
        ("poison".to_owned(), POISON.to_string()),
        ("flood_count".to_owned(), "100000".to_owned()),
    ];
    config.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    ProcessorSupervisor::start(loaded, config, limits, VirtualClock::new(0, 1.0), 7)
        .expect("hostile guest starts")
        .with_checkpoint_every(checkpoint_every)
}

/// The `count` values the hostile guest emitted.
fn counts(outcome: &Outcome) -> Vec<f64> {
    outcome.messages.iter().filter(|m| m.topic == "count").map(|m| m.payload.value).collect()
}

fn dead_values(outcome: &Outcome) -> Vec<f64> {
    outcome.dead_letters.iter().flat_map(|d| d.readings.iter().map(|r| r.value)).collect()
}

/// Runs rolling_stats on its own thread for `batches` batches and returns how many messages it
/// produced; used to show that a plugin keeps going while its neighbour misbehaves.
fn well_behaved_neighbour(engine: &PluginEngine, batches: usize) -> std::thread::JoinHandle<usize> {
    let loaded = Arc::new(engine.load(&plugin("rolling_stats")).expect("rolling_stats loads"));
    let mut neighbour = ProcessorSupervisor::start(loaded, vec![], relaxed(), VirtualClock::new(0, 1.0), 1)
        .expect("rolling_stats starts");
    std::thread::spawn(move || {
        let mut produced = 0;
        for batch in 0..batches {
            let values: Vec<f64> = (0..10).map(|i| (batch * 10 + i) as f64).collect();
            produced += neighbour.on_readings(&readings(&values)).messages.len();
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(neighbour.stats().failures(), 0);
        produced
    })
}

#[test]
fn an_endless_loop_is_interrupted_at_the_deadline_and_the_neighbour_goes_on() {
    let engine = engine();
    // Long enough that a loaded CI machine never interrupts an ordinary call by mistake.
    let limits = Limits { call_deadline_ms: 500, ..relaxed() };
    let mut looper = hostile(&engine, "loop", limits, 1);
    let neighbour = well_behaved_neighbour(&engine, 40);

    let started = Instant::now();
    let outcome = looper.on_readings(&readings(&[1.0, 2.0, POISON, 4.0]));
    // Not a speed check: an endless loop that was not interrupted would never get here.
    assert!(started.elapsed() < Duration::from_secs(30));

    assert_eq!(counts(&outcome), vec![1.0, 2.0, 3.0], "the other readings are processed");
    assert_eq!(dead_values(&outcome), vec![POISON], "only the poison reading is dead-lettered");
    assert!(outcome.dead_letters[0].reason.contains("CPU deadline of 500 ms"), "{:?}", outcome.dead_letters);
    let stats = looper.stats();
    // Once for the whole batch, once more for the poison reading alone.
    assert_eq!(stats.deadline_failures, 2);
    assert!(stats.restarts >= 2);
    assert_eq!(neighbour.join().expect("neighbour thread"), 400, "the neighbour processed all its readings");
}

#[test]
fn a_memory_bomb_is_stopped_at_the_cap_and_state_survives() {
    let engine = engine();
    let limits = Limits { memory_mib: 32, ..relaxed() };
    let mut bomb = hostile(&engine, "oom", limits, 1);
    let neighbour = well_behaved_neighbour(&engine, 20);

    assert_eq!(counts(&bomb.on_readings(&readings(&[1.0, 2.0]))), vec![1.0, 2.0]);
    let outcome = bomb.on_readings(&readings(&[POISON]));
    assert!(outcome.messages.is_empty());
    assert_eq!(dead_values(&outcome), vec![POISON]);
    assert!(outcome.dead_letters[0].reason.contains("over its cap of 32 MiB"), "{:?}", outcome.dead_letters);
    assert_eq!(bomb.stats().memory_failures, 1);
    // The count goes on from 2: the state was restored, not reset.
    assert_eq!(counts(&bomb.on_readings(&readings(&[5.0]))), vec![3.0]);
    assert_eq!(neighbour.join().expect("neighbour thread"), 200);
}

#[test]
fn a_trap_is_recovered_from_the_snapshot_and_the_journal() {
    let engine = engine();
    let neighbour = well_behaved_neighbour(&engine, 20);
    // checkpoint_every 1: recovery from a snapshot alone; 100: from an old snapshot plus the
    // journal of the calls since.
    for checkpoint_every in [1, 100] {
        let mut trapper = hostile(&engine, "trap", relaxed(), checkpoint_every);
        assert_eq!(counts(&trapper.on_readings(&readings(&[1.0, 2.0]))), vec![1.0, 2.0]);
        let outcome = trapper.on_readings(&readings(&[3.0, POISON, 4.0]));
        assert_eq!(counts(&outcome), vec![3.0, 4.0], "checkpoint_every = {checkpoint_every}");
        assert_eq!(dead_values(&outcome), vec![POISON]);
        assert!(outcome.dead_letters[0].reason.contains("trapped"), "{:?}", outcome.dead_letters);
        assert!(outcome.dead_letters[0].reason.contains("poison"), "the guest's panic message is kept");
        assert_eq!(counts(&trapper.on_readings(&readings(&[5.0]))), vec![5.0]);
        assert_eq!(trapper.stats().trap_failures, 2);
        assert_eq!(trapper.stats().dead_letters, 1);
    }
    assert_eq!(neighbour.join().expect("neighbour thread"), 200);
}

#[test]
fn a_replay_that_fails_gives_up_its_journal_and_the_next_reading_is_processed() {
    let engine = engine();
    const TRAP: f64 = 99.0;
    let limits = Limits { call_deadline_ms: 500, ..relaxed() };
    let mut plugin = hostile_with(&engine, "loop_on_replay", limits, 2, &[("trap_value", "99")]);
    // A snapshot after the second call, then the poison reading, which only loops when replayed.
    assert_eq!(counts(&plugin.on_readings(&readings(&[1.0]))), vec![1.0]);
    assert_eq!(counts(&plugin.on_readings(&readings(&[2.0]))), vec![2.0]);
    assert_eq!(counts(&plugin.on_readings(&readings(&[POISON]))), vec![3.0]);
    assert_eq!(dead_values(&plugin.on_readings(&readings(&[TRAP]))), vec![TRAP]);

    // The restart replays the poison reading from the journal: it runs past the deadline. The
    // instance it leaves cannot be entered again, so the restart must begin again without the
    // journal (the poison reading's effect is lost, the snapshot's kept) rather than hand the
    // next reading to a dead instance.
    let outcome = plugin.on_readings(&readings(&[5.0]));
    assert_eq!(dead_values(&outcome), Vec::<f64>::new(), "{:?}", outcome.dead_letters);
    assert_eq!(counts(&outcome), vec![3.0], "counted on from the snapshot (2)");
    assert_eq!(plugin.stats().trap_failures, 1, "only the trap value trapped");
    assert_eq!(counts(&plugin.on_readings(&readings(&[6.0]))), vec![4.0]);
}

/// A plugin slow per reading, handed a batch that would take 2.5 times its deadline in one
/// call: the supervisor cuts it into calls that fit, so nothing is interrupted or retried.
#[test]
fn a_batch_too_long_for_the_deadline_goes_in_calls_that_fit() {
    let engine = engine();
    let limits = Limits { call_deadline_ms: 400, ..relaxed() };
    let mut slow = hostile_with(&engine, "error", limits, 16, &[("work_us", "2000")]);
    let values: Vec<f64> = (1_000..1_500).map(f64::from).collect();
    let outcome = slow.on_readings(&readings(&values));
    let expected: Vec<f64> = (1..=500).map(f64::from).collect();
    assert_eq!(counts(&outcome), expected, "every reading counted once");
    assert_eq!(slow.stats().deadline_failures, 0);
    assert_eq!(slow.stats().restarts, 0);
    assert!(slow.stats().calls > 1, "{:?}", slow.stats());
}

#[test]
fn an_enormous_list_of_outputs_is_cut_at_the_cap() {
    let engine = engine();
    let limits = Limits { max_messages: 1_000, ..relaxed() };
    let mut flooder = hostile(&engine, "flood", limits, 1);
    let neighbour = well_behaved_neighbour(&engine, 20);
    let outcome = flooder.on_readings(&readings(&[POISON]));
    assert_eq!(outcome.messages.len(), 1_000);
    assert_eq!(flooder.stats().messages_dropped, 99_000);
    assert_eq!(counts(&flooder.on_readings(&readings(&[1.0]))), vec![1.0], "the plugin keeps running");
    assert_eq!(neighbour.join().expect("neighbour thread"), 200);
}

#[test]
fn points_past_the_message_cap_are_dropped_before_they_become_messages() {
    let engine = engine();
    let limits = Limits { max_messages: 1_000, ..relaxed() };
    let mut flooder = hostile(&engine, "flood_points", limits, 1);
    let outcome = flooder.on_readings(&readings(&[POISON]));
    assert_eq!(outcome.messages.len(), 1_000);
    assert!(outcome.messages.iter().all(|m| m.topic == "flood"), "the points of the flood series");
    assert_eq!(outcome.messages[999].payload.value, 999.0, "the first ones, in order");
    assert_eq!(flooder.stats().messages_dropped, 99_000);
    assert_eq!(counts(&flooder.on_readings(&readings(&[1.0]))), vec![1.0], "the plugin keeps running");
}

#[test]
fn breaking_the_rules_of_series_traps_with_the_reason_and_the_state_survives() {
    let engine = engine();
    for (mode, reason) in [
        ("series_gap", "declared series 5, but only 0 are declared"),
        ("undeclared", "point 0 names series 99, which is not declared"),
        ("series_bomb", "past 16777216 bytes"),
    ] {
        let mut guest = hostile(&engine, mode, relaxed(), 1);
        assert_eq!(counts(&guest.on_readings(&readings(&[1.0, 2.0]))), vec![1.0, 2.0], "{mode}");
        let outcome = guest.on_readings(&readings(&[POISON]));
        assert_eq!(dead_values(&outcome), vec![POISON], "{mode}");
        let said = &outcome.dead_letters[0].reason;
        assert!(said.contains("trapped") && said.contains(reason), "{mode}: {said}");
        assert_eq!(guest.stats().trap_failures, 1, "{mode}");
        assert_eq!(counts(&guest.on_readings(&readings(&[5.0]))), vec![3.0], "{mode}: the state came back");
    }
}

#[test]
fn publishing_outside_a_call_that_may_publish_stops_the_start_with_the_reason() {
    let engine = engine();
    let loaded = Arc::new(engine.load(&plugin("hostile")).expect("loads"));
    let config = vec![("mode".to_owned(), "publish_in_init".to_owned())];
    let error = ProcessorSupervisor::start(loaded, config, relaxed(), VirtualClock::new(0, 1.0), 1)
        .err()
        .expect("init traps on host.publish");
    let said = format!("{error:#}");
    assert!(said.contains("`publish` was called outside `on-readings` and `on-tick`"), "{said}");
}

#[test]
fn a_bad_config_stops_the_start_with_the_plugins_own_message() {
    let engine = engine();
    let loaded = Arc::new(engine.load(&plugin("hostile")).expect("loads"));
    let config = vec![("mode".to_owned(), "explode".to_owned())];
    let error = ProcessorSupervisor::start(loaded, config, relaxed(), VirtualClock::new(0, 1.0), 1)
        .err()
        .expect("init refuses an unknown mode");
    assert!(error.to_string().contains("explode"), "{error}");
}

#[test]
fn a_plugin_cannot_reach_files_environment_or_network() {
    // A real listener on loopback: if the sandbox let sockets through, the connect would succeed.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    let target = listener.local_addr().expect("address").to_string();
    // SAFETY of the test's claim: the host process itself does have environment variables.
    assert!(std::env::vars().count() > 0);
    let engine = engine();
    let mut escaper = hostile_with(&engine, "escape", relaxed(), 1, &[("target", &target)]);
    let outcome = escaper.on_readings(&readings(&[POISON]));
    let report = outcome.messages.iter().find(|m| m.topic == "escape").expect("an escape report");
    assert_eq!(report.payload.fields.len(), 6, "{report:?}");
    for (what, got_through) in report.payload.fields.iter() {
        assert_eq!(*got_through, 0.0, "the plugin reached {what}: {report:?}");
    }
}

#[test]
fn compiled_components_are_cached_on_disk() {
    let cache = temp_dir("cache-check");
    let files = |dir: &std::path::Path| -> usize {
        fn count(dir: &std::path::Path) -> usize {
            std::fs::read_dir(dir)
                .map(|entries| {
                    entries.flatten().map(|e| if e.path().is_dir() { count(&e.path()) } else { 1 }).sum()
                })
                .unwrap_or(0)
        }
        count(dir)
    };
    assert_eq!(files(&cache), 0);
    let engine = PluginEngine::new(Some(&cache)).expect("engine");
    engine.load(&plugin("rolling_stats")).expect("loads");
    drop(engine);
    assert!(files(&cache) >= 1, "no compiled artifact in {}", cache.display());
}

#[test]
fn an_error_in_the_middle_of_a_batch_loses_only_the_reading_that_caused_it() {
    let engine = engine();
    let neighbour = well_behaved_neighbour(&engine, 20);
    for checkpoint_every in [1, 100] {
        let mut refuser = hostile(&engine, "error", relaxed(), checkpoint_every);
        assert_eq!(counts(&refuser.on_readings(&readings(&[1.0, 2.0]))), vec![1.0, 2.0]);
        // The error leaves the instance alive but with 3.0 counted and 4.0 not seen: the host
        // goes back to its checkpoint and takes the readings one by one.
        let outcome = refuser.on_readings(&readings(&[3.0, POISON, 4.0]));
        assert_eq!(counts(&outcome), vec![3.0, 4.0], "checkpoint_every = {checkpoint_every}");
        assert_eq!(dead_values(&outcome), vec![POISON]);
        assert!(
            outcome.dead_letters[0].reason.contains("refusing poison value"),
            "{:?}",
            outcome.dead_letters
        );
        assert_eq!(counts(&refuser.on_readings(&readings(&[5.0]))), vec![5.0], "3 and 4 counted once each");
        assert_eq!(refuser.stats().failures(), 0, "an error is not a failure of the instance");
    }
    assert_eq!(neighbour.join().expect("neighbour thread"), 200);
}
