"""Polygon geometry: areas and lengths, the validity rules, exactness, and large rings.

The validity checks are compared against an independent O(n^2) brute force in exact
rational arithmetic on small grids, where collinear and touching cases are frequent.
"""

from __future__ import annotations

import itertools
import math
import random
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from medlabel.domain import polygons
from medlabel.domain.polygons import (
    holes_issue,
    orient,
    point_in_polygon,
    polygon_area,
    polygon_problem,
    polyline_length,
    ring_area,
    ring_issue,
    ring_perimeter,
    ring_problem,
)

Pt = tuple[float, float]

SQUARE = [(0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 10.0)]


def circle(n: int, r: float = 400.0, c: float = 500.0) -> np.ndarray:
    t = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    return np.c_[c + r * np.cos(t), c + r * np.sin(t)]


def star(n: int) -> np.ndarray:
    t = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    r = np.where(np.arange(n) % 2 == 0, 450.0, 60.0)
    return np.c_[500 + r * np.cos(t), 500 + r * np.sin(t)]


def comb(teeth: int) -> np.ndarray:
    """Long thin teeth side by side: every tooth overlaps every other along x."""
    pts: list[Pt] = []
    for t in range(teeth):
        pts += [(0.0, 2.0 * t), (1000.0, 2.0 * t), (1000.0, 2.0 * t + 1), (0.5, 2.0 * t + 1)]
    pts[-1] = (0.0, 2.0 * teeth - 1)
    pts += [(-10.0, 2.0 * teeth - 1), (-10.0, 0.0)]
    return np.asarray(pts)


def force_sweep(mp: pytest.MonkeyPatch) -> None:
    """Make the edge check use the Shamos-Hoey sweep whatever the number of pairs."""
    mp.setattr(polygons, "_PAIRS_PER_EDGE", -1)
    mp.setattr(polygons, "_PAIR_BUDGET_FLOOR", -1)


