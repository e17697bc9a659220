"""Map a whole region: many scenes in one ``scdnn map`` command, in this process or on a
Dask cluster.

- :mod:`.inputs` — what the command line names (paths, folders, globs, list files, VRT
  mosaics) -> scene files, checked before anything heavy is imported;
- :mod:`.job` — :func:`map_region`: one folder per scene (:func:`scdnn.mapping.map_scene`,
  unchanged), job.json, resuming;
- :mod:`.cluster` — scenes as tasks on ``dask.distributed`` (``--workers``, ``--scheduler``);
- :mod:`.layer` — the job's landslide layer: one CRS, a ``scene`` column, polygons that
  straddle scenes merged.
"""

from __future__ import annotations

from .inputs import resolve_scenes, scene_names
from .job import RegionOptions, map_region, verify_scene

__all__ = ["map_region", "RegionOptions", "resolve_scenes", "scene_names", "verify_scene"]
