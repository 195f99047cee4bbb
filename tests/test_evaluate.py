import pytest

from lotus_core.core.device import cpu_supports_bf16
from lotus_core.training.evaluate import evaluate, predict, wilson_interval
from lotus_core.models.loading import data_config, load_model
from lotus_core.data import load_dataset


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(90, 100)
    assert lo == pytest.approx(0.8256, abs=1e-4) and hi == pytest.approx(0.9448, abs=1e-4)
    assert wilson_interval(0, 10)[0] == pytest.approx(0.0, abs=1e-12)
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0, abs=1e-12)


def test_evaluate_counts_and_per_class(tiny_vit, tiny_data):
    cfg = data_config(tiny_vit)
    res = evaluate(tiny_vit, tiny_data, cfg, limit=50, seed=0)
    preds = predict(tiny_vit, tiny_data.images[res.indices], cfg)
    labels = tiny_data.labels[res.indices]
    assert res.n == 50 and res.correct == int((preds == labels).sum())
    assert res.accuracy == res.correct / 50
    assert res.ci95[0] <= res.accuracy <= res.ci95[1]
    for c, name in enumerate(tiny_data.classes):
        sel = labels == c
        if sel.any():
            assert res.per_class[name] == pytest.approx(float((preds[sel] == c).float().mean()))


def test_bf16_and_fp32_predictions_agree_on_99_percent_of_images():
    model = load_model("default")
    test = load_dataset("fashion-mnist", "test")
    cfg = data_config(model)
    images = test.images[:2000]
    fp32 = predict(model, images, cfg, bf16=False)
    bf16 = predict(model, images, cfg, bf16=True)
    agreement = float((fp32 == bf16).float().mean())
    assert agreement >= 0.99, agreement
    assert cpu_supports_bf16() in (True, False)


# ---------------------------------------------------------------------------- early-decided evaluation
from hypothesis import given, settings, strategies as st  # noqa: E402

from lotus_core.training.evaluate import decide, decide_in_batches, decision  # noqa: E402


@settings(max_examples=300)
@given(st.lists(st.booleans(), min_size=1, max_size=400), st.data(), st.integers(1, 80), st.integers(1, 600))
def test_batched_decision_equals_the_full_count_and_stops_once_certain(hits, data, min_batch, batch_size):
    n = len(hits)
    required = data.draw(st.integers(0, n + 1))
    asked = []

    def count_correct(start: int, stop: int) -> int:
        asked.append((start, stop))
        return sum(hits[start:stop])

    d = decide_in_batches(count_correct, n, required, batch_size, min_batch)
    assert d.above == (sum(hits) >= required)  # the answer of evaluating every image
    assert d.correct == sum(hits[:d.seen]) and [a for a, _ in asked] == [0, *[b for _, b in asked]][:len(asked)]
    low, high = d.bounds
    assert low <= sum(hits) / n <= high and (low == high) == (not d.early)
    # the first image count after which the answer is certain: never stopped before it, at most min_batch - 1 past it
    certain = next(k for k in range(n + 1) if decision(sum(hits[:k]), k, n, required) is not None)
    assert certain <= d.seen <= max(certain, min(n, certain + min_batch - 1))


def test_decision_rule():
    assert decision(1780, 1780, 2000, 1780) is True  # enough correct already
    assert decision(1000, 1220, 2000, 1780) is None  # 1000 + 780 remaining can still reach 1780
    assert decision(1000, 1221, 2000, 1780) is False  # 1000 + 779 cannot
    assert decision(0, 0, 2000, 0) is True and decision(2000, 2000, 2000, 2001) is False


def test_decide_on_a_model_answers_as_full_evaluation(tiny_vit, tiny_data):
    cfg = data_config(tiny_vit)
    full = evaluate(tiny_vit, tiny_data, cfg, limit=150, seed=0)
    for required in (0, 1, full.correct - 20, full.correct, full.correct + 1, full.correct + 20, 150, 151):
        d = decide(tiny_vit, tiny_data, cfg, max(0, required), limit=150, seed=0, min_batch=10)
        assert d.above == (full.correct >= max(0, required)) and d.n == 150
        if not d.early:
            assert d.correct == full.correct
    assert decide(tiny_vit, tiny_data, cfg, 150, limit=150, min_batch=10).seen < 150 or full.correct == 150
