"""Before/after contact sheet of 12 real damaged prints, restored by ``patina run`` with its defaults.

    python benchmarks/real_prints_sheet.py [--out out/real-prints] [--sheet docs/real-prints/contact-sheet.png]

The prints are development prints of ``../shared/real-photos/`` (none gives a ``val`` crop to
``benchmarks/real_damage.py``). Their copyright is mixed or unknown and they may be used for
development and evaluation only, so the sheet is written under ``docs/real-prints/``, which git
ignores: regenerate it with this command to judge the restoration by eye.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PHOTOS = HERE.parents[1] / "shared" / "real-photos" / "images"
PRINTS = (
    "bopbtl_17.png", "bopbtl_10.png", "deoldify_London1850Coach.jpg", "deoldify_1920CobblersShopLondon.jpg",
    "deoldify_civil-war_2.jpg", "deoldify_ViennaBoys1880s.png", "deoldify_BoulevardDuTemple1838.jpg",
    "deoldify_1920sGuadalope.jpg", "deoldify_PaddysMarketCork1900s.jpg", "deoldify_Locomotive1880s.jpg",
    "deoldify_1908FamilyPhoto.jpg", "deoldify_LibraryOfCongress1910.jpg",
)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=PHOTOS)
    parser.add_argument("--out", type=Path, default=HERE.parent / "out" / "real-prints")
    parser.add_argument("--sheet", type=Path, default=HERE.parent / "docs" / "real-prints" / "contact-sheet.png")
    args = parser.parse_args()
    with open(HERE / "real_damage" / "crops.csv", newline="") as handle:
        validation = {row["file"] for row in csv.DictReader(handle) if row["split"] == "val"}
    if validation & set(PRINTS):
        raise SystemExit(f"validation prints in the sheet: {sorted(validation & set(PRINTS))}")
    args.out.mkdir(parents=True, exist_ok=True)
    manifest = args.out / "manifest.csv"
    with open(manifest, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["item_id", "source_uri", "checksum"])
        for name in PRINTS:
            path = (args.photos / name).resolve()
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            writer.writerow([name.rsplit(".", 1)[0], str(path), f"sha256:{digest}"])
    cli = [sys.executable, "-m", "patina.flows.cli"]
    subprocess.run([*cli, "run", str(manifest), "--output", str(args.out / "restored")], check=True)
    sheet = [sys.executable, str(HERE / "contact_sheet.py"), str(manifest), str(args.out / "restored"), str(args.sheet)]
    subprocess.run([*sheet, "--columns", "3"], check=True)


if __name__ == "__main__":
    main()
