#!/usr/bin/env python3
"""Turns the output of scripts/bench (a results directory of JSON files and CDF data) into
docs/benchmarks.md and its gnuplot plots. Run by scripts/bench; can be re-run by hand:

    python3 bench/report.py --results bench/results --md docs/benchmarks.md --img docs/img

Every ratio in the report compares numbers measured in the same run. The hand-written analysis
in bench/analysis.md (if present) is appended verbatim.
"""
import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

NS = [1, 3, 5]


def load(results, name):
    path = os.path.join(results, name + ".json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        text = f.read().strip()
    return json.loads(text) if text else None


def ms(us):
    return f"{us / 1000:.3f} ms"


def fmt_rate(x):
    return f"{x:,.0f}"


def verdict(ok):
    return "**met**" if ok else "**missed**"


def gnuplot(script, img_dir):
    if not shutil.which("gnuplot"):
        print("report.py: gnuplot not found; plots skipped", file=sys.stderr)
        return False
    with tempfile.NamedTemporaryFile("w", suffix=".gp", delete=False) as f:
        f.write(script)
        name = f.name
    try:
        subprocess.run(["gnuplot", name], check=True, cwd=img_dir, timeout=60)
    finally:
        os.unlink(name)
    return True


def terminal():
    # pngcairo draws anti-aliased lines; plain png (libgd) is the fallback.
    out = subprocess.run(["gnuplot", "-e", "set terminal"], capture_output=True, text=True)
    names = out.stdout + out.stderr
    if "pngcairo" in names:
        return "set terminal pngcairo size 860,520 font 'sans,10'"
    return "set terminal png size 860,520"


def plot_cdfs(results, img_dir):
    series = []
    for n in NS:
        p = os.path.join(results, f"cdf_a_{n}.dat")
        if os.path.exists(p):
            series.append((os.path.abspath(p), f"a: N={n}"))
    for tag, title in (("base", "d: N=5 (same run, baseline)"), ("slow", "d: N=5, one node +20 ms")):
        p = os.path.join(results, f"cdf_d_{tag}.dat")
        if os.path.exists(p):
            series.append((os.path.abspath(p), title))
    if not series:
        return None
    plots = ", ".join(f"'{p}' using ($1/1000):2 with lines lw 2 title '{t}'" for p, t in series)
    script = f"""{terminal()}
set output 'acquire_cdf.png'
set title 'Acquire latency CDF (one acquire in flight)'
set xlabel 'acquire latency (ms, log scale)'
set ylabel 'fraction of acquires'
set logscale x
set grid
set key bottom right
set yrange [0:1]
plot {plots}
"""
    return "acquire_cdf.png" if gnuplot(script, img_dir) else None


def plot_throughput(rows, img_dir):
    if not rows:
        return None
    data = os.path.join(img_dir, "throughput.dat")
    with open(data, "w") as f:
        for n, b, lim in rows:
            f.write(f"{n} {b} {lim}\n")
    script = f"""{terminal()}
set output 'throughput.png'
set title 'Throughput against N (64 cycles in flight; limit: redis-benchmark -P 16 -c 4)'
set xlabel 'N (servers)'
set ylabel 'acquire + release cycles per second'
set xtics (1, 3, 5)
set xrange [0.5:5.5]
set yrange [0:*]
set grid
set key top right
plot 'throughput.dat' using 1:3 with linespoints lw 2 pt 7 title 'f: limit (redis-benchmark, same scripts)', \\
     'throughput.dat' using 1:2 with linespoints lw 2 pt 5 title 'b: redlock, one manager'
"""
    ok = gnuplot(script, img_dir)
    os.unlink(data)
    return "throughput.png" if ok else None


def micro_rows(results):
    rows = []
    for path in sorted(glob.glob(os.path.join(results, "redlock_micro_*.json"))):
        with open(path) as f:
            d = json.load(f)
        for b in d.get("benchmarks", []):
            if b.get("run_type", "iteration") != "iteration":
                continue
            ns = b["cpu_time"]
            unit = b.get("time_unit", "ns")
            scale = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[unit]
            ns *= scale
            extra = ""
            if "items_per_second" in b:
                extra = f"{1e9 / b['items_per_second']:.1f} ns per item"
            rows.append((os.path.basename(path)[:-5], b["name"], ns, extra))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--md", required=True)
    ap.add_argument("--img", required=True)
    args = ap.parse_args()
    res = args.results
    os.makedirs(args.img, exist_ok=True)
    img_rel = os.path.relpath(os.path.abspath(args.img), os.path.dirname(os.path.abspath(args.md)))

    machine = load(res, "machine") or {}
    a = {n: load(res, f"a_{n}") for n in NS}
    b = {n: load(res, f"b_{n}") for n in NS}
    c = {n: load(res, f"c_{n}") for n in NS}
    f = {n: load(res, f"f_{n}") for n in NS}
    d_base, d_slow = load(res, "d_5_base"), load(res, "d_5_slow")
    churn = load(res, "e_churn_1")
    held = {n: load(res, f"e_held_{n}") for n in NS}

    out = []
    w = out.append
    short = machine.get("mode") == "short"
    w("# Benchmarks")
    w("")
    w("Generated by `bench/report.py` from the output of one run of the harness "
      "(`bench/`, see [bench/README.md](../bench/README.md)). Every ratio below compares "
      "numbers measured **in the same run on the same servers**; absolute numbers depend on "
      "the machine and on whatever else it was doing.")
    w("")
    if short:
        w("> **Short mode**: small counts and ~2 s per case, only to prove the harness works. "
          "The numbers are not meaningful; the memory case used "
          f"{churn['cycles'] if churn else '?'} cycles and "
          f"{held[1]['locks'] if held.get(1) else '?'} held locks, not 1,000,000 and 100,000.")
        w("")
    w("## Run")
    w("")
    w("| | |")
    w("|---|---|")
    w(f"| command | `{machine.get('command', 'scripts/bench')}` |")
    w(f"| date | {machine.get('date_utc', '?')} (commit {machine.get('commit', '?')}) |")
    w(f"| CPU | {machine.get('cpu', '?')}, nproc = {machine.get('nproc', '?')} |")
    w(f"| kernel | {machine.get('kernel', '?')} |")
    w(f"| Redis | {machine.get('redis', '?')} |")
    w(f"| load average (start / end) | {machine.get('loadavg_start', '?')} / "
      f"{machine.get('loadavg_end', '?')} |")
    w("")
    w("The servers are fresh `redis-server`s on 127.0.0.1 started by the harness (`save \"\"`, "
      "no AOF). The client is one process with one Asio thread, built in Release. The machine "
      "has 2 cores shared by the client, all servers and (during f) redis-benchmark, and, on the "
      "day of this run, by other engineers' builds and tests.")
    w("")

    # ----- targets -----
    summary = []
    tput_rows = []
    for n in NS:
        if b[n] and f[n]:
            tput_rows.append((n, b[n]["cycles_per_s"], f[n]["cycles_per_s"]))
    for n in (1, 5):
        if b[n] and f[n]:
            r = b[n]["cycles_per_s"] / f[n]["cycles_per_s"]
            summary.append((f"b ≥ 50 % of f, N={n}",
                            f"{fmt_rate(b[n]['cycles_per_s'])} / {fmt_rate(f[n]['cycles_per_s'])} "
                            f"cycles/s = {r:.0%}", r >= 0.5))
    if a[1] and a[5]:
        r = a[5]["acquire_p50_us"] / a[1]["acquire_p50_us"]
        summary.append(("a: acquire p50 N=5 ≤ 1.5 × N=1",
                        f"{ms(a[5]['acquire_p50_us'])} / {ms(a[1]['acquire_p50_us'])} = {r:.2f}×",
                        r <= 1.5))
    if d_base and d_slow:
        r = d_slow["acquire_p50_us"] / d_base["acquire_p50_us"]
        summary.append(("d: p50 with a +20 ms node ≤ 1.2 × without",
                        f"{ms(d_slow['acquire_p50_us'])} / {ms(d_base['acquire_p50_us'])} = {r:.2f}×",
                        r <= 1.2))
    contention_rows = []
    for n in NS:
        if c[n] and a[n]:
            rtt = a[n]["acquire_p50_us"]
            ideal = 1e6 / (c[n]["cs_mean_us"] + rtt)
            ratio = c[n]["acquisitions_per_s"] / ideal
            contention_rows.append((n, rtt, ideal, ratio))
            ok = ratio >= 0.7 and c[n]["wait_p99_us"] < 150000 and c[n]["lost_updates"] == 0
            summary.append((f"c: ≥ 70 % of ideal, wait p99 < 150 ms, N={n}",
                            f"{ratio:.0%} of ideal, wait p99 {ms(c[n]['wait_p99_us'])}, "
                            f"lost updates {c[n]['lost_updates']}", ok))
    if churn:
        g = churn["rss_growth_kib"]
        summary.append((f"e: RSS growth < 1 MiB over {churn['cycles']:,} cycles",
                        f"{g} KiB", g < 1024))
    for n in NS:
        if held.get(n):
            bpl = held[n]["bytes_per_lock"]
            summary.append((f"e: < 1 KiB per held lock, N={n}",
                            f"{bpl:.0f} B ({held[n]['locks']:,} locks)", bpl < 1024))

    w("## Summary: the targets")
    w("")
    w("| target | measured (same run) | |")
    w("|---|---|---|")
    for name, meas, ok in summary:
        w(f"| {name} | {meas} | {verdict(ok)} |")
    w("")

    # ----- a -----
    w("## a. Sequential acquire + release (one in flight, distinct resources)")
    w("")
    w("| N | cycles | acquire p50 | acquire p99 | acquire max | release p50 | release p99 | failures |")
    w("|---|---|---|---|---|---|---|---|")
    for n in NS:
        x = a[n]
        if x:
            w(f"| {n} | {x['cycles']:,} | {ms(x['acquire_p50_us'])} | {ms(x['acquire_p99_us'])} | "
              f"{ms(x['acquire_max_us'])} | {ms(x['release_p50_us'])} | {ms(x['release_p99_us'])} | "
              f"{x['failures']} |")
    w("")
    cdf = plot_cdfs(res, args.img)
    if cdf:
        w(f"![acquire latency CDFs]({img_rel}/{cdf})")
        w("")

    # ----- b and f -----
    w("## b and f. Throughput against the physical limit")
    w("")
    w("b: one manager, 64 acquire + release cycles in flight on distinct resources. "
      "f: `redis-benchmark -P 16 -c 4 -r 100000000` (64 requests in flight per server, like b) "
      "running `EVALSHA` of the library's own acquire script and then of its release script "
      "(loaded with `SCRIPT LOAD`), one redis-benchmark per server, **all N at the same time**.")
    w("")
    w("| N | b: redlock cycles/s | f: limit cycles/s | b / f | f per node (acquire rps, release rps) |")
    w("|---|---|---|---|---|")
    for n in NS:
        if b[n] and f[n]:
            per = "; ".join(f"{ar:,.0f}, {rr:,.0f}" for ar, rr in zip(f[n]["acquire_rps"], f[n]["release_rps"]))
            w(f"| {n} | {fmt_rate(b[n]['cycles_per_s'])} | {fmt_rate(f[n]['cycles_per_s'])} | "
              f"{b[n]['cycles_per_s'] / f[n]['cycles_per_s']:.0%} | {per} |")
    w("")
    w("**What \"the limit\" means here.** A Redlock cycle is one acquire and one release on "
      "*every* node, so the cycle rate can never exceed what each server sustains for that pair "
      "of scripts. f measures it with the most efficient client there is (redis-benchmark, "
      "pipelined) while all N servers are loaded at once, because on this machine the N servers "
      "share 2 cores: for N = 5 they compete for CPU with each other (and with the load "
      "generator), so the per-server rate falls roughly as 1/N and the cycle limit with it. For "
      "node i, `cycles_i = 1 / (1/acquire_rps_i + 1/release_rps_i)`; the limit reported is the "
      "mean of `cycles_i` over the N nodes (each redis-benchmark times itself, so a node that "
      "finishes early leaves the others more CPU: f is a slightly generous limit). Its release "
      "phase uses random keys that mostly do not exist, so the script's `DEL` is skipped; that "
      "also errs on the generous side. Neither f nor b is a property of Redis alone: both include "
      "the client's CPU on the same 2 cores.")
    w("")
    tp = plot_throughput(tput_rows, args.img)
    if tp:
        w(f"![throughput against N]({img_rel}/{tp})")
        w("")

    # ----- c -----
    w("## c. Contention: 16 clients on one resource")
    w("")
    w("16 independent clients (each its own manager, connections and thread) acquire ONE "
      "resource with retry delay 10 ms ± 10 ms and unlimited retries, then run a critical "
      "section on a counter in a separate redis-server: `GET`, sleep 1 ms, `SET` the increment; "
      "then release. Ideal rate = 1 / (mean measured critical section + one RTT), with RTT = "
      "the same run's sequential acquire p50 at that N (a). A lost update would show as "
      "counter < acquisitions.")
    w("")
    w("| N | acquisitions/s | critical section (mean) | RTT (a p50) | ideal/s | ratio | wait p50 | wait p99 | wait max | counter = acquisitions | per-client min–max | failures |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n, rtt, ideal, ratio in contention_rows:
        x = c[n]
        same = "yes" if x["lost_updates"] == 0 else f"**NO: {x['lost_updates']} lost**"
        w(f"| {n} | {x['acquisitions_per_s']:.0f} | {ms(x['cs_mean_us'])} | {ms(rtt)} | {ideal:.0f} | "
          f"{ratio:.0%} | {ms(x['wait_p50_us'])} | {ms(x['wait_p99_us'])} | {ms(x['wait_max_us'])} | "
          f"{same} ({x['counter']:,}) | {x['min_per_client']}–{x['max_per_client']} | {x['failures']} |")
    w("")

    # ----- d -----
    w("## d. Tail tolerance: N = 5, one node behind a proxy adding 20 ms")
    w("")
    w("The proxy (`bench/latency_proxy.cpp`) delays every client-to-server byte of node 5 by "
      "20 ms. The baseline is the same N = 5 run through direct connections, measured right "
      "before it.")
    w("")
    if d_base and d_slow:
        w("| | acquire p50 | acquire p99 | release p50 | release p99 |")
        w("|---|---|---|---|---|")
        for name, x in (("without (baseline)", d_base), ("one node +20 ms", d_slow)):
            w(f"| {name} | {ms(x['acquire_p50_us'])} | {ms(x['acquire_p99_us'])} | "
              f"{ms(x['release_p50_us'])} | {ms(x['release_p99_us'])} |")
        w(f"| ratio | {d_slow['acquire_p50_us'] / d_base['acquire_p50_us']:.2f}× | "
          f"{d_slow['acquire_p99_us'] / d_base['acquire_p99_us']:.2f}× | "
          f"{d_slow['release_p50_us'] / d_base['release_p50_us']:.2f}× | "
          f"{d_slow['release_p99_us'] / d_base['release_p99_us']:.2f}× |")
        w("")

    # ----- e -----
    w("## e. Memory (client RSS from /proc/self/status VmRSS)")
    w("")
    if churn:
        w(f"Churn, N = 1, 64 in flight: RSS measured after a warm-up of {churn['warmup_cycles']:,} "
          f"cycles (connections open, buffers grown) and again after {churn['cycles']:,} more "
          f"cycles ({churn['seconds']:.1f} s).")
        w("")
        w("| cycles | RSS before | RSS after | growth | failures |")
        w("|---|---|---|---|---|")
        w(f"| {churn['cycles']:,} | {churn['rss_before_kib']:,} KiB | {churn['rss_after_kib']:,} KiB | "
          f"{churn['rss_growth_kib']} KiB | {churn['failures']} |")
        w("")
    if any(held.values()):
        w("Held locks: RSS before and after acquiring this many locks at once and keeping the "
          "`lock` handles in a `std::vector` (counted: a caller needs somewhere to keep them).")
        w("")
        w("| N | locks held | sizeof(lock) | RSS before | RSS after | bytes per held lock |")
        w("|---|---|---|---|---|---|")
        for n in NS:
            x = held.get(n)
            if x:
                w(f"| {n} | {x['locks']:,} | {x['sizeof_lock']} B | {x['rss_before_kib']:,} KiB | "
                  f"{x['rss_after_kib']:,} KiB | {x['bytes_per_lock']:.0f} B |")
        w("")

    # ----- micro -----
    rows = micro_rows(res)
    if rows:
        w("## Micro-benchmarks (Google Benchmark, CPU time per operation)")
        w("")
        w("| executable | benchmark | ns per op | |")
        w("|---|---|---|---|")
        for exe, name, ns, extra in rows:
            w(f"| {exe} | `{name}` | {ns:,.1f} | {extra} |")
        w("")

    analysis = os.path.join(os.path.dirname(os.path.abspath(__file__)), "analysis.md")
    if os.path.exists(analysis) and not short:
        with open(analysis) as fh:
            w(fh.read().rstrip())
            w("")

    with open(args.md, "w") as fh:
        fh.write("\n".join(out))


if __name__ == "__main__":
    main()
