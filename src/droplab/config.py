"""params.yaml schema: validated once, before any stage does work.

Every stage calls `load_params`, so a typo fails fast with the key path and the allowed
values instead of surfacing later as a traceback deep inside torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, TypeAdapter, ValidationError, create_model, field_validator, model_validator

from droplab.data.datasets import DATASETS, FORMAT_ROLES, DatasetSpec, Format, RawFile
from droplab.errors import DroplabError
from droplab.models.cnn_spec import CNNSpec
from droplab.models.lenet_spec import LeNetSpec
from droplab.models.mlp_spec import MLPSpec
from droplab.models.resnet_spec import ResNetSpec
from droplab.schema import Strict, describe, first_repeated, problem_lines
from droplab.yaml_file import read_yaml


class ConfigError(DroplabError):
    """A params.yaml problem, phrased for the person who edits params.yaml."""


Seed = Annotated[int, Field(ge=0, lt=2**32, description="numpy seeds must lie in [0, 2**32)")]


class DataConfig(Strict):
    source_dir: str | None = None
    split_seed: Seed = 0
    val_size: int = Field(10000, gt=0)
    # the prepared splits are full size unless these cut them (the tiny test config does); a study
    # draws its own subsets at its scale (see Scale)
    train_limit: int | None = Field(None, gt=0)
    test_limit: int | None = Field(None, gt=0)


class AnalysisConfig(Strict):
    train_images: int | None = Field(2000, gt=0)  # training images the BN analysis passes over


class Schedule(Strict):
    """A per-step learning-rate schedule: linear warmup over `warmup_steps`, then constant, cosine
    (to 0 at the last step) or step (x gamma at each milestone epoch)."""

    name: Literal["constant", "step", "cosine"] = "constant"
    milestones: list[Annotated[int, Field(gt=0)]] = []
    gamma: float = Field(0.1, gt=0)
    warmup_steps: int = Field(0, ge=0)


class Augment(Strict):
    crop_pad: int = Field(0, ge=0)
    flip: bool = False


class TrainConfig(Strict):
    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    optimizer: Literal["sgd", "adam"]
    lr: float = Field(gt=0)
    momentum: float = Field(0.0, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    schedule: Schedule = Schedule()
    augment: Augment = Augment()
    eval_batch_size: int = Field(1000, gt=0)
    threads: int = Field(2, gt=0)
    # "auto": on for CUDA, off on the CPU (where bf16 and NHWC convolutions are slower here and
    # would change the numbers); true or false force it on any device.
    amp: bool | Literal["auto"] = "auto"
    channels_last: bool | Literal["auto"] = "auto"
    compile: bool = False
    nproc_per_node: int = Field(1, gt=0)  # > 1: data-parallel under torchrun, batch_size is the global batch
    sync_bn: bool = False  # BN statistics over the global batch under DDP (CUDA only; dropout is kept)

    @model_validator(mode="after")
    def _milestones_within_epochs(self) -> TrainConfig:
        late = [m for m in self.schedule.milestones if m >= self.epochs]
        if self.schedule.name == "step" and late:
            raise ValueError(f"schedule.milestones: epoch {late[0]} is not before the last epoch ({self.epochs}), "
                             "so the lr would never drop there")
        return self

    @model_validator(mode="after")
    def _momentum_is_sgds(self) -> TrainConfig:
        if self.optimizer == "adam" and self.momentum:
            raise ValueError(f"momentum = {self.momentum} is SGD's; Adam would ignore it (its betas are fixed "
                             "at torch's defaults): remove it or use optimizer: sgd")
        return self


def _all_optional(model: type[BaseModel], name: str) -> type[BaseModel]:
    """The same fields as `model`, each optional: a variant overrides only what it names."""
    fields: dict[str, Any] = {}
    for field_name, field in model.model_fields.items():
        bounded = Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
        fields[field_name] = (bounded | None, None)  # keeps the gt/ge bounds of the original
    return create_model(name, __config__=Strict.model_config, **fields)


TrainOverride = _all_optional(TrainConfig, "TrainOverride")

RateRef = Annotated[
    str,
    Field(
        description="params key holding this variant's dropout rate(s): 'dropout' to follow "
        "the top-level knob, or 'fixed_p.<name>'",
    ),
]


class VariantFields(Strict):
    """What a variant adds to its model family's spec: where its rates come from, whether its
    input is normalized, and its own train settings."""

    p: RateRef
    normalize: bool = True
    train: TrainOverride = TrainOverride()  # type: ignore[valid-type]


# A variant is its family's spec (models/<family>_spec.py: fields, dropout sites, which it builds)
# plus the variant fields; the config composes the specs and decides nothing about a family.
class MLPVariant(MLPSpec, VariantFields):
    pass


class CNNVariant(CNNSpec, VariantFields):
    pass


class LeNetVariant(LeNetSpec, VariantFields):
    pass


class ResNetVariant(ResNetSpec, VariantFields):
    pass


MODEL_VARIANTS: dict[str, type[BaseModel]] = {"mlp": MLPVariant, "cnn": CNNVariant, "lenet5": LeNetVariant,
                                              "resnet": ResNetVariant}


def family_fields(model: str) -> set[str]:
    """The architecture fields of a model family: what a study's `spec:` may set."""
    return set(MODEL_VARIANTS[model].model_fields) - set(VariantFields.model_fields) - {"model"}
