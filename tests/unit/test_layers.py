"""Layers, checked over skewlab's import graph (built from the source with ``ast``: every
import anywhere in a module, function bodies and ``if TYPE_CHECKING:`` blocks included; rules
and graph in tests/layers.py):

- the spec is a leaf: importing ``skewlab.spec`` loads neither pyarrow nor numpy (nor polars or
  matplotlib), checked on the graph and in a fresh interpreter that reads a spec;
- the analysis imports nothing from the runtime, network, clock, NTP, nemesis, simulation or
  deployment code (what it needs about sources and links comes from the traces' metadata);
- no import cycles between skewlab modules.

The companion tests at the end build the graph of a small fake package with a forbidden
import, a cycle or a numpy import under its spec, and show each check reports it.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.layers import (
    ImportGraph,
    build_graph,
    cycles,
    describe_cycle,
    forbidden_edges,
    heavy_imports,
)

HEAVY = ("pyarrow", "numpy", "polars", "matplotlib")
NOT_FOR_ANALYSIS = (
    "skewlab.clocks",
    "skewlab.net",
    "skewlab.ntp",
    "skewlab.node",
    "skewlab.sim",
    "skewlab.deploy",
    "skewlab.nemesis",
)


@pytest.fixture(scope="module")
def graph() -> ImportGraph:
    return build_graph()


def test_the_graph_sees_skewlab(graph: ImportGraph) -> None:
    # guards the checks below against passing on an empty or misread graph
    some = {"skewlab.spec", "skewlab.clocks.sources", "skewlab.analysis.metrics"}
    assert some <= set(graph.files)
    assert "skewlab.spec" in graph.loaded("skewlab.spec")
    assert "numpy" in graph.external["skewlab.clocks.oscillator"]


def test_spec_is_a_leaf(graph: ImportGraph) -> None:
    """Statically: nothing importing ``skewlab.spec`` may load (at module level, inside a
    function, or through a parent package's ``__init__``) imports a heavy library."""
    found = heavy_imports(graph, "skewlab.spec", HEAVY)
    assert not found, "reading a spec would import:\n" + "\n".join(found)


def test_reading_a_spec_loads_neither_pyarrow_nor_numpy(tmp_path: Path) -> None:
    """Dynamically, in a fresh interpreter: import the spec, then read one from a dict and from
    a file with faults, emulated links and external sources (every validator runs)."""
    spec_file = tmp_path / "exp.toml"
    spec_file.write_text(
        textwrap.dedent(
            """
            sources = ["system", "ntp", "truetime", "clockbound", "skewlab", "chrony"]
            [network]
            profile = "loopback"
            [network.links."coordinator~B"]
            profile = "lan"
            [[faults]]
            kind = "link_loss"
            at_s = 1
            path = "coordinator~B"
            duration_s = 1
            [[faults]]
            kind = "clock_step"
            at_s = 2
            node = "C"
            delta_ms = 5
            """
        )
    )
    code = textwrap.dedent(
        f"""
        import sys
        import skewlab.spec
        heavy = {HEAVY!r}
        def loaded():
            return sorted(m for m in sys.modules if m.split(".")[0] in heavy)
        assert not loaded(), ("import skewlab.spec", loaded())
        spec = skewlab.spec.load({str(spec_file)!r})
        assert len(spec.faults) == 2 and spec.sources[-1] == "chrony"
        skewlab.spec.from_dict(spec.model_dump(mode="json"))
        try:
            skewlab.spec.from_dict({{"sources": ["nope"]}})
        except skewlab.spec.SpecError:
            pass
        else:
            raise AssertionError("an unknown source was accepted")
        assert not loaded(), ("reading a spec", loaded())
        """
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_analysis_imports_no_runtime_network_clock_or_ntp_code(graph: ImportGraph) -> None:
    found = forbidden_edges(graph, "skewlab.analysis", NOT_FOR_ANALYSIS)
    assert not found, "the analysis must read traces and metadata only:\n" + "\n".join(found)


def test_no_import_cycles(graph: ImportGraph) -> None:
    """No strongly connected component of more than one module. A package ``__init__`` may
    import its submodules; a submodule importing (names from) that ``__init__`` back closes a
    cycle. Function-level and ``TYPE_CHECKING`` imports are edges too."""
    found = cycles(graph)
    assert not found, "\n".join(describe_cycle(graph, c) for c in found)


def test_source_names_match_the_registries() -> None:
    """The spec validates source names against the leaf ``clocks/names.py``; the factories are
    registered under exactly those names."""
    from skewlab.clocks.external import EXTERNAL_SOURCES
    from skewlab.clocks.names import BUILTIN_SOURCE_NAMES, EXTERNAL_SOURCE_NAMES, SOURCE_NAMES
    from skewlab.clocks.sources import SOURCES

    assert tuple(EXTERNAL_SOURCES) == EXTERNAL_SOURCE_NAMES
    assert tuple(SOURCES) == SOURCE_NAMES == BUILTIN_SOURCE_NAMES + EXTERNAL_SOURCE_NAMES


# --- the checks fail when a forbidden import is added (a fake package in tmp_path) -----------


def _package(root: Path, files: dict[str, str]) -> ImportGraph:
    """Write ``files`` (path under the package → source) as package ``fake`` and graph it."""
    for rel, text in files.items():
        p = root / "fake" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))
    for d in [root / "fake", *(root / "fake").rglob("*")]:
        if d.is_dir() and not (d / "__init__.py").exists():
            (d / "__init__.py").write_text("")
    return build_graph(root, "fake")


