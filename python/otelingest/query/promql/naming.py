"""OTel -> Prometheus naming, per the OpenTelemetry "Prometheus and OpenMetrics compatibility" spec:
dots to underscores, unit suffixes, ``_total`` for monotonic sums, ``_bucket``/``_sum``/``_count``
for histograms; a remote-written series keeps its name and labels verbatim."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

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
