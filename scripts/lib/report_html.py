"""report_html.py — `arenashim report --html OUT.html FILE.json`: the statistics as one page.

Owns the HTML report: one self-contained file (no network, no other file: the styles, the
script and every chart are inside it, and a Content-Security-Policy forbids the browser to
fetch anything) that shows, from a stats_json file:

  - the run at a glance (regions, bytes, chunks, scans, pauses, peak RSS, dangling accesses);
  - per marker, regions and bytes over time, and the distribution of region sizes (log2);
  - the quarantine over time with each scan marked (its concurrent part and its pause), the
    pause of each scan, and the resident set over time;
  - tables, sortable (click a heading) and searchable (the box above each): markers with
    their verdicts, escape sites and allocation sites with their backtraces, scans, the chunks
    the last scan kept, every counter.

The charts are inline SVG written here, not a charting library: no dependency to vendor,
update or audit, nothing fetched, a page of a few hundred KiB, and a picture that renders the
same without its script.  The script (a few dozen lines) only sorts and filters tables; it
reports its own errors into the page (#script-errors) and marks the page
data-script="ok" when it ran through, which the tests check in a headless browser.

The time series come from the "timeseries" member that the preload writes with stats_json
(preload/report/timeseries.c); a file without it (an older one) gets the tables only.
"""

import html
import math

PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
           "#9c755f", "#bab0ac")


class BadSeries(Exception):
    """The file's time series or sites are not what arenashim writes; the message says where."""


# ---- checking the parts the page draws ---------------------------------------------------------

def _is_count(v):
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2 ** 64


def _is_number(v):
    return (_is_count(v) or isinstance(v, float)) and math.isfinite(v) and v >= 0


def _need(ok, where, expected):
    if not ok:
        raise BadSeries("%s: expected %s" % (where, expected))


def _counts(v, where, length=None):
    _need(isinstance(v, list) and all(_is_count(x) for x in v), where, "a list of counts")
    if length is not None:
        _need(len(v) == length, where, "%d values (one per sample), got %d" % (length, len(v)))
    return v


def _site(site, where):
    _need(isinstance(site, dict), where, "an object")
    for key in ("allocations", "escapes"):
        if key in site:
            _need(_is_count(site[key]), "%s.%s" % (where, key), "a count")
    _need(isinstance(site.get("marker", ""), str), where + ".marker", "a string")
    frames = site.get("frames", [])
    _need(isinstance(frames, list) and all(isinstance(f, str) for f in frames), where + ".frames",
          "a list of strings")


def check(s):
    """Raises BadSeries unless what the page draws beyond the summary's keys is well formed."""
    ts = s.get("timeseries")
    if ts is not None:
        _need(isinstance(ts, dict), "timeseries", "an object")
        t = ts.get("t", [])
        _need(isinstance(t, list) and all(_is_number(x) for x in t), "timeseries.t", "a list of seconds")
        for key in ("rss_bytes", "quarantine_bytes", "scans", "scan_pause_ns"):
            if key in ts:
                _counts(ts[key], "timeseries." + key, len(t))
        markers = ts.get("markers", [])
        _need(isinstance(markers, list), "timeseries.markers", "a list")
        for i, m in enumerate(markers):
            where = "timeseries.markers[%d]" % i
            _need(isinstance(m, dict) and isinstance(m.get("marker"), str), where, "an object with a \"marker\" string")
            _counts(m.get("regions", [0] * len(t)), where + ".regions", len(t))
            _counts(m.get("bytes", [0] * len(t)), where + ".bytes", len(t))
            sizes = _counts(m.get("region_sizes", []), where + ".region_sizes")
            _need(len(sizes) <= 65, where + ".region_sizes", "at most 65 buckets")
        records = ts.get("scan_records", [])
        _need(isinstance(records, list), "timeseries.scan_records", "a list")
        for i, r in enumerate(records):
            where = "timeseries.scan_records[%d]" % i
            _need(isinstance(r, dict) and all(_is_number(v) for v in r.values()), where,
                  "an object of numbers")
        for key in ("interval_s",):
            if key in ts:
                _need(_is_number(ts[key]), "timeseries." + key, "a number")
        for key in ("thinned", "samples_max", "markers_max", "scans_max", "scans_every", "markers_without_series"):
            if key in ts:
                _need(_is_count(ts[key]), "timeseries." + key, "a count")
    for key in ("trace_allocs", "alloc_sites_total", "alloc_sites_omitted_allocations"):
        if key in s:
            _need(_is_count(s[key]), key, "a count")
    for key in ("alloc_sites", "escape_sites"):
        sites = s.get(key, [])
        _need(isinstance(sites, list), key, "a list")
        for i, site in enumerate(sites):
            _site(site, "%s[%d]" % (key, i))


