#!/usr/bin/env python3
"""Write the land outline `info --map` and the server's landing page draw under the cells:
Natural Earth's 1:110m land (public domain), from the TopoJSON of the npm package
`world-atlas` 2.0.2 (`land-110m.json`), as one ring per line of `lon,lat` pairs rounded to
0.1° (rings of fewer than 4 points after rounding are left out).

    npm pack world-atlas@2.0.2 && tar xzf world-atlas-2.0.2.tgz
    scripts/land-outline.py package/land-110m.json > src/query/land_110m.txt
"""
import json
import sys

topo = json.load(open(sys.argv[1]))
sx, sy = topo["transform"]["scale"]
tx, ty = topo["transform"]["translate"]
arcs = []
for arc in topo["arcs"]:
    x = y = 0
    points = []
    for dx, dy in arc:
        x += dx
        y += dy
        points.append((x * sx + tx, y * sy + ty))
    arcs.append(points)


def ring(indexes):
    out = []
    for i in indexes:
        points = arcs[i] if i >= 0 else list(reversed(arcs[~i]))
        out.extend(points if not out else points[1:])
    return out


def polygons(geometry):
    if geometry["type"] == "Polygon":
        yield geometry["arcs"]
    elif geometry["type"] == "MultiPolygon":
        yield from geometry["arcs"]
    elif geometry["type"] == "GeometryCollection":
        for g in geometry["geometries"]:
            yield from polygons(g)


for polygon in polygons(topo["objects"]["land"]):
    for indexes in polygon:
        points = []
        for lon, lat in ring(indexes):
            p = (round(lon, 1), round(lat, 1))
            if not points or points[-1] != p:
                points.append(p)
        if len(points) >= 4:
            print(" ".join(f"{lon:g},{lat:g}" for lon, lat in points))
