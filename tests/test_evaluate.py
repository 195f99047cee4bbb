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