# ---- formatting ----------------------------------------------------------------------------------

def human_bytes(n):
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return ("%.0f %s" % (n, unit)) if unit == "B" else ("%.1f %s" % (n, unit))
        n /= 1024
    return "%.1f TiB" % n


def human_count(n):
    n = float(n)
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return "%.1f%s" % (n / scale, unit)
    return "%.0f" % n if n == int(n) else "%.2f" % n


def human_seconds(s):
    if s >= 1:
        return "%.2f s" % s
    if s >= 1e-3:
        return "%.1f ms" % (s * 1e3)
    return "%.0f µs" % (s * 1e6)


FORMATS = {"bytes": human_bytes, "count": human_count, "seconds": human_seconds}


def tick_text(kind, value, top):
    """An axis label: seconds in the one unit that suits the axis (0, 0.2, ... s or 0, 20, ... ms)."""
    if kind != "seconds":
        return FORMATS[kind](value)
    for unit, scale in (("s", 1), ("ms", 1e-3), ("µs", 1e-6)):
        if top >= scale or unit == "µs":
            return "%g %s" % (round(value / scale, 6), unit) if value else "0"
    return "0"


def esc(text):
    return html.escape(str(text), quote=True)


def nice_ticks(top, count=5):
    """Round tick values from 0 to at least top."""
    if top <= 0:
        return [0, 1]
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = magnitude * 10
    for m in (1, 2, 2.5, 5, 10):
        if m * magnitude >= raw:
            step = m * magnitude
            break
    n = max(1, math.ceil(top / step - 1e-9))
    return [i * step for i in range(n + 1)]


def byte_ticks(top, count=5):
    """Ticks at round numbers of the unit top is best read in."""
    unit = 1
    while top / unit >= 1024 and unit < 1024 ** 4:
        unit *= 1024
    return [v * unit for v in nice_ticks(top / unit, count)]


# ---- charts (inline SVG) -------------------------------------------------------------------------

