"""Bundle the demo sample into the package: ``src/scdnn/data/sample/``.

    .venv/bin/python benchmarks/bundle_sample.py [--data ../shared/data/sichuan-aerial]

The bundled weights' card names the held-back test images of its split that the demo maps
(``demo_sample``: 4 images, a 640 px central crop). This script writes those crops, images
and 0/255 masks, as PNGs into ``src/scdnn/data/sample/images`` and ``.../masks`` (with the
code ``scdnn demo`` uses in a copy without them, :func:`scdnn.demo.crop_sample`), and
``ATTRIBUTION.md`` beside them: source, licence (CC BY 4.0) and what was changed (cropped).
The shared data is otherwise never copied into the repository; the project owner made the
demo sample the one exception, so that ``scdnn demo`` shows a new user real landslides.

Re-runnable and deterministic: the folder is written anew each time, and the same inputs give
byte-identical files. Refuses (exit 1, nothing kept) when an image is missing, or when the
sample would exceed ``MAX_BYTES`` (5 MB).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from scdnn.demo import bundled_weights, crop_sample, demo_sample_spec  # noqa: E402
from scdnn.weights import read_card  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "src" / "scdnn" / "data" / "sample"
MAX_BYTES = 5_000_000

ATTRIBUTION = """# The demo sample: source and licence

The {count} images in `images/` and their masks in `masks/` ({names}) are from the
**landslide aerial image dataset for Sichuan**: Zeng et al. 2021, Science Data Bank,
doi:10.11922/sciencedb.j00001.00222, licensed under CC BY 4.0
(https://creativecommons.org/licenses/by/4.0/).

What was changed: each image and its mask is the central {crop} x {crop} pixel crop of the
1024 x 1024 copy in the project's data folder (itself resized from the published images);
masks are stored as 0 (background) / 255 (landslide) PNGs. Nothing else was changed.

They are held-back test images of the bundled weights' split (`../model.json`, `split.test`):
the weights never saw them in training. Written by `benchmarks/bundle_sample.py`; `scdnn
demo` maps them.

Attribution: "Landslide aerial images and masks cropped from Zeng et al. 2021, landslide
aerial image dataset for Sichuan, Science Data Bank, doi:10.11922/sciencedb.j00001.00222,
CC BY 4.0".
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / ".." / "shared" / "data" /
                        "sichuan-aerial", help="the sichuan-aerial dataset folder")
    parser.add_argument("--out", type=Path, default=SAMPLE, help="the sample folder to write")
    args = parser.parse_args(argv)

    names, crop = demo_sample_spec(read_card(bundled_weights()))
    if not names:
        print("bundle_sample: the bundled weights' card names no demo sample", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(dir=args.out.parent) as tmp:
        staged = Path(tmp) / "sample"
        if not crop_sample(args.data.resolve(), names, crop, staged):
            print(f"bundle_sample: {args.data} lacks one of {', '.join(names)}",
                  file=sys.stderr)
            return 1
        (staged / "ATTRIBUTION.md").write_text(ATTRIBUTION.format(
            count=len(names), names=", ".join(names), crop=crop))
        size = sum(p.stat().st_size for p in staged.rglob("*") if p.is_file())
        if size > MAX_BYTES:
            print(f"bundle_sample: the sample would be {size} bytes, over {MAX_BYTES}",
                  file=sys.stderr)
            return 1
        shutil.rmtree(args.out, ignore_errors=True)
        shutil.move(str(staged), str(args.out))
    print(f"bundle_sample: {len(names)} images, {crop} px crops, {size} bytes in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
