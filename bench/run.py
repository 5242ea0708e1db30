#!/usr/bin/env python3
"""make bench: the Go benchmarks and the agent footprint side by side with
collectd and node_exporter, in one bounded run. Writes bench/results.json and bench/results.md.
Not part of CI (it takes several minutes and measures the machine it runs on).

Environment: BENCH_PKGS (default ./...), BENCHTIME (default 1s), BENCH_TIMEOUT (go test -timeout, default
15m), FOOTPRINT_SECONDS (default 120; 0 skips it), FOOTPRINT_BASE (a git
revision whose agent also runs in the footprint comparison), PIPEBENCH (0 skips the pipeline run),
PIPEBENCH_OUTAGE (default 10m; the pipeline's other phases run during the outage) and the other
PIPEBENCH_* knobs of bench/pipebench.
"""
import json, os, platform, re, subprocess, sys, time

ROOT = subprocess.check_output(["git", "rev-parse", "--show-toplevel"], text=True).strip()
OUT = os.path.join(ROOT, "bench")
LINE = re.compile(r"^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+(.*)$")


def go_benchmarks():
    cmd = ["go", "test", "-run", "^$", "-bench", ".", "-benchmem", "-benchtime", os.environ.get("BENCHTIME", "1s"),
           "-timeout", os.environ.get("BENCH_TIMEOUT", "15m")] + os.environ.get("BENCH_PKGS", "./...").split()
    print("+", " ".join(cmd), flush=True)
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    with open(os.path.join(OUT, "go-bench.out"), "w") as f:
        f.write(p.stdout + p.stderr)
    pkg, rows = "", []
    for line in p.stdout.splitlines():
        if line.startswith("pkg: "):
            pkg = line[5:].strip()
        m = LINE.match(line)
        if not m:
            continue
        vals = {}
        parts = m.group(3).split()
        for v, unit in zip(parts[0::2], parts[1::2]):
            try:
                vals[unit] = float(v)
            except ValueError:
                pass
        rows.append({"package": pkg, "name": m.group(1), "iterations": int(m.group(2)), "values": vals})
    return rows, p.returncode


def footprint():
    secs = int(os.environ.get("FOOTPRINT_SECONDS", "120"))
    if secs <= 0:
        return None
    cmd = [sys.executable, os.path.join(OUT, "footprint.py"), "--seconds", str(secs), "--out", OUT]
    if os.environ.get("FOOTPRINT_BASE"):
        cmd += ["--base", os.environ["FOOTPRINT_BASE"]]
    print("+", " ".join(cmd), flush=True)
    if subprocess.run(cmd, cwd=ROOT).returncode != 0:
        return {"error": "footprint run failed (see output above)"}
    with open(os.path.join(OUT, "footprint.json")) as f:
        return json.load(f)


def pipeline():
    """bench/pipebench: relay vs raw sarama, saver, latency, recovery after an
    outage, scaling plots; writes bench/pipeline.json."""
    if os.environ.get("PIPEBENCH", "1") == "0":
        return None
    cmd = ["go", "run", "./bench/pipebench"]
    print("+", " ".join(cmd), flush=True)
    rc = subprocess.run(cmd, cwd=ROOT).returncode
    try:
        with open(os.path.join(OUT, "pipeline.json")) as f:
            out = json.load(f)
    except (OSError, ValueError):
        return {"error": f"pipebench exited {rc} without bench/pipeline.json"}
    if rc != 0:
        out.setdefault("errors", []).append(f"pipebench exited {rc}")
    return out


def buffer_vs_bbolt(rows):
    """Our queue as a ratio of raw bbolt with the same batches, same run:
    group-commit appends vs db.Batch sized to the writers, drain vs 64 deletes
    per transaction."""
    by = {(b["package"].rsplit("/", 1)[-1], b["name"]): b["values"] for b in rows}
    out = []
    pairs = [(f"append, {w} writer{'s' if w > 1 else ''}", f"BenchmarkAppend/writers={w}", f"BenchmarkBoltBatchAppend/writers={w}", "db.Batch, MaxBatchSize = writers")
             for w in (1, 8, 64)]
    pairs.append(("drain (read + ack 64 a time)", "BenchmarkDrain", "BenchmarkBoltDrain", "64 deletes per transaction"))
    for what, ours, raw, anchor in pairs:
        o, r = by.get(("buffer", ours)), by.get(("buffer", raw))
        if not o or not r or not r.get("metrics/s"):
            continue
        out.append({"what": what, "anchor": anchor, "ours_metrics_per_s": o["metrics/s"], "bbolt_metrics_per_s": r["metrics/s"],
                    "ratio": round(o["metrics/s"] / r["metrics/s"], 2)})
    return out