def test_force_sweep_takes_the_sweep(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = polygons._sweep

    def spy(edges: polygons._Edges) -> polygons._Hit | None:
        calls.append(edges.count)
        return real(edges)

    monkeypatch.setattr(polygons, "_sweep", spy)
    assert ring_problem(SQUARE) is None
    assert calls == []
    force_sweep(monkeypatch)
    assert ring_problem(SQUARE) is None
    assert ring_problem([(0, 0), (2, 2), (2, 0), (0, 2)]) is not None
    assert calls == [4, 4]


# ---- measures ---------------------------------------------------------------------------


def test_signed_area_follows_orientation() -> None:
    assert ring_area(SQUARE) == 100.0
    assert ring_area(SQUARE[::-1]) == -100.0
    assert ring_area([(0, 0), (4, 0), (0, 3)]) == 6.0
    assert ring_area([(0, 0), (1, 1)]) == 0.0


def test_area_is_exact_far_from_the_origin() -> None:
    far = [(x + 1e6, y + 1e6) for x, y in SQUARE]
    assert ring_area(far) == 100.0


def test_polygon_area_subtracts_holes_whatever_their_orientation() -> None:
    hole = [(2.0, 2.0), (4.0, 2.0), (4.0, 4.0), (2.0, 4.0)]
    assert polygon_area(SQUARE, [hole]) == 96.0
    assert polygon_area(SQUARE[::-1], [hole[::-1], [(6, 6), (7, 6), (7, 7)]]) == 95.5


def test_perimeter_and_length_with_anisotropic_scale() -> None:
    rect = [(0.0, 0.0), (4.0, 0.0), (4.0, 3.0), (0.0, 3.0)]
    assert ring_perimeter(rect) == 14.0
    assert ring_perimeter(rect, scale=(0.5, 2.0)) == pytest.approx(2 * (4 * 0.5 + 3 * 2.0))
    assert polyline_length([(0, 0), (3, 4)]) == 5.0
    assert polyline_length([(0, 0), (3, 4)], scale=(0.7, 0.7)) == pytest.approx(3.5)
    assert polyline_length([(0, 0), (3, 4)], scale=(0.5, 2.0)) == pytest.approx(
        math.hypot(1.5, 8.0)
    )
    assert polyline_length([(0, 0), (3, 4), (3, 0)]) == 9.0
    assert polyline_length([(1, 1)]) == 0.0


# ---- single rings: accepted ---------------------------------------------------------------


@pytest.mark.parametrize(
    "ring",
    [
        SQUARE,
        SQUARE[::-1],
        [(0, 0), (1, 0), (0, 1)],
        [(0, 0), (5, 0), (10, 0), (10, 10), (0, 10)],  # a straight-through vertex is fine
        [(0, 0), (10, 0), (10, 10), (5, 2), (0, 10)],  # concave
        [(0, 0), (10, 0), (10, 10), (5, 0.001), (0, 10)],  # close to an edge, not on it
        [(0.1, 0.1), (0.7, 0.2), (0.3, 0.9)],
        [(-0.5, -0.5), (511.5, -0.5), (511.5, 511.5), (-0.5, 511.5)],
    ],
)
def test_valid_rings(ring: list[Pt]) -> None:
    assert ring_problem(ring) is None


# ---- single rings: rejected ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("ring", "expected", "vertex"),
    [
        ([(0, 0), (1, 1)], "at least 3 vertices, not 2", None),
        ([], "at least 3 vertices, not 0", None),
        ([(0, 0), (1, math.nan), (0, 1)], "vertex 1 is not a finite point", 1),
        ([(0, 0), (math.inf, 0), (0, 1)], "vertex 1 is not a finite point", 1),
        ([*SQUARE, (0.0, 0.0)], "the last vertex (4) repeats the first", 4),
        ([(0, 0), (10, 0), (10, 0), (0, 10)], "vertices 1 and 2 are the same point", 2),
        ([(0, 0), (1, 0), (2, 0)], "all 3 vertices lie on one straight line", None),
        ([(0, 0), (1, 1), (2, 2), (5, 5)], "all 4 vertices lie on one straight line", None),
        (
            [(0, 0), (4, 0), (4, 4), (2, 2), (0, 4), (2, 2)],
            "vertices 3 and 5 are the same point (2.0, 2.0)",
            5,
        ),
        (
            [(0, 0), (4, 0), (4, 4), (4, 2), (0, 4)],
            "turns back on itself at vertex 2: edges 1 and 2 overlap",
            2,
        ),
        ([(0, 0), (2, 2), (2, 0), (0, 2)], "edges 0 and 2 cross at (1.0, 1.0)", None),
        ([(0, 0), (4, 0), (4, 4), (2, 0), (0, 4)], "edges 0 and 2 touch at (2.0, 0.0)", None),
        (  # edges 0 and 3 run along each other
            [(0, 0), (6, 0), (6, 4), (4, 0), (3, 0), (3, 4)],
            "touch",
            None,
        ),
        ([(0, 0), (1e-6, 0), (0, 1e-6)], "area (5e-13 px^2) is too small", None),
    ],
)
def test_invalid_rings(ring: list[Pt], expected: str, vertex: int | None) -> None:
    issue = ring_issue(ring)
    assert issue is not None
    assert expected in issue.message
    assert issue.vertex == vertex
    assert ring_problem(ring) == issue.message


def test_bow_tie_message_names_edges_and_point() -> None:
    assert ring_problem([(0, 0), (2, 2), (2, 0), (0, 2)]) == (
        "edges 0 and 2 cross at (1.0, 1.0); a ring's edges may not cross or touch each other"
    )


def test_a_vertex_exactly_on_an_edge_touches_it() -> None:
    # vertex 3 lies on edge 0 (a -> b), so edges 2 and 3 both touch it; every coordinate
    # is an exact binary fraction
    a, b, mid = (0.0, 0.0), (0.75, 2.25), (0.25, 0.75)
    assert ring_problem([a, b, (3.0, 3.0), mid, (3.0, 0.0)]) == (
        "edges 0 and 2 touch at (0.25, 0.75); a ring's edges may not cross or touch each other"
    )


