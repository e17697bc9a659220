"""Scenes of a job as tasks on a Dask cluster (``dask.distributed``; the ``region`` extra).

- ``workers=N``: a ``LocalCluster`` of N worker processes with one thread each, started and
  closed here;
- ``scheduler=ADDRESS``: a running cluster (``dask scheduler`` plus ``dask worker ADDRESS
  --nthreads 1`` processes); every worker must see the scenes, the weights and the output
  folder at the same paths (a shared file system);
- ``client=``: a client made by the caller.

One task per scene (:func:`.job.map_scene_task`), or for a scene whose grid has more than
``block_windows`` windows, one task per block of window rows and one that writes the scene
(:mod:`.blocks`), so that a huge scene spreads over the workers too. Each worker process
loads the model once (a per-process cache keyed by the weights file) and keeps one. A task
writes only its own scene folder (renamed into place when complete) or block file; this
process writes job.json and the layer.

Failures: a task that raises (an I/O error) is run again by Dask up to ``retries`` times; a
worker that dies mid-task (killed, out of memory) makes the scheduler run the task elsewhere
(``distributed.scheduler.allowed-failures`` times), and should it give up
(``KilledWorker``), the task is submitted again here while ``retries`` allow. A scene the
model cannot take comes back as an error, not retried.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import InvalidValueError, ScdnnError
from .blocks import block_folder, finish_scene, predict_block
from .job import RegionOptions, map_scene_task

__all__ = ["run_on_dask", "connect"]


def connect(scheduler: str, timeout: float):
    """A client of the scheduler at ``scheduler``; one-line error when it cannot be reached
    within ``timeout`` seconds."""
    from distributed import Client

    try:
        return Client(scheduler, timeout=f"{timeout}s", set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InvalidValueError(f"cannot reach the Dask scheduler at {scheduler} within "
                                f"{timeout:g} s ({reason})", option="scheduler") from None


def scene_blocks(scene: Path, options: RegionOptions, block_windows: int | None) -> int:
    """In how many blocks of window rows a scene is mapped (:mod:`.blocks`): 1 when its
    grid has at most ``block_windows`` windows (or ``block_windows`` is None)."""
    import math

    import rasterio

    from ..mapping.tiling import window_offsets

    if not block_windows:
        return 1
    with rasterio.open(scene) as src:
        height, width = src.height, src.width
    rows = len(window_offsets(height, options.tile, options.overlap))
    total = rows * len(window_offsets(width, options.tile, options.overlap))
    if total <= block_windows:
        return 1
    return max(1, min(rows, math.ceil(total / block_windows)))


def run_on_dask(tasks: Sequence[tuple[str, Path]], scenes_dir: Path, options: RegionOptions, *,
                workers: int | None, scheduler: str | None, client: Any, timeout: float,
                retries: int, on_result: Callable[[str, dict[str, Any]], None],
                block_windows: int | None = None) -> None:
    """Run :func:`.job.map_scene_task` for every ``(name, scene)`` (a scene of more than
    ``block_windows`` windows as blocks, :mod:`.blocks`); ``on_result(name, result)`` is
    called here, in this process, as each one finishes."""
    from distributed import Client, LocalCluster, as_completed
    from distributed.scheduler import KilledWorker

    cluster = None
    own_client = client is None
    if client is None:
        if scheduler is not None:
            client = connect(scheduler, timeout)
        else:
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None, silence_logs=logging.ERROR)
            client = Client(cluster, set_as_default=False)
    try:
        job = uuid.uuid4().hex[:8]

        blocks = {name: scene_blocks(scene, options, block_windows) for name, scene in tasks}

        def submit(name: str, scene: Path, attempt: int):
            n = blocks[name]
            if n == 1:
                return client.submit(map_scene_task, scene, name, scenes_dir, options,
                                     key=f"scdnn-map-{name}-{job}-{attempt}", pure=False,
                                     retries=retries)
            folder = block_folder(scenes_dir, name)
            parts = [client.submit(predict_block, scene, folder, options, n, k,
                                   key=f"scdnn-block-{name}-{k}-{job}-{attempt}", pure=False,
                                   retries=retries) for k in range(n)]
            return client.submit(finish_scene, scene, name, scenes_dir, options, n, *parts,
                                 key=f"scdnn-map-{name}-{job}-{attempt}", pure=False,
                                 retries=retries)

        futures = {}
        for name, scene in tasks:
            futures[submit(name, scene, 1)] = (name, scene, 1)
        pending = as_completed(list(futures), loop=client.loop)
        for future in pending:
            name, scene, attempt = futures.pop(future)
            try:
                result = future.result()
            except ScdnnError as exc:  # raised in a block task: the scene's input
                result = {"error": exc}
            except KilledWorker:
                if attempt > retries:
                    raise
                again = submit(name, scene, attempt + 1)
                futures[again] = (name, scene, attempt + 1)
                pending.add(again)
                continue
            result["attempts"] = attempt
            on_result(name, result)
    finally:
        if own_client:
            client.close()
        if cluster is not None:
            cluster.close()
