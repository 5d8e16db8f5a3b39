"""Times `host run --duration 0` with a cold and with a warm compiled-code cache."""
import os
import statistics
import subprocess
import sys
import tempfile
import time


def run_once(host, plugin, cache_home):
    env = dict(os.environ, XDG_CACHE_HOME=cache_home, RUST_LOG="error")
    started = time.perf_counter()
    subprocess.run([host, "run", "--plugin", plugin, "--duration", "0"], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main():
    host, plugin, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    cold, warm = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as cache:
            cold.append(run_once(host, plugin, cache))
            warm.append(run_once(host, plugin, cache))
    cold_ms, warm_ms = statistics.median(cold) * 1000, statistics.median(warm) * 1000
    print(f"host run, first start (empty cache): median {cold_ms:.0f} ms over {runs} runs")
    print(f"host run, cached start:              median {warm_ms:.0f} ms over {runs} runs")
    print(f"first / cached: {cold_ms / warm_ms:.1f}x")


if __name__ == "__main__":
    main()