VariantSpec = Annotated[MLPVariant | CNNVariant | LeNetVariant | ResNetVariant, Field(discriminator="model")]
_SPEC: TypeAdapter = TypeAdapter(VariantSpec)


ScaleName = Literal["cpu", "paper"]


class Scale(Strict):
    """A study's setting at one scale: how much data it draws, how long and how it trains.

    The subsets are seeded by data.split_seed and the same for every seed of every variant, so
    seeds differ only in initial weights, batch order and dropout masks."""

    dataset: str | None = None  # the dataset this setting was published on; reported beside the one used
    train_images: int | None = Field(None, gt=0)  # a seeded subset of the prepared split; None: all of it
    val_images: int | None = Field(None, gt=0)
    test_images: int | None = Field(None, gt=0)
    train: TrainOverride = TrainOverride()  # type: ignore[valid-type]  # over `train`; a variant's own keys win
    # over the spec of each variant whose family has the key, e.g. {resize: null} for native input size
    spec: dict[str, Any] = {}
    # variants of this study not trained at this scale, and why (claims about them read "not run")
    skip: list[str] = []
    skip_reason: str | None = None

    @model_validator(mode="after")
    def _skip_has_a_reason(self) -> Scale:
        if self.skip and not self.skip_reason:
            raise ValueError("skip needs a skip_reason: the report prints why these variants did not train")
        return self


RATE_STEP = 100  # sweep rates are whole percents: each names its runs' folder, p10 ... p90


class Sweep(Strict):
    """The published S2 protocol: every variant of the study whose rate follows `dropout` trains
    at each of `rates` instead; the aggregate stage selects the rate at which the `select`
    variant has the best mean `metric` over seeds (validation, never test), and the study's claims
    and tables read each swept variant at that rate."""

    rates: list[float] = Field(min_length=2)
    select: str
    metric: Literal["val.loss", "val.acc1"] = "val.loss"

    @field_validator("rates")
    @classmethod
    def _whole_percents(cls, rates: list[float]) -> list[float]:
        for rate in rates:
            if not 0 < rate < 1 or abs(rate * RATE_STEP - round(rate * RATE_STEP)) > 1e-9:
                raise ValueError(f"rate {rate}: expected a whole percent strictly between 0 and 1 (0.01 ... 0.99); "
                                 "it names the runs' folder")
        if (twice := first_repeated([round(rate * RATE_STEP) for rate in rates])) is not None:
            raise ValueError(f"rate {twice / RATE_STEP:g} appears more than once")
        return rates


def rate_tag(rate: float) -> str:
    """A sweep rate as the name of its runs' folder and the suffix of its label: 0.8 -> 'p80'."""
    return f"p{round(rate * RATE_STEP):02d}"


class Study(Strict):
    title: str
    variants: list[str] = Field(min_length=1)
    seeds: int = Field(1, gt=0)  # train each variant under the first `seeds` entries of the top-level list
    profile_table: bool = False  # put parameters and FLOPs beside accuracy (S3 did)
    # variant -> the same architecture without dropout: recalibration's gain minus the twin's is
    # the part due to dropout rather than to stale BN statistics
    twins: dict[str, str] = {}
    cpu: Scale = Scale()  # the default run's setting, sized to reach each claim's regime on 2 cores
    paper: Scale = Scale()  # the published setting (`dvc exp run -S scale=paper`)
    sweep: Sweep | None = None  # train the variants that follow `dropout` at several rates, select on validation

    def scale(self, name: ScaleName) -> Scale:
        return getattr(self, name)

    @field_validator("variants")
    @classmethod
    def _distinct(cls, variants: list[str]) -> list[str]:
        if (twice := first_repeated(variants)) is not None:
            raise ValueError(f"variant {twice!r} is listed twice; a study would compare it with itself")
        return variants


