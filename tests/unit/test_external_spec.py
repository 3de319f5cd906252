"""``source_params.<name>.optional`` in the spec and the availability check on a spec."""

from __future__ import annotations

import pytest

from skewlab.clocks.external import SourceUnavailable, require_available, unavailable_sources
from skewlab.spec import SpecError, from_dict


def test_optional_must_be_boolean() -> None:
    with pytest.raises(SpecError, match=r"chronotick\.optional must be true or false"):
        from_dict({"source_params": {"chronotick": {"optional": "yes"}}})


def test_unavailable_required_source_is_reported(tmp_path) -> None:
    params = {"path": str(tmp_path / "missing")}
    spec = from_dict({"sources": ["system", "chronotick"], "source_params": {"chronotick": params}})
    assert spec.optional_sources == []
    (msg,) = unavailable_sources(spec.sources, spec.source_params)
    assert "'chronotick' is unavailable" in msg and str(tmp_path / "missing") in msg
    with pytest.raises(SourceUnavailable, match="no ChronoTick segment"):
        require_available(spec)
    spec = from_dict(
        {"sources": ["system", "chronotick"],
         "source_params": {"chronotick": {**params, "optional": True}}}
    )  # fmt: skip
    assert spec.optional_sources == ["chronotick"]
    require_available(spec)  # optional: no error
