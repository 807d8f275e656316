"""Make ``china-outline.json`` (the hub map's coasts and borders) from Natural Earth.

Run once at build time, never by the app: ``npm pack world-atlas@2`` (Natural Earth
4.1.0 as TopoJSON; the data are public domain, the package ISC), unpack it, then
``python data/map/trim_outline.py package/countries-50m.json data/map/china-outline.json``.
Every arc of the topology (a coast or a border, each drawn once) is cut to the box
around China's hubs and rounded to 0.1 degree; the result is a list of polylines.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

BOX = (73.0, 135.0, 17.0, 54.0)  # lon min, lon max, lat min, lat max
STEP = 0.1


def decode_arcs(topo: dict) -> list[list[tuple[float, float]]]:
    (sx, sy), (tx, ty) = topo["transform"]["scale"], topo["transform"]["translate"]
    arcs = []
    for arc in topo["arcs"]:
        x = y = 0
        points = []
        for dx, dy in arc:
            x, y = x + dx, y + dy
            points.append((x * sx + tx, y * sy + ty))
        arcs.append(points)
    return arcs


def inside(p: tuple[float, float]) -> bool:
    return BOX[0] <= p[0] <= BOX[1] and BOX[2] <= p[1] <= BOX[3]


def snap(p: tuple[float, float]) -> tuple[float, float]:
    return (round(round(p[0] / STEP) * STEP, 2), round(round(p[1] / STEP) * STEP, 2))


def clip(arc: list[tuple[float, float]]) -> list[list[tuple[float, float]]]:
    pieces: list[list[tuple[float, float]]] = []
    current: list[tuple[float, float]] = []
    for p in arc:
        if inside(p):
            q = snap(p)
            if not current or current[-1] != q:
                current.append(q)
        elif current:
            pieces.append(current)
            current = []
    if current:
        pieces.append(current)
    return [c for c in pieces if len(c) > 1]


def main(source: str, target: str) -> None:
    topo = json.loads(Path(source).read_text(encoding="utf-8"))
    lines = [piece for arc in decode_arcs(topo) for piece in clip(arc)]
    out = {
        "source": "Natural Earth 4.1.0 admin-0 countries 1:50m (public domain), via the npm "
                  "package world-atlas 2.0.2 (ISC); trimmed by data/map/trim_outline.py",
        "box": {"lon": [BOX[0], BOX[1]], "lat": [BOX[2], BOX[3]]},
        "lines": [[list(p) for p in line] for line in lines],
    }
    Path(target).write_text(json.dumps(out, separators=(",", ":")) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main(*sys.argv[1:3])
