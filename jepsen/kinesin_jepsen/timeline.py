"""The timeline plot: one self-contained SVG showing how the cluster behaved over a run.

The x axis is seconds since the run started. Two panels share it:

1. Throughput — client operations completed per second (1-second buckets): ok puts, ok reads, ok
   operations of any other kind, fails and infos (outcome unknown), one line each.
2. Latency — invoke-to-completion time of ok operations per bucket (p50, p99 and max lines) on a
   log scale, with a cross for every fail / info completion at its latency (sampled evenly when
   there are very many).

Every nemesis fault window is shaded across both panels, coloured by fault kind (the first word of
its name) and labelled with its full name, so a dip in throughput or a latency spike can be read
against the fault that caused it. `latency_summary` gives the same latencies as numbers for
results.json.

Pure standard library on purpose: the harness must run where nothing but Python is installed.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict, deque
from dataclasses import dataclass
from xml.sax.saxutils import escape

WIDTH, HEIGHT = 1200, 700
PLOT_LEFT, PLOT_RIGHT = 75, 1020  # the legends live to the right of PLOT_RIGHT
THROUGHPUT_TOP, LATENCY_TOP, PANEL_HEIGHT = 80, 370, 225

MAX_FAILURE_MARKERS = 2000
MAX_LABEL_LANES = 8
LABEL_FONT_SIZE, LABEL_LINE_HEIGHT, LABEL_CHAR_WIDTH = 9, 11, 5.2

COMPLETION_TYPES = ("ok", "fail", "info")
# Bookkeeping processes of the harness, not load: they would distort throughput and latency.
IGNORED_FUNCTIONS = {"final-read", "shards"}
IGNORED_PROCESSES = {"final", "lister", "monitor"}
NEMESIS = "nemesis"
NOT_CLIENTS = IGNORED_PROCESSES | {NEMESIS}

THROUGHPUT_SERIES = {  # series name -> colour, in legend order
    "ok put": "#1f77b4",
    "ok read": "#2ca02c",
    "ok other": "#17becf",
    "fail": "#d62728",
    "info": "#ff7f0e",
}
LATENCY_SERIES = {"p50": "#1f77b4", "p99": "#9467bd", "max": "#555555"}
MARKER_COLOURS = {"fail": "#d62728", "info": "#ff7f0e"}
FAULT_PALETTE = ("#e41a1c", "#377eb8", "#4daf4a", "#984ea3", "#ff7f00", "#a65628", "#f781bf", "#999999")


# -- reading the history ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Completion:
    """A client operation's ok / fail / info; latency_ms is None when no invoke matched it."""

    f: str
    outcome: str
    time: float
    latency_ms: float | None


@dataclass(frozen=True)
class FaultWindow:
    name: str
    start: float
    end: float

    @property
    def kind(self):
        return self.name.split(" ", 1)[0] if self.name.strip() else "fault"


def _time(op):
    try:
        return float(op["time"])
    except (KeyError, TypeError, ValueError):
        return None


def _is_client_op(op):
    return op.get("process") not in NOT_CLIENTS and op.get("f") not in IGNORED_FUNCTIONS


def _hashable(data):
    return data if isinstance(data, (str, int, float, bool, type(None))) else repr(data)


def _pairing_key(op):
    """Puts of one PutRecords batch are all pending at once, so they pair by their data."""
    value = op.get("value")
    if op.get("f") == "put" and isinstance(value, dict) and "data" in value:
        return (op.get("process"), "put", _hashable(value["data"]))
    return (op.get("process"), op.get("f"), None)


def pair_completions(history):
    """One pass: every client completion, with its latency when its invoke is in the history."""
    pending = defaultdict(deque)  # pairing key -> invoke times, oldest first
    completions = []
    for op in history:
        time = _time(op)
        if time is None or not _is_client_op(op):
            continue
        key = _pairing_key(op)
        if op.get("type") == "invoke":
            pending[key].append(time)
        elif op.get("type") in COMPLETION_TYPES:
            waiting = pending.get(key)
            invoked = waiting.popleft() if waiting else None
            if waiting is not None and not waiting:
                del pending[key]  # most keys are one put's data: do not keep 100k empty queues
            latency = None if invoked is None else max(0.0, (time - invoked) * 1000)
            completions.append(Completion(str(op.get("f")), op["type"], time, latency))
    return completions