class Chart:
    """A plot area with axes: x from 0 to x_top (seconds or an index), y from 0 to y_top."""

    LEFT, RIGHT, TOP, BOTTOM = 64, 30, 12, 34

    def __init__(self, css_id, width, height, x_top, y_top, y_kind, x_kind="seconds", x_label="time since start-up"):
        self.id, self.width, self.height = css_id, width, height
        self.x_ticks = nice_ticks(x_top) if x_kind != "bytes" else byte_ticks(x_top)
        self.y_ticks = byte_ticks(y_top) if y_kind == "bytes" else nice_ticks(y_top)
        self.x_top, self.y_top = self.x_ticks[-1], self.y_ticks[-1]
        self.x_kind, self.y_kind, self.x_label = x_kind, y_kind, x_label
        self.parts = []

    def x(self, v):
        inner = self.width - self.LEFT - self.RIGHT
        return self.LEFT + inner * (v / self.x_top if self.x_top else 0)

    def y(self, v):
        inner = self.height - self.TOP - self.BOTTOM
        return self.TOP + inner * (1 - (v / self.y_top if self.y_top else 0))

    def axes(self):
        out = []
        x0, x1 = self.x(0), self.x(self.x_top)
        for v in self.y_ticks:
            y = self.y(v)
            out.append('<line class="grid" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>' % (x0, y, x1, y))
            out.append('<text class="tick" x="%.1f" y="%.1f" text-anchor="end">%s</text>'
                       % (x0 - 6, y + 4, esc(tick_text(self.y_kind, v, self.y_top))))
        for v in self.x_ticks:
            x = self.x(v)
            out.append('<line class="axis" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>'
                       % (x, self.y(0), x, self.y(0) + 4))
            out.append('<text class="tick" x="%.1f" y="%.1f" text-anchor="middle">%s</text>'
                       % (x, self.y(0) + 16, esc(tick_text(self.x_kind, v, self.x_top))))
        out.append('<line class="axis" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>' % (x0, self.y(0), x1, self.y(0)))
        out.append('<text class="label" x="%.1f" y="%.1f" text-anchor="middle">%s</text>'
                   % ((x0 + x1) / 2, self.height - 2, esc(self.x_label)))
        return out

    def svg(self, caption):
        body = self.axes() + self.parts
        return ('<svg id="%s" class="chart" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s">'
                '%s</svg>' % (esc(self.id), self.width, self.height, self.width, self.height, esc(caption),
                              "".join(body)))


def legend(names):
    return '<div class="legend">%s</div>' % "".join(
        '<span><i style="background:%s"></i>%s</span>' % (PALETTE[i % len(PALETTE)], esc(n))
        for i, n in enumerate(names))


def line_chart(css_id, caption, t, series, y_kind, width=560, height=240, marks=()):
    """series: [(name, values)], one value per t.  marks: [(x_start, x_end, css class, tooltip)]
    drawn as bands behind the lines."""
    top = max([max(v) if v else 0 for _, v in series] + [0])
    chart = Chart(css_id, width, height, max(t) if t else 1, top or 1, y_kind)
    # Marks go in a strip along the top of the plot, so that dense ones leave the lines readable.
    for start, end, css, tip in marks:
        x0, x1 = chart.x(start), chart.x(end)
        chart.parts.append('<rect class="%s" x="%.2f" y="%.1f" width="%.2f" height="%.1f"><title>%s</title></rect>'
                           % (css, x0, chart.y(chart.y_top) - 10, max(x1 - x0, 0.8), 9, esc(tip)))
    for i, (name, values) in enumerate(series):
        color = PALETTE[i % len(PALETTE)]
        points = " ".join("%.1f,%.1f" % (chart.x(a), chart.y(b)) for a, b in zip(t, values))
        chart.parts.append('<polyline class="line" data-series="%s" points="%s" stroke="%s">'
                           '<title>%s</title></polyline>'
                           % (esc(name), points, color, esc(name)))
        if len(series) <= 4 and len(t) <= 300:
            for a, b in zip(t, values):
                chart.parts.append('<circle cx="%.1f" cy="%.1f" r="2" fill="%s"><title>%s at %s: %s</title></circle>'
                                   % (chart.x(a), chart.y(b), color, esc(name), esc(human_seconds(a)),
                                      esc(FORMATS[y_kind](b))))
    return '<figure>%s%s<figcaption>%s</figcaption></figure>' % (
        chart.svg(caption), legend([n for n, _ in series]) if len(series) > 1 else "", esc(caption))


def stem_chart(css_id, caption, x_top, stems, width=560, height=200):
    """stems: [(x seconds, value seconds, tooltip)]: a vertical line per event."""
    top = max([v for _, v, _ in stems] + [0])
    chart = Chart(css_id, width, height, x_top or 1, top or 1e-3, "seconds")
    for x, v, tip in stems:
        chart.parts.append('<line class="stem" x1="%.2f" y1="%.1f" x2="%.2f" y2="%.1f"><title>%s</title></line>'
                           % (chart.x(x), chart.y(0), chart.x(x), chart.y(v), esc(tip)))
    return '<figure>%s<figcaption>%s</figcaption></figure>' % (chart.svg(caption), esc(caption))


