"""Model and data given as objects in a notebook: a torch Dataset or DataLoader as an
:class:`~lotus_core.data.images.ImageSet` (:func:`image_set`), and the :class:`~lotus_core.context.Context` of a model
and data given as objects or names (:func:`session`), whose store draws each run's progress as a ``tqdm`` bar."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from torch import nn

from ..context import IN_MEMORY, Context, open_context
from ..core.device import resolve_device, use_compute_threads
from ..core.errors import LotusError
from ..data import load_dataset
from ..data.images import ImageSet
from ..models.arch import data_config
from ..models.loading import from_module, load_model
from ..core.executor import ExecutorConfig
from ..results.store import Store


MAX_IMAGES = 200_000  # the most images a Dataset given in memory may hold (a larger one is a mistake, not a test set)


def _uint8_image(image: Any, where: str) -> torch.Tensor:
    """One image as a uint8 ``(C, H, W)`` tensor: a PIL image, or a tensor / array of ``ToTensor()`` floats in
    [0, 1] (uint8 kept as it is)."""
    if hasattr(image, "convert") and hasattr(image, "size"):  # a PIL image
        array = np.asarray(image.convert("L") if image.mode not in ("L", "RGB") else image)
        tensor = torch.from_numpy(array.copy())
        return tensor[None] if tensor.ndim == 2 else tensor.permute(2, 0, 1)
    tensor = torch.as_tensor(np.asarray(image) if not isinstance(image, torch.Tensor) else image).detach().cpu()
    if tensor.ndim == 2:
        tensor = tensor[None]
    if tensor.ndim != 3 or tensor.shape[0] not in (1, 3):
        raise LotusError(f"{where} is a tensor of shape {tuple(tensor.shape)}; give (C, H, W) images with 1 or 3 "
                         "channels (transforms.ToTensor())")
    if tensor.dtype == torch.uint8:
        return tensor
    tensor = tensor.float()
    low, high = float(tensor.min()), float(tensor.max())
    if low < 0 or high > 1:
        raise LotusError(f"{where} has values in [{low:.3g}, {high:.3g}]; give ToTensor() images in [0, 1] without "
                         "Normalize (LOTUS normalises with the model's mean and std)")
    return (tensor * 255).round().to(torch.uint8)


def _pairs(data: Any) -> Iterable[tuple[Any, Any]]:
    """``(image, label)`` pairs of a Dataset (indexed) or a DataLoader (batches unbatched)."""
    if isinstance(data, torch.utils.data.DataLoader):
        for batch in data:
            images, labels = batch[0], batch[1]
            yield from zip(images, torch.as_tensor(labels).reshape(-1).tolist())
        return
    if not hasattr(data, "__getitem__") or not hasattr(data, "__len__"):
        raise LotusError(f"data must be a torch Dataset or DataLoader of (image, label) pairs, a dataset name or "
                         f"an image folder, not a {type(data).__name__}")
    if len(data) > MAX_IMAGES:
        raise LotusError(f"the {type(data).__name__} holds {len(data):,} images, over {MAX_IMAGES:,}; pass a "
                         "torch.utils.data.Subset")
    for i in range(len(data)):
        item = data[i]
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise LotusError(f"item {i} of the {type(data).__name__} is not an (image, label) pair")
        yield item[0], item[1]


def image_set(data: Any, split: str, classes: list[str] | None = None) -> ImageSet:
    """A torch Dataset or DataLoader of ``(image, label)`` pairs as an :class:`ImageSet` named
    ``"memory:<content hash>"``; class names from ``data.classes`` (or its dataset's) or ``classes``, else the
    labels as text. Every image must have one size; labels are class indices. The name is the content's hash,
    so the same images find their stored results again: give a DataLoader without ``shuffle`` and without random
    transforms, or each call is other data."""
    images, labels = [], []
    for i, (image, label) in enumerate(_pairs(data)):
        images.append(_uint8_image(image, f"image {i} of the {type(data).__name__}"))
        labels.append(int(label))
        if images[-1].shape != images[0].shape:
            raise LotusError(f"image {i} is {tuple(images[-1].shape)}, image 0 {tuple(images[0].shape)}; give images "
                             "of one size (transforms.Resize)")
    if not images:
        raise LotusError(f"the {type(data).__name__} given as {split} data holds no images")
    if min(labels) < 0:
        raise LotusError(f"labels must be class indices 0, 1, ...; the {split} data has {min(labels)}")
    named = classes or getattr(data, "classes", None) or getattr(getattr(data, "dataset", None), "classes", None)
    names = [str(c) for c in named] if named else [str(c) for c in range(max(labels) + 1)]
    if max(labels) >= len(names):
        raise LotusError(f"label {max(labels)} has no class name ({len(names)} classes); pass classes=[...]")
    stacked, target = torch.stack(images), torch.tensor(labels, dtype=torch.int64)
    probe = ImageSet("", split, stacked, target, names, "")
    return ImageSet(f"{IN_MEMORY}{probe.digest[:12]}", split, stacked, target, names,
                    f"in-memory {type(data).__name__}")


def _is_name(value: Any) -> bool:
    return isinstance(value, (str, Path))


class _ProgressStore(Store):
    """The results store, with each run's progress also drawn as one ``tqdm.auto`` bar (this call's own)."""

    def __init__(self, path: str | Path | None, show: bool, out: Any):
        super().__init__(path)
        self.show, self.out, self.bar, self.kinds = show, out, None, {}

    def set_progress(self, run_id: str, progress: dict) -> None:
        super().set_progress(run_id, progress)
        if not self.show:
            return
        import warnings

        from ..views.progress import describe, fraction_done

        with warnings.catch_warnings():  # tqdm.auto in a Jupyter without ipywidgets: a text bar, said once here
            warnings.simplefilter("ignore")
            from tqdm.auto import tqdm

        if run_id not in self.kinds:
            self.kinds[run_id] = (self.get_run(run_id) or {}).get("kind", "")
        kind = self.kinds[run_id]
        if self.bar is None:
            self.bar = tqdm(total=100, file=self.out, leave=True, bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}")
        done = fraction_done(progress, kind)
        self.bar.n = round(100 * done) if done is not None else self.bar.n
        self.bar.set_description(f"{kind} ({describe(progress, kind).split(';')[0].strip(', ')[:100]})")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def session(model: nn.Module | str = "default", data: Any = "fashion-mnist", train: Any = None,
            db: str | Path | None = None, device: str | None = None, head_seed: int = 0,
            data_root: str | Path | None = None, weights: str | Path | None = None, arch: str | None = None,
            classes: list[str] | None = None, progress: bool = True) -> Context:
    """The :class:`Context` of a model and data given as objects or names (see the module docstring); the
    CLI's ``--model``/``--dataset``/``--db``/``--device``/``--head-seed``/``--data-root``/``--weights``/``--arch``."""
    if _is_name(model) and _is_name(data) and train is None:
        ctx = open_context(str(model), str(data), db, data_root, weights, arch, device, head_seed,
                           ExecutorConfig.from_env())
    else:
        use_compute_threads()
        test = load_dataset(str(data), "test", data_root) if _is_name(data) else image_set(data, "test", classes)
        train_set = image_set(train, "train", classes or test.classes) if train is not None else None
        if train_set is not None and len(train_set.classes) != len(test.classes):
            raise LotusError(f"the training data has {len(train_set.classes)} classes, the test data "
                             f"{len(test.classes)}; give two splits of one dataset")
        if isinstance(model, nn.Module):
            net = from_module(model, classes=test.classes, head_seed=head_seed)
        elif _is_name(model):
            named = str(model) != "default"
            net = load_model(str(model), num_classes=len(test.classes) if named else None, weights=weights, arch=arch,
                             head_seed=head_seed, classes=test.classes if named else None)
        else:
            raise LotusError(f"model must be an nn.Module, 'default', a timm model name or a checkpoint file, not "
                             f"a {type(model).__name__}")
        net.to(resolve_device(device))
        ctx = Context(net, net.lotus_id, test.name, data_config(net), test, None,
                      Path(data_root).expanduser() if data_root else None, train_set, ExecutorConfig.from_env())
    ctx.store = _ProgressStore(db, progress, sys.stderr)
    return ctx