def run_duration(history):
    """Seconds covered by load and faults; the final read after healing is not part of the run."""
    in_run = (op for op in history if _is_client_op(op) or op.get("process") == NEMESIS)
    return max((t for op in in_run if (t := _time(op)) is not None), default=0.0)


def fault_windows(history, end_time):
    """Each nemesis start with the next stop of the same fault; an unstopped fault lasts to the end."""
    open_starts = defaultdict(deque)
    windows = []
    for op in history:
        time = _time(op)
        if op.get("process") != NEMESIS or time is None:
            continue
        name = str(op.get("value"))
        if op.get("f") == "start":
            open_starts[name].append(time)
        elif op.get("f") == "stop" and open_starts.get(name):
            windows.append(FaultWindow(name, open_starts[name].popleft(), time))
    for name, starts in open_starts.items():
        windows.extend(FaultWindow(name, start, max(start, end_time)) for start in starts)
    return sorted(windows, key=lambda w: (w.start, w.end, w.name))


# -- statistics ------------------------------------------------------------------------------------


def percentile(sorted_values, p):
    """Nearest rank: always a latency that was actually observed."""
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def latency_summary(history):
    """Per operation kind, latencies of ok operations: {f: {count, p50_ms, p99_ms, max_ms}}."""
    by_f = defaultdict(list)
    for c in pair_completions(history):
        if c.outcome == "ok" and c.latency_ms is not None:
            by_f[c.f].append(c.latency_ms)
    summary = {}
    for f, latencies in sorted(by_f.items()):
        latencies.sort()
        summary[f] = {
            "count": len(latencies),
            "p50_ms": round(percentile(latencies, 50), 3),
            "p99_ms": round(percentile(latencies, 99), 3),
            "max_ms": round(latencies[-1], 3),
        }
    return summary


def bucket_count(duration):
    return max(1, math.ceil(duration))


def _bucket(time, buckets):
    return min(max(int(time), 0), buckets - 1)


def _throughput_series(completion):
    if completion.outcome != "ok":
        return completion.outcome
    return {"put": "ok put", "read": "ok read"}.get(completion.f, "ok other")


def bucket_completions(completions, buckets):
    """Completions per second per series, and the ok latencies of each second."""
    throughput = {name: [0] * buckets for name in THROUGHPUT_SERIES}
    ok_latencies = [[] for _ in range(buckets)]
    for c in completions:
        b = _bucket(c.time, buckets)
        throughput[_throughput_series(c)][b] += 1
        if c.outcome == "ok" and c.latency_ms is not None:
            ok_latencies[b].append(c.latency_ms)
    return throughput, ok_latencies


def latency_lines(ok_latencies):
    """Per latency series, (bucket, ms) for the buckets that had ok operations."""
    lines = {name: [] for name in LATENCY_SERIES}
    for b, latencies in enumerate(ok_latencies):
        if not latencies:
            continue
        latencies.sort()
        lines["p50"].append((b, percentile(latencies, 50)))
        lines["p99"].append((b, percentile(latencies, 99)))
        lines["max"].append((b, latencies[-1]))
    return lines