@pytest.mark.parametrize("t", [0.5, 0.25, 1 / 3, 0.1, 0.7])
def test_a_vertex_near_an_edge_is_judged_exactly(t: float) -> None:
    # decimal coordinates are not exact in binary: the vertex is on, just inside or just
    # outside edge 0, and only exact arithmetic can tell which
    a, b = (0.1, 0.3), (0.7, 2.1)
    mid = (a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1]))
    ring = [a, b, (3.0, 3.0), mid, (3.0, 0.0)]
    side = _exact_orient(a, b, mid)
    problem = ring_problem(ring)
    if side == 0:
        assert problem is not None
        assert "edges 0 and 2 touch" in problem
    elif side < 0:  # to the right of a -> b: the notch stays inside
        assert problem is None
    else:
        assert problem is not None
        assert "cross" in problem
    assert (problem is None) is _brute_ring_valid(ring)


def _exact_orient(a: Pt, b: Pt, c: Pt) -> int:
    f = Fraction
    det = (f(b[0]) - f(a[0])) * (f(c[1]) - f(a[1])) - (f(b[1]) - f(a[1])) * (f(c[0]) - f(a[0]))
    return (det > 0) - (det < 0)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=6, max_size=6))
def test_orient_is_exact(v: list[float]) -> None:
    a, b, c = (v[0], v[1]), (v[2], v[3]), (v[4], v[5])
    assert orient(*a, *b, *c) == _exact_orient(a, b, c)
    # collinear by construction in exact arithmetic (c = a + 2 (b - a) with exact doubling)
    d = (v[0] + 2 * (v[2] - v[0]), v[1] + 2 * (v[3] - v[1]))
    assert orient(*a, *b, *d) == _exact_orient(a, b, d)


def test_orient_of_nearly_collinear_points() -> None:
    a, b = (0.1, 0.1), (0.3, 0.3)
    c = (0.7, 0.7)
    assert orient(*a, *b, *c) == _exact_orient(a, b, c)
    assert orient(0.0, 0.0, 1.0, 1.0, 2.0, 2.0) == 0
    assert orient(0.0, 0.0, 1.0, 0.0, 0.5, 1e-300) == 1
    assert orient(0.0, 0.0, 1e200, 1e200, 2e200, 2e200) == 0  # products overflow


# ---- holes ---------------------------------------------------------------------------------

OUTER = [(0.0, 0.0), (20.0, 0.0), (20.0, 20.0), (0.0, 20.0)]


def sq(x: float, y: float, s: float) -> list[Pt]:
    return [(x, y), (x + s, y), (x + s, y + s), (x, y + s)]


def test_valid_holes() -> None:
    assert polygon_problem(OUTER, [sq(2, 2, 3), sq(10, 10, 5), sq(6, 2, 1)]) is None
    assert polygon_problem(OUTER, []) is None
    assert polygon_problem(OUTER, [sq(0.5, 0.5, 19)]) is None  # close but not touching


@pytest.mark.parametrize(
    ("holes", "expected", "ring"),
    [
        ([sq(2, 2, 3), sq(30, 30, 2)], "hole 1 lies outside the outer ring", 1),
        ([sq(-5, -5, 2)], "hole 0 lies outside the outer ring", 0),
        (
            [[(0, 0), (5, 5), (5, 1)]],
            "vertex 0 of hole 0 is the same point as vertex 0 of the outer ring (0.0, 0.0)",
            0,
        ),
        ([[(0, 5), (5, 4), (5, 10)]], "edge 3 of the outer ring touches edge 0 of hole 0", 0),
        ([[(1, 5), (25, 5), (5, 10)]], "crosses", 0),
        ([sq(2, 2, 5), sq(4, 4, 5)], "edge 1 of hole 0 crosses edge 0 of hole 1 at (7.0, 4.0)", 1),
        ([sq(2, 2, 5), [(7, 3), (9, 3), (9, 5)]], "touches", 1),
        ([sq(2, 2, 5), sq(7, 2, 5)], "is the same point as", 1),
        ([sq(2, 2, 10), sq(4, 4, 2)], "hole 1 lies inside hole 0; holes may not be nested", 1),
        ([sq(4, 4, 2), sq(2, 2, 10)], "hole 0 lies inside hole 1", 0),
    ],
)
def test_invalid_holes(holes: list[list[Pt]], expected: str, ring: int) -> None:
    issue = holes_issue(OUTER, holes)
    assert issue is not None
    assert expected in issue.message
    assert issue.ring == ring
    problem = polygon_problem(OUTER, holes)
    assert problem is not None
    assert expected in problem


