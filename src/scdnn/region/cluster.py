"""Scenes of a job as tasks on a Dask cluster (``dask.distributed``; the ``region`` extra).

- ``workers=N``: a ``LocalCluster`` of N worker processes with one thread each, started and
  closed here;
- ``scheduler=ADDRESS``: a running cluster (``dask scheduler`` plus ``dask worker ADDRESS
  --nthreads 1`` processes); every worker must see the scenes, the weights and the output
  folder at the same paths (a shared file system);
- ``client=``: a client made by the caller.

One task per scene (:func:`.job.map_scene_task`); each worker process loads the model once
(a per-process cache keyed by the weights file) and keeps one. A task writes only its own
scene folder (renamed into place when complete); this process writes job.json and the layer.

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

from ..errors import InvalidValueError
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


def run_on_dask(tasks: Sequence[tuple[str, Path]], scenes_dir: Path, options: RegionOptions, *,
                workers: int | None, scheduler: str | None, client: Any, timeout: float,
                retries: int, on_result: Callable[[str, dict[str, Any]], None]) -> None:
    """Run :func:`.job.map_scene_task` for every ``(name, scene)``; ``on_result(name,
    result)`` is called here, in this process, as each one finishes."""
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

        def submit(name: str, scene: Path, attempt: int):
            return client.submit(map_scene_task, scene, name, scenes_dir, options,
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
