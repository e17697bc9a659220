"""One interface over the two kinds of data the package trains and scores on.

- :class:`ImageFolderSource`: an ``images/`` + ``masks/`` folder or the Bijie layout (the
  readers :class:`~scdnn.datasets.ImageMaskFolder` and :class:`~scdnn.datasets.BijieLandslide`);
  a sample is an image, scored whole at its native size.
- :class:`SceneSource`: georeferenced scene folders (``rgb.tif`` + ``mask.tif`` [+ ``dsm.tif``],
  :class:`~scdnn.datasets.scenes.SceneCollection`); a sample is a scene, predicted window by
  window as ``scdnn map`` predicts it and scored on every valid labelled pixel.

Both follow :class:`DataSource`, which covers what the rest of the package needs from data:
its sample names; drawing a split and loading a saved one (:class:`scdnn.records.Split`,
checked against the data here and nowhere else); what training needs
(:class:`TrainingData`); which samples to score for a model card, a split file or all; scoring
a model or saved predictions into a :class:`scdnn.metrics.Evaluator`; the pieces of the test
samples the benchmark shows and scores one by one (:mod:`.pieces`); and the identity a
benchmark records. :func:`open_source` picks the implementation from the folder's layout, so
``scdnn train``, ``scdnn evaluate`` and ``scdnn benchmark`` never ask which kind they have.

``kind`` (``"dataset"`` or ``"scenes"``) is the name a benchmark records in its identity and
looks its per-kind budget settings up by; it is data, not something to branch on.

Messages about the options that pick the data name them as parameters (``test_scenes``,
``use_dsm``, ``use_dem``, ``include_non_landslide``); the command line prints them as the
flags ``scdnn train`` and ``scdnn benchmark`` take (:func:`scdnn.errors.param`).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Protocol, Sequence, runtime_checkable

import numpy as np

from ..errors import InputFileError, InputFileNotFoundError, InvalidValueError, param
from ..records import ModelCard, Split
from .io import IGNORE_INDEX, IMAGE_EXTENSIONS

#: Crops up to this side are allowed whatever the image sizes (the default 256 on small
#: images); beyond it, at most twice the largest training image.
MAX_PADDED_CROP = 512

if TYPE_CHECKING:  # heavy imports (torch, Lightning, rasterio) stay lazy
    import lightning as L
    import torch

    from ..metrics import Evaluator
    from .pieces import TestPieces
    from .transforms import Normalization

__all__ = ["DataSource", "ImageFolderSource", "SceneSource", "ScoringOptions", "TrainingData",
           "open_source", "open_source_for_model", "image_inputs"]

#: Side in pixels of the tiles a benchmark scores one by one on scenes (Fig. 8 / Fig. 9).
SCENE_TILE = 512

Progress = Callable[[Iterable], Iterable]


@dataclasses.dataclass(frozen=True)
class ScoringOptions:
    """How scenes are predicted for scoring, as ``scdnn map`` predicts them: windows of
    ``tile`` pixels, ``overlap`` blended, ``batch_size`` windows at a time; landslide where the
    probability is at least ``threshold`` (images too); ``tta``, the test-time augmentation
    (:data:`scdnn.predictor.TTA_MODES`; images too). Whole images ignore the window
    options. A model's masks are cleaned with ``cleaning`` (an
    :class:`scdnn.outlines.OutlineCleaning`; None: raw) before they are written and scored;
    masks given as predictions are scored as given."""

    tile: int = 2048
    overlap: int = 512
    batch_size: int = 1
    threshold: float = 0.5
    cleaning: Any = None
    tta: str = "none"


@dataclasses.dataclass
class TrainingData:
    """What training needs from a data source under one split.

    ``normalization()`` computes the input normalisation from the training part (called once,
    for a fresh run; a resumed run reads its own); ``datamodule(normalization)`` builds the
    Lightning data module.
    """

    split: Split
    in_channels: int
    inputs: list[str]
    normalization: Callable[[], Normalization]
    datamodule: Callable[[Normalization], L.LightningDataModule]


@runtime_checkable
class DataSource(Protocol):
    """What the package needs from a dataset folder, whatever its layout.

    Attributes
    ----------
    kind : ``"dataset"`` (image folders) or ``"scenes"``: recorded in a benchmark's identity
    path : the folder as given (messages and records name it)
    root : ``Path(path)``
    """

    kind: str
    path: str
    root: Path

    @property
    def names(self) -> list[str]:
        """Every sample (image or scene) name, sorted."""

    def validate(self) -> None:
        """Read every sample once, so that bad data fails before anything is written."""

    def identity(self) -> dict[str, Any]:
        """What a benchmark records about the data (and compares when continuing one)."""

    def train_options(self) -> dict[str, Any]:
        """The :class:`~scdnn.trainers.fit.TrainConfig` fields that open this source again
        as it was opened (besides ``data``)."""

    def require_test_part(self) -> None:
        """Refuse a source that a drawn split would leave without test samples."""

    def draw_split(self, *, seed: int = 0, test_fraction: float = 0.3,
                   val_fraction: float = 0.1, val_block: int = 512) -> Split:
        """A seeded split: a share of the images, or the held-out scenes, for testing; a
        share for validation (images, or blocks of the training scenes of ``val_block``
        pixels)."""

    def load_split(self, path: str | os.PathLike) -> Split:
        """A saved split to train on, checked against the data (every name known, at least
        one training sample)."""

    def training_data(self, split: Split, *, image_size: int = 256, batch_size: int = 8,
                      crops_per_image: int = 1, windows_per_epoch: int = 256,
                      workers: int = 0, seed: int = 0,
                      strong_augmentation: bool = False) -> TrainingData:
        """What training on ``split`` needs: channels, input names, normalisation, data
        module (``strong_augmentation``: the ``default`` recipe's augmentation)."""

    def names_to_score(self, card: ModelCard | None, split_file: str | os.PathLike | None = None,
                       use_all: bool = False) -> tuple[list[str], str]:
        """Which samples to score, and a phrase saying why: all, the test part of a split
        file, or the test part of the model's own split (refused when the data holds only
        part of it)."""

    def check_scoring(self, names: Sequence[str], *, predictions: str | os.PathLike | None = None,
                      options: ScoringOptions = ScoringOptions()) -> None:
        """Refuse, before anything is written, what :meth:`score` cannot do."""

    def score(self, names: Sequence[str], evaluator: Evaluator, *,
              model: torch.nn.Module | None = None, card: ModelCard | None = None,
              predictions: str | os.PathLike | None = None, masks: Path | None = None,
              options: ScoringOptions = ScoringOptions(), device: str = "cpu",
              progress: Progress = iter) -> dict[str, Any]:
        """Predict (``model``) or read (``predictions``) each sample's mask and add it to
        ``evaluator``; with a model, write the predicted masks into ``masks``. Returns the
        metrics this kind adds to the evaluator's."""

    def scoring_record(self, names: Sequence[str], *, weights: Any = None,
                       predictions: Any = None,
                       options: ScoringOptions = ScoringOptions()) -> dict[str, Any]:
        """``source`` of metrics.json: what was scored against what."""

    def scoring_outputs(self, names: Sequence[str]) -> list[str]:
        """The files a complete evaluation of ``names`` with weights writes (relative)."""

    def summary(self, metrics: dict[str, Any]) -> list[str]:
        """Lines saying what an evaluation scored (``scdnn evaluate`` prints them)."""

    def test_pieces(self, split: Split, tile: int = SCENE_TILE) -> TestPieces:
        """The pieces of the split's test samples scored and shown one by one by a benchmark
        (Fig. 8, Table 4 / Fig. 9): the test images, or ``tile`` px tiles of the test scenes."""

    def close(self) -> None:
        """Close any open file (the source stays usable: files reopen when read)."""


# ----------------------------------------------------------------------------- opening

def open_source(path: str | os.PathLike, *, use_dem: bool = False,
                include_non_landslide: bool = False, use_dsm: bool = False,
                test_scenes: Sequence[str] | None = None) -> DataSource:
    """The data source of a folder: :class:`SceneSource` when it holds scene folders, else
    :class:`ImageFolderSource`.

    ``use_dem`` and ``include_non_landslide`` apply to the Bijie layout, ``use_dsm`` and
    ``test_scenes`` to scenes; an option for the other kind is refused.

    Raises
    ------
    ScdnnError
        A missing folder, neither layout, or an option for the other kind of data.
    """
    from .scenes import is_scene_data

    root = Path(path)
    if not root.exists():
        raise InputFileNotFoundError("dataset folder does not exist", root)
    if is_scene_data(root):
        if use_dem or include_non_landslide:
            option = f"{param('use_dem')}" if use_dem else f"{param('include_non_landslide')}"
            raise InvalidValueError(f"{option} applies to the Bijie layout; for scenes use "
                                    f"{param('use_dsm')}", path)
        return SceneSource(path, use_dsm=use_dsm, test_scenes=test_scenes or ())
    if test_scenes or use_dsm:
        option = f"{param('test_scenes')}" if test_scenes else f"{param('use_dsm')}"
        raise InvalidValueError(f"{option} applies to scene folders (rgb.tif + mask.tif); this "
                                "is an image dataset", path)
    return ImageFolderSource(path, use_dem=use_dem, include_non_landslide=include_non_landslide)


def open_source_for_model(path: str | os.PathLike, card: ModelCard | None) -> DataSource:
    """The data source of a folder opened with the inputs the model of ``card`` was trained
    with: the DEM band and the non-landslide images (Bijie), the terrain channels (scenes)."""
    from .scene import uses_elevation
    from .scenes import is_scene_data

    if is_scene_data(path):
        return SceneSource(path, use_dsm=uses_elevation(card.inputs if card else None))
    return ImageFolderSource.for_model(path, card)


def image_inputs(in_channels: int, use_dem: bool) -> list[str]:
    """Names of the input channels of a model trained on images (recorded in its card)."""
    if use_dem:
        return [*("red", "green", "blue")[: in_channels - 1], "dem"]
    if in_channels == 3:
        return ["red", "green", "blue"]
    return [f"band{i + 1}" for i in range(in_channels)]


def _not_all(present: int, total: int, what: str, missing: str, root: Any) -> InvalidValueError:
    return InvalidValueError(f"holds only {present} of the model's {total} test {what} "
                             f"('{missing}' is missing); use {param('use_all', flag='all')} "
                             f"or {param('split')}", root)


# ----------------------------------------------------------------------------- images

class ImageFolderSource:
    """Images with masks: an ``images/`` + ``masks/`` folder or the Bijie layout.

    ``dataset`` is the reader (:func:`scdnn.datasets.open_dataset`); ``use_dem`` adds the DEM
    as a band and ``include_non_landslide`` the non-landslide images (Bijie layout only).
    """

    kind = "dataset"

    def __init__(self, path: str | os.PathLike, use_dem: bool = False,
                 include_non_landslide: bool = False, dataset: Any = None):
        from . import open_dataset

        self.path = os.fspath(path)
        self.root = Path(path)
        self.use_dem = bool(use_dem)
        self.include_non_landslide = bool(include_non_landslide)
        self.dataset = dataset if dataset is not None else open_dataset(
            path, use_dem=use_dem, include_non_landslide=include_non_landslide)
        self._index = {s.name: i for i, s in enumerate(self.dataset.samples)}

    @classmethod
    def for_model(cls, path: str | os.PathLike, card: ModelCard | None) -> ImageFolderSource:
        """``path`` with the DEM band when the model takes one, and the non-landslide images
        when it was trained with them (Bijie layout)."""
        from . import BijieLandslide, open_dataset

        use_dem = "dem" in (card.inputs if card else [])
        dataset = open_dataset(path, use_dem=use_dem)
        extra = bool(card.config.get("include_non_landslide")) if card else False
        if extra and isinstance(dataset, BijieLandslide):
            return cls(path, use_dem=use_dem, include_non_landslide=True)
        return cls(path, use_dem=use_dem, dataset=dataset)

    def __repr__(self) -> str:
        return f"ImageFolderSource({self.path!r}, samples={len(self.dataset.samples)})"

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.dataset.samples]

    def item(self, name: str) -> dict[str, Any]:
        """The reader's item of sample ``name``: ``image`` (H x W x C uint8), ``mask``, ``name``."""
        return self.dataset[self._index[name]]

    def validate(self) -> None:
        self.dataset.validate()

    def identity(self) -> dict[str, Any]:
        return {"kind": self.kind, "data": self.path}

    def train_options(self) -> dict[str, Any]:
        return {"use_dem": self.use_dem, "include_non_landslide": self.include_non_landslide}

    def require_test_part(self) -> None:
        """Nothing to refuse: a drawn split takes a share of the images for testing."""

    def draw_split(self, *, seed: int = 0, test_fraction: float = 0.3,
                   val_fraction: float = 0.1, val_block: int = 512) -> Split:
        """:func:`scdnn.datasets.make_split` of the sample names (``val_block`` is unused)."""
        from .split import make_split

        return Split.from_dict(make_split(self.names, test_fraction=test_fraction,
                                          val_fraction=val_fraction, seed=seed))

    def load_split(self, path: str | os.PathLike) -> Split:
        from .split import load_split

        split = Split.from_dict(load_split(path, self.names), path)
        if not split.train:
            raise InvalidValueError("the split leaves no training images", path)
        return split

    def training_data(self, split: Split, *, image_size: int = 256, batch_size: int = 8,
                      crops_per_image: int = 1, windows_per_epoch: int = 256,
                      workers: int = 0, seed: int = 0,
                      strong_augmentation: bool = False) -> TrainingData:
        """Random ``image_size`` crops of the training images, ``crops_per_image`` per image
        per epoch; whole validation images (the training images when there are none)."""
        from ..trainers.data import SegmentationDataModule
        from .transforms import compute_normalization

        train_idx = [self._index[n] for n in split.train]
        val_idx = [self._index[n] for n in split.val] or train_idx  # too few images
        largest = self.dataset.largest_side(train_idx)
        limit = max(2 * largest, MAX_PADDED_CROP)
        if largest and image_size > limit:
            # crops are padded with ignored pixels: a crop far beyond every image costs
            # memory (quadratic in its side) and teaches nothing
            raise InvalidValueError(f"{image_size} px is far larger than the largest training "
                                    f"image ({largest} px); crops beyond an image are padding "
                                    f"that only costs memory: use at most {limit}",
                                    option="image_size")
        in_channels = int(self.dataset[train_idx[0]]["image"].shape[-1])
        return TrainingData(
            split=split, in_channels=in_channels,
            inputs=image_inputs(in_channels, self.use_dem),
            normalization=lambda: compute_normalization(self.dataset, train_idx),
            datamodule=lambda normalization: SegmentationDataModule(
                self.dataset, train_idx, val_idx, normalization, image_size=image_size,
                batch_size=batch_size, crops_per_image=crops_per_image, workers=workers,
                seed=seed, strong_augmentation=strong_augmentation))

    def names_to_score(self, card: ModelCard | None, split_file: str | os.PathLike | None = None,
                       use_all: bool = False) -> tuple[list[str], str]:
        """With weights and neither ``split_file`` nor ``use_all``: the test part of the
        model's own split when the folder holds those images; every image when it holds none
        of them (another dataset). Holding only some of them is refused rather than guessed
        at: scoring a model on its own training images by accident would overstate it."""
        from .split import load_split

        names = self.names
        if use_all:
            return names, "all images"
        if split_file:
            return load_split(split_file, names)["test"], f"test part of {split_file}"
        test = card.test_names if card else []
        present = [n for n in test if n in set(names)]
        if test and len(present) == len(test):
            return test, "test part of the split in the model card"
        if present:
            missing = next(n for n in test if n not in set(names))
            raise _not_all(len(present), len(test), "images", missing, self.dataset.root)
        return names, "all images"

    def _prediction_files(self, predictions: str | os.PathLike, names: Sequence[str]
                          ) -> dict[str, Path]:
        root = Path(predictions)
        if not root.is_dir():
            raise InputFileNotFoundError("predictions folder does not exist", root)
        if (root / "masks").is_dir():
            root = root / "masks"
        files = {p.stem: p for p in root.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS}
        missing = [n for n in names if Path(n).name not in files]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise InputFileNotFoundError(f"no prediction for image '{missing[0]}'{more}", root)
        return files

    def check_scoring(self, names: Sequence[str], *, predictions: str | os.PathLike | None = None,
                      options: ScoringOptions = ScoringOptions()) -> None:
        """A predictions folder must hold a mask for every image (paired by file stem)."""
        if predictions is not None:
            self._prediction_files(predictions, names)

    def score(self, names: Sequence[str], evaluator: Evaluator, *,
              model: torch.nn.Module | None = None, card: ModelCard | None = None,
              predictions: str | os.PathLike | None = None, masks: Path | None = None,
              options: ScoringOptions = ScoringOptions(), device: str = "cpu",
              progress: Progress = iter) -> dict[str, Any]:
        """Each image whole at its native size; with a model, its predicted mask (cleaned
        with ``options.cleaning``, in pixels: images have no pixel size) is written as
        ``masks/<name>.png`` (0/255; a name such as ``non-landslide/x`` in a subfolder).
        Adds ``cleaning`` (what was applied, None for raw or given masks)."""
        from ..outlines import clean_mask, cleaning_record
        from .io import read_mask

        cleaning = options.cleaning if model is not None else None
        pixels = None if cleaning is None else cleaning.resolve(None)

        files = self._prediction_files(predictions, names) if model is None else {}
        for name in progress(names):
            sample = self.dataset.samples[self._index[name]]
            item = self.item(name)
            truth = item["mask"]
            if model is not None:
                pred = self._predict(model, card, item["image"], sample.image_path, device,
                                     options.tta) >= options.threshold
                if pixels is not None:
                    pred = clean_mask(pred, pixels)
                if masks is not None:
                    _write_png(np.where(pred, 255, 0).astype(np.uint8), masks / f"{name}.png")
            else:
                path = files[Path(name).name]
                pred = read_mask(path)
                if pred.shape != truth.shape:
                    raise InvalidValueError(f"prediction is {pred.shape[0]}x{pred.shape[1]} but "
                                            f"the truth {sample.mask_path} is "
                                            f"{truth.shape[0]}x{truth.shape[1]}", path)
            evaluator.update(pred.astype(np.uint8), truth, name)
        return {"cleaning": cleaning_record(cleaning, None)}

    @staticmethod
    def _predict(model: Any, card: ModelCard, image: np.ndarray, path: Path,
                 device: str, tta: str = "none") -> np.ndarray:
        from ..inference import check_bands, landslide_probability

        check_bands(image, card, path)
        return landslide_probability(model, image, card.normalization, device, tta)

    def scoring_record(self, names: Sequence[str], *, weights: Any = None,
                       predictions: Any = None,
                       options: ScoringOptions = ScoringOptions()) -> dict[str, Any]:
        """Absolute paths of the data and of the weights or predictions."""
        return {key: None if value is None else os.path.abspath(value)
                for key, value in (("data", self.path), ("weights", weights),
                                   ("predictions", predictions))}

    def scoring_outputs(self, names: Sequence[str]) -> list[str]:
        return ["metrics.json", "per_image.csv"]

    def summary(self, metrics: dict[str, Any]) -> list[str]:
        return [f"scored {metrics['images']} images ({metrics['scored']})"]

    def test_pieces(self, split: Split, tile: int = SCENE_TILE) -> TestPieces:
        """The test images themselves (``tile`` is unused)."""
        from .pieces import ImagePieces

        return ImagePieces(self, split.test)

    def close(self) -> None:
        """Nothing is held open."""


