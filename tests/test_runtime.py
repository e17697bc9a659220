"""The scdnn program tunes its own memory allocator; the library and main(argv) do not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="glibc's malloc settings are Linux-only")

PROBE = r"""
import json, os, sys
names = ["MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"]
how = sys.argv[1]
if how == "program":
    from scdnn.cli import main
    sys.argv = ["scdnn", "--version"]
    try:
        main()
    except SystemExit:
        pass
    result = None
elif how == "argv":
    from scdnn.cli import main
    main(["--version"])
    result = None
elif how == "import":
    import scdnn, scdnn.cli, scdnn.mapping  # noqa
    result = None
else:
    from scdnn.runtime import keep_freed_memory
    result = keep_freed_memory()
print(json.dumps({"result": result, "env": {n: os.environ.get(n) for n in names}}))
"""


def probe(how: str, **env: str) -> dict:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    environ.update(PYTHONPATH=str(SRC), **env)
    out = subprocess.run([sys.executable, "-c", PROBE, how], env=environ, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_keep_freed_memory_sets_mallopt_and_the_environment_for_child_processes() -> None:
    got = probe("call")
    assert got["result"] is True
    assert got["env"] == {"MALLOC_MMAP_THRESHOLD_": str(2**31 - 1),
                          "MALLOC_TRIM_THRESHOLD_": str(2**31 - 1)}


def test_a_setting_the_user_made_is_left_alone() -> None:
    got = probe("call", MALLOC_TRIM_THRESHOLD_="1000")
    assert got["env"] == {"MALLOC_MMAP_THRESHOLD_": str(2**31 - 1),
                          "MALLOC_TRIM_THRESHOLD_": "1000"}


def test_the_program_tunes_its_allocator_but_main_argv_and_imports_do_not() -> None:
    tuned = {"MALLOC_MMAP_THRESHOLD_": str(2**31 - 1), "MALLOC_TRIM_THRESHOLD_": str(2**31 - 1)}
    untouched = {"MALLOC_MMAP_THRESHOLD_": None, "MALLOC_TRIM_THRESHOLD_": None}
    assert probe("program")["env"] == tuned
    assert probe("argv")["env"] == untouched
    assert probe("import")["env"] == untouched
