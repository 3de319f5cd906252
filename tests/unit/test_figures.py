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
    ax.legend(loc="best")  # placed when drawn
    return fig


def test_png_is_matplotlibs_image_without_its_alpha_channel(tmp_path: Path) -> None:
    """What _save writes (one tight box for both files, RGB) against what matplotlib itself
    writes for the same figure: tight_layout, then savefig(bbox_inches="tight") as PNG."""
    ref_fig = _figure()
    ref_fig.tight_layout()
    own = io.BytesIO()
    ref_fig.savefig(own, format="png", dpi=figures.DPI, bbox_inches="tight")
    plt.close(ref_fig)
    ref = np.asarray(Image.open(own))
    paths = figures._save(_figure(), tmp_path / "figures", "one")
    assert paths == ["figures/one.png", "figures/one.svg"]
    img = Image.open(tmp_path / "figures" / "one.png")
    assert img.mode == "RGB"
    assert img.info["dpi"] == pytest.approx((figures.DPI, figures.DPI), abs=0.01)
    got = np.asarray(img)
    assert got.shape == (*ref.shape[:2], 3)
    assert (ref[..., 3] == 255).all()  # opaque: dropping alpha loses nothing
    assert np.array_equal(got, ref[..., :3])
    # the SVG's page is the same box (inches × 72 pt)
    svg = (tmp_path / "figures" / "one.svg").read_text()
    width_pt = float(svg.split('width="', 1)[1].split("pt", 1)[0])
    assert width_pt == pytest.approx(got.shape[1] / figures.DPI * 72, abs=0.5)


def test_png_of_a_figure_on_another_backends_canvas(tmp_path: Path) -> None:
    """A figure whose canvas is not Agg's (another backend: a notebook's, SVG) is drawn on an
    Agg canvas all the same, and its PNG is the same image."""
    from matplotlib.backends.backend_svg import FigureCanvasSVG

    ref = tmp_path / "agg.png"
    figures.write_png(_figure(), ref)
    fig = _figure()
    FigureCanvasSVG(fig)
    figures.write_png(fig, tmp_path / "svg-canvas.png")
    assert np.array_equal(np.asarray(Image.open(ref)),
                          np.asarray(Image.open(tmp_path / "svg-canvas.png")))  # fmt: skip