class Run(Strict):
    """One (variant, seed) pair, or (variant, sweep rate, seed): one seed of the DVC stage
    `train@<variant>`, with its own files."""

    variant: str
    seed: int
    p: str  # the variant's rate key, for DVC to track
    rate: float | None = None  # the sweep rate it trains at instead of its rate key's

    @property
    def label(self) -> str:
        """What the statistics, claims and tables call it: the variant, or <variant>_p80 for a sweep rate."""
        return self.variant if self.rate is None else f"{self.variant}_{rate_tag(self.rate)}"

    def path(self, folder: Path, suffix: str) -> Path:
        """This run's file in `folder` (models/, metrics/train/, ...): <folder>/<variant>/seed<seed><suffix>,
        or <folder>/<variant>/p80/seed<seed><suffix> for a sweep rate."""
        inside = folder / self.variant if self.rate is None else folder / self.variant / rate_tag(self.rate)
        return inside / f"seed{self.seed}{suffix}"


LOOPBACK = ("127.0.0.1", "localhost", "::1")


class RawFileDecl(Strict):
    name: str = Field(pattern=r"^[^/\\]+$", description="a file name, no folders")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int | None = Field(None, gt=0)


class DatasetDecl(Strict):
    """A dataset in one of droplab's formats, pinned in params.yaml: a mirror, a private copy."""

    format: Format
    files: dict[str, RawFileDecl]
    urls: list[str] = []  # base URLs ending in '/'
    classes: list[str] = []  # required for idx; the other formats name their classes

    @field_validator("urls")
    @classmethod
    def _secure_urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            parts = urlsplit(url)
            local = parts.scheme == "http" and parts.hostname in LOOPBACK
            if not (parts.scheme == "https" or local) or not url.endswith("/"):
                raise ValueError(f"url {url!r}: expected an https:// base URL ending in '/' "
                                 "(plain http only on this machine's loopback)")
        return urls

    @model_validator(mode="after")
    def _roles(self) -> DatasetDecl:
        roles = FORMAT_ROLES[self.format]
        if sorted(self.files) != sorted(roles):
            raise ValueError(f"format {self.format} needs files for exactly: {', '.join(roles)}")
        if self.format == "idx" and not self.classes:
            raise ValueError("format idx needs `classes` (the IDX files hold only label numbers)")
        return self

    def spec(self, name: str) -> DatasetSpec:
        files = {role: RawFile(f.name, f.sha256, f.size) for role, f in self.files.items()}
        return DatasetSpec(name, self.format, files, tuple(self.urls), classes=tuple(self.classes))


PLAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def check_plain_name(name: str) -> str:
    """Every name that becomes a path or a DVC key (variants, studies, fixed_p, datasets) passes
    here: letters, digits, '_' and '-', so it can never leave its folder."""
    if not PLAIN_NAME.match(name):
        raise ValueError(f"name {name!r} may use only letters, digits, '_' and '-', starting with a letter or digit "
                         "(it becomes a file name, and DVC reads '.' as nesting)")
    return name


