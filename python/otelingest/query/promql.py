"""PromQL over the OTel metrics tables.

Parsing is done by ``promql-parser``. Each selector is planned into bound SQL (sql/queries/prom_*.sql):
the metric catalog maps Prometheus names (OTel -> Prometheus naming: dots to underscores, unit suffixes,
``_total`` for monotonic sums, ``_bucket``/``_sum``/``_count`` for histograms) to OTel metric names;
the series catalog gives each series' labels, the label matchers select series ids, and only those
series' samples in the needed window are read — from the raw table or a rollup, chosen by time range
and step. With steps/ranges of a minute or more, ClickHouse pre-aggregates the samples per step
bucket (count, first, last, sum, min, max, counter-reset corrections: prom_buckets_raw.sql) so a long
range moves one row per series and step, and the result is exactly what the raw samples give. The
functions, aggregations and operators then evaluate per step with Prometheus' semantics (5m
lookback, extrapolated rate, bucketQuantile). On rollups a range window is at least two buckets.
Aggregations of the shapes Grafana panels use run whole in ClickHouse instead (promql_sql.py); this
evaluator answers everything else and is their reference. Delta temporality is exposed as a running
total from the fetched window's start; rate() does not extrapolate such a total to zero.

Supported: selectors with = != =~ !~ and offset; rate, irate, increase, delta, {avg,sum,min,max,
count,last}_over_time, histogram_quantile, abs/ceil/floor/round/sqrt/exp/ln/log2/log10, clamp_min,
clamp_max, vector, scalar, time, absent; sum/avg/min/max/count/topk/bottomk/group with by/without;
arithmetic, comparisons (with bool) and and/or/unless between vectors and scalars (one-to-one
matching with on/ignoring); unary minus; parentheses. Anything else (subqueries, @, group_left/right,
summaries and exponential histograms, other functions) is a 400 ``bad_data``: never a wrong answer.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np
import promql_parser as pp

from . import promql_functions as fx
from . import promql_sql
from .errors import BadRequest, Unprocessable
from .store import Store
from .tables import BUCKET_S, choose_metrics_table
from .timeparse import NS

LOOKBACK_NS = 5 * 60 * NS
# Evaluations reuse a metric catalog read for a window starting and ending in the same hours for
# this long (a dashboard's sliding window keeps its key; a selected metric missing from the catalog
# is read afresh at once, one only in the window's older minutes answers nothing).
CATALOG_TTL_S = 10.0
# Past its time a shared catalog is still served for this long while another is read in the
# background.
CATALOG_STALE_S = 60.0
CATALOG_GRAIN_NS = 3600 * NS
# ClickHouse takes a bound parameter of up to 128 KiB: this many series ids (~21 bytes each).
MAX_BOUND_SERIES = 6000
# Buckets narrower than this gain little over raw samples (typical scrape/export intervals are 10-60 s).
MIN_BUCKET_NS = 60 * NS
MAX_REGEX_LEN = 1024
SUBQUERY_DEFAULT_STEP_NS = 60 * NS


def series_chunks(ids: Iterable[int]) -> list[list[int]]:
    """Series ids as query parameters, sorted, in chunks one parameter holds: a selector of more
    series is read a chunk per query (Source.max_series bounds how many)."""
    out = sorted(set(ids))
    return [out[i:i + MAX_BOUND_SERIES] for i in range(0, len(out), MAX_BOUND_SERIES)]


# --- OTel -> Prometheus naming (OpenTelemetry "Prometheus and OpenMetrics compatibility" spec) ---

_UNIT_WORDS = {
    "d": "days", "h": "hours", "min": "minutes", "s": "seconds", "ms": "milliseconds", "us": "microseconds",
    "ns": "nanoseconds", "By": "bytes", "KiBy": "kibibytes", "MiBy": "mebibytes", "GiBy": "gibibytes",
    "TiBy": "tibibytes", "KBy": "kilobytes", "MBy": "megabytes", "GBy": "gigabytes", "TBy": "terabytes",
    "m": "meters", "V": "volts", "A": "amperes", "J": "joules", "W": "watts", "g": "grams", "Cel": "celsius",
    "Hz": "hertz", "%": "percent",
}
_PER_UNIT_WORDS = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week", "mo": "month", "y": "year"}
_INVALID_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_:]")
_INVALID_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9_]")


def _sanitize(name: str, pattern: re.Pattern[str]) -> str:
    out = re.sub(r"__+", "_", pattern.sub("_", name))
    if out and out[0].isdigit():
        out = "_" + out
    return out


def label_name(key: str) -> str:
    out = _sanitize(key, _INVALID_LABEL_CHARS)
    return out if not out.startswith("__") else "key" + out


def _unit_suffix(unit: str, metric_type: str) -> str:
    unit = re.sub(r"\{[^}]*\}", "", unit).strip()
    if not unit:
        return ""
    if unit == "1":
        return "ratio" if metric_type == "Gauge" else ""
    main, _, per = unit.partition("/")
    words = [_UNIT_WORDS.get(main, main)] if main else []
    if per:
        words.append("per_" + _PER_UNIT_WORDS.get(per, _UNIT_WORDS.get(per, per)))
    return _sanitize("_".join(words), _INVALID_NAME_CHARS).strip("_")


@dataclass(frozen=True)
class MetricInfo:
    """One OTel metric as Prometheus sees it."""

    otel_name: str
    metric_type: str  # Gauge | Sum | Histogram | ...
    temporality: str  # Delta | Cumulative | Unspecified
    monotonic: bool
    unit: str
    description: str
    # Written by Prometheus remote write: the name is the Prometheus name, verbatim (no naming rules).
    verbatim: bool = False

    @property
    def prom_type(self) -> str:
        if self.metric_type == "Sum":
            return "counter" if self.monotonic else "gauge"
        return {"Gauge": "gauge", "Histogram": "histogram"}.get(self.metric_type, "unknown")

    @property
    def base_name(self) -> str:
        if self.verbatim:
            return self.otel_name
        name = _sanitize(self.otel_name, _INVALID_NAME_CHARS).strip("_") or "_"
        suffix = _unit_suffix(self.unit, self.metric_type)
        if self.prom_type == "counter" and name.endswith("_total"):
            name = name[: -len("_total")]
        if suffix and not name.endswith("_" + suffix):
            name += "_" + suffix
        if self.prom_type == "counter":
            name += "_total"
        return name

    def families(self) -> dict[str, str]:
        """Prometheus metric name -> which value it exposes (value | bucket | sum | count)."""
        if self.prom_type == "histogram":
            b = self.base_name
            return {b + "_bucket": "bucket", b + "_sum": "sum", b + "_count": "count"}
        if self.prom_type in ("counter", "gauge"):
            return {self.base_name: "value"}
        return {}  # summaries, exponential histograms: not exposed


# Resource attribute of every remote-written series (rust/src/prom/remote_write.rs): its labels are
# its point attributes, verbatim (job and instance among them).
REMOTE_WRITE_SOURCE = ("otelingest.source", "prometheus.remote_write")


def series_labels(service: str, resource: dict[str, str], attributes: dict[str, str]) -> dict[str, str]:
    """Point attributes, service_name, and job/instance per the OTel spec; a remote-written
    series' labels as written."""
    if resource.get(REMOTE_WRITE_SOURCE[0]) == REMOTE_WRITE_SOURCE[1]:
        return dict(attributes)
    labels: dict[str, str] = {}
    for k, v in sorted(attributes.items()):
        name = label_name(k)
        labels[name] = f"{labels[name]};{v}" if name in labels else v
    labels["service_name"] = service
    ns = resource.get("service.namespace")
    labels["job"] = f"{ns}/{service}" if ns else service
    if "service.instance.id" in resource:
        labels["instance"] = resource["service.instance.id"]
    return labels