def test_polygon_problem_names_the_invalid_ring() -> None:
    assert polygon_problem([(0, 0), (1, 0)], []) == (
        "outer ring: a ring needs at least 3 vertices, not 2"
    )
    problem = polygon_problem(OUTER, [sq(1, 1, 2), [(2, 2), (4, 4), (4, 2), (2, 4)]])
    assert problem is not None
    assert problem.startswith("hole 1: edges 0 and 2 cross at (3.0, 3.0)")


# ---- point in polygon ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "y", "inside"),
    [
        (1, 1, True),
        (3, 3, False),  # in the hole
        (0, 5, True),  # on the outer boundary
        (20, 20, True),  # an outer vertex
        (2, 3, True),  # on the hole's boundary
        (-1, 5, False),
        (25, 5, False),
        (10, 20.000001, False),
    ],
)
def test_point_in_polygon(x: float, y: float, inside: bool) -> None:
    assert point_in_polygon(x, y, OUTER, [sq(2, 2, 3)]) is inside


def test_point_in_concave_polygon_on_vertex_rows() -> None:
    ring = [(0, 0), (10, 0), (10, 10), (5, 5), (0, 10)]
    assert point_in_polygon(5, 7, ring) is False
    assert point_in_polygon(5, 4, ring) is True
    assert point_in_polygon(-1, 5, ring) is False  # ray passes through vertex (5, 5)
    assert point_in_polygon(2, 5, ring) is True


# ---- large rings ----------------------------------------------------------------------------


def test_ten_thousand_vertex_circle() -> None:
    ring = circle(10_000)
    assert ring_problem(ring) is None
    assert ring_area(ring) == pytest.approx(math.pi * 400**2, rel=1e-6)
    broken = ring.copy()
    broken[[10, 11]] = broken[[11, 10]]  # two neighbours swapped: their edges cross
    problem = ring_problem(broken)
    assert problem is not None
    assert problem.startswith("edges 9 and 11 cross at (")


def test_ten_thousand_vertex_star() -> None:
    ring = star(10_000)
    assert ring_problem(ring) is None
    broken = ring.copy()
    broken[5_000] = (1000.0, 500.0)  # a spike pulled across its neighbours
    problem = ring_problem(broken)
    assert problem is not None
    assert "cross" in problem


def test_long_parallel_edges_use_the_sweep(monkeypatch: pytest.MonkeyPatch) -> None:
    ring = comb(2_500)
    assert len(ring) == 10_002
    assert ring_problem(ring) is None
    bad = ring.copy()
    bad[401] = (1000.0, 203.5)  # a tooth's tip reaches into the next tooth's gap and beyond
    assert ring_problem(bad) is not None
    force_sweep(monkeypatch)
    assert ring_problem(ring) is None
    assert ring_problem(circle(10_000)) is None
    assert ring_problem(bad) is not None


def test_axis_aligned_raster_outline() -> None:
    side = 2_500
    ring = (
        [(float(x), 0.0) for x in range(side)]
        + [(float(side), float(y)) for y in range(side)]
        + [(float(x), float(side)) for x in range(side, 0, -1)]
        + [(0.0, float(y)) for y in range(side, 0, -1)]
    )
    assert len(ring) == 10_000
    assert ring_problem(ring) is None
    assert ring_area(ring) == side * side


