"""The report of a benchmark folder (``scdnn benchmark``: results.md, results.json, figures).

The page is results.md (rebuilt from results.json with the benchmark's own
:func:`scdnn.benchmark.tables.render_markdown` when results.md is gone), one section per
``##`` heading, with the figures it links embedded; PNGs of the folder it does not link are
added at the end.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..errors import InputFileError, InvalidValueError
from ..runs import read_json
from . import figures
from .html import Report, Section, image, markdown

__all__ = ["benchmark_report"]


def _figure_uri(run_dir: Path, name: str, used: set[str]) -> str | None:
    path = run_dir / name
    if Path(name).is_absolute() or ".." in Path(name).parts or not path.is_file() \
            or path.suffix.lower() != ".png":
        return None
    used.add(Path(name).name)
    return figures.file_uri(path)


def _split_sections(text: str) -> tuple[str | None, str, list[tuple[str, str]]]:
    """(the ``#`` title, the text before the first ``##``, [(``##`` title, its text)])."""
    title = None
    preamble: list[str] = []
    sections: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        heading = re.match(r"^(#{1,2})\s+(.*)$", line)
        if heading and heading.group(1) == "#" and title is None and not sections:
            title = heading.group(2).strip()
        elif heading and heading.group(1) == "##":
            sections.append((heading.group(2).strip(), []))
        elif sections:
            sections[-1][1].append(line)
        else:
            preamble.append(line)
    return title, "\n".join(preamble), [(t, "\n".join(body)) for t, body in sections]


def benchmark_report(run_dir: Path) -> Report:
    """The :class:`~scdnn.report.html.Report` of a benchmark folder."""
    results: dict[str, Any] | None = None
    if (run_dir / "results.json").is_file():
        results = read_json(run_dir / "results.json")
        if not isinstance(results, dict):
            raise InvalidValueError("not a results.json of scdnn benchmark",
                                    run_dir / "results.json")
    if (run_dir / "results.md").is_file():
        try:
            text = (run_dir / "results.md").read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputFileError(f"cannot read results.md: {exc}", run_dir / "results.md") from None
    else:
        from ..benchmark.tables import render_markdown

        try:
            text = render_markdown(results or {})
        except (KeyError, TypeError, AttributeError) as exc:
            raise InvalidValueError(f"results.json lacks what results.md is made from ({exc!r})",
                            run_dir / "results.json") from None

    used: set[str] = set()

    def uri(name: str) -> str | None:
        return _figure_uri(run_dir, name, used)

    title, preamble, parts = _split_sections(text)
    sections = []
    if preamble.strip():
        sections.append(Section("Set-up", markdown(preamble, uri, heading_offset=1)))
    sections += [Section(name, markdown(body, uri, heading_offset=1)) for name, body in parts]
    listed = list((results or {}).get("figures", {}).values()) if results else []
    others = [n for n in [*(str(x) for x in listed if x),
                          *sorted(p.name for p in run_dir.glob("*.png"))]
              if Path(n).name not in used]
    others = list(dict.fromkeys(others))
    extra = []
    for name in others:
        data = uri(name)
        if data:
            extra.append(image(data, name, name))
    if extra:
        sections.append(Section("Other figures", "\n".join(extra)))

    config = (results or {}).get("config") or {}
    facts = []
    if config:
        facts = [("data", (config.get("dataset") or {}).get("data", "n/a")),
                 ("budget", config.get("budget", "n/a")),
                 ("models", ", ".join(config.get("models") or [])),
                 ("seeds", ", ".join(str(s) for s in config.get("seeds") or []))]
    return Report(title=f"Benchmark report: {run_dir.resolve().name}"
                  + (f" ({title})" if title else ""),
                  run_dir=str(run_dir), kind="benchmark", facts=facts, sections=sections,
                  provenance=(results or {}).get("provenance"))
