"""Real photos for the main job and the tests, without ../shared: the photographic stamps of
Debian's `tuxpaint-stamps-default` (GPL-2; animals, food, plants, vehicles, ...; no cartoons),
flattened onto white, shorter side at most 320 px, JPEG. A fixed, name-hashed split puts
--calib of them in OUT/calib and up to --dev in OUT/dev; OUT/photos.csv records each file's
source and licence.

Usage: python tools/fetch_photos.py OUT [--calib 64] [--dev 200]
Needs apt-get (the package is downloaded, not installed) and dpkg-deb.
"""

from __future__ import annotations

import argparse
import csv
import glob
import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile

from PIL import Image

PACKAGE = "tuxpaint-stamps-default"
LICENSE = "GPL-2"
CATEGORIES = ("animals", "food", "plants", "vehicles", "household", "sports", "clothes", "hobbies")
MIN_SIDE = 100
MAX_SIDE = 320


def download(workdir: str) -> str:
    """The package's .deb in `workdir` (apt-get download; apt-get update first if needed)."""
    cmd = ["apt-get", "download", "-q", PACKAGE]
    if subprocess.run(cmd, cwd=workdir, capture_output=True).returncode != 0:
        if os.geteuid() == 0:
            subprocess.run(["apt-get", "update", "-qq"], check=True)
        got = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
        if got.returncode != 0:
            sys.exit(f"fetch_photos: apt-get download {PACKAGE} failed: {got.stderr.strip()}")
    debs = glob.glob(os.path.join(workdir, f"{PACKAGE}_*.deb"))
    if not debs:
        sys.exit(f"fetch_photos: apt-get download left no {PACKAGE} .deb")
    return debs[0]


def stamps(deb: str) -> list[tuple[str, bytes]]:
    """(path in the package, PNG bytes) of the photographic stamps, streamed out of the .deb."""
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", deb], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    out = []
    with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
        for member in tar:
            rel = member.name.split("/stamps/", 1)[-1]
            if (
                member.isfile()
                and "/stamps/" in member.name
                and rel.split("/", 1)[0] in CATEGORIES
                and rel.endswith(".png")
                and not rel.endswith(("_mirror.png", "_thumb.png"))
                and "cartoon" not in rel
            ):
                f = tar.extractfile(member)
                if f is not None:
                    out.append((rel, f.read()))
    if proc.wait() != 0:
        sys.exit(f"fetch_photos: dpkg-deb could not read {deb}")
    return out


def to_photo(png: bytes) -> Image.Image | None:
    """The stamp on white, cropped to its content, shorter side ≤ MAX_SIDE; None if small."""
    img = Image.open(io.BytesIO(png)).convert("RGBA")
    bbox = img.getchannel("A").getbbox()
    if bbox is None:
        return None
    img = img.crop(bbox)
    if min(img.size) < MIN_SIDE:
        return None
    flat = Image.new("RGB", img.size, "white")
    flat.paste(img, mask=img.getchannel("A"))
    scale = MAX_SIDE / min(flat.size)
    if scale < 1:
        flat = flat.resize((round(flat.width * scale), round(flat.height * scale)), Image.BICUBIC)
    return flat


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--calib", type=int, default=64)
    ap.add_argument("--dev", type=int, default=200)
    args = ap.parse_args()
    if os.path.isdir(os.path.join(args.out, "calib")) and os.path.isdir(
        os.path.join(args.out, "dev")
    ):
        print(f"fetch_photos: {args.out} already holds calib/ and dev/")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        deb = download(tmp)
        version = os.path.basename(deb).split("_")[1]
        found = stamps(deb)
    # A name hash, not the sorted order, so both splits mix all categories.
    found.sort(key=lambda s: hashlib.sha256(s[0].encode()).hexdigest())
    staging = args.out + ".partial"
    for split in ("calib", "dev"):
        os.makedirs(os.path.join(staging, split), exist_ok=True)
    rows = []
    counts = {"calib": 0, "dev": 0}
    for rel, png in found:
        split = "calib" if counts["calib"] < args.calib else "dev"
        if split == "dev" and counts["dev"] >= args.dev:
            break
        photo = to_photo(png)
        if photo is None:
            continue
        name = "tuxpaint__" + rel.removesuffix(".png").replace("/", "_").replace("-", "_") + ".jpg"
        photo.save(os.path.join(staging, split, name), quality=90)
        counts[split] += 1
        rows.append(
            {
                "file": name,
                "split": split,
                "package": PACKAGE,
                "version": version,
                "license": LICENSE,
                "origin": rel,
            }
        )
    with open(os.path.join(staging, "photos.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    os.replace(staging, args.out)
    print(
        f"fetch_photos: {counts['calib']} calibration and {counts['dev']} dev photos from "
        f"{PACKAGE} {version} in {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
