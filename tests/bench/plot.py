#!/usr/bin/python3
"""ipathd benchmark: parse raw tool outputs, compare, report and plot.

Run by tests/bench/bench.sh with Debian's /usr/bin/python3 (matplotlib from
python3-matplotlib).  Standard library only, apart from matplotlib for the
PNG plots (a missing matplotlib gives a note, not a failure).

  plot.py report OUTDIR    read OUTDIR/raw/index.tsv (written by bench.sh),
                           parse every raw output, write OUTDIR/results.json,
                           print the table, draw OUTDIR/*.png
  plot.py selftest [DIR]   check the parsers on the saved sample outputs in
                           DIR (default: samples/ beside this file)
  plot.py parse KIND FILE  print what one parser makes of FILE (debugging);
                           KIND: memcpy iperf3 sockperf fi_pingpong perftest
                           perfbench

index.tsv: one measurement a line, tab-separated:
  id  parser  scope  label  size  rc  file  extra
    id      unique key, e.g. hosts/ib_write_bw/RC/65536
    parser  memcpy | iperf3 | sockperf | fi_pingpong | perftest |
            perfbench | cpu_idle | cpu_gb | skipped
    scope   memory | machine | loopback | veth | veth-loss1 | onehost |
            hosts | hosts-loss1
    label   series name, e.g. "ib_write_bw RC", "iperf3 UDP 4K"
    size    message size in bytes, or -
    rc      exit status of the tool (0 = ran); non-zero makes a failed entry
    file    raw output, relative to OUTDIR (for perftest: the client's; the
            server's is FILE with .client replaced by .server)
    extra   key=value;... (cpu_gb: ns (or ticks and hz), ref = id of the
            bw entry; cpu_idle: ns (or ticks, hz), secs; skipped: reason)

Units everywhere in results.json: bandwidth in Gbit/s (10^9 bit/s), latency
in microseconds (one-way, i.e. half the round trip, like perftest's send and
write latency and sockperf's; ib_read_lat is a full round trip), message
rate in Mpps, CPU in seconds per GB (10^9 bytes) and percent of one core.
"""

import json
import math
import os
import re
import statistics
import sys

ANSI = re.compile(r"\x1b\[[0-9;]*m")


class ParseError(Exception):
    pass


ERRLINE = re.compile(r"(?i)fail|error|couldn|can'?not|unable|timed? ?out|"
                     r"refused|denied|not found|no such|invalid|abort")


def tail(text, n=4):
    """The lines that say what went wrong (else the last ones), joined."""
    lines = [l.strip() for l in ANSI.sub("", text).splitlines() if l.strip()]
    errs = [l for l in lines if ERRLINE.search(l)]
    return " | ".join((errs or lines)[-n:])[:400]


# ---------------------------------------------------------------- parsers


def parse_memcpy(text):
    """memcpy_bw lines -> {(mode, size): Gbit/s}."""
    out = {}
    for m in re.finditer(
        r"^memcpy mode=(\w+) size=(\d+) bytes_per_sec=([0-9.]+(?:[eE][-+]?[0-9]+)?)", text, re.M
    ):
        out[(m.group(1), int(m.group(2)))] = float(m.group(3)) * 8 / 1e9
    if not out:
        raise ParseError("no memcpy lines: " + tail(text))
    return out


def parse_iperf3(text):
    """iperf3 -J output -> goodput (receiver side) and friends."""
    try:
        # iperf3 may print a warning line before the JSON
        d = json.loads(text[text.index("{"):] if "{" in text else text)
    except ValueError as e:
        raise ParseError("not iperf3 JSON (%s): %s" % (e, tail(text)))
    if d.get("error"):
        raise ParseError("iperf3: " + str(d["error"]))
    end = d.get("end") or {}
    recv = end.get("sum_received") or end.get("sum")
    sent = end.get("sum_sent") or end.get("sum")
    if not recv or "bits_per_second" not in recv:
        raise ParseError("iperf3 JSON without end.sum_received")
    r = {
        "gbps": recv["bits_per_second"] / 1e9,
        "sent_gbps": (sent or {}).get("bits_per_second", 0) / 1e9,
        "bytes": recv.get("bytes"),
        "seconds": recv.get("seconds"),
    }
    if "lost_percent" in recv:
        r["lost_percent"] = recv["lost_percent"]
    cpu = end.get("cpu_utilization_percent")
    if cpu:
        r["cpu_host_percent"] = cpu.get("host_total")
        r["cpu_remote_percent"] = cpu.get("remote_total")
    ts = (d.get("start") or {}).get("test_start", {})
    blksize = ts.get("blksize")
    if blksize and ts.get("protocol") == "UDP":
        r["mpps"] = r["gbps"] * 1e9 / 8 / blksize / 1e6
    return r


