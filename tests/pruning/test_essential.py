"""The turning-point rule, its tolerance test and the bisection search (pure Python, no model)."""
import math

import pytest

from hypothesis import given, settings, strategies as st

from lotus_core.core.tolerance import DEFAULT_EPS, Tolerance
from lotus_core.pruning.essential import (bisect_decisions, bisect_turning_point, cost_split, essential_sparsity,
                                          resolution_grid)


@given(st.integers(1, 3000), st.floats(-0.1, 1.1, allow_nan=False), st.sampled_from([0.0, 0.01, 0.05]))
def test_required_correct_is_the_fewest_correct_images_within_tolerance(n, dense, eps):
    rule = Tolerance(dense, eps)
    assert rule.required_correct(n) == next((c for c in range(n + 1) if rule.within(c / n)), n + 1)


def test_required_correct_known_values():
    assert Tolerance(0.90, 0.01).required_correct(2000) == 1780  # 1780/2000 = 0.89 exactly counts as within
    assert Tolerance(0.8765, 0.0).required_correct(1000) == 877
    assert Tolerance(1.2, 0.0).required_correct(10) == 11 and Tolerance(-0.5, 0.0).required_correct(10) == 0


def test_the_tolerance_rule_is_accuracy_at_least_dense_minus_eps():
    """a is within eps of d when a >= d - eps (equality up to float rounding counts), on floats and Series alike;
    the one default eps is 1 accuracy point."""
    import pandas as pd

    rule = Tolerance(0.9)
    assert DEFAULT_EPS == 0.01 and rule.eps == 0.01 and rule.floor == 0.9 - 0.01
    assert rule.within(0.89) and rule.within(0.9 - 0.01) and not rule.within(0.8899)
    assert list(rule.within(pd.Series([0.95, 0.89, 0.85]))) == [True, True, False]


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

    split = data.draw(st.sampled_from([0.5, 0.05, 0.3, 0.73, 0.95]))
    lo, hi = bisect_turning_point(grid, within, split)
    accs = [0.9 if i < drop else 0.5 for i in range(size)]
    full = essential_sparsity(list(zip(grid, accs)), 0.9, 0.01)
    assert (lo, hi) == full.bracket and lo == full.essential_sparsity  # whatever the cut
    assert len(asked) <= bisect_decisions(size, split) and len(set(asked)) == len(asked)
    if split == 0.5:
        assert bisect_decisions(size, split) == 1 + math.ceil(math.log2(size))


def test_the_cut_for_unequal_costs_solves_the_unequal_cost_equation():
    assert cost_split(7, 7) == 0.5  # equal costs: plain bisection
    for above, below in ((2000, 476), (200, 50), (10, 30)):
        x = cost_split(above, below)
        t = -math.log2(x) / below  # x = 2^(-below t) and 1 - x = 2^(-above t), the same t
        assert 1 - x == pytest.approx(2 ** (-above * t), rel=1e-9)
    assert 0.5 < cost_split(2000, 476) < cost_split(2000, 50) < 1  # a cheaper "below": a cut nearer the top
    assert cost_split(10, 30) < 0.5
    assert round(cost_split(2000, 476), 3) == 0.731  # the default model's search, 2,000 images, eps 1 point
    with pytest.raises(ValueError, match="positive"):
        cost_split(0, 1)


def test_a_cut_near_the_top_costs_less_over_every_turning_point_of_the_default_range():
    """The default search (2,000 images, eps 1 point: a decision "within" costs about 2,000 images, "below"
    about 476), over each of the 91 places a curve on the 0.01 grid to 0.9 can drop: plain bisection costs
    8,898 images on average and 14,476 at worst, the cost cut 7,527 and 9,428."""
    grid = resolution_grid(0.9, 0.01)

    def images(split: float, drop: int) -> int:
        asked = []
        bisect_turning_point(grid, lambda s: asked.append(s) or grid.index(s) < drop, split)
        return sum(2000 if grid.index(s) < drop else 476 for s in asked)

    for split, mean, worst in ((0.5, 8898.24, 14476), (cost_split(2000, 476), 7526.90, 9428)):
        costs = [images(split, drop) for drop in range(91)]
        assert (round(sum(costs) / 91, 2), max(costs)) == (mean, worst)


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
    required = Tolerance(dense / n, eps).required_correct(n)
    images = []

    def within(s: float) -> bool:
        d = decide_in_batches(lambda a, b: sum(hits[s][a:b]), n, required, batch_size=64, min_batch=8)
        images.append(d.seen)
        return d.above

    full = essential_sparsity([(s, c / n) for s, c in zip(grid, counts)], dense / n, eps)
    assert bisect_turning_point(grid, within) == full.bracket
    assert sum(images) <= n * len(images)


