"""The ``scdnn`` command line.

Every user mistake ends with exit status 2 and one line on stderr naming the file and the
problem (:class:`scdnn.errors.ScdnnError`, or a bad option caught by argparse); no traceback.
"""

from __future__ import annotations

import argparse
import errno
import sys
from pathlib import Path
from typing import Sequence

from . import __version__
from .cli_options import (
    Parser,
    devices,
    fraction,
    non_negative_float,
    non_negative_int,
    number,
    positive_float,
    positive_int,
    probability,
    seed,
)
from .errors import (
    InputFileError,
    InputFileNotFoundError,
    InvalidValueError,
    ScdnnError,
    param,
)

MODEL_CHOICES_HELP = "scdnn, sssn, segnet, deeplabv3plus-resnet50, deeplabv3plus-mobilenetv2"
#: How --recipe is explained (scdnn.trainers.recipes.Recipe; written out here so that
#: building the parser does not import torch).
RECIPE_HELP = ("NAME or NAME:part=value,... with NAME default or paper and parts "
               "optimizer=adam|adamw, schedule=constant|warmup-cosine, loss=ce|ce+dice, "
               "augmentation=basic|strong, ema=yes|no, weights=best|final (for ablations: "
               "default:loss=ce is the default recipe with cross-entropy alone)")


#: scdnn.engines.ENGINES, written out here so that building the parser does not import torch.
ENGINE_CHOICES = ("torch", "onnxruntime")
_ENGINE_HELP = ("what runs the network: torch, or onnxruntime (CPU) for an ONNX model from "
                "scdnn export, given as --weights (torch)")
#: scdnn.predictor.TTA_MODES, written out for the same reason.
TTA_CHOICES = ("none", "flips", "d4")
_TTA_HELP = ("test-time augmentation: average the landslide probabilities over the image and "
             "its left-right and upside-down flips (flips: 3 passes) or its 8 rotations and "
             "reflections (d4: 8 passes), each turned back (none)")


def _add_tta(p: argparse.ArgumentParser, help_suffix: str = "") -> None:
    p.add_argument("--tta", choices=TTA_CHOICES, default="none", help=_TTA_HELP + help_suffix)


def _progress(description: str):
    """A rich progress bar over an iterable, for anything that takes more than a few seconds."""
    from rich.progress import track

    return lambda items: track(list(items), description=description, transient=True,
                               console=_stderr_console())


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


_CLEANING_FLAGS = ("min_area", "max_hole", "smooth", "simplify")


def _add_cleaning(p: argparse.ArgumentParser, where: str, polygons: bool = False,
                  pixels: bool = False) -> None:
    """``--raw`` and the outline-cleaning options (:mod:`scdnn.outlines`); ``where`` says
    in which units the values are taken; ``pixels``: the command only sees pixels."""
    area, radius, tolerance = (("400 px", "2 px", "1 px") if pixels else
                               ("100 m² / 400 px", "1 m / 2 px", "0.5 m / 1 px"))
    square, length = ("PX", "PX") if pixels else ("M2", "M")
    p.add_argument("--raw", action="store_true",
                   help="no outline cleaning: the thresholded mask as the network gives it "
                   "(speckled, holed; what the benchmark scores)")
    p.add_argument("--min-area", type=non_negative_float, metavar=square,
                   help=f"cleaning: remove landslides (8-connected) smaller than this; "
                   f"{where} (the model's own mapping unit when its card has one, else "
                   f"{area})")
    p.add_argument("--max-hole", type=non_negative_float, metavar=square,
                   help=f"cleaning: fill holes inside landslides smaller than this; {where} "
                   f"(as --min-area)")
    p.add_argument("--smooth", type=non_negative_float, metavar=length,
                   help=f"cleaning: radius of the disk that closes then opens the outlines "
                   f"({radius}; 0: no smoothing)")
    if polygons:
        p.add_argument("--simplify", type=non_negative_float, metavar=length,
                       help=f"cleaning: Douglas-Peucker tolerance of the polygons "
                       f"({tolerance}; 0: pixel outlines)")


def _cleaning(args: argparse.Namespace):
    """The OutlineCleaning of the options (None with ``--raw``)."""
    from .outlines import OutlineCleaning

    given = {name: getattr(args, name, None) for name in _CLEANING_FLAGS}
    given = {name: value for name, value in given.items() if value is not None}
    if args.raw:
        if given:
            raise InvalidValueError(f"turns outline cleaning off; it cannot be combined "
                                    f"with {', '.join(param(n) for n in given)}",
                                    option="raw")
        return None
    return OutlineCleaning(**given)


