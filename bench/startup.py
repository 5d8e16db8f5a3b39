"""Times `host run --duration 0` with a cold and with a warm compiled-code cache."""
import os
import statistics
import subprocess
import sys
import tempfile
import time


def run_once(command, cache_home):
    env = dict(os.environ, XDG_CACHE_HOME=cache_home, RUST_LOG="error")
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def compare(label, command, runs):
    cold, warm = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as cache:
            cold.append(run_once(command, cache))
            warm.append(run_once(command, cache))
    cold_ms, warm_ms = statistics.median(cold) * 1000, statistics.median(warm) * 1000
    print(f"| `{label}` | {cold_ms:.0f} ms | {warm_ms:.0f} ms | {cold_ms / warm_ms:.1f}x |")


def main():
    host, plugin, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    print(f"medians over {runs} runs")
    print("| command | first start (empty cache) | cached start | first / cached |")
    print("|---|---|---|---|")
    compare("host plugin inspect", [host, "plugin", "inspect", plugin], runs)
    compare("host run --duration 0", [host, "run", "--plugin", plugin, "--duration", "0"], runs)


if __name__ == "__main__":
    main()
