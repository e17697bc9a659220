"""A job of several scenes: ``scdnn map A.tif B.tif ... --out OUT`` (:func:`map_region`).

Layout of ``OUT``::

    OUT/job.json                     scenes, options, per-scene status (rewritten atomically)
    OUT/scenes/<name>/               one folder per scene, exactly what ``scdnn map`` writes
                                     for that scene alone (probability.tif, mask.tif, the
                                     polygons, map.json)
    OUT/landslides.gpkg, .parquet    the job's landslide layer (:mod:`.layer`)

Each scene is mapped by :func:`map_scene_task` with :func:`scdnn.mapping.map_scene` into a
hidden folder ``OUT/scenes/.<name>.<pid>.part`` that is renamed to ``<name>`` when complete:
a scene folder under its final name is always complete, whatever is killed when. The task
runs in this process (one after the other) or on a Dask cluster (:mod:`.cluster`); the
process that called :func:`map_region` is the only writer of job.json and of the layer.

Resuming: a rerun with the same options skips every scene whose folder is complete and
verified (:func:`verify_scene`: map.json readable and naming the scene, every output
readable to its last block, the polygon count map.json gives), maps the others again and
rebuilds the layer. Other options (weights, threshold, tiling, cleaning, ...) redo every
scene.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any, Callable, ContextManager, Sequence

from ..errors import InputFileError, InvalidValueError, ScdnnError, param
from ..outlines import OutlineCleaning
from ..runs import read_json, stale_temporaries, write_json
from .inputs import scene_names

__all__ = ["RegionOptions", "map_region", "map_scene_task", "verify_scene", "JOB_FILE"]

JOB_FILE = "job.json"
SCENES = "scenes"


@dataclasses.dataclass(frozen=True)
class RegionOptions:
    """How every scene of a job is mapped (the options of :func:`scdnn.mapping.map_scene`
    and of the model); picklable, sent to the workers as it is."""

    weights: str
    engine: str = "torch"
    device: str = "cpu"
    tta: str = "none"
    tile: int = 2048
    overlap: int = 512
    batch_size: int = 1
    threshold: float = 0.5
    cleaning: OutlineCleaning | None = None
    fmt: str = "gpkg"
    dsm: str | None = None
    bands: tuple[int, ...] | None = None
    cog_blocksize: int = 512

    def record(self) -> dict[str, Any]:
        """The options as job.json records them (and compares them on a rerun)."""
        data = dataclasses.asdict(self)
        data["cleaning"] = None if self.cleaning is None else dataclasses.asdict(self.cleaning)
        data["bands"] = None if self.bands is None else list(self.bands)
        return data


def _no_progress(total: int) -> ContextManager[Callable[[int], None]]:
    return contextlib.nullcontext(lambda n=1: None)


def map_region(scenes: Sequence[str | os.PathLike], options: RegionOptions,
               out: str | os.PathLike, *, crs: str | None = None, workers: int | None = None,
               scheduler: str | None = None, client: Any = None,
               scheduler_timeout: float = 10.0, retries: int = 2,
               block_windows: int | None = 64, overwrite: bool = False,
               progress: Callable[[int], ContextManager[Callable[[int], None]]] = _no_progress,
               warn: Callable[[str], None] = lambda message: None) -> dict[str, Any]:
    """Map every scene into ``out/scenes/<name>/`` and write the job's landslide layer.

    Parameters
    ----------
    scenes : paths
        The scene files (:func:`.inputs.resolve_scenes` expands folders, globs, lists, VRTs).
    options : RegionOptions
        How each scene is mapped.
    out : path
        The job folder: new, empty, or a job folder of an earlier run (resumed).
    crs : str, optional
        The CRS of the job layer (``EPSG:32647``, any PROJ string); by default the first
        scene's.
    workers : int, optional
        Map on a local Dask cluster of this many processes (one thread each).
    scheduler : str, optional
        Map on the running Dask cluster at this address (``tcp://host:8786``); the scenes,
        the weights and ``out`` must be at the same paths on every worker.
    client : distributed.Client, optional
        Map on this client's cluster (tests, notebooks).
    scheduler_timeout : float
        Seconds to wait for the scheduler.
    retries : int
        A scene whose task fails for another reason than its input (a worker killed, an I/O
        error) is run again up to this many times.
    block_windows : int, optional
        On Dask, a scene whose window grid has more windows than this is mapped in blocks
        of window rows by several workers (:mod:`.blocks`); None: one task per scene.
    overwrite : bool
        Use a non-empty ``out`` that is not a job folder.
    progress : callable
        ``progress(total)`` gives a context whose value ``advance(n)`` is called as scenes
        finish (one bar for the job).
    warn : callable
        One-line warnings.

    Returns
    -------
    dict
        job.json's content.

    Raises
    ------
    ScdnnError
        Bad options or input (checked before anything is written), or the first scene that
        failed for its input (the other scenes are finished first and job.json says which).
    """
    if workers is not None and scheduler is not None:
        raise InvalidValueError(f"cannot be combined with {param('scheduler')}",
                                option="workers")
    scenes = [Path(os.path.abspath(s)) for s in scenes]
    names = scene_names(scenes)
    options = dataclasses.replace(
        options, weights=os.path.abspath(options.weights),
        dsm=None if options.dsm is None else os.path.abspath(options.dsm))
    target_crs = _check_scenes(scenes, options, crs)
    out = _job_folder(out, overwrite)
    scenes_dir = out / SCENES

    previous = _read_previous(out / JOB_FILE)
    same_options = previous is not None and previous.get("options") == options.record()
    entries = []
    for name, scene in zip(names, scenes, strict=True):
        done = same_options and verify_scene(scenes_dir / name, scene)
        entries.append({"name": name, "scene": str(scene),
                        "status": "complete" if done else "pending", "kept": done})
    job: dict[str, Any] = {
        "status": "running", "scenes": entries, "options": options.record(),
        "crs": target_crs.to_string(), "workers": workers, "scheduler": scheduler,
        "block_windows": block_windows,
        "outputs": [f"{SCENES}/<name>/", *_layer_files()],
    }
    write_json(out / JOB_FILE, job)
    todo = [e for e in entries if not e["kept"]]
    by_name = {e["name"]: e for e in entries}

    def finished(name: str, result: dict[str, Any]) -> None:
        entry = by_name[name]
        if "error" in result:
            entry.update(status="failed", error=str(result["error"]))
            errors.append(result["error"])
        else:
            entry.update(status="complete", landslides=result["summary"]["landslides"],
                         seconds=round(result["seconds"], 3))
        entry["attempts"] = result.get("attempts", 1)
        entry["worker"] = result.get("worker")
        entry["peak_rss_mb"] = result.get("peak_rss_mb")  # of the worker process, so far
        if result.get("blocks"):
            entry["blocks"] = result["blocks"]
        write_json(out / JOB_FILE, job)

    errors: list[ScdnnError] = []
    started = time.perf_counter()
    with progress(len(entries)) as advance:
        advance(len(entries) - len(todo))
        tasks = [(e["name"], Path(e["scene"])) for e in todo]
        if tasks and (workers is not None or scheduler is not None or client is not None):
            from .cluster import run_on_dask

            run_on_dask(tasks, scenes_dir, options, workers=workers, scheduler=scheduler,
                        client=client, timeout=scheduler_timeout, retries=retries,
                        block_windows=block_windows,
                        on_result=lambda name, result: (finished(name, result), advance(1)))
        else:
            for name, scene in tasks:
                finished(name, map_scene_task(scene, name, scenes_dir, options))
                advance(1)
    job["seconds"] = round(time.perf_counter() - started, 3)
    _remove_partial_scenes(scenes_dir)  # left by workers killed mid-task
    if errors:
        job["status"] = "failed"
        write_json(out / JOB_FILE, job)
        raise errors[0]

    from .layer import job_layer, write_layer

    polygon_files = [(e["name"], scenes_dir / e["name"] / f"landslides.{options.fmt}")
                     for e in entries]
    layer = job_layer(polygon_files, target_crs.to_wkt())
    write_layer(layer, out)
    job.update(status="complete", landslides=len(layer),
               scenes_mapped=len(todo), scenes_kept=len(entries) - len(todo))
    write_json(out / JOB_FILE, job)
    return job


def _layer_files() -> list[str]:
    from .layer import LAYER_FILES

    return list(LAYER_FILES)


def _check_scenes(scenes: list[Path], options: RegionOptions, crs: str | None):
    """Open every scene for the model (as map_scene will): refuse, before anything is
    written, a scene it cannot take or one without a CRS; return the job layer's CRS."""
    from rasterio.crs import CRS
    from rasterio.errors import CRSError

    from ..mapping.scene import open_scene

    card = _card(options)
    first = None
    for scene in scenes:
        with open_scene(scene, card.in_channels, card.inputs, dsm=options.dsm,
                        bands=options.bands) as sc:
            if sc.crs is None:
                raise InvalidValueError("scene has no CRS: the scenes of a job are mapped into "
                                        "one layer in one CRS", scene)
            first = first or sc.crs
    if crs is None:
        return first
    try:
        return CRS.from_user_input(crs)
    except (CRSError, ValueError) as exc:
        raise InvalidValueError(f"is not a CRS ({exc})", option="crs") from None


def _card(options: RegionOptions):
    if options.engine == "torch" and options.weights.endswith(".safetensors"):
        from ..weights import read_card

        return read_card(options.weights)
    return _predictor(options.weights, options.engine, "cpu", options.tta).card


def _job_folder(out: str | os.PathLike, overwrite: bool) -> Path:
    """``out`` ready for a job: new, empty, a job folder (resumed) or, with ``overwrite``,
    any folder; hidden leftovers of killed runs removed."""
    out = Path(os.path.abspath(out))
    if out.exists() and not out.is_dir():
        raise InputFileError("output path exists and is not a folder", out)
    if out.is_dir() and not overwrite and not (out / JOB_FILE).is_file():
        stale = stale_temporaries(out)
        if any(p not in stale for p in out.iterdir()):
            raise InputFileError(f"output folder exists, is not empty and holds no job "
                                 f"({JOB_FILE}) to resume (use {param('overwrite')})", out)
    try:
        (out / SCENES).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputFileError(f"cannot create output folder: {exc.strerror}", out) from None
    for leftover in stale_temporaries(out):
        leftover.unlink(missing_ok=True)
    _remove_partial_scenes(out / SCENES)
    return out


def _remove_partial_scenes(scenes_dir: Path) -> None:
    """Delete the hidden folders of scene tasks that were killed, and the rows of blocks of
    scenes not written (none is running)."""
    for entry in scenes_dir.iterdir():
        if (entry.name.startswith(".") and entry.name.endswith((".part", ".blocks"))
                and entry.is_dir()):
            shutil.rmtree(entry, ignore_errors=True)


def _read_previous(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = read_json(path)
    except ScdnnError:
        return None
    return data if isinstance(data, dict) else None


def verify_scene(folder: Path, scene: Path) -> bool:
    """Whether ``folder`` holds the complete outputs of mapping ``scene``: map.json readable
    and naming the scene, every output it lists readable to the last block (rasters of the
    size it gives) and as many polygons as it counts."""
    import pyogrio
    import rasterio

    try:
        record = read_json(folder / "map.json")
        if record.get("scene") != str(scene):
            return False
        for name in record["outputs"]:
            path = folder / name
            if name.endswith(".tif"):
                with rasterio.open(path) as src:
                    if (src.width, src.height) != (record["width"], record["height"]):
                        return False
                    for _, window in src.block_windows(1):
                        src.read(1, window=window)
            else:
                info = pyogrio.read_info(path)
                if int(info["features"]) != int(record["landslides"]):
                    return False
                pyogrio.read_dataframe(path)
    except Exception:  # anything unreadable: the scene is mapped again
        return False
    return True


@functools.lru_cache(maxsize=1)
def _predictor(weights: str, engine: str, device: str, tta: str):
    """The model, loaded once per process (one worker holds one model: the cache keeps the
    last one only)."""
    from ..predictor import Predictor

    return Predictor.from_file(weights, engine=engine, device=device, tta=tta)


def map_scene_task(scene: Path, name: str, scenes_dir: Path, options: RegionOptions,
                   predict: Callable[..., Any] | None = None) -> dict[str, Any]:
    """Map one scene into ``scenes_dir/name`` (a task: in this process or on a worker).

    Writes into ``scenes_dir/.<name>.<pid>.part`` and renames it to ``name`` when complete
    (replacing an earlier, incomplete folder). Returns ``{"summary": map.json, "seconds",
    "worker"}``, or ``{"error": ScdnnError}`` for a scene the model cannot take (returned, not
    raised, so that it is not retried); any other failure is raised. ``predict``: rows
    predicted elsewhere (:mod:`.blocks`), instead of running the network here.
    """
    from ..mapping import Tiling, map_scene

    started = time.perf_counter()
    scenes_dir = Path(scenes_dir)
    part = scenes_dir / f".{name}.{os.getpid()}.part"
    final = scenes_dir / name
    shutil.rmtree(part, ignore_errors=True)
    try:
        predictor = _predictor(options.weights, options.engine, options.device, options.tta)
        summary = map_scene(scene, predictor, part,
                            tiling=Tiling(options.tile, options.overlap, options.batch_size),
                            threshold=options.threshold, dsm=options.dsm,
                            bands=options.bands, cleaning=options.cleaning, fmt=options.fmt,
                            cog_blocksize=options.cog_blocksize,
                            **({} if predict is None else {"predict": predict}))
        if final.exists():
            shutil.rmtree(final)
        os.rename(part, final)
    except ScdnnError as exc:
        return {"error": exc, "worker": _worker()}
    finally:
        shutil.rmtree(part, ignore_errors=True)
    return {"summary": summary, "seconds": time.perf_counter() - started, "worker": _worker(),
            "peak_rss_mb": _peak_rss_mb()}


def _worker() -> str:
    """``host:pid`` of the process running a task (job.json records it per scene)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _peak_rss_mb() -> float | None:
    """The peak resident memory of this process so far, in MiB (None where unknown)."""
    try:
        import resource
    except ImportError:  # not on Windows
        return None
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
