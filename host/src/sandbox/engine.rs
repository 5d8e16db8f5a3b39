//! Compiling and checking plugins: one `Engine` for the whole host.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::component::{Component, Linker};
use wasmtime::{Cache, CacheConfig, Config, Engine};

use super::bindings::{PACKAGE, SUPPORTED_VERSIONS, v0_1_0, v0_2_0, v0_3_0};
use super::instance::{ProcessorPre, SensorModelPre};
use super::state::GuestState;

/// How often the engine's epoch advances: the granularity of every CPU deadline.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Why a plugin file could not be loaded. Each message says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {error}")]
    Read { path: PathBuf, error: std::io::Error },
    #[error("{path} is not a WebAssembly file (it does not start with \\0asm)")]
    NotWasm { path: PathBuf },
    #[error(
        "{path} is a core WebAssembly module, not a component: build it for the \
         wasm32-wasip2 target (`cargo build --target wasm32-wasip2`), or wrap it with \
         `wasm-tools component new`"
    )]
    CoreModule { path: PathBuf },
    #[error("{path} is not a valid WebAssembly component: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error(
        "{path} is a component but not a Garonne plugin: it exports neither \
         `{PACKAGE}/processor-api` nor `{PACKAGE}/sensor-model-api` (its exports: {exports}). \
         Build it against the `processor` or `sensor-model` world of wit/"
    )]
    WrongWorld { path: PathBuf, exports: String },
    #[error(
        "{path} was built against {PACKAGE}@{found}, which this host does not load (it loads \
         {supported}). Rebuild the plugin against one of those, or use a host that supports it"
    )]
    UnsupportedVersion { path: PathBuf, found: String, supported: String },
    #[error(
        "{path} needs imports this host does not provide: {message}. A plugin may import only \
         {PACKAGE}/host and the WASI 0.2 interfaces of a Rust, Python or JS standard library"
    )]
    Link { path: PathBuf, message: String },
    #[error("cannot set up the WebAssembly engine: {0}")]
    Engine(String),
}

/// Which world a component implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum World {
    Processor,
    SensorModel,
}

impl World {
    pub fn name(self) -> &'static str {
        match self {
            World::Processor => "processor",
            World::SensorModel => "sensor-model",
        }
    }

    fn export_interface(self) -> &'static str {
        match self {
            World::Processor => "processor-api",
            World::SensorModel => "sensor-model-api",
        }
    }
}

/// What `host plugin inspect` shows about a component.
#[derive(Debug, Clone)]
pub struct PluginInfo {
    pub name: String,
    pub path: PathBuf,
    pub world: World,
    pub version: String,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    pub size_bytes: u64,
}

/// A compiled, checked, pre-linked plugin, ready to instantiate in microseconds.
pub struct LoadedPlugin {
    pub info: PluginInfo,
    pub(crate) pre: PluginPre,
    pub(crate) engine: Engine,
}

pub(crate) enum PluginPre {
    Processor(ProcessorPre),
    SensorModel(SensorModelPre),
}

/// Set to `1` to profile plugins with `perf`: see BENCHMARKS.md, "Profiling a plugin".
pub const PERF_MAP_VAR: &str = "GARONNE_PERF_MAP";

/// The one wasmtime `Engine` of the host, with its epoch ticker and compiled-code cache.
pub struct PluginEngine {
    engine: Engine,
    linker: Linker<GuestState>,
    ticker: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
    /// The engine's configuration and cache folder, when it has a compiled-code cache.
    cached: Option<(Config, PathBuf)>,
    /// Whether plugins are compiled apart (see [`PluginEngine::compiling_apart`]).
    apart: bool,
}

