#!/usr/bin/python3
# prom_check.py: checks a Prometheus text exposition (format 0.0.4) strictly: Prometheus's own Python parser, then the rules it lets pass.
#
#   /usr/bin/python3 tests/lib/prom_check.py FILE [FAMILY...]
#
# Debian's interpreter, which has python3-prometheus-client, whatever PATH says.
#
# Exit 0 when FILE parses with prometheus_client.parser and also: every
# line is a HELP, a TYPE or a sample; each family has one HELP and one TYPE,
# before its samples, and its samples are contiguous; no series twice;
# counters end in _total; a histogram has ascending le bounds, cumulative
# counts, a last +Inf bucket equal to _count, and a _sum; every FAMILY named
# is there. Prints each problem and exits 1 otherwise.
import math
import re
import sys

from prometheus_client.parser import text_string_to_metric_families

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(rf"^({NAME})(\{{(?:{LABEL}(?:,{LABEL})*)?\}})? (\S+)$")
VALUE = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+|Inf|NaN)$")


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: prom_check.py FILE [FAMILY...]")
    text = open(sys.argv[1], encoding="utf-8").read()
    problems = []

    try:
        families = list(text_string_to_metric_families(text))
    except Exception as e:  # the parser's own verdict
        print(f"prom_check: prometheus_client cannot parse it: {e!r}")
        return 1
    if not text.endswith("\n"):
        problems.append("the text does not end with a newline")

    helped, typed, seen_series, done = {}, {}, set(), set()
    current = None
    hist = {}
    for n, line in enumerate(text.splitlines(), 1):
        where = f"line {n}"
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            if name in helped:
                problems.append(f"{where}: second HELP for {name}")
            helped[name] = n
            continue
        if line.startswith("# TYPE "):
            parts = line.split(" ")
            if len(parts) != 4 or parts[3] not in ("counter", "gauge", "histogram", "summary", "untyped"):
                problems.append(f"{where}: bad TYPE line {line!r}")
                continue
            name, kind = parts[2], parts[3]
            if name in typed:
                problems.append(f"{where}: second TYPE for {name}")
            if name not in helped:
                problems.append(f"{where}: TYPE of {name} before (or without) its HELP")
            if kind == "counter" and not name.endswith("_total"):
                problems.append(f"{where}: counter {name} does not end in _total")
            if current:
                done.add(current)
            typed[name] = kind
            current = name
            continue
        if line.startswith("#") or not line:
            problems.append(f"{where}: neither HELP, TYPE nor a sample: {line!r}")
            continue
        m = SAMPLE.match(line)
        if not m or not VALUE.match(m.group(3)):
            problems.append(f"{where}: malformed sample {line!r}")
            continue
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        if current is None:
            problems.append(f"{where}: sample before any TYPE: {line!r}")
            continue
        kind = typed[current]
        suffixes = ("_bucket", "_sum", "_count") if kind == "histogram" else ("",)
        if not any(name == current + s for s in suffixes):
            owner = "a family already closed" if any(name.startswith(f) for f in done) else "no TYPE"
            problems.append(f"{where}: sample {name} is not of family {current} ({owner})")
            continue
        series = name + labels
        if series in seen_series:
            problems.append(f"{where}: series {series} twice")
        seen_series.add(series)
        if kind == "histogram":
            h = hist.setdefault(current, {"buckets": [], "sum": None, "count": None})
            v = float(value)
            if name.endswith("_bucket"):
                le = re.search(r'le="([^"]*)"', labels)
                if not le:
                    problems.append(f"{where}: bucket without le")
                    continue
                h["buckets"].append((float(le.group(1)), v, n))
            elif name.endswith("_sum"):
                h["sum"] = v
            else:
                h["count"] = v

    for name, h in hist.items():
        b = h["buckets"]
        if not b or not math.isinf(b[-1][0]):
            problems.append(f"{name}: the last bucket is not le=\"+Inf\"")
            continue
        for (le1, c1, _), (le2, c2, n2) in zip(b, b[1:]):
            if not le2 > le1:
                problems.append(f"{name}: line {n2}: le {le2} not above {le1}")
            if c2 < c1:
                problems.append(f"{name}: line {n2}: bucket count {c2} below {c1}: not cumulative")
        if h["count"] is None or h["count"] != b[-1][1]:
            problems.append(f"{name}: _count {h['count']} is not the +Inf bucket {b[-1][1]}")
        if h["sum"] is None:
            problems.append(f"{name}: no _sum")
    for name in typed:
        if name not in helped:
            problems.append(f"{name}: no HELP")

    parsed = {f.name for f in families}
    for want in sys.argv[2:]:
        base = want[: -len("_total")] if want.endswith("_total") else want
        if want not in typed and base not in parsed:
            problems.append(f"family {want} is missing")

    for p in problems:
        print(f"prom_check: {p}")
    print(f"prom_check: {len(families)} families, {len(seen_series)} series, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
