"""The README's Python example runs as written (so the README cannot drift from the API)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_example() -> str:
    """The first ```python block of the README's "## Python" section."""
    text = README.read_text(encoding="utf-8")
    assert "\n## Python\n" in text, "README.md has no '## Python' section"
    section = text.split("\n## Python\n", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found, "the '## Python' section of README.md has no ```python block"
    return found.group(1)


def test_readme_python_example_runs_as_written(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)  # the example writes scene.tif and scene-map/ where it runs
    exec(compile(python_example(), str(README), "exec"), {"__name__": "readme_example"})
    out = capsys.readouterr().out
    assert "Predictor(model='scdnn'" in out and "MIoU" in out
    assert sorted(p.name for p in (tmp_path / "scene-map").iterdir()) == [
        "landslides.gpkg", "map.json", "mask.tif", "probability.tif"]
