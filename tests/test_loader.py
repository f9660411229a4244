"""Static and online batches: rendering once vs fresh views, seeding, labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO

import xrdframe
from xrdframe.augmentation import AugmentationChain
from xrdframe.dataset import PeakDataset
from xrdframe.loader import Batch, PatternLoader
from xrdframe.plugin.manager import Registry
from xrdframe.run import run_pipeline
from xrdframe.spec import load_spec_text, validate_spec
from xrdframe.symmetry import CRYSTAL_SYSTEMS, crystal_system


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> PeakDataset:
    out = tmp_path_factory.mktemp("loader") / "ds"
    text = (f"xrdframe: 1\ntask: simulate\noutput: {out}\nstructures: {{name: cif_dir, params: "
            f"{{path: '{REPO / 'examples' / 'structures'}'}}}}\n")
    registry = Registry()
    run_pipeline(validate_spec(load_spec_text(text), registry=registry), registry, quiet=True)
    return PeakDataset.open(out)


def chain() -> AugmentationChain:
    ops = [xrdframe.create("augmentation", "zero_shift"), xrdframe.create("augmentation", "intensity_noise"),
           xrdframe.create("augmentation", "pseudo_voigt"), xrdframe.create("augmentation", "background_noise")]
    return AugmentationChain(ops)


def batches(loader: PatternLoader, epoch: int) -> list:
    return list(loader.epoch(epoch))


def test_online_views_are_fresh_each_epoch_and_seeded(dataset: PeakDataset) -> None:
    loader = PatternLoader(dataset, np.arange(len(dataset)), chain(), batch_size=3, mode="online", seed=5)
    first, again = batches(loader, 0), batches(loader, 0)
    assert len(first) == len(loader) == 3
    for a, b in zip(first, again, strict=True):
        assert torch.equal(a.profiles, b.profiles) and torch.equal(a.index, b.index)
    later = batches(PatternLoader(dataset, np.arange(len(dataset)), chain(), batch_size=3, mode="online",
                                  seed=5, shuffle=False), 1)
    ordered = batches(PatternLoader(dataset, np.arange(len(dataset)), chain(), batch_size=3, mode="online",
                                    seed=5, shuffle=False), 0)
    assert torch.equal(later[0].index, ordered[0].index)
    assert not torch.equal(later[0].profiles, ordered[0].profiles)  # new draws in a new epoch
    assert first[0].profiles.shape == (3, 6000)


def test_two_views_differ_but_show_the_same_structures(dataset: PeakDataset) -> None:
    peaks_and_profile = AugmentationChain([xrdframe.create("augmentation", "zero_shift"),
                                           xrdframe.create("augmentation", "intensity_noise"),
                                           xrdframe.create("augmentation", "pseudo_voigt")])
    loader = PatternLoader(dataset, np.arange(len(dataset)), peaks_and_profile, batch_size=4, mode="online",
                           views=2)
    batch = max(loader.epoch(0), key=lambda b: len(b.index))
    assert batch.profiles.shape == (2, 4, 6000)
    assert not torch.equal(batch.profiles[0], batch.profiles[1])
    # the same structures: each view resembles its twin more than any other structure's view (without a
    # background, which over 6000 bins would dominate the comparison)
    # (compared after a 0.5 degree Gaussian blur, so that a zero shift of a tenth of a degree does not count)
    x = torch.arange(-75, 76, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (x / 25.0) ** 2).view(1, 1, -1)
    blurred = torch.nn.functional.conv1d(batch.profiles.reshape(8, 1, -1), kernel, padding=75).reshape(2, 4, -1)
    a = torch.nn.functional.normalize(blurred[0], dim=1)
    b = torch.nn.functional.normalize(blurred[1], dim=1)
    similarity = a @ b.T
    assert torch.equal(similarity.argmax(dim=1), torch.arange(4))


def test_static_renders_once_and_reuses_the_profiles(dataset: PeakDataset, tmp_path: Path) -> None:
    loader = PatternLoader(dataset, np.arange(len(dataset)), chain(), batch_size=2, mode="static",
                           cache_dir=tmp_path, seed=1)
    by_index = {}
    for epoch in range(3):
        for batch in loader.epoch(epoch):
            for i, profile in zip(batch.index.tolist(), batch.profiles, strict=True):
                if i in by_index:
                    assert torch.equal(by_index[i], profile)  # the same profile every epoch
                by_index[i] = profile
    assert len(by_index) == len(dataset) and len(list(tmp_path.glob("profiles-*.npy"))) == 1
    other_batching = PatternLoader(dataset, np.arange(len(dataset)), chain(), batch_size=5, mode="static",
                                   cache_dir=tmp_path / "other", seed=1)
    for batch in other_batching.epoch(0):
        for i, profile in zip(batch.index.tolist(), batch.profiles, strict=True):
            assert torch.equal(by_index[i], profile)  # independent of the batch size


def test_online_batches_group_similar_peak_counts(dataset: PeakDataset) -> None:
    counts = dataset.peak_counts()
    assert counts.tolist() == [len(dataset.peaks(i)) for i in range(len(dataset))]
    loader = PatternLoader(dataset, np.arange(len(dataset)), AugmentationChain([]), batch_size=2, seed=3)
    served = [b.index.tolist() for b in loader.epoch(0)]
    assert sorted(i for b in served for i in b) == list(range(len(dataset)))
    spans = [int(counts[b].max() - counts[b].min()) for b in served if len(b) == 2]
    unbucketed = PatternLoader(dataset, np.arange(len(dataset)), AugmentationChain([]), batch_size=2, seed=3,
                               bucket=0)
    random_spans = [int(counts[b.index.numpy()].max() - counts[b.index.numpy()].min())
                    for b in unbucketed.epoch(0) if len(b.index) == 2]
    assert sum(spans) <= sum(random_spans)


def test_labels_follow_the_structures(dataset: PeakDataset) -> None:
    loader = PatternLoader(dataset, dataset.split_indices("train"), AugmentationChain([]), batch_size=100)
    (batch,) = batches(loader, 0)
    assert sorted(batch.index.tolist()) == sorted(dataset.split_indices("train").tolist())
    for i, sg, cs in zip(batch.index.tolist(), batch.space_group.tolist(), batch.crystal_system.tolist(),
                         strict=True):
        assert sg == dataset.labels("space_group")[i]
        assert CRYSTAL_SYSTEMS[cs] == crystal_system(sg)
    # without operators the profile is the binned stick pattern: its total is the peaks' total intensity
    i = batch.index.tolist().index(int(dataset.split_indices("train")[0]))
    peaks = dataset.peaks(int(batch.index[i]))
    assert float(batch.profiles[i].sum()) == pytest.approx(float(np.sum(peaks.intensity)), rel=1e-5)


def test_bad_modes_are_refused(dataset: PeakDataset) -> None:
    with pytest.raises(ValueError, match="static mode needs a cache_dir"):
        PatternLoader(dataset, [0], AugmentationChain([]), mode="static")
    with pytest.raises(ValueError, match="mode must be"):
        PatternLoader(dataset, [0], AugmentationChain([]), mode="sometimes")


def test_render_workers_give_the_same_batches_in_order(dataset: PeakDataset) -> None:
    def run(workers: int) -> list[Batch]:
        loader = PatternLoader(dataset, np.arange(len(dataset)), chain(), batch_size=2, mode="online", seed=9,
                               views=2, workers=workers)
        return list(loader.epoch(1))

    inline, threaded = run(0), run(2)
    assert len(inline) == len(threaded) > 2
    for a, b in zip(inline, threaded, strict=True):
        assert torch.equal(a.index, b.index)
        assert torch.equal(a.profiles, b.profiles)
    with pytest.raises(ValueError, match="workers"):
        PatternLoader(dataset, [0], AugmentationChain([]), workers=-1)
