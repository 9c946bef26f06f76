"""Builders of OTLP requests with the official ``opentelemetry-proto`` package, for the tests."""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList
from opentelemetry.proto.resource.v1.resource_pb2 import Resource


def av(x: Any) -> AnyValue:
    """A Python value as an AnyValue (None = empty AnyValue)."""
    if x is None:
        return AnyValue()
    if isinstance(x, bool):
        return AnyValue(bool_value=x)
    if isinstance(x, int):
        return AnyValue(int_value=x)
    if isinstance(x, float):
        return AnyValue(double_value=x)
    if isinstance(x, str):
        return AnyValue(string_value=x)
    if isinstance(x, bytes):
        return AnyValue(bytes_value=x)
    if isinstance(x, list):
        return AnyValue(array_value=ArrayValue(values=[av(v) for v in x]))
    if isinstance(x, dict):
        return AnyValue(kvlist_value=KeyValueList(values=kvs(x)))
    raise TypeError(type(x))


def kvs(d: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=av(v)) for k, v in d.items()]


# Every AnyValue kind, including nested, empty and awkward ones.
EVERY_KIND: dict[str, Any] = {
    "str": "hello wörld",
    "empty_str": "",
    "bool_t": True,
    "bool_f": False,
    "int": -42,
    "int_big": 2**63 - 1,
    "double": 1.5,
    "double_int": 2.0,
    "double_big": 1e300,
    "double_small": 1e-7,
    "double_nan": float("nan"),
    "double_inf": float("inf"),
    "double_ninf": float("-inf"),
    "bytes": b"\x00\x01\xfe\xff",
    "array": ["a\"b\\c\n", 1, 2.5, True, None, b"\x01", [1, [2]], {"k": "v"}],
    "empty_array": [],
    "kvlist": {"x": 1, "y": {"z": [None, False]}, "ctl": "\x01\b\f"},
    "empty_kvlist": {},
    "empty_value": None,
}

EXPECTED_TEXT: dict[str, str] = {
    "str": "hello wörld",
    "empty_str": "",
    "bool_t": "true",
    "bool_f": "false",
    "int": "-42",
    "int_big": "9223372036854775807",
    "double": "1.5",
    "double_int": "2.0",
    "double_big": "1e300",
    "double_small": "1e-7",
    "double_nan": "NaN",
    "double_inf": "Infinity",
    "double_ninf": "-Infinity",
    "bytes": "AAH+/w==",
    "array": '["a\\"b\\\\c\\n",1,2.5,true,null,"AQ==",[1,[2]],{"k":"v"}]',
    "empty_array": "[]",
    "kvlist": '{"x":1,"y":{"z":[null,false]},"ctl":"\\u0001\\b\\f"}',
    "empty_kvlist": "{}",
    "empty_value": "",
}


def resource(attrs: dict[str, Any], dropped: int = 0) -> Resource:
    return Resource(attributes=kvs(attrs), dropped_attributes_count=dropped)


def scope(name: str = "", version: str = "", attrs: dict[str, Any] | None = None) -> InstrumentationScope:
    return InstrumentationScope(name=name, version=version, attributes=kvs(attrs or {}))
