"""Polygon <-> mask conversion: the pixel-centre rule and the exact round trip."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import ndimage  # type: ignore[import-untyped, unused-ignore]

from medlabel.domain.errors import InvalidInput
from medlabel.domain.raster import (
    mask_to_contours,
    mask_to_polygons,
    polygon_area,
    rasterize_polygon,
    rasterize_polygons,
)


def grid(text: str) -> np.ndarray:
    return np.array([[c == "#" for c in line.strip()] for line in text.strip().splitlines()])


# ---- rasterising ------------------------------------------------------------------------


def test_a_square_on_pixel_corners_covers_exactly_its_pixels() -> None:
    square = [(-0.5, -0.5), (3.5, -0.5), (3.5, 2.5), (-0.5, 2.5)]
    out = rasterize_polygon(square, [], 5, 6)
    expected = np.zeros((5, 6), dtype=bool)
    expected[0:3, 0:4] = True
    assert out.dtype == np.bool_
    assert np.array_equal(out, expected)
    # orientation and a repeated closing vertex do not matter
    assert np.array_equal(rasterize_polygon([*square[::-1], square[-1]], [], 5, 6), expected)


def test_a_triangle_against_a_hand_computed_mask() -> None:
    # Row j crosses the left edge x = 0 and the hypotenuse x = 4 - j: pixels 0 <= i < 4 - j.
    # Centres on the left edge (i = 0) are inside, on the hypotenuse (e.g. (1, 3)) outside,
    # and the bottom vertex row (j = 4) is outside (edges are half-open in y).
    out = rasterize_polygon([(0, 0), (4, 0), (0, 4)], [], 5, 5)
    assert np.array_equal(
        out,
        grid(
            """
            ####.
            ###..
            ##...
            #....
            .....
            """
        ),
    )


def test_a_slanted_triangle_against_a_hand_computed_mask() -> None:
    # Vertices (0.5, -0.2), (5.8, 2), (0.5, 4.2). Row j: the left edge x = 0.5 and the
    # right edges x = 0.5 + 5.3 * (j + 0.2) / 2.2 for j <= 2, x = 5.8 - 5.3 * (j - 2) / 2.2
    # after: crossings at 0.5 and 0.98, 3.39, 5.80, 3.39, 0.98 for j = 0..4.
    out = rasterize_polygon([(0.5, -0.2), (5.8, 2.0), (0.5, 4.2)], [], 5, 7)
    assert np.array_equal(
        out,
        grid(
            """
            .......
            .###...
            .#####.
            .###...
            .......
            """
        ),
    )


def test_centres_on_edges_follow_the_top_left_rule() -> None:
    # Square with centres on all four edges: left and top edges in, right and bottom out.
    out = rasterize_polygon([(1, 1), (3, 1), (3, 3), (1, 3)], [], 5, 5)
    expected = np.zeros((5, 5), dtype=bool)
    expected[1:3, 1:3] = True
    assert np.array_equal(out, expected)


def test_polygons_that_tile_the_plane_share_no_pixel_and_miss_none() -> None:
    left = [(-1, -1), (2.3, -1), (1.7, 9), (-1, 9)]
    right = [(2.3, -1), (9, -1), (9, 9), (1.7, 9)]
    a = rasterize_polygon(left, [], 8, 8)
    b = rasterize_polygon(right, [], 8, 8)
    assert not np.any(a & b)
    assert np.all(a | b)


def test_holes_are_cut_out() -> None:
    outer = [(-0.5, -0.5), (4.5, -0.5), (4.5, 4.5), (-0.5, 4.5)]
    hole = [(0.5, 0.5), (0.5, 2.5), (2.5, 2.5), (2.5, 0.5)]
    out = rasterize_polygon(outer, [hole], 5, 5)
    expected = np.ones((5, 5), dtype=bool)
    expected[1:3, 1:3] = False
    assert np.array_equal(out, expected)


def test_parts_outside_the_image_are_clipped() -> None:
    out = rasterize_polygon([(-100, -50), (2.5, -50), (2.5, 1.5), (-100, 1.5)], [], 4, 5)
    expected = np.zeros((4, 5), dtype=bool)
    expected[0:2, 0:3] = True
    assert np.array_equal(out, expected)
    assert not rasterize_polygon([(10, 10), (20, 10), (20, 20)], [], 4, 5).any()
    assert rasterize_polygon([(-9, -9), (99, -9), (99, 99), (-9, 99)], [], 4, 5).all()


def test_rasterize_polygons_is_the_union() -> None:
    a = [(-0.5, -0.5), (1.5, -0.5), (1.5, 1.5), (-0.5, 1.5)]
    b = [(0.5, 0.5), (2.5, 0.5), (2.5, 2.5), (0.5, 2.5)]
    out = rasterize_polygons([(a, []), (b, [])], 3, 3)
    assert np.array_equal(out, rasterize_polygon(a, [], 3, 3) | rasterize_polygon(b, [], 3, 3))
    assert int(out.sum()) == 7


@pytest.mark.parametrize(
    ("outer", "rows", "needle"),
    [
        ([(0, 0), (1, 1)], 3, "at least three"),
        ([(0, 0), (1, float("nan")), (2, 0)], 3, "finite"),
        ([(0, 0, 0), (1, 1, 1), (2, 0, 2)], 3, "at least three"),
        ("abc", 3, "pairs"),
        ([(0, 0), (1, 1), (2, 0)], 0, "rows must be a positive integer"),
    ],
)
def test_bad_polygons_are_rejected(outer: object, rows: int, needle: str) -> None:
    with pytest.raises(InvalidInput, match=needle):
        rasterize_polygon(outer, [], rows, 3)  # type: ignore[arg-type]


# ---- tracing ----------------------------------------------------------------------------


def lattice_walk(ring: list[tuple[float, float]]) -> list[tuple[int, int]]:
    """Every corner-lattice point the closed ring passes through, in order (doubled coords)."""
    pts = [(round(2 * x), round(2 * y)) for x, y in ring]
    out = []
    for (x0, y0), (x1, y1) in zip(pts, pts[1:] + pts[:1], strict=True):
        steps = (abs(x1 - x0) + abs(y1 - y0)) // 2
        dx, dy = (x1 - x0) // (2 * steps), (y1 - y0) // (2 * steps)
        out += [(x0 + 2 * dx * s, y0 + 2 * dy * s) for s in range(steps)]
    return out


def unit_segments(ring: list[tuple[float, float]]) -> set[frozenset[tuple[int, int]]]:
    walk = lattice_walk(ring)
    return {frozenset(pair) for pair in zip(walk, walk[1:] + walk[:1], strict=True)}


def check_ring(ring: list[tuple[float, float]]) -> None:
    assert len(ring) >= 4
    for x, y in ring:  # vertices on pixel corners
        assert x + 0.5 == int(x + 0.5)
        assert y + 0.5 == int(y + 0.5)
    n = len(ring)
    for k in range(n):
        (ax, ay), (bx, by), (cx, _) = ring[k - 1], ring[k], ring[(k + 1) % n]
        assert (ax == bx) != (ay == by), "edges are axis-parallel and non-degenerate"
        assert (ax == bx) != (bx == cx), "consecutive edges are perpendicular"
    walk = lattice_walk(ring)
    assert len(walk) == len(set(walk)), "the ring is simple: it passes no point twice"
    assert min(ring, key=lambda p: (p[1], p[0])) == ring[0]


def check_polygons(mask: np.ndarray) -> None:
    polygons = mask_to_polygons(mask)
    rows, columns = mask.shape
    # the exact round trip
    assert np.array_equal(rasterize_polygons(polygons, rows, columns), mask)
    # one polygon per 4-connected component, in raster order
    labels, count = ndimage.label(mask)
    assert len(polygons) == count
    seen_segments: set[frozenset[tuple[int, int]]] = set()
    for index, (outer, holes) in enumerate(polygons, start=1):
        component = labels == index
        assert np.array_equal(rasterize_polygon(outer, holes, rows, columns), component)
        check_ring(outer)
        assert polygon_area(outer) > 0
        outer_fill = rasterize_polygon(outer, [], rows, columns)
        area = polygon_area(outer)
        for hole in holes:
            check_ring(hole)
            assert polygon_area(hole) < 0
            area += polygon_area(hole)
            hole_fill = rasterize_polygon(hole, [], rows, columns)
            assert hole_fill.any()
            assert not np.any(hole_fill & ~outer_fill), "holes lie inside their outer ring"
            assert not np.any(hole_fill & component)
        assert area == int(component.sum())
        for ring in [outer, *holes]:
            segments = unit_segments(ring)
            assert not segments & seen_segments, "no two rings share an edge"
            seen_segments |= segments


masks = st.integers(1, 24).flatmap(
    lambda rows: st.integers(1, 24).flatmap(lambda columns: hnp.arrays(np.bool_, (rows, columns)))
)


@st.composite
def blobby_masks(draw: st.DrawFn) -> np.ndarray:
    """Random masks at a random density, so holes, islands and pinches are common."""
    rows, columns = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    density = draw(st.floats(0.05, 0.95))
    seed = draw(st.integers(0, 2**32 - 1))
    return np.random.default_rng(seed).random((rows, columns)) < density


PINCH_HOLE = grid(
    """
    ###
    #.#
    ##.
    """
)
TWO_TOUCHING_HOLES = grid(
    """
    ####
    #.##
    ##.#
    ####
    """
)
ISLAND_IN_HOLE = grid(
    """
    #######
    #.....#
    #.#.#.#
    #..#..#
    #.#.#.#
    #.....#
    #######
    """
)
CHECKERBOARD = (np.indices((7, 9)).sum(axis=0) % 2).astype(bool)


@settings(max_examples=400, deadline=None)
@given(masks)
@example(PINCH_HOLE)
@example(TWO_TOUCHING_HOLES)
@example(ISLAND_IN_HOLE)
@example(CHECKERBOARD)
@example(~CHECKERBOARD)
@example(np.eye(6, dtype=bool))
@example(np.ones((1, 1), dtype=bool))
@example(np.zeros((3, 3), dtype=bool))
def test_tracing_round_trips_exactly(mask: np.ndarray) -> None:
    check_polygons(mask)


@settings(max_examples=400, deadline=None)
@given(blobby_masks())
def test_tracing_round_trips_exactly_on_blobby_masks(mask: np.ndarray) -> None:
    check_polygons(mask)


def test_a_hole_touching_the_outside_diagonally_is_split_off() -> None:
    [(outer, holes)] = mask_to_polygons(PINCH_HOLE)
    assert outer == [(-0.5, -0.5), (2.5, -0.5), (2.5, 1.5), (1.5, 1.5), (1.5, 2.5), (-0.5, 2.5)]
    assert holes == [[(0.5, 0.5), (0.5, 1.5), (1.5, 1.5), (1.5, 0.5)]]


def test_two_holes_touching_diagonally_are_two_rings() -> None:
    [(_, holes)] = mask_to_polygons(TWO_TOUCHING_HOLES)
    assert holes == [
        [(0.5, 0.5), (0.5, 1.5), (1.5, 1.5), (1.5, 0.5)],
        [(1.5, 1.5), (1.5, 2.5), (2.5, 2.5), (2.5, 1.5)],
    ]


def test_diagonal_pixels_are_separate_polygons() -> None:
    polygons = mask_to_polygons(np.eye(2, dtype=bool))
    assert polygons == [
        ([(-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5)], []),
        ([(0.5, 0.5), (1.5, 0.5), (1.5, 1.5), (0.5, 1.5)], []),
    ]


def test_an_island_inside_a_hole_is_its_own_polygon() -> None:
    mask = grid(
        """
        #####
        #...#
        #.#.#
        #...#
        #####
        """
    )
    frame, island = mask_to_polygons(mask)
    assert frame[0] == [(-0.5, -0.5), (4.5, -0.5), (4.5, 4.5), (-0.5, 4.5)]
    assert frame[1] == [[(0.5, 0.5), (0.5, 3.5), (3.5, 3.5), (3.5, 0.5)]]
    assert island == ([(1.5, 1.5), (2.5, 1.5), (2.5, 2.5), (1.5, 2.5)], [])


def test_collinear_runs_are_merged() -> None:
    mask = np.zeros((4, 10), dtype=bool)
    mask[1:3, 1:9] = True
    [(outer, holes)] = mask_to_polygons(mask)
    assert outer == [(0.5, 0.5), (8.5, 0.5), (8.5, 2.5), (0.5, 2.5)]
    assert holes == []


def test_non_zero_labels_count_as_foreground() -> None:
    mask = np.array([[0, 3], [7, 7]], dtype=np.uint16)
    [(outer, _)] = mask_to_contours(mask)
    assert polygon_area(outer) == 3


def test_tracing_rejects_a_volume() -> None:
    with pytest.raises(InvalidInput, match="2D"):
        mask_to_polygons(np.zeros((2, 2, 2), dtype=bool))