def format_value(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return repr(float(v))


def format_le(b: float) -> str:
    return "+Inf" if math.isinf(b) else format_value(b)


# --- Matching --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LabelMatcher:
    name: str
    op: str  # = != =~ !~
    value: str

    @property
    def is_regex(self) -> bool:
        return self.op in ("=~", "!~")

    def validate(self) -> None:
        if self.is_regex:
            if len(self.value) > MAX_REGEX_LEN:
                raise BadRequest(f"regex for label {self.name} longer than {MAX_REGEX_LEN}")
            try:
                re.compile(self.value)
            except re.error as e:
                raise BadRequest(f"invalid regex {self.value!r}: {e}") from None

    def matches_empty(self) -> bool:
        if self.is_regex:  # the empty string cannot make a backtracking engine blow up
            return (re.fullmatch(self.value, "") is not None) == (self.op == "=~")
        return ("" == self.value) == (self.op == "=")

    def compile(self, regex_matches: frozenset[str] | None = None) -> Callable[[str], bool]:
        """The matcher as a predicate; a regex one needs the set of candidate values it matched
        (computed by ClickHouse's RE2 in :meth:`Source.predicates`), never Python's backtracking re."""
        if self.is_regex:
            if regex_matches is None:
                raise AssertionError("regex matchers are evaluated through Source.predicates")
            if self.op == "=~":
                return lambda s: s in regex_matches
            return lambda s: s not in regex_matches
        if self.op == "=":
            return lambda s: s == self.value
        return lambda s: s != self.value


_OPS = {"MatchOp.Equal": "=", "MatchOp.NotEqual": "!=", "MatchOp.Re": "=~", "MatchOp.NotRe": "!~"}


def matchers_of(vs: pp.VectorSelector) -> list[LabelMatcher]:
    if vs.matchers.or_matchers:
        raise BadRequest("unsupported: 'or' inside a selector")
    out = [LabelMatcher(m.name, _OPS[str(m.op)], m.value) for m in vs.matchers.matchers]
    if vs.name:
        out.append(LabelMatcher("__name__", "=", vs.name))
    for m in out:
        m.validate()
    if all(m.matches_empty() for m in out):
        raise BadRequest("vector selector must contain at least one non-empty matcher")
    return out


def _le_label_sets(rows: list[tuple[Any, ...]], bounds_col: int) -> list[dict[str, str]]:
    """Every `le` value the rows' histogram bounds produce, as label sets (for le matchers)."""
    les = {"+Inf"}
    for r in rows:
        les.update(format_le(float(b)) for b in r[bounds_col])
    return [{"le": v} for v in sorted(les)]


def labels_match(labels: dict[str, str], fns: list[tuple[str, Callable[[str], bool]]]) -> bool:
    return all(fn(labels.get(name, "")) for name, fn in fns)


# --- Storage access -------------------------------------------------------------------------------

@dataclass
class Samples:
    labels: dict[str, str]
    times: np.ndarray  # int64 ns, ascending
    values: np.ndarray  # float64
    counter: bool
    # Delta temporality: values are a running total from the window's start, not from the series'
    # start, so rate() must not extrapolate to a zero point that is only the window's edge.
    delta: bool = False


@dataclass
class Source:
    """Where and how samples are read for one query."""

    store: Store
    table: str
    lookback_ns: int
    request: Any = None
    max_series: int = 10_000
    # Pre-aggregate samples per bucket in ClickHouse when steps/ranges are coarse (see bucketed()).
    use_buckets: bool = True
    # Evaluate aggregations of the common shapes inside ClickHouse (promql_sql.py).
    pushdown: bool = True
    # Reuse the metric catalog other queries of the last CATALOG_TTL_S read for about the same window
    # (Store.remember; past that, for CATALOG_STALE_S more while it is read again in the background):
    # a 24-hour catalog scans every point's name and type, and a dashboard's panels ask for it again
    # and again. A selector whose metric is missing from a reused catalog reads it afresh, so a new
    # metric is never hidden.
    reuse_catalog: bool = False
    _catalog: dict[tuple[int, int], list[MetricInfo]] = field(default_factory=dict)
    _reused: bool = False
    # Histogram series whose bucket bounds changed in a window series() read, and each series' bounds.
    bounds_changed: set[int] = field(default_factory=set)
    bounds_of: dict[int, tuple[float, ...]] = field(default_factory=dict)

    def _p(self, **kw: Any) -> dict[str, Any]:
        if self.table != "otel_metrics":
            kw["table"] = self.table
        return kw

    def _kind(self) -> str:
        return "raw" if self.table == "otel_metrics" else "rollup"

    async def catalog(self, start_ns: int, end_ns: int, *, fresh: bool = False) -> list[MetricInfo]:
        key = (start_ns, end_ns)
        if key in self._catalog and not fresh:
            return self._catalog[key]
        shared = ("prom_catalog", self.table, start_ns // CATALOG_GRAIN_NS, end_ns // CATALOG_GRAIN_NS)

        async def read(request: Any = None) -> list[MetricInfo]:
            rows = await self.store.named(f"prom_catalog_{self._kind()}",
                                          self._p(start_ns=start_ns, end_ns=end_ns), request=request)
            infos = [MetricInfo(r[0], r[1], r[2], bool(r[3]), r[4] or "", r[5] or "", bool(r[6])) for r in rows]
            if self.reuse_catalog:
                self.store.remember(shared, infos, CATALOG_TTL_S, CATALOG_STALE_S)
            return infos

        hit = self.store.recall(shared) if self.reuse_catalog and not fresh else None
        if hit is None and self.reuse_catalog and not fresh:
            # Served a while past its time while a fresh one is read in the background.
            hit = self.store.recall(shared, stale=True)
            if hit is not None:
                self.store.refresh(shared, read)
        if hit is not None:
            self._reused = True
            self._catalog[key] = hit
            return list(hit)
        infos = await read(self.request)
        self._catalog[key] = infos
        return infos

    async def label_keys(self, names: list[str], start_ns: int, end_ns: int) -> list[tuple[Any, ...]]:
        """[(point attribute keys, whether a resource has service.instance.id)] of the metrics in a window."""
        return await self.store.named(f"prom_label_keys_{self._kind()}",
                                      self._p(names=names, start_ns=start_ns, end_ns=end_ns), request=self.request)

    async def predicates(self, matchers: list[LabelMatcher], label_sets: list[dict[str, str]]
                         ) -> list[tuple[str, Callable[[str], bool]]]:
        """Matchers as predicates over the given label sets' values (regexes run in ClickHouse)."""
        out = []
        for m in matchers:
            if not m.is_regex:
                out.append((m.name, m.compile()))
                continue
            values = sorted({lab.get(m.name, "") for lab in label_sets} | {""})
            rows = await self.store.named("regex_match", {"values": values, "pattern": f"^(?:{m.value})$"},
                                          request=self.request)
            out.append((m.name, m.compile(frozenset(r[0] for r in rows))))
        return out

    async def series(self, matchers: list[LabelMatcher], start_ns: int, end_ns: int
                     ) -> list[tuple[int, MetricInfo, str, dict[str, str]]]:
        """(series id, metric, family kind, labels incl. __name__) matching the selector."""
        wanted = await self._wanted(matchers, start_ns, end_ns, fresh=False)
        if not wanted and self._reused:
            wanted = await self._wanted(matchers, start_ns, end_ns, fresh=True)
        if not wanted:
            return []
        names = sorted(wanted)
        rows = await self.store.named(
            f"prom_series_{self._kind()}", self._p(names=names, start_ns=start_ns, end_ns=end_ns), request=self.request,
        )
        cached = self.store.series_labels
        known = {int(r[0]): cached[int(r[0])] for r in rows if int(r[0]) in cached}
        for unseen in series_chunks({int(r[0]) for r in rows} - known.keys()):
            fetched = {int(sid): series_labels(service, resource, attrs)
                       for sid, service, resource, attrs in await self.store.named(
                           f"prom_series_labels_{self._kind()}",
                           self._p(names=names, series=unseen, start_ns=start_ns, end_ns=end_ns),
                           request=self.request)}
            self.store.keep_series_labels(fetched)
            known |= fetched
        candidates = []
        for sid, metric, service, changed, bounds in rows:
            if changed:
                self.bounds_changed.add(int(sid))
            self.bounds_of[int(sid)] = tuple(bounds)
            base = known[int(sid)]  # both read the same window: every series has its labels
            for info, prom_name, kind in wanted.get(metric, []):
                candidates.append((int(sid), info, kind, {"__name__": prom_name, **base}))
        # `le` is matched per bucket bound later, once the bounds are read.
        fns = await self.predicates([m for m in matchers if m.name != "le"], [c[3] for c in candidates])
        out = []
        for sid, info, kind, labels in candidates:
            if labels_match(labels, fns):
                out.append((sid, info, kind, labels))
        if len(out) > self.max_series:
            raise Unprocessable(f"selector matches more than {self.max_series} series")
        return out

    async def _wanted(self, matchers: list[LabelMatcher], start_ns: int, end_ns: int, *, fresh: bool
                      ) -> dict[str, list[tuple[MetricInfo, str, str]]]:
        """OTel metric name -> (metric, Prometheus name, family kind) the name matchers select."""
        catalog = [(info, prom_name, kind) for info in await self.catalog(start_ns, end_ns, fresh=fresh)
                   for prom_name, kind in info.families().items()]
        name_matchers = [m for m in matchers if m.name == "__name__"]
        name_fns = await self.predicates(name_matchers, [{"__name__": n} for _, n, _ in catalog])
        wanted: dict[str, list[tuple[MetricInfo, str, str]]] = {}
        for info, prom_name, kind in catalog:
            if all(f(prom_name) for _, f in name_fns):
                wanted.setdefault(info.otel_name, []).append((info, prom_name, kind))
        return wanted

    async def samples(self, matchers: list[LabelMatcher], start_ns: int, end_ns: int) -> list[Samples]:
        """Samples in (start, end] of every series the selector matches."""
        series = await self.series(matchers, start_ns, end_ns)
        if not series:
            return []
        names = sorted({info.otel_name for _, info, _, _ in series})
        bucket_s = BUCKET_S[self.table]
        params = self._p(names=names, start_ns=start_ns, end_ns=end_ns)
        if bucket_s:
            params["bucket_s"] = bucket_s
        rows: list[tuple[Any, ...]] = []
        for ids in series_chunks(sid for sid, _, _, _ in series):
            rows += await self.store.named(f"prom_points_{self._kind()}", params | {"series": ids}, request=self.request)
        by_sid: dict[int, list[tuple[Any, ...]]] = {}
        for r in rows:
            by_sid.setdefault(int(r[0]), []).append(r)
        fns = await self.predicates([m for m in matchers if m.name == "le"], _le_label_sets(rows, 6))
        out: list[Samples] = []
        for sid, info, kind, labels in series:
            pts = by_sid.get(sid, [])
            if not pts:
                continue
            # A point stored twice (a retried export) is one sample, as in Prometheus.
            pts = [p for i, p in enumerate(pts) if i == 0 or p[1] != pts[i - 1][1]]
            times = np.fromiter((p[1] for p in pts), dtype=np.int64, count=len(pts))
            delta = info.temporality == "Delta"
            if kind == "value":
                vals = np.fromiter((p[2] for p in pts), dtype=np.float64, count=len(pts))
                out.append(Samples(labels, times, np.cumsum(vals) if delta else vals, info.prom_type == "counter", delta))
            elif kind in ("count", "sum"):
                col = 3 if kind == "count" else 4
                vals = np.fromiter((float(p[col]) for p in pts), dtype=np.float64, count=len(pts))
                out.append(Samples(labels, times, np.cumsum(vals) if delta else vals, True, delta))
            else:
                out.extend(_bucket_series(labels, times, pts, delta, fns))
        return out


class NeedRaw(Exception):
    """The bucketed path cannot answer exactly (e.g. a histogram reset inside a bucket): read raw samples."""


@dataclass
class Buckets:
    """One Prometheus series pre-aggregated per bucket (dense arrays over bucket index 0..nb)."""

    labels: dict[str, str]
    n: np.ndarray
    t_first: np.ndarray
    t_last: np.ndarray
    v_first: np.ndarray
    v_last: np.ndarray
    v_sum: np.ndarray
    v_min: np.ndarray
    v_max: np.ndarray
    resets: np.ndarray
    exact_stats: bool  # sum/min/max are of the exposed values (not of deltas or histogram arrays)
    delta: bool = False  # as Samples.delta


async def bucketed(source: "Source", matchers: list[LabelMatcher], origin_ns: int, end_ns: int, w: int
                   ) -> list[Buckets]:
    """Series of the selector aggregated in ClickHouse per bucket of ``w`` ns from ``origin_ns``."""
    if source.table != "otel_metrics":
        raise NeedRaw()
    nb = (end_ns - origin_ns) // w
    if nb > 200_000:
        raise NeedRaw()
    series = await source.series(matchers, origin_ns, end_ns)
    if not series:
        return []
    names = sorted({info.otel_name for _, info, _, _ in series})
    rows: list[tuple[Any, ...]] = []
    for ids in series_chunks(sid for sid, _, _, _ in series):
        rows += await source.store.named("prom_buckets_raw", {
            "names": names, "series": ids, "origin_ns": origin_ns, "end_ns": end_ns, "bucket_ns": w,
        }, request=source.request)
    by_sid: dict[int, list[tuple[Any, ...]]] = {}
    for r in rows:
        by_sid.setdefault(int(r[0]), []).append(r)
    fns = await source.predicates([m for m in matchers if m.name == "le"], _le_label_sets(rows, 22))
    out: list[Buckets] = []
    for sid, info, kind, labels in series:
        pts = by_sid.get(sid)
        if not pts:
            continue
        delta = info.temporality == "Delta"
        idx = np.fromiter((int(p[1]) for p in pts), dtype=np.int64, count=len(pts))
        ok = (idx >= 0) & (idx <= nb)
        pts = [p for p, good in zip(pts, ok) if good]
        idx = idx[ok]

        def dense(col: int) -> np.ndarray:
            a = np.full(nb + 1, np.nan)
            a[idx] = np.fromiter((float(p[col]) for p in pts), dtype=np.float64, count=len(pts))
            return a

        n = np.zeros(nb + 1)
        n[idx] = [p[2] for p in pts]
        t_first, t_last = dense(3), dense(4)
        if kind == "bucket":
            if any(p[14] > 0 for p in pts):
                raise NeedRaw()  # a histogram reset inside a bucket: per-bound corrections unknown
            out.extend(_bucketed_le(labels, pts, idx, nb, n, t_first, t_last, delta, fns))
            continue
        cols = {"value": (5, 6, 7, 8, 9, 10), "count": (11, 12, 13, None, None, 14),
                "sum": (15, 16, 17, None, None, 18)}[kind]
        v_first, v_last, v_sum = dense(cols[0]), dense(cols[1]), dense(cols[2])
        v_min = dense(cols[3]) if cols[3] is not None else np.full(nb + 1, np.nan)
        v_max = dense(cols[4]) if cols[4] is not None else np.full(nb + 1, np.nan)
        resets = np.nan_to_num(dense(cols[5]))
        exact = kind == "value" and not delta
        if delta:
            # Deltas become a running total: at a bucket's end, everything summed so far.
            prefix = np.cumsum(np.nan_to_num(v_sum))
            before = np.concatenate([[0.0], prefix[:-1]])
            v_first, v_last = before + v_first, prefix.copy()
            resets = np.zeros(nb + 1)
        out.append(Buckets(labels, n, t_first, t_last, v_first, v_last, v_sum, v_min, v_max, resets, exact, delta))
    return out


def _bucketed_le(labels: dict[str, str], pts: list[tuple[Any, ...]], idx: np.ndarray, nb: int, n: np.ndarray,
                 t_first: np.ndarray, t_last: np.ndarray, delta: bool,
                 fns: list[tuple[str, Callable[[str], bool]]]) -> list[Buckets]:
    bounds = None
    for p in pts:
        pb = [float(b) for b in p[22]]
        if bounds is None:
            bounds = pb
        elif pb != bounds:
            raise NeedRaw()  # bounds changed within the window
    assert bounds is not None
    allb = bounds + [math.inf]
    k = len(allb)

    def matrix(col: int) -> np.ndarray:
        m = np.full((nb + 1, k), np.nan)
        for i, p in zip(idx, pts):
            arr = list(p[col])
            if len(arr) != k:
                raise NeedRaw()
            m[i] = np.cumsum(np.asarray(arr, dtype=np.float64))
        return m

    first, last = matrix(19), matrix(20)
    if delta:
        sums = np.nan_to_num(matrix(21))
        prefix = np.cumsum(sums, axis=0)
        before = np.vstack([np.zeros((1, k)), prefix[:-1]])
        first, last = before + np.nan_to_num(first), prefix
        empty = n == 0
        first[empty], last[empty] = np.nan, np.nan
    out = []
    nan = np.full(nb + 1, np.nan)
    for j, b in enumerate(allb):
        lab = {**labels, "le": format_le(b)}
        if labels_match(lab, fns):
            out.append(Buckets(lab, n, t_first, t_last, first[:, j], last[:, j], nan, nan, nan, np.zeros(nb + 1),
                               False, delta))
    return out


def _bucket_series(labels: dict[str, str], times: np.ndarray, pts: list[tuple[Any, ...]], delta: bool,
                   fns: list[tuple[str, Callable[[str], bool]]]) -> list[Samples]:
    """`_bucket{le=...}` series from BucketCounts/ExplicitBounds: cumulative counts per upper bound."""
    bounds_set: dict[float, None] = {}
    for p in pts:
        for b in p[6]:
            bounds_set[float(b)] = None
    bounds = sorted(bounds_set) + [math.inf]
    matrix = np.full((len(pts), len(bounds)), np.nan)
    for i, p in enumerate(pts):
        counts, pb = list(p[5]), [float(b) for b in p[6]] + [math.inf]
        if len(counts) != len(pb):
            continue  # malformed point: no buckets rather than wrong ones
        cum = np.cumsum(np.asarray(counts, dtype=np.float64))
        for b, c in zip(pb, cum):
            matrix[i, bounds.index(b)] = c
    if delta:
        matrix = np.nancumsum(matrix, axis=0)
    out = []
    for j, b in enumerate(bounds):
        lab = {**labels, "le": format_le(b)}
        if not labels_match(lab, fns):
            continue
        col = matrix[:, j]
        keep = ~np.isnan(col)
        out.append(Samples(lab, times[keep], col[keep], True, delta))
    return out


# --- Evaluation -----------------------------------------------------------------------------------

Labels = dict[str, str]


@dataclass
class Vector:
    series: list[tuple[Labels, np.ndarray]]  # values per step, NaN = absent


@dataclass
class Scalar:
    values: np.ndarray


@dataclass
class Matrix:
    """Only as the top-level result of an instant query over a range selector."""

    series: list[Samples]


# A NaN that is a value (sqrt(-1), x * NaN, a NaN sample) rather than "no sample at this step", which
# the per-step arrays write as the plain NaN: a quiet NaN with its own payload. An operation that may
# make a NaN computes which steps have both operands (present()) and marks its NaN results there
# (keep_nan()); the API renders it as "NaN". Aggregations and range functions still skip it as they
# skip an absent sample (docs/promql.md).
VALUE_NAN_BITS = 0x7FF8_0000_0000_0BAD
VALUE_NAN = float(np.array([VALUE_NAN_BITS], dtype=np.uint64).view(np.float64)[0])


def is_value_nan(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).view(np.uint64) == VALUE_NAN_BITS


def present(x: np.ndarray) -> np.ndarray:
    """Steps holding a value (a value NaN included)."""
    return ~np.isnan(x) | is_value_nan(x)


def keep_nan(res: np.ndarray, where: np.ndarray) -> np.ndarray:
    """``res`` at the ``where`` steps (its NaNs there as value NaNs), absent elsewhere."""
    out = np.where(where, res, np.nan)
    out[where & np.isnan(res)] = VALUE_NAN
    return out


def scalar_values(x: np.ndarray) -> np.ndarray:
    """A scalar's values as step values: a scalar is never absent, so its NaN is a value NaN."""
    return np.where(np.isnan(x), VALUE_NAN, x)


# Prometheus' stale marker: a NaN with payload 2, written when a series stops (remote write). It
# ends instant selection at once (a NaN is no sample there) and is no sample of a range window.
STALE_NAN_BITS = 0x7FF0000000000002


def _without_stale(s: Samples) -> Samples:
    stale = s.values.view(np.uint64) == STALE_NAN_BITS
    if not stale.any():
        return s
    keep = ~stale
    return Samples(s.labels, s.times[keep], s.values[keep], s.counter, s.delta)


def _key(labels: Labels) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def _drop_name(labels: Labels) -> Labels:
    return {k: v for k, v in labels.items() if k != "__name__"}


def _td(d: Any) -> int:
    return int(round(d.total_seconds() * NS)) if d is not None else 0


class Evaluator:
    def __init__(self, source: Source, steps: np.ndarray, step_ns: int = 0) -> None:
        self.source = source
        self.steps = steps  # int64 ns
        self.step_ns = step_ns  # 0 for an instant query

    async def eval(self, e: Any) -> Vector | Scalar | Matrix:
        if isinstance(e, pp.NumberLiteral):
            return Scalar(np.full(len(self.steps), float(e.val)))
        if isinstance(e, pp.ParenExpr):
            return await self.eval(e.expr)
        if isinstance(e, pp.UnaryExpr):
            v = await self.eval(e.expr)
            if isinstance(v, Scalar):
                return Scalar(-v.values)  # a scalar has no absent steps
            if isinstance(v, Vector):
                return Vector([(_drop_name(lab), keep_nan(-vals, present(vals))) for lab, vals in v.series])
            raise BadRequest("unary minus needs a scalar or instant vector")
        if isinstance(e, pp.VectorSelector):
            return await self.selector(e)
        if isinstance(e, pp.MatrixSelector):
            raise BadRequest("a range vector must be an argument of a function such as rate()")
        if isinstance(e, pp.Call):
            return await self.call(e)
        if isinstance(e, pp.AggregateExpr):
            return await self.aggregate(e)
        if isinstance(e, pp.BinaryExpr):
            return await self.binary(e)
        if isinstance(e, pp.StringLiteral):
            raise BadRequest("unsupported: string literal as an expression")
        if isinstance(e, pp.SubqueryExpr):
            raise BadRequest("a subquery's range vector must be an argument of a function such as max_over_time()")
        raise BadRequest(f"unsupported expression: {type(e).__name__}")

    def _check_at(self, vs: pp.VectorSelector) -> None:
        if vs.at is not None:
            raise BadRequest("unsupported: the @ modifier")

    async def _fetch(self, vs: pp.VectorSelector, window_ns: int) -> tuple[list[Samples], int]:
        self._check_at(vs)
        offset = _td(vs.offset)
        start = int(self.steps[0]) - offset - window_ns
        end = int(self.steps[-1]) - offset
        return await self.source.samples(matchers_of(vs), start, end), offset

    def _bucket_width(self, window_ns: int) -> int:
        """Bucket width for the pre-aggregated path, or 0 to read raw samples."""
        if self.source.table != "otel_metrics" or not self.source.use_buckets:
            return 0
        step = self.step_ns
        w = math.gcd(step, window_ns) if step else window_ns
        return w if w >= MIN_BUCKET_NS else 0

    async def selector(self, vs: pp.VectorSelector) -> Vector:
        lookback = self.source.lookback_ns
        w = self.step_ns if self.step_ns >= MIN_BUCKET_NS and self._bucket_width(self.step_ns) else 0
        if w:
            try:
                return await self._selector_buckets(vs, w, lookback)
            except NeedRaw:
                pass
        series, offset = await self._fetch(vs, lookback)
        out = []
        for s in series:
            idx, ok = self._latest(s, offset, lookback)
            vals = np.full(len(self.steps), np.nan)
            vals[ok] = s.values[idx[ok]]
            # A NaN sample is a value; a stale marker ends the series (absent).
            stale = vals.view(np.uint64) == STALE_NAN_BITS
            out.append((s.labels, keep_nan(vals, ok & ~stale)))
        return Vector(out)

    def _latest(self, s: Samples, offset: int, lookback: int) -> tuple[np.ndarray, np.ndarray]:
        """Per step, the index of the series' last sample in (t - lookback, t], and where there is one."""
        t = self.steps - offset
        idx = np.searchsorted(s.times, t, side="right") - 1
        ok = idx >= 0
        ok[ok] &= s.times[idx[ok]] > t[ok] - lookback
        return idx, ok

    async def _selector_buckets(self, vs: pp.VectorSelector, w: int, lookback: int) -> Vector:
        self._check_at(vs)
        offset = _td(vs.offset)
        k0 = -(-lookback // w)
        origin = int(self.steps[0]) - offset - k0 * w
        end = int(self.steps[-1]) - offset
        out = []
        for b in await bucketed(self.source, matchers_of(vs), origin, end, w):
            hi = k0 + np.arange(len(self.steps))  # bucket ending exactly at each step
            prv = _last_nonempty(b.n)
            li = prv[hi]
            t = self.steps - offset
            ok = li >= 0
            safe = np.where(ok, li, 0)
            ok &= b.t_last[safe] > t - lookback
            out.append((b.labels, keep_nan(b.v_last[safe], ok)))
        return Vector(out)

    async def _range_buckets(self, name: str, ms: pp.MatrixSelector, w: int) -> Vector:
        vs = ms.vector_selector
        self._check_at(vs)
        rng, offset = _td(ms.range), _td(vs.offset)
        origin = int(self.steps[0]) - offset - rng
        end = int(self.steps[-1]) - offset
        ratio, stride = rng // w, (self.step_ns // w if self.step_ns else 0)
        out = []
        for b in await bucketed(self.source, matchers_of(vs), origin, end, w):
            if name in ("sum_over_time", "avg_over_time", "min_over_time", "max_over_time") and not b.exact_stats:
                raise NeedRaw()
            hi = ratio + stride * np.arange(len(self.steps))
            lo = hi - ratio
            ends = self.steps - offset
            vals = _combine_buckets(name, b, lo, hi, ends - rng, ends)
            out.append((b.labels if name == "last_over_time" else _drop_name(b.labels), vals))
        return Vector(out)

    async def range_samples(self, ms: pp.MatrixSelector) -> tuple[list[Samples], int, int]:
        rng = _td(ms.range)
        if rng <= 0:
            raise BadRequest("range must be positive")
        # A rollup holds one sample per bucket: a window shorter than two buckets would never hold the
        # two samples rate() needs, so it is widened to the data's resolution (as Grafana's
        # $__rate_interval does for a scrape interval).
        rng = max(rng, 2 * BUCKET_S[self.source.table] * NS)
        series, offset = await self._fetch(ms.vector_selector, rng)
        return [_without_stale(s) for s in series], rng, offset

    def _windows(self, s: Samples, rng: int, offset: int) -> tuple[np.ndarray, np.ndarray]:
        t = self.steps - offset
        lo = np.searchsorted(s.times, t - rng, side="right")
        hi = np.searchsorted(s.times, t, side="right")
        return lo, hi

    async def _range_input(self, arg: Any, fn: str) -> tuple[list[Samples], int, int]:
        """The samples, range and offset of a range function's argument: a range selector or a
        subquery (evaluated at its own steps; each step's value is a sample)."""
        if isinstance(arg, pp.MatrixSelector):
            return await self.range_samples(arg)
        if isinstance(arg, pp.SubqueryExpr):
            return await self.subquery(arg)
        raise BadRequest(f"{fn}() expects a range vector such as x[5m] or a subquery")

    async def subquery(self, sq: pp.SubqueryExpr) -> tuple[list[Samples], int, int]:
        if sq.at is not None:
            raise BadRequest("unsupported: the @ modifier")
        rng, offset = _td(sq.range), _td(sq.offset)
        # Without a step, Prometheus uses the global evaluation interval (1m by default), not the query's.
        step = _td(sq.step) or SUBQUERY_DEFAULT_STEP_NS
        if rng <= 0 or step <= 0:
            raise BadRequest("subquery range and step must be positive")
        # Prometheus evaluates the inner expression at absolute multiples of its step.
        first = int(self.steps[0]) - offset - rng
        last = int(self.steps[-1]) - offset
        grid = np.arange(-(-first // step) * step, last + 1, step, dtype=np.int64)
        if len(grid) > 11_000 * max(1, len(self.steps)) or len(grid) > 1_000_000:
            raise Unprocessable("subquery has too many steps")
        if not len(grid):
            return [], rng, offset
        inner = Evaluator(self.source, grid, step)
        v = await inner.eval(sq.expr)
        if isinstance(v, Scalar):
            v = Vector([({}, v.values)])
        if not isinstance(v, Vector):
            raise BadRequest("a subquery needs a scalar or instant vector expression")
        out = []
        for lab, vals in v.series:
            keep = ~np.isnan(vals)
            if keep.any():
                out.append(Samples(lab, grid[keep], vals[keep], False))
        return out, rng, offset

    async def call(self, c: pp.Call) -> Vector | Scalar:
        name = c.func.name
        args = list(c.args)
        if name in _RANGE_FUNCS:
            if len(args) != 1:
                raise BadRequest(f"{name}() expects a range vector such as x[5m]")
            if isinstance(args[0], pp.MatrixSelector):
                w = self._bucket_width(_td(args[0].range)) if name != "irate" else 0
                if w and _td(args[0].range) > 0:
                    try:
                        return await self._range_buckets(name, args[0], w)
                    except NeedRaw:
                        pass
            series, rng, offset = await self._range_input(args[0], name)
            out = []
            for s in series:
                lo, hi = self._windows(s, rng, offset)
                ends = self.steps - offset
                vals = _range_vectorized(name, s, lo, hi, ends - rng, ends)
                keep_name = name == "last_over_time"
                out.append((s.labels if keep_name else _drop_name(s.labels), vals))
            return Vector(out)
        if name in fx.RANGE_EXTRA:
            return await self._range_extra(name, args)
        if name in fx.DATE_FUNCS:
            if args:
                v = await self._vector_arg(args[0], name)
            else:
                v = Vector([({}, self.steps / NS)])
            return Vector([(_drop_name(lab), fx.date_function(name, vals)) for lab, vals in v.series])
        if name == "timestamp":
            return await self._timestamp(args[0])
        if name in ("label_replace", "label_join"):
            return await self._label_fn(name, args)
        if name in fx.MATH_EXTRA:
            v = await self._vector_arg(args[0], name)
            with np.errstate(all="ignore"):
                return Vector([(_drop_name(lab), keep_nan(fx.MATH_EXTRA[name](vals), present(vals)))
                               for lab, vals in v.series])
        if name in ("sort", "sort_desc"):
            # Order matters only for instant queries; the API renders a vector in label order.
            return await self._vector_arg(args[0], name)
        if name == "pi":
            return Scalar(np.full(len(self.steps), math.pi))
        if name == "clamp":
            v = await self._vector_arg(args[0], name)
            lo_s, hi_s = await self.eval(args[1]), await self.eval(args[2])
            if not isinstance(lo_s, Scalar) or not isinstance(hi_s, Scalar):
                raise BadRequest("clamp(vector, scalar, scalar)")
            empty = lo_s.values > hi_s.values
            with np.errstate(all="ignore"):
                return Vector([(_drop_name(lab), np.where(empty, np.nan, np.minimum(np.maximum(vals, lo_s.values),
                                                                                    hi_s.values)))
                               for lab, vals in v.series])
        if name == "round" and len(args) == 2:
            v = await self._vector_arg(args[0], name)
            to = await self.eval(args[1])
            if not isinstance(to, Scalar):
                raise BadRequest("round(vector, scalar)")
            with np.errstate(all="ignore"):
                inv = 1.0 / to.values
                return Vector([(_drop_name(lab), np.floor(vals * inv + 0.5) / inv) for lab, vals in v.series])
        if name == "histogram_quantile":
            q = await self.eval(args[0])
            hv = await self.eval(args[1])
            if not isinstance(q, Scalar) or not isinstance(hv, Vector):
                raise BadRequest("histogram_quantile(scalar, instant vector)")
            return _histogram_quantile(q.values, hv, len(self.steps))
        if name in _MATH:
            v = await self._vector_arg(args[0], name)
            with np.errstate(all="ignore"):
                return Vector([(_drop_name(lab), keep_nan(_MATH[name](vals), present(vals))) for lab, vals in v.series])
        if name in ("clamp_min", "clamp_max"):
            v = await self._vector_arg(args[0], name)
            b = await self.eval(args[1])
            if not isinstance(b, Scalar):
                raise BadRequest(f"{name}(vector, scalar)")
            f = np.maximum if name == "clamp_min" else np.minimum
            return Vector([(_drop_name(lab), f(vals, b.values)) for lab, vals in v.series])
        if name == "vector":
            sc = await self.eval(args[0])
            if not isinstance(sc, Scalar):
                raise BadRequest("vector(scalar)")
            return Vector([({}, sc.values.copy())])
        if name == "scalar":
            v = await self._vector_arg(args[0], name)
            vals = np.full(len(self.steps), np.nan)
            if len(v.series) == 1:
                vals = v.series[0][1].copy()
            elif v.series:
                holding = np.sum([present(x) for _, x in v.series], axis=0)
                only = holding == 1
                stacked = np.vstack([x for _, x in v.series])
                vals[only] = np.nansum(stacked[:, only], axis=0)
            return Scalar(vals)
        if name == "time":
            return Scalar(self.steps / NS)
        if name == "absent":
            v = await self._vector_arg(args[0], name)
            seen = np.zeros(len(self.steps), dtype=bool)
            for _, vals in v.series:
                seen |= present(vals)
            labels: Labels = {}
            if isinstance(args[0], pp.VectorSelector):
                labels = {m.name: m.value for m in matchers_of(args[0]) if m.op == "=" and m.name != "__name__"}
            return Vector([(labels, np.where(seen, np.nan, 1.0))])
        raise BadRequest(f"unsupported function: {name}()")

    async def _range_extra(self, name: str, args: list[Any]) -> Vector:
        where = fx.RANGE_EXTRA[name]
        want = 2 if where else 1
        if len(args) != want:
            raise BadRequest(f"{name}() expects {want} argument(s)")
        rng_arg = args[1] if where == "first" else args[0]
        param: np.ndarray | None = None
        if where:
            p = await self.eval(args[0] if where == "first" else args[1])
            if not isinstance(p, Scalar):
                raise BadRequest(f"{name}(): the parameter must be a scalar")
            param = p.values
        series, rng, offset = await self._range_input(rng_arg, name)
        if name == "absent_over_time":
            seen = np.zeros(len(self.steps), dtype=bool)
            for s in series:
                lo, hi = self._windows(s, rng, offset)
                seen |= hi > lo
            labels: Labels = {}
            if isinstance(rng_arg, pp.MatrixSelector):
                labels = {m.name: m.value for m in matchers_of(rng_arg.vector_selector)
                          if m.op == "=" and m.name != "__name__"}
            return Vector([(labels, np.where(seen, np.nan, 1.0))])
        out = []
        for s in series:
            lo, hi = self._windows(s, rng, offset)
            with np.errstate(all="ignore"):
                # The regression's intercept is at the evaluation time, as in Prometheus.
                vals = fx.range_extra(name, s.times, s.values, lo, hi, self.steps, param)
            out.append((_drop_name(s.labels), vals))
        return Vector(out)

    async def _timestamp(self, arg: Any) -> Vector:
        """timestamp(): a selector's sample times; any other expression's evaluation times."""
        inner = arg
        while isinstance(inner, pp.ParenExpr):
            inner = inner.expr
        if isinstance(inner, pp.VectorSelector):
            lookback = self.source.lookback_ns
            series, offset = await self._fetch(inner, lookback)
            out = []
            for s in series:
                idx, ok = self._latest(s, offset, lookback)
                vals = np.full(len(self.steps), np.nan)
                ok[ok] &= ~np.isnan(s.values[idx[ok]])
                vals[ok] = np.round(s.times[idx[ok]] / 1e6) / 1e3
                out.append((_drop_name(s.labels), vals))
            return Vector(out)
        v = await self._vector_arg(arg, "timestamp")
        now = self.steps / NS
        return Vector([(_drop_name(lab), np.where(np.isnan(vals), np.nan, now)) for lab, vals in v.series])

    async def _label_fn(self, name: str, args: list[Any]) -> Vector:
        v = await self._vector_arg(args[0], name)
        strs = []
        for a in args[1:]:
            if not isinstance(a, pp.StringLiteral):
                raise BadRequest(f"{name}() expects string arguments after the vector")
            strs.append(str(a.val))
        if name == "label_replace":
            if len(strs) != 4:
                raise BadRequest("label_replace(vector, dst, replacement, src, regex)")
            dst, repl, src, regex = strs
            fx.check_label_name(dst, name)
            try:
                groups = re.compile(regex).groups
            except re.error as e:
                raise BadRequest(f"invalid regular expression in label_replace(): {e}") from None
            values = sorted({lab.get(src, "") for lab, _ in v.series})
            rows = await self.source.store.named("prom_label_replace", {
                "values": values, "pattern": f"^(?:{regex})$",
                "replacement": fx.go_replacement_to_re2(repl, groups)}, request=self.source.request) if values else []
            replaced = {r[0]: r[2] for r in rows if r[1]}
            out = []
            for lab, vals in v.series:
                sv = lab.get(src, "")
                if sv in replaced:
                    lab = {k: val for k, val in lab.items() if k != dst}
                    if replaced[sv]:
                        lab[dst] = replaced[sv]
                out.append((lab, vals))
        else:
            if len(strs) < 2:
                raise BadRequest("label_join(vector, dst, separator, src...)")
            dst, sep, srcs = strs[0], strs[1], strs[2:]
            fx.check_label_name(dst, name)
            for src_name in srcs:
                fx.check_label_name(src_name, name, "source")
            out = [(fx.label_join(lab, dst, sep, srcs), vals) for lab, vals in v.series]
        _check_unique(out)
        return Vector(out)

    async def _vector_arg(self, e: Any, fn: str) -> Vector:
        v = await self.eval(e)
        if not isinstance(v, Vector):
            raise BadRequest(f"{fn}() expects an instant vector")
        return v

    async def aggregate(self, a: pp.AggregateExpr) -> Vector:
        if self.source.pushdown:
            pushed = await promql_sql.aggregate(self, a)
            if pushed is not None:
                return pushed
        op = str(a.op)
        v = await self._vector_arg(a.expr, op)
        by, labels = True, []
        if a.modifier is not None:
            by = "Without" not in str(a.modifier.type)
            labels = list(a.modifier.labels)

        def group_labels(lab: Labels) -> Labels:
            if by:
                return {k: lab[k] for k in labels if k in lab}
            return {k: val for k, val in lab.items() if k not in labels and k != "__name__"}

        if op in ("topk", "bottomk"):
            k = await self.eval(a.param)
            if not isinstance(k, Scalar):
                raise BadRequest(f"{op}(k, vector): k must be a scalar")
            return _topk(v, group_labels, k.values, op == "topk")
        if op == "count_values":
            if not isinstance(a.param, pp.StringLiteral):
                raise BadRequest("count_values(label, vector): label must be a string")
            target = str(a.param.val)
            fx.check_label_name(target, "count_values", "")
            return _count_values(v, group_labels, target, len(self.steps))
        q: np.ndarray | None = None
        if op == "quantile":
            qs = await self.eval(a.param)
            if not isinstance(qs, Scalar):
                raise BadRequest("quantile(q, vector): q must be a scalar")
            q = qs.values
        if op not in _AGGS and op != "quantile":
            raise BadRequest(f"unsupported aggregation: {op}")
        groups: dict[tuple[tuple[str, str], ...], tuple[Labels, list[np.ndarray]]] = {}
        for lab, vals in v.series:
            g = group_labels(lab)
            groups.setdefault(_key(g), (g, []))[1].append(vals)
        out = []
        for g, members in groups.values():
            stacked = np.vstack(members)
            # Aggregations skip a value NaN as an absent sample (docs/promql.md).
            held = ~np.isnan(stacked)
            any_present = held.any(axis=0)
            with np.errstate(all="ignore"):
                vals = fx.agg_quantile(q, stacked, held) if q is not None else _AGGS[op](stacked, held)
            vals = np.where(any_present, vals, np.nan)
            out.append((g, vals))
        return Vector(out)

    async def binary(self, b: pp.BinaryExpr) -> Vector | Scalar:
        op = str(b.op)
        mod = b.modifier
        return_bool = bool(mod.return_bool) if mod is not None else False
        card = str(mod.card) if mod is not None and mod.card is not None else "OneToOne"
        if op not in ("and", "or", "unless") and "ManyToMany" in card:
            raise BadRequest("many-to-many matching is only for set operators")
        lhs, rhs = await self.eval(b.lhs), await self.eval(b.rhs)
        if isinstance(lhs, Matrix) or isinstance(rhs, Matrix):
            raise BadRequest("binary operators need scalars or instant vectors")
        if op in ("and", "or", "unless"):
            if not isinstance(lhs, Vector) or not isinstance(rhs, Vector):
                raise BadRequest(f"set operator {op} needs two instant vectors")
            return _set_op(op, lhs, rhs, _matching(mod))
        if op not in _ARITH and op not in _CMP:
            raise BadRequest(f"unsupported operator: {op}")
        if isinstance(lhs, Scalar) and isinstance(rhs, Scalar):
            if op in _CMP and not return_bool:
                raise BadRequest("comparisons between scalars must use the bool modifier")
            return Scalar(_apply(op, scalar_values(lhs.values), scalar_values(rhs.values), True))
        if isinstance(lhs, Vector) and isinstance(rhs, Scalar):
            return Vector([_vs(op, lab, vals, rhs.values, return_bool, left=True) for lab, vals in lhs.series])
        if isinstance(lhs, Scalar) and isinstance(rhs, Vector):
            return Vector([_vs(op, lab, vals, lhs.values, return_bool, left=False) for lab, vals in rhs.series])
        assert isinstance(lhs, Vector) and isinstance(rhs, Vector)
        on, names = _matching(mod)
        if "ManyToOne" in card or "OneToMany" in card:
            return _group_binary(op, lhs, rhs, on, names, list(mod.group_labels or []) if mod is not None else [], "OneToMany" in card,
                                 return_bool)
        right: dict[tuple[tuple[str, str], ...], np.ndarray] = {}
        for lab, vals in rhs.series:
            sig = _key(_signature(lab, on, names))
            if sig in right:
                raise Unprocessable("many-to-many matching not allowed: matching labels must be unique on one side")
            right[sig] = vals
        out = []
        seen: set[tuple[tuple[str, str], ...]] = set()
        for lab, vals in lhs.series:
            sig = _key(_signature(lab, on, names))
            if sig not in right:
                continue
            if sig in seen:
                raise Unprocessable("many-to-many matching not allowed: matching labels must be unique on one side")
            seen.add(sig)
            res = _apply(op, vals, right[sig], return_bool)
            filtering = op in _CMP and not return_bool
            if filtering:
                res = np.where(res == 1.0, vals, np.nan)
            # Prometheus' resultMetric: the name goes for arithmetic and bool; on() keeps only its
            # labels, ignoring() drops its labels.
            result_labels = dict(lab) if filtering else _drop_name(lab)
            if on:
                result_labels = {k: v for k, v in result_labels.items() if k in names}
            else:
                result_labels = {k: v for k, v in result_labels.items() if k not in names}
            out.append((result_labels, res))
        return Vector(out)


def _matching(mod: Any) -> tuple[bool, list[str]]:
    if mod is None or mod.matching is None:
        return False, []
    text = str(mod.matching)
    return text.strip().startswith("on"), list(mod.matching.labels)


def _signature(lab: Labels, on: bool, names: list[str]) -> Labels:
    if on:
        return {k: lab[k] for k in names if k in lab}
    return {k: v for k, v in lab.items() if k not in names and k != "__name__"}


def _group_binary(op: str, lhs: Vector, rhs: Vector, on: bool, names: list[str], include: list[str],
                  right_many: bool, return_bool: bool) -> Vector:
    """group_left (many on the left) / group_right: each series of the "many" side matches one of
    the "one" side per step; the result keeps the many side's labels (no __name__ for arithmetic
    and bool) plus the ``include`` labels taken from the one side (Prometheus' VectorBinop)."""
    many, one = (rhs, lhs) if right_many else (lhs, rhs)
    ones: dict[tuple[tuple[str, str], ...], list[tuple[Labels, np.ndarray]]] = {}
    for lab, vals in one.series:
        ones.setdefault(_key(_signature(lab, on, names)), []).append((lab, vals))
    for members in ones.values():
        if len(members) > 1 and (np.sum([~np.isnan(v) for _, v in members], axis=0) > 1).any():
            raise Unprocessable("many-to-many matching not allowed: matching labels must be unique on one side")
    filtering = op in _CMP and not return_bool
    out: dict[tuple[tuple[str, str], ...], tuple[Labels, np.ndarray]] = {}
    for lab, vals in many.series:
        for olab, ovals in ones.get(_key(_signature(lab, on, names)), []):
            lv, rv = (ovals, vals) if right_many else (vals, ovals)
            res = _apply(op, lv, rv, return_bool)
            if filtering:
                res = np.where(res == 1.0, lv, np.nan)
            result = dict(lab) if filtering else _drop_name(lab)
            for ln in include:
                if olab.get(ln):
                    result[ln] = olab[ln]
                else:
                    result.pop(ln, None)
            k = _key(result)
            if k in out:
                prev = out[k][1]
                if (~np.isnan(prev) & ~np.isnan(res)).any():
                    raise Unprocessable("multiple matches for labels: grouping labels must ensure unique matches")
                res = np.where(np.isnan(prev), res, prev)
            out[k] = (result, res)
    return Vector(list(out.values()))


def _count_values(v: Vector, group_labels: Callable[[Labels], Labels], target: str, steps: int) -> Vector:
    """count_values: per group and step, how many series have each value (as a label)."""
    out: dict[tuple[tuple[str, str], ...], tuple[Labels, np.ndarray]] = {}
    for lab, vals in v.series:
        g = group_labels(lab)
        for j in np.nonzero(~np.isnan(vals))[0]:
            glab = {**g, target: format_value(float(vals[j]))}
            k = _key(glab)
            if k not in out:
                out[k] = (glab, np.full(steps, np.nan))
            arr = out[k][1]
            arr[j] = 1.0 if math.isnan(arr[j]) else arr[j] + 1.0
    return Vector(list(out.values()))


def _check_unique(series: list[tuple[Labels, np.ndarray]]) -> None:
    """A vector cannot hold two series with one label set at one step (label_replace/label_join)."""
    seen: dict[tuple[tuple[str, str], ...], np.ndarray] = {}
    for lab, vals in series:
        k = _key(lab)
        held = present(vals)
        if k in seen and (seen[k] & held).any():
            raise Unprocessable("vector cannot contain metrics with the same labelset")
        seen[k] = seen.get(k, np.zeros(len(vals), dtype=bool)) | held


def _set_op(op: str, lhs: Vector, rhs: Vector, matching: tuple[bool, list[str]]) -> Vector:
    on, names = matching
    n = len(lhs.series[0][1]) if lhs.series else (len(rhs.series[0][1]) if rhs.series else 0)
    rpresent: dict[tuple[tuple[str, str], ...], np.ndarray] = {}
    for lab, vals in rhs.series:
        sig = _key(_signature(lab, on, names))
        rpresent[sig] = rpresent.get(sig, np.zeros(n, dtype=bool)) | present(vals)
    out = []
    lpresent: dict[tuple[tuple[str, str], ...], np.ndarray] = {}
    for lab, vals in lhs.series:
        sig = _key(_signature(lab, on, names))
        lpresent[sig] = lpresent.get(sig, np.zeros(n, dtype=bool)) | present(vals)
        r = rpresent.get(sig, np.zeros(n, dtype=bool))
        if op == "and":
            out.append((lab, np.where(r, vals, np.nan)))
        elif op == "unless":
            out.append((lab, np.where(r, np.nan, vals)))
        else:
            out.append((lab, vals))
    if op == "or":
        for lab, vals in rhs.series:
            sig = _key(_signature(lab, on, names))
            lp = lpresent.get(sig, np.zeros(n, dtype=bool))
            out.append((lab, np.where(lp, np.nan, vals)))
    return Vector(out)


_ARITH: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide, "%": np.fmod, "^": np.power,
}
_CMP: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "==": np.equal, "!=": np.not_equal, ">": np.greater, "<": np.less, ">=": np.greater_equal, "<=": np.less_equal,
}


def _apply(op: str, a: np.ndarray, b: np.ndarray, cmp_as_bool: bool) -> np.ndarray:
    both = present(a) & present(b)
    with np.errstate(all="ignore"):
        if op in _ARITH:
            return keep_nan(_ARITH[op](a, b), both)
        res = _CMP[op](a, b).astype(np.float64)
        return np.where(both, res, np.nan)


def _vs(op: str, lab: Labels, vals: np.ndarray, scalar: np.ndarray, return_bool: bool, *, left: bool
        ) -> tuple[Labels, np.ndarray]:
    scalar = scalar_values(scalar)
    a, b = (vals, scalar) if left else (scalar, vals)
    res = _apply(op, a, b, return_bool)
    if op in _CMP and not return_bool:
        return lab, np.where(res == 1.0, vals, np.nan)
    return _drop_name(lab), res


def _topk(v: Vector, group_labels: Callable[[Labels], Labels], k: np.ndarray, top: bool) -> Vector:
    if not v.series:
        return v
    groups: dict[tuple[tuple[str, str], ...], list[int]] = {}
    for i, (lab, _) in enumerate(v.series):
        groups.setdefault(_key(group_labels(lab)), []).append(i)
    stacked = np.vstack([vals for _, vals in v.series])
    keep = np.zeros_like(stacked, dtype=bool)
    for members in groups.values():
        for step in range(stacked.shape[1]):
            kk = int(k[step]) if not math.isnan(k[step]) else 0
            col = [(stacked[i, step], i) for i in members if not math.isnan(stacked[i, step])]
            col.sort(key=lambda x: x[0], reverse=top)
            for _, i in col[:max(kk, 0)]:
                keep[i, step] = True
    return Vector([(lab, np.where(keep[i], vals, np.nan)) for i, (lab, vals) in enumerate(v.series)])


def _agg_sum(x: np.ndarray, p: np.ndarray) -> np.ndarray:
    return np.nansum(x, axis=0)


def _agg_count(x: np.ndarray, p: np.ndarray) -> np.ndarray:
    return p.sum(axis=0).astype(np.float64)


def _agg_avg(x: np.ndarray, p: np.ndarray) -> np.ndarray:
    return np.nansum(x, axis=0) / p.sum(axis=0)


def _agg_min(x: np.ndarray, p: np.ndarray) -> np.ndarray:
    return np.nanmin(np.where(p, x, np.inf), axis=0)


def _agg_max(x: np.ndarray, p: np.ndarray) -> np.ndarray:
    return np.nanmax(np.where(p, x, -np.inf), axis=0)


def _agg_group(x: np.ndarray, p: np.ndarray) -> np.ndarray:
    return np.ones(x.shape[1])


_AGGS = {"sum": _agg_sum, "count": _agg_count, "avg": _agg_avg, "min": _agg_min, "max": _agg_max,
         "group": _agg_group, "stddev": fx.agg_stddev, "stdvar": fx.agg_stdvar}

_MATH: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    # round: half up, as Prometheus (numpy's rounds half to even).
    "abs": np.abs, "ceil": np.ceil, "floor": np.floor, "round": lambda x: np.floor(x + 0.5), "sqrt": np.sqrt,
    "exp": np.exp,
    "ln": np.log, "log2": np.log2, "log10": np.log10,
}


_RANGE_FUNCS = frozenset({
    "rate", "increase", "delta", "irate", "avg_over_time", "sum_over_time", "min_over_time", "max_over_time",
    "count_over_time", "last_over_time",
})


def _last_nonempty(n: np.ndarray) -> np.ndarray:
    """For each bucket index, the last non-empty bucket at or before it (-1 if none)."""
    return np.maximum.accumulate(np.where(n > 0, np.arange(len(n)), -1))


def _next_nonempty(n: np.ndarray) -> np.ndarray:
    """For each bucket index, the first non-empty bucket at or after it (len(n) if none)."""
    idx = np.where(n > 0, np.arange(len(n)), len(n))
    return np.minimum.accumulate(idx[::-1])[::-1]


def _combine_buckets(name: str, b: Buckets, lo: np.ndarray, hi: np.ndarray, starts: np.ndarray,
                     ends: np.ndarray) -> np.ndarray:
    """A range function per step from the buckets (lo, hi] of each step's window."""
    nb = len(b.n)
    cnt = np.concatenate([[0.0], np.cumsum(b.n)])
    count = cnt[hi + 1] - cnt[lo + 1]
    some = count > 0
    nxt = np.append(_next_nonempty(b.n), nb)
    prv = _last_nonempty(b.n)
    fi = np.where(some, nxt[np.minimum(lo + 1, nb)], 0)
    li = np.where(some, prv[hi], 0)
    fi = np.minimum(fi, nb - 1)
    if name in ("rate", "increase", "delta"):
        counter_fn = name != "delta"
        resets = np.zeros(len(lo))
        if counter_fn:
            # Drops inside buckets, plus drops between consecutive non-empty buckets.
            r_in = np.concatenate([[0.0], np.cumsum(b.resets)])
            prev_last = np.where(prv > 0, b.v_last[np.maximum(np.concatenate([[-1], prv[:-1]]), 0)], np.nan)
            prev_idx = np.concatenate([[-1], prv[:-1]])
            boundary = np.where((b.n > 0) & (prev_idx >= 0) & (b.v_first < prev_last), prev_last, 0.0)
            bd = np.concatenate([[0.0], np.cumsum(np.nan_to_num(boundary))])
            resets = (r_in[hi + 1] - r_in[lo + 1]) + (bd[hi + 1] - bd[fi + 1])
        return _extrapolate(name, b.v_first[fi], b.v_last[li], b.t_first[fi], b.t_last[li], count, resets,
                            starts, ends, some, from_zero=not b.delta)
    if name == "count_over_time":
        return np.where(some, count, np.nan)
    if name == "last_over_time":
        return np.where(some, b.v_last[li], np.nan)
    csum = np.concatenate([[0.0], np.cumsum(np.nan_to_num(b.v_sum))])
    total = csum[hi + 1] - csum[lo + 1]
    if name == "sum_over_time":
        return np.where(some, total, np.nan)
    if name == "avg_over_time":
        with np.errstate(all="ignore"):
            return np.where(some, total / count, np.nan)
    out = np.full(len(lo), np.nan)
    src, fn = (b.v_min, np.nanmin) if name == "min_over_time" else (b.v_max, np.nanmax)
    for i in np.nonzero(some)[0]:
        out[i] = fn(src[lo[i] + 1:hi[i] + 1])
    return out


def _extrapolate(name: str, v0: np.ndarray, v1: np.ndarray, t0: np.ndarray, t1: np.ndarray, n: np.ndarray,
                 resets: np.ndarray, starts: np.ndarray, ends: np.ndarray, valid: np.ndarray, *,
                 from_zero: bool = True) -> np.ndarray:
    """Prometheus' extrapolatedRate (promql/functions.go), vectorized over steps. ``from_zero``: a
    counter may be extrapolated back to its zero point (not for running totals of deltas, which
    start at the window's edge, not at the series' start)."""
    two = valid & (n >= 2)
    counter_fn = name != "delta"
    result = v1 - v0 + (resets if counter_fn else 0.0)
    t0, t1 = t0.astype(np.float64), t1.astype(np.float64)
    with np.errstate(all="ignore"):
        sampled = (t1 - t0) / NS
        to_start = (t0 - starts) / NS
        to_end = (ends - t1) / NS
        avg_between = sampled / np.maximum(n - 1, 1)
        if counter_fn and from_zero:
            to_zero = sampled * (v0 / result)
            use_zero = (result > 0) & (v0 >= 0) & (to_zero < to_start)
            to_start = np.where(use_zero, to_zero, to_start)
        threshold = avg_between * 1.1
        interval = sampled + np.where(to_start < threshold, to_start, avg_between / 2)
        interval = interval + np.where(to_end < threshold, to_end, avg_between / 2)
        result = result * (interval / sampled)
        if name == "rate":
            result = result / ((ends - starts) / NS)
    return np.where(two & (sampled > 0), result, np.nan)


def _range_vectorized(name: str, s: Samples, lo: np.ndarray, hi: np.ndarray, starts: np.ndarray,
                      ends: np.ndarray) -> np.ndarray:
    """A range function at every step at once; samples of step i are s.values[lo[i]:hi[i]]."""
    t, v = s.times, s.values
    n = hi - lo
    out = np.full(len(lo), np.nan)
    some = n > 0
    if not some.any():
        return out
    last_i = np.where(some, hi - 1, 0)
    if name in ("rate", "increase", "delta"):
        two = n >= 2
        first_i = np.where(two, lo, 0)
        last_i = np.where(two, hi - 1, 0)
        resets = np.zeros(len(lo))
        if name != "delta":
            # Counter resets: a drop between samples j and j+1 adds back the value before it.
            drops = np.concatenate([[0.0], np.cumsum(np.where(v[1:] < v[:-1], v[:-1], 0.0))])
            resets = drops[last_i] - drops[first_i]
        return _extrapolate(name, v[first_i], v[last_i], t[first_i], t[last_i], n, resets, starts, ends, two,
                            from_zero=not s.delta)
    if name == "irate":
        two = n >= 2
        a, b = np.where(two, hi - 2, 0), np.where(two, hi - 1, 0)
        dv = np.where(v[b] >= v[a], v[b] - v[a], v[b])
        dt = (t[b] - t[a]) / NS
        with np.errstate(all="ignore"):
            return np.where(two & (dt > 0), dv / dt, np.nan)
    csum = np.concatenate([[0.0], np.cumsum(v)])
    if name == "sum_over_time":
        return np.where(some, csum[hi] - csum[lo], np.nan)
    if name == "count_over_time":
        return np.where(some, n.astype(np.float64), np.nan)
    if name == "avg_over_time":
        with np.errstate(all="ignore"):
            return np.where(some, (csum[hi] - csum[lo]) / n, np.nan)
    if name == "last_over_time":
        return np.where(some, v[last_i], np.nan)
    fn = np.min if name == "min_over_time" else np.max
    for i in np.nonzero(some)[0]:
        out[i] = fn(v[lo[i]:hi[i]])
    return out


def bucket_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus' bucketQuantile over (upper bound, cumulative count) pairs."""
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    buckets = sorted(buckets)
    if not buckets or not math.isinf(buckets[-1][0]):
        return math.nan
    merged: list[list[float]] = []
    for ub, c in buckets:  # coalesce equal bounds
        if merged and merged[-1][0] == ub:
            merged[-1][1] += c
        else:
            merged.append([ub, c])
    for i in range(1, len(merged)):  # ensure monotonic counts
        if merged[i][1] < merged[i - 1][1]:
            merged[i][1] = merged[i - 1][1]
    if len(merged) < 2:
        return math.nan
    observations = merged[-1][1]
    if observations == 0:
        return math.nan
    rank = q * observations
    b = next(i for i, (_, c) in enumerate(merged) if c >= rank)
    if b == len(merged) - 1:
        return merged[-2][0]
    if b == 0 and merged[0][0] <= 0:
        return merged[0][0]
    start, end, count = 0.0, merged[b][0], merged[b][1]
    if b > 0:
        start = merged[b - 1][0]
        count -= merged[b - 1][1]
        rank -= merged[b - 1][1]
    return start + (end - start) * (rank / count)


def _histogram_quantile(q: np.ndarray, v: Vector, n: int) -> Vector:
    groups: dict[tuple[tuple[str, str], ...], tuple[Labels, list[tuple[float, np.ndarray]]]] = {}
    for lab, vals in v.series:
        if "le" not in lab:
            continue
        try:
            ub = float(lab["le"].replace("+Inf", "inf"))
        except ValueError:
            continue
        g = {k: x for k, x in lab.items() if k not in ("le", "__name__")}
        groups.setdefault(_key(g), (g, []))[1].append((ub, vals))
    out = []
    for g, buckets in groups.values():
        vals = np.full(n, np.nan)
        for i in range(n):
            pts = [(ub, float(x[i])) for ub, x in buckets if not math.isnan(x[i])]
            if pts:
                vals[i] = bucket_quantile(float(q[i]), pts)
        out.append((g, vals))
    return Vector(out)


# --- Entry points ---------------------------------------------------------------------------------

def parse(query: str) -> Any:
    if not query or not query.strip():
        raise BadRequest("query is empty")
    if len(query) > 64 * 1024:
        raise BadRequest("query too long")
    try:
        return pp.parse(query)
    except BaseException as e:  # the parser raises ValueError and Rust panics alike
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        raise BadRequest(f"parse error: {e}") from None


def _max_window(e: Any) -> int:
    """Longest range + offset in the expression, to choose the table."""
    best = 0
    stack = [e]
    while stack:
        x = stack.pop()
        if isinstance(x, pp.MatrixSelector):
            best = max(best, _td(x.range) + _td(x.vector_selector.offset))
        elif isinstance(x, pp.VectorSelector):
            best = max(best, LOOKBACK_NS + _td(x.offset))
        for attr in ("expr", "lhs", "rhs", "param", "vector_selector"):
            child = getattr(x, attr, None)
            if child is not None and not isinstance(child, (str, int, float)):
                stack.append(child)
        if isinstance(x, pp.Call):
            stack.extend(x.args)
    return best


def make_source(store: Store, expr: Any, start_ns: int, end_ns: int, step_ns: int, request: Any = None,
                use_buckets: bool = True, pushdown: bool = True) -> Source:
    table = choose_metrics_table(start_ns - _max_window(expr), end_ns, step_ns / NS, store.retention)
    bucket = BUCKET_S[table] * NS
    return Source(store=store, table=table, lookback_ns=max(LOOKBACK_NS, 2 * bucket), request=request,
                  use_buckets=use_buckets, pushdown=pushdown)


async def evaluate(store: Store, expr: Any, start_ns: int, end_ns: int, step_ns: int, request: Any = None,
                   *, use_buckets: bool = True, pushdown: bool | None = None
                   ) -> tuple[Vector | Scalar | Matrix, np.ndarray, str]:
    """Evaluate at each step in [start, end]; returns the value, the steps and the table read."""
    steps = np.arange(start_ns, end_ns + 1, step_ns, dtype=np.int64) if step_ns else np.array([start_ns], dtype=np.int64)
    # The reference path (use_buckets=False) evaluates everything from raw samples in Python.
    source = make_source(store, expr, start_ns, end_ns, step_ns or 1, request, use_buckets,
                         use_buckets if pushdown is None else pushdown)
    source.reuse_catalog = True
    ev = Evaluator(source, steps, step_ns)
    if isinstance(expr, pp.MatrixSelector) and len(steps) == 1:
        series, _, _ = await ev.range_samples(expr)
        return Matrix(series), steps, source.table
    if isinstance(expr, pp.SubqueryExpr) and len(steps) == 1:
        series, rng, offset = await ev.subquery(expr)
        end = int(steps[0]) - offset
        windowed = [Samples(s.labels, s.times[keep], s.values[keep], s.counter)
                    for s in series for keep in [(s.times > end - rng) & (s.times <= end)] if keep.any()]
        return Matrix(windowed), steps, source.table
    if isinstance(expr, pp.StringLiteral):
        raise BadRequest("unsupported: string results")
    return await ev.eval(expr), steps, source.table
