"""The turning-point rule, its tolerance test and the bisection search (pure Python, no model)."""
import math

from hypothesis import given, settings, strategies as st

from lotus_core.pruning.essential import (bisect_turning_point, essential_sparsity, required_correct, resolution_grid,
                                  within_tolerance)


@given(st.integers(1, 3000), st.floats(-0.1, 1.1, allow_nan=False))
def test_required_correct_is_the_fewest_correct_images_within_tolerance(n, floor):
    t = required_correct(n, floor)
    assert t == next((c for c in range(n + 1) if within_tolerance(c / n, floor)), n + 1)


def test_required_correct_known_values():
    assert required_correct(2000, 0.90 - 0.01) == 1780  # 1780/2000 = 0.89 exactly counts as within
    assert required_correct(1000, 0.8765) == 877
    assert required_correct(10, 1.2) == 11 and required_correct(10, -0.5) == 0


def test_resolution_grid():
    grid = resolution_grid(0.9, 0.01)
    assert len(grid) == 90 and grid[0] == 0.01 and grid[-1] == 0.9 and grid[41] == 0.42
    assert resolution_grid(0.95, 0.1) == (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


@settings(max_examples=300)
@given(st.integers(1, 120), st.data())
def test_bisection_finds_the_full_grid_bracket_of_a_curve_that_stays_below(size, data):
    grid = resolution_grid(size / 100, 0.01)
    drop = data.draw(st.integers(0, size))  # index of the first point below (size: never below)
    asked = []

    def within(s: float) -> bool:
        asked.append(s)
        return grid.index(s) < drop

    lo, hi = bisect_turning_point(grid, within)
    accs = [0.9 if i < drop else 0.5 for i in range(size)]
    full = essential_sparsity(list(zip(grid, accs)), 0.9, 0.01)
    assert (lo, hi) == full.bracket and lo == full.essential_sparsity
    assert len(asked) <= 1 + math.ceil(math.log2(size)) and len(set(asked)) == len(asked)


def test_bisection_of_the_default_range_takes_eight_decisions():
    grid, asked = resolution_grid(0.9, 0.01), []
    assert bisect_turning_point(grid, lambda s: asked.append(s) or s <= 0.59) == (0.59, 0.6)
    assert len(asked) == 8 and asked[0] == 0.9


def test_points_decided_early_count_by_their_bounds():
    # (sparsity, low, high): 0.3 decided within early (low >= floor), 0.5 decided below early (high < floor)
    curve = [(0.1, 0.90, 0.90), (0.3, 0.895, 0.95), (0.5, 0.20, 0.85), (0.7, 0.1, 0.1)]
    ess = essential_sparsity(curve, 0.90, 0.01)
    assert ess.bracket == (0.3, 0.5) and ess.monotone and not ess.recovers and ess.evaluations == 4
    back = essential_sparsity(curve + [(0.8, 0.89, 0.99)], 0.90, 0.01)  # back within tolerance after the drop
    assert back.bracket == (0.3, 0.5) and back.recovers and not back.monotone


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 90), st.integers(50, 300), st.data())
def test_bisection_of_early_decisions_equals_the_fine_grid_of_full_evaluations(size, n, data):
    """Any curve that never rises, each point decided in batches from its own image hits: the
    bracket is that of evaluating every image at every point of the fine grid."""
    from lotus_core.training.evaluate import decide_in_batches

    grid = resolution_grid(size / 100, 0.01)
    dense = data.draw(st.integers(0, n))
    counts = sorted(data.draw(st.lists(st.integers(0, dense), min_size=size, max_size=size)), reverse=True)
    hits = {s: data.draw(st.permutations([True] * c + [False] * (n - c))) for s, c in zip(grid, counts)}
    eps = data.draw(st.sampled_from([0.0, 0.01, 0.05]))
    required = required_correct(n, dense / n - eps)
    images = []

    def within(s: float) -> bool:
        d = decide_in_batches(lambda a, b: sum(hits[s][a:b]), n, required, batch_size=64, min_batch=8)
        images.append(d.seen)
        return d.above

    full = essential_sparsity([(s, c / n) for s, c in zip(grid, counts)], dense / n, eps)
    assert bisect_turning_point(grid, within) == full.bracket
    assert sum(images) <= n * len(images)
