"""Run folders: output-folder checks, atomic writes and provenance.

Every file the package writes goes through :func:`atomic_write` (or the helpers built on it):
the content lands under a temporary name in the same folder and is renamed over the final name
only when complete, so a killed run never leaves a half-written file under a final name.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

from . import __version__
from .errors import InputFileError, InputFileNotFoundError, param


def _umask() -> int:
    """The process's umask, asked for when a file is written (not at import). Read from
    ``/proc/self/status`` where the kernel reports it, so that nothing changes it even for a
    moment; elsewhere set to 0 and restored at once, the only portable way to read it."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


def launched_rank_zero() -> bool:
    """Whether this process is global rank 0 of a training run, or runs alone.

    Distributed training (``scdnn train --devices 2``, ``--num-nodes``) runs the same
    command once per process: Lightning's DDP launcher, ``torchrun`` or SLURM start the
    other ranks with ``LOCAL_RANK``/``NODE_RANK``/``RANK`` set. Those train but write nothing
    (no output folder checks, no config.json, split.json or weights): the run's files are
    rank 0's.
    """
    return all(os.environ.get(name, "0") in ("", "0")
               for name in ("RANK", "LOCAL_RANK", "NODE_RANK"))


def prepare_out_dir(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Create ``path`` for a run's outputs.

    A folder that exists and holds anything is refused unless ``overwrite`` is set (its files
    are then replaced one by one as the run writes them; nothing is deleted up front).
    Exception: the temporary files a killed run left behind (:func:`stale_temporaries`) do
    not count; they are deleted, so that rerunning a killed command just works.
    """
    out = check_out_dir(path, overwrite)
    if out.is_dir():
        for leftover in stale_temporaries(out):
            leftover.unlink(missing_ok=True)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputFileError(f"cannot create output folder: {exc.strerror}", out) from None
    return out


@contextlib.contextmanager
def output_dir(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """:func:`prepare_out_dir` for the block's outputs; when the block fails, a folder that
    was created here (or was empty) is removed with all it holds, so that a failed run
    leaves nothing behind. A folder that held files before (``overwrite``) is left as it is:
    its files are replaced one by one, atomically."""
    out = Path(path)
    ours = not out.exists() or (out.is_dir() and not any(out.iterdir()))
    out = prepare_out_dir(out, overwrite=overwrite)
    try:
        yield out
    except BaseException:
        if ours:
            shutil.rmtree(out, ignore_errors=True)
        raise


def check_out_dir(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """The refusals of :func:`prepare_out_dir`, without creating or deleting anything: a
    path that is not a folder, or a folder holding anything but stale temporaries (unless
    ``overwrite``)."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise InputFileError("output path exists and is not a folder", out)
    if out.is_dir() and not overwrite:
        stale = stale_temporaries(out)
        if any(p not in stale for p in out.iterdir()):
            raise InputFileError(f"output folder exists and is not empty (use "
                                 f"{param('overwrite')})", out)
    return out


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[Any]:
    """Open a temporary file beside ``path``; rename it to ``path`` when the block succeeds."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.{os.getpid()}.", suffix=".part",
                               dir=final.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs are ordinary files
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def temporary_path(path: str | os.PathLike) -> Path:
    """A hidden temporary name beside ``path`` for writers that need a file name (rasterio, PIL)."""
    final = Path(path)
    return final.with_name(f".{final.name}.{os.getpid()}.part{final.suffix}")


#: Names of temporary files (:func:`temporary_path`, :func:`atomic_write`'s mkstemp names) and
#: of the side files writers add to them (``.aux.xml``, ``-journal``, ``.ovr.tmp``): a hidden
#: name, the writing process's id, an optional mkstemp suffix, then ``part``.
_TEMPORARY = re.compile(r"^\..+?\.(?P<pid>\d+)\.(?:[a-z0-9_]{8}\.)?part(?:[.-].*)?$")


def stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Files in ``folder`` that an scdnn process which is no longer running left under a
    temporary name (killed before it could rename or delete them)."""
    stale = []
    for entry in Path(folder).iterdir():
        match = _TEMPORARY.match(entry.name)
        if match and entry.is_file() and not _running(int(match["pid"])):
            stale.append(entry)
    return stale


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's process, or not a pid: keep its files
    return True


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary name beside ``path`` for writers that take a file name (PIL, safetensors,
    matplotlib): renamed to ``path`` when the block succeeds, removed when it fails."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(final)
    try:
        yield tmp
        if tmp.exists():  # some writers (safetensors) create 0600 files: make it ordinary
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically. A JSON object gets ``format_version``
    (:data:`scdnn.records.FORMAT_VERSION`) first, unless it has one already."""
    from .records import FORMAT_VERSION

    if isinstance(data, dict) and "format_version" not in data:
        data = {"format_version": FORMAT_VERSION, **data}
    with atomic_write(path, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=False, default=_json_default)
        handle.write("\n")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_json(path: str | os.PathLike) -> Any:
    try:
        with open(path) as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise InputFileNotFoundError("file does not exist", path) from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputFileError(f"cannot read JSON: {exc}", path) from None


def git_commit() -> str | None:
    """The commit of the source tree this package runs from, or None outside a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    commit = out.stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=here, capture_output=True, text=True, timeout=5,
    ).stdout.strip()
    return commit + ("-dirty" if dirty else "")


def cpu_name() -> str:
    """The processor's model name ("AMD EPYC", "Intel(R) Xeon(R) ..."), or "" when unknown.

    Recorded with every result because the epochs a wall-clock budget (``scdnn benchmark
    --budget cpu``) reaches depend on the host's processor (the paper-sichuan-seed1 paragraph
    of benchmarks/results/README.md has the measured epoch times)."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    name = platform.processor()
    return "" if name == platform.machine() else name


def machine_description() -> str:
    """``"x86_64, AMD EPYC, 2 CPUs"``: architecture, processor model (when known), cores."""
    return ", ".join(p for p in (platform.machine(), cpu_name(), f"{os.cpu_count()} CPUs") if p)


def provenance() -> dict[str, Any]:
    """What made a result: package version, git commit, time, machine and command line."""
    import torch

    return {
        "scdnn_version": __version__,
        "git_commit": git_commit(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["scdnn", *sys.argv[1:]]),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "machine": machine_description(),
    }