def test_many_holes() -> None:
    outer = [(0.0, 0.0), (1000.0, 0.0), (1000.0, 1000.0), (0.0, 1000.0)]
    holes = [
        np.add(circle(100, r=20.0, c=0.0), (50 + 100 * (h % 9), 50 + 100 * (h // 9)))
        for h in range(81)
    ]
    assert polygon_problem(outer, holes) is None
    holes[40] = np.add(holes[40], (70.0, 0.0))  # now overlaps its right-hand neighbour
    problem = polygon_problem(outer, holes)
    assert problem is not None
    assert "hole 40" in problem
    assert "hole 41" in problem


# ---- properties --------------------------------------------------------------------------------


@st.composite
def convex_rings(draw: st.DrawFn) -> list[Pt]:
    """Points on a circle in angular order: always a convex polygon."""
    steps = draw(st.lists(st.integers(0, 3599), min_size=3, max_size=40, unique=True))
    radius = draw(st.floats(10.0, 1000.0))
    cx, cy = draw(st.floats(-1000, 1000)), draw(st.floats(-1000, 1000))
    angles = [math.radians(s / 10) for s in sorted(steps)]
    return [(cx + radius * math.cos(a), cy + radius * math.sin(a)) for a in angles]


@settings(max_examples=200, deadline=None)
@given(convex_rings())
def test_convex_polygons_from_sorted_angles_are_valid(ring: list[Pt]) -> None:
    assert ring_problem(ring) is None
    assert ring_problem(ring[::-1]) is None
    assert ring_area(ring) > 0  # counter-clockwise angles turn from +x to +y


@settings(max_examples=200, deadline=None)
@given(convex_rings(), st.integers(0, 100))
def test_area_is_invariant_under_vertex_rotation(ring: list[Pt], shift: int) -> None:
    k = shift % len(ring)
    rotated = ring[k:] + ring[:k]
    assert ring_area(rotated) == pytest.approx(ring_area(ring), rel=1e-9, abs=1e-6)
    assert ring_area(rotated[::-1]) == pytest.approx(-ring_area(ring), rel=1e-9, abs=1e-6)
    assert ring_problem(rotated) is None


@settings(max_examples=200, deadline=None)
@given(convex_rings(), st.integers(0, 100))
def test_swapping_neighbours_of_a_convex_ring_makes_a_bow_tie(ring: list[Pt], at: int) -> None:
    assume(len(ring) >= 4)
    i = at % len(ring)
    j = (i + 1) % len(ring)
    bad = list(ring)
    bad[i], bad[j] = bad[j], bad[i]
    problem = ring_problem(bad)
    assert problem is not None
    assert "cross" in problem


# ---- against a brute force ----------------------------------------------------------------------


def _on_segment(p: Pt, a: Pt, b: Pt) -> bool:
    return (
        _exact_orient(a, b, p) == 0
        and min(a[0], b[0]) <= p[0] <= max(a[0], b[0])
        and min(a[1], b[1]) <= p[1] <= max(a[1], b[1])
    )


def _meet(a: Pt, b: Pt, c: Pt, d: Pt) -> bool:
    o1, o2 = _exact_orient(a, b, c), _exact_orient(a, b, d)
    o3, o4 = _exact_orient(c, d, a), _exact_orient(c, d, b)
    if o1 * o2 < 0 and o3 * o4 < 0:
        return True
    return (
        _on_segment(c, a, b) or _on_segment(d, a, b) or _on_segment(a, c, d) or _on_segment(b, c, d)
    )


def _edges_ok(rings: list[list[Pt]]) -> bool:
    """No two edges meet, except adjacent edges of one ring in their shared vertex only."""
    edges = [
        (r, e, len(ring), ring[e], ring[(e + 1) % len(ring)])
        for r, ring in enumerate(rings)
        for e in range(len(ring))
    ]
    for (r1, e1, n, a, b), (r2, e2, _, c, d) in itertools.combinations(edges, 2):
        if r1 == r2 and (e2 - e1) in (1, n - 1):
            if e2 - e1 == 1:  # a -> b == c -> d
                first, shared, last = a, b, d
            else:  # e1 == 0, e2 == n - 1: c -> d == a
                first, shared, last = c, a, b
            overlap = _exact_orient(first, shared, last) == 0 and (
                (Fraction(first[0]) - Fraction(shared[0]))
                * (Fraction(last[0]) - Fraction(shared[0]))
                + (Fraction(first[1]) - Fraction(shared[1]))
                * (Fraction(last[1]) - Fraction(shared[1]))
                > 0
            )
            if overlap:
                return False
        elif _meet(a, b, c, d):
            return False
    return True


def _brute_ring_valid(ring: list[Pt]) -> bool:
    return (
        len(ring) >= 3
        and len(set(ring)) == len(ring)
        and _edges_ok([ring])
        and abs(ring_area(ring)) > polygons.MIN_RING_AREA
    )


def test_sweep_tests_edges_that_become_neighbours_when_one_between_them_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # edges 0 and 3 cross only after edge 1, which lay between them in the sweep, ended
    ring = [(0.0, 27.0), (21.0, 18.0), (16.0, 10.0), (30.0, 23.0), (26.0, 19.0)]
    assert not _brute_ring_valid(ring)
    assert ring_problem(ring) is not None
    force_sweep(monkeypatch)
    assert ring_problem(ring) is not None


@pytest.mark.parametrize("seed", range(4))
def test_sweep_agrees_with_brute_force_on_random_rings(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(seed)
    force_sweep(monkeypatch)
    for _ in range(500):
        size = rng.choice([5, 10, 30])
        ring = [
            (float(rng.randint(0, size)), float(rng.randint(0, size)))
            for _ in range(rng.randint(4, 14))
        ]
        assert (ring_problem(ring) is None) is _brute_ring_valid(ring), ring


grid_rings = st.integers(2, 6).flatmap(
    lambda g: st.lists(st.tuples(st.integers(0, g), st.integers(0, g)), min_size=3, max_size=9)
)


@settings(max_examples=800, deadline=None)
@given(grid_rings, st.sampled_from([1.0, 0.1, 0.3]), st.booleans())
def test_ring_check_agrees_with_brute_force(
    raw: list[tuple[int, int]], unit: float, sweep: bool
) -> None:
    ring = [(x * unit, y * unit * 3) for x, y in raw]
    expected = _brute_ring_valid(ring)
    with pytest.MonkeyPatch.context() as mp:
        if sweep:
            force_sweep(mp)
        assert (ring_problem(ring) is None) is expected, ring


def _inside_brute(p: Pt, ring: list[Pt]) -> bool:
    """Even-odd ray casting in exact arithmetic, for a point off the ring."""
    x, y = Fraction(p[0]), Fraction(p[1])
    inside = False
    for (ax, ay), (bx, by) in zip(ring, ring[1:] + ring[:1], strict=True):
        fa, fb = (Fraction(ax), Fraction(ay)), (Fraction(bx), Fraction(by))
        if (fa[1] > y) != (fb[1] > y):
            x_cross = fa[0] + (y - fa[1]) * (fb[0] - fa[0]) / (fb[1] - fa[1])
            inside ^= x_cross > x
    return inside


triangles = st.lists(
    st.tuples(st.integers(0, 8), st.integers(0, 8)), min_size=3, max_size=3
).filter(lambda t: _exact_orient(t[0], t[1], t[2]) != 0)
rectangles = st.tuples(
    st.integers(0, 7), st.integers(0, 7), st.integers(1, 8), st.integers(1, 8)
).map(
    lambda r: [(r[0], r[1]), (r[0] + r[2], r[1]), (r[0] + r[2], r[1] + r[3]), (r[0], r[1] + r[3])]
)


@settings(max_examples=800, deadline=None)
@given(st.lists(st.one_of(triangles, rectangles), min_size=2, max_size=4), st.booleans())
def test_ring_relations_agree_with_brute_force(raws: list[list[Pt]], sweep: bool) -> None:
    rings = [[(float(x), float(y)) for x, y in raw] for raw in raws]
    vertices = [v for r in rings for v in r]
    disjoint = len(set(vertices)) == len(vertices) and _edges_ok(rings)
    with pytest.MonkeyPatch.context() as mp:
        if sweep:
            force_sweep(mp)
        issue = holes_issue(rings[0], rings[1:])
    if not disjoint:
        assert issue is not None
        return
    # disjoint boundaries: valid iff every hole is inside the outer ring and in no other hole
    inside = all(_inside_brute(r[0], rings[0]) for r in rings[1:])
    nested = any(
        _inside_brute(rings[h][0], rings[g])
        for h in range(1, len(rings))
        for g in range(1, len(rings))
        if g != h
    )
    assert (issue is None) is (inside and not nested)
    assert (polygon_problem(rings[0], rings[1:]) is None) is (inside and not nested)
