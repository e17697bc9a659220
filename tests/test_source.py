"""The data-source protocol (:mod:`scdnn.datasets.source`), one evaluation entry point for
both kinds of data (:func:`scdnn.evaluation.evaluate`), and per-tile scoring
(:func:`scdnn.metrics.score_tiles`), through their public interfaces on tiny generated data:
an images/ + masks/ folder, the Bijie layout and two GeoTIFF scenes."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import rasterio

from conftest import FOLDER_PAIRS, TINY, spread_weights, write_ellipse_scene, write_image
from scdnn.datasets import read_image, read_mask, save_split
from scdnn.datasets.source import (
    DataSource,
    ImageFolderSource,
    SceneSource,
    open_source,
    open_source_for_model,
)
from scdnn.errors import UserError
from scdnn.evaluation import evaluate
from scdnn.metrics import per_image_scores, score_tiles, select_tiles
from scdnn.records import FORMAT_VERSION, ModelCard, Split

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[1]
H, W = 64, 80
ROWS, COLS = np.mgrid[0:H, 0:W]
VALID = COLS >= 12  # the first 12 columns hold no data
PX = 0.5


def write_scene(root: Path, centre: tuple[int, int], seed: int, dsm: bool = True) -> Path:
    """rgb.tif (internal mask band), mask.tif (0/1, 255 outside the valid area), dsm.tif."""
    return write_ellipse_scene(root, VALID, centre, (14, 18), seed,
                               dsm=(0.2, 3.0) if dsm else None, px=PX)


@pytest.fixture
def scenes(tmp_path: Path) -> Path:
    root = tmp_path / "scenes"
    write_scene(root / "scene-a", (30, 40), 0)
    write_scene(root / "scene-b", (34, 50), 1)
    return root


def _label(scenes: Path, name: str) -> np.ndarray:
    with rasterio.open(scenes / name / "mask.tif") as src:
        return src.read(1)


def _json(path: Path):
    return json.loads(Path(path).read_text())


# --- opening, names, identity ------------------------------------------------------------

def test_open_source_picks_the_implementation_from_the_layout(folder_dataset, bijie_dataset,
                                                              scenes):
    images = open_source(folder_dataset)
    assert isinstance(images, ImageFolderSource) and isinstance(images, DataSource)
    assert images.names == sorted(FOLDER_PAIRS) and images.kind == "dataset"
    assert images.identity() == {"kind": "dataset", "data": str(folder_dataset)}
    bijie = open_source(bijie_dataset, use_dem=True, include_non_landslide=True)
    assert bijie.names == ["df001", "df002", "df003", "non-landslide/df001",
                           "non-landslide/nd002"]
    assert bijie.train_options() == {"use_dem": True, "include_non_landslide": True}
    both = open_source(scenes, use_dsm=True, test_scenes=["scene-b"])
    assert isinstance(both, SceneSource) and isinstance(both, DataSource)
    assert both.names == ["scene-a", "scene-b"] and both.kind == "scenes"
    assert both.identity() == {"kind": "scenes", "data": str(scenes),
                               "test_scenes": ["scene-b"], "use_dsm": True}
    assert both.train_options() == {"test_scenes": ["scene-b"], "use_dsm": True}
    assert open_source(scenes / "scene-a").names == ["scene-a"]  # one scene folder
    both.validate()
    images.validate()


def test_options_for_the_other_kind_of_data_are_refused(folder_dataset, scenes, tmp_path):
    with pytest.raises(UserError, match="test_scenes applies to scene folders"):
        open_source(folder_dataset, test_scenes=["x"])
    with pytest.raises(UserError, match="use_dsm applies to scene folders"):
        open_source(folder_dataset, use_dsm=True)
    with pytest.raises(UserError, match="use_dem applies to the Bijie layout"):
        open_source(scenes, use_dem=True)
    with pytest.raises(UserError, match="dataset folder does not exist"):
        open_source(tmp_path / "nowhere")
    # the scene-split checks, written once
    with pytest.raises(UserError, match="no scene 'scene-c' \\(scenes: scene-a, scene-b\\)"):
        open_source(scenes, test_scenes=["scene-c"])
    with pytest.raises(UserError, match="names 'scene-b' twice"):
        open_source(scenes, test_scenes=["scene-b", "scene-b"])
    with pytest.raises(UserError, match="nothing is left to train on"):
        open_source(scenes, test_scenes=["scene-a", "scene-b"])
    with pytest.raises(UserError, match="name the ones to test on with test_scenes"):
        open_source(scenes).require_test_part()
    open_source(scenes, test_scenes=["scene-a"]).require_test_part()
    open_source(folder_dataset).require_test_part()


# --- splits --------------------------------------------------------------------------------

def test_image_split_round_trip(folder_dataset, tmp_path):
    source = open_source(folder_dataset)
    split = source.draw_split(seed=4, test_fraction=0.4, val_fraction=0.2)
    assert isinstance(split, Split)
    assert (len(split.train), len(split.val), len(split.test)) == (2, 1, 2)
    assert sorted(split.names()) == sorted(FOLDER_PAIRS)
    assert (split.seed, split.test_fraction, split.val_fraction) == (4, 0.4, 0.2)
    save_split(split, tmp_path / "split.json")
    saved = _json(tmp_path / "split.json")
    assert saved["format_version"] == FORMAT_VERSION and saved == split.to_dict()
    assert source.load_split(tmp_path / "split.json") == split
    assert source.draw_split(seed=4, test_fraction=0.4, val_fraction=0.2) == split


def test_scene_split_round_trip(scenes, tmp_path):
    source = open_source(scenes, test_scenes=["scene-b"])
    split = source.draw_split(seed=2, val_fraction=0.2, val_block=16)
    assert (split.train, split.test) == (["scene-a"], ["scene-b"])
    assert split.val == ["scene-a"] and split.val_blocks["scene-a"]  # blocks of scene-a
    assert split.block_size == 16 and split.names() == ["scene-a", "scene-b"]
    save_split(split, tmp_path / "split.json")
    assert list(_json(tmp_path / "split.json")) == [
        "format_version", "train", "val", "test", "val_blocks", "block_size", "seed",
        "val_fraction"]
    assert source.load_split(tmp_path / "split.json") == split


def test_loaded_splits_are_checked_against_the_data(folder_dataset, scenes, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"train": ["scene-a"], "test": ["scene-z"]}))
    with pytest.raises(UserError, match="split names scene 'scene-z' \\(test\\) which is not"):
        open_source(scenes).load_split(bad)
    bad.write_text(json.dumps({"train": [], "test": ["scene-b"]}))
    with pytest.raises(UserError, match="leaves no training scenes"):
        open_source(scenes).load_split(bad)
    bad.write_text(json.dumps({"train": [], "test": ["a"]}))
    with pytest.raises(UserError, match="leaves no training images"):
        open_source(folder_dataset).load_split(bad)
    bad.write_text(json.dumps({"train": ["a"], "val": ["b"], "test": ["b"]}))
    with pytest.raises(UserError, match="names sample 'b' twice \\(val and test\\)"):
        open_source(folder_dataset).load_split(bad)
    bad.write_text(json.dumps({"train": ["scene-a"], "val": ["scene-b"], "test": [],
                               "val_blocks": {"scene-b": [[0, 0, 8, 8]]}}))
    with pytest.raises(UserError, match="validation scene 'scene-b' is not a training scene"):
        open_source(scenes).load_split(bad)


@pytest.mark.parametrize("committed", ["paper-jinsha", "sichuan-scdnn"])
def test_split_files_written_before_format_version_still_load(committed, scenes, tmp_path):
    """The committed split.json files predate format_version: they read as version 0, with
    every field, and load against data holding their samples."""
    path = REPO / "benchmarks" / "results" / committed / "split.json"
    data = _json(path)
    assert "format_version" not in data
    split = Split.from_dict(data, path)
    assert split.format_version == 0
    assert {k: v for k, v in split.to_dict().items() if k != "format_version"} == data
    if committed == "paper-jinsha":  # scene-a trained (and its blocks validated), scene-b tested
        loaded = open_source(scenes).load_split(path)
        assert (loaded.train, loaded.val, loaded.test) == (["scene-a"], ["scene-a"],
                                                           ["scene-b"])
        assert loaded.block_size == 256 and len(loaded.val_blocks["scene-a"]) == 6
    else:  # tiny stand-ins for the 36 sichuan-aerial images
        for k, name in enumerate(split.names()):
            write_image(tmp_path / "d" / "images" / f"{name}.png",
                        np.full((4, 4, 3), k, np.uint8))
            write_image(tmp_path / "d" / "masks" / f"{name}.png", np.zeros((4, 4), np.uint8))
        loaded = open_source(tmp_path / "d").load_split(path)
        assert loaded == split and len(loaded.test) == 11


# --- training --------------------------------------------------------------------------------

def test_image_training_data_yields_batches_of_the_right_shape(folder_dataset):
    source = open_source(folder_dataset)
    split = source.draw_split(seed=0, test_fraction=0.2, val_fraction=0.2)
    data = source.training_data(split, image_size=16, batch_size=2, crops_per_image=2)
    assert (data.in_channels, data.inputs) == (3, ["red", "green", "blue"])
    norm = data.normalization()
    assert norm.channels == 3
    module = data.datamodule(norm)
    batch = next(iter(module.train_dataloader()))
    assert tuple(batch["image"].shape) == (2, 3, 16, 16) and tuple(batch["mask"].shape) == (
        2, 16, 16)
    assert len(module.train_dataloader().dataset) == 2 * len(split.train)
    val = next(iter(module.val_dataloader()))
    assert tuple(val["image"].shape) == (1, 3, 40, 48)  # whole images, native size


def test_bijie_training_data_with_dem_has_four_channels(bijie_dataset):
    source = open_source(bijie_dataset, use_dem=True)
    data = source.training_data(source.draw_split(seed=0), image_size=16, batch_size=1)
    assert data.in_channels == 4 and data.inputs == ["red", "green", "blue", "dem"]
    batch = next(iter(data.datamodule(data.normalization()).train_dataloader()))
    assert tuple(batch["image"].shape) == (1, 4, 16, 16)


def test_scene_training_data_yields_windows_with_terrain_channels(scenes):
    source = open_source(scenes, use_dsm=True, test_scenes=["scene-b"])
    split = source.draw_split(seed=0, val_fraction=0.2, val_block=16)
    data = source.training_data(split, image_size=24, batch_size=2, windows_per_epoch=4)
    assert data.in_channels == 5
    assert data.inputs == ["red", "green", "blue", "slope", "relative_elevation"]
    module = data.datamodule(data.normalization())
    batches = list(module.train_dataloader())
    assert len(batches) == 2
    assert tuple(batches[0]["image"].shape) == (2, 5, 24, 24)
    assert tuple(batches[0]["mask"].shape) == (2, 24, 24)
    val = next(iter(module.val_dataloader()))
    assert val["image"].shape[:2] == (1, 5) and val["name"][0].startswith("scene-a:")


# --- which samples are scored --------------------------------------------------------------

def _card(split: dict, inputs=("red", "green", "blue")) -> ModelCard:
    return ModelCard.from_dict({"model": "scdnn", "in_channels": len(inputs),
                                "inputs": list(inputs), "split": split,
                                "normalization": {"mean": [1.0] * len(inputs),
                                                  "std": [1.0] * len(inputs)}})


def test_names_to_score_follow_the_model_card_a_split_file_or_all(folder_dataset, scenes,
                                                                  tmp_path):
    images = open_source(folder_dataset)
    card = _card({"train": ["a", "b"], "val": [], "test": ["c", "d"]})
    assert images.names_to_score(card) == (["c", "d"],
                                           "test part of the split in the model card")
    assert images.names_to_score(card, use_all=True) == (images.names, "all images")
    assert images.names_to_score(None) == (images.names, "all images")
    other = _card({"train": ["x"], "val": [], "test": ["y"]})  # another dataset's model
    assert images.names_to_score(other) == (images.names, "all images")
    with pytest.raises(UserError, match="holds only 1 of the model's 2 test images \\('z'"):
        images.names_to_score(_card({"train": [], "test": ["a", "z"]}))
    split_file = tmp_path / "split.json"
    save_split(Split(train=["a"], test=["e"]), split_file)
    assert images.names_to_score(None, split_file) == (["e"], f"test part of {split_file}")

    source = open_source(scenes)
    card = _card({"train": ["scene-a"], "test": ["scene-b"]})
    assert source.names_to_score(card) == (["scene-b"],
                                           "test scenes of the split in the model card")
    assert source.names_to_score(card, split_file=None, use_all=True)[1] == "all scenes"
    with pytest.raises(UserError, match="holds the model's training scene"):
        open_source(scenes / "scene-a").names_to_score(card)
    save_split(Split(train=["scene-a"], test=["scene-c"]), split_file)
    with pytest.raises(UserError, match="split's test scenes \\['scene-c'\\] are not all in"):
        source.names_to_score(None, split_file)


# --- one evaluation entry point ------------------------------------------------------------

def _confusion(pred: np.ndarray, truth: np.ndarray) -> list[list[int]]:
    keep = truth != 255
    return [[int(((truth == t) & (pred == p) & keep).sum()) for p in (0, 1)] for t in (0, 1)]


def test_evaluate_image_predictions_scores_hand_computed(folder_dataset, tmp_path):
    """Saved masks with known mistakes: the confusion counts and per-image rows are the
    hand-computed ones."""
    pred_dir = tmp_path / "pred"
    truths, preds = {}, {}
    for k, (stem, (_, mask_name, _, _)) in enumerate(FOLDER_PAIRS.items()):
        truth = read_mask(folder_dataset / "masks" / mask_name)
        pred = truth.copy()
        pred[k:k + 6, 2 * k:2 * k + 7] ^= 1  # flip a 6 x 7 patch, somewhere else each time
        write_image(pred_dir / f"{stem}.png", (pred * 255).astype(np.uint8))
        truths[stem], preds[stem] = truth, pred
    lines: list[str] = []
    metrics = evaluate(folder_dataset, tmp_path / "e", predictions=pred_dir, summary=lines.append)
    expected = np.sum([_confusion(preds[n], truths[n]) for n in FOLDER_PAIRS], axis=0)
    assert metrics["confusion"] == expected.tolist()
    assert metrics["images"] == 5 and metrics["scored"] == "all images"
    assert lines == ["scored 5 images (all images)"]
    assert "boundary_tolerance_m" not in metrics
    assert metrics["source"] == {"data": os.path.abspath(folder_dataset), "weights": None,
                                 "predictions": os.path.abspath(pred_dir)}
    assert _json(tmp_path / "e" / "metrics.json") == {"format_version": FORMAT_VERSION,
                                                     **json.loads(json.dumps(metrics))}
    with open(tmp_path / "e" / "per_image.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["name"] for r in rows] == list(FOLDER_PAIRS)
    for row in rows:
        scores = per_image_scores(preds[row["name"]], truths[row["name"]])
        assert float(row["miou"]) == pytest.approx(scores["miou"], abs=1e-6)
        assert int(row["pixels"]) == 40 * 48
    assert not (tmp_path / "e" / "masks").exists()  # only predictions made here are kept


def test_evaluate_image_weights_keeps_its_masks_and_agrees_with_them(folder_dataset,
                                                                     tmp_path):
    from scdnn.inference import landslide_probability
    from scdnn.weights import load_model

    weights = spread_weights(tmp_path / "w" / "weights.safetensors",
                             read_image(folder_dataset / "images" / "a.png"), TINY)
    metrics = evaluate(folder_dataset, tmp_path / "e", weights=str(weights))
    model, card = load_model(weights)
    expected = np.zeros((2, 2), int)
    for stem, (image_name, mask_name, _, _) in FOLDER_PAIRS.items():
        image = read_image(folder_dataset / "images" / image_name)
        pred = landslide_probability(model, image, card.normalization) >= 0.5
        kept = read_mask(tmp_path / "e" / "masks" / f"{stem}.png")
        assert np.array_equal(kept, pred)
        expected += _confusion(pred.astype(np.uint8),
                               read_mask(folder_dataset / "masks" / mask_name))
    assert metrics["confusion"] == expected.tolist()
    assert metrics["source"]["weights"] == os.path.abspath(weights)
    # its kept masks, scored as predictions, give the same scores
    again = evaluate(folder_dataset, tmp_path / "p", predictions=tmp_path / "e")
    assert {k: v for k, v in again.items() if k not in ("source", "provenance")} == \
        {k: v for k, v in metrics.items() if k not in ("source", "provenance")}


def _write_prediction(path, scenes, pred, nodata):
    with rasterio.open(scenes / "scene-b" / "mask.tif") as src:
        profile = {**src.profile, "nodata": nodata}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(pred, 1)


def test_a_0_255_scene_prediction_scores_255_as_landslide(scenes, tmp_path):
    """0/255 masks (how most tools write them) with no nodata value, or another one: 255 is
    landslide. Before, every 255 was taken as no data and the truth itself scored MIoU 36 %."""
    truth = _label(scenes, "scene-b")
    for nodata in (None, 7):
        pred = np.where(truth == 1, 255, 0).astype(np.uint8)
        if nodata is not None:
            pred[:3, :3] = nodata  # declared no data: ignored
        _write_prediction(tmp_path / "pred.tif", scenes, pred, nodata)
        metrics = evaluate(scenes / "scene-b", tmp_path / f"e{nodata}",
                           predictions=tmp_path / "pred.tif")
        assert metrics["miou"] == pytest.approx(1.0)
        assert metrics["landslide_f1"] == pytest.approx(1.0)
    # scdnn map's encoding (0/1, nodata 255) still reads 255 as no data
    pred = np.where(truth == 255, 255, truth).astype(np.uint8)
    _write_prediction(tmp_path / "map.tif", scenes, pred, 255)
    assert evaluate(scenes / "scene-b", tmp_path / "m",
                    predictions=tmp_path / "map.tif")["miou"] == pytest.approx(1.0)


def test_an_ambiguous_scene_prediction_is_refused(scenes, tmp_path):
    truth = _label(scenes, "scene-b")
    pred = np.where(truth == 255, 255, truth).astype(np.uint8)
    pred[0, 0], pred[0, 1] = 1, 255  # 0, 1 and 255, and nodata declared as 7
    _write_prediction(tmp_path / "pred.tif", scenes, pred, 7)
    with pytest.raises(UserError, match="pred.tif.*0, 1 and 255"):
        evaluate(scenes / "scene-b", tmp_path / "e", predictions=tmp_path / "pred.tif")
    assert not (tmp_path / "e").exists()


def test_evaluate_scene_predictions_scores_every_valid_labelled_pixel(scenes, tmp_path):
    truth = _label(scenes, "scene-b")
    pred = np.where(truth == 255, 255, truth).astype(np.uint8)
    pred[10:20, 30:60] = 1  # a false landslide band (and a few true ones)
    pred[40:44, 40:50] = 0
    with rasterio.open(scenes / "scene-b" / "mask.tif") as src:
        profile = src.profile
    with rasterio.open(tmp_path / "pred.tif", "w", **profile) as dst:
        dst.write(pred, 1)
    lines: list[str] = []
    metrics = evaluate(scenes / "scene-b", tmp_path / "e", predictions=tmp_path / "pred.tif",
                       summary=lines.append)
    assert metrics["confusion"] == _confusion(np.where(pred == 1, 1, 0), truth)
    assert sum(map(sum, metrics["confusion"])) == int(VALID.sum())
    assert metrics["boundary_tolerance_m"] == pytest.approx(2 * PX)
    assert _json(tmp_path / "e" / "metrics.json")["source"] == {
        "data": str(scenes / "scene-b"), "weights": None,
        "predictions": str(tmp_path / "pred.tif"), "scenes": ["scene-b"], "tile": 2048,
        "overlap": 512}
    assert lines == ["scored 1 scene(s) (all scenes), every valid pixel",
                     "boundary tolerance: 2 px = 1.00 m"]
    row = next(csv.DictReader(open(tmp_path / "e" / "per_image.csv", newline="")))
    assert float(row["miou"]) == pytest.approx(
        per_image_scores(np.where(pred == 1, 1, 0), truth)["miou"], abs=1e-6)
    with pytest.raises(UserError, match="takes one mask raster"):
        evaluate(scenes, tmp_path / "x", predictions=tmp_path / "pred.tif", use_all=True)
    assert not (tmp_path / "x").exists()


def test_evaluate_scene_weights_maps_the_test_scene_and_keeps_its_mask(scenes, tmp_path):
    with rasterio.open(scenes / "scene-b" / "rgb.tif") as src:
        sample = np.moveaxis(src.read(), 0, -1)[:, 12:]
    weights = spread_weights(tmp_path / "w" / "weights.safetensors", sample, TINY,
                             split={"train": ["scene-a"], "val": [], "test": ["scene-b"]})
    metrics = evaluate(scenes, tmp_path / "e", weights=str(weights), tile=32, overlap=8)
    assert metrics["scored"] == "test scenes of the split in the model card"
    with rasterio.open(tmp_path / "e" / "masks" / "scene-b.tif") as src:
        mask = src.read(1)
    assert (mask[~VALID] == 255).all() and np.isin(mask[VALID], (0, 1)).all()
    assert metrics["confusion"] == _confusion(np.where(mask == 1, 1, 0),
                                              _label(scenes, "scene-b"))
    assert (metrics["source"]["tile"], metrics["source"]["overlap"]) == (32, 8)
    source = open_source_for_model(scenes, ModelCard.from_dict(_json(weights.parent
                                                                     / "model.json")))
    assert isinstance(source, SceneSource) and source.scoring_outputs(["scene-b"]) == [
        "metrics.json", "per_image.csv", "masks/scene-b.tif"]
    assert all((tmp_path / "e" / f).is_file() for f in source.scoring_outputs(["scene-b"]))


# --- per-tile scoring and the benchmark's pieces -------------------------------------------

def test_score_tiles_hand_computed():
    """A 6 x 8 label cut into 4 px tiles: (0,0) is scored; (0,4) has 1 labelled pixel, below
    10 % of 16, and is left out; the bottom tiles are 2 x 4."""
    label = np.full((6, 8), 255, np.uint8)
    label[0:4, 0:4] = 0
    label[1:3, 1:3] = 1            # tile (0,0): 4 landslide, 12 background
    label[0, 5] = 0                # tile (0,4): 1 labelled pixel
    label[4:6, 0:4] = 0            # tile (4,0): all background
    label[4:6, 4:8] = 1            # tile (4,4): all landslide
    pred = np.zeros((6, 8), np.uint8)
    pred[1:3, 1:4] = 1             # tile (0,0): 4 hits, 2 false landslide pixels
    pred[0, 0] = 255               # no data: not landslide
    rows = score_tiles(pred, label, tile=4, tolerance=0)
    assert [(r["row"], r["col"], r["height"], r["width"]) for r in rows] == [
        (0, 0, 4, 4), (4, 0, 2, 4), (4, 4, 2, 4)]
    first, background, landslide = rows
    # tile (0,0): background IoU 10/12, landslide IoU 4/6, MIoU their mean
    assert first["miou"] == pytest.approx((10 / 12 + 4 / 6) / 2)
    assert first["landslide_pa"] == 1.0 and first["background_pa"] == pytest.approx(10 / 12)
    assert first["landslide_iou"] == pytest.approx(4 / 6)
    # boundary: all 6 predicted pixels are boundary, 4 on the true one (tolerance 0);
    # precision 4/6, recall 4/4
    assert first["boundary_f1"] == pytest.approx(2 * (4 / 6) / (4 / 6 + 1))
    assert (first["valid"], first["landslide"], first["pixels"]) == (16, 4, 16)
    # all background, predicted so: the landslide class is left out, no landslide PA
    assert background["miou"] == 1.0 and background["landslide_pa"] is None
    assert background["landslide_iou"] is None and background["boundary_f1"] == 1.0
    # all landslide, none predicted
    assert landslide["miou"] == 0.0 and landslide["background_pa"] is None
    assert landslide["landslide_pa"] == 0.0 and landslide["pixels"] == 8
    assert [(t["row"], t["col"]) for t in select_tiles(label, 4)] == [(0, 0), (4, 0), (4, 4)]
    assert len(select_tiles(label, 4, min_valid=0.0)) == 4


def test_scene_pieces_score_tiles_from_the_kept_masks(scenes, tmp_path):
    source = open_source(scenes, test_scenes=["scene-b"])
    split = source.draw_split(seed=0, val_block=16)
    pieces = source.test_pieces(split, tile=16)
    truth = _label(scenes, "scene-b")
    assert [p.name for p in pieces.pieces] == [f"scene-b:{t['row']},{t['col']}"
                                               for t in select_tiles(truth, 16)]
    eval_dir = tmp_path / "eval"
    (eval_dir / "masks").mkdir(parents=True)
    with rasterio.open(scenes / "scene-b" / "mask.tif") as src:
        profile = src.profile
    with rasterio.open(eval_dir / "masks" / "scene-b.tif", "w", **profile) as dst:
        dst.write(truth, 1)  # a perfect prediction
    scored = pieces.scores(eval_dir)
    assert all(row["miou"] == 1.0 for row in scored.rows.values())
    assert scored.fig8["count"] == len(pieces.pieces) and scored.fig8["unit"] == "tiles"
    assert (eval_dir / "per_tile.csv").is_file()
    shown = pieces.examples(4)
    assert len(shown) == 4 and shown[0].landslide == max(p.landslide for p in pieces.pieces
                                                        if min(p.landslide,
                                                               p.valid - p.landslide)
                                                        >= 0.1 * p.valid)
    image, label = pieces.read(shown[0])
    row, col, height, width = shown[0].window
    assert image.shape == (height, width, 3)
    assert np.array_equal(label, truth[row:row + height, col:col + width])
    cut = pieces.predictions(shown, tmp_path)
    assert np.array_equal(cut[shown[0].name], label == 1)


def test_image_pieces_are_the_test_images_largest_landslide_share_first(folder_dataset):
    source = open_source(folder_dataset)
    split = Split(train=["d"], test=["a", "b", "c", "e"])
    pieces = source.test_pieces(split)
    # landslide pixels of 40 x 48: a 100, b 200, c 6, e 180
    assert [p.name for p in pieces.examples(3)] == ["b", "e", "a"]
    assert pieces.config() == {} and pieces.title == "Test images"


def test_evaluate_weights_scores_cleaned_masks_and_records_the_cleaning(folder_dataset,
                                                                        tmp_path):
    from scdnn.outlines import OutlineCleaning, clean_mask

    weights = spread_weights(tmp_path / "w" / "weights.safetensors",
                             read_image(folder_dataset / "images" / "a.png"), TINY)
    raw = evaluate(folder_dataset, tmp_path / "raw", weights=str(weights))
    cleaning = OutlineCleaning(min_area=40, max_hole=40, smooth=1, units="px")
    metrics = evaluate(folder_dataset, tmp_path / "e", weights=str(weights), cleaning=cleaning)
    changed = False
    for stem in FOLDER_PAIRS:
        before = read_mask(tmp_path / "raw" / "masks" / f"{stem}.png").astype(bool)
        after = read_mask(tmp_path / "e" / "masks" / f"{stem}.png").astype(bool)
        assert np.array_equal(after, clean_mask(before, cleaning))
        changed |= not np.array_equal(after, before)
    assert changed  # the cleaning did something on these masks
    assert metrics["confusion"] != raw["confusion"]
    assert raw["cleaning"] is None
    assert metrics["cleaning"]["units"] == "px" and metrics["cleaning"]["min_area"] == 40.0
    assert metrics["cleaning"]["pixels"]["smooth"] == 1.0
    assert _json(tmp_path / "e" / "metrics.json")["cleaning"] == metrics["cleaning"]
    # the kept (cleaned) masks, scored as given, give the same scores, without cleaning
    again = evaluate(folder_dataset, tmp_path / "p", predictions=tmp_path / "e")
    assert again["confusion"] == metrics["confusion"] and again["cleaning"] is None


def test_evaluate_scene_weights_cleans_in_metres(scenes, tmp_path):
    from scdnn.outlines import OutlineCleaning, clean_mask

    with rasterio.open(scenes / "scene-b" / "rgb.tif") as src:
        sample = np.moveaxis(src.read(), 0, -1)[:, 12:]
    weights = spread_weights(tmp_path / "w" / "weights.safetensors", sample, TINY,
                             split={"train": ["scene-a"], "val": [], "test": ["scene-b"]})
    evaluate(scenes, tmp_path / "raw", weights=str(weights), tile=32, overlap=8)
    cleaning = OutlineCleaning(min_area=5.0, max_hole=5.0, smooth=0.5)  # 0.5 m pixels
    metrics = evaluate(scenes, tmp_path / "e", weights=str(weights), tile=32, overlap=8,
                       cleaning=cleaning)
    with rasterio.open(tmp_path / "raw" / "masks" / "scene-b.tif") as src:
        raw = src.read(1)
    with rasterio.open(tmp_path / "e" / "masks" / "scene-b.tif") as src:
        cleaned = src.read(1)
    assert np.array_equal(cleaned, clean_mask(raw, cleaning, pixel_size=0.5))
    assert not np.array_equal(cleaned, raw)  # the cleaning did something
    assert (cleaned[~VALID] == 255).all()
    assert metrics["cleaning"]["units"] == "m" and metrics["cleaning"]["pixel_size"] == 0.5
    assert metrics["cleaning"]["pixels"] == {"min_area": 20.0, "max_hole": 20.0,
                                             "smooth": 1.0, "simplify": 1.0}