def sample_evenly(items, limit):
    if len(items) <= limit:
        return list(items)
    return [items[i * len(items) // limit] for i in range(limit)]


# -- scales and ticks ------------------------------------------------------------------------------


def nice_step(span, target_ticks):
    raw = max(span, 1e-9) / target_ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)


def linear_ticks(upper, target_ticks, cover=False):
    """Ticks from 0 to upper; with cover, the last tick is at or above upper so the data fits under it."""
    step = max(nice_step(upper, target_ticks), 1)  # seconds and operation counts: fractions say nothing
    count = math.ceil(upper / step - 1e-9) if cover else int(upper / step + 1e-9)
    return [i * step for i in range(count + 1)]


def format_number(value):
    return f"{value:g}"


@dataclass(frozen=True)
class Panel:
    top: float
    height: float
    clip_id: str

    @property
    def bottom(self):
        return self.top + self.height


class TimeScale:
    """Spans whole buckets, so the last (partial) second is drawn like the others."""

    def __init__(self, buckets):
        self.duration = float(buckets)

    def __call__(self, seconds):
        return PLOT_LEFT + (PLOT_RIGHT - PLOT_LEFT) * min(max(seconds, 0.0), self.duration) / self.duration


class LinearScale:
    def __init__(self, panel, upper):
        self.panel, self.upper = panel, max(upper, 1)

    def __call__(self, value):
        return self.panel.bottom - self.panel.height * value / self.upper


class LogScale:
    """Whole decades, so that ticks read 1, 10, 100, 1000 ms."""

    def __init__(self, panel, latencies_ms):
        positive = [v for v in latencies_ms if v > 0]
        low = math.floor(math.log10(max(min(positive, default=1.0), 0.1)))
        high = math.ceil(math.log10(max(max(positive, default=1000.0), 1.0)))
        self.panel, self.low, self.high = panel, low, max(high, low + 1)

    def decades(self):
        return [10.0**e for e in range(self.low, self.high + 1)]

    def __call__(self, value):
        exponent = math.log10(value) if value > 0 else self.low
        exponent = min(max(exponent, self.low), self.high)
        return self.panel.bottom - self.panel.height * (exponent - self.low) / (self.high - self.low)


# -- SVG drawing -----------------------------------------------------------------------------------

_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


def xml_text(value):
    return escape(_XML_INVALID.sub("?", str(value)), {'"': "&quot;"})


def element(tag, content=None, **attrs):
    """attrs in Python spelling: font_size is font-size, class_ is class."""
    rendered = "".join(f' {name.rstrip("_").replace("_", "-")}="{xml_text(value)}"'
                       for name, value in attrs.items() if value is not None)
    if content is None:
        return f"<{tag}{rendered}/>"
    return f"<{tag}{rendered}>{xml_text(content)}</{tag}>"


def text(x, y, content, size=11, **attrs):
    return element("text", content, x=f"{x:.1f}", y=f"{y:.1f}", font_size=size, **attrs)


def polyline(points, colour, css_class, width=1.5):
    coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    return element("polyline", points=coords, fill="none", stroke=colour, stroke_width=width, class_=css_class)


def legend(entries, x, y, title):
    """entries: (label, colour, swatch) with swatch 'line', 'cross' or 'box'."""
    parts = [text(x, y, title, size=11, font_weight="bold")]
    for i, (label, colour, swatch) in enumerate(entries):
        row = y + 16 * (i + 1)
        if swatch == "line":
            parts.append(element("line", x1=x, y1=row - 4, x2=x + 18, y2=row - 4, stroke=colour, stroke_width=2))
        elif swatch == "cross":
            parts.append(element("path", d=f"M{x + 6},{row - 7}l6,6m0,-6l-6,6", stroke=colour, stroke_width=1.5))
        else:
            parts.append(element("rect", x=x, y=row - 10, width=18, height=10, fill=colour, fill_opacity=0.3, stroke=colour))
        parts.append(text(x + 24, row, label, size=10))
    return parts


def time_axis(panel, time_scale, with_title):
    parts = [element("line", x1=PLOT_LEFT, y1=panel.bottom, x2=PLOT_RIGHT, y2=panel.bottom, stroke="#333")]
    for tick in linear_ticks(time_scale.duration, 12):
        x = time_scale(tick)
        parts.append(element("line", x1=f"{x:.1f}", y1=panel.bottom, x2=f"{x:.1f}", y2=panel.bottom + 4, stroke="#333"))
        parts.append(text(x, panel.bottom + 15, format_number(tick), size=10, text_anchor="middle"))
    if with_title:
        parts.append(text((PLOT_LEFT + PLOT_RIGHT) / 2, panel.bottom + 32, "time since start (s)", text_anchor="middle"))
    return parts


def value_axis(panel, ticks, y_of, label):
    """Left axis for ticks given as (value, label) pairs: the grid lines, then the labels."""
    grid, labels = [], [element("line", x1=PLOT_LEFT, y1=panel.top, x2=PLOT_LEFT, y2=panel.bottom, stroke="#333")]
    for value, tick_label in ticks:
        y = y_of(value)
        grid.append(element("line", x1=PLOT_LEFT, y1=f"{y:.1f}", x2=PLOT_RIGHT, y2=f"{y:.1f}", stroke="#e4e4e4"))
        labels.append(text(PLOT_LEFT - 6, y + 3.5, tick_label, size=10, text_anchor="end"))
    middle = (panel.top + panel.bottom) / 2
    labels.append(text(18, middle, label, text_anchor="middle", transform=f"rotate(-90 18 {middle:.1f})"))
    return grid, labels


def fault_colours(windows):
    kinds = list(dict.fromkeys(w.kind for w in windows))
    return {kind: FAULT_PALETTE[i % len(FAULT_PALETTE)] for i, kind in enumerate(kinds)}


def label_lanes(windows, time_scale):
    """A label row per window, so that overlapping windows (or long names) do not print over each other."""
    lane_busy_until = []  # pixel x where each lane's last label or window ends
    lanes = []
    for w in windows:
        start = time_scale(w.start)
        busy_until = max(time_scale(w.end), start + 2 + LABEL_CHAR_WIDTH * len(w.name))
        free = [i for i, until in enumerate(lane_busy_until) if until <= start]
        if free:
            lane = free[0]
        elif len(lane_busy_until) < MAX_LABEL_LANES:
            lane = len(lane_busy_until)
            lane_busy_until.append(0)
        else:  # too many at once to keep apart: reuse the lane that frees up first
            lane = min(range(MAX_LABEL_LANES), key=lane_busy_until.__getitem__)
        lane_busy_until[lane] = busy_until
        lanes.append(lane)
    return lanes


def fault_shading(panel, windows, lanes, colours, time_scale):
    parts = []
    for w, lane in zip(windows, lanes):
        x0, x1 = time_scale(w.start), time_scale(w.end)
        colour = colours[w.kind]
        parts.append(element("rect", x=f"{x0:.1f}", y=panel.top, width=f"{max(x1 - x0, 1.0):.1f}", height=panel.height,
                             fill=colour, fill_opacity=0.14, class_="fault", data_fault=w.name))
    for w, lane in zip(windows, lanes):
        y = panel.top + LABEL_FONT_SIZE + 1 + lane * LABEL_LINE_HEIGHT
        parts.append(text(time_scale(w.start) + 2, y, w.name, size=LABEL_FONT_SIZE, fill=colours[w.kind], class_="fault-label"))
    return parts


def bucket_x(bucket, time_scale):
    return time_scale(bucket + 0.5)


@dataclass
class PanelDrawing:
    """The parts of a panel: grid and data are clipped to the plot area, axis labels are not."""

    grid: list[str]
    data: list[str]
    axis: list[str]
    legend: list[tuple[str, str, str]]


def throughput_panel(panel, throughput, time_scale):
    peak = max((max(counts) for counts in throughput.values()), default=0)
    ticks = linear_ticks(max(peak, 1), 5, cover=True)
    y_of = LinearScale(panel, ticks[-1])
    grid, axis = value_axis(panel, [(t, format_number(t)) for t in ticks], y_of, "completed ops/s")
    parts, drawn = [], []
    for name, colour in THROUGHPUT_SERIES.items():
        counts = throughput[name]
        if not any(counts):  # a flat zero line would only hide the axis
            continue
        points = [(bucket_x(b, time_scale), y_of(n)) for b, n in enumerate(counts)]
        parts.append(polyline(points, colour, "throughput " + name.replace(" ", "-")))
        drawn.append((name, colour, "line"))
    return PanelDrawing(grid, parts + no_data_note(panel, parts), axis, drawn)


def no_data_note(panel, parts):
    if parts:
        return []
    return [text((PLOT_LEFT + PLOT_RIGHT) / 2, (panel.top + panel.bottom) / 2, "no client operations", size=12,
                 fill="#999", text_anchor="middle", class_="no-data")]


def latency_segments(points):
    """Split at buckets without ok operations: a line drawn across an outage would hide it."""
    segments, current = [], []
    for bucket, value in points:
        if current and bucket != current[-1][0] + 1:
            segments.append(current)
            current = []
        current.append((bucket, value))
    return segments + [current] if current else segments


def latency_panel(panel, lines, failures, time_scale):
    all_latencies = [ms for points in lines.values() for _, ms in points] + [c.latency_ms for c in failures]
    y_of = LogScale(panel, all_latencies)
    ticks = [(d, format_number(d)) for d in y_of.decades()]
    grid, axis = value_axis(panel, ticks, y_of, "latency (ms, log)")
    parts, drawn = [], []
    for name, colour in LATENCY_SERIES.items():
        if not lines[name]:
            continue
        css_class = "latency " + name
        for segment in latency_segments(lines[name]):
            points = [(bucket_x(b, time_scale), y_of(ms)) for b, ms in segment]
            if len(points) == 1:  # a one-point polyline draws nothing
                x, y = points[0]
                parts.append(element("circle", cx=f"{x:.1f}", cy=f"{y:.1f}", r=1.8, fill=colour, class_=css_class))
            else:
                parts.append(polyline(points, colour, css_class))
        drawn.append((f"{name} ok", colour, "line"))
    for outcome, colour in MARKER_COLOURS.items():
        crosses = "".join(f"M{time_scale(c.time) - 3:.1f},{y_of(c.latency_ms) - 3:.1f}l6,6m0,-6l-6,6"
                          for c in failures if c.outcome == outcome)
        if crosses:
            parts.append(element("path", d=crosses, stroke=colour, stroke_width=1.2, fill="none", class_="markers " + outcome))
            drawn.append((outcome, colour, "cross"))
    return PanelDrawing(grid, parts + no_data_note(panel, parts), axis, drawn)


def header(title, completions, duration, windows):
    totals = {outcome: 0 for outcome in COMPLETION_TYPES}
    for c in completions:
        totals[c.outcome] += 1
    summary = (f"ops: {totals['ok']} ok, {totals['fail']} fail, {totals['info']} info"
               f" · {duration:.1f} s · {len(windows)} fault window{'s' if len(windows) != 1 else ''}")
    return [
        text(PLOT_LEFT, 24, title or "Kinesin Jepsen run", size=16, font_weight="bold", class_="title"),
        text(PLOT_LEFT, 44, summary, size=12, class_="totals"),
    ]


def clip_path(panel):
    return (f'<clipPath id="{panel.clip_id}">'
            + element("rect", x=PLOT_LEFT, y=panel.top, width=PLOT_RIGHT - PLOT_LEFT, height=panel.height)
            + "</clipPath>")


def panel_group(panel, name, heading, drawing, shading, time_axis_parts):
    """Clipped to the plot area so that long fault labels and outliers do not run into the legend."""
    return [
        f'<g class="panel" id="{name}">',
        text(PLOT_LEFT, panel.top - 8, heading, size=13, font_weight="bold"),
        f'<g clip-path="url(#{panel.clip_id})">', *drawing.grid, *shading, *drawing.data, "</g>",
        *drawing.axis, *time_axis_parts,
        "</g>",
    ]


def build_svg(history, title):
    completions = pair_completions(history)
    duration = run_duration(history)
    buckets = bucket_count(duration)
    throughput, ok_latencies = bucket_completions(completions, buckets)
    lines = latency_lines(ok_latencies)
    failures = [c for c in completions if c.outcome != "ok" and c.latency_ms is not None]
    failures = sample_evenly(failures, MAX_FAILURE_MARKERS)

    time_scale = TimeScale(buckets)
    windows = fault_windows(history, duration)
    colours = fault_colours(windows)
    lanes = label_lanes(windows, time_scale)
    top_panel = Panel(THROUGHPUT_TOP, PANEL_HEIGHT, "clip-throughput")
    bottom_panel = Panel(LATENCY_TOP, PANEL_HEIGHT, "clip-latency")

    throughput_drawing = throughput_panel(top_panel, throughput, time_scale)
    latency_drawing = latency_panel(bottom_panel, lines, failures, time_scale)
    fault_legend = [(kind, colour, "box") for kind, colour in colours.items()]
    legend_x = PLOT_RIGHT + 20

    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif">',
        element("rect", x=0, y=0, width=WIDTH, height=HEIGHT, fill="white"),
        "<defs>", clip_path(top_panel), clip_path(bottom_panel), "</defs>",
        *header(title, completions, duration, windows),
        *panel_group(top_panel, "throughput", "Throughput (completions per 1 s bucket)",
                     throughput_drawing, fault_shading(top_panel, windows, lanes, colours, time_scale),
                     time_axis(top_panel, time_scale, with_title=False)),
        *panel_group(bottom_panel, "latency", "Latency (invoke → completion, per 1 s bucket)",
                     latency_drawing, fault_shading(bottom_panel, windows, lanes, colours, time_scale),
                     time_axis(bottom_panel, time_scale, with_title=True)),
        *legend(throughput_drawing.legend, legend_x, top_panel.top + 10, "throughput"),
        *legend(latency_drawing.legend, legend_x, bottom_panel.top + 10, "latency"),
    ]
    if fault_legend:
        below_throughput_legend = top_panel.top + 20 + 16 * (len(throughput_drawing.legend) + 1)
        parts += legend(fault_legend, legend_x, below_throughput_legend, "faults")
    else:
        parts.append(text(legend_x, HEIGHT - 20, "no faults injected", size=10, fill="#777"))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def render(history, path, title=""):
    """Writes the timeline of `history` (a list of operation dicts) as an SVG file at `path`."""
    svg = build_svg(list(history), title)
    with open(path, "w", encoding="utf-8") as out:
        out.write(svg)
    return path
