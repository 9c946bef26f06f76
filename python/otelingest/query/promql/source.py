"""Data access for one PromQL evaluation: the metric catalog (Prometheus names to OTel metrics), the
series a selector's matchers select, and their samples in a window, from the raw table or a rollup.

The catalog is shared between evaluations a few seconds (Store.remember), series labels are kept
per tenant and series id (TenantStore.known_series_labels); regex matchers run in ClickHouse (sql/queries/promql/shared/shared/regex_match.sql).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np

from ..errors import Unprocessable
from ..storage.store import TenantStore
from ..storage.tables import BUCKET_S
from ..timeparse import NS
from .matchers import LabelMatcher, labels_match, le_label_sets
from .naming import MetricInfo, format_le, series_labels
from .values import Samples

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


@dataclass(frozen=True)
class TableQueries:
    """The named SQL a Source reads one kind of table with (a rollup's takes the table as a parameter)."""

    catalog: str
    label_keys: str
    labels: str  # the catalog with each metric's label keys
    series: str
    series_labels: str
    points: str


RAW_QUERIES = TableQueries("promql/catalog_raw", "promql/label_keys_raw", "promql/labels_raw",
                           "promql/series_raw", "promql/series_labels_raw", "promql/points_raw")
ROLLUP_QUERIES = TableQueries("promql/catalog_rollup", "promql/label_keys_rollup", "promql/labels_rollup",
                              "promql/series_rollup", "promql/series_labels_rollup", "promql/points_rollup")


def _metric_info(row: tuple[Any, ...]) -> MetricInfo:
    """A catalog row (promql/catalog_*: name, type, temporality, monotonic, unit, description,
    remote-written) as a MetricInfo."""
    return MetricInfo(row[0], row[1], row[2], bool(row[3]), row[4] or "", row[5] or "", bool(row[6]))


def series_chunks(ids: Iterable[int]) -> list[list[int]]:
    """Series ids as query parameters, sorted, in chunks one parameter holds: a selector of more
    series is read a chunk per query (Source.max_series bounds how many)."""
    out = sorted(set(ids))
    return [out[i:i + MAX_BOUND_SERIES] for i in range(0, len(out), MAX_BOUND_SERIES)]


@dataclass
class Source:
    """Where and how samples are read for one query."""

    store: TenantStore
    table: str
    lookback_ns: int
    request: Any = None
    max_series: int = 10_000
    # Pre-aggregate samples per bucket in ClickHouse when steps/ranges are coarse (see bucketed()).
    use_buckets: bool = True
    # Evaluate aggregations of the common shapes inside ClickHouse (pushdown/).
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
    # Series with remote-written samples (otel_prom_samples rows) in a window series() read.
    narrow_series: set[int] = field(default_factory=set)

    def _p(self, **kw: Any) -> dict[str, Any]:
        if self.table != "otel_metrics":
            kw["table"] = self.table
        return kw

    @property
    def queries(self) -> TableQueries:
        return RAW_QUERIES if self.table == "otel_metrics" else ROLLUP_QUERIES

    async def catalog(self, start_ns: int, end_ns: int, *, fresh: bool = False) -> list[MetricInfo]:
        key = (start_ns, end_ns)
        if key in self._catalog and not fresh:
            return self._catalog[key]
        shared = ("prom_catalog", self.table, start_ns // CATALOG_GRAIN_NS, end_ns // CATALOG_GRAIN_NS)

        async def read(request: Any = None) -> list[MetricInfo]:
            rows = await self.store.named(self.queries.catalog,
                                          self._p(start_ns=start_ns, end_ns=end_ns), request=request)
            infos = [_metric_info(r) for r in rows]
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
        return await self.store.named(self.queries.label_keys,
                                      self._p(names=names, start_ns=start_ns, end_ns=end_ns), request=self.request)

    async def catalog_with_keys(self, start_ns: int, end_ns: int) -> list[tuple[MetricInfo, list[str], bool]]:
        """catalog(fresh=True) with each metric's point attribute keys and whether a resource has
        service.instance.id, in one scan (remote-written series' keys come from label_keys())."""
        rows = await self.store.named(self.queries.labels, self._p(start_ns=start_ns, end_ns=end_ns),
                                      request=self.request)
        return [(_metric_info(r), list(r[7]), bool(r[8])) for r in rows]

    async def predicates(self, matchers: list[LabelMatcher], label_sets: list[dict[str, str]]
                         ) -> list[tuple[str, Callable[[str], bool]]]:
        """Matchers as predicates over the given label sets' values (regexes run in ClickHouse)."""
        out = []
        for m in matchers:
            if not m.is_regex:
                out.append((m.name, m.compile()))
                continue
            values = sorted({lab.get(m.name, "") for lab in label_sets} | {""})
            rows = await self.store.named("shared/regex_match", {"values": values, "pattern": f"^(?:{m.value})$"},
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
            self.queries.series, self._p(names=names, start_ns=start_ns, end_ns=end_ns), request=self.request,
        )
        known = self.store.known_series_labels({int(r[0]) for r in rows})
        for unseen in series_chunks({int(r[0]) for r in rows} - known.keys()):
            fetched = {int(sid): series_labels(service, resource, attrs)
                       for sid, service, resource, attrs in await self.store.named(
                           self.queries.series_labels,
                           self._p(names=names, series=unseen, start_ns=start_ns, end_ns=end_ns),
                           request=self.request)}
            self.store.keep_series_labels(fetched)
            known |= fetched
        candidates = []
        for sid, metric, service, changed, bounds, narrow in rows:
            if changed:
                self.bounds_changed.add(int(sid))
            if narrow:
                self.narrow_series.add(int(sid))
            self.bounds_of[int(sid)] = tuple(bounds)
            base = known.get(int(sid))
            if base is None:
                # A remote-written series' labels (otel_prom_series) can land a moment after its
                # first samples (another INSERT of the batch, or another writer): not visible yet.
                continue
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
            rows += await self.store.named(self.queries.points, params | {"series": ids}, request=self.request)
        by_sid: dict[int, list[tuple[Any, ...]]] = {}
        for r in rows:
            by_sid.setdefault(int(r[0]), []).append(r)
        fns = await self.predicates([m for m in matchers if m.name == "le"], le_label_sets(rows, 6))
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
