"""The two parameter regimes of the augmentation operators: examples/augment_training.yaml and augment_invariance.yaml.

As the paper's Table 1: the invariance test set draws every random parameter of
every operator from a law whose support does not overlap the training one. The
training spec writes out the operators' defaults; both specs hold every built-in
operator, so a new operator has to be given both regimes; both run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import REPO
from xrdframe_augment import peak_operators, profile_operators

from xrdframe.distribution import Distribution
from xrdframe.plugin.manager import Registry
from xrdframe.run import run_pipeline
from xrdframe.spec import load_pipeline, load_spec_file, validate_spec
from xrdframe.spec.validation import resolved_fields

SPECS = {"training": REPO / "examples" / "augment_training.yaml",
         "invariance": REPO / "examples" / "augment_invariance.yaml"}
BUILT_IN = [c.name for c in (*peak_operators.COMPONENTS, *profile_operators.COMPONENTS)]
#: The fixed (non-random) parameters allowed to differ between the regimes, and why.
FIXED_DIFFERENCES = {
    ("pseudo_voigt", "max_window"),  # broader invariance peaks need a wider window
    ("background_noise", "amorphous_probability"),  # 0.2 vs 0.5, a fixed probability
}


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry()


@pytest.fixture(scope="module")
def regimes(registry: Registry) -> dict[str, tuple[list[Any], list[dict[str, Any]]]]:
    """Per regime: the validated augmentation references and the raw spec entries, in spec order."""
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO)  # the specs' structure paths are relative to the repository root
        for regime, path in SPECS.items():
            source = load_spec_file(path)
            pipeline = validate_spec(source, registry=registry)
            (stage,) = pipeline.stages
            assert stage.task.name == "preview"
            out[regime] = (list(stage.task.params.augmentations), list(source.data["augmentations"]))
    return out


def random_fields(params_cls: type) -> list[str]:
    return [f.name for f in resolved_fields(params_cls) if f.type is Distribution]


def paired(regimes: dict[str, tuple[list[Any], list[dict[str, Any]]]]) -> list[tuple[Any, Any]]:
    train, test = ({ref.name: ref for ref in regimes[r][0]} for r in ("training", "invariance"))
    return [(train[name], test[name]) for name in train]


def test_both_specs_hold_every_built_in_operator_once_in_the_same_order(regimes: dict) -> None:
    names = {regime: [ref.name for ref in refs] for regime, (refs, _) in regimes.items()}
    for regime, listed in names.items():
        assert len(set(listed)) == len(listed), f"{regime}: an operator listed twice: {listed}"
        missing = sorted(set(BUILT_IN) - set(listed))
        assert not missing, f"{SPECS[regime].name} lacks {missing}: give every operator both regimes"
    assert names["training"] == names["invariance"]
    # the paper's order of its eight operations (the extra ones may sit in between)
    paper = ["zero_shift", "peak_position_noise", "peak_crop", "intensity_noise", "impurity_peaks", "pseudo_voigt",
             "background_noise", "edge_crop"]
    assert [n for n in names["training"] if n in paper] == paper


def test_supports_of_every_random_parameter_are_disjoint(regimes: dict) -> None:
    checked = 0
    for train, test in paired(regimes):
        assert type(train.params) is type(test.params)
        for name in random_fields(type(train.params)):
            law_train, law_test = getattr(train.params, name), getattr(test.params, name)
            (lo_a, hi_a), (lo_b, hi_b) = law_train.support(), law_test.support()
            assert hi_a < lo_b or hi_b < lo_a, (
                f"{train.name}.{name}: training {law_train.to_spec()} (support [{lo_a}, {hi_a}]) overlaps "
                f"invariance {law_test.to_spec()} (support [{lo_b}, {hi_b}])")
            checked += 1
    assert checked >= sum(len(random_fields(c.params)) for c in (*peak_operators.COMPONENTS,
                                                               *profile_operators.COMPONENTS))


def test_every_random_parameter_is_written_out(regimes: dict) -> None:
    for regime, (refs, raw) in regimes.items():
        for ref, entry in zip(refs, raw, strict=True):
            written = set((entry.get("params") or {}).keys())
            missing = [n for n in random_fields(type(ref.params)) if n not in written]
            assert not missing, f"{SPECS[regime].name}: {ref.name} leaves {missing} to the defaults"


def test_training_regime_is_the_defaults(regimes: dict) -> None:
    for ref in regimes["training"][0]:
        defaults = type(ref.params)()
        for field in resolved_fields(type(ref.params)):
            assert getattr(ref.params, field.name) == getattr(defaults, field.name), f"{ref.name}.{field.name}"


def test_fixed_parameters_agree_but_for_the_documented_ones(regimes: dict) -> None:
    for train, test in paired(regimes):
        for field in resolved_fields(type(train.params)):
            if field.type is Distribution or (train.name, field.name) in FIXED_DIFFERENCES:
                continue
            assert getattr(train.params, field.name) == getattr(test.params, field.name), \
                f"{train.name}.{field.name} differs between the regimes"


@pytest.mark.parametrize("regime", sorted(SPECS))
def test_spec_runs_and_writes_the_preview(regime: str, registry: Registry, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    pipeline = load_pipeline(SPECS[regime], [f"output={tmp_path}"], registry=registry)
    run_pipeline(pipeline, registry, quiet=True)
    png = tmp_path / "preview.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    header = (tmp_path / "preview.csv").read_text().splitlines()[0].split(",")
    assert len(header) == 1 + 1 + len(BUILT_IN)  # two_theta, the ideal peaks, one column per operator


def test_fields_typed_distribution_are_found() -> None:
    # `from __future__ import annotations` leaves string annotations; resolved_fields turns them into types
    assert random_fields(peak_operators.ZeroShiftParams) == ["shift"]
    assert set(random_fields(profile_operators.EdgeCropParams)) == {"low", "high"}
