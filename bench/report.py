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


def load_rounds(results, prefix):
    """All rounds of one measurement: prefix_r1.json, prefix_r2.json, ..."""
    out = []
    r = 1
    while True:
        x = load(results, f"{prefix}_r{r}")
        if x is None:
            return out
        x["round"] = r
        out.append(x)
        r += 1


def med(xs):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    m = len(xs) // 2
    return xs[m] if len(xs) % 2 else (xs[m - 1] + xs[m]) / 2


def medf(rounds, field):
    return med([x.get(field, float("nan")) for x in rounds])


def median_round(rounds, field):
    """The round whose `field` is the median (lower median for an even count)."""
    s = sorted(rounds, key=lambda x: x[field])
    return s[(len(s) - 1) // 2] if s else None


def ratios(num, den, field_num, field_den=None):
    """Per-round ratios num[r]/den[r] of rounds measured back to back."""
    field_den = field_den or field_num
    return [x[field_num] / y[field_den] for x, y in zip(num, den)]


def rlist(rs, pct=False):
    f = (lambda v: f"{v:.0%}") if pct else (lambda v: f"{v:.2f}×")
    return ", ".join(f(v) for v in rs)


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


def plot_cdf(img_dir, name, title, series):
    """series: (data file, title, dash type, colour) with lines "<microseconds> <fraction>"."""
    series = [x for x in series if x[0] and os.path.exists(x[0])]
    if not series:
        return None
    colours = ["#1f77b4", "#2ca02c", "#d62728", "#9467bd"]
    plots = ", ".join(f"'{os.path.abspath(p)}' using ($1/1000):2 with lines lw 2 dt {dt} "
                      f"lc rgb '{colours[c % len(colours)]}' title '{t}'"
                      for p, t, dt, c in series)
    script = f"""{terminal()}
set output '{name}'
set title '{title}'
set xlabel 'acquire latency (ms, log scale)'
set ylabel 'fraction of acquires'
set logscale x
set grid
set key bottom right
set yrange [0:1]
plot {plots}
"""
    return name if gnuplot(script, img_dir) else None


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
    a = {n: load_rounds(res, f"a_{n}") for n in NS}
    g = {n: load_rounds(res, f"g_{n}") for n in NS}
    b = {n: load_rounds(res, f"b_{n}") for n in NS}
    f = {n: load_rounds(res, f"f_{n}") for n in NS}
    c = {n: load(res, f"c_{n}_think0") for n in NS}
    c_think = {n: load(res, f"c_{n}_think10") for n in NS}
    d_base, d_slow = load_rounds(res, "d_base"), load_rounds(res, "d_slow")
    churn = load(res, "e_churn_1")
    held = {n: load(res, f"e_held_{n}") for n in NS}
    rounds = max([len(a[n]) for n in NS] + [0])

    out = []
    w = out.append
    short = machine.get("mode") == "short"
    w("# Benchmarks")
    w("")
    w("Generated by `bench/report.py` from the output of one run of the harness "
      "(`bench/`, see [bench/README.md](../bench/README.md)). Every ratio below compares "
      "numbers measured **in the same run on the same servers, back to back**; absolute "
      "numbers depend on the machine and on whatever else it was doing.")
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
      "day of this run, by other engineers' builds and tests: its load changed from minute to "
      f"minute. So f, the floor, a and b ran back to back for each N, in {rounds} round(s); "
      "tables show medians over the rounds and every target ratio is the median of the "
      "per-round ratios (the per-round values are listed).")
    w("")

    # ----- targets -----
    summary = []
    for n in (1, 5):
        if b[n] and f[n]:
            rs = ratios(b[n], f[n], "cycles_per_s")
            r = med(rs)
            summary.append((f"b ≥ 50 % of f, N={n}",
                            f"{fmt_rate(medf(b[n], 'cycles_per_s'))} vs {fmt_rate(medf(f[n], 'cycles_per_s'))} "
                            f"cycles/s; per round {rlist(rs, True)}; median {r:.0%}", r >= 0.5))
    if a[1] and a[5]:
        rs = ratios(a[5], a[1], "acquire_p50_us")
        r = med(rs)
        fl = ""
        if g[1] and g[5]:
            fl = f" (the bare fan-out floor: {med(ratios(g[5], g[1], 'acquire_p50_us')):.2f}×)"
        summary.append(("a: acquire p50 N=5 ≤ 1.5 × N=1",
                        f"{ms(medf(a[5], 'acquire_p50_us'))} vs {ms(medf(a[1], 'acquire_p50_us'))}; "
                        f"per round {rlist(rs)}; median {r:.2f}×{fl}", r <= 1.5))
    if d_base and d_slow:
        rs = ratios(d_slow, d_base, "acquire_p50_us")
        r = med(rs)
        summary.append(("d: p50 with a +20 ms node ≤ 1.2 × without",
                        f"{ms(medf(d_slow, 'acquire_p50_us'))} vs {ms(medf(d_base, 'acquire_p50_us'))}; "
                        f"per round {rlist(rs)}; median {r:.2f}×", r <= 1.2))
    contention_rows = []
    for n in NS:
        if c[n] and a[n]:
            rtt = medf(a[n], "acquire_p50_us")
            ideal = 1e6 / (c[n]["cs_mean_us"] + rtt)
            ratio = c[n]["acquisitions_per_s"] / ideal
            contention_rows.append((n, rtt, ideal, ratio))
            ok = ratio >= 0.7 and c[n]["wait_p99_us"] < 150000 and c[n]["lost_updates"] == 0
            summary.append((f"c: ≥ 70 % of ideal, wait p99 < 150 ms, N={n}",
                            f"{ratio:.0%} of ideal, wait p99 {ms(c[n]['wait_p99_us'])}, "
                            f"lost updates {c[n]['lost_updates']}", ok))
    if churn:
        gr = churn["rss_growth_kib"]
        summary.append((f"e: RSS growth < 1 MiB over {churn['cycles']:,} cycles",
                        f"{gr} KiB", gr < 1024))
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
    w("Medians over the rounds (max: the largest of any round). *Floor*: the same EVALSHA "
      "scripts sent to the same servers by a bare hiredis loop (one write per server, `poll()` "
      "until a quorum answered; `redlock_bench floor`), measured right before a: what this "
      "machine charges for one quorum round trip, with no client work at all.")
    w("")
    w("| N | cycles/round | acquire p50 | acquire p99 | acquire max | release p50 | release p99 | floor acquire p50 | floor p99 | p50 − floor p50 | failures |")
    w("|---|---|---|---|---|---|---|---|---|---|---|")
    for n in NS:
        if a[n]:
            fl50 = medf(g[n], "acquire_p50_us") if g[n] else float("nan")
            fl99 = medf(g[n], "acquire_p99_us") if g[n] else float("nan")
            w(f"| {n} | {med([x['cycles'] for x in a[n]]):,.0f} | {ms(medf(a[n], 'acquire_p50_us'))} | "
              f"{ms(medf(a[n], 'acquire_p99_us'))} | {ms(max(x['acquire_max_us'] for x in a[n]))} | "
              f"{ms(medf(a[n], 'release_p50_us'))} | {ms(medf(a[n], 'release_p99_us'))} | "
              f"{ms(fl50)} | {ms(fl99)} | {ms(medf(a[n], 'acquire_p50_us') - fl50)} | "
              f"{sum(x['failures'] for x in a[n])} |")
    w("")
    series = []
    for n in NS:
        mr = median_round(a[n], "acquire_p50_us")
        if mr:
            series.append((os.path.join(res, f"cdf_a_{n}_r{mr['round']}.dat"), f"redlock, N={n}", 1, NS.index(n)))
    for n in NS:
        mr = median_round(g[n], "acquire_p50_us")
        if mr:
            series.append((os.path.join(res, f"cdf_g_{n}_r{mr['round']}.dat"), f"bare fan-out floor, N={n}", 2, NS.index(n)))
    cdf = plot_cdf(args.img, "acquire_cdf.png",
                   "Acquire latency CDF, one in flight (median round of each)", series)
    if cdf:
        w(f"![acquire latency CDFs]({img_rel}/{cdf})")
        w("")

    # ----- b and f -----
    w("## b and f. Throughput against the physical limit")
    w("")
    w("b: one manager, 64 acquire + release cycles in flight on distinct resources. "
      "f: `redis-benchmark -P 16 -c 4 -r 100000000` (64 requests in flight per server, like b) "
      "running `EVALSHA` of the library's own acquire script and then of its release script "
      "(loaded with `SCRIPT LOAD`), one redis-benchmark per server, **all N at the same time**, "
      "right before b.")
    w("")
    w("| N | b: redlock cycles/s | f: limit cycles/s | b / f per round | median b / f | client CPU per cycle | client CPU share | node errors (all rounds) | f per node, last round (acquire rps, release rps) |")
    w("|---|---|---|---|---|---|---|---|---|")
    tput_rows = []
    for n in NS:
        if b[n] and f[n]:
            rs = ratios(b[n], f[n], "cycles_per_s")
            last = f[n][-1]
            per = "; ".join(f"{ar:,.0f}, {rr:,.0f}" for ar, rr in zip(last["acquire_rps"], last["release_rps"]))
            bm, fm = medf(b[n], "cycles_per_s"), medf(f[n], "cycles_per_s")
            tput_rows.append((n, bm, fm))
            errs = sum(x.get("node_errors", 0) for x in b[n])
            w(f"| {n} | {fmt_rate(bm)} | {fmt_rate(fm)} | {rlist(rs, True)} | {med(rs):.0%} | "
              f"{medf(b[n], 'client_cpu_us_per_cycle'):.1f} µs | {medf(b[n], 'client_cpu_share'):.0%} | "
              f"{errs:,} | {per} |")
    w("")
    w("Client CPU per cycle: user + system time of the client process during b divided by the "
      "cycles (getrusage); client CPU share: that time over the wall time of b. Node errors: "
      "requests that failed at node level (mostly per-request timeouts of 200 ms, each of which "
      "resets that node's connection), summed over the rounds.")
    w("")
    w("**What \"the limit\" means here.** A Redlock cycle is one acquire and one release on "
      "*every* node, so the cycle rate can never exceed what each server sustains for that pair "
      "of scripts. f measures it with the most efficient client there is (redis-benchmark, "
      "pipelined) while all N servers are loaded at once, because on this machine the N servers "
      "share 2 cores: for N = 5 they compete for CPU with each other (and with the load "
      "generators), so the per-server rate falls roughly as 1/N and the cycle limit with it. For "
      "node i, `cycles_i = 1 / (1/acquire_rps_i + 1/release_rps_i)`; the limit reported is the "
      "mean of `cycles_i` over the N nodes (each redis-benchmark times itself, so a node that "
      "finishes early leaves the others more CPU: f is a slightly generous limit). Its release "
      "phase uses random keys that mostly do not exist, so the script's `DEL` is skipped; that "
      "also errs on the generous side. Neither f nor b is a property of Redis alone: both include "
      "the client's CPU on the same 2 cores.")
    w("")
    per_node = [(n, x["round"], x["node_errors_by_node"]) for n in NS for x in b[n]
                if x.get("node_errors_by_node")]
    if per_node:
        w("Node errors during b, by node and kind:")
        w("")
        for n, r, text in per_node:
            w(f"- N={n}, round {r}: {text}")
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
      "counter < acquisitions. Wait = from calling `async_lock` to its completion; attempts = "
      "`lock::attempts()` of each acquisition; *same client again* = share of acquisitions made "
      "by the client that had released the lock just before.")
    w("")
    def contention_table(rows):
        w("| N | acquisitions/s | critical section (mean) | RTT (a p50) | ideal/s | ratio | wait p50 | wait p99 | wait max | attempts p50 / p99 / max | same client again | counter = acquisitions | per-client min–max | failures |")
        w("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for n, x in rows:
            if not x or not a[n]:
                continue
            rtt = medf(a[n], "acquire_p50_us")
            ideal = 1e6 / (x["cs_mean_us"] + rtt)
            ratio = x["acquisitions_per_s"] / ideal
            same = "yes" if x["lost_updates"] == 0 else f"**NO: {x['lost_updates']} lost**"
            again = x.get("same_client_again", 0) / max(1, x["acquisitions"])
            w(f"| {n} | {x['acquisitions_per_s']:.0f} | {ms(x['cs_mean_us'])} | {ms(rtt)} | {ideal:.0f} | "
              f"{ratio:.0%} | {ms(x['wait_p50_us'])} | {ms(x['wait_p99_us'])} | {ms(x['wait_max_us'])} | "
              f"{x.get('attempts_p50', 0):.0f} / {x.get('attempts_p99', 0):.0f} / {x.get('attempts_max', 0):.0f} | "
              f"{again:.0%} | {same} ({x['counter']:,}) | {x['min_per_client']}–{x['max_per_client']} | "
              f"{x['failures']} |")
        w("")

    contention_table([(n, c[n]) for n in NS])
    if any(c_think.values()):
        w("Variant (not a target): each client waits 10 ms outside the lock after releasing it, "
          "so the releaser does not immediately ask again. The ideal is computed the same way.")
        w("")
        contention_table([(n, c_think[n]) for n in NS])

    # ----- d -----
    w("## d. Tail tolerance: N = 5, one node behind a proxy adding 20 ms")
    w("")
    w("The proxy (`bench/latency_proxy.cpp`) delays every client-to-server byte of node 5 by "
      "20 ms. Baseline (direct connections) and slow runs alternate, in the same rounds.")
    w("")
    if d_base and d_slow:
        w("| | acquire p50 | acquire p99 | release p50 | release p99 |")
        w("|---|---|---|---|---|")
        for name, x in (("without (baseline)", d_base), ("one node +20 ms", d_slow)):
            w(f"| {name} | {ms(medf(x, 'acquire_p50_us'))} | {ms(medf(x, 'acquire_p99_us'))} | "
              f"{ms(medf(x, 'release_p50_us'))} | {ms(medf(x, 'release_p99_us'))} |")
        w(f"| median of per-round ratios | {med(ratios(d_slow, d_base, 'acquire_p50_us')):.2f}× | "
          f"{med(ratios(d_slow, d_base, 'acquire_p99_us')):.2f}× | "
          f"{med(ratios(d_slow, d_base, 'release_p50_us')):.2f}× | "
          f"{med(ratios(d_slow, d_base, 'release_p99_us')):.2f}× |")
        w("")
        mb, mslow = median_round(d_base, "acquire_p50_us"), median_round(d_slow, "acquire_p50_us")
        cdf = plot_cdf(args.img, "tail_cdf.png", "Acquire latency CDF, N = 5, with and without a +20 ms node",
                       [(os.path.join(res, f"cdf_d_base_r{mb['round']}.dat"), "all 5 direct", 1, 0),
                        (os.path.join(res, f"cdf_d_slow_r{mslow['round']}.dat"), "node 5 behind +20 ms proxy", 1, 2)])
        if cdf:
            w(f"![tail tolerance CDF]({img_rel}/{cdf})")
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
        w("| N | locks held | sizeof(lock) | RSS before | RSS after | bytes per held lock (RSS) | live heap per held lock (mallinfo2) | node errors |")
        w("|---|---|---|---|---|---|---|---|")
        for n in NS:
            x = held.get(n)
            if x:
                w(f"| {n} | {x['locks']:,} | {x['sizeof_lock']} B | {x['rss_before_kib']:,} KiB | "
                  f"{x['rss_after_kib']:,} KiB | {x['bytes_per_lock']:.0f} B | "
                  f"{x.get('heap_bytes_per_lock', float('nan')):.0f} B | {x.get('node_errors', 0):,} |")
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
