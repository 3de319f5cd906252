"""Parsing ``KEY=VALUE`` source parameters given on a command line."""

from __future__ import annotations

import json
from typing import Any


def parse_value(text: str) -> Any:
    """JSON when it parses (numbers, booleans, lists), else the plain string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_params(items: tuple[str, ...] | list[str], qualified: bool) -> dict[str, Any]:
    """``KEY=VALUE`` (or ``SOURCE.KEY=VALUE`` when ``qualified``) into a (nested) dict."""
    out: dict[str, Any] = {}
    for it in items:
        key, sep, value = it.partition("=")
        if not sep or not key:
            raise ValueError(f"parameter {it!r} is not KEY=VALUE")
        if qualified:
            src, dot, k = key.partition(".")
            if not dot or not src or not k:
                raise ValueError(f"parameter {it!r} is not SOURCE.KEY=VALUE")
            out.setdefault(src, {})[k] = parse_value(value)
        else:
            out[key] = parse_value(value)
    return out