def machine():
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu_model": model, "arch": platform.machine(), "kernel": platform.release(),
            "loadavg": os.getloadavg()}


def main():
    os.makedirs(OUT, exist_ok=True)
    started = time.time()
    rev = subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True).strip()
    res = {"revision": rev, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)), "machine": machine()}
    res["footprint"] = footprint()
    res["go_benchmarks"], rc = go_benchmarks()
    res["go_test_exit"] = rc
    res["buffer_vs_bbolt"] = buffer_vs_bbolt(res["go_benchmarks"])
    res["pipeline"] = pipeline()
    res["seconds"] = round(time.time() - started)
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(res, f, indent=2)

    md = [f"Revision {rev}, {res['machine']['cpus']} CPUs ({res['machine']['arch']}), load average at start "
          f"{res['machine']['loadavg'][0]:.1f}, {res['seconds']} s.", ""]
    fp = res["footprint"]
    if fp and "processes" in fp:
        md += [f"Agent footprint, {fp['seconds']:.0f} s side by side (default config, delivering to a relay in front of dev Kafka; "
               "node_exporter scraped every 10 s):", "",
               "| process | RSS median (MB) | RSS vs collectd | RSS vs node_exporter | CPU (% of one core) | CPU vs collectd | CPU vs node_exporter |",
               "|---|---:|---:|---:|---:|---:|---:|"]
        x = lambda v: "" if v is None else f"{v}x"
        for n, r in fp["processes"].items():
            md.append(f"| {n} | {r['rss_median_mb']} | {x(r.get('rss_vs_collectd'))} | {x(r.get('rss_vs_node_exporter'))} "
                      f"| {r['cpu_pct_schedstat']} | {x(r.get('cpu_schedstat_vs_collectd'))} | {x(r.get('cpu_schedstat_vs_node_exporter'))} |")
        md.append("")
    if res["buffer_vs_bbolt"]:
        md += ["Buffer vs raw bbolt (same 100-metric batches, same options, fsync on):", "",
               "| operation | falconet buffer (metrics/s) | raw bbolt (metrics/s) | anchor | ratio |", "|---|---:|---:|---|---:|"]
        for r in res["buffer_vs_bbolt"]:
            md.append(f"| {r['what']} | {r['ours_metrics_per_s']:,.0f} | {r['bbolt_metrics_per_s']:,.0f} | {r['anchor']} | {r['ratio']}x |")
        md.append("")
    pl = res.get("pipeline")
    if pl and pl.get("figures"):
        md += [f"Pipeline side by side (bench/pipebench, {pl.get('seconds', 0):.0f} s; real binaries, dev Kafka and dev-es as processes):", "",
               "| figure | falconet | anchor | ratio | goal | met? |", "|---|---:|---|---:|---|---|"]
        num = lambda v: f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"
        for f in pl["figures"]:
            met = {True: "yes", False: "**no**"}.get(f.get("met"), "-")
            anchor = f"{f.get('anchor', '')}: {num(f.get('anchor_value', 0))}" if f.get("anchor") else ""
            md.append(f"| {f['name']} | {num(f['value'])} {f['unit']} | {anchor} | {f.get('ratio', 0):.3g} | {f.get('goal', '')} | {met} |")
        md.append("")
        md += [f"Notes: {f['name']}: {f['note']}" for f in pl["figures"] if f.get("note")] + [""]
        if pl.get("scaling", {}) and pl["scaling"].get("plots"):
            md += [f"![{p}]({os.path.basename(p)})" for p in pl["scaling"]["plots"]] + [""]
        if pl.get("errors"):
            md += ["Pipeline errors: " + "; ".join(pl["errors"]), ""]
    elif pl:
        md += [f"Pipeline run failed: {pl.get('error') or pl.get('errors')}", ""]
    md += ["| benchmark | ns/op | other |", "|---|---:|---|"]
    for b in res["go_benchmarks"]:
        v = dict(b["values"])
        ns = v.pop("ns/op", 0)
        other = ", ".join(f"{x:g} {u}" for u, x in v.items())
        md.append(f"| {b['package'].rsplit('/', 1)[-1]}.{b['name']} | {ns:,.0f} | {other} |")
    with open(os.path.join(OUT, "results.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))
    if rc != 0:
        sys.exit(f"bench: go test exited {rc} (see bench/go-bench.out)")


if __name__ == "__main__":
    main()