class Params(Strict):
    scale: ScaleName = "cpu"
    seeds: list[Seed] = Field(min_length=1)
    dataset: str
    dropout: float = Field(ge=0, lt=1)
    fixed_p: dict[str, float | list[float]] = {}
    data: DataConfig
    train: TrainConfig
    analysis: AnalysisConfig = AnalysisConfig()
    variants: dict[str, VariantSpec] = Field(min_length=1)
    studies: dict[str, Study] = {}
    extra_datasets: dict[str, DatasetDecl] = {}
    # variants the full config has and this one leaves out (`droplab tiny --keep`): a claim about
    # one of them is "not run"; a claim about a name in neither list is a typo
    skipped_variants: list[str] = []

    @model_validator(mode="after")
    def _skipped_are_not_run(self) -> Params:
        both = sorted(set(self.skipped_variants) & set(self.variants))
        if both:
            raise ValueError(f"skipped_variants: {both[0]!r} is also in variants; list it in one place")
        return self

    @model_validator(mode="after")
    def _known_dataset(self) -> Params:
        shadowing = sorted(set(self.extra_datasets) & set(DATASETS))
        if shadowing:
            raise ValueError(f"extra_datasets.{shadowing[0]}: a built-in dataset has this name; choose another")
        if self.dataset not in DATASETS and self.dataset not in self.extra_datasets:
            known = [*DATASETS, *self.extra_datasets]
            raise ValueError(f"dataset: unknown dataset {self.dataset!r}; allowed: {', '.join(known)}")
        return self

    def dataset_spec(self) -> DatasetSpec:
        if self.dataset in DATASETS:
            return DATASETS[self.dataset]
        return self.extra_datasets[self.dataset].spec(self.dataset)

    @field_validator("fixed_p", "variants", "extra_datasets", "studies", mode="before")
    @classmethod
    def _plain_names(cls, mapping: Any) -> Any:
        for name in mapping if isinstance(mapping, dict) else ():
            check_plain_name(str(name))
        return mapping

    @field_validator("fixed_p")
    @classmethod
    def _rates_in_range(cls, mapping: dict[str, float | list[float]]) -> dict[str, float | list[float]]:
        for name, value in mapping.items():
            for rate in value if isinstance(value, list) else [value]:
                if not 0.0 <= rate < 1.0:
                    raise ValueError(f"fixed_p.{name} = {rate}: a dropout rate must lie in [0, 1)")
        return mapping

    @model_validator(mode="after")
    def _rates_resolve(self) -> Params:
        for name in self.variants:
            self.rates(name)
        return self

    @model_validator(mode="after")
    def _train_configs_resolve(self) -> Params:
        for name in self.variants:
            home = self.home_study(name)
            where = f"studies.{home}.{self.scale}" if home else "train"
            try:
                self.train_config(name)
            except ValidationError as exc:
                problem = describe(exc.errors()[0], MODEL_VARIANTS)
                raise ValueError(f"variants.{name}.train on top of {where}: {problem}") from None
            try:
                self.spec(name)
            except ValidationError as exc:
                problem = describe(exc.errors()[0], MODEL_VARIANTS)
                raise ValueError(f"{where}.spec applied to variants.{name}: {problem}") from None
        return self

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int]) -> list[int]:
        if (twice := first_repeated(seeds)) is not None:
            raise ValueError(f"seed {twice} appears more than once")
        return seeds

    @model_validator(mode="after")
    def _studies_name_variants(self) -> Params:
        for study, group in self.studies.items():
            unknown = [name for name in group.variants if name not in self.variants]
            if unknown:
                raise ValueError(f"studies.{study}.variants: {unknown[0]!r} is not in variants")
            if group.seeds > len(self.seeds):
                raise ValueError(f"studies.{study}.seeds = {group.seeds}, but the top-level seeds list has only "
                                 f"{len(self.seeds)}: add seeds to it")
            for scale in ("cpu", "paper"):
                published = group.scale(scale).dataset
                if published is not None and published not in DATASETS and published not in self.extra_datasets:
                    raise ValueError(f"studies.{study}.{scale}.dataset: unknown dataset {published!r}; allowed: "
                                     f"{', '.join([*DATASETS, *self.extra_datasets])}")
            for variant, twin in group.twins.items():
                for name in (variant, twin):
                    if name not in group.variants:
                        raise ValueError(f"studies.{study}.twins: {name!r} is not one of this study's variants")
                if any(self.rates(twin)):
                    raise ValueError(f"studies.{study}.twins.{variant}: {twin!r} has dropout; a twin has none")
            for scale in ("cpu", "paper"):
                strangers = [name for name in group.scale(scale).skip if name not in group.variants]
                if strangers:
                    raise ValueError(f"studies.{study}.{scale}.skip: {strangers[0]!r} is not one of this "
                                     "study's variants")
            for scale in ("cpu", "paper"):
                self._check_spec_keys(study, scale, group)
            if group.sweep is not None:
                self._check_sweep(study, group)
        homeless = [name for name in self.variants if self.home_study(name) is None]
        if homeless:
            raise ValueError(f"variants.{homeless[0]} is in no study: add it to one under studies "
                             "(a variant trains at its first study's scale settings)")
        return self

    def _check_spec_keys(self, study: str, scale: ScaleName, group: Study) -> None:
        """A study's spec key applies to the variants whose family has it; a key none has would do nothing."""
        families = {self.variants[name].model for name in group.variants}
        known = set().union(*(family_fields(family) for family in families))
        for key in group.scale(scale).spec:
            if key not in known:
                raise ValueError(f"studies.{study}.{scale}.spec.{key}: not an architecture field of this study's "
                                 f"variants ({', '.join(sorted(families))}); allowed: {', '.join(sorted(known))}")

    def _check_sweep(self, study: str, group: Study) -> None:
        sweep = group.sweep
        assert sweep is not None
        if sweep.select not in group.variants:
            raise ValueError(f"studies.{study}.sweep.select: {sweep.select!r} is not one of this study's variants")
        if self.variants[sweep.select].p != "dropout":
            raise ValueError(f"studies.{study}.sweep.select: {sweep.select!r} has p: {self.variants[sweep.select].p}; "
                             "the sweep trains only the variants whose p is 'dropout'")
        elsewhere = [name for name in group.variants if self.variants[name].p == "dropout"
                     and self.home_study(name) != study]
        if elsewhere:
            raise ValueError(f"studies.{study}.sweep: {elsewhere[0]!r} follows `dropout` but trains under "
                             f"{self.home_study(elsewhere[0])}, its first study; list it first in this one")

    def sweep_rates(self, variant: str) -> list[float] | None:
        """The rates a variant trains at when its home study sweeps and its rate follows `dropout`."""
        home = self.home_study(variant)
        sweep = self.studies[home].sweep if home else None
        return list(sweep.rates) if sweep is not None and self.variants[variant].p == "dropout" else None

    def seed_count(self, variant: str) -> int:
        """Seeds a variant trains under: the most any of its studies asks for (1 outside studies)."""
        return max([study.seeds for study in self.studies.values() if variant in study.variants], default=1)

    def skipped_at_scale(self, variant: str) -> str | None:
        """Why `variant` does not train at this scale (its home study skips it), or None."""
        scale = self.scale_of(variant)
        return scale.skip_reason if variant in scale.skip else None

    def trained_variants(self) -> list[str]:
        return [name for name in self.variants if self.skipped_at_scale(name) is None]

    def rate_key(self, variant: str) -> str:
        """The params key a variant's rates come from: its `p`, or its study's sweep when that sweeps it."""
        return f"studies.{self.home_study(variant)}.sweep" if self.sweep_rates(variant) else self.variants[variant].p

    def variant_runs(self, variant: str) -> list[Run]:
        """Every run of one variant: a seed each, or a seed each at every sweep rate."""
        rates = self.sweep_rates(variant) or [None]
        return [Run(variant=variant, seed=seed, p=self.rate_key(variant), rate=rate)
                for rate in rates for seed in self.seeds_of(variant)]

    def labels(self) -> list[str]:
        """What the statistics call the trained variants: each one, or each of its sweep rates."""
        return list(dict.fromkeys(run.label for name in self.trained_variants() for run in self.variant_runs(name)))

    def seeds_of(self, variant: str) -> list[int]:
        return self.seeds[:self.seed_count(variant)]

    def first_run(self, variant: str) -> Run:
        """The run every variant has (the first seed): what profile and analyze look at."""
        return Run(variant=variant, seed=self.seeds[0], p=self.variants[variant].p)

    def label_runs(self) -> dict[str, list[Run]]:
        """Every trained label's runs, in seed order."""
        grouped: dict[str, list[Run]] = {}
        for run in self.runs().values():
            grouped.setdefault(run.label, []).append(run)
        return grouped

    def runs(self) -> dict[str, Run]:
        """Every run to train, named `<label>-seed<seed>`."""
        return {f"{run.label}-seed{run.seed}": run
                for name in self.trained_variants() for run in self.variant_runs(name)}

    def rates(self, variant: str) -> list[float]:
        """The dropout rate(s) a variant's `p` points to, each checked to lie in [0, 1)."""
        ref = self.variants[variant].p
        if ref == "dropout":
            value: Any = self.dropout
        elif ref.startswith("fixed_p.") and ref.removeprefix("fixed_p.") in self.fixed_p:
            value = self.fixed_p[ref.removeprefix("fixed_p.")]
        else:
            choices = ", ".join(["dropout", *(f"fixed_p.{k}" for k in self.fixed_p)])
            raise ValueError(f"variants.{variant}.p: {ref!r} is not a rate key; allowed: {choices}")
        rates = [float(v) for v in (value if isinstance(value, list) else [value])]
        spec = self.variants[variant]
        sites = spec.dropout_sites()
        if len(rates) not in (1, sites):
            raise ValueError(
                f"variants.{variant}.p -> {ref} gives {len(rates)} rates; this {spec.model} "
                f"has {sites} dropout sites, so give 1 (for all) or {sites}"
            )
        unbuilt = spec.unbuilt_sites()
        if len(rates) == 1 and rates[0] > 0 and len(unbuilt) == sites:
            raise ValueError(f"variants.{variant}.p -> {ref} = {rates[0]}, but this {spec.model} builds no dropout "
                             f"({'; '.join(sorted(set(unbuilt.values())))}): use a rate of 0 or add dropout")
        for site, rate in enumerate(rates if len(rates) == sites else []):
            if rate > 0 and site in unbuilt:
                raise ValueError(f"variants.{variant}.p -> {ref} gives rate {rate} to dropout site {site + 1} of "
                                 f"{sites}, where this {spec.model} builds no dropout ({unbuilt[site]})")
        return rates

    def home_study(self, variant: str) -> str | None:
        """The first study listing `variant`: its scale settings are the variant's."""
        return next((name for name, study in self.studies.items() if variant in study.variants), None)

    def scale_of(self, variant: str) -> Scale:
        home = self.home_study(variant)
        return self.studies[home].scale(self.scale) if home else Scale()

    def train_config(self, variant: str) -> TrainConfig:
        """The top-level `train`, then the home study's settings at this scale, then the variant's own keys."""
        scaled = self.scale_of(variant).train.model_dump(exclude_none=True)
        override = self.variants[variant].train.model_dump(exclude_none=True)
        return TrainConfig.model_validate({**self.train.model_dump(), **scaled, **override})

    def spec(self, variant: str) -> VariantSpec:
        """The variant's spec with its home study's spec keys at this scale applied: each key to the
        variants whose family has that field (a ResNet's width, not its study's linear baseline's)."""
        spec = self.variants[variant]
        changes = {key: value for key, value in self.scale_of(variant).spec.items()
                   if key in family_fields(spec.model)}
        if not changes:
            return spec
        return _SPEC.validate_python({**spec.model_dump(), **changes})

    def sizes(self, variant: str) -> dict[str, int | None]:
        """How many images of each prepared split the variant uses at this scale (None: all)."""
        scale = self.scale_of(variant)
        return {"train": scale.train_images, "val": scale.val_images, "test": scale.test_images}

    def resolve(self, variant: str, rate: float | None = None) -> VariantConfig:
        """Everything a run of `variant` uses, resolved once: the stage passes this on whole. `rate`:
        one of its sweep rates, which it then trains at instead of its rate key's."""
        home = self.home_study(variant)
        return VariantConfig(name=variant, spec=self.spec(variant),
                             rates=self.rates(variant) if rate is None else [rate],
                             train=self.train_config(variant), sizes=self.sizes(variant),
                             split_seed=self.data.split_seed,
                             lr_keys=f"studies.{home}.{self.scale}.train.lr or variants.{variant}.train.lr", rate=rate,
                             rate_key=self.rate_key(variant))


