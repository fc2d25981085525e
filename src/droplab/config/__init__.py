"""params.yaml's schema, validated once before any stage does work, so a typo fails fast with the
key path and the allowed values instead of surfacing later as a traceback deep inside torch.

By concern: settings (train, data, analysis), variants (the union of the registered model
families, models.families), studies (studies, scales, sweeps, Run), datasets (extra datasets and
their URL policy), params (`Params` and its one `resolve`), resolved (what `resolve` returns) and
loading (reading params.yaml, reporting every problem). Importing it does not import torch."""

from droplab.config.loading import ConfigError, load_params, parse_params, read_params
from droplab.config.params import Params
from droplab.config.resolved import VariantConfig
from droplab.config.settings import AnalysisConfig, Augment, DataConfig, Schedule, TrainConfig
from droplab.config.studies import Run, Scale, Study, Sweep, rate_tag
from droplab.config.variants import VariantSpec

__all__ = ["AnalysisConfig", "Augment", "ConfigError", "DataConfig", "Params", "Run", "Scale", "Schedule", "Study",
           "Sweep", "TrainConfig", "VariantConfig", "VariantSpec", "load_params", "parse_params", "rate_tag",
           "read_params"]