def parse_sockperf(text):
    """sockperf ping-pong -> one-way latency (half RTT), usec."""
    t = ANSI.sub("", text)
    m = re.search(r"Summary: Latency is ([0-9.]+) usec", t) or re.search(
        r"avg-latency=([0-9.]+)", t
    )
    if not m:
        raise ParseError("no sockperf latency: " + tail(text))
    r = {"lat_us": float(m.group(1))}
    for key, pat in (
        ("median_us", r"percentile 50\.000 =\s*([0-9.]+)"),
        ("p99_us", r"percentile 99\.000 =\s*([0-9.]+)"),
        ("min_us", r"<MIN> observation =\s*([0-9.]+)"),
    ):
        m = re.search(pat, t)
        if m:
            r[key] = float(m.group(1))
    return r


def parse_fi_pingpong(text):
    """fi_pingpong table -> {size: {lat_us (usec/xfer = half RTT), mbps}}."""
    rows = {}
    hdr = False
    for line in text.splitlines():
        f = line.split()
        if f[:1] == ["bytes"] and "usec/xfer" in f:
            hdr = f
            continue
        if hdr and len(f) == len(hdr) and re.match(r"^\d+[kmg]?$", f[0]):
            c = dict(zip(hdr, f))
            size = int(f[0].rstrip("kmg")) * {"k": 1 << 10, "m": 1 << 20,
                                              "g": 1 << 30}.get(f[0][-1], 1)
            try:
                rows[size] = {
                    "lat_us": float(c["usec/xfer"]),
                    "gbps": float(c["MB/sec"]) * 8e6 / 1e9,
                }
            except (KeyError, ValueError):
                continue
    if not rows:
        raise ParseError("no fi_pingpong result: " + tail(text))
    return rows


NUM = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def parse_perftest(text):
    """perftest client output -> {"kind": "bw"|"lat", "rows": {size: {...}}}.

    bw header:  #bytes #iterations BW peak[U] BW average[U] MsgRate[Mpps]
                with U = MB/sec (perftest's MB is 2^20 bytes) or Gb/sec
                (10^9 bits); further per-port columns are ignored.
    lat header: #bytes #iterations t_min t_max t_typical t_avg t_stdev
                99% 99.9% (usec), or in duration mode
                #bytes #iterations t_avg[usec] tps average.
    Rows are the lines after the header whose fields are all numbers.
    """
    kind = None
    rows = {}
    unit = None
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("#bytes"):
            m = re.search(r"BW average\[([^\]]+)\]", s)
            if m:
                kind = "bw"
                u = m.group(1).lower()
                if u.startswith("gb"):
                    unit = 1.0  # Gbit/s already
                elif u.startswith("mb") or u.startswith("mib"):
                    unit = 1048576 * 8 / 1e9
                else:
                    raise ParseError("unknown perftest unit " + m.group(1))
            elif "t_min" in s:
                kind = "lat"
            elif "t_avg" in s:
                kind = "lat_dur"
            else:
                raise ParseError("unknown perftest header: " + s[:100])
            continue
        if kind is None:
            continue
        f = s.split()
        if len(f) < 4 or not all(NUM.match(x) for x in f):
            continue
        v = [float(x) for x in f]
        size = int(v[0])
        if kind == "bw" and len(v) >= 5:
            rows[size] = {
                "iters": int(v[1]),
                "gbps": v[3] * unit,
                "peak_gbps": v[2] * unit,
                "mpps": v[4],
            }
        elif kind == "lat" and len(v) >= 6:
            r = {"iters": int(v[1]), "min_us": v[2], "max_us": v[3],
                 "typical_us": v[4], "median_us": v[4], "lat_us": v[5]}
            if len(v) >= 9:
                r.update(stdev_us=v[6], p99_us=v[7], p999_us=v[8])
            rows[size] = r
        elif kind == "lat_dur" and len(v) >= 3:
            rows[size] = {"iters": int(v[1]), "lat_us": v[2]}
    if not rows:
        raise ParseError("no perftest result row: " + tail(text))
    return {"kind": "bw" if kind == "bw" else "lat", "rows": rows}


def parse_perfbench(text):
    """perf bench (syscall basic, sched pipe) -> microseconds per op."""
    m = re.search(r"([0-9.]+)\s+usecs/op", text)
    if not m:
        raise ParseError("no usecs/op: " + tail(text))
    return {"us_per_op": float(m.group(1))}


PARSERS = {
    "memcpy": parse_memcpy,
    "perfbench": parse_perfbench,
    "iperf3": parse_iperf3,
    "sockperf": parse_sockperf,
    "fi_pingpong": parse_fi_pingpong,
    "perftest": parse_perftest,
}


# ---------------------------------------------------------------- report