def bucket_label(b):
    return "0" if b == 0 else human_bytes(2 ** (b - 1)).replace(".0 ", " ")


def histogram(css_id, caption, sizes, width=560, height=220):
    """sizes[b]: regions of 0 bytes (b = 0) or of [2^(b-1), 2^b) bytes."""
    first = next((b for b, n in enumerate(sizes) if n), 0)
    shown = list(range(first, len(sizes))) or [0]
    top = max(sizes) if sizes else 0
    chart = Chart(css_id, width, height, len(shown), top or 1, "count", x_kind="count",
                  x_label="region size (at least; each bar up to twice that)")
    chart.x_ticks = []  # the bars carry their own labels
    slot = (chart.x(len(shown)) - chart.x(0)) / len(shown)
    label_every = max(1, math.ceil(len(shown) / 12))
    for i, b in enumerate(shown):
        n = sizes[b] if b < len(sizes) else 0
        x = chart.x(0) + i * slot
        chart.parts.append('<rect class="bar" x="%.1f" y="%.1f" width="%.1f" height="%.1f">'
                           '<title>%s: %d regions</title></rect>'
                           % (x + slot * 0.1, chart.y(n), slot * 0.8, chart.y(0) - chart.y(n),
                              esc("0 bytes" if b == 0 else "%s to %s" % (bucket_label(b), bucket_label(b + 1))), n))
        if i % label_every == 0:
            chart.parts.append('<text class="tick" x="%.1f" y="%.1f" text-anchor="middle">%s</text>'
                               % (x + slot / 2, chart.y(0) + 14, esc(bucket_label(b))))
    return '<figure>%s<figcaption>%s</figcaption></figure>' % (chart.svg(caption), esc(caption))


# ---- tables ---------------------------------------------------------------------------------------

def table(css_id, caption, headings, rows):
    """headings: [(text, numeric)]; rows: [[(shown html, sort value)]].  Sortable and searchable."""
    head = "".join('<th data-kind="%s">%s</th>' % ("number" if numeric else "text", esc(text))
                   for text, numeric in headings)
    body = []
    for row in rows:
        cells = []
        for (shown, value), (_, numeric) in zip(row, headings):
            cells.append('<td%s>%s</td>' % (' data-value="%s"' % esc(value) if numeric else "", shown))
        body.append("<tr>%s</tr>" % "".join(cells))
    return ('<div class="table" id="%s"><div class="tools"><input type="search" placeholder="search %s" '
            'aria-label="search %s"> <span class="count">%d rows</span></div>'
            '<div class="rows"><table><thead><tr>%s</tr></thead><tbody>%s</tbody></table></div></div>'
            % (esc(css_id), esc(caption), esc(caption), len(rows), head, "".join(body)))


def frame_parts(frame):
    """'#3 0xPC module+0xOFF (symbol+0xOFF)' -> ('symbol+0xOFF' or None, 'module+0xOFF', or the pc)."""
    parts = frame.split(" ", 2)
    text = parts[2] if len(parts) == 3 else parts[-1]
    if text.endswith(")") and " (" in text:
        return text[text.rindex(" (") + 2:-1], text[:text.rindex(" (")]
    return None, text


def frame_place(frame):
    """Where a frame is: 'main+0xc92', or module+offset without a symbol."""
    symbol, where = frame_parts(frame)
    return symbol or where


def frame_name(frame):
    """The function of a frame, 'main' (flame graphs merge by function), or module+offset."""
    symbol, where = frame_parts(frame)
    return symbol.rsplit("+0x", 1)[0] if symbol else where


def site_rows(sites):
    rows = []
    for site in sites:
        frames = site.get("frames", [])
        leaf = frame_place(frames[0]) if frames else "(no frames)"
        trace = '<details><summary>%s</summary><pre>%s</pre></details>' % (
            esc(leaf), esc("\n".join(frames)))
        rows.append([(esc(site.get("escapes", 0)), site.get("escapes", 0)),
                     (esc(site.get("allocations", 0)), site.get("allocations", 0)),
                     (esc(site.get("marker", "")), site.get("marker", "")),
                     (trace, leaf)])
    return rows


