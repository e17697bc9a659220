"""``scdnn report``: self-contained HTML reports of evaluation, mapping and benchmark runs.

Every run is made through the command line on tiny generated data (a 40 x 48 px dataset, a
64 x 96 px GeoTIFF scene, a one-network smoke benchmark), then reported; the pages are checked
for what they hold and for standing alone, and screenshotted in headless Chromium.
"""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
from html import unescape
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.transform import Affine

from conftest import TINY, spread_weights, stripe_mask, write_stripe_scene
from scdnn.cli import main
from scdnn.datasets.synthetic import write_synthetic_dataset
from scdnn.report import write_report
from scdnn.report.evaluation import pick_examples
from scdnn.report.mapping import OVERVIEW_SIDE, decimated_shape

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WINDOW = (1280, 2400)
IMG_SRC = re.compile(r"<img\b[^>]*\bsrc=\"([^\"]*)\"")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """Tiny SCDnn weights (no training) whose probabilities spread over (0, 1), so a scene
    gets several landslide polygons."""
    sample = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    return spread_weights(tmp_path_factory.mktemp("weights") / "weights.safetensors", sample,
                          TINY)


def run_cli(*args: str) -> int:
    return main([str(a) for a in args])


def html_of(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def images_of(html: str) -> list[Image.Image]:
    """Every <img> of the page, decoded; fails unless each is a PNG data URI."""
    out = []
    for src in IMG_SRC.findall(html):
        assert src.startswith("data:image/png;base64,"), src[:60]
        image = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        assert image.format == "PNG"
        image.load()
        out.append(image)
    return out


def assert_self_contained(html: str) -> None:
    assert html.startswith("<!DOCTYPE html>")
    assert "http://" not in html and "https://" not in html
    assert "<script" not in html.lower() and "<link" not in html.lower()
    assert "<iframe" not in html.lower() and "url(" not in html.lower()
    srcs = IMG_SRC.findall(html)
    assert len(srcs) == html.count("<img"), "every <img> has a src"
    images_of(html)


def headings(html: str) -> list[str]:
    return [unescape(h) for h in re.findall(r"<h2>(.*?)</h2>", html)]


def screenshot(report: Path, tmp_path: Path) -> np.ndarray:
    """A 1280 x 2400 headless Chromium screenshot of ``report`` as an RGB array."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium): no screenshot test")
    png = tmp_path / f"{report.stem}-shot.png"
    subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'chromium-profile'}",
         f"--window-size={WINDOW[0]},{WINDOW[1]}", f"--screenshot={png}",
         report.resolve().as_uri()],
        capture_output=True, timeout=120, check=False)
    assert png.is_file(), "chromium wrote no screenshot"
    with Image.open(png) as image:
        assert image.size == WINDOW
        pixels = np.asarray(image.convert("RGB"))
    packed = (pixels[..., 0].astype(np.uint32) << 16) | (pixels[..., 1].astype(np.uint32) << 8) \
        | pixels[..., 2]
    colours = len(np.unique(packed))
    assert colours > 200, f"screenshot looks blank: {colours} colours"
    assert (pixels.min(axis=2) > 245).mean() < 0.97, "screenshot is nearly all white"
    return pixels


def near(pixels: np.ndarray, colour, tol: int = 10) -> int:
    """How many screenshot pixels lie within ``tol`` of ``colour`` (0–255 RGB) per band."""
    return int((np.abs(pixels.astype(int) - np.asarray(colour)).max(axis=2) <= tol).sum())


def cmap_rgb(name: str, value: float) -> tuple[int, int, int]:
    import matplotlib

    return tuple(int(round(255 * c)) for c in matplotlib.colormaps[name](value)[:3])


# ----------------------------------------------------------------------------- evaluation

@pytest.fixture
def evaluation(folder_dataset, weights, tmp_path) -> Path:
    out = tmp_path / "eval"
    assert run_cli("evaluate", folder_dataset, "--weights", weights, "--out", out,
                   "--all") == 0
    return out


def test_evaluate_with_weights_writes_the_predicted_masks(evaluation, folder_dataset, tmp_path):
    metrics = json.loads((evaluation / "metrics.json").read_text())
    masks = sorted(p.name for p in (evaluation / "masks").iterdir())
    assert masks == [f"{s}.png" for s in "abcde"]
    for name in masks:
        values = set(np.unique(np.asarray(Image.open(evaluation / "masks" / name))).tolist())
        assert values <= {0, 255}
    assert Path(metrics["source"]["data"]).is_absolute()
    assert metrics["source"]["data"] == str(folder_dataset.resolve())
    # the masks are the predictions that were scored: scoring them again gives the same
    again = tmp_path / "again"
    assert run_cli("evaluate", folder_dataset, "--predictions", evaluation, "--out", again,
                   "--all") == 0
    rescored = json.loads((again / "metrics.json").read_text())
    assert rescored["confusion"] == metrics["confusion"]
    assert rescored["boundary_counts"] == metrics["boundary_counts"]


def test_evaluation_report(evaluation, tmp_path, capsys):
    capsys.readouterr()
    assert run_cli("report", evaluation) == 0
    report = evaluation / "report.html"
    assert capsys.readouterr().out.strip() == str(report)
    html = html_of(report)
    assert_self_contained(html)
    assert headings(html) == ["Metrics", "Confusion matrix", "Per-image MIoU", "Examples"]
    metrics = json.loads((evaluation / "metrics.json").read_text())
    assert f"{100 * metrics['miou']:.2f}" in html and f"{100 * metrics['pa']:.2f}" in html
    assert f"{metrics['confusion'][0][0]:,}" in html
    # heat map + histogram + one overlay per image (5 images: all drawn, 3 panels each)
    pictures = images_of(html)
    assert len(pictures) == 2 + 5
    rows = (evaluation / "per_image.csv").read_text().splitlines()[1:]
    for row in rows:  # the per-image table: every image with its MIoU
        name, miou = row.split(",")[:2]
        assert f"<td>{name}</td><td class=\"num\">{float(miou):.4f}</td>" in html
    for name in "abcde":
        assert f"overlay of {name}" in html
    assert "No predicted mask" not in html and "not available" not in html
    assert not list(evaluation.glob(".*part*"))

    pixels = screenshot(report, tmp_path)
    # the heat map's darkest cell: Blues at the largest normalised share
    top = max(v for row in metrics["confusion_normalized"] for v in row if v is not None)
    assert near(pixels, cmap_rgb("Blues", top), tol=6) > 2000


@pytest.mark.slow
def test_evaluation_report_from_predictions_and_without_data(folder_dataset, tmp_path):
    data = tmp_path / "data-copy"
    shutil.copytree(folder_dataset, data)
    out = tmp_path / "eval-pred"
    # the truth as predictions: perfect scores, and the report finds the masks in that folder
    assert run_cli("evaluate", data, "--predictions", data / "masks", "--out", out,
                   "--all") == 0
    assert not (out / "masks").exists()  # masks are written only with --weights
    html = html_of(write_report(out, tmp_path / "elsewhere" / "pred.html"))
    assert_self_contained(html)
    assert len(images_of(html)) == 2 + 5 and "No predicted mask" not in html
    assert "100.00" in html

    shutil.rmtree(data)
    html = html_of(write_report(out))
    assert_self_contained(html)
    assert "is not available" in html
    assert len(images_of(html)) == 2  # heat map and histogram, no overlays
    assert headings(html)[-1] == "Examples"


def test_evaluation_report_shows_boundary_f1_in_metres(tmp_path):
    """A 0.5 m scene whose predicted edge is 2 px (1 m) off: boundary F1 0 % at 0.5 m and
    100 % from 1 m in the report; a metrics.json without the metre scores (images, or written
    before they existed) is reported without that table."""
    scene = write_stripe_scene(tmp_path / "scene", 20, 40, edge=20, px=0.5)
    out = tmp_path / "eval"
    assert run_cli("evaluate", scene, "--predictions",
                   stripe_mask(tmp_path / "pred.tif", scene, 22), "--out", out) == 0
    html = html_of(write_report(out, tmp_path / "r.html"))
    assert "Boundary F1 by ground tolerance (%)" in html
    section = html[html.index("Boundary F1 by ground tolerance"):]
    cells = re.findall(r"<t[hd][^>]*>([^<]*)</t[hd]>", section)[:8]
    assert cells == ["0.5 m", "1 m", "2 m", "4 m", "0.00", "100.00", "100.00", "100.00"]
    assert "boundary_images_m" not in html  # not listed again under other numbers

    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("boundary_f1_at_m", "boundary_counts_at_m", "boundary_images_m"):
        del metrics[key]
    (out / "metrics.json").write_text(json.dumps(metrics))
    html = html_of(write_report(out, tmp_path / "old.html"))
    assert "Boundary F1 by tolerance (%)" in html and "ground tolerance" not in html


def test_examples_are_the_worst_median_and_best():
    rows = [{"name": f"i{k:02d}", "miou": v} for k, v in
            enumerate([0.5, 0.9, 0.1, None, 0.7, 0.3, 0.95, 0.6, 0.2, 0.8, 0.4])]
    picks = pick_examples(rows)
    assert [(g, r["name"]) for g, r in picks] == [
        ("worst", "i02"), ("worst", "i08"), ("median", "i00"), ("median", "i07"),
        ("best", "i01"), ("best", "i06")]
    assert [g for g, _ in pick_examples(rows[:2])] == ["worst", "best"]
    assert pick_examples([{"name": "x", "miou": None}]) == []


# ----------------------------------------------------------------------------- mapping

SCENE_H, SCENE_W = 64, 96
TRANSFORM = Affine(2.0, 0.0, 600000.0, 0.0, -2.0, 3300000.0)


def write_scene(path: Path) -> Path:
    """A 3-band uint8 GeoTIFF in UTM with nodata 0 over its left 16 columns."""
    rows, cols = np.mgrid[0:SCENE_H, 0:SCENE_W]
    rng = np.random.default_rng(5)
    base = 128 + 90 * np.sin(rows / 5.0) * np.cos(cols / 7.0)
    image = np.clip(base[None] + rng.normal(0, 25, (3, SCENE_H, SCENE_W)), 1, 255)
    image = image.astype(np.uint8)
    image[:, :, :16] = 0
    with rasterio.open(path, "w", driver="GTiff", width=SCENE_W, height=SCENE_H, count=3,
                       dtype="uint8", crs="EPSG:32648", transform=TRANSFORM, nodata=0) as dst:
        dst.write(image)
    return path


@pytest.fixture
def mapping(weights, tmp_path) -> Path:
    scene = write_scene(tmp_path / "scene.tif")
    out = tmp_path / "map"
    assert run_cli("map", scene, "--weights", weights, "--out", out, "--tile", "64",
                   "--overlap", "16", "--raw") == 0  # raw: many small polygons
    return out


def test_mapping_report(mapping, tmp_path):
    import geopandas as gpd

    summary = json.loads((mapping / "map.json").read_text())
    assert summary["landslides"] >= 3, "the fixture should give several polygons"
    assert run_cli("report", mapping, "--out", tmp_path / "map.html") == 0
    html = html_of(tmp_path / "map.html")
    assert_self_contained(html)
    assert headings(html) == ["Summary", "Overview", "Probability", "Largest landslides"]
    assert "EPSG:32648" in html and "area (m²)" in html
    assert "none (raw mask)" in html
    pictures = images_of(html)
    assert len(pictures) == 2  # scene overview with polygons, probability overview
    assert "is not available" not in html
    # the table: the largest landslides, largest first, at most 10
    frame = gpd.read_file(mapping / "landslides.gpkg")
    largest = frame.sort_values("area_m2", ascending=False).head(10)
    table = html.split('id="largest-landslides"')[1]
    ids = [int(i) for i in re.findall(r"<tr><td class=\"num\">(\d+)</td>", table)]
    assert ids == [int(i) for i in largest["id"]]
    assert f"{largest['area_m2'].iloc[0]:,.2f}" in table

    pixels = screenshot(tmp_path / "map.html", tmp_path)
    assert near(pixels, (255, 26, 191), tol=30) > 50  # magenta polygon outlines
    assert near(pixels, (209, 209, 209), tol=2) > 500  # the no-data strip, neutral grey


def test_mapping_report_without_the_scene(mapping, tmp_path):
    summary = json.loads((mapping / "map.json").read_text())
    Path(summary["scene"]).unlink()
    html = html_of(write_report(mapping))
    assert_self_contained(html)
    assert "is not available; the mask is shown instead" in html
    assert len(images_of(html)) == 2


def test_overviews_are_read_decimated():
    assert decimated_shape(30000, 20000) == (OVERVIEW_SIDE, round(20000 * OVERVIEW_SIDE / 30000))
    assert decimated_shape(64, 96) == (64, 96)
    assert max(decimated_shape(1601, 5)) == OVERVIEW_SIDE


# ----------------------------------------------------------------------------- benchmark

@pytest.fixture
def benchmark(tmp_path) -> Path:
    data = write_synthetic_dataset(tmp_path / "bench-data", count=6, size=40, seed=3)
    out = tmp_path / "bench"
    assert run_cli("benchmark", data, "--out", out, "--models", "scdnn", "--budget",
                   "smoke", "--seeds", "0") == 0
    return out


@pytest.mark.slow
def test_benchmark_report(benchmark, tmp_path):
    assert run_cli("report", benchmark) == 0
    html = html_of(benchmark / "report.html")
    assert_self_contained(html)
    titles = headings(html)
    for expected in ("Runs", "Table 2: whole test set (%)", "Fig. 8: SCDnn's per-image MIoU",
                     "Beyond the paper"):
        assert expected in titles
    # the three PNGs the benchmark wrote, embedded byte for byte where results.md links them
    for name in ("fig8_miou_bins.png", "fig9_examples.png", "training_curves.png"):
        data = base64.b64encode((benchmark / name).read_bytes()).decode()
        assert f"data:image/png;base64,{data}" in html, name
    assert html.count("<table>") >= 5 and "96.16" in html  # the paper's PA beside ours
    screenshot(benchmark / "report.html", tmp_path)

    # results.md gone: rebuilt from results.json
    (benchmark / "results.md").unlink()
    again = html_of(write_report(benchmark, tmp_path / "b2.html"))
    assert headings(again) == titles


# ----------------------------------------------------------------------------- bad input

def test_a_folder_that_is_no_run_is_refused(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    assert run_cli("report", tmp_path) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"scdnn report: error: {tmp_path}: not an evaluation, mapping or benchmark "
                   "run folder (expected metrics.json + per_image.csv, map.json, or "
                   "results.json)")
    assert not (tmp_path / "report.html").exists()

    assert run_cli("report", tmp_path / "missing") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"scdnn report: error: {tmp_path / 'missing'}: run folder does not exist"]


def test_a_broken_metrics_json_is_one_line(tmp_path, capsys):
    (tmp_path / "metrics.json").write_text("{not json")
    (tmp_path / "per_image.csv").write_text("name,miou\n")
    assert run_cli("report", tmp_path) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "metrics.json: cannot read JSON" in err[0]
    (tmp_path / "metrics.json").write_text('{"pa": 1}')
    assert run_cli("report", tmp_path) == 2
    assert "not a metrics.json of scdnn evaluate" in capsys.readouterr().err
    assert not (tmp_path / "report.html").exists()


def test_help_names_the_report_command(capsys):
    assert main(["report", "--help"]) == 0
    text = capsys.readouterr().out
    assert "RUN_DIR" in text and "--out FILE" in text and "self-contained" in text
    assert main(["evaluate", "--help"]) == 0
    assert "OUT/masks/<name>.png" in capsys.readouterr().out


def test_one_overlay_draws_the_true_boundary_yellow_and_the_predicted_red():
    """scdnn.overlay.boundary_overlay is what the report's examples and the benchmark's
    Fig. 9 both draw (Fig. 9 also tints the predicted landslide)."""
    from scdnn.overlay import PRED_COLOUR, TRUTH_COLOUR, boundary_overlay

    image = np.full((8, 8, 3), 102, np.uint8)
    truth = np.zeros((8, 8), np.uint8)
    truth[2:6, 2:6] = 1
    truth[7, :] = 255  # no data: no boundary along it
    pred = np.zeros((8, 8), bool)
    pred[3:7, 3:7] = True
    rgb = boundary_overlay(image, truth, pred)
    assert rgb.shape == (8, 8, 3) and rgb.dtype == np.float32
    assert np.allclose(rgb[2, 2], TRUTH_COLOUR) and np.allclose(rgb[5, 2], TRUTH_COLOUR)
    assert np.allclose(rgb[6, 6], PRED_COLOUR) and np.allclose(rgb[3, 6], PRED_COLOUR)
    assert np.allclose(rgb[4, 4], 0.4) and np.allclose(rgb[0, 0], 0.4)  # untouched
    tinted = boundary_overlay(image, truth, pred, width=1, tint=0.35)
    assert np.allclose(tinted[4, 4], 0.65 * 0.4 + 0.35 * np.asarray(PRED_COLOUR))
    assert np.allclose(tinted[0, 0], 0.4)
    thick = boundary_overlay(image, truth, None, width=2)
    assert np.allclose(thick[1, 2], TRUTH_COLOUR)  # dilated by one pixel
