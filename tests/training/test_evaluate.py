import pytest

from lotus_core.core.device import cpu_supports_bf16
from lotus_core.training.evaluate import evaluate, predict, wilson_interval
from lotus_core.models.arch import data_config
from lotus_core.models.loading import load_model
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


# ---------------------------------------------------------------------------- the hard-first order
import random  # noqa: E402

import torch  # noqa: E402

from lotus_core.training.evaluate import hard_first, margin  # noqa: E402


def test_the_margin_is_the_true_logit_less_the_best_other_and_hard_first_sorts_by_it():
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [1.0, 1.0, 5.0], [0.5, 0.0, 0.4]])
    labels = torch.tensor([0, 0, 2, 1])
    assert margin(logits, labels).tolist() == [1.0, -3.0, 4.0, -0.5]  # image 1 is wrong by 3, image 3 by 0.5
    assert hard_first(margin(logits, labels)) == [1, 3, 0, 2]
    assert hard_first(torch.tensor([0.0, -1.0, 0.0, -1.0])) == [1, 3, 0, 2]  # ties keep subset order


def test_evaluate_with_margins_is_the_same_evaluation_and_its_margins_mark_the_wrong_images(tiny_vit, tiny_data):
    cfg = data_config(tiny_vit)
    plain = evaluate(tiny_vit, tiny_data, cfg, limit=120, bf16=False)
    res = evaluate(tiny_vit, tiny_data, cfg, limit=120, bf16=False, margins=True)
    assert res.correct == plain.correct and torch.equal(res.predictions, plain.predictions) and plain.margins is None
    wrong = res.predictions != tiny_data.labels[res.indices]
    assert torch.equal(res.margins < 0, wrong) and int(wrong.sum()) == 120 - res.correct
    order = hard_first(res.margins)  # every wrong image comes before every right one
    assert sorted(order) == list(range(120)) and all(wrong[order[:int(wrong.sum())]])


def test_decide_gives_the_same_answer_in_any_order_and_hard_first_decides_below_sooner(tiny_vit, tiny_data):
    cfg = data_config(tiny_vit)
    full = evaluate(tiny_vit, tiny_data, cfg, limit=150, bf16=False, margins=True)
    hard = hard_first(full.margins)
    shuffled = list(range(150))
    random.Random(0).shuffle(shuffled)
    for required in (full.correct - 10, full.correct, full.correct + 1, full.correct + 10):
        answers = {name: decide(tiny_vit, tiny_data, cfg, required, limit=150, bf16=False, min_batch=1, order=o)
                   for name, o in (("subset", None), ("shuffled", shuffled), ("hard first", hard))}
        assert {d.above for d in answers.values()} == {full.correct >= required}
        if full.correct < required:  # "below": with the model's own wrong images first, exactly the fewest needed
            assert answers["hard first"].seen == 150 - required + 1 <= answers["subset"].seen
    with pytest.raises(ValueError, match="permutation of the 150 subset positions"):
        decide(tiny_vit, tiny_data, cfg, 10, limit=150, order=[0] * 150)


def test_the_dense_accuracy_stores_the_hard_first_order_from_the_same_forward(tiny_ctx, monkeypatch):
    from lotus_core.context import HARD_FIRST

    calls = []
    real = tiny_ctx.evaluate.__func__

    def counting(self, *args, **kwargs):
        calls.append(kwargs.get("margins", False))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(type(tiny_ctx), "evaluate", counting)
    dense = tiny_ctx.dense_accuracy(limit=100, bf16=False)
    order = tiny_ctx.hard_first_order(limit=100, bf16=False)
    assert calls == [True]  # one forward for both
    again = evaluate(tiny_ctx.model, tiny_ctx.test, tiny_ctx.data_config, limit=100, bf16=False, margins=True)
    assert order == hard_first(again.margins) and dense["correct"] == again.correct
    assert tiny_ctx.store.points(dense["run_id"]) == {HARD_FIRST: {"order": order}}  # a point of the evaluation
    assert len(tiny_ctx.store.runs()) == 1
    with tiny_ctx.store._connect() as db:  # a dense accuracy stored before the order existed: one forward adds it
        db.execute("DELETE FROM points WHERE run_id = ?", (dense["run_id"],))
    assert tiny_ctx.hard_first_order(limit=100, bf16=False) == order and calls == [True, True]
    assert tiny_ctx.hard_first_order(limit=100, bf16=False) == order and calls == [True, True]  # then served


@settings(max_examples=300)
@given(st.lists(st.booleans(), min_size=1, max_size=300), st.data())
def test_a_decision_with_a_budget_stops_open_and_goes_on_to_the_full_answer(hits, data):
    n = len(hits)
    required = data.draw(st.integers(0, n + 1))
    budget = data.draw(st.integers(1, n))
    asked = []

    def count_correct(start: int, stop: int) -> int:
        asked.append((start, stop))
        return sum(hits[start:stop])

    first = decide_in_batches(count_correct, n, required, 64, 8, budget=budget)
    certain = next(k for k in range(n + 1) if decision(sum(hits[:k]), k, n, required) is not None)
    assert first.seen <= budget and first.correct == sum(hits[:first.seen])
    assert (first.above is None) == (first.seen < certain)  # open exactly while the budget fell short
    if first.above is not None:
        assert first.above == (sum(hits) >= required)
    low, high = first.bounds
    assert low <= sum(hits) / n <= high
    asked.clear()
    rest = decide_in_batches(count_correct, n, required, 64, 8, start=first)
    assert rest.above == (sum(hits) >= required) and rest.correct == sum(hits[:rest.seen])
    assert all(a >= first.seen for a, _ in asked)  # only the images after the first look are evaluated
    assert certain <= rest.seen <= max(certain, min(n, certain + 7))