/// The program `compiling_apart` engines compile in, once [`compile_in_child_processes`] named it.
static COMPILER_PROGRAM: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Has engines that compile apart run `PROGRAM plugin precompile --cache-dir DIR PLUGIN` (the
/// `host` binary) to fill the cache, so that compiling never happens in this process: its
/// memory, at the peak too, is that of a cached start (a first start with the JavaScript
/// `rolling_median` peaks at over 300 MiB while Cranelift works). If the child fails, the
/// plugin is compiled in a scratch engine here, which also gives the error to show. Called by
/// `host run`; the library's own users (tests) compile in a scratch engine.
pub fn compile_in_child_processes(program: PathBuf) {
    let _ = COMPILER_PROGRAM.set(program);
}

impl PluginEngine {
    /// An engine caching compiled components in `cache_dir` (none: compile every time).
    pub fn new(cache_dir: Option<&Path>) -> Result<Self, LoadError> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        // `perf record` cannot name JIT-compiled guest code unless wasmtime writes a perf map
        // (/tmp/perf-PID.map); off by default because the file grows with every compilation.
        if std::env::var_os(PERF_MAP_VAR).is_some_and(|v| v == "1") {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let mut cached = None;
        if let Some(dir) = cache_dir {
            let mut cache_config = CacheConfig::new();
            cache_config.with_directory(dir);
            let cache = Cache::new(cache_config)
                .map_err(|e| LoadError::Engine(format!("compiled-code cache in {}: {e}", dir.display())))?;
            config.cache(Some(cache));
            cached = Some((config.clone(), dir.to_owned()));
        }
        let engine = Engine::new(&config).map_err(|e| LoadError::Engine(e.to_string()))?;
        let linker = Self::linker(&engine)?;
        let ticker = Some(
            spawn_epoch_ticker(engine.clone())
                .map_err(|e| LoadError::Engine(format!("cannot start the epoch thread: {e}")))?,
        );
        Ok(Self { engine, linker, ticker, cached, apart: false })
    }

    /// One linker for every supported version: each version's `host` interface under its own
    /// versioned name, all served by the same `GuestState`.
    fn linker(engine: &Engine) -> Result<Linker<GuestState>, LoadError> {
        type Data = wasmtime::component::HasSelf<GuestState>;
        let mut linker = Linker::new(engine);
        let error = |what: &str, e: wasmtime::Error| LoadError::Engine(format!("linking {what}: {e}"));
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| error("WASI", e))?;
        v0_3_0::host::add_to_linker::<GuestState, Data>(&mut linker, |state| state)
            .map_err(|e| error("the host interface 0.3.0", e))?;
        v0_3_0::types::add_to_linker::<GuestState, Data>(&mut linker, |state| state)
            .map_err(|e| error("the types interface 0.3.0", e))?;
        v0_2_0::host::add_to_linker::<GuestState, Data>(&mut linker, |state| state)
            .map_err(|e| error("the host interface 0.2.0", e))?;
        v0_1_0::host::add_to_linker::<GuestState, Data>(&mut linker, |state| state)
            .map_err(|e| error("the host interface 0.1.0", e))?;
        // The types of 0.1.0 and 0.2.0 are 0.3.0's (see `bindings`), so their interfaces only
        // need to exist.
        linker.instance("garonne:plugin/types@0.2.0").map_err(|e| error("the types interface 0.2.0", e))?;
        linker.instance("garonne:plugin/types@0.1.0").map_err(|e| error("the types interface 0.1.0", e))?;
        Ok(linker)
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Reads, compiles (or takes from the cache), checks and pre-links a plugin.
    pub fn load(&self, path: &Path) -> Result<LoadedPlugin, LoadError> {
        let (component, info) = self.compile_and_inspect(path)?;
        let link_error =
            |e: wasmtime::Error| LoadError::Link { path: path.to_owned(), message: format!("{e:#}") };
        let instance_pre = self.linker.instantiate_pre(&component).map_err(link_error)?;
        let pre = match info.world {
            World::Processor => {
                PluginPre::Processor(ProcessorPre::new(&info.version, instance_pre).map_err(link_error)?)
            }
            World::SensorModel => {
                PluginPre::SensorModel(SensorModelPre::new(&info.version, instance_pre).map_err(link_error)?)
            }
        };
        Ok(LoadedPlugin { info, pre, engine: self.engine.clone() })
    }

    /// What a plugin is, without linking it: for `host plugin inspect`.
    pub fn inspect(&self, path: &Path) -> Result<PluginInfo, LoadError> {
        self.compile_and_inspect(path).map(|(_, info)| info)
    }

    fn compile_and_inspect(&self, path: &Path) -> Result<(Component, PluginInfo), LoadError> {
        let bytes = std::fs::read(path).map_err(|error| LoadError::Read { path: path.into(), error })?;
        check_header(path, &bytes)?;
        let invalid =
            |e: wasmtime::Error| LoadError::Invalid { path: path.into(), message: format!("{e:#}") };
        self.compile_apart(path, &bytes).map_err(invalid)?;
        let component = Component::new(&self.engine, &bytes).map_err(invalid)?;
        let ty = component.component_type();
        let imports: Vec<String> = ty.imports(&self.engine).map(|(n, _)| n.to_owned()).collect();
        let exports: Vec<String> = ty.exports(&self.engine).map(|(n, _)| n.to_owned()).collect();
        let (world, version) = identify_world(path, &exports)?;
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let size_bytes = bytes.len() as u64;
        let info = PluginInfo { name, path: path.into(), world, version, imports, exports, size_bytes };
        Ok((component, info))
    }
}

impl PluginEngine {
    /// Has each plugin compiled apart, into the cache, and this engine only ever load from the
    /// cache: in a child process once [`compile_in_child_processes`] named the program, in a
    /// scratch engine of the same configuration otherwise (dropped after, its memory given
    /// back). For long runs: Cranelift's compiler keeps its working buffers for the next
    /// compilation, and in the host's engine they stayed for the whole run (a first start with
    /// the JavaScript `rolling_median` held 343 MiB once online, 92 MiB with a scratch engine,
    /// 56 MiB in a child process, as much as a cached start). The price is a plugin read twice
    /// from the cache on a cached start (and a process started): `host run --duration 0` took
    /// 42 ms instead of 30 with `rolling_stats`, 306 ms instead of 130 with `rolling_median`
    /// (BENCHMARKS.md, "Session 17"). Without a cache it changes nothing.
    pub fn compiling_apart(mut self) -> Self {
        self.apart = true;
        self
    }

    fn compile_apart(&self, path: &Path, bytes: &[u8]) -> Result<(), wasmtime::Error> {
        let Some((config, dir)) = self.cached.as_ref().filter(|_| self.apart) else { return Ok(()) };
        if let Some(program) = COMPILER_PROGRAM.get() {
            match precompile_in_child(program, dir, path) {
                Ok(()) => {
                    tracing::debug!("compiled {} in a child process", path.display());
                    return Ok(());
                }
                Err(reason) => tracing::debug!("compiling {} in a child process: {reason}", path.display()),
            }
        }
        let scratch = Engine::new(config)?;
        Component::new(&scratch, bytes)?;
        drop(scratch);
        crate::memory::give_back_freed_memory();
        Ok(())
    }
}

fn precompile_in_child(program: &Path, cache_dir: &Path, plugin: &Path) -> Result<(), String> {
    let status = std::process::Command::new(program)
        .args(["plugin", "precompile", "--cache-dir"])
        .arg(cache_dir)
        .arg(plugin)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
    if status.success() { Ok(()) } else { Err(format!("it ended with {status}")) }
}

impl Drop for PluginEngine {
    fn drop(&mut self) {
        if let Some((stop, handle)) = self.ticker.take() {
            stop.store(true, Ordering::Relaxed);
            let _ = handle.join();
        }
    }
}

fn spawn_epoch_ticker(engine: Engine) -> std::io::Result<(Arc<AtomicBool>, JoinHandle<()>)> {
    let stop = Arc::new(AtomicBool::new(false));
    let stop_flag = stop.clone();
    let handle = std::thread::Builder::new().name("garonne-epoch".into()).spawn(move || {
        while !stop_flag.load(Ordering::Relaxed) {
            std::thread::sleep(EPOCH_TICK);
            engine.increment_epoch();
        }
    })?;
    Ok((stop, handle))
}

/// Tells a core module from a component by the version field of the header, so that the user
/// gets "build for wasm32-wasip2" rather than a parser error.
fn check_header(path: &Path, bytes: &[u8]) -> Result<(), LoadError> {
    if bytes.len() < 8 || &bytes[0..4] != b"\0asm" {
        return Err(LoadError::NotWasm { path: path.into() });
    }
    if bytes[4..8] == [1, 0, 0, 0] {
        return Err(LoadError::CoreModule { path: path.into() });
    }
    Ok(())
}

/// Finds the world and WIT version from the names of the component's exports, such as
/// `garonne:plugin/processor-api@0.1.0`.
fn identify_world(path: &Path, exports: &[String]) -> Result<(World, String), LoadError> {
    for world in [World::Processor, World::SensorModel] {
        let interface = format!("{PACKAGE}/{}", world.export_interface());
        let Some(export) = exports.iter().find(|e| e.split('@').next() == Some(&interface)) else {
            continue;
        };
        let version = export.split_once('@').map(|(_, v)| v.to_owned()).unwrap_or_default();
        if !SUPPORTED_VERSIONS.contains(&version.as_str()) {
            return Err(LoadError::UnsupportedVersion {
                path: path.into(),
                found: if version.is_empty() { "(no version)".into() } else { version },
                supported: SUPPORTED_VERSIONS.join(", "),
            });
        }
        return Ok((world, version));
    }
    let exports = if exports.is_empty() { "none".to_owned() } else { exports.join(", ") };
    Err(LoadError::WrongWorld { path: path.into(), exports })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_tell_modules_components_and_other_files_apart() {
        let p = Path::new("x.wasm");
        assert!(matches!(check_header(p, b"hello world"), Err(LoadError::NotWasm { .. })));
        assert!(matches!(check_header(p, b"\0asm\x01\0\0\0"), Err(LoadError::CoreModule { .. })));
        assert!(check_header(p, b"\0asm\x0d\0\x01\0").is_ok());
    }

    #[test]
    fn the_world_and_version_come_from_the_export_names() {
        let p = Path::new("x.wasm");
        let exports = vec!["garonne:plugin/processor-api@0.1.0".to_owned()];
        assert!(matches!(identify_world(p, &exports), Ok((World::Processor, v)) if v == "0.1.0"));
        let future = vec!["garonne:plugin/sensor-model-api@9.0.0".to_owned()];
        assert!(matches!(
            identify_world(p, &future),
            Err(LoadError::UnsupportedVersion { found, .. }) if found == "9.0.0"
        ));
        let other = vec!["wasi:cli/run@0.2.0".to_owned()];
        assert!(matches!(identify_world(p, &other), Err(LoadError::WrongWorld { .. })));
    }
}
