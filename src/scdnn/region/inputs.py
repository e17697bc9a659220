"""The scenes of one ``scdnn map`` command: paths, folders, globs, list files, VRT mosaics.

:func:`resolve_scenes` turns what the command line was given into a list of scene files,
checking only what a look at the paths can tell (nothing is opened but a VRT's XML), so it
runs before torch is imported:

- a file path: that scene;
- a folder: its GeoTIFFs (``*.tif``, ``*.tiff``, any case; not hidden ones, not recursive),
  sorted by name;
- a glob (``tiles/*.tif``, ``**`` recursive), quoted so that scdnn expands it: the files it
  matches, sorted;
- ``@FILE`` (or ``scene_list=FILE``): a text file of scenes, one per line (blank lines and
  lines starting with ``#`` ignored; relative paths are relative to the list's folder); a
  line may be anything of this list but another list;
- a GDAL VRT mosaic (a ``.vrt`` whose sources sit at different places): its source files,
  in the VRT's order. A VRT whose sources all sit at the same place (a band stack) is one
  scene, read through the VRT.

The same file given twice is mapped once. :func:`scene_names` names the scenes' output
folders.
"""

from __future__ import annotations

import glob
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Iterable, Sequence

from ..errors import InputFileError, InputFileNotFoundError, InvalidValueError

__all__ = ["resolve_scenes", "scene_names", "vrt_mosaic_sources", "GEOTIFF_SUFFIXES"]

GEOTIFF_SUFFIXES = (".tif", ".tiff")
_GLOB = re.compile(r"[*?\[]")
_SOURCES = ("SimpleSource", "ComplexSource", "AveragedSource", "KernelFilteredSource")


def resolve_scenes(items: Sequence[str | os.PathLike], scene_list: str | os.PathLike | None = None
                   ) -> list[Path]:
    """The scene files that ``items`` (and the list file ``scene_list``) name, in order,
    each once (see the module docstring).

    Raises
    ------
    ScdnnError
        A path that does not exist or is not a file, a folder without a GeoTIFF, a glob that
        matches no file, a list file that is missing, empty or names a missing file (named
        with the list), a VRT that cannot be read or names a missing source.
    """
    found: list[Path] = []
    for item in items:
        text = os.fspath(item)
        if text.startswith("@") and len(text) > 1:
            found.extend(_from_list(Path(text[1:])))
        else:
            found.extend(_expand(text))
    if scene_list is not None:
        found.extend(_from_list(Path(scene_list)))
    if not found:
        raise InvalidValueError("no scene given", option="scene")
    unique: dict[str, Path] = {}
    for path in found:
        unique.setdefault(os.path.realpath(path), path)
    return list(unique.values())


def scene_names(scenes: Iterable[Path]) -> list[str]:
    """A folder name per scene: its file name without the suffix; a name taken already gets
    ``-2``, ``-3``, ... in the order given."""
    names: list[str] = []
    taken: set[str] = set()
    for scene in scenes:
        base = Path(scene).stem or "scene"
        name, k = base, 1
        while name in taken:
            k += 1
            name = f"{base}-{k}"
        taken.add(name)
        names.append(name)
    return names


def _expand(text: str, listed_in: Path | None = None) -> list[Path]:
    path = Path(text)
    if path.is_dir():
        scenes = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")
                        and p.suffix.lower() in GEOTIFF_SUFFIXES)
        if not scenes:
            raise InputFileNotFoundError(
                _where("is a folder without a GeoTIFF (.tif, .tiff) to map", listed_in), path)
        return scenes
    if not path.exists() and _GLOB.search(text):
        matches = sorted(Path(m) for m in glob.glob(text, recursive=True) if Path(m).is_file())
        if not matches:
            raise InputFileNotFoundError(_where("glob matches no file", listed_in), text)
        return [q for m in matches for q in _vrt_or_file(m, listed_in)]
    return _vrt_or_file(path, listed_in)


def _vrt_or_file(path: Path, listed_in: Path | None) -> list[Path]:
    _check_file(path, "scene file", listed_in)
    if path.suffix.lower() == ".vrt":
        sources = vrt_mosaic_sources(path)
        if sources:
            return sources
    return [path]


def _check_file(path: Path, what: str, listed_in: Path | None = None) -> None:
    if path.is_file():
        return
    if path.is_dir():
        raise InputFileError(_where(f"is a folder, not a {what}", listed_in), path)
    if path.exists():
        raise InputFileError(_where(f"is not a regular file (cannot read {what})", listed_in),
                             path)
    raise InputFileNotFoundError(_where(f"{what} does not exist", listed_in), path)


def _where(message: str, listed_in: Path | None) -> str:
    return message if listed_in is None else f"{message} (listed in {listed_in})"


def _from_list(listing: Path) -> list[Path]:
    _check_file(listing, "scene list")
    try:
        lines = listing.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"cannot read scene list: {exc}", listing) from None
    found: list[Path] = []
    for line in lines:
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        if entry.startswith("@"):
            raise InvalidValueError(f"a scene list cannot name another list ({entry})", listing)
        if not os.path.isabs(entry):
            entry = os.path.join(listing.parent, entry)
        found.extend(_expand(entry, listed_in=listing))
    if not found:
        raise InvalidValueError("scene list names no scene", listing)
    return found


def vrt_mosaic_sources(vrt: Path) -> list[Path]:
    """The source files of a GDAL VRT mosaic, in the VRT's order; [] when the VRT is not a
    mosaic (all its sources sit at the same place: a band stack, a subset, a warp)."""
    try:
        root = ET.parse(vrt).getroot()
    except (ET.ParseError, OSError) as exc:
        raise InputFileError(f"cannot read VRT: {exc}", vrt) from None
    sources: list[Path] = []
    places: set[tuple[str, ...]] = set()
    for kind in _SOURCES:
        for source in root.iter(kind):
            name = source.find("SourceFilename")
            if name is None or not (name.text or "").strip():
                continue
            file = Path(name.text.strip())
            if name.get("relativeToVRT", "0") == "1" or not file.is_absolute():
                file = vrt.parent / file
            rect = source.find("DstRect")
            places.add(tuple(sorted(rect.attrib.items())) if rect is not None else ())
            if file not in sources:
                sources.append(file)
    if len(places) < 2:
        return []
    for file in sources:
        _check_file(file, "scene file", listed_in=vrt)
    return sources
