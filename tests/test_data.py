import gzip
import hashlib
import math
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from lotus_core.core.paths import EMBEDDED_FMNIST
from lotus_core.data.folders import holdout_split
from lotus_core.data import load_dataset
from lotus_core.data.sources import read_idx
from lotus_core.data.images import subset_indices, to_model_input
from scripts.build_embedded_fmnist import write_idx
from lotus_core.core.errors import LotusError


def test_embedded_fashion_mnist_ships_full_test_split_and_balanced_train_subset():
    test = read_idx(EMBEDDED_FMNIST / "t10k-labels-idx1-ubyte.gz")
    train = read_idx(EMBEDDED_FMNIST / "train-subset-labels-idx1-ubyte.gz")
    assert test.shape == (10_000,)
    assert np.bincount(train).tolist() == [1000] * 10
    images = read_idx(EMBEDDED_FMNIST / "train-subset-images-idx3-ubyte.gz")
    assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8
    size = sum(p.stat().st_size for p in EMBEDDED_FMNIST.iterdir())
    assert size < 10 * 2**20


def test_fashion_mnist_falls_back_to_embedded_copy(monkeypatch, tmp_path):
    import lotus_core.data.sources as data

    monkeypatch.setattr(data, "DEBIAN_FMNIST", tmp_path / "absent")
    monkeypatch.setenv("LOTUS_DATA_ROOT", str(tmp_path / "empty"))
    train = load_dataset("fashion-mnist", "train")
    test = load_dataset("fashion-mnist", "test")
    assert len(train) == 10_000 and "embedded" in train.source and train.notes
    assert len(test) == 10_000 and test.images.shape == (10_000, 1, 28, 28)
    assert test.classes[9] == "Ankle boot"


def test_hidden_system_data_ignores_a_full_set_in_system_locations(monkeypatch, tmp_path):
    """LOTUS_NO_SYSTEM_DATA (what CI sets) behaves as a fresh machine: a full set in a system folder is not used."""
    import lotus_core.data.sources as data

    system = tmp_path / "debian"
    system.mkdir()
    write_idx(system / "train-images-idx3-ubyte.gz", np.zeros((3, 28, 28), np.uint8))
    write_idx(system / "train-labels-idx1-ubyte.gz", np.array([0, 1, 2], np.uint8))
    monkeypatch.setattr(data, "DEBIAN_FMNIST", system)
    monkeypatch.delenv("LOTUS_DATA_ROOT", raising=False)
    monkeypatch.delenv("LOTUS_NO_SYSTEM_DATA", raising=False)
    assert len(load_dataset("fashion-mnist", "train")) == 3
    monkeypatch.setenv("LOTUS_NO_SYSTEM_DATA", "1")
    train = load_dataset("fashion-mnist", "train")
    assert len(train) == 10_000 and "embedded" in train.source
    assert not data.downloads_allowed()
    monkeypatch.setenv("LOTUS_DATA_ROOT", str(system))  # an explicit folder is still honoured
    assert len(load_dataset("fashion-mnist", "train")) == 3


def test_idx_roundtrip_and_truncated_file_is_refused(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "x.gz", arr)
    assert np.array_equal(read_idx(tmp_path / "x.gz"), arr)
    raw = gzip.open(tmp_path / "x.gz").read()
    with gzip.open(tmp_path / "bad.gz", "wb") as f:
        f.write(raw[:-5])
    with pytest.raises(LotusError, match="truncated"):
        read_idx(tmp_path / "bad.gz")
    (tmp_path / "junk.gz").write_bytes(b"not gzip at all")
    with pytest.raises(LotusError, match="cannot read"):
        read_idx(tmp_path / "junk.gz")


def test_missing_local_folder_dataset_names_what_was_looked_for(tmp_path):
    with pytest.raises(LotusError, match="does not exist"):
        load_dataset(f"imagefolder:{tmp_path / 'nope'}")
    with pytest.raises(LotusError, match="unknown dataset 'mnist-ish'"):
        load_dataset("mnist-ish")


def test_cifar_offline_without_files_gives_one_line_message(tmp_path, monkeypatch):
    monkeypatch.setenv("LOTUS_OFFLINE", "1")
    with pytest.raises(LotusError) as err:
        load_dataset("cifar10", "test", root=tmp_path)
    assert "cifar-10-batches-py" in str(err.value) and "\n" not in str(err.value)


def test_imagefolder_reads_classes_and_resizes(tmp_path):
    for c, colour in (("cat", 10), ("dog", 200)):
        for split, n in (("train", 2), ("test", 3)):
            (tmp_path / split / c).mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (40 + i, 30), (colour, colour, colour)).save(tmp_path / split / c / f"{i}.png")
    ds = load_dataset(str(tmp_path), "test")
    assert ds.classes == ["cat", "dog"]
    assert ds.images.shape == (6, 3, 224, 224)
    assert ds.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert int(ds.images[4].float().mean().round()) == 200
    assert len(load_dataset(str(tmp_path), "train")) == 4 and ds.split_rule == "train/ and test/ folders as given"
    (tmp_path / "test" / "dog" / "broken.png").write_bytes(b"nope")
    with pytest.raises(LotusError, match="not a readable image"):
        load_dataset(str(tmp_path), "test")


def noise_folder(root, sizes: dict[str, int], seed: int = 0):
    """``root/<class>/<i>.png``: ``sizes[class]`` distinct random 8x8 RGB images per class."""
    rng = np.random.default_rng(seed)
    for c, n in sizes.items():
        (root / c).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


