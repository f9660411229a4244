"""Pipeline specs: YAML reading with locations, validation, stages and overrides."""

from xrdframe.spec.pipeline import Pipeline, Stage, apply_overrides, load_pipeline, validate_spec
from xrdframe.spec.validation import structure, unstructure
from xrdframe.spec.yaml_source import SpecSource, load_spec_file, load_spec_text

__all__ = [
    "Pipeline",
    "SpecSource",
    "Stage",
    "apply_overrides",
    "load_pipeline",
    "load_spec_file",
    "load_spec_text",
    "structure",
    "unstructure",
    "validate_spec",
]
