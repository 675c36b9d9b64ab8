"""Before/after contact sheet of 12 real prints, restored by ``patina run`` with its defaults.

    python benchmarks/real_prints_sheet.py [--set damaged|tone] [--out out/real-prints] [--sheet PNG]

``--set damaged`` (default): 12 damaged prints; ``--set tone``: toned monochrome prints (orange, purple,
green, blue, sepia), two early colour plates, and prints with writing on them (handwriting, an
inscription, a printed caption, a stamped number), for the tone, colour and do-no-harm checks. The
prints are development prints of ``../shared/real-photos/`` (none gives a ``val`` crop to
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
SETS = {
    "damaged": (
        "bopbtl_17.png", "bopbtl_10.png", "deoldify_London1850Coach.jpg", "deoldify_1920CobblersShopLondon.jpg",
        "deoldify_civil-war_2.jpg", "deoldify_ViennaBoys1880s.png", "deoldify_BoulevardDuTemple1838.jpg",
        "deoldify_1920sGuadalope.jpg", "deoldify_PaddysMarketCork1900s.jpg", "deoldify_Locomotive1880s.jpg",
        "deoldify_1908FamilyPhoto.jpg", "deoldify_LibraryOfCongress1910.jpg",
    ),
    "tone": (
        "deoldify_BreadDelivery1920sIreland.jpg", "deoldify_1860sSamauris.png", "deoldify_WestVirginiaHouse.jpg",
        "deoldify_1909ParisFirstFemaleTaxisDriver.jpg", "deoldify_VictorianDragQueen1880s.png", "bopbtl_19.png",
        "bopbtl_9.png", "bopbtl_11.png", "deoldify_ViennaBoys1880s.png", "deoldify_SenecaNative1908.jpg",
        "deoldify_Sami1880s.jpg", "deoldify_BellyLaughWWI.jpg",
    ),
}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=PHOTOS)
    parser.add_argument("--set", choices=list(SETS), default="damaged")
    parser.add_argument("--out", type=Path, help="default: out/real-prints (out/real-prints-SET for another set)")
    parser.add_argument("--sheet", type=Path, help="default: docs/real-prints/contact-sheet[-SET].png")
    args = parser.parse_args()
    suffix = "" if args.set == "damaged" else f"-{args.set}"
    args.out = args.out or HERE.parent / "out" / f"real-prints{suffix}"
    args.sheet = args.sheet or HERE.parent / "docs" / "real-prints" / f"contact-sheet{suffix}.png"
    prints = SETS[args.set]
    with open(HERE / "real_damage" / "crops.csv", newline="") as handle:
        validation = {row["file"] for row in csv.DictReader(handle) if row["split"] == "val"}
    if validation & set(prints):
        raise SystemExit(f"validation prints in the sheet: {sorted(validation & set(prints))}")
    args.out.mkdir(parents=True, exist_ok=True)
    manifest = args.out / "manifest.csv"
    with open(manifest, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["item_id", "source_uri", "checksum"])
        for name in prints:
            path = (args.photos / name).resolve()
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            writer.writerow([name.rsplit(".", 1)[0], str(path), f"sha256:{digest}"])
    cli = [sys.executable, "-m", "patina.flows.cli"]
    subprocess.run([*cli, "run", str(manifest), "--output", str(args.out / "restored")], check=True)
    sheet = [sys.executable, str(HERE / "contact_sheet.py"), str(manifest), str(args.out / "restored"), str(args.sheet)]
    subprocess.run([*sheet, "--columns", "3"], check=True)


if __name__ == "__main__":
    main()
