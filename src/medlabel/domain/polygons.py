"""Pure 2D polygon geometry on image-index coordinates ``(x, y)`` = ``(i, j)`` = (column, row).

Rings
    A *ring* is a sequence of vertices ``[(x0, y0), (x1, y1), ...]`` that is closed
    implicitly: edge ``e`` runs from vertex ``e`` to vertex ``e + 1``, and the last edge,
    ``n - 1``, from the last vertex back to vertex 0. A ring whose last vertex repeats the
    first is **rejected**, not normalised (the message says to omit the last vertex), so a
    stored ring is always exactly what the client sent. Rings are kept in the orientation
    given; orientation is **not** enforced, for outer rings or holes. :func:`ring_area` is
    signed: positive when the vertices turn from +x towards +y (that is *clockwise* as shown
    on screen, where rows grow downwards), negative the other way.

A ring is valid when (checked in this order, the first failure is reported):

1. it has at least 3 vertices, all finite;
2. its last vertex is not a repeat of the first (omit it: rings close themselves);
3. no two consecutive vertices are the same point;
4. not all of its vertices lie on one straight line (it would have no area);
5. no vertex appears twice (a ring may not pass through the same point again);
6. it never turns straight back on itself: at no vertex do the two edges that meet there
   overlap (a spike ``a -> b -> c`` with ``c`` on the line through ``a`` and ``b``, on
   the same side of ``b`` as ``a``);
7. it does not cross or touch itself: no two non-adjacent edges have any point in common
   (closed segments, so an edge that ends on another edge, or that runs along it, counts);
   adjacent edges meet only in their shared vertex (rule 6);
8. its area is more than :data:`MIN_RING_AREA` (1e-9 px^2) in absolute value.

A *polygon* is an outer ring and zero or more holes. It is valid when every ring is valid
and, in addition, no two of its rings share a point (no shared vertex, no crossing or
touching edges), every hole lies strictly inside the outer ring, and no hole lies inside
another hole (draw an island inside a hole as a polygon of its own).

Predicates are exact: orientation tests are evaluated in floating point with Shewchuk's
error bound and fall back to exact rational arithmetic when the sign is uncertain, so a
vertex exactly on another edge is always "touching", whatever the coordinates.

Self-intersection is found without comparing all pairs of edges: edges are sorted along the
x (or y) axis and only pairs whose bounding boxes overlap are tested, vectorised with numpy;
when that would test too many pairs (long edges of a star or a comb), a Shamos-Hoey sweep
line in O(n log n) takes over. A ring of 10,000 vertices takes milliseconds (a circle) to
about a fifth of a second (a spiky star).

Problems are short messages naming the vertices or edges at fault, e.g.
``"edges 2 and 5 cross at (10.5, 3.0)"``; :func:`ring_issue` and :func:`holes_issue` also
say which ring and vertex, so a caller can point at the offending value.

:func:`point_in_polygon` uses the even-odd rule over all rings and treats the polygon as a
closed set: a point on the outer ring or on a hole's boundary counts as inside.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

MIN_RING_AREA = 1e-9
"""Smallest absolute ring area (px^2) that counts as a shape."""

Points = Sequence[Sequence[float]] | NDArray[Any]
FloatArray = NDArray[np.float64]

_EPS = 2.0**-53
_CCW_ERRBOUND = (3.0 + 16.0 * _EPS) * _EPS  # Shewchuk's ccwerrboundA
_ABS_SLACK = 1e-300  # covers underflow of the products, which the relative bound ignores
_PAIRS_PER_EDGE = 30  # above this many candidate pairs per edge (plus the floor), sweep
_PAIR_BUDGET_FLOOR = 10_000
_PAIR_CHUNK = 1 << 18


@dataclass(frozen=True)
class Problem:
    """Why a ring or polygon is invalid.

    ``ring`` is ``None`` for the outer ring (or a lone ring) and the hole's index otherwise;
    ``vertex`` is the index of the offending vertex in that ring, when one is to blame.
    """

    message: str
    ring: int | None = None
    vertex: int | None = None


# ---- measures ---------------------------------------------------------------------------


def as_points(points: Points) -> FloatArray:
    """The points as an ``(n, 2)`` float array (raises ValueError for another shape)."""
    arr = np.asarray(points, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 2), dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"expected a sequence of (x, y) points, got shape {arr.shape}")
    return arr


def ring_area(points: Points) -> float:
    """Signed shoelace area (px^2) of the implicitly closed ring; see the module docstring."""
    p = as_points(points)
    if len(p) < 3:
        return 0.0
    x = p[:, 0] - p[0, 0]  # shifting to the first vertex keeps precision far from the origin
    y = p[:, 1] - p[0, 1]
    return float(0.5 * (np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y)))


def polygon_area(outer: Points, holes: Sequence[Points] = ()) -> float:
    """Area of the outer ring minus the areas of the holes (all taken unsigned)."""
    return abs(ring_area(outer)) - sum(abs(ring_area(h)) for h in holes)


def _lengths(p: FloatArray, scale: tuple[float, float]) -> float:
    if len(p) < 2:
        return 0.0
    d = np.diff(p, axis=0) * np.asarray(scale, dtype=np.float64)
    return float(np.sum(np.hypot(d[:, 0], d[:, 1])))


def ring_perimeter(points: Points, scale: tuple[float, float] = (1.0, 1.0)) -> float:
    """Length of the closed ring, the closing edge included.

    ``scale`` multiplies x and y differences before the length is taken: with a pixel
    spacing ``(di, dj)`` and orthonormal in-plane directions it gives millimetres.
    """
    p = as_points(points)
    if len(p) < 2:
        return 0.0
    return _lengths(np.vstack([p, p[:1]]), scale)


def polyline_length(points: Points, scale: tuple[float, float] = (1.0, 1.0)) -> float:
    """Length of the open polyline; ``scale`` as for :func:`ring_perimeter`."""
    return _lengths(as_points(points), scale)


# ---- exact orientation ------------------------------------------------------------------


def _exact_orient(ax: float, ay: float, bx: float, by: float, cx: float, cy: float) -> int:
    """Exact orientation: every float is an integer over a power of two, so scale all six
    to a common denominator and evaluate the determinant in Python integers."""
    ratios = [v.as_integer_ratio() for v in (ax, ay, bx, by, cx, cy)]
    common = max(den for _, den in ratios)
    iax, iay, ibx, iby, icx, icy = (num * (common // den) for num, den in ratios)
    det = (iax - icx) * (iby - icy) - (iay - icy) * (ibx - icx)
    return (det > 0) - (det < 0)


def orient(ax: float, ay: float, bx: float, by: float, cx: float, cy: float) -> int:
    """Exact sign of the turn a -> b -> c: 1 towards +y from +x, -1 the other way, 0 if
    the three points are collinear."""
    acx, bcx, acy, bcy = ax - cx, bx - cx, ay - cy, by - cy
    left, right = acx * bcy, acy * bcx
    det = left - right
    bound = _CCW_ERRBOUND * (abs(left) + abs(right)) + _ABS_SLACK
    if det > bound:
        return 1
    if det < -bound:
        return -1
    if (acx == 0 or bcy == 0) and (acy == 0 or bcx == 0):
        return 0  # a factor of each product is exactly zero
    return _exact_orient(ax, ay, bx, by, cx, cy)


def _orient_many(
    ax: FloatArray,
    ay: FloatArray,
    bx: FloatArray,
    by: FloatArray,
    cx: FloatArray,
    cy: FloatArray,
) -> NDArray[np.int8]:
    """Vectorised :func:`orient` (arguments broadcast against each other)."""
    ax, ay, bx, by, cx, cy = np.broadcast_arrays(ax, ay, bx, by, cx, cy)
    with np.errstate(all="ignore"):
        acx, bcx, acy, bcy = ax - cx, bx - cx, ay - cy, by - cy
        left, right = acx * bcy, acy * bcx
        det = left - right
        bound = _CCW_ERRBOUND * (np.abs(left) + np.abs(right)) + _ABS_SLACK
        sign = np.zeros(det.shape, dtype=np.int8)
        sign[det > bound] = 1
        sign[det < -bound] = -1
    exact_zero = ((acx == 0) | (bcy == 0)) & ((acy == 0) | (bcx == 0))
    for flat in np.flatnonzero((sign == 0) & ~exact_zero):
        idx = np.unravel_index(flat, sign.shape)
        sign[idx] = _exact_orient(
            float(ax[idx]), float(ay[idx]), float(bx[idx]), float(by[idx]),
            float(cx[idx]), float(cy[idx]),
        )  # fmt: skip
    return sign


# ---- point in polygon -------------------------------------------------------------------


def _point_ring_side(x: float, y: float, ring: FloatArray) -> int:
    """1 strictly inside the ring, 0 on its boundary, -1 outside (even-odd, exact)."""
    ax, ay = ring[:, 0], ring[:, 1]
    bx, by = np.roll(ax, -1), np.roll(ay, -1)
    px, py = np.full_like(ax, x), np.full_like(ay, y)
    o = _orient_many(ax, ay, bx, by, px, py)
    on_edge = (
        (o == 0)
        & (np.minimum(ax, bx) <= x)
        & (x <= np.maximum(ax, bx))
        & (np.minimum(ay, by) <= y)
        & (y <= np.maximum(ay, by))
    )
    if bool(np.any(on_edge)):
        return 0
    straddles = (ay > y) != (by > y)
    upward = by > ay
    crossings = straddles & np.where(upward, o > 0, o < 0)
    return 1 if int(np.count_nonzero(crossings)) % 2 else -1


def point_in_polygon(x: float, y: float, outer: Points, holes: Sequence[Points] = ()) -> bool:
    """Whether ``(x, y)`` lies in the polygon: even-odd over all rings; on any boundary -> True."""
    inside = 0
    for ring in (outer, *holes):
        p = as_points(ring)
        if len(p) < 3:
            continue
        side = _point_ring_side(float(x), float(y), p)
        if side == 0:
            return True
        inside += side == 1
    return inside % 2 == 1


# ---- validity -----------------------------------------------------------------------------


def _fmt(value: float) -> str:
    return repr(round(float(value), 6))


def _at(x: float, y: float) -> str:
    return f"({_fmt(x)}, {_fmt(y)})"


def ring_problem(points: Points) -> str | None:
    """Why the ring is not valid (see the module docstring), or None if it is."""
    issue = ring_issue(points)
    return issue.message if issue else None


def polygon_problem(outer: Points, holes: Sequence[Points] = ()) -> str | None:
    """Why the polygon is not valid, or None: each ring, then how the rings lie together."""
    issue = ring_issue(outer)
    if issue:
        return f"outer ring: {issue.message}"
    for h, hole in enumerate(holes):
        issue = ring_issue(hole)
        if issue:
            return f"hole {h}: {issue.message}"
    issue = holes_issue(outer, holes)
    return issue.message if issue else None


def ring_issue(points: Points) -> Problem | None:
    """Like :func:`ring_problem`, with the offending vertex where there is one."""
    try:
        p = as_points(points)
    except ValueError:
        return Problem("a ring must be a list of [x, y] points")
    n = len(p)
    if n < 3:
        return Problem(f"a ring needs at least 3 vertices, not {n}")
    bad = np.flatnonzero(~np.all(np.isfinite(p), axis=1))
    if len(bad):
        return Problem(f"vertex {int(bad[0])} is not a finite point", vertex=int(bad[0]))
    if p[0, 0] == p[-1, 0] and p[0, 1] == p[-1, 1]:
        return Problem(
            f"the last vertex ({n - 1}) repeats the first; rings close themselves, "
            "so leave the closing vertex out",
            vertex=n - 1,
        )
    same = np.flatnonzero(np.all(p[1:] == p[:-1], axis=1))
    if len(same):
        v = int(same[0])
        return Problem(
            f"vertices {v} and {v + 1} are the same point {_at(*p[v])}; remove one of them",
            vertex=v + 1,
        )
    if not np.any(_orient_many(p[0, 0], p[0, 1], p[1, 0], p[1, 1], p[:, 0], p[:, 1])):
        return Problem(f"all {n} vertices lie on one straight line, so the ring has no area")
    dup = _first_duplicate(p)
    if dup:
        v, w = dup
        return Problem(
            f"vertices {v} and {w} are the same point {_at(*p[v])}; a ring may not pass "
            "through a point twice",
            vertex=w,
        )
    back = _first_backtrack(p)
    if back is not None:
        return Problem(
            f"the ring turns back on itself at vertex {back}: edges {(back - 1) % n} and "
            f"{back} overlap; remove vertex {back} or move it",
            vertex=back,
        )
    hit = _first_intersection([p])
    if hit:
        return Problem(
            f"edges {hit.index1} and {hit.index2} {hit.verb} at {_at(hit.x, hit.y)}; a ring's "
            "edges may not cross or touch each other",
        )
    area = ring_area(p)
    if abs(area) <= MIN_RING_AREA:
        return Problem(f"the ring's area ({area:.3g} px^2) is too small to be a shape")
    return None


def holes_issue(outer: Points, holes: Sequence[Points]) -> Problem | None:
    """How the rings of a polygon lie together, assuming each ring is valid on its own.

    ``ring`` of the returned problem is the index of the hole at fault.
    """
    if not holes:
        return None
    rings = [as_points(outer), *(as_points(h) for h in holes)]

    def name(r: int) -> str:
        return "the outer ring" if r == 0 else f"hole {r - 1}"

    def hole_of(*rs: int) -> int | None:
        return max(rs) - 1 if max(rs) > 0 else None

    ring_ids = np.concatenate([np.full(len(r), i) for i, r in enumerate(rings)])
    vertex_ids = np.concatenate([np.arange(len(r)) for r in rings])
    dup = _first_duplicate(np.vstack(rings))
    if dup:
        a, b = dup
        ra, rb = int(ring_ids[a]), int(ring_ids[b])
        va, vb = int(vertex_ids[a]), int(vertex_ids[b])
        return Problem(
            f"vertex {vb} of {name(rb)} is the same point as vertex {va} of {name(ra)} "
            f"{_at(*rings[ra][va])}; holes must lie strictly inside the outer ring without "
            "touching it or each other",
            ring=hole_of(ra, rb),
            vertex=vb if rb > 0 else None,
        )
    hit = _first_intersection(rings)
    if hit:
        return Problem(
            f"edge {hit.index1} of {name(hit.ring1)} {hit.verb_one} edge {hit.index2} of "
            f"{name(hit.ring2)} at {_at(hit.x, hit.y)}; holes must lie strictly inside the "
            "outer ring without touching it or each other",
            ring=hole_of(hit.ring1, hit.ring2),
        )
    # The boundaries are disjoint, so one vertex tells on which side a whole ring lies.
    for h in range(1, len(rings)):
        if _point_ring_side(float(rings[h][0, 0]), float(rings[h][0, 1]), rings[0]) < 0:
            return Problem(
                f"hole {h - 1} lies outside the outer ring; a hole must be inside it",
                ring=h - 1,
            )
    lo = np.array([r.min(axis=0) for r in rings])
    hi = np.array([r.max(axis=0) for r in rings])
    for h in range(1, len(rings)):
        for g in range(1, len(rings)):
            if g == h or np.any(lo[h] < lo[g]) or np.any(hi[h] > hi[g]):
                continue
            if _point_ring_side(float(rings[h][0, 0]), float(rings[h][0, 1]), rings[g]) > 0:
                return Problem(
                    f"hole {h - 1} lies inside hole {g - 1}; holes may not be nested, so draw "
                    "an island inside a hole as a polygon of its own",
                    ring=h - 1,
                )
    return None


def _first_duplicate(p: FloatArray) -> tuple[int, int] | None:
    """The first pair of indices ``(a, b)``, ``a < b``, of equal points, or None."""
    order = np.lexsort((p[:, 1], p[:, 0]))
    s = p[order]
    equal = np.flatnonzero(np.all(s[1:] == s[:-1], axis=1))
    if not len(equal):
        return None
    pairs = sorted(
        (min(int(order[e]), int(order[e + 1])), max(int(order[e]), int(order[e + 1])))
        for e in equal
    )
    first_b = min(pairs, key=lambda ab: (ab[1], ab[0]))
    return first_b


def _first_backtrack(p: FloatArray) -> int | None:
    """The first vertex where the two edges meeting there overlap (a collinear U-turn)."""
    prev, nxt = np.roll(p, 1, axis=0), np.roll(p, -1, axis=0)
    turn = _orient_many(prev[:, 0], prev[:, 1], p[:, 0], p[:, 1], nxt[:, 0], nxt[:, 1])
    d1, d2 = prev - p, nxt - p  # signs of float differences are exact
    same_side = np.all(np.sign(d1) == np.sign(d2), axis=1)
    bad = np.flatnonzero((turn == 0) & same_side)
    return int(bad[0]) if len(bad) else None


# ---- edge intersection ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Hit:
    ring1: int
    index1: int
    ring2: int
    index2: int
    crossing: bool
    x: float
    y: float

    @property
    def verb(self) -> str:
        return "cross" if self.crossing else "touch"

    @property
    def verb_one(self) -> str:
        return "crosses" if self.crossing else "touches"


class _Edges:
    """All edges of some rings, in flat arrays; edge ``g`` belongs to ring ``ring[g]``."""

    def __init__(self, rings: Sequence[FloatArray]) -> None:
        a = np.vstack(rings)
        b = np.vstack([np.roll(r, -1, axis=0) for r in rings])
        self.ax, self.ay, self.bx, self.by = a[:, 0], a[:, 1], b[:, 0], b[:, 1]
        self.ring = np.concatenate(
            [np.full(len(r), i, dtype=np.int64) for i, r in enumerate(rings)]
        )
        self.index = np.concatenate([np.arange(len(r), dtype=np.int64) for r in rings])
        self.size = np.concatenate([np.full(len(r), len(r), dtype=np.int64) for r in rings])
        self.count = len(a)

    def adjacent(self, u: NDArray[np.int64], v: NDArray[np.int64]) -> NDArray[np.bool_]:
        d = np.abs(self.index[u] - self.index[v])
        near = (d == 1) | (d == self.size[u] - 1)
        return np.asarray((self.ring[u] == self.ring[v]) & near, dtype=np.bool_)

    def hit(self, u: int, v: int, crossing: bool, x: float, y: float) -> _Hit:
        if (self.ring[u], self.index[u]) > (self.ring[v], self.index[v]):
            u, v = v, u
        return _Hit(
            int(self.ring[u]), int(self.index[u]), int(self.ring[v]), int(self.index[v]),
            crossing, x, y,
        )  # fmt: skip


def _first_intersection(rings: Sequence[FloatArray]) -> _Hit | None:
    """Some pair of non-adjacent edges that share a point, or None.

    Requires what :func:`ring_issue` checks before: no repeated vertex in the rings and no
    collinear overlap of adjacent edges.
    """
    edges = _Edges(rings)
    if edges.count < 4 and len(rings) == 1:
        return None  # every pair of a triangle's edges is adjacent
    lo = (np.minimum(edges.ax, edges.bx), np.minimum(edges.ay, edges.by))
    hi = (np.maximum(edges.ax, edges.bx), np.maximum(edges.ay, edges.by))
    best: tuple[int, NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]] | None = None
    for axis in (0, 1):
        order = np.argsort(lo[axis], kind="stable")
        end = np.searchsorted(lo[axis][order], hi[axis][order], side="right")
        counts = np.maximum(end - np.arange(1, edges.count + 1), 0)
        total = int(counts.sum())
        if best is None or total < best[0]:
            best = (total, order, end, counts)
    assert best is not None
    total, order, end, counts = best
    if total > _PAIRS_PER_EDGE * edges.count + _PAIR_BUDGET_FLOOR:
        return _sweep(edges)
    return _pairs_in_chunks(edges, order, counts, lo, hi)


def _pairs_in_chunks(
    edges: _Edges,
    order: NDArray[np.int64],
    counts: NDArray[np.int64],
    lo: tuple[FloatArray, FloatArray],
    hi: tuple[FloatArray, FloatArray],
) -> _Hit | None:
    """Test every candidate pair (sorted position s with s+1 .. s+counts[s]) in chunks."""
    cumulative = np.cumsum(counts)
    start = 0
    m = edges.count
    while start < m:
        # take sorted positions [start, stop) holding at most about _PAIR_CHUNK pairs
        base = int(cumulative[start - 1]) if start else 0
        stop = int(np.searchsorted(cumulative, base + _PAIR_CHUNK, side="right"))
        stop = min(max(stop, start + 1), m)
        c = counts[start:stop]
        n_pairs = int(c.sum())
        if n_pairs:
            s = np.repeat(np.arange(start, stop), c)
            offsets = np.arange(n_pairs) - np.repeat(np.cumsum(c) - c, c)
            u, v = order[s], order[s + 1 + offsets]
            keep = (
                (lo[0][u] <= hi[0][v])
                & (lo[0][v] <= hi[0][u])
                & (lo[1][u] <= hi[1][v])
                & (lo[1][v] <= hi[1][u])
            )
            keep &= ~edges.adjacent(u, v)
            hit = _test_pairs(edges, u[keep], v[keep])
            if hit:
                return hit
        start = stop
    return None


def _test_pairs(edges: _Edges, u: NDArray[np.int64], v: NDArray[np.int64]) -> _Hit | None:
    """The first of the given pairs (with overlapping bounding boxes) that intersects."""
    if not len(u):
        return None
    px, py, qx, qy = edges.ax[u], edges.ay[u], edges.bx[u], edges.by[u]
    rx, ry, sx, sy = edges.ax[v], edges.ay[v], edges.bx[v], edges.by[v]
    o1 = _orient_many(px, py, qx, qy, rx, ry)
    o2 = _orient_many(px, py, qx, qy, sx, sy)
    o3 = _orient_many(rx, ry, sx, sy, px, py)
    o4 = _orient_many(rx, ry, sx, sy, qx, qy)
    # With overlapping bounding boxes, collinear segments always share a point.
    meet = (o1.astype(np.int16) * o2 <= 0) & (o3.astype(np.int16) * o4 <= 0)
    found = np.flatnonzero(meet)
    if not len(found):
        return None
    pick = min(
        found,
        key=lambda f: sorted(
            [(int(edges.ring[u[f]]), int(edges.index[u[f]])),
             (int(edges.ring[v[f]]), int(edges.index[v[f]]))]
        ),
    )  # fmt: skip
    return _describe(edges, int(u[pick]), int(v[pick]))


def _describe(edges: _Edges, u: int, v: int) -> _Hit | None:
    """Where edges u and v meet (exactly tested), or None if they do not."""
    p = (float(edges.ax[u]), float(edges.ay[u]))
    q = (float(edges.bx[u]), float(edges.by[u]))
    r = (float(edges.ax[v]), float(edges.ay[v]))
    s = (float(edges.bx[v]), float(edges.by[v]))
    o1, o2 = orient(*p, *q, *r), orient(*p, *q, *s)
    o3, o4 = orient(*r, *s, *p), orient(*r, *s, *q)
    if o1 * o2 < 0 and o3 * o4 < 0:
        den = (q[0] - p[0]) * (s[1] - r[1]) - (q[1] - p[1]) * (s[0] - r[0])
        t = ((r[0] - p[0]) * (s[1] - r[1]) - (r[1] - p[1]) * (s[0] - r[0])) / den
        return edges.hit(u, v, True, p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1]))
    for o, point, a, b in ((o1, r, p, q), (o2, s, p, q), (o3, p, r, s), (o4, q, r, s)):
        if o == 0 and _within(point, a, b):
            return edges.hit(u, v, False, point[0], point[1])
    return None


def _within(c: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> bool:
    """For c collinear with a and b: whether c lies on the closed segment a b."""
    return min(a[0], b[0]) <= c[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= c[1] <= max(a[1], b[1])


class _Found(Exception):  # internal control flow, never escapes
    def __init__(self, u: int, v: int) -> None:
        super().__init__()
        self.u, self.v = u, v


def _sweep(edges: _Edges) -> _Hit | None:
    """Shamos-Hoey: sweep the plane in (x, y) order, keep the edges that span the sweep
    position ordered from below to above, and test every pair that becomes neighbours.

    Removals come before insertions at the same point. Two active edges that do not meet
    are ordered by where the later-starting one begins relative to the other; an exact
    zero there means they do meet, which ends the sweep.
    """
    sweep = _Sweep(edges)
    events = sorted(
        [(sweep.left[g], 1, g) for g in range(edges.count)]
        + [(sweep.right[g], 0, g) for g in range(edges.count)]
    )
    try:
        for _, insert, g in events:
            if insert:
                sweep.insert(g)
            else:
                sweep.remove(g)
    except _Found as found:
        hit = _describe(edges, found.u, found.v)
        if hit is None:  # defensive: the ordering saw a touch the pair test did not
            x, y = max(sweep.left[found.u], sweep.left[found.v])
            hit = edges.hit(found.u, found.v, False, x, y)
        return hit
    return None


class _Sweep:
    def __init__(self, edges: _Edges) -> None:
        self.edges = edges
        ax, ay, bx, by = (a.tolist() for a in (edges.ax, edges.ay, edges.bx, edges.by))
        self.ring, self.index = edges.ring.tolist(), edges.index.tolist()
        self.size = edges.size.tolist()
        ends = [((ax[g], ay[g]), (bx[g], by[g])) for g in range(edges.count)]
        self.left: list[tuple[float, float]] = [min(a, b) for a, b in ends]
        self.right: list[tuple[float, float]] = [max(a, b) for a, b in ends]
        self.status: list[int] = []

    def below(self, u: int, v: int) -> bool:
        """Whether u lies below v at the sweep position (both span it and do not meet)."""
        lu, lv = self.left[u], self.left[v]
        if lu == lv:
            o = orient(*lu, *self.right[u], *self.right[v])
        elif lu < lv:
            o = orient(*lu, *self.right[u], *lv)
        else:
            o = -orient(*lv, *self.right[v], *lu)
        if o == 0:
            raise _Found(u, v)
        return o > 0

    def check(self, u: int, v: int) -> None:
        if self.ring[u] == self.ring[v]:
            d = abs(self.index[u] - self.index[v])
            if d in (1, self.size[u] - 1):
                return  # adjacent edges meet in their shared vertex only (checked before)
        if _describe(self.edges, u, v) is not None:
            raise _Found(u, v)

    def _position(self, g: int) -> int:
        """Where g is (or belongs) in the status, by binary search."""
        status, lo, hi = self.status, 0, len(self.status)
        while lo < hi:
            mid = (lo + hi) // 2
            if status[mid] != g and self.below(status[mid], g):
                lo = mid + 1
            else:
                hi = mid
        return lo

    def insert(self, g: int) -> None:
        pos = self._position(g)
        self.status.insert(pos, g)
        if pos > 0:
            self.check(self.status[pos - 1], g)
        if pos + 1 < len(self.status):
            self.check(g, self.status[pos + 1])

    def remove(self, g: int) -> None:
        status = self.status
        pos = self._position(g)
        if pos >= len(status) or status[pos] != g:
            pos = status.index(g)  # defensive; the order is exact, so this does not happen
        del status[pos]
        if 0 < pos < len(status):
            self.check(status[pos - 1], status[pos])
