"""Write the chart rendered with each CI values file to a directory, one
file per values file (used by the checkov test)."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from chart import CI_VALUES, load_values, manifests, render


def write_all(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for vf in CI_VALUES:
        docs = manifests(render(load_values(vf)))
        p = out / f"{vf.stem}.yaml"
        p.write_text(yaml.safe_dump_all(docs, sort_keys=False))
        written.append(p)
    return written


if __name__ == "__main__":
    for p in write_all(Path(sys.argv[1])):
        print(p)
