"""xrdframe.create builds components exactly as a spec would, with the same validation."""

from __future__ import annotations

import pytest

import xrdframe
from xrdframe.api import resolve
from xrdframe.errors import SpecError
from xrdframe.plugin.manager import Registry


def test_create_builds_with_nested_components(toy_registry: Registry, monkeypatch) -> None:
    monkeypatch.setattr("xrdframe.plugin.manager._REGISTRY", toy_registry)
    indexer = xrdframe.create("indexer", "toy_indexer", encoder={"name": "toy_encoder", "params": {"width": 5}},
                              checkpoint="m.safetensors")
    assert indexer == ("indexer", ("encoder", 5), "m.safetensors")
    assert xrdframe.create("augmentation", "toy_shift") == ("shift", "uniform", 0.1)


def test_create_reports_every_problem(toy_registry: Registry) -> None:
    with pytest.raises(SpecError) as err:
        resolve("indexer", "toy_indexer", registry=toy_registry, encoder={"name": "toy_encoder",
                                                                          "params": {"width": -1}}, extra=1)
    assert [str(p) for p in err.value.problems] == [
        "$.params.extra: unknown key 'extra'; allowed keys: encoder, checkpoint",
        "$.params.encoder.params.width: must be > 0, got -1",
    ]
    with pytest.raises(SpecError) as err:
        resolve("indexer", "toy_indexer", registry=toy_registry, encoder={"name": "toy_encoder",
                                                                          "params": {"width": -1}})
    assert [str(p) for p in err.value.problems] == ["$.params.encoder.params.width: must be > 0, got -1"]
    with pytest.raises(SpecError, match=r"unknown augmentation 'toy_shfit' \(did you mean 'toy_shift'\?\)"):
        resolve("augmentation", "toy_shfit", registry=toy_registry)
    kind_error = r"unknown component kind 'augmentations' \(did you mean 'augmentation'\?\)"
    with pytest.raises(SpecError, match=kind_error) as err:
        resolve("augmentations", "toy_shift", registry=toy_registry)
    assert str(err.value).startswith("create('augmentations', 'toy_shift'): invalid spec, 1 problem:")


def test_create_with_builtin_registry() -> None:
    source = xrdframe.create("structure_source", "cif_dir", path="examples/structures")
    assert source.params.on_disagreement == "keep_file"
    with pytest.raises(SpecError, match=r"\$\.params\.on_disagreement: expected one of 'keep_file', 'take_spglib', "
                                        r"'drop', got 'ignore'"):
        xrdframe.create("structure_source", "cif_dir", path="x", on_disagreement="ignore")
