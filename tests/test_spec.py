"""Spec validation: every kind of problem, reported at once with path and line (golden messages)."""

from __future__ import annotations

import textwrap

import pytest

from xrdframe.errors import SpecError
from xrdframe.plugin.manager import Registry
from xrdframe.spec import apply_overrides, load_spec_text, validate_spec


def problems(text: str, registry: Registry, overrides: tuple[str, ...] = ()) -> list[str]:
    source = load_spec_text(textwrap.dedent(text).lstrip(), name="spec.yaml")
    apply_overrides(source, overrides)
    with pytest.raises(SpecError) as err:
        validate_spec(source, registry=registry)
    return [str(p) for p in err.value.problems]


def valid(text: str, registry: Registry, overrides: tuple[str, ...] = ()):
    source = load_spec_text(textwrap.dedent(text).lstrip(), name="spec.yaml")
    apply_overrides(source, overrides)
    return validate_spec(source, registry=registry)


def test_misspelled_component_and_wrong_typed_seed_are_both_reported(toy_registry: Registry) -> None:
    assert problems("""
        xrdframe: 1
        task: simulate
        seed: abc
        output: runs/x
        structures: {name: cif_dri, params: {path: x}}
        """, toy_registry) == [
        "$.seed (spec.yaml, line 3): expected an integer, got 'abc' (string)",
        "$.structures.name (spec.yaml, line 5): unknown structure_source 'cif_dri' (did you mean 'cif_dir'?); "
        "installed: cif_dir, random_structures",
    ]


def test_nested_component_errors_carry_the_full_path(toy_registry: Registry) -> None:
    assert problems("""
        xrdframe: 1
        task: evaluate
        output: runs/x
        test_sets:
          lab: {name: toy_source}
        indexers:
          difcon:
            name: toy_indexer
            params:
              encoder: {name: toy_encodr, params: {width: 4}}
          other:
            name: toy_indexer
            params:
              encoder: {name: toy_encoder, params: {width: 0, depth: 3}}
              checkpoint: 5
          third:
            name: toy_indexer
            params: {encoder: {name: toy_encoder, params: {width: 0}}, checkpoint: 5}
        """, toy_registry) == [
        "$.test_sets.lab.name (spec.yaml, line 5): unknown pattern_source 'toy_source'; installed: "
        "equivariance, invariance, pattern_files",
        "$.indexers.difcon.params.encoder.name (spec.yaml, line 10): unknown encoder 'toy_encodr' "
        "(did you mean 'toy_encoder'?); installed: resnet1d, toy_encoder",
        "$.indexers.other.params.encoder.params.depth (spec.yaml, line 14): unknown key 'depth'; "
        "allowed keys: width",
        "$.indexers.other.params.encoder.params.width (spec.yaml, line 14): must be > 0, got 0",
        "$.indexers.other.params.checkpoint (spec.yaml, line 15): expected a string, got 5 (integer)",
        "$.indexers.third.params.checkpoint (spec.yaml, line 18): expected a string, got 5 (integer)",
        "$.indexers.third.params.encoder.params.width (spec.yaml, line 18): must be > 0, got 0",
    ]


def test_validator_messages_keep_their_path(toy_registry: Registry) -> None:
    assert problems("""
        xrdframe: 1
        task: simulate
        output: runs/x
        structures: {name: cif_dir, params: {path: x, symprec: -1}}
        wavelength: 0
        two_theta: [130, 120]
        splits: {train: 0.5}
        """, toy_registry) == [
        "$.structures.params.symprec (spec.yaml, line 4): must be > 0, got -1.0",
        "$.wavelength (spec.yaml, line 5): must be > 0, got 0.0",
        "$.two_theta (spec.yaml, line 6): must be [min, max] degrees with 0 <= min < max <= 180, got [130.0, 120.0]",
        "$.splits (spec.yaml, line 7): must be fractions in [0, 1] summing to 1, got {'train': 0.5}",
    ]


