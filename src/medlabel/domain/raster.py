"""Exact conversion between polygons and binary masks on the pixel grid.

Coordinates: ``x`` is the column index ``i`` and ``y`` the row index ``j`` of the image, as
in :mod:`medlabel.domain.geometry`; an integer ``(i, j)`` is the *centre* of pixel ``(i, j)``,
so pixel ``(i, j)`` covers ``[i - 0.5, i + 0.5] x [j - 0.5, j + 0.5]``. Masks are numpy
arrays of shape ``(rows, columns)`` = ``(j, i)`` (one slice of the ``(slices, rows,
columns)`` labelmap convention of :mod:`medlabel.domain.masks`).

Rasterising (:func:`rasterize_polygon`), the pixel-centre rule:
    Pixel ``(i, j)`` belongs to a polygon iff its centre point ``(i, j)`` is inside it by
    the even-odd rule over all of its rings (the outer ring and the holes together). The
    test is the crossing-number test with a ray from the centre towards ``+x``: an edge from
    ``(x0, y0)`` to ``(x1, y1)`` is crossed iff ``min(y0, y1) <= j < max(y0, y1)`` (edges
    are half-open in ``y``; horizontal edges are never crossed) and its ``x`` at ``y = j``
    is strictly greater than ``i``. Hence a centre exactly on a left edge or a top
    (smaller-``y``) edge is inside and one on a right or bottom (larger-``y``) edge is
    outside, consistently, so polygons that tile the plane share no pixels and leave none
    out. Rings are closed implicitly (the last vertex joins the first; a repeated first
    vertex is harmless) and may have either orientation. Parts of a polygon outside the
    image are clipped. The arithmetic is floating point: a crossing is computed as
    ``x0 + (j - y0) * (x1 - x0) / (y1 - y0)``, exact for axis-parallel edges.

Tracing (:func:`mask_to_polygons`):
    - Connectivity: a polygon is one 4-connected component of the foreground (pixels that
      share an edge). Pixels that touch only at a corner belong to different polygons unless
      an edge-connected path joins them. A hole is a 4-connected region of background
      enclosed by the component: background that meets the outside, or another hole, only
      at a corner (diagonally) is a hole of its own, whose ring touches the other ring at
      that corner. Islands inside holes are polygons of their own.
    - Vertices lie on pixel corners (half-integers ``i +- 0.5``, ``j +- 0.5``); every edge is
      axis-parallel and every vertex is a corner of the ring (consecutive edges are
      perpendicular: collinear runs are merged). Rings are lists of ``(x, y)`` float tuples,
      not closed (the first vertex is not repeated), starting at their smallest ``(y, x)``.
    - Orientation: outer rings have positive shoelace area in ``(x, y)`` coordinates
      (clockwise as displayed with ``y`` pointing down), holes negative.
    - Guarantees: every ring is simple (no vertex is visited twice, no edges cross or
      overlap); no two rings (of one polygon or of different polygons) share an edge or any
      part of one; rings may touch each other only at isolated corner points ("pinch"
      corners where two pixels touch diagonally): a hole may touch its outer ring or another
      hole, and two polygons may touch, at such points. Each hole lies inside its outer ring.
      The round trip is exact: rasterising all polygons gives back the mask, pixel for pixel,
      for every mask.
    - Order: polygons in raster order of their first pixel (row by row, then column); holes
      by their first vertex ``(y, x)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage  # type: ignore[import-untyped, unused-ignore]

from medlabel.domain.errors import InvalidInput

Point = tuple[float, float]
Ring = list[Point]
Polygon = tuple[Ring, list[Ring]]
RingLike = Sequence[Sequence[float]] | NDArray[Any]

# Directions of unit boundary edges: 0 = +x, 1 = +y, 2 = -x, 3 = -y. With y pointing down,
# turning right from direction d gives (d + 1) % 4. The foreground is on the right.
_DX = np.array([1, 0, -1, 0], dtype=np.int64)
_DY = np.array([0, 1, 0, -1], dtype=np.int64)


# ---- polygon -> mask --------------------------------------------------------------------


def _ring_array(ring: RingLike, field: str) -> NDArray[np.float64]:
    try:
        pts = np.asarray(ring, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"The {field} must be a list of [x, y] number pairs.",
            errors=[{"field": field, "problem": "must be a list of [x, y] pairs"}],
        ) from exc
    if pts.ndim != 2 or pts.shape[1] != 2 or pts.shape[0] < 3:
        raise InvalidInput(
            f"The {field} must be at least three [x, y] vertices, not an array of shape "
            f"{pts.shape}.",
            errors=[{"field": field, "problem": "must have at least 3 [x, y] vertices"}],
        )
    if not np.all(np.isfinite(pts)):
        raise InvalidInput(
            f"The {field} has a coordinate that is not a finite number.",
            errors=[{"field": field, "problem": "coordinates must be finite"}],
        )
    return pts


def _check_size(rows: int, columns: int) -> tuple[int, int]:
    for name, value in (("rows", rows), ("columns", columns)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise InvalidInput(
                f"{name} must be a positive integer, not {value!r}.",
                errors=[{"field": name, "problem": "must be a positive integer"}],
            )
    return int(rows), int(columns)


def rasterize_polygon(
    outer: RingLike, holes: Sequence[RingLike], rows: int, columns: int
) -> NDArray[np.bool_]:
    """The ``(rows, columns)`` boolean mask of the pixels whose centres are inside the
    polygon (pixel-centre rule, even-odd over the outer ring and the holes; see the module
    docstring)."""
    rows, columns = _check_size(rows, columns)
    out = np.zeros((rows, columns), dtype=bool)
    _paint(out, _polygon_rings(outer, holes))
    return out


def rasterize_polygons(
    polygons: Sequence[tuple[RingLike, Sequence[RingLike]]], rows: int, columns: int
) -> NDArray[np.bool_]:
    """The union of :func:`rasterize_polygon` over several polygons."""
    rows, columns = _check_size(rows, columns)
    out = np.zeros((rows, columns), dtype=bool)
    for n, (outer, holes) in enumerate(polygons):
        _paint(out, _polygon_rings(outer, holes, f"polygon {n}: "))
    return out


def _polygon_rings(
    outer: RingLike, holes: Sequence[RingLike], prefix: str = ""
) -> list[NDArray[np.float64]]:
    rings = [_ring_array(outer, f"{prefix}outer ring")]
    rings += [_ring_array(h, f"{prefix}hole {n}") for n, h in enumerate(holes)]
    return rings


def _paint(out: NDArray[np.bool_], rings: list[NDArray[np.float64]]) -> None:
    """OR the even-odd raster of ``rings`` into ``out``, working only in their bounding box."""
    rows, columns = out.shape
    x0 = np.concatenate([r[:, 0] for r in rings])
    y0 = np.concatenate([r[:, 1] for r in rings])
    x1 = np.concatenate([np.roll(r[:, 0], -1) for r in rings])
    y1 = np.concatenate([np.roll(r[:, 1], -1) for r in rings])
    ylo, yhi = np.minimum(y0, y1), np.maximum(y0, y1)
    # Scanlines j with ylo <= j < yhi, clipped to the image.
    first = np.maximum(np.ceil(ylo), 0)
    last = np.minimum(np.ceil(yhi) - 1, rows - 1)
    keep = last >= first  # also drops horizontal edges
    if not np.any(keep):
        return
    # Pixels left of every vertex see an even number of crossings, pixels right of every
    # vertex none: only columns [c_lo, c_hi) can be inside.
    c_lo = int(np.clip(np.floor(x0.min()), 0, columns))
    c_hi = int(np.clip(np.ceil(x0.max()) + 1, 0, columns))
    if c_hi <= c_lo:
        return
    x0, y0, x1, y1 = x0[keep], y0[keep], x1[keep], y1[keep]
    first_i = first[keep].astype(np.int64)
    n = last[keep].astype(np.int64) - first_i + 1
    r_lo, r_hi = int(first_i.min()), int((first_i + n).max())
    edge = np.repeat(np.arange(n.size), n)
    offset = np.arange(edge.size) - np.repeat(np.cumsum(n) - n, n)
    j = first_i[edge] + offset - r_lo
    ex0, ey0, ex1, ey1 = x0[edge], y0[edge], x1[edge], y1[edge]
    xc = ex0 + (j + r_lo - ey0) * (ex1 - ex0) / (ey1 - ey0)
    # The crossing toggles pixels i < xc, i.e. i in [c_lo, k) with k = ceil(xc) clipped.
    k = np.clip(np.ceil(xc), c_lo, c_hi).astype(np.int64) - c_lo
    width = c_hi - c_lo + 1
    hits = np.bincount(j * width + k, minlength=(r_hi - r_lo) * width)
    hits = hits.reshape(r_hi - r_lo, width)
    # Pixel i is inside iff an odd number of crossings has k > i.
    after = np.cumsum(hits[:, ::-1], axis=1)[:, ::-1]
    out[r_lo:r_hi, c_lo:c_hi] |= (after[:, 1:] & 1).astype(bool)


# ---- mask -> polygons -------------------------------------------------------------------


def mask_to_polygons(mask2d: NDArray[Any]) -> list[Polygon]:
    """Trace a 2D mask (non-zero = foreground) into polygons with holes.

    Returns ``[(outer_ring, [hole_ring, ...]), ...]``, one per 4-connected foreground
    component; see the module docstring for the exact guarantees.
    """
    m = np.asarray(mask2d)
    if m.ndim != 2:
        raise InvalidInput(
            f"A mask to trace is a 2D (rows, columns) array, not shape {m.shape}.",
            errors=[{"field": "mask", "problem": "must be 2D"}],
        )
    fg = np.zeros((m.shape[0] + 2, m.shape[1] + 2), dtype=bool)
    fg[1:-1, 1:-1] = m != 0
    if not fg.any():
        return []
    comp, ncomp = ndimage.label(fg)  # 4-connectivity (the default cross structure)
    width = fg.shape[1] + 1  # corners per row of corners
    # Unit boundary edges, foreground on the right (y down). Padded pixel (px, py) has
    # corners (px, py) top-left .. (px + 1, py + 1) bottom-right.
    starts: list[NDArray[np.int64]] = []
    dirs: list[NDArray[np.int64]] = []
    owners: list[NDArray[np.int64]] = []
    inner = fg[1:-1, 1:-1]
    # (direction, neighbour offset (dy, dx), start-corner offset (cx, cy) from the pixel)
    for d, (ny, nx), (sx, sy) in (
        (0, (-1, 0), (0, 0)),  # top side, moving +x
        (1, (0, 1), (1, 0)),  # right side, moving +y
        (2, (1, 0), (1, 1)),  # bottom side, moving -x
        (3, (0, -1), (0, 1)),  # left side, moving -y
    ):
        neighbour = fg[1 + ny : fg.shape[0] - 1 + ny, 1 + nx : fg.shape[1] - 1 + nx]
        py, px = np.nonzero(inner & ~neighbour)
        py, px = py + 1, px + 1
        starts.append((py + sy) * width + (px + sx))
        dirs.append(np.full(py.size, d, dtype=np.int64))
        owners.append(comp[py, px].astype(np.int64))
    start = np.concatenate(starts)
    direction = np.concatenate(dirs)
    owner = np.concatenate(owners)
    end = start + _DX[direction] + _DY[direction] * width
    # Successor: at the end corner prefer a right turn (hug the same foreground pixel, which
    # keeps diagonal foreground apart), then straight on, then a left turn.
    n_corners = width * (fg.shape[0] + 1)
    out_edge = np.full(n_corners * 4, -1, dtype=np.int64)
    out_edge[start * 4 + direction] = np.arange(start.size)
    succ = out_edge[end * 4 + (direction + 1) % 4]
    for turn in (0, 3):
        missing = succ < 0
        succ[missing] = out_edge[end[missing] * 4 + (direction[missing] + turn) % 4]
    assert np.all(succ >= 0), "boundary edges always link up"

    # Ring vertices are the start corners of edges whose direction differs from their
    # predecessor's (collinear runs merged).
    pred = np.empty_like(succ)
    pred[succ] = np.arange(succ.size)
    is_corner = direction != direction[pred]

    outers: dict[int, Ring] = {}
    holes: dict[int, list[Ring]] = {c: [] for c in range(1, ncomp + 1)}
    for corners, comp_id in _cycles(succ, is_corner, start, owner):
        for piece in _split_at_repeats(corners):
            ring, area2 = _ring_coordinates(piece, width)
            if area2 > 0:
                assert comp_id not in outers, "one outer ring per component"
                outers[comp_id] = ring
            else:
                holes[comp_id].append(ring)
    result: list[Polygon] = []
    for comp_id in range(1, ncomp + 1):
        comp_holes = sorted(holes[comp_id], key=lambda r: (r[0][1], r[0][0]))
        result.append((outers[comp_id], comp_holes))
    return result


mask_to_contours = mask_to_polygons


def _cycles(
    succ: NDArray[np.int64],
    is_corner: NDArray[np.bool_],
    start: NDArray[np.int64],
    owner: NDArray[np.int64],
) -> list[tuple[list[int], int]]:
    """Follow the successor permutation: for each cycle, its corner vertices in order and
    its component, cycles in order of their smallest edge index."""
    nxt = succ.tolist()
    corner = is_corner.tolist()
    vertex = start.tolist()
    seen = bytearray(len(nxt))
    cycles: list[tuple[list[int], int]] = []
    for first in range(len(nxt)):
        if seen[first]:
            continue
        corners = []
        e = first
        while not seen[e]:
            seen[e] = 1
            if corner[e]:
                corners.append(vertex[e])
            e = nxt[e]
        cycles.append((corners, int(owner[first])))
    return cycles


def _split_at_repeats(corners: list[int]) -> list[list[int]]:
    """Split a closed vertex sequence into closed loops that visit no vertex twice."""
    stack: list[int] = []
    position: dict[int, int] = {}
    pieces: list[list[int]] = []
    for v in corners:
        at = position.get(v)
        if at is None:
            position[v] = len(stack)
            stack.append(v)
            continue
        loop = stack[at:]
        pieces.append(loop)
        for u in loop[1:]:
            del position[u]
        del stack[at + 1 :]
    pieces.append(stack)
    return pieces


def _ring_coordinates(corners: list[int], width: int) -> tuple[Ring, int]:
    """Image coordinates of padded corner ids, rotated to start at the smallest (y, x),
    and twice the shoelace area."""
    xs = [v % width for v in corners]
    ys = [v // width for v in corners]
    n = len(corners)
    area2 = sum(xs[k - 1] * ys[k] - xs[k] * ys[k - 1] for k in range(n))
    first = min(range(n), key=lambda k: (ys[k], xs[k]))
    order = [*range(first, n), *range(first)]
    # Padded corner (cx, cy) is the top-left corner of image pixel (cx - 1, cy - 1).
    return [(xs[k] - 1.5, ys[k] - 1.5) for k in order], area2


def polygon_area(ring: RingLike) -> float:
    """Signed shoelace area of a ring in ``(x, y)`` coordinates (positive for outer rings
    produced by :func:`mask_to_polygons`)."""
    pts = np.asarray(ring, dtype=np.float64)
    x, y = pts[:, 0], pts[:, 1]
    return float(0.5 * (np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y)))