def _write_png(array: np.ndarray, path: Path) -> None:
    from PIL import Image

    from ..runs import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


# ----------------------------------------------------------------------------- scenes

class SceneSource:
    """Georeferenced scenes: a scene folder, or a folder of them (:mod:`.scenes`).

    ``test_scenes`` (sorted) are held out whole by :meth:`draw_split`; ``use_dsm`` adds the
    terrain channels of each scene's DSM. ``collection`` is the
    :class:`~scdnn.datasets.scenes.SceneCollection` (scenes opened lazily).

    Raises
    ------
    ScdnnError
        No scene in the folder, or ``test_scenes`` naming a scene twice, naming one that is
        not there, or holding out every scene.
    """

    kind = "scenes"

    def __init__(self, path: str | os.PathLike, use_dsm: bool = False,
                 test_scenes: Sequence[str] = ()):
        from .scenes import SceneCollection, check_test_scenes

        self.path = os.fspath(path)
        self.root = Path(path)
        self.use_dsm = bool(use_dsm)
        self.collection = SceneCollection(path, use_dsm=self.use_dsm)
        test = [str(n) for n in test_scenes]
        if test:
            check_test_scenes(self.collection.names, test, path)
        self.test_scenes: tuple[str, ...] = tuple(sorted(test))

    def __repr__(self) -> str:
        return f"SceneSource({self.path!r}, scenes={self.names})"

    @property
    def names(self) -> list[str]:
        return list(self.collection.names)

    def validate(self) -> None:
        """Open every scene: files readable, label on the image's grid and binary, some
        valid labelled pixel, a DSM where ``use_dsm`` needs one."""
        for name in self.names:
            self.collection.open(name)

    def identity(self) -> dict[str, Any]:
        return {"kind": self.kind, "data": self.path, "test_scenes": list(self.test_scenes),
                "use_dsm": self.use_dsm}

    def train_options(self) -> dict[str, Any]:
        return {"test_scenes": list(self.test_scenes), "use_dsm": self.use_dsm}

    def require_test_part(self) -> None:
        if not self.test_scenes:
            raise InvalidValueError(f"holds scenes ({', '.join(self.names)}): name the ones to "
                                    f"test on with {param('test_scenes')} NAME ...; the others "
                                    "are trained on", self.path)

    def draw_split(self, *, seed: int = 0, test_fraction: float = 0.3,
                   val_fraction: float = 0.1, val_block: int = 512) -> Split:
        """:func:`scdnn.datasets.scenes.make_scene_split`: the test scenes held out whole,
        ``val_fraction`` of the other scenes' valid labelled pixels as ``val_block`` px blocks
        (``test_fraction`` is unused)."""
        from .scenes import make_scene_split

        return Split.from_dict(make_scene_split(self.collection, self.test_scenes, val_fraction,
                                                val_block, seed))

    def load_split(self, path: str | os.PathLike) -> Split:
        from ..runs import read_json

        split = Split.from_dict(read_json(path), path)
        known = set(self.names)
        for part in ("train", "test"):
            missing = [n for n in getattr(split, part) if n not in known]
            if missing:
                raise InvalidValueError(f"split names scene '{missing[0]}' ({part}) which is not "
                                        f"in {self.path}", path)
        if not split.train:
            raise InvalidValueError("the split leaves no training scenes", path)
        return split

    def training_data(self, split: Split, *, image_size: int = 256, batch_size: int = 8,
                      crops_per_image: int = 1, windows_per_epoch: int = 256,
                      workers: int = 0, seed: int = 0,
                      strong_augmentation: bool = False) -> TrainingData:
        """``windows_per_epoch`` random ``image_size`` windows over the training scenes per
        epoch, never overlapping the held-out validation blocks (``crops_per_image`` is
        unused)."""
        from ..trainers.data import SceneDataModule
        from .scenes import RandomWindowSampler, scene_inputs, scene_normalization
        from .terrain import TERRAIN_CHANNELS

        record = split.to_dict()
        sampler = RandomWindowSampler(self.collection, record, image_size, windows_per_epoch,
                                      seed)
        in_channels = self.collection.open(split.train[0]).channels
        image_bands = in_channels - (len(TERRAIN_CHANNELS) if self.use_dsm else 0)
        return TrainingData(
            split=split, in_channels=in_channels,
            inputs=scene_inputs(image_bands, self.use_dsm),
            normalization=lambda: scene_normalization(self.collection, sampler, seed=seed),
            datamodule=lambda normalization: SceneDataModule(
                self.collection, record, sampler, normalization, batch_size=batch_size,
                workers=workers, strong_augmentation=strong_augmentation))

    def names_to_score(self, card: ModelCard | None, split_file: str | os.PathLike | None = None,
                       use_all: bool = False) -> tuple[list[str], str]:
        """As for images; besides, a folder holding the model's training scenes and none of
        its test scenes is refused (``use_all`` scores them anyway)."""
        from ..runs import read_json

        names = self.names
        if use_all:
            return names, "all scenes"
        if split_file:
            data = read_json(split_file)
            test = list(data.get("test", [])) if isinstance(data, dict) else []
            missing = [n for n in test if n not in names]
            if missing or not test:
                raise InvalidValueError(f"split's test scenes {test} are not all in "
                                        f"{self.collection.root}", split_file)
            return test, f"test scenes of {split_file}"
        test = card.test_names if card else []
        present = [n for n in test if n in names]
        if test and len(present) == len(test):
            return test, "test scenes of the split in the model card"
        if present:
            missing = next(n for n in test if n not in names)
            raise _not_all(len(present), len(test), "scenes", missing, self.collection.root)
        if card and set(card.split.get("train", [])) & set(names):
            raise InvalidValueError(f"holds the model's training scene(s) "
                                    f"{sorted(set(card.split['train']) & set(names))} and none "
                                    f"of its test scenes; use {param('use_all', flag='all')} to "
                                    "score them anyway",
                                    self.collection.root)
        return names, "all scenes"

    def check_scoring(self, names: Sequence[str], *, predictions: str | os.PathLike | None = None,
                      options: ScoringOptions = ScoringOptions()) -> None:
        """Window options that ``scdnn map`` accepts; ``predictions`` (one mask raster) only
        for one scene."""
        from ..mapping.predict import check_options

        check_options(options.tile, options.overlap, options.batch_size, options.threshold,
                      cleaning=options.cleaning)
        if predictions is not None and len(names) != 1:
            raise InvalidValueError(f"{param('predictions')} takes one mask raster, so DATA must "
                                    f"be one scene (it holds {len(names)}: {', '.join(names)})",
                                    self.path)

    def score(self, names: Sequence[str], evaluator: Evaluator, *,
              model: torch.nn.Module | None = None, card: ModelCard | None = None,
              predictions: str | os.PathLike | None = None, masks: Path | None = None,
              options: ScoringOptions = ScoringOptions(), device: str = "cpu",
              progress: Progress = iter) -> dict[str, Any]:
        """Each scene predicted as ``scdnn map`` predicts it (or read from the ``predictions``
        raster on its grid) and scored on every valid labelled pixel, also at the ground
        tolerances in metres when its CRS is projected in metres (converted with its own
        pixel size, :meth:`scdnn.metrics.Evaluator.update_scene`); with a model, the mask is
        written as ``masks/<scene>.tif`` (0, 1, 255 = no data; the scene's grid). Adds
        ``boundary_tolerance_m``, the tolerance in metres when every scene is in metres, and
        ``cleaning``: what cleaned the model's masks (``options.cleaning``, converted with
        each scene's pixel size; ``pixels_by_scene`` when the scenes' pixel sizes differ),
        None for raw masks or a given raster."""
        from ..mapping.score import predict_scene_mask
        from ..outlines import clean_mask, cleaning_record

        cleaning = options.cleaning if model is not None else None
        records: dict[str, Any] = {}
        pixel_sizes = []
        for name in names:
            scene = self.collection.open(name)
            size = scene.scene.pixel_size_m
            pixel_sizes.append(size)
            if model is not None:
                pred = predict_scene_mask(model, card, scene, options.tile, options.overlap,
                                          options.batch_size, options.threshold, device,
                                          progress, tta=options.tta)
                if cleaning is not None:
                    pred = clean_mask(pred, cleaning, valid=pred != IGNORE_INDEX,
                                      pixel_size=size)
                    records[name] = cleaning_record(cleaning, size)
                if masks is not None:
                    _write_mask_raster(pred, scene, masks / f"{name}.tif")
            else:
                pred = _read_mask_raster(Path(predictions), scene)
            label = scene.whole_label()
            evaluator.update_scene(np.where(pred == 1, 1, 0).astype(np.uint8), label, name,
                                   valid=label != IGNORE_INDEX,
                                   pixel_size_m=size)
        self.collection.close()
        at_m = {key: _tolerance_m(float(key), pixel_sizes)
                for key in evaluator.tolerance_keys()}
        return {"boundary_tolerance_m": _tolerance_m(evaluator.tolerance, pixel_sizes),
                "boundary_tolerances_m": None if None in at_m.values() else at_m,
                "cleaning": _one_record(records)}

    def scoring_record(self, names: Sequence[str], *, weights: Any = None,
                       predictions: Any = None,
                       options: ScoringOptions = ScoringOptions()) -> dict[str, Any]:
        """The data, weights and predictions as given, the scenes and the window options."""
        return {"data": self.path, "weights": weights, "predictions": predictions,
                "scenes": list(names), "tile": options.tile, "overlap": options.overlap}

    def scoring_outputs(self, names: Sequence[str]) -> list[str]:
        return ["metrics.json", "per_image.csv", *(f"masks/{name}.tif" for name in names)]

    def summary(self, metrics: dict[str, Any]) -> list[str]:
        lines = [f"scored {metrics['images']} scene(s) ({metrics['scored']}), every valid "
                 "pixel"]
        if metrics.get("boundary_tolerance_m") is not None:
            lines.append(f"boundary tolerance: {metrics['boundary_tolerance_px']} px = "
                         f"{metrics['boundary_tolerance_m']:.2f} m")
        return lines

    def test_pieces(self, split: Split, tile: int = SCENE_TILE) -> TestPieces:
        """``tile`` x ``tile`` tiles of the test scenes (:class:`.pieces.TilePieces`)."""
        from .pieces import TilePieces

        return TilePieces(self, split.test, tile)

    def close(self) -> None:
        """Close the scenes' files (they reopen when read again)."""
        self.collection.close()