def test_types_unknown_keys_missing_keys_and_literals(toy_registry: Registry) -> None:
    assert problems("""
        xrdframe: 1
        task: train
        output: 7
        data: {path: ds, train_split: 3}
        indexer: {name: toy_indexer, params: {encoder: toy_encoder}}
        augmentations:
          - {name: toy_shift, params: {mode: uniformm, amount: true}}
          - toy_shfit
        trainer: {epochs: 2.5, device: gpu}
        learning_rate: 0.1
        """, toy_registry) == [
        "$.output (spec.yaml, line 3): expected a directory path (string), got 7 (integer)",
        "$.data.train_split (spec.yaml, line 4): expected a string, got 3 (integer)",
        "$.augmentations[0].params.mode (spec.yaml, line 7): expected one of 'uniform', 'fixed', got 'uniformm' "
        "(did you mean 'uniform'?)",
        "$.augmentations[0].params.amount (spec.yaml, line 7): expected a number, got True (boolean)",
        "$.augmentations[1].name (spec.yaml, line 8): unknown augmentation 'toy_shfit' (did you mean 'toy_shift'?); "
        f"installed: {', '.join(toy_registry.names('augmentation'))}",
        "$.trainer.epochs (spec.yaml, line 9): expected an integer, got 2.5 (number)",
        "$.trainer.device (spec.yaml, line 9): expected one of 'auto', 'cpu', 'cuda', got 'gpu'",
        "$.learning_rate (spec.yaml, line 10): unknown key 'learning_rate' for task 'train'; allowed keys: "
        "augmentations, data, indexer, output, seed, task, trainer, xrdframe",
    ]


def test_missing_required_keys_version_and_task(toy_registry: Registry) -> None:
    assert problems("""
        xrdframe: 2
        task: simulat
        """, toy_registry) == [
        "$.xrdframe (spec.yaml, line 1): unsupported schema version 2; this xrdframe reads version 1",
        "$.output (spec.yaml, line 1): required key is missing (the output directory)",
        "$.task (spec.yaml, line 2): unknown task 'simulat' (did you mean 'simulate'?); "
        "installed: evaluate, merge, predict, preview, simulate, toy_count, train",
    ]
    assert problems("""
        task: toy_count
        output: x
        """, toy_registry) == [
        "$.xrdframe (spec.yaml, line 1): required key is missing (the schema version, 1)",
        "$.value (spec.yaml, line 1): required key is missing",
    ]


def test_yaml_syntax_duplicate_keys_and_non_mapping() -> None:
    with pytest.raises(SpecError) as err:
        load_spec_text("xrdframe: 1\ntask: [simulate\n", name="spec.yaml")
    assert str(err.value.problems[0]).startswith("$ (spec.yaml, line 3): not valid YAML:")
    with pytest.raises(SpecError) as err:
        load_spec_text("xrdframe: 1\nseed: 1\nseed: 2\n", name="spec.yaml")
    assert [str(p) for p in err.value.problems] == ["$.seed (spec.yaml, line 3): duplicate key"]
    with pytest.raises(SpecError) as err:
        validate_spec(load_spec_text("- a\n- b\n", name="spec.yaml"), registry=Registry(entry_points=[]))
    assert [str(p) for p in err.value.problems] == ["$ (spec.yaml, line 1): a spec must be a mapping of keys, got list"]


def test_error_rendering_lists_every_problem() -> None:
    err = SpecError(load_spec_text("a: 1\n").locations and [], source="s.yaml")
    assert err.render() == "s.yaml: invalid spec, 0 problems:"


def test_set_overrides_are_typed_like_the_key(toy_registry: Registry) -> None:
    text = """
        xrdframe: 1
        task: toy_count
        output: out
        seed: 1
        value: 2
        """
    pipeline = valid(text, toy_registry, ("seed=7", "value=40", "output=123"))
    stage = pipeline.stages[0]
    assert (stage.seed, stage.task.params.value, str(stage.output)) == (7, 40, "123")
    assert valid(text, toy_registry, ("fail=true",)).stages[0].task.params.fail is True
    assert problems(text, toy_registry, ("seed=abc", "value=1.5", "colour=red")) == [
        "$.seed (--set seed=abc): expected an integer, got 'abc' (string)",
        "$.value (--set value=1.5): expected an integer, got 1.5 (number)",
        "$.colour (--set colour=red): unknown key 'colour' for task 'toy_count'; allowed keys: crash, fail, "
        "output, seed, source, task, value, xrdframe",
    ]
    with pytest.raises(SpecError, match="is not of the form a.b=value"):
        valid(text, toy_registry, ("novalue",))