# ---------------------------------------------------------------------------- the scouted search
from lotus_core.pruning.essential import scout_budgets, scouted_turning_point  # noqa: E402


@settings(max_examples=400, deadline=None)
@given(st.integers(1, 120), st.data())
def test_scouted_search_gives_the_exact_bisection_bracket_whatever_the_scouts_say(size, data):
    """A curve that stays below once it drops, and scouts that may leave any point open at any budget
    (but are never wrong when they answer): the bracket is plain bisection's with exact answers, no
    point is decided exactly twice, and when no scout of a point below is left open only the bracket's
    low end is decided exactly."""
    grid = resolution_grid(size / 100, 0.01)
    drop = data.draw(st.integers(0, size))
    budgets = data.draw(st.sampled_from([(2000,), (476, 952, 1904, 2000), (100, 200)]))
    # for each point, the smallest budget at which its scout answers (above every budget: only exactly)
    settles = {s: data.draw(st.sampled_from(budgets + (10 ** 9,))) for s in grid}
    exact_asked, budget_asked = [], []

    def ask(s: float, budget: int | None) -> bool | None:
        truth = grid.index(s) < drop
        if budget is None:
            exact_asked.append(s)
            settles[s] = 0  # decided: asking again answers at once
            return truth
        budget_asked.append(budget)
        return truth if settles[s] <= budget else None

    plain = bisect_turning_point(grid, lambda s: grid.index(s) < drop, 0.5)
    no_below_open = all(settles[s] <= budgets[0] for s in grid[drop:])
    assert scouted_turning_point(grid, ask, budgets, 0.5) == plain
    assert len(set(exact_asked)) == len(exact_asked) and set(budget_asked) <= set(budgets)
    if no_below_open:  # every "below" certain from the first budget: nothing to correct
        assert exact_asked == ([plain[0]] if plain[0] > 0 else [])


def test_scouted_search_on_the_default_models_curve():
    """The OMP curve of the default model (2,000 images, eps 0.01: 1,763 right needed), as the scouts at
    476 images see it: 0.60 and 0.65 are certainly below there (242 and 255 wrong of the 238 needed),
    0.47 and 0.56-0.57 stay open. Only 0.57 is then decided on every image it needs."""
    assert scout_budgets(2000, 1763, 50) == (476, 952, 1904, 2000)
    assert scout_budgets(200, 190, 50) == (50, 100, 200) and scout_budgets(100, 0, 50) == (100,)
    wrong_at_476 = {0.9: 600, 0.65: 255, 0.6: 242, 0.58: 238, 0.57: 236, 0.56: 233, 0.47: 226}
    exact = {s: s <= 0.57 for s in wrong_at_476}
    asked = []

    def ask(s: float, budget: int | None) -> bool | None:
        asked.append((s, budget))
        if budget is None:
            return exact[s]
        return False if wrong_at_476[s] >= 238 else None

    split = cost_split(2000, 476)
    assert scouted_turning_point(resolution_grid(0.9, 0.01), ask, (476, 952, 1904, 2000), split) == (0.57, 0.58)
    assert asked == [(0.9, 476), (0.65, 476), (0.47, 476), (0.6, 476), (0.56, 476), (0.58, 476), (0.57, 476),
                     (0.57, None)]


def test_a_tolerance_narrower_than_the_test_sets_interval_is_warned_about():
    from lotus_core.pruning.essential import interval_half_width, noise_warning

    # 360 images at 90%: 1.96 * sqrt(0.9 * 0.1 / 360) = 0.0310 (about ±3 points), more than twice eps = 0.01
    assert interval_half_width(0.9, 360) == pytest.approx(1.959963984540054 * (0.09 / 360) ** 0.5)
    assert noise_warning(0.9, 360, 0.01) == ("Only 360 test images: an accuracy's 95% interval is about ±0.031 "
                                             "(±3.1 points), more than twice the tolerance eps = 0.01 (1 point), "
                                             "so this turning point is within noise; use more test images or an eps "
                                             "of at least 0.016 (1.6 points).")
    assert noise_warning(0.9, 360, 0.02) is None  # ±0.031 is within twice the tolerance (a paired difference)
    assert noise_warning(0.9, 2000, 0.01) is None and noise_warning(0.9, 500, 0.01) is not None  # ±0.013, ±0.026