def _add_region(p: argparse.ArgumentParser) -> None:
    """``scdnn map``'s options for several scenes (:mod:`scdnn.region`)."""
    g = p.add_argument_group(
        "several scenes (a region)",
        "Each scene is mapped into OUT/scenes/<name>/ (the files above, for that scene), "
        "and the job's landslides into one layer, OUT/landslides.gpkg and .parquet (a "
        "'scene' column; polygons straddling scenes merged), in one CRS; OUT/job.json "
        "records the scenes and their status. Run again, the job skips the scenes that are "
        "complete and maps the others.")
    g.add_argument("--scene-list", metavar="FILE",
                   help="a text file of scenes, one per line (as @FILE)")
    g.add_argument("--crs", help="CRS of the job layer, e.g. EPSG:32647 (the first scene's)")
    g.add_argument("--workers", type=positive_int, metavar="N",
                   help="map on a local Dask cluster of N processes, one thread each "
                   "(needs the region extra: pip install 'scdnn[region]')")
    g.add_argument("--scheduler", metavar="ADDRESS",
                   help="map on a running Dask cluster, e.g. tcp://host:8786; every worker "
                   "must see the scenes, weights and --out at the same paths")
    g.add_argument("--scheduler-timeout", type=positive_float, default=10.0, metavar="S",
                   help="seconds to wait for --scheduler (10)")
    g.add_argument("--block-windows", type=positive_int, default=64, metavar="N",
                   help="on Dask, a scene of more windows than this is mapped in blocks of "
                   "window rows by several workers (64)")
    g.add_argument("--retries", type=non_negative_int, default=2,
                   help="runs again a scene whose task failed (a worker killed) (2)")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="scdnn", description="Landslide boundary segmentation with SCDnn "
                     "(Li et al. 2024) and its comparison networks.")
    parser.add_argument("--version", action="version", version=f"scdnn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    p = sub.add_parser("models", help="list the networks with parameters and GFLOPs")
    p.add_argument("--size", type=positive_int, default=256, help="input size for GFLOPs (256)")
    p.add_argument("--in-channels", type=positive_int, default=3)

    p = sub.add_parser("train", help="train a network on a landslide dataset",
                       description="Train a network on DATA: images/ + masks/ folders, the "
                       "Bijie layout, or georeferenced scenes (a folder with rgb.tif + mask.tif "
                       "[+ dsm.tif], or a folder of such folders; random windows are drawn over "
                       "the valid area, --windows-per-epoch per epoch, and seeded blocks holding "
                       "--val-fraction of it are held out for validation). Writes "
                       "RUN_DIR/weights.safetensors, model.json, split.json, config.json, "
                       "log.csv and checkpoints/. The recipe (--recipe) sets optimiser, "
                       "schedule, loss, augmentation and which weights are kept: default "
                       "(AdamW, weight decay 0.01, 5 % linear warm-up then cosine decay to 0 "
                       "per step, cross-entropy + Dice, scale and colour augmentation, the "
                       "final exponential moving average of the weights) or paper (Adam at a "
                       "constant rate, cross-entropy, flips and rotations, the weights of the "
                       "epoch with the best validation MIoU).")
    p.add_argument("data", help="dataset folder")
    p.add_argument("--out", required=True, help="run folder (must be new or empty)")
    p.add_argument("--model", default="scdnn", help=f"network: {MODEL_CHOICES_HELP} (scdnn)")
    p.add_argument("--recipe", default="default",
                   help=f"training recipe (default; see above): {RECIPE_HELP}")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=positive_int, default=None,
                        help="epochs (50 unless --steps)")
    length.add_argument("--steps", type=positive_int, default=None, metavar="N",
                        help="train for N optimiser steps instead of a number of epochs "
                        "(validation also runs after the last step)")
    p.add_argument("--max-minutes", type=positive_float, default=None,
                   help="stop after this much training time even before --epochs/--steps "
                   "(a time budget; the run still writes its weights)")
    p.add_argument("--batch-size", type=positive_int, default=8, help="batch size (8)")
    p.add_argument("--image-size", type=positive_int, default=256,
                   help="training crop size in pixels the network sees (256): a crop of "
                   "IMAGE_SIZE / INPUT_SCALE pixels of the data; evaluation uses native sizes")
    p.add_argument("--input-scale", type=positive_float, default=1.0, metavar="S",
                   help="run the network at S times the data's resolution, S = 1/k for an "
                   "integer k up to 16 (1): at 0.5 it sees means of 2 x 2 pixels and each "
                   "crop it sees covers four times the ground, "
                   "for landslides far larger than a crop; recorded on the model card, so "
                   "predict, evaluate, map and demo resample the same way, and masks stay "
                   "at the data's resolution")
    p.add_argument("--crops-per-image", type=positive_int, default=1,
                   help="random crops per training image per epoch (1)")
    p.add_argument("--seed", type=seed, default=0, help="seed for split, weights, sampling (0)")
    p.add_argument("--lr", type=positive_float, default=1e-3,
                   help="learning rate: Adam's (paper), AdamW's peak (default) (0.001)")
    p.add_argument("--encoder-weights", metavar="FILE", default=None,
                   help="deeplabv3plus-resnet50/-mobilenetv2 only: start the encoder from "
                   "these pretrained weights (a local safetensors file, or a torch file "
                   "of plain tensors, read with weights_only=True; pickled code is refused), "
                   "with the encoder's keys, e.g. torchvision's ImageNet checkpoints")
    p.add_argument("--class-weights", type=non_negative_float, nargs=2, metavar=("BG", "LS"),
                   help="cross-entropy weights for background and landslide")
    p.add_argument("--test-fraction", type=fraction, default=0.3, help="test share (0.3)")
    p.add_argument("--val-fraction", type=fraction, default=0.1,
                   help="validation share, taken from the training part (0.1)")
    p.add_argument("--split", help="reuse a split.json instead of drawing one")
    p.add_argument("--use-dem", action="store_true", help="Bijie layout: add the DEM as a channel")
    p.add_argument("--use-dsm", action="store_true",
                   help="scenes: add terrain channels (slope, relative elevation) from each "
                   "scene's dsm.tif; the model then needs --dsm when mapping")
    p.add_argument("--test-scenes", nargs="+", metavar="NAME", default=None,
                   help="scenes: hold these scene folders out of training (scored by "
                   "scdnn evaluate)")
    p.add_argument("--windows-per-epoch", type=positive_int, default=256,
                   help="scenes: random training windows per epoch (256)")
    p.add_argument("--val-block", type=positive_int, default=512,
                   help="scenes: size in pixels of the held-out validation blocks (512)")
    p.add_argument("--include-non-landslide", action="store_true",
                   help="Bijie layout: add non-landslide images as all-background samples")
    p.add_argument("--accelerator", default="auto", help="cpu, gpu, auto (auto)")
    p.add_argument("--devices", type=devices, default="auto",
                   help="devices per machine: a number, -1 (all), indices like 0,1, or auto "
                   "(auto); more than one trains with DDP, one process per device (on the "
                   "CPU too: --accelerator cpu --devices 2)")
    p.add_argument("--num-nodes", type=positive_int, default=1,
                   help="machines in a multi-node DDP run (1); start the same command on "
                   "each with MASTER_ADDR, MASTER_PORT and NODE_RANK set (see README)")
    p.add_argument("--precision", default="32-true",
                   help="32-true, bf16-mixed (also on CPU), 16-mixed (GPU) (32-true)")
    p.add_argument("--workers", type=non_negative_int, default=None,
                   help="data-loading workers (0 on ≤ 2 cores, else 2)")
    p.add_argument("--resume", action="store_true",
                   help="continue the killed run in --out to its end (its own config.json: "
                   "recipe, epochs or steps; a run killed before its first checkpoint starts "
                   "over with its own options)")
    p.add_argument("--overwrite", action="store_true", help="allow a non-empty --out")

    p = sub.add_parser("evaluate", help="score a model or existing masks against the truth",
                       description="Score a model (--weights) or mask files of any tool "
                       "(--predictions, paired by file stem) against DATA's masks. Writes "
                       "OUT/metrics.json and OUT/per_image.csv and prints the table; with "
                       "--weights also OUT/masks/<name>.png (the predicted masks, 0/255, "
                       "drawn by scdnn report). With --weights, the test part of the model's "
                       "own split is scored when DATA holds those images, every image when "
                       "it holds none of them (another dataset); DATA holding only some is "
                       "refused. --split or --all choose otherwise. With --weights the "
                       "predicted masks are cleaned as scdnn map cleans them (small objects "
                       "removed, small holes filled, outlines smoothed; --raw: not) and the "
                       "cleaned masks are scored; --predictions are scored as given. "
                       "With --polygons, DATA is a landslide inventory (polygons: .gpkg, "
                       ".shp, .geojson or .parquet, any CRS) and the polygons of a map are "
                       "scored against it: both are rasterised on the grid of the map's "
                       "mask.tif (a pixel counts when its centre is inside a polygon), "
                       "only where the map has data and inside --aoi. Boundary F1 is "
                       "printed at --tolerance and at 1, 2, 4 and 8 px, and on scenes in a "
                       "projected CRS in metres also at 0.5, 1, 2 and 4 m on the ground "
                       "(converted to pixels with each scene's own pixel size; none on "
                       "images, or on scenes without a CRS or in degrees).")
    p.add_argument("data", help="dataset folder with the true masks (scene folders may hold "
                   "labels.gpkg/.shp/.geojson polygons instead of mask.tif, with an optional "
                   "aoi.gpkg); with --polygons, the inventory file")
    p.add_argument("--out", required=True, help="evaluation folder (must be new or empty)")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--weights", help="weights.safetensors of a run")
    group.add_argument("--predictions", help="folder of predicted masks (0/255 or 0/1)")
    group.add_argument("--polygons", help="predicted landslide polygons: a scdnn map folder "
                       "(its landslides.gpkg, on the grid of its mask.tif) or a polygon file "
                       "(on the grid of the mask.tif beside it, or --grid)")
    p.add_argument("--aoi", help="with --polygons: polygons saying where the inventory is "
                   "complete; only pixels inside them are scored (default: the whole grid)")
    p.add_argument("--grid", help="with --polygons: the raster whose grid (CRS, transform, "
                   "size, no-data) both are rasterised on (default: the map's mask.tif)")
    p.add_argument("--split", help="score the test part of this split.json")
    p.add_argument("--all", action="store_true", dest="use_all", help="score every image")
    p.add_argument("--tolerance", type=non_negative_int, default=2,
                   help="boundary F1 tolerance in pixels (2; metrics.json also gives it in "
                   "metres for scenes; the ground tolerances 0.5-4 m are fixed)")
    p.add_argument("--tile", type=positive_int, default=2048,
                   help="scenes: window size, as scdnn map (2048)")
    p.add_argument("--overlap", type=non_negative_int, default=512,
                   help="scenes: blended overlap, as scdnn map (512)")
    p.add_argument("--batch-size", type=positive_int, default=1,
                   help="scenes: windows per batch (1)")
    _add_cleaning(p, "in m² on georeferenced scenes, px on images")
    _add_tta(p, "; with --weights, recorded in metrics.json")
    p.add_argument("--overwrite", action="store_true", help="allow a non-empty --out")

    p = sub.add_parser("predict", help="write landslide masks and probabilities for images",
                       description="Write OUT/masks/<stem>.png (0/255) and "
                       "OUT/probabilities/<stem>.png (landslide probability × 255). Masks "
                       "are cleaned (landslides under 400 px removed, holes under 400 px "
                       "filled, outlines smoothed with a 2 px disk) unless --raw.")
    p.add_argument("images", help="folder of images (or a dataset folder with images/)")
    p.add_argument("--weights", required=True,
                   help="weights.safetensors (with --engine onnxruntime: the .onnx model)")
    p.add_argument("--out", required=True, help="output folder (must be new or empty)")
    p.add_argument("--threshold", type=probability, default=0.5, help="mask threshold (0.5)")
    p.add_argument("--engine", choices=ENGINE_CHOICES, default="torch", help=_ENGINE_HELP)
    _add_cleaning(p, "in pixels (images have no pixel size)", pixels=True)
    _add_tta(p)
    p.add_argument("--overwrite", action="store_true", help="allow a non-empty --out")

    p = sub.add_parser("map", help="map landslides in a whole georeferenced scene",
                       description="Map landslides in SCENE (a GeoTIFF or any raster GDAL "
                       "reads; uint8 bands) window by window, blending overlapping windows. "
                       "Writes OUT/probability.tif (landslide probability in percent: uint8 0-100, "
                       "255 no data, GDAL scale 0.01) and OUT/mask.tif (0 "
                       "background, 1 landslide, 255 no data), both Cloud Optimized GeoTIFFs "
                       "on the scene's grid, OUT/landslides.gpkg (one polygon per landslide: "
                       "id, area_m2, perimeter_m, mean_probability, max_probability) and "
                       "OUT/map.json. The mask is cleaned before it is polygonized, so "
                       "mask.tif and the polygons hold the same landslides: outlines smoothed "
                       "(closing then opening, --smooth), landslides smaller than --min-area "
                       "removed, holes smaller than --max-hole filled, polygons simplified "
                       "(--simplify); values in metres, converted with the pixel size (pixel "
                       "defaults on a scene without a projected CRS); --raw keeps the raw "
                       "mask and pixel outlines. No data (mask band, nodata value, alpha) is "
                       "never predicted. Memory grows with the scene's width, not its area.")
    p.add_argument("scene", nargs="+", metavar="SCENE",
                   help="scene raster (GeoTIFF); several scenes map a region: paths, folders "
                   "(their GeoTIFFs), quoted globs ('tiles/*.tif'), @LIST (a text file of "
                   "paths, one per line) or a GDAL VRT mosaic (its source files)")
    p.add_argument("--dsm", help="the scene's surface model (elevation raster), needed by "
                   "weights trained with --use-dsm; another grid is resampled onto the scene's")
    p.add_argument("--weights", required=True,
                   help="weights.safetensors (with --engine onnxruntime: the .onnx model)")
    p.add_argument("--out", required=True, help="output folder (must be new or empty)")
    p.add_argument("--bands", type=positive_int, nargs="+", metavar="N", default=None,
                   help="the scene's bands the model reads, 1-based, in its order (default: "
                   "the non-alpha bands when there are as many as the model takes, or the "
                   "bands labelled red, green, blue; e.g. --bands 1 2 3 on RGB + infrared)")
    p.add_argument("--tile", type=positive_int, default=2048,
                   help="window size in pixels (2048; SCDnn needs about 2 GB of memory per "
                   "window of this size; smaller windows see less context around each pixel "
                   "and agree less with one pass over the whole scene, see the README)")
    p.add_argument("--overlap", type=non_negative_int, default=512,
                   help="pixels shared by neighbouring windows, blended (512; at most tile/2)")
    p.add_argument("--batch-size", type=positive_int, default=1, help="windows per batch (1)")
    p.add_argument("--threshold", type=probability, default=0.5,
                   help="landslide where probability ≥ this (0.5)")
    _add_cleaning(p, "in m² (px² on a scene without a projected CRS)", polygons=True)
    p.add_argument("--format", choices=["gpkg", "geojson"], default="gpkg", dest="fmt",
                   help="polygon file format (gpkg)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda (cpu)")
    p.add_argument("--engine", choices=ENGINE_CHOICES, default="torch", help=_ENGINE_HELP)
    _add_tta(p, "; windows are the same, each one is augmented; recorded in map.json")
    p.add_argument("--overwrite", action="store_true", help="allow a non-empty --out")
    _add_region(p)

    p = sub.add_parser("export", help="write a weights file as an ONNX model",
                       description="Write the network of a weights file as an ONNX model "
                       "(opset 18+): input 'image' (N x C x H x W float32, normalised as the "
                       "model card says), output 'logits' (N x 2 x H x W); batch, height and "
                       "width are dynamic. The model card is embedded in the ONNX metadata "
                       "(key 'scdnn'), so scdnn predict/map --engine onnxruntime run the file "
                       "alone. The export is checked against PyTorch before it is written. "
                       "Prints the path.")
    p.add_argument("--weights", required=True, help="weights.safetensors of a run")
    p.add_argument("--format", choices=["onnx"], default="onnx", dest="fmt",
                   help="model format (onnx)")
    p.add_argument("--out", required=True, metavar="FILE", help="file to write, e.g. model.onnx")
    p.add_argument("--opset", type=number(int, lambda v: v >= 18, "must be an integer ≥ 18"),
                   default=18, help="ONNX opset (18, the lowest the exporter writes)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")

    p = sub.add_parser("report", help="one self-contained report.html of a run folder",
                       description="Write one self-contained HTML page (figures embedded, "
                       "nothing loaded from the network) for RUN_DIR: an evaluation folder "
                       "(scdnn evaluate: metrics tables, confusion matrix heat map, per-image "
                       "MIoU histogram, images with true and predicted boundaries), a mapping "
                       "folder (scdnn map: summary, scene overview with the landslide "
                       "polygons, probability overview, the largest landslides) or a benchmark "
                       "folder (scdnn benchmark: its tables and figures). Prints the path.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="evaluation, mapping or benchmark folder")
    p.add_argument("--out", metavar="FILE", help="HTML file to write (RUN_DIR/report.html)")

    from .benchmark.cli import add_parser as add_benchmark_parser

    add_benchmark_parser(sub)

    p = sub.add_parser("demo", help="map landslides on bundled real images, offline",
                       description="Map the bundled sample (held-back aerial test images of "
                       "Sichuan, CC BY 4.0) with the bundled SCDnn weights, as scdnn map does "
                       "(masks cleaned unless --raw), score the masks against the sample's "
                       "truth and write OUT/maps/<name>/ "
                       "(probability.tif, mask.tif, landslides.gpkg, map.json), OUT/masks/, "
                       "OUT/metrics.json, OUT/per_image.csv and OUT/report.html. Prints the "
                       "scores and where the report is. OUT is replaced on each run when it "
                       "is a previous demo output (it holds a .scdnn-demo file).")
    p.add_argument("--out", default="demo-output",
                   help="output folder (demo-output; a previous demo output is replaced)")
    p.add_argument("--weights", help="weights.safetensors to use instead of the bundled ones "
                   "(RGB inputs)")
    p.add_argument("--sample", help="dataset folder (images/ + masks/) to use instead of the "
                   "bundled sample")
    _add_cleaning(p, "in pixels (the sample's PNGs have no pixel size)", polygons=True,
                  pixels=True)
    _add_tta(p)
    p.add_argument("--overwrite", action="store_true",
                   help="write into a non-empty --out that is not a demo output (nothing in "
                   "it is deleted)")
    return parser


def _cmd_models(args: argparse.Namespace) -> None:
    from .models import MODEL_NAMES, count_parameters, create_model, gflops

    print(f"{'model':<28}{'parameters':>14}{'GFLOPs @' + str(args.size):>16}")
    for name in MODEL_NAMES:
        model = create_model(name, in_channels=args.in_channels)
        print(f"{name:<28}{count_parameters(model):>14,}"
              f"{gflops(model, in_channels=args.in_channels, size=args.size):>16.2f}")


def _cmd_train(args: argparse.Namespace) -> None:
    from .runs import launched_rank_zero
    from .trainers.fit import TrainConfig, env_workers, train
    from .trainers.recipes import Recipe

    config = TrainConfig(
        data=args.data, out=args.out, model=args.model,
        epochs=None if args.steps is not None else (args.epochs or 50), max_steps=args.steps,
        recipe=Recipe.parse(args.recipe).text, encoder_weights=args.encoder_weights,
        max_minutes=args.max_minutes,
        batch_size=args.batch_size, image_size=args.image_size,
        crops_per_image=args.crops_per_image, seed=args.seed, lr=args.lr,
        class_weights=list(args.class_weights) if args.class_weights else None,
        test_fraction=args.test_fraction, val_fraction=args.val_fraction, split=args.split,
        use_dem=args.use_dem, include_non_landslide=args.include_non_landslide,
        accelerator=args.accelerator, devices=args.devices, num_nodes=args.num_nodes,
        precision=args.precision,
        workers=env_workers() if args.workers is None else args.workers,
        windows_per_epoch=args.windows_per_epoch, test_scenes=args.test_scenes,
        use_dsm=args.use_dsm, val_block=args.val_block,
        model_kwargs={} if args.input_scale == 1 else {"input_scale": args.input_scale},
    )
    weights = train(config, resume=args.resume, overwrite=args.overwrite)
    if launched_rank_zero():  # the other ranks of a distributed run say nothing
        print(f"weights: {weights}")


def _cmd_evaluate(args: argparse.Namespace) -> None:
    from .evaluation import evaluate, evaluate_polygons
    from .metrics import format_table

    if args.polygons is not None:
        if not args.raw and any(getattr(args, n, None) is not None for n in _CLEANING_FLAGS):
            raise InvalidValueError(f"the cleaning options apply to a model's masks "
                                    f"({param('weights')}); {param('polygons')} are "
                                    f"scored as given")
        metrics = evaluate_polygons(args.data, args.polygons, args.out, aoi=args.aoi,
                                    grid=args.grid, tolerance=args.tolerance,
                                    overwrite=args.overwrite, summary=print)
        print(format_table(metrics))
        print(f"metrics: {args.out}/metrics.json")
        return
    if args.aoi is not None or args.grid is not None:
        raise InvalidValueError(f"{param('aoi')} and {param('grid')} go with "
                                f"{param('polygons')}; a scene folder's area of interest is "
                                "its aoi.gpkg")
    cleaning = _cleaning(args)
    if args.predictions is not None:
        if not args.raw and any(getattr(args, n, None) is not None for n in _CLEANING_FLAGS):
            raise InvalidValueError(f"the cleaning options apply to a model's masks "
                                    f"({param('weights')}); {param('predictions')} are "
                                    f"scored as given")
        cleaning = None
    metrics = evaluate(args.data, args.out, weights=args.weights, predictions=args.predictions,
                       split=args.split, use_all=args.use_all, tolerance=args.tolerance,
                       tile=args.tile, overlap=args.overlap, batch_size=args.batch_size,
                       cleaning=cleaning, tta=args.tta,
                       overwrite=args.overwrite, progress=_progress("scoring"), summary=print)
    print(format_table(metrics))
    print(f"metrics: {args.out}/metrics.json")


def _cmd_predict(args: argparse.Namespace) -> None:
    from .inference import predict_folder

    out = predict_folder(args.images, args.weights, args.out, threshold=args.threshold,
                         overwrite=args.overwrite, progress=_progress("predicting"),
                         engine=args.engine, cleaning=_cleaning(args), tta=args.tta)
    print(f"masks: {out}/masks  probabilities: {out}/probabilities")


def _map_scenes(args: argparse.Namespace) -> list[Path]:
    """The scenes ``scdnn map`` was given (:func:`scdnn.region.resolve_scenes`), once, with
    the refusal of the options that only apply to several."""
    from .region.inputs import resolve_scenes

    if getattr(args, "scenes", None) is None:
        scenes = resolve_scenes(args.scene, args.scene_list)
        if len(scenes) == 1:
            for name in ("crs", "workers", "scheduler"):
                if getattr(args, name) is not None:
                    raise InvalidValueError(f"applies to several scenes; {scenes[0]} is the "
                                            f"only one (mapped here, in its own CRS)",
                                            option=name)
        elif args.workers is not None and args.scheduler is not None:
            raise InvalidValueError(f"cannot be combined with {param('scheduler')}",
                                    option="workers")
        args.scenes = scenes
    return args.scenes


def _cmd_map(args: argparse.Namespace) -> None:
    from .mapping import Tiling, map_scene
    from .predictor import Predictor

    tiling = Tiling(args.tile, args.overlap, args.batch_size)  # refused before loading
    cleaning = _cleaning(args)
    if len(_map_scenes(args)) > 1:
        _cmd_map_region(args, tiling, cleaning)
        return
    predictor = Predictor.from_file(args.weights, engine=args.engine, device=args.device,
                                    tta=args.tta)
    summary = map_scene(
        args.scenes[0], predictor, args.out, tiling=tiling, threshold=args.threshold,
        cleaning=cleaning, fmt=args.fmt, dsm=args.dsm, bands=args.bands,
        overwrite=args.overwrite, progress=_progress("mapping"),
        warn=lambda message: print(f"scdnn map: warning: {message}", file=sys.stderr))
    windows = summary["windows"]
    unit = "m" if summary["units"] == "metre" else summary["units"]
    print(f"bands read: {' '.join(str(b) for b in summary['bands'])} (choose with --bands)")
    print(f"windows: {windows['run']} run, {windows['skipped_no_valid_pixel']} skipped "
          f"(no valid pixel)")
    print(f"cleaning: {_describe_cleaning(summary.get('cleaning'))}")
    polygons = "polygon" if summary["landslides"] == 1 else "polygons"
    print(f"landslides: {summary['landslides']} {polygons}, "
          f"{summary['landslide_area']:.1f} {unit}² of {summary['valid_area']:.1f} {unit}² valid")
    print(f"outputs: {args.out}/{{{', '.join(summary['outputs'])}, map.json}}")


def _cmd_map_region(args: argparse.Namespace, tiling, cleaning) -> None:
    """``scdnn map`` of several scenes (:func:`scdnn.region.map_region`)."""
    from .region import RegionOptions, map_region

    options = RegionOptions(
        weights=args.weights, engine=args.engine, device=args.device, tta=args.tta,
        tile=tiling.tile, overlap=tiling.overlap, batch_size=tiling.batch_size,
        threshold=args.threshold, cleaning=cleaning, fmt=args.fmt, dsm=args.dsm,
        bands=None if args.bands is None else tuple(args.bands))
    job = map_region(args.scenes, options, args.out, crs=args.crs, workers=args.workers,
                     scheduler=args.scheduler, scheduler_timeout=args.scheduler_timeout,
                     retries=args.retries, block_windows=args.block_windows,
                     overwrite=args.overwrite,
                     progress=_job_progress(f"mapping {len(args.scenes)} scenes"),
                     warn=lambda message: print(f"scdnn map: warning: {message}",
                                                file=sys.stderr))
    print(f"scenes: {job['scenes_mapped']} mapped, {job['scenes_kept']} complete already "
          f"(kept)")
    polygons = "polygon" if job["landslides"] == 1 else "polygons"
    print(f"landslides: {job['landslides']} {polygons} in {job['crs']}")
    print(f"outputs: {args.out}/{{scenes/<name>/, landslides.gpkg, landslides.parquet, "
          f"job.json}}")


def _job_progress(description: str):
    """One rich progress bar for a whole job: ``progress(total)`` -> ``advance(n)``."""
    import contextlib

    @contextlib.contextmanager
    def progress(total: int):
        from rich.progress import Progress

        with Progress(console=_stderr_console(), transient=True) as bar:
            task = bar.add_task(description, total=total)
            yield lambda n=1: bar.advance(task, n)

    return progress


def _describe_cleaning(record) -> str:
    """One line on the cleaning a record (map.json) says was used."""
    if record is None:
        return "none (--raw)"
    u, px = record["units"], record["pixels"]
    return (f"landslides < {record['min_area']:g} {u}² removed, holes < "
            f"{record['max_hole']:g} {u}² filled, smoothed with a {record['smooth']:g} {u} "
            f"disk, polygons simplified by {record['simplify']:g} {u} (in pixels: "
            f"{px['min_area']:g}, {px['max_hole']:g}, {px['smooth']:g}, {px['simplify']:g})")


def _cmd_report(args: argparse.Namespace) -> None:
    from .report import write_report

    print(write_report(args.run_dir, args.out))


def _cmd_export(args: argparse.Namespace) -> None:
    from .export import export_onnx

    print(export_onnx(args.weights, args.out, opset=args.opset, overwrite=args.overwrite))


def _cmd_benchmark(args: argparse.Namespace) -> None:
    from .benchmark.cli import run

    run(args)


def _cmd_demo(args: argparse.Namespace) -> None:
    from .demo import run_demo
    from .metrics import format_table

    result = run_demo(out=args.out, weights=args.weights, sample=args.sample,
                      overwrite=args.overwrite, cleaning=_cleaning(args),
                      progress=_progress("mapping"), tta=args.tta,
                      warn=lambda message: print(f"scdnn demo: note: {message}",
                                                 file=sys.stderr))
    print(f"scored {result['images']} sample images against their truth masks")
    print(format_table(result))
    for name, summary in result["maps"].items():
        polygons = "polygon" if summary["landslides"] == 1 else "polygons"
        print(f"{name}: {summary['landslides']} landslide {polygons} in "
              f"{args.out}/maps/{name}/landslides.gpkg")
    print(f"report: {result['report']}")


def _check_paths(args: argparse.Namespace) -> None:
    """Refuse a missing input file or folder, or an output the command would refuse, at once:
    before the command imports torch, which takes seconds. The messages are the commands'
    own; only what a look at the paths can tell is checked here, the commands check the rest.
    Inputs are checked in argument order, then the output."""
    from .runs import check_out_dir, launched_rank_zero

    def dataset(path: str) -> None:
        if not Path(path).exists():
            raise InputFileNotFoundError("dataset folder does not exist", path)
        if not Path(path).is_dir():
            raise InputFileError("dataset path is not a folder", path)

    def input_file(path: str, what: str) -> None:
        """A file to read: missing, a folder, a broken or looping link each said as such."""
        p = Path(path)
        if p.is_file():
            return
        if p.is_dir():
            raise InputFileError(f"is a folder, not a {what}", path)
        if p.is_symlink():
            try:
                p.resolve(strict=True)
            except RuntimeError:  # Python < 3.13 reports a loop this way
                raise InputFileError(f"cannot read {what}: symbolic link loop", path) from None
            except OSError as exc:
                reason = ("symbolic link loop" if exc.errno == errno.ELOOP
                          else "broken symbolic link")
                raise InputFileError(f"cannot read {what}: {reason}", path) from None
        if p.exists():
            raise InputFileError(f"is not a regular file (cannot read {what})", path)
        raise InputFileNotFoundError(f"{what} does not exist", path)

    def weights(path: str, engine: str = "torch") -> None:
        input_file(path, "model file" if engine == "onnxruntime" else "weights file")

    command = args.command
    if command == "train":
        if not launched_rank_zero():  # another rank of a distributed run: rank 0 checks
            return
        if args.resume:  # DATA and the options then come from the run's config.json
            run = Path(args.out)
            if not ((run / "checkpoints" / "last.ckpt").is_file()
                    or ((run / "config.json").is_file() and (run / "split.json").is_file())):
                raise InvalidValueError("--resume: no checkpoint to resume from "
                                "(checkpoints/last.ckpt)", args.out)
            return
        dataset(args.data)
        check_out_dir(args.out, args.overwrite)
    elif command == "evaluate":
        if args.tta != "none" and args.weights is None:
            raise InvalidValueError("--tta augments a model's predictions; it needs --weights, "
                                    "not --predictions")
        if args.polygons is not None:
            input_file(args.data, "landslide inventory file")
            if args.aoi is not None:
                input_file(args.aoi, "area-of-interest file")
            check_out_dir(args.out, args.overwrite)
            return
        dataset(args.data)
        if args.weights is not None:
            weights(args.weights)
        check_out_dir(args.out, args.overwrite)
    elif command == "predict":
        if not Path(args.images).is_dir():
            raise InputFileNotFoundError("image folder does not exist", args.images)
        weights(args.weights, args.engine)
        check_out_dir(args.out, args.overwrite)
    elif command == "map":
        only = args.scene[0]
        if (len(args.scene) == 1 and args.scene_list is None and not only.startswith("@")
                and not Path(only).is_dir()
                and (Path(only).exists() or not any(c in only for c in "*?["))):
            input_file(only, "scene file")  # one scene: the messages of before
        scenes = _map_scenes(args)
        if args.dsm is not None:
            input_file(args.dsm, "DSM file")
        weights(args.weights, args.engine)
        if len(scenes) == 1:
            check_out_dir(args.out, args.overwrite)
    elif command == "export":
        weights(args.weights)
        out = Path(args.out)
        if out.is_dir():
            raise InputFileError("output path is a folder; give the .onnx file to write", out)
        if out.exists() and not args.overwrite:
            raise InputFileError("output file exists (use --overwrite)", out)


COMMANDS = {"models": _cmd_models, "train": _cmd_train, "evaluate": _cmd_evaluate,
            "predict": _cmd_predict, "map": _cmd_map, "export": _cmd_export,
            "benchmark": _cmd_benchmark,
            "demo": _cmd_demo, "report": _cmd_report}


#: Errors of the file system (errno) that end a command with one line and status 2.
_FILE_SYSTEM_ERRORS = {errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT,
                       errno.ENAMETOOLONG}


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``scdnn`` with ``argv`` and return its exit status (0, 2 for any mistake in the
    options or the input, 130 when interrupted); it never raises ``SystemExit``.

    Run as the program (``argv`` None: the ``scdnn`` command, ``python -m scdnn.cli``), it
    first tunes its own process's memory allocator (:func:`scdnn.runtime.keep_freed_memory`:
    a network pass on the CPU took 0.54 times as long, benchmarks/results/allocator.md);
    called with ``argv`` from Python, it leaves the caller's process alone."""
    if argv is None:
        from .runtime import keep_freed_memory

        keep_freed_memory()
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version (0) and a bad option (2)
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2
    try:
        _check_paths(args)
        COMMANDS[args.command](args)
    except ScdnnError as exc:
        print(f"scdnn {args.command}: error: {exc.cli_message()}", file=sys.stderr)
        return 2
    except OSError as exc:
        # the file system refused: read-only, no permission, full disk. Not a bug of scdnn
        # and nothing a traceback helps with; anything else is one and keeps its traceback
        if exc.errno not in _FILE_SYSTEM_ERRORS:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"scdnn {args.command}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"scdnn {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