def content(ds) -> list[bytes]:
    return [hashlib.sha256(img.numpy().tobytes()).digest() for img in ds.images]


def test_flat_folder_holds_out_a_seeded_stratified_fifth_never_trained_on(tmp_path):
    sizes = {"a": 10, "b": 7, "c": 3, "d": 1}
    root = noise_folder(tmp_path / "flat", sizes)
    train, test = load_dataset(str(root), "train"), load_dataset(str(root), "test")
    # per class: max(1, floor(0.2 n + 0.5)) test images (every class tested), the rest trained on
    expect_test = {c: max(1, math.floor(0.2 * n + 0.5)) for c, n in sizes.items()}
    assert expect_test == {"a": 2, "b": 1, "c": 1, "d": 1}
    assert np.bincount(test.labels, minlength=4).tolist() == list(expect_test.values())
    assert np.bincount(train.labels, minlength=4).tolist() == [n - expect_test[c] for c, n in sizes.items()]
    assert not set(content(train)) & set(content(test))  # no image on both sides
    assert len(set(content(train)) | set(content(test))) == sum(sizes.values())  # and none lost
    assert test.holdout == train.holdout == (0.2, 0) and test.variant.endswith("+holdout0.2s0")
    assert "20% of each class held out" in test.split_rule
    again = load_dataset(str(root), "test")
    assert torch.equal(again.images, test.images) and again.variant == test.variant  # seeded: the same split
    other_train, other_test = holdout_split(torch.cat([train.images, test.images]),
                                            torch.cat([train.labels, test.labels]), seed=1)
    assert len(other_test) == len(test) and not torch.equal(other_test, torch.arange(len(train), len(train) + len(test)))


def test_identical_images_land_on_one_side(tmp_path):
    root = noise_folder(tmp_path / "dups", {"a": 6, "b": 6})
    for i in range(6):  # every image of a has a copy in a, and image 0 of b a copy in a too
        shutil.copy(root / "a" / f"{i}.png", root / "a" / f"copy{i}.png")
    shutil.copy(root / "b" / "0.png", root / "a" / "from_b.png")
    train, test = load_dataset(str(root), "train"), load_dataset(str(root), "test")
    assert not set(content(train)) & set(content(test))
    assert len(train) + len(test) == 19


def test_split_folder_layouts_and_a_test_only_folder(tmp_path):
    noise_folder(tmp_path / "only" / "test", {"a": 3, "b": 3})
    train = load_dataset(str(tmp_path / "only"), "train")
    assert len(train) == 0 and train.classes == ["a", "b"] and "no training images" in train.split_rule
    assert len(load_dataset(str(tmp_path / "only"), "test")) == 6
    noise_folder(tmp_path / "val" / "train", {"a": 2, "b": 2})
    noise_folder(tmp_path / "val" / "val", {"a": 1, "b": 1}, seed=1)
    assert len(load_dataset(str(tmp_path / "val"), "test")) == 2
    assert load_dataset(str(tmp_path / "val"), "test").split_rule == "train/ and val/ folders as given"
    noise_folder(tmp_path / "notest" / "train", {"a": 2})
    with pytest.raises(LotusError, match="has train/ but no test/"):
        load_dataset(str(tmp_path / "notest"), "test")
    noise_folder(tmp_path / "mismatch" / "train", {"a": 2, "b": 2})
    noise_folder(tmp_path / "mismatch" / "test", {"a": 1, "c": 1})
    with pytest.raises(LotusError, match="different class folders"):
        load_dataset(str(tmp_path / "mismatch"), "train")


def test_to_model_input_adapts_channels_size_and_normalisation():
    images = torch.full((2, 1, 28, 28), 255, dtype=torch.uint8)
    x = to_model_input(images, {"input_size": (3, 56, 56), "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)})
    assert x.shape == (2, 3, 56, 56)
    assert torch.allclose(x, torch.full_like(x, 2.0))


def test_subset_is_fixed_sorted_and_seeded():
    a, b = subset_indices(10_000, 2000, seed=0), subset_indices(10_000, 2000, seed=0)
    assert torch.equal(a, b) and len(a.unique()) == 2000 and torch.all(a[1:] > a[:-1])
    assert not torch.equal(a, subset_indices(10_000, 2000, seed=1))
    assert torch.equal(subset_indices(50, 100), torch.arange(50))
    with pytest.raises(LotusError):
        subset_indices(10, 0)


def test_cifar10_reads_a_local_folder_in_torchvisions_format(tmp_path, monkeypatch):
    """A generated cifar-10-batches-py folder (the pickled batches the real download unpacks to); only
    torchvision's MD5 check of the real files is bypassed, the reading and conversion are the real path."""
    import pickle

    import torchvision.datasets.cifar

    monkeypatch.setenv("LOTUS_OFFLINE", "1")
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args, **kwargs: True)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": classes}, f)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(4, 3 * 32 * 32), dtype=np.uint8)  # rows: R plane, G plane, B plane
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({"data": pixels, "labels": [3, 1, 4, 1]}, f)
    ds = load_dataset("cifar10", "test", root=tmp_path)
    assert ds.classes == classes and ds.labels.tolist() == [3, 1, 4, 1]
    assert ds.images.shape == (4, 3, 32, 32) and ds.images.dtype == torch.uint8
    assert torch.equal(ds.images[2], torch.from_numpy(pixels[2].reshape(3, 32, 32)))  # channel planes kept in order
