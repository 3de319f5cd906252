"""The figures' PNG files: RGB, the very pixels matplotlib's own PNG of the figure holds."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from skewlab.analysis import figures


def _figure() -> plt.Figure:
    fig, ax = plt.subplots(figsize=(4, 2.5))
    ax.barh([0, 1], [30, 70], color="tab:blue", label="a bar")
    ax.errorbar([30], [0], xerr=[[5], [8]], fmt="none", ecolor="k")
    ax.text(75, 1, "42/60", va="center", fontsize=7)
    ax.set_title("rates", fontsize=9)
    ax.legend()
    fig.tight_layout()
    return fig


def test_png_is_matplotlibs_image_without_its_alpha_channel(tmp_path: Path) -> None:
    fig = _figure()
    own = io.BytesIO()
    fig.savefig(own, format="png", dpi=figures.DPI, bbox_inches="tight")
    figures.write_png(fig, tmp_path / "f.png")
    plt.close(fig)
    ref = np.asarray(Image.open(own))
    img = Image.open(tmp_path / "f.png")
    assert img.mode == "RGB"
    assert img.info["dpi"] == pytest.approx((figures.DPI, figures.DPI), abs=0.01)
    got = np.asarray(img)
    assert got.shape == (*ref.shape[:2], 3)
    assert (ref[..., 3] == 255).all()  # opaque: dropping alpha loses nothing
    assert np.array_equal(got, ref[..., :3])


def test_save_writes_png_and_svg(tmp_path: Path) -> None:
    paths = figures._save(_figure(), tmp_path / "figures", "one")
    assert paths == ["figures/one.png", "figures/one.svg"]
    assert (tmp_path / "figures" / "one.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in (tmp_path / "figures" / "one.svg").read_bytes()[:2000]
