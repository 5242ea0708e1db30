#!/usr/bin/env python3
"""Agent footprint side by side: falconet-agent (default config, delivering
to a relay in front of dev Kafka), collectd (cpu, memory, load, df, disk,
interface, processes; csv + network out) and prometheus-node-exporter (its
default collectors but systemd, which needs a systemd this machine may lack;
scraped every 10 s, as Prometheus would), all sampled from /proc in the same
window. Optionally a second falconet-agent built from another commit
(--base REV) runs beside them, so a change is measured against its baseline
on the same machine at the same time.

Writes OUT/footprint.json and prints a Markdown table. Bounded: warm-up plus
--seconds, then everything it started is stopped.
"""
import argparse, json, os, shutil, signal, statistics, subprocess, sys, tempfile, threading, time, urllib.request

TICK = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def rss_kib(pid):
    """VmRSS, RssAnon, RssFile in KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k = line.split(":")[0]
            if k in ("VmRSS", "RssAnon", "RssFile"):
                out[k] = int(line.split()[1])
    return out


def rss_by_mapping(pid, top=4):
    """The largest resident mappings, MB by file (anonymous as "[anon]")."""
    by = {}
    name = "[anon]"
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            parts = line.split()
            if "-" in parts[0] and len(parts) >= 5 and ":" not in parts[0]:
                name = os.path.basename(parts[5]) if len(parts) >= 6 else "[anon]"
            elif parts[0] == "Rss:":
                by[name] = by.get(name, 0) + int(parts[1])
    return {k: round(v / 1024, 1) for k, v in sorted(by.items(), key=lambda kv: -kv[1])[:top]}


def elf_sections(path):
    """The allocated sections of a non-PIE ELF executable: [(name, addr, size)]."""
    import struct
    with open(path, "rb") as f:
        h = f.read(64)
        if h[:4] != b"\x7fELF" or h[4] != 2 or struct.unpack_from("<H", h, 16)[0] != 2:  # 64-bit ET_EXEC only
            return []
        shoff, = struct.unpack_from("<Q", h, 40)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", h, 58)
        f.seek(shoff)
        raw = f.read(shentsize * shnum)
        hdrs = [struct.unpack_from("<IIQQQQIIQQ", raw, i * shentsize) for i in range(shnum)]
        f.seek(hdrs[shstrndx][4])
        names = f.read(hdrs[shstrndx][5])
    out = []
    for name_off, _typ, flags, addr, _off, size, *_ in hdrs:
        if flags & 2 and addr and size:  # SHF_ALLOC
            out.append((names[name_off:names.index(b"\0", name_off)].decode(), addr, size))
    return out


def binary_resident(pid):
    """MB of each section of the process's executable that is resident (from
    /proc/PID/pagemap's present bit), e.g. .text, .gopclntab, .rodata."""
    import struct
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
        secs = elf_sections(f"/proc/{pid}/exe")
        out = {}
        with open(f"/proc/{pid}/pagemap", "rb") as pm:
            for name, addr, size in secs:
                first, last = addr // 4096, (addr + size - 1) // 4096
                pm.seek(first * 8)
                data = pm.read((last - first + 1) * 8)
                pages = sum(1 for i in range(len(data) // 8) if struct.unpack_from("<Q", data, i * 8)[0] >> 63)
                if pages:
                    key = name if name in (".text", ".gopclntab", ".rodata") else "other (data, tables)"
                    out[key] = out.get(key, 0) + pages * 4096
        return {k: round(v / 2**20, 2) for k, v in sorted(out.items(), key=lambda kv: -kv[1])}
    except (OSError, ValueError, IndexError):
        return {}


def run_ns(pid):
    """On-CPU time of the live threads in ns (schedstat: finer than ticks)."""
    total = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total


def scrape(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            text = r.read().decode()
    except Exception:
        return {}
    out = {}
    for line in text.splitlines():
        if (line.startswith("falconet_agent_sender_") or line.startswith("go_memstats_") or line.startswith("go_gc_duration_seconds_count")
                or line.startswith("go_goroutines") or line.startswith("go_threads")) and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


def node_exporter_binary():
    for b in ("prometheus-node-exporter", "node_exporter"):
        if shutil.which(b):
            return shutil.which(b)
    return None


def scraper(url, every, stop, counts):
    """Scrapes url every `every` seconds until stop is set, as Prometheus would."""
    while not stop.wait(every):
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                r.read()
            counts["ok"] += 1
        except Exception:
            counts["failed"] += 1


class Timeout(Exception):
    pass


def wait(cond, secs, what):
    end = time.time() + secs
    while time.time() < end:
        if cond():
            return
        time.sleep(0.5)
    raise Timeout(f"footprint: timed out after {secs}s waiting for {what}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=120)
    ap.add_argument("--warmup", type=int, default=40, help="seconds after the first delivery before the window (the agent releases its start-up pages 30 s after start)")
    ap.add_argument("--out", default="bench")
    ap.add_argument("--base", default="", help="also run the agent built from this git revision")
    ap.add_argument("--port-base", type=int, default=19000)
    ap.add_argument("--no-node-exporter", action="store_true", help="leave prometheus-node-exporter out")
    a = ap.parse_args()
    if not shutil.which("collectd") and not os.path.exists("/usr/sbin/collectd"):
        sys.exit("footprint: collectd not installed (apt-get install collectd-core)")
    nodeexp = None if a.no_node_exporter else node_exporter_binary()
    if not a.no_node_exporter and not nodeexp:
        sys.exit("footprint: prometheus-node-exporter not installed (apt-get install prometheus-node-exporter; or --no-node-exporter)")
    root = subprocess.check_output(["git", "rev-parse", "--show-toplevel"], text=True).strip()
    work = tempfile.mkdtemp(prefix="falconet-footprint-")
    procs = []
    stop_scrape = threading.Event()
    scrapes = {"ok": 0, "failed": 0}

    def start(name, argv, **kw):
        log = open(os.path.join(work, name + ".log"), "w")
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, **kw)
        procs.append((name, p))
        return p

    try:
        bindir = os.path.join(work, "bin")
        # built as the packages ship them (.goreleaser.yaml): static, no cgo. A cgo build links
        # libc dynamically, which alone adds about 1.3 MB of file-backed and 1.5 MB of anonymous RSS.
        genv = dict(os.environ, CGO_ENABLED="0")
        gflags = ["-trimpath", "-ldflags", "-s -w"]
        subprocess.check_call(["go", "build"] + gflags + ["-o", bindir + "/", "./cmd/falconet", "./cmd/falconet-agent", "./cmd/falconet-relay"], cwd=root, env=genv)
        agents = [("falconet-agent", os.path.join(bindir, "falconet-agent"))]
        if a.base:
            src = os.path.join(work, "base-src")
            os.makedirs(src)
            subprocess.check_call(f"git archive {a.base} | tar -x -C {src}", shell=True, cwd=root)
            subprocess.check_call(["go", "build"] + gflags + ["-o", os.path.join(work, "base-agent"), "./cmd/falconet-agent"], cwd=src, env=genv)
            agents.append((f"falconet-agent@{a.base}", os.path.join(work, "base-agent")))

        pb = a.port_base
        kafka, relay, relay_http = f"127.0.0.1:{pb+92}", f"127.0.0.1:{pb+33}", f"127.0.0.1:{pb+60}"
        start("dev-kafka", [os.path.join(bindir, "falconet"), "dev-kafka", "-listen", kafka])
        with open(os.path.join(work, "relay.toml"), "w") as f:
            # gossip off: the agent is given the relay's address, and the gossip port may be taken
            f.write(f'[listen]\nprotocol = "{relay}"\nlegacy = ""\nhttp = "{relay_http}"\n[kafka]\nbrokers = ["{kafka}"]\n'
                    '[discovery]\nbind = ""\n')
        start("relay", [os.path.join(bindir, "falconet-relay"), "-config", os.path.join(work, "relay.toml")])
        wait(lambda: _up(relay_http), 60, "relay ready")

        pids = {}
        for i, (name, binary) in enumerate(agents):
            d = os.path.join(work, f"agent{i}")
            os.makedirs(d)
            conf = os.path.join(d, "agent.toml")
            with open(conf, "w") as f:  # the defaults, but for where files and ports go
                f.write(f'[http]\nlisten = "127.0.0.1:{pb+10+i}"\n[buffer]\npath = "{d}/buffer.db"\n[relay]\naddresses = ["{relay}"]\n')
            pids[name] = start(name, [binary, "-config", conf]).pid

        cd = os.path.join(work, "collectd")
        os.makedirs(cd)
        with open(os.path.join(cd, "collectd.conf"), "w") as f:
            f.write(f'''Interval 10
BaseDir "{cd}"
PIDFile "{cd}/collectd.pid"
PluginDir "/usr/lib/collectd"
TypesDB "/usr/share/collectd/types.db"
LoadPlugin cpu
LoadPlugin memory
LoadPlugin load
LoadPlugin df
LoadPlugin disk
LoadPlugin interface
LoadPlugin processes
LoadPlugin csv
LoadPlugin network
<Plugin csv>
  DataDir "{cd}/csv"
</Plugin>
<Plugin network>
  Server "127.0.0.1" "{pb+26}"
</Plugin>
''')
        collectd = shutil.which("collectd") or "/usr/sbin/collectd"
        pids["collectd"] = start("collectd", [collectd, "-f", "-C", os.path.join(cd, "collectd.conf")]).pid
        if nodeexp:
            ne = f"127.0.0.1:{pb+100}"
            pids["node_exporter"] = start("node_exporter", [nodeexp, f"--web.listen-address={ne}", "--no-collector.systemd"]).pid
            wait(lambda: _get(f"http://{ne}/metrics"), 30, "node_exporter ready")
            threading.Thread(target=scraper, args=(f"http://{ne}/metrics", 10, stop_scrape, scrapes), daemon=True).start()

        urls = {name: f"http://127.0.0.1:{pb+10+i}/metrics" for i, (name, _) in enumerate(agents)}
        for name, u in urls.items():
            wait(lambda: scrape(u).get("falconet_agent_sender_batches_acked_total", 0) > 0, 90, f"{name} delivering")
        # The agents' counters are read now and after the window, not at its start: serving
        # /metrics maps code (HTTP, the exposition) the unscraped agent does not use, and
        # nothing scrapes the agents during the window. The counters cover warm-up + window.
        before = {n: scrape(u) for n, u in urls.items()}
        tc0 = time.monotonic()
        time.sleep(a.warmup)

        t0 = time.monotonic()
        c0 = {n: cpu_ticks(p) for n, p in pids.items()}
        s0 = {n: run_ns(p) for n, p in pids.items()}
        rss = {n: [] for n in pids}
        load0 = os.getloadavg()
        while time.monotonic() - t0 < a.seconds:
            for n, p in pids.items():
                rss[n].append(rss_kib(p))
            time.sleep(5)
        el = time.monotonic() - t0
        c1 = {n: cpu_ticks(p) for n, p in pids.items()}
        maps = {n: rss_by_mapping(p) for n, p in pids.items()}
        sections = {n: binary_resident(p) for n, p in pids.items() if n.startswith("falconet-agent")}
        s1 = {n: run_ns(p) for n, p in pids.items()}
        after = {n: scrape(u) for n, u in urls.items()}
        res_counted = round(time.monotonic() - tc0, 1)
        load1 = os.getloadavg()

        res = {"seconds": round(el, 1), "cpus": os.cpu_count(), "loadavg_start": load0, "loadavg_end": load1,
               "clk_tck": TICK, "agent_counters_seconds": res_counted, "processes": {}}
        if nodeexp:
            res["node_exporter_scrapes"] = dict(scrapes)
        for n in pids:
            med = lambda k: round(statistics.median(x.get(k, 0) for x in rss[n]) / 1024, 1)
            res["processes"][n] = {
                "rss_median_mb": med("VmRSS"),
                "rss_anon_median_mb": med("RssAnon"),
                "rss_file_median_mb": med("RssFile"),
                "rss_max_mb": round(max(x.get("VmRSS", 0) for x in rss[n]) / 1024, 1),
                "cpu_pct_of_core": round((c1[n] - c0[n]) / TICK / el * 100, 3),
                "cpu_ticks": c1[n] - c0[n],
                "cpu_pct_schedstat": round((s1[n] - s0[n]) / 1e9 / el * 100, 3),
                "rss_by_mapping_mb": maps[n],
            }
            if n in before:
                d = lambda k: after[n].get(k, 0) - before[n].get(k, 0)
                res["processes"][n].update({
                    "batches_acked": d("falconet_agent_sender_batches_acked_total"),
                    "metrics_acked": d("falconet_agent_sender_metrics_acked_total"),
                    "heartbeats_sent": d("falconet_agent_sender_heartbeats_sent_total"),
                    "gc_cycles": d("go_gc_duration_seconds_count"),
                    # what Go says of its memory at the end (virtual sizes, not all resident)
                    "go_mb": {k: round(after[n].get(f"go_memstats_{k}_bytes", 0) / 2**20, 2)
                              for k in ("heap_inuse", "heap_alloc", "stack_inuse", "gc_sys", "other_sys")},
                    "goroutines": after[n].get("go_goroutines"),
                    "threads": after[n].get("go_threads"),
                })
            if n in sections:
                res["processes"][n]["binary_resident_mb"] = sections[n]
        ratio = lambda x, y: round(x / y, 2) if y > 0 else None
        for peer in ("collectd", "node_exporter"):
            if peer not in res["processes"]:
                continue
            p = res["processes"][peer]
            for n, r in res["processes"].items():
                r[f"cpu_vs_{peer}"] = ratio(r["cpu_pct_of_core"], p["cpu_pct_of_core"])
                r[f"cpu_schedstat_vs_{peer}"] = ratio(r["cpu_pct_schedstat"], p["cpu_pct_schedstat"])
                r[f"rss_vs_{peer}"] = ratio(r["rss_median_mb"], p["rss_median_mb"])
        os.makedirs(a.out, exist_ok=True)
        with open(os.path.join(a.out, "footprint.json"), "w") as f:
            json.dump(res, f, indent=2)
        print(f"\n{el:.0f} s window, {os.cpu_count()} CPUs, load average {load0[0]:.1f} -> {load1[0]:.1f}\n")
        print("| process | RSS median (MB) | anon / file (MB) | CPU (% of one core) | CPU, schedstat | CPU vs collectd (ticks / schedstat) | CPU vs node_exporter (schedstat) | RSS vs collectd / node_exporter | batches acked | heartbeats |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for n, r in res["processes"].items():
            print(f"| {n} | {r['rss_median_mb']} | {r['rss_anon_median_mb']} / {r['rss_file_median_mb']} | {r['cpu_pct_of_core']} | {r['cpu_pct_schedstat']} "
                  f"| {r['cpu_vs_collectd']}x / {r['cpu_schedstat_vs_collectd']}x | {r.get('cpu_schedstat_vs_node_exporter')}x "
                  f"| {r['rss_vs_collectd']}x / {r.get('rss_vs_node_exporter')}x | {r.get('batches_acked', '')} | {r.get('heartbeats_sent', '')} |")
    except Timeout as e:
        for name, p in procs:  # what the processes said, before their files go
            try:
                with open(os.path.join(work, name + ".log")) as f:
                    tail = f.read()[-1500:]
            except OSError:
                tail = ""
            print(f"--- {name} (exit {p.poll()}):\n{tail}", file=sys.stderr)
        sys.exit(str(e))
    finally:
        stop_scrape.set()
        for name, p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for name, p in reversed(procs):
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if os.environ.get("FOOTPRINT_KEEP"):
            print("kept", work)
        else:
            shutil.rmtree(work, ignore_errors=True)


def _get(url):
    try:
        urllib.request.urlopen(url, timeout=5).read()
        return True
    except Exception:
        return False


def _up(addr):
    try:
        urllib.request.urlopen(f"http://{addr}/healthz", timeout=2)
        return True
    except Exception:
        return False


if __name__ == "__main__":
    main()