@dataclass(frozen=True)
class VariantConfig:
    """One variant as its runs see it, nanoGPT-style: computed once by `Params.resolve` and
    handed whole to training, profiling and the benchmarks, which derive nothing themselves."""

    name: str
    spec: VariantSpec  # the variant's spec with its home study's spec keys at this scale applied
    rates: list[float]  # as params.yaml gives them: one for every dropout site, or one each
    train: TrainConfig  # top-level train, then the home study's scale, then the variant's own keys
    sizes: dict[str, int | None]  # images of each prepared split it uses (None: all)
    split_seed: int  # seeds the subsets, the same for every run
    lr_keys: str  # where its lr is set, named when the loss diverges
    rate: float | None = None  # the sweep rate it trains at, if its study sweeps
    rate_key: str = "dropout"  # the params key its rates come from (Params.rate_key)

    def run(self, seed: int) -> Run:
        return Run(variant=self.name, seed=seed, p=self.rate_key, rate=self.rate)


def parse_params(raw: Any, source: str = "params.yaml") -> Params:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of keys at the top level, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        lines = problem_lines(exc.errors(), Params, MODEL_VARIANTS)
        raise ConfigError(f"{source} is invalid:\n" + "\n".join(f"  {line}" for line in lines)) from None


def read_params(path: str | Path = "params.yaml") -> Any:
    """params.yaml as written (a missing file, a non-UTF-8 byte, a repeated key: one clear error)."""
    return read_yaml(path, ConfigError)


def load_params(path: str | Path = "params.yaml") -> Params:
    return parse_params(read_params(path), str(path))