SITE_HEADINGS = [("escaped", True), ("traced allocations", True), ("marker", False),
                 ("allocated at (backtrace)", False)]


# ---- the page -------------------------------------------------------------------------------------

STYLE = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0;color:#222;
background:#fafafa}
header{background:#263238;color:#fff;padding:14px 24px}
header h1{margin:0;font-size:20px}
header .command{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:13px;color:#cfd8dc;word-break:break-all}
main{padding:8px 24px 40px;max-width:1240px}
h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin-top:14px}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px 12px;min-width:130px}
.card b{display:block;font-size:18px}
.card span{color:#666;font-size:12px}
.charts{display:flex;flex-wrap:wrap;gap:16px}
figure{margin:0;background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px}
figcaption{font-size:12px;color:#555;text-align:center}
svg.chart{display:block;font-size:11px}
.grid{stroke:#eee}.axis{stroke:#888}.tick{fill:#555}.label{fill:#555;font-size:11px}
.line{fill:none;stroke-width:1.8}
.bar{fill:#4e79a7}.bar:hover{fill:#f28e2b}
.stem{stroke:#e15759;stroke-width:1.5}
.scan-concurrent{fill:#76b7b2;opacity:.35}.scan-pause{fill:#e15759;opacity:.6}
.legend{font-size:12px;display:flex;flex-wrap:wrap;gap:10px;justify-content:center}
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
.note{color:#666;font-size:12px}
.table{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px}
.rows{max-height:420px;overflow:auto}
thead th{position:sticky;top:0}
.tools{margin-bottom:6px}.tools input{width:260px;padding:3px 6px}.count{color:#666;font-size:12px}
table{border-collapse:collapse;width:100%;font-size:13px}
th{text-align:left;background:#eceff1;cursor:pointer;user-select:none;padding:4px 8px;white-space:nowrap}
th.asc::after{content:" \\25B2"}th.desc::after{content:" \\25BC"}
td{border-top:1px solid #eee;padding:3px 8px;vertical-align:top}
td[data-value]{text-align:right;font-variant-numeric:tabular-nums}
pre{margin:4px 0;font-size:12px;white-space:pre-wrap}
summary{cursor:pointer;font-family:ui-monospace,"DejaVu Sans Mono",monospace}
#script-errors{color:#b71c1c;background:#ffebee;padding:8px}
"""

SCRIPT = """
(function () {
  var errors = document.getElementById('script-errors');
  function fail(text) {
    errors.hidden = false;
    errors.textContent += text + '\\n';
    document.documentElement.setAttribute('data-script', 'error');
  }
  window.onerror = function (message, source, line) { fail(message + ' (line ' + line + ')'); };
  try {
    var tables = document.querySelectorAll('div.table');
    Array.prototype.forEach.call(tables, function (box) {
      var table = box.querySelector('table'), body = table.tBodies[0];
      var count = box.querySelector('.count'), search = box.querySelector('input');
      var rows = Array.prototype.slice.call(body.rows);
      var texts = rows.map(function (r) { return r.textContent.toLowerCase(); });
      search.addEventListener('input', function () {
        var q = search.value.toLowerCase(), shown = 0;
        rows.forEach(function (r, i) {
          var hit = texts[i].indexOf(q) >= 0;
          r.hidden = !hit;
          if (hit) shown++;
        });
        count.textContent = shown + ' of ' + rows.length + ' rows';
      });
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, column) {
        th.addEventListener('click', function () {
          var numeric = th.getAttribute('data-kind') === 'number';
          var descending = !th.classList.contains('desc');
          Array.prototype.forEach.call(th.parentNode.cells, function (c) { c.classList.remove('asc', 'desc'); });
          th.classList.add(descending ? 'desc' : 'asc');
          var keyed = Array.prototype.map.call(body.rows, function (r) {
            var cell = r.cells[column];
            var key = numeric ? parseFloat(cell.getAttribute('data-value')) : cell.textContent.toLowerCase();
            return [key, r];
          });
          keyed.sort(function (a, b) {
            var d = a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0;
            return descending ? -d : d;
          });
          keyed.forEach(function (k) { body.appendChild(k[1]); });
        });
      });
    });
    if (errors.hidden) document.documentElement.setAttribute('data-script', 'ok');
  } catch (e) {
    fail(String(e && e.stack || e));
  }
})();
"""

CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"


def card(value, what):
    return '<div class="card"><b>%s</b><span>%s</span></div>' % (esc(value), esc(what))


def section_overview(s, ts):
    g = s.get
    t = ts.get("t", []) if ts else []
    rss = ts.get("rss_bytes", []) if ts else []
    cards = [
        card(human_count(g("regions_ended", 0)), "regions ended (%s begun)" % human_count(g("regions_begun", 0))),
        card(human_count(g("region_allocs", 0)), "objects in regions"),
        card(human_bytes(g("region_bytes", 0)), "allocated in regions"),
        card("%d / %d" % (g("chunks_mapped", 0), g("chunks_reused", 0)), "chunks mapped / reused"),
        card(human_count(g("scans", 0)), "scans (%d given up)" % g("scan_giveups", 0)),
        card(human_seconds(g("scan_pause_max_ns", 0) / 1e9), "longest pause"),
        card(human_seconds(g("scan_ns", 0) / 1e9), "paused in all"),
        card(human_count(g("dangling_accesses", 0)), "dangling accesses"),
    ]
    if rss and max(rss):
        cards.append(card(human_bytes(max(rss)), "largest RSS sampled"))
    if t:
        cards.append(card(human_seconds(t[-1]), "run (last sample)"))
    return '<div class="cards">%s</div>' % "".join(cards)


def section_markers_over_time(ts):
    t = ts.get("t", [])
    markers = ts.get("markers", [])
    if not markers or len(t) < 2:
        return '<p class="note">No marker ended a region while the series were recorded.</p>'
    regions = [(m["marker"], m.get("regions", [])) for m in markers]
    nbytes = [(m["marker"], m.get("bytes", [])) for m in markers]
    out = ['<div class="charts">',
           line_chart("chart-regions", "regions ended so far, per marker", t, regions, "count"),
           line_chart("chart-bytes", "bytes allocated in regions so far, per marker", t, nbytes, "bytes"),
           '</div>']
    if ts.get("markers_without_series"):
        out.append('<p class="note">%d more markers had regions; only the first %s to end one have a series.</p>'
                   % (ts["markers_without_series"], esc(ts.get("markers_max", len(markers)))))
    return "".join(out)


def section_sizes(ts):
    markers = [m for m in ts.get("markers", []) if any(m.get("region_sizes", []))]
    if not markers:
        return '<p class="note">No region sizes were recorded.</p>'
    out = ['<div class="charts">']
    for i, m in enumerate(markers):
        out.append(histogram("chart-sizes-%d" % i, "region sizes: %s (%d regions)"
                             % (m["marker"], sum(m["region_sizes"])), m["region_sizes"]))
    out.append("</div>")
    return "".join(out)


def section_scans(s, ts):
    t = ts.get("t", [])
    records = ts.get("scan_records", [])
    marks = []
    for r in records:
        start = r.get("start_s", 0)
        concurrent = r.get("concurrent_ns", 0) / 1e9
        pause = r.get("pause_ns", 0) / 1e9
        tip = "scan at %s: %s concurrent, %s paused, quarantine %s -> %s" % (
            human_seconds(start), human_seconds(concurrent), human_seconds(pause),
            human_bytes(r.get("quarantine_before", 0)), human_bytes(r.get("quarantine_after", 0)))
        marks.append((start, start + concurrent, "scan-concurrent", tip))
        marks.append((start + concurrent, start + concurrent + pause, "scan-pause", tip))
    out = ['<div class="charts">']
    if len(t) >= 2:
        out.append(line_chart("chart-quarantine", "quarantine (bytes waiting for a scan); scans along the top: "
                              "concurrent part light, pause dark", t,
                              [("quarantine", ts.get("quarantine_bytes", []))], "bytes", marks=marks))
    if records:
        x_top = max([t[-1] if t else 0] + [r.get("start_s", 0) for r in records])
        stems = [(r.get("start_s", 0), r.get("pause_ns", 0) / 1e9,
                  "scan at %s paused %s" % (human_seconds(r.get("start_s", 0)),
                                            human_seconds(r.get("pause_ns", 0) / 1e9)))
                 for r in records]
        out.append(stem_chart("chart-pauses", "pause of each scan%s" % (
            "" if ts.get("scans_every", 1) == 1 else " (one scan in %d recorded)" % ts["scans_every"]), x_top, stems))
    elif len(t) >= 2:
        out.append('<p class="note">No scan ran.</p>')
    if len(t) >= 2 and any(ts.get("rss_bytes", [])):
        out.append(line_chart("chart-rss", "resident set (RSS) of the process", t,
                              [("RSS", ts.get("rss_bytes", []))], "bytes"))
    out.append("</div>")
    return "".join(out)


def section_scan_table(ts):
    records = ts.get("scan_records", [])
    out = []
    if records:
        every = ts.get("scans_every", 1)
        out.append("<h2>Scans%s</h2>" % ("" if every == 1 else " (one in %d recorded)" % every))
        rows = [[(esc(human_seconds(r.get("start_s", 0))), r.get("start_s", 0)),
                 (esc(human_seconds(r.get("concurrent_ns", 0) / 1e9)), r.get("concurrent_ns", 0)),
                 (esc(human_seconds(r.get("pause_ns", 0) / 1e9)), r.get("pause_ns", 0)),
                 (esc(human_bytes(r.get("bytes", 0))), r.get("bytes", 0)),
                 (esc(human_bytes(r.get("quarantine_before", 0))), r.get("quarantine_before", 0)),
                 (esc(human_bytes(r.get("quarantine_after", 0))), r.get("quarantine_after", 0)),
                 (esc(r.get("chunks_released", 0)), r.get("chunks_released", 0))] for r in records]
        out.append(table("table-scans", "scans", [("start", True), ("concurrent", True), ("pause", True),
                                                  ("read", True), ("quarantine before", True),
                                                  ("quarantine after", True), ("chunks released", True)], rows))
    return "".join(out)


def section_marker_table(s):
    verdicts = {v.get("spec"): v.get("verdict", "") for v in s.get("verdicts", [])}
    rows = []
    for m in s.get("markers", []):
        state = "refused" if m.get("refused") else "resolved" if m.get("resolved") else "unresolved"
        rows.append([(esc(m["spec"]), m["spec"]), (esc(state + (": " + m["reason"] if m.get("reason") else "")), state),
                     (esc(m.get("regions", 0)), m.get("regions", 0)), (esc(m.get("objects", 0)), m.get("objects", 0)),
                     (esc(human_bytes(m.get("bytes", 0))), m.get("bytes", 0)),
                     (esc(human_bytes(m.get("peak_region_bytes", 0))), m.get("peak_region_bytes", 0)),
                     (esc("%.3f s" % m.get("seconds_inside", 0)), m.get("seconds_inside", 0)),
                     (esc(m.get("escapes", 0)), m.get("escapes", 0)),
                     (esc(verdicts.get(m["spec"], "")), verdicts.get(m["spec"], ""))])
    if not rows:
        return '<p class="note">No markers (regions opened through the API only, or none).</p>'
    return table("table-markers", "markers", [("marker", False), ("state", False), ("regions", True), ("objects", True),
                                              ("bytes", True), ("largest region", True), ("inside", True),
                                              ("escapes", True), ("verdict", False)], rows)


def section_sites(s):
    out = []
    escape_sites = s.get("escape_sites", [])
    alloc_sites = s.get("alloc_sites", [])
    escaping = [site for site in alloc_sites if site.get("escapes")] or escape_sites
    if escaping:
        out.append("<h3>Escape sites</h3>")
        out.append(table("table-escapes", "escape sites", SITE_HEADINGS, site_rows(escaping)))
    else:
        out.append('<p class="note">No object escaped%s.</p>' % (
            "" if s.get("trace_allocs") else " among those seen (run with trace_allocs=1 to see allocation sites)"))
    if alloc_sites:
        out.append("<h3>Allocation sites (sampled: one allocation in %s traced)</h3>" % esc(s.get("trace_allocs", "?")))
        out.append(table("table-allocs", "allocation sites", SITE_HEADINGS, site_rows(alloc_sites)))
        if s.get("alloc_sites_total", 0) > len(alloc_sites):
            out.append('<p class="note">%d of %d sites shown; %d traced allocations in the others.</p>'
                       % (len(alloc_sites), s["alloc_sites_total"], s.get("alloc_sites_omitted_allocations", 0)))
    return "".join(out)


def section_kept(s):
    kept = s.get("scan_kept", [])
    if not kept:
        return ""
    rows = [[(esc(k.get("chunk", "")), k.get("chunk", "")), (esc(k.get("pointer", "")), k.get("pointer", "")),
             (esc(k.get("location", "")), k.get("location", "")), (esc(k.get("kind", "")), k.get("kind", "")),
             (esc(k.get("where", "")), k.get("where", ""))] for k in kept]
    return ("<h2>Chunks the last scan kept, and who points there</h2>" +
            table("table-kept", "kept chunks", [("chunk", False), ("pointer", False), ("at", False), ("in", False),
                                                ("where", False)], rows))


def section_counters(s):
    rows = [[(esc(k), k), (esc(v), v)] for k, v in s.items() if _is_count(v)]
    return table("table-counters", "counters", [("counter", False), ("value", True)], rows)


def page(s, path):
    """The whole page for statistics s (checked by report.check and check above)."""
    ts = s.get("timeseries") if isinstance(s.get("timeseries"), dict) else None
    command = s.get("command", "") if isinstance(s.get("command"), str) else ""
    title = "arenashim report" + (": " + command if command else "")
    parts = ['<!DOCTYPE html><html lang="en" data-script="pending"><head><meta charset="utf-8">',
             '<meta http-equiv="Content-Security-Policy" content="%s">' % CSP,  # a constant, no double quote
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             "<title>%s</title><style>%s</style></head><body>" % (esc(title[:200]), STYLE),
             '<header><h1>arenashim report</h1><div class="command">%s</div><div class="command">from %s</div></header>'
             % (esc(command or "(command not recorded)"), esc(path)),
             '<main><pre id="script-errors" hidden></pre>',
             section_overview(s, ts)]
    if ts:
        parts += ["<h2>Regions and bytes over time</h2>", section_markers_over_time(ts),
                  "<h2>Region sizes</h2>", section_sizes(ts),
                  "<h2>Quarantine, scans and memory over time</h2>", section_scans(s, ts)]
    else:
        parts.append('<p class="note">This file has no time series (written by an older arenashim, '
                     'or the series could not be recorded): tables only.</p>')
    parts += ["<h2>Markers</h2>", section_marker_table(s), "<h2>Escapes and allocation sites</h2>", section_sites(s),
              section_scan_table(ts) if ts else "", section_kept(s), "<h2>Counters</h2>", section_counters(s),
              "</main><script>%s</script></body></html>\n" % SCRIPT]
    return "".join(parts)


def write_page(s, path, out_path):
    """Checks the series and writes the page; BadSeries or OSError."""
    check(s)
    text = page(s, path)
    with open(out_path, "w", encoding="utf-8", errors="backslashreplace") as f:
        f.write(text)