def _read_mask_raster(path: Path, scene: Any) -> np.ndarray:
    """A predicted mask raster on the scene's grid (``path`` or ``path/mask.tif``), returned
    as 1 landslide, 0 background, 255 no data.

    Two encodings are accepted, told apart by the raster's nodata value:

    - ``scdnn map``'s: 0/1, with 255 declared as nodata (or 255 next to 1 with no nodata
      declared: the project's convention);
    - the 0/255 masks most tools write: 0 background, 255 landslide, when 255 is not the
      declared nodata value. Pixels equal to another declared nodata value are no data.

    A mask holding 0, 1 and 255 while declaring another nodata value is ambiguous and refused.
    """
    import rasterio
    from rasterio.errors import RasterioError

    from .scene import same_grid

    if path.is_dir():
        path = path / "mask.tif"
    if not path.is_file():
        raise InputFileNotFoundError("predicted mask raster does not exist", path)
    try:
        with rasterio.open(path) as src:
            if not same_grid(src, scene.scene.dataset):
                raise InvalidValueError(f"predicted mask is on another grid than the scene "
                                        f"{scene.files.image} ({src.width}x{src.height} vs "
                                        f"{scene.width}x{scene.height}, or another "
                                        "transform/CRS)", path)
            pred = src.read(1)
            nodata = src.nodata
    except RasterioError as exc:
        raise InputFileError(f"cannot read the predicted mask: {exc}", path) from None
    missing = np.zeros(pred.shape, bool)
    if nodata is not None and nodata != IGNORE_INDEX:
        missing = pred == nodata
    values = set(np.unique(pred[~missing]).tolist())
    bad = values - {0, 1, IGNORE_INDEX}
    if bad:
        raise InvalidValueError(f"predicted mask is not binary: holds {min(bad)} (expected "
                                "0/1 with 255 = no data, or 0/255)", path)
    if nodata is not None and nodata != IGNORE_INDEX and {1, IGNORE_INDEX} <= values:
        raise InvalidValueError(f"predicted mask holds 0, 1 and 255 and declares nodata "
                                f"{nodata:g}: 255 is neither landslide nor no data for sure "
                                "(write 0/1 with nodata 255, or 0/255)", path)
    out = pred.astype(np.uint8, copy=True)
    if nodata != IGNORE_INDEX and 1 not in values:
        out[pred == IGNORE_INDEX] = 1  # 0/255: 255 is landslide
    out[missing] = IGNORE_INDEX
    return out


def _write_mask_raster(mask: np.ndarray, scene: Any, path: Path) -> None:
    import rasterio

    from ..runs import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    ds = scene.scene.dataset
    with atomic_path(path) as tmp:
        with rasterio.open(tmp, "w", driver="GTiff", width=ds.width, height=ds.height, count=1,
                           dtype="uint8", crs=ds.crs, transform=ds.transform,
                           nodata=IGNORE_INDEX, tiled=True, compress="deflate") as dst:
            dst.write(mask, 1)


def _one_record(records: dict[str, Any]) -> dict[str, Any] | None:
    """The cleaning record of the scenes: the first scene's, with the pixel values of each
    scene under ``pixels_by_scene`` when they differ; None when nothing was cleaned."""
    if not records:
        return None
    first = next(iter(records.values()))
    if all(r == first for r in records.values()):
        return first
    return {**first, "pixels_by_scene": {name: r["pixels"] for name, r in records.items()}}


def _tolerance_m(tolerance: float, pixel_sizes: list) -> float | None:
    """The pixel tolerance in metres (mean pixel size), when every scene is in metres."""
    if not pixel_sizes or any(p is None for p in pixel_sizes):
        return None
    return float(tolerance * np.mean(pixel_sizes))