def kv(extra):
    out = {}
    if (extra or "").startswith("reason="):
        return {"reason": extra[len("reason="):]}
    for part in (extra or "").split(";"):
        if "=" in part:
            k, v = part.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def read_text(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError as e:
        return "(cannot read %s: %s)" % (path, e)


def load(outdir):
    """index.tsv -> list of measurement dicts (status ok / failed)."""
    idx = os.path.join(outdir, "raw", "index.tsv")
    ms = []
    byid = {}
    deferred = []
    with open(idx) as f:
        lines = f.read().splitlines()
    for line in lines:
        if not line.strip() or line.startswith("#"):
            continue
        f = line.split("\t")
        f += [""] * (8 - len(f))
        mid, parser, scope, label, size, rc, path, extra = f[:8]
        m = {
            "id": mid,
            "scope": scope,
            "label": label,
            "size": int(size) if size.isdigit() else None,
            "status": "ok",
        }
        x = kv(extra)
        full = os.path.join(outdir, path) if path else ""
        if parser in ("cpu_gb", "cpu_idle"):
            deferred.append((m, parser, x, rc))
            ms.append(m)
            byid[mid] = m
            continue
        if parser == "skipped":
            m.update(status="failed", reason="skipped: " + x.get("reason", ""))
            ms.append(m)
            byid[mid] = m
            continue
        text = read_text(full) if full else ""
        if rc not in ("0", ""):
            why = x.get("reason") or ""
            if rc == "124":
                why = (why + " timed out").strip()
            srv = full.replace(".client", ".server")
            out = tail(text)
            if srv != full and os.path.exists(srv):
                st = read_text(srv)
                if st != text:
                    out += " || server: " + tail(st)
            m.update(status="failed",
                     reason=("exit %s %s: %s" % (rc, why, out)).strip())
            ms.append(m)
            byid[mid] = m
            continue
        try:
            p = PARSERS[parser](text)
        except (ParseError, KeyError) as e:
            m.update(status="failed", reason="parse: %s" % e)
            ms.append(m)
            byid[mid] = m
            continue
        if parser == "memcpy":
            # one raw file, many measurements
            for (mode, sz), g in sorted(p.items()):
                mm = dict(m, id="%s/%s/%d" % (mid, mode, sz),
                          label="memcpy %s" % mode, size=sz, gbps=g)
                ms.append(mm)
                byid[mm["id"]] = mm
            continue
        if parser == "fi_pingpong":
            r = p.get(m["size"]) or next(iter(p.values()))
            m.update(r)
        elif parser == "perftest":
            r = p["rows"].get(m["size"])
            if r is None:
                r = p["rows"][max(p["rows"])]
            m.update(r)
            m["kind"] = p["kind"]
        else:
            m.update(p)
        if "ctxt" in x and "iters" in x:   # bench.sh duel_extra
            m["ctxsw_per_rt"] = int(x["ctxt"]) / max(1, int(x["iters"]))
        ms.append(m)
        byid[mid] = m
    for m, parser, x, rc in deferred:
        try:
            if "ns" in x:
                cpu = float(x["ns"]) / 1e9
            else:
                cpu = float(x["ticks"]) / float(x.get("hz", 100))
            if parser == "cpu_idle":
                secs = float(x["secs"])
                m["cpu_percent"] = 100.0 * cpu / secs
                m["cpu_seconds"] = cpu
            else:
                ref = byid.get(x["ref"])
                if not ref or ref["status"] != "ok":
                    raise ParseError("its bandwidth run %s failed" % x["ref"])
                moved = ref["size"] * ref["iters"]
                m["bytes_moved"] = moved
                m["cpu_seconds"] = cpu
                m["cpu_s_per_gb"] = cpu / (moved / 1e9)
            if rc not in ("0", ""):
                raise ParseError("daemon gone (rc %s)" % rc)
        except (KeyError, ValueError, ParseError) as e:
            m.update(status="failed", reason="cpu: %s" % e)
    return ms


DUEL_IPD = "duel/ib_send_lat/RC/2"
DUEL_FI = "duel/fi_pingpong-udp_ofi_rxd/2"


def duel(ms):
    """bench.sh latency_duel: the pairs (duelK/...) both measured, as two
    measurements holding the medians of their means and every round."""
    byid = {m["id"]: m for m in ms}

    def round_id(k, mid):  # "duel/X" -> "duelK/X", as bench.sh names them
        return "duel%d/%s" % (k, mid.split("/", 1)[1])

    ipd, fi, cs = [], [], ([], [])
    k = 1
    while round_id(k, DUEL_IPD) in byid:
        ma, mb = byid[round_id(k, DUEL_IPD)], byid.get(round_id(k, DUEL_FI))
        a, b = value(ma, "lat_us"), value(mb, "lat_us")
        if a is not None and b is not None:
            ipd.append(a)
            fi.append(b)
            cs[0].append(ma.get("ctxsw_per_rt"))
            cs[1].append(mb.get("ctxsw_per_rt"))
        k += 1
    if not ipd:
        return []
    out = []
    for mid, label, v, c in ((DUEL_IPD, "ib_send_lat RC", ipd, cs[0]),
                             (DUEL_FI, "fi_pingpong udp;ofi_rxd", fi, cs[1])):
        m = {"id": mid, "scope": "duel", "size": 2, "status": "ok",
             "label": "%s, median of %d alternated runs" % (label, len(v)),
             "lat_us": statistics.median(v), "rounds_lat_us": v}
        if None not in c:
            m["rounds_ctxsw_per_rt"] = c
        out.append(m)
    return out


def value(m, metric):
    if m is None or m.get("status") != "ok":
        return None
    return m.get(metric)


# (figure, ipathd id, ipathd metric, floor id, floor metric, floor name,
#  floor factor, target: (op, number) or None)
# The floor factor turns the floor into the same kind of figure, e.g. a
# one-way latency into a round trip for ib_read_lat.
def comparisons(quick):
    C = []
    add = C.append
    # the targets of issue 5
    add(("hosts: ib_write_bw 64 KiB vs iperf3 UDP 4K goodput",
         "hosts/ib_write_bw/RC/65536", "gbps",
         "veth/iperf3-udp/4096", "gbps", 1, (">=", 1.0)))
    add(("hosts: ib_send_lat 2 B vs sockperf UDP (medians)",
         "hosts/ib_send_lat/RC/2", "median_us",
         "veth/sockperf/14", "median_us", 1, ("<=", 1.3)))
    add(("hosts: ib_send_lat 2 B vs fi_pingpong udp;ofi_rxd (means, "
         "median of the alternations)",
         DUEL_IPD, "lat_us", DUEL_FI, "lat_us", 1, ("<", 1.0)))
    add(("one host: ib_write_bw 1 MiB vs memcpy 1 MiB (hot)",
         "onehost/ib_write_bw/RC/1048576", "gbps",
         "memory/memcpy/hot/1048576", "gbps", 1, (">=", 0.5)))
    add(("1% loss: ib_write_bw 64 KiB vs lossless",
         "hosts-loss1/ib_write_bw/RC/65536", "gbps",
         "hosts/ib_write_bw/RC/65536", "gbps", 1, (">=", 0.5)))
    add(("idle daemon CPU % (one host) vs 1 %",
         "onehost/cpu_idle", "cpu_percent", None, None, 1.0, ("<", 1.0)))
    add(("idle daemon CPU % (host A) vs 1 %",
         "hosts/cpu_idle", "cpu_percent", None, None, 1.0, ("<", 1.0)))
    # informative
    add(("hosts: ib_send_lat 2 B vs fi_pingpong udp;ofi_rxd (means, "
         "one run each)",
         "hosts/ib_send_lat/RC/2", "lat_us",
         "veth/fi_pingpong-udp_ofi_rxd/2", "lat_us", 1, None))
    for scope, link in (("onehost", "loopback"), ("hosts", "veth")):
        who = "one host" if scope == "onehost" else "hosts"
        add(("%s: ib_write_bw 64 KiB vs iperf3 TCP" % who,
             "%s/ib_write_bw/RC/65536" % scope, "gbps",
             "%s/iperf3-tcp" % link, "gbps", 1, None))
        if scope == "onehost":
            add(("one host: ib_write_bw 64 KiB vs iperf3 UDP 4K",
                 "onehost/ib_write_bw/RC/65536", "gbps",
                 "loopback/iperf3-udp/4096", "gbps", 1, None))
            add(("one host: ib_send_lat 2 B vs sockperf UDP",
                 "onehost/ib_send_lat/RC/2", "median_us",
                 "loopback/sockperf/14", "median_us", 1, None))
        add(("%s: ib_read_bw 64 KiB vs iperf3 UDP 4K" % who,
             "%s/ib_read_bw/RC/65536" % scope, "gbps",
             "%s/iperf3-udp/4096" % link, "gbps", 1, None))
        add(("%s: ib_send_bw 64 KiB vs iperf3 UDP 4K" % who,
             "%s/ib_send_bw/RC/65536" % scope, "gbps",
             "%s/iperf3-udp/4096" % link, "gbps", 1, None))
        add(("%s: ib_send_bw UD 1 KiB vs iperf3 UDP 4K" % who,
             "%s/ib_send_bw/UD/1024" % scope, "gbps",
             "%s/iperf3-udp/4096" % link, "gbps", 1, None))
        add(("%s: ib_atomic_bw Mpps vs iperf3 UDP 64 B Mpps" % who,
             "%s/ib_atomic_bw/RC/8" % scope, "mpps",
             "%s/iperf3-udp/64" % link, "mpps", 1, None))
        add(("%s: ib_write_lat 2 B vs sockperf UDP" % who,
             "%s/ib_write_lat/RC/2" % scope, "median_us",
             "%s/sockperf/14" % link, "median_us", 1, None))
        add(("%s: ib_read_lat 2 B vs sockperf UDP round trip" % who,
             "%s/ib_read_lat/RC/2" % scope, "median_us",
             "%s/sockperf/14" % link, "median_us", 2, None))
        add(("%s: ib_send_lat 4 KiB vs sockperf UDP 4 KiB" % who,
             "%s/ib_send_lat/RC/4096" % scope, "median_us",
             "%s/sockperf/4096" % link, "median_us", 1, None))
    add(("one host: daemon CPU s/GB, ib_write_bw 64 KiB",
         "onehost/cpu_gb/ib_write_bw/65536", "cpu_s_per_gb",
         None, None, None, None))
    add(("hosts: sender daemon CPU s/GB, ib_write_bw 64 KiB",
         "hosts/cpu_gb_a/ib_write_bw/65536", "cpu_s_per_gb",
         None, None, None, None))
    add(("hosts: responder daemon CPU s/GB, ib_write_bw 64 KiB",
         "hosts/cpu_gb_b/ib_write_bw/65536", "cpu_s_per_gb",
         None, None, None, None))
    return C


UNITS = {"gbps": "Gbit/s", "lat_us": "us", "median_us": "us", "mpps": "Mpps",
         "cpu_percent": "%", "cpu_s_per_gb": "s/GB"}


def build_table(ms, quick):
    byid = {m["id"]: m for m in ms}
    rows = []
    for (fig, iid, imet, fid, fmet, factor, target) in comparisons(quick):
        im = byid.get(iid)
        iv = value(im, imet)
        if fid is None:
            fv = factor  # a fixed number (the 1 % idle target) or None
            fname = "target" if fv is not None else "-"
            fm = None
        else:
            fm = byid.get(fid)
            fv = value(fm, fmet)
            fv = fv * factor if fv is not None else None
            fname = fid
        ratio = iv / fv if (iv is not None and fv) else None
        met = None
        if ratio is not None and target:
            op, t = target
            met = {">=": ratio >= t, "<=": ratio <= t, "<": ratio < t,
                   ">": ratio > t}[op]
        why = None
        if iv is None:
            why = "ipathd: " + (im.get("reason", "failed") if im
                                else "not measured")
        elif fid is not None and fv is None:
            why = "floor: " + (fm.get("reason", "failed") if fm
                               else "not measured")
        rows.append({
            "figure": fig,
            "ipathd_id": iid,
            "ipathd": iv,
            "floor_id": fname,
            "floor": fv,
            "unit": UNITS.get(imet, ""),
            "ratio": ratio,
            "target": ("%s %g" % target) if target else None,
            "met": met,
            "status": "ok" if why is None else "failed",
            "reason": why,
        })
    return rows


def fmt(v):
    if v is None:
        return "failed"
    if v == 0:
        return "0"
    if abs(v) >= 100:
        return "%.0f" % v
    if abs(v) >= 10:
        return "%.1f" % v
    if abs(v) >= 0.01:
        return "%.2f" % v
    return "%.2g" % v


def print_table(rows, ms, out=sys.stdout):
    w = max(len(r["figure"]) for r in rows)
    out.write("%-*s  %10s  %10s  %-6s  %7s  %-7s %s\n" % (
        w, "figure", "ipathd", "floor", "unit", "ratio", "target", "met"))
    out.write("-" * (w + 60) + "\n")
    for r in rows:
        met = {True: "yes", False: "NO", None: ""}[r["met"]]
        out.write("%-*s  %10s  %10s  %-6s  %7s  %-7s %s\n" % (
            w, r["figure"], fmt(r["ipathd"]),
            fmt(r["floor"]) if r["floor_id"] != "-" else "-", r["unit"],
            fmt(r["ratio"]) if r["ratio"] is not None else "-",
            r["target"] or "", met))
    failed = [m for m in ms if m["status"] != "ok"]
    ok = len(ms) - len(failed)
    out.write("\n%d measurements ok, %d failed\n" % (ok, len(failed)))
    for m in failed[:60]:
        out.write("  failed %s: %s\n" % (m["id"], (m.get("reason") or "")[:200]))
    if len(failed) > 60:
        out.write("  ... %d more in results.json\n" % (len(failed) - 60))


# ---------------------------------------------------------------- plots


def plots(ms, outdir):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError as e:
        return ["plots skipped: matplotlib missing (%s)" % e]
    made = []
    ok = [m for m in ms if m["status"] == "ok" and m.get("size")]

    def series(pred, metric):
        s = {}
        for m in ok:
            v = m.get(metric)
            if metric == "lat_us" and m.get("median_us") is not None:
                v = m["median_us"]
            if pred(m) and v is not None:
                s.setdefault((m["scope"], m["label"]), []).append(
                    (m["size"], v))
        return {k: sorted(v) for k, v in s.items()}

    def draw(fname, title, ylabel, s, logy, hlines=()):
        fig, ax = plt.subplots(figsize=(9, 5.5))
        for (scope, label), pts in sorted(s.items()):
            xs, ys = zip(*pts)
            dashed = not label.startswith("ib_")
            ax.plot(xs, ys, ("--" if dashed else "-"), marker="o",
                    markersize=3, label="%s %s" % (scope, label))
        for y, label in hlines:
            ax.axhline(y, linestyle=":", linewidth=1, color="grey")
            ax.annotate(label, (1, y), xycoords=("axes fraction", "data"),
                        ha="right", va="bottom", fontsize=7, color="grey")
        ys_all = [y for pts in s.values() for _, y in pts if y > 0]
        ys_all += [y for y, _ in hlines if y > 0]
        if ys_all:   # axhline does not widen the limits by itself
            ax.set_ylim(min(ys_all) * 0.7, max(ys_all) * 1.5)
        ax.set_xscale("log", base=2)
        if logy:
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(
                matplotlib.ticker.FuncFormatter(lambda y, _: "%g" % y))
        ax.set_xlabel("message size (bytes)")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        if s:
            ax.legend(fontsize=7, loc="best")
        else:
            ax.text(0.5, 0.5, "no successful measurement", ha="center",
                    transform=ax.transAxes)
        fig.tight_layout()
        p = os.path.join(outdir, fname)
        fig.savefig(p, dpi=110)
        plt.close(fig)
        made.append(p)

    for scope_set, tag, floors in (
        (("onehost", "loopback", "memory"), "onehost", "loopback"),
        (("hosts", "hosts-loss1", "veth", "veth-loss1"), "hosts", "veth"),
    ):
        hl = []
        for m in ok:
            if m["scope"] == floors and m["label"].startswith("iperf3"):
                hl.append((m["gbps"], "%s %s" % (floors, m["label"])))
        bw = series(lambda m: m["scope"] in scope_set and (
            m.get("kind") == "bw" or m["label"].startswith("memcpy"))
            and not m["label"].startswith("ib_atomic"), "gbps")
        draw("bandwidth_%s.png" % tag,
             "Bandwidth vs message size (%s)" % tag, "Gbit/s", bw, True, hl)
        lat = series(lambda m: m["scope"] in scope_set and (
            m.get("kind") == "lat" or m["label"].startswith(
                ("sockperf", "fi_pingpong"))), "lat_us")
        draw("latency_%s.png" % tag,
             "Latency vs message size (%s)\nmedian where the tool gives one, "
             "else mean; one-way, ib_read_lat: round trip"
             % tag, "microseconds", lat, True)
    return made


# ---------------------------------------------------------------- main


def machine_info():
    info = {}
    try:
        with open("/proc/cpuinfo") as f:
            t = f.read()
        m = re.search(r"^model name\s*:\s*(.*)$", t, re.M)
        info["cpu"] = m.group(1) if m else "?"
        info["cpus"] = len(re.findall(r"^processor\s*:", t, re.M))
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as f:
            info["mem_kib"] = int(f.readline().split()[1])
    except (OSError, ValueError, IndexError):
        pass
    u = os.uname()
    info["kernel"] = u.release
    info["host"] = u.nodename
    return info


def report(outdir):
    ms = load(outdir)
    ms += duel(ms)
    meta = {}
    mp = os.path.join(outdir, "raw", "meta.json")
    if os.path.exists(mp):
        try:
            with open(mp) as f:
                meta = json.load(f)
        except ValueError:
            pass
    lm = os.path.join(outdir, "raw", "loss_method")
    if os.path.exists(lm):
        meta["loss_method"] = read_text(lm).strip()
    le = os.path.join(outdir, "raw", "loadavg_end")
    if os.path.exists(le):
        meta["loadavg_end"] = read_text(le).strip()
    quick = bool(meta.get("quick"))
    rows = build_table(ms, quick)
    notes = plots(ms, outdir)
    res = {
        "machine": machine_info(),
        "run": meta,
        "units": {"bandwidth": "Gbit/s (1e9 bit/s)",
                  "latency": "us, one-way (ib_read_lat: round trip)",
                  "msg_rate": "Mpps", "cpu_per_gb": "CPU seconds per 1e9 bytes",
                  "cpu_idle": "% of one core"},
        "table": rows,
        "measurements": ms,
        "plots": [os.path.basename(p) for p in notes if p.endswith(".png")],
        "notes": [n for n in notes if not n.endswith(".png")],
    }
    with open(os.path.join(outdir, "results.json"), "w") as f:
        json.dump(res, f, indent=1, sort_keys=False)
    print_table(rows, ms)
    d = {m["id"]: m for m in ms}
    mc = [(w, value(d.get("machine/" + k), "us_per_op")) for w, k in (
        ("system call", "syscall"),
        ("pipe round trip on one CPU (2 context switches)", "pipe-1cpu"),
        ("unpinned", "pipe"))]
    if any(v is not None for _, v in mc):
        print("machine (perf bench, us per operation): " + "; ".join(
            "%s %s" % (w, fmt(v)) for w, v in mc))
    if DUEL_IPD in d:
        a, b = d[DUEL_IPD]["rounds_lat_us"], d[DUEL_FI]["rounds_lat_us"]
        print("latency alternations (us, mean of each run): ib_send_lat %s; "
              "fi_pingpong %s; ratios %s" % (
                  " ".join(fmt(v) for v in a), " ".join(fmt(v) for v in b),
                  " ".join(fmt(x / y) for x, y in zip(a, b))))
        ca = d[DUEL_IPD].get("rounds_ctxsw_per_rt")
        cb = d[DUEL_FI].get("rounds_ctxsw_per_rt")
        if ca and cb:
            print("context switches per round trip (the whole machine, "
                  "/proc/stat, each run from start to end): ib_send_lat %s; "
                  "fi_pingpong %s" % (" ".join(fmt(v) for v in ca),
                                      " ".join(fmt(v) for v in cb)))
    for n in notes:
        print(("plot: " + n) if n.endswith(".png") else n)
    print("results: %s" % os.path.join(outdir, "results.json"))
    return 0


def selftest(d):
    fails = 0
    passes = 0

    def check(name, cond, got):
        nonlocal fails, passes
        if cond:
            passes += 1
            print("ok   %s" % name)
        else:
            fails += 1
            print("FAIL %s: got %r" % (name, got))

    def rd(n):
        return read_text(os.path.join(d, n))

    p = parse_perftest(rd("perftest_write_bw.txt"))
    r = p["rows"].get(65536, {})
    check("perftest bw MB/sec is MiB/s", p["kind"] == "bw" and
          abs(r.get("gbps", 0) - 1093.41 * 1048576 * 8 / 1e9) < 1e-6, p)
    check("perftest bw iterations", r.get("iters") == 5000, r)
    p = parse_perftest(rd("perftest_send_bw_all_gbits.txt"))
    check("perftest bw Gb/sec, several sizes",
          sorted(p["rows"]) == [2, 4, 1048576] and
          p["rows"][1048576]["gbps"] == 8.0 and
          p["rows"][2]["mpps"] == 1.123456, p)
    p = parse_perftest(rd("perftest_atomic_bw.txt"))
    check("perftest atomic", p["rows"][8]["mpps"] == 0.262144, p)
    p = parse_perftest(rd("perftest_send_lat.txt"))
    r = p["rows"].get(2, {})
    check("perftest lat t_avg", p["kind"] == "lat" and r.get("lat_us") == 13.40
          and r.get("typical_us") == 12.85 and r.get("p999_us") == 89.33, p)
    p = parse_perftest(rd("perftest_lat_duration.txt"))
    check("perftest lat duration mode", p["rows"][2]["lat_us"] == 5.34, p)
    for bad in ("perftest_lat_failed.txt", "perftest_nodev.txt"):
        try:
            p = parse_perftest(rd(bad))
            check("perftest %s rejected" % bad, False, p)
        except ParseError as e:
            check("perftest %s rejected" % bad, True, str(e))
    # outputs of perftest against ipathd (a bench run, 2026-11-25)
    p = parse_perftest(rd("real_ipathd_write_bw.txt"))
    r = p["rows"].get(65536, {})
    check("real ib_write_bw", r.get("iters") == 1024 and
          abs(r["gbps"] - 124.30 * 1048576 * 8 / 1e9) < 1e-9 and
          r["mpps"] == 0.001989, p)
    p = parse_perftest(rd("real_ipathd_send_bw_ud.txt"))
    check("real ib_send_bw UD", p["rows"][1024]["mpps"] == 0.027562, p)
    p = parse_perftest(rd("real_ipathd_read_lat.txt"))
    r = p["rows"].get(4096, {})
    check("real ib_read_lat (tab-separated columns)",
          r.get("median_us") == 1.96 and r.get("lat_us") == 129.46 and
          r.get("p999_us") == 1821.24, p)
    try:
        p = parse_perftest(rd("real_ipathd_write_bw_failed.txt"))
        check("real failed ib_write_bw rejected", False, p)
    except ParseError as e:
        check("real failed ib_write_bw rejected", True, str(e))
    r = parse_iperf3(rd("iperf3_udp.json"))
    check("iperf3 UDP goodput = receiver side",
          abs(r["gbps"] - 7255830141.745094 / 1e9) < 1e-9 and
          r["lost_percent"] > 0 and r["mpps"] > 0, r)
    r = parse_iperf3(rd("iperf3_tcp.json"))
    check("iperf3 TCP", r["gbps"] > 1, r)
    try:
        parse_iperf3('{"error": "unable to connect to server"}')
        check("iperf3 error rejected", False, None)
    except ParseError:
        check("iperf3 error rejected", True, None)
    r = parse_sockperf(rd("sockperf_pp.txt"))
    check("sockperf latency", r["lat_us"] > 0 and "p99_us" in r, r)
    r = parse_perfbench(rd("perf_bench_pipe.txt"))
    check("perf bench sched pipe", r["us_per_op"] > 0, r)
    try:
        parse_perfbench("perf: 'bench' is not a perf-command\n")
        check("perf bench without a figure fails", False, "parsed")
    except ParseError:
        check("perf bench without a figure fails", True, None)
    r = parse_fi_pingpong(rd("fi_pingpong_rxd.txt"))
    check("fi_pingpong", 2 in r and r[2]["lat_us"] > 0, r)
    try:
        parse_fi_pingpong(rd("fi_pingpong_fail.txt"))
        check("fi_pingpong failure rejected", False, None)
    except ParseError:
        check("fi_pingpong failure rejected", True, None)
    r = parse_fi_pingpong("bytes   #sent   #ack     total       time     "
                          "MB/sec    usec/xfer   Mxfers/sec\n4k      1k      "
                          "=1k      7.8m        0.03s    244.36      16.76"
                          "       0.06\n")
    check("fi_pingpong 4k size", r[4096]["lat_us"] == 16.76, r)
    r = parse_iperf3("warning: UDP block size 4096 exceeds TCP MSS\n" +
                     rd("iperf3_udp.json"))
    check("iperf3 JSON after a warning", r["gbps"] > 0, r)
    r = parse_memcpy("memcpy mode=hot size=1048576 bytes_per_sec=1e10\n")
    check("memcpy", r[("hot", 1048576)] == 80.0, r)
    dm = [{"id": "duel%d/%s" % (k, t), "status": st, "lat_us": v}
          for k, t, st, v in (
              (1, "ib_send_lat/RC/2", "ok", 15.0),
              (1, "fi_pingpong-udp_ofi_rxd/2", "ok", 13.0),
              (2, "ib_send_lat/RC/2", "ok", 20.0),
              (2, "fi_pingpong-udp_ofi_rxd/2", "failed", None),
              (3, "ib_send_lat/RC/2", "ok", 12.0),
              (3, "fi_pingpong-udp_ofi_rxd/2", "ok", 14.0))]
    r = {m["id"]: m for m in duel(dm)}
    check("latency alternations: medians of the complete pairs",
          r[DUEL_IPD]["rounds_lat_us"] == [15.0, 12.0] and
          r[DUEL_IPD]["lat_us"] == 13.5 and r[DUEL_FI]["lat_us"] == 13.5, r)
    check("no complete pair, no duel measurements", duel(dm[:1]) == [],
          duel(dm[:1]))
    check("no context switch figures, none reported",
          "rounds_ctxsw_per_rt" not in r[DUEL_IPD], r)
    for m in dm:
        m["ctxsw_per_rt"] = 4.0 if m["id"].endswith("/RC/2") else 0.5
    dm[-1]["ctxsw_per_rt"] = 0.25
    r = {m["id"]: m for m in duel(dm)}
    check("context switches of the complete pairs",
          r[DUEL_IPD]["rounds_ctxsw_per_rt"] == [4.0, 4.0] and
          r[DUEL_FI]["rounds_ctxsw_per_rt"] == [0.5, 0.25], r)
    print("%d passed, %d failed" % (passes, fails))
    return 1 if fails else 0


def main(argv):
    if len(argv) >= 3 and argv[1] == "report":
        return report(argv[2])
    if len(argv) >= 2 and argv[1] == "selftest":
        here = os.path.dirname(os.path.abspath(__file__))
        return selftest(argv[2] if len(argv) > 2 else
                        os.path.join(here, "samples"))
    if len(argv) == 4 and argv[1] == "parse" and argv[2] in PARSERS:
        r = PARSERS[argv[2]](read_text(argv[3]))
        print(json.dumps(r if not isinstance(r, dict) or not any(
            isinstance(k, tuple) for k in r) else
            {"%s/%s" % k: v for k, v in r.items()}, indent=1, default=str))
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