CLEAN = {
    "spec.py": "import json\nfrom fake.clocks import names\n",
    "clocks/__init__.py": "from fake.clocks.base import Reading\n",
    "clocks/base.py": "Reading = tuple\n",
    "clocks/names.py": "NAMES = ('a',)\n",
    "clocks/sources.py": "import numpy as np\nfrom . import base\nfrom .names import NAMES\n",
    "analysis/__init__.py": "",
    "analysis/metrics.py": "import pyarrow\nfrom fake import spec\nfrom ..clocks.names import y\n",
}


TYPE_ONLY = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"


def test_the_clean_fake_package_passes(tmp_path: Path) -> None:
    g = _package(tmp_path, CLEAN)
    assert g.edges["fake.clocks.sources"] == {"fake.clocks.base": [2], "fake.clocks.names": [3]}
    assert heavy_imports(g, "fake.spec", HEAVY) == []
    assert forbidden_edges(g, "fake.analysis", ["fake.clocks.sources"]) == []
    assert cycles(g) == []


@pytest.mark.parametrize(
    "where, code",
    [
        ("analysis/metrics.py", "from fake.clocks.sources import SOURCES\n"),  # module level
        ("analysis/metrics.py", "def f():\n    from fake.clocks import sources\n"),  # submodule
        ("analysis/metrics.py", "def f():\n    import fake.clocks.sources as s\n"),
        ("analysis/sub/deep.py", "from ...clocks.sources import x\n"),  # relative
    ],
)
def test_a_forbidden_analysis_import_is_reported(tmp_path: Path, where: str, code: str) -> None:
    files = dict(CLEAN)
    files[where] = files.get(where, "") + code
    g = _package(tmp_path, files)
    found = forbidden_edges(g, "fake.analysis", ["fake.clocks.sources", "fake.net"])
    assert len(found) == 1 and "fake.clocks.sources" in found[0], found


@pytest.mark.parametrize(
    "where, code",
    [
        ("clocks/names.py", "import numpy\n"),  # directly under the spec
        ("clocks/names.py", "def f():\n    from pyarrow import parquet\n"),  # in a function
        ("clocks/__init__.py", "from fake.clocks.sources import NAMES\n"),  # via a parent
        ("spec.py", "def g():\n    from fake.analysis import metrics\n"),  # transitively
    ],
)
def test_a_heavy_import_under_the_spec_is_reported(tmp_path: Path, where: str, code: str) -> None:
    files = dict(CLEAN)
    files[where] += code
    g = _package(tmp_path, files)
    found = heavy_imports(g, "fake.spec", HEAVY)
    assert found, "the leaf check missed it"
    assert all(line.startswith("fake.spec") for line in found)


def test_a_heavy_import_only_for_type_checking_is_not_loaded(tmp_path: Path) -> None:
    files = dict(CLEAN)
    files["clocks/names.py"] += TYPE_ONLY + "    import numpy\n"
    g = _package(tmp_path, files)
    assert heavy_imports(g, "fake.spec", HEAVY) == []


@pytest.mark.parametrize(
    "extra",
    [
        # a function-level import closing a cycle
        {"clocks/names.py": "def f():\n    from fake.clocks.sources import x\n"},
        # a type-only import closing one
        {"clocks/names.py": TYPE_ONLY + "    from fake.spec import Spec\n"},
        # a submodule importing names from its package's __init__, which imports it
        {"clocks/base.py": "from fake.clocks import Reading as R\n"},
        # three modules (spec → names → base → spec), relative imports
        {"clocks/base.py": "from .. import spec\n", "clocks/names.py": "from . import base\n"},
    ],
)
def test_a_cycle_is_reported(tmp_path: Path, extra: dict[str, str]) -> None:
    files = dict(CLEAN)
    for k, v in extra.items():
        files[k] += v
    g = _package(tmp_path, files)
    found = cycles(g)
    assert len(found) == 1, found
    assert "cycle" in describe_cycle(g, found[0])


def test_a_package_init_may_import_its_submodules(tmp_path: Path) -> None:
    """``fake/clocks/__init__.py`` imports ``base``; ``base`` importing a sibling submodule
    through the package (``from fake.clocks import names``) is not a cycle."""
    files = dict(CLEAN)
    files["clocks/base.py"] += "from fake.clocks import names\n"
    g = _package(tmp_path, files)
    assert cycles(g) == []