def test_set_reaches_into_stages_and_lists(toy_registry: Registry) -> None:
    text = """
        xrdframe: 1
        output: out
        stages:
          a: {task: toy_count, value: 1}
          b:
            task: train
            data: {path: ds}
            indexer: {name: toy_indexer, params: {encoder: {name: toy_encoder}}}
            augmentations: [{name: toy_shift}]
        """
    pipeline = valid(text, toy_registry, ("stages.a.value=5", "stages.b.augmentations.0.params.amount=0.5",
                                          "stages.b.indexer.params.encoder.params.width=3"))
    a, b = pipeline.stages
    assert a.task.params.value == 5
    assert b.task.params.augmentations[0].params.amount == 0.5
    assert b.task.params.indexer.params.encoder.params.width == 3
    assert b.task.params.indexer.build() == ("indexer", ("encoder", 3), None)


def test_stage_references_resolve_only_to_earlier_stages(toy_registry: Registry) -> None:
    pipeline = valid("""
        xrdframe: 1
        output: out
        seed: 4
        stages:
          first: {task: toy_count, value: 1}
          second: {task: toy_count, value: 2, source: "${stages.first.output}", seed: 9, output: elsewhere}
        """, toy_registry)
    first, second = pipeline.stages
    assert (str(first.output), first.seed) == ("out/first", 4)
    assert (str(second.output), second.seed, second.depends_on) == ("elsewhere", 9, ("first",))
    assert second.task.params.source == "out/first"
    assert problems("""
        xrdframe: 1
        output: out
        stages:
          first: {task: toy_count, value: 1, source: "${stages.second.output}"}
          second: {task: toy_count, value: 2, source: "${stages.frist.output}"}
          third: {task: toy_count, value: 2, source: "${stages.first.path}"}
        """, toy_registry) == [
        "$.stages.first.source (spec.yaml, line 4): cannot resolve ${stages.second.output}: 'second' is not an "
        "earlier stage; earlier stages: none",
        "$.stages.second.source (spec.yaml, line 5): cannot resolve ${stages.frist.output}: 'frist' is not an "
        "earlier stage (did you mean 'first'?); earlier stages: first",
        "$.stages.third.source (spec.yaml, line 6): cannot resolve ${stages.first.path}: references have the form "
        "${stages.NAME.output}",
    ]


def test_pipeline_top_level_keys(toy_registry: Registry) -> None:
    assert problems("""
        xrdframe: 1
        output: out
        value: 3
        stages:
          a: {task: toy_count, value: 1}
        """, toy_registry) == [
        "$.value (spec.yaml, line 3): unknown key 'value' at the top of a pipeline; allowed keys: xrdframe, seed, "
        "output, stages (task keys belong inside a stage)",
    ]


def test_a_string_is_not_a_list(toy_registry: Registry) -> None:
    assert problems("""
        xrdframe: 1
        task: train
        output: out
        data: {path: ds}
        indexer: {name: toy_indexer, params: {encoder: toy_encoder}}
        augmentations: toy_shift
        """, toy_registry) == ["$.augmentations (spec.yaml, line 6): expected a list, got 'toy_shift' (string)"]


def test_yaml_12_floats_tuple_lengths_and_set_problems_together(toy_registry: Registry) -> None:
    pipeline = valid("""
        xrdframe: 1
        task: simulate
        output: out
        structures: {name: cif_dir, params: {path: x, symprec: 1e-3}}
        wavelength: 1.5406
        """, toy_registry, ("wavelength=7.1e-1",))
    params = pipeline.stages[0].task.params
    assert params.structures.params.symprec == 1e-3 and params.wavelength == 0.71
    assert problems("""
        xrdframe: 1
        task: simulate
        output: out
        structures: {name: cif_dir, params: {path: x}}
        two_theta: [1, 2, 3]
        """, toy_registry, ("bad-override", "seed=x")) == [
        "$ (--set bad-override): override 'bad-override' is not of the form a.b=value",
        "$.seed (--set seed=x): expected an integer, got 'x' (string)",
        "$.two_theta (spec.yaml, line 5): expected a list of 2 values, got 3: [1, 2, 3]",
    ]
