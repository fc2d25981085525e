"""params.yaml as one validated `Params`, and the one place a variant's settings are resolved."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field, field_validator, model_validator

from droplab.config.datasets import DatasetDecl, check_dataset, check_no_shadowing
from droplab.config.resolved import VariantConfig, check_warmup, layered
from droplab.config.settings import AnalysisConfig, DataConfig, Seed, TrainConfig
from droplab.config.studies import SCALES, Run, Scale, ScaleName, Study
from droplab.config.variants import VariantSpec, family_fields
from droplab.data.datasets import DATASETS, DatasetSpec
from droplab.schema import Strict, check_plain_name, distinct


def _one_or_more(value: Any) -> Any:
    """A rate key's value as a list: one rate (for every site) or one per dropout site."""
    return value if isinstance(value, list) else [value]


# read as a list, so a problem is named by its key and site, not by a union member ("fixed_p.x.float")
Rates = Annotated[list[float], BeforeValidator(_one_or_more)]


class Params(Strict):
    """params.yaml, validated whole before any stage does work: every key typed and bounded, every
    name it cross-references known, and every variant resolvable (`resolve`), so a typo fails with
    its key path here instead of as a traceback inside training."""

    scale: ScaleName = "cpu"
    seeds: list[Seed] = Field(min_length=1)
    dataset: str
    dropout: float = Field(ge=0, lt=1)
    fixed_p: dict[str, Rates] = {}
    data: DataConfig
    train: TrainConfig
    analysis: AnalysisConfig = AnalysisConfig()
    variants: dict[str, VariantSpec] = Field(min_length=1)
    studies: dict[str, Study] = {}
    extra_datasets: dict[str, DatasetDecl] = {}
    # variants the full config has and this one leaves out (`droplab tiny --keep`): a claim about
    # one of them is "not run"; a claim about a name in neither list is a typo
    skipped_variants: list[str] = []

    @field_validator("fixed_p", "variants", "extra_datasets", "studies", mode="before")
    @classmethod
    def _plain_names(cls, mapping: Any) -> Any:
        for name in mapping if isinstance(mapping, dict) else ():
            check_plain_name(str(name))
        return mapping

    @field_validator("fixed_p")
    @classmethod
    def _rates_in_range(cls, mapping: dict[str, list[float]]) -> dict[str, list[float]]:
        for name, value in mapping.items():
            for rate in value:
                if not 0.0 <= rate < 1.0:
                    raise ValueError(f"fixed_p.{name} = {rate}: a dropout rate must lie in [0, 1)")
        return mapping

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int]) -> list[int]:
        return distinct(seeds, "seed {} appears more than once")

    @field_validator("extra_datasets")
    @classmethod
    def _no_built_in_names(cls, extra: dict[str, DatasetDecl]) -> dict[str, DatasetDecl]:
        check_no_shadowing(extra)
        return extra

    @model_validator(mode="after")
    def _skipped_are_not_run(self) -> Params:
        both = sorted(set(self.skipped_variants) & set(self.variants))
        if both:
            raise ValueError(f"skipped_variants: {both[0]!r} is also in variants; list it in one place")
        return self

    @model_validator(mode="after")
    def _known_dataset(self) -> Params:
        check_dataset("dataset", self.dataset, self.extra_datasets)
        return self

    @model_validator(mode="after")
    def _rates_resolve(self) -> Params:
        for name in self.variants:
            self.rates(name)
        return self

    @model_validator(mode="after")
    def _variants_resolve(self) -> Params:
        for name in self.variants:
            self.resolve(name)
        return self

    @model_validator(mode="after")
    def _studies_name_known_variants(self) -> Params:
        for study, group in self.studies.items():
            unknown = [name for name in group.variants if name not in self.variants]
            if unknown:
                raise ValueError(f"studies.{study}.variants: {unknown[0]!r} is not in variants")
        return self

    @model_validator(mode="after")
    def _studies_have_their_seeds(self) -> Params:
        for study, group in self.studies.items():
            if group.seeds > len(self.seeds):
                raise ValueError(f"studies.{study}.seeds = {group.seeds}, but the top-level seeds list has only "
                                 f"{len(self.seeds)}: add seeds to it")
        return self

    @model_validator(mode="after")
    def _published_datasets_known(self) -> Params:
        for study, group in self.studies.items():
            for scale in SCALES:
                if (published := group.scale(scale).dataset) is not None:
                    check_dataset(f"studies.{study}.{scale}.dataset", published, self.extra_datasets)
        return self

    @model_validator(mode="after")
    def _twins_have_no_dropout(self) -> Params:
        for study, group in self.studies.items():
            for variant, twin in group.twins.items():
                if any(self.rates(twin)):
                    raise ValueError(f"studies.{study}.twins.{variant}: {twin!r} has dropout; a twin has none")
        return self

    @model_validator(mode="after")
    def _spec_keys_apply(self) -> Params:
        """A study's spec key applies to the variants whose family has it; a key none has would do nothing."""
        for study, group in self.studies.items():
            families = {self.variants[name].model for name in group.variants}
            known = set().union(*(family_fields(family) for family in families))
            for scale in SCALES:
                for key in group.scale(scale).spec:
                    if key not in known:
                        raise ValueError(f"studies.{study}.{scale}.spec.{key}: not an architecture field of this "
                                         f"study's variants ({', '.join(sorted(families))}); allowed: "
                                         f"{', '.join(sorted(known))}")
        return self

    @model_validator(mode="after")
    def _sweeps_train_their_followers(self) -> Params:
        for study, group in self.studies.items():
            if (sweep := group.sweep) is None:
                continue
            if (selected := self.variants[sweep.select].p) != "dropout":
                raise ValueError(f"studies.{study}.sweep.select: {sweep.select!r} has p: {selected}; "
                                 "the sweep trains only the variants whose p is 'dropout'")
            elsewhere = [name for name in group.variants if self.variants[name].p == "dropout"
                         and self.home_study(name) != study]
            if elsewhere:
                raise ValueError(f"studies.{study}.sweep: {elsewhere[0]!r} follows `dropout` but trains under "
                                 f"{self.home_study(elsewhere[0])}, its first study; list it first in this one")
        return self

    @model_validator(mode="after")
    def _every_variant_in_a_study(self) -> Params:
        homeless = [name for name in self.variants if self.home_study(name) is None]
        if homeless:
            raise ValueError(f"variants.{homeless[0]} is in no study: add it to one under studies "
                             "(a variant trains at its first study's scale settings)")
        return self

    @model_validator(mode="after")
    def _something_trains(self) -> Params:
        """A config that trains nothing would give dvc.yaml an empty `foreach:`, which DVC rejects."""
        if not self.trained_variants():
            raise ValueError(f"no variant trains at scale {self.scale}: every one is in its home study's "
                             f"{self.scale}.skip; keep at least one")
        return self

    def resolve(self, variant: str, rate: float | None = None) -> VariantConfig:
        """Everything a run of `variant` uses, resolved once, each setting from the most general
        layer to the most specific. `rate`: one of its sweep rates, trained at instead of its rate key's."""
        own, (scale, where) = self.variants[variant], self._home_scale(variant)
        # train: the top-level `train`, then its home study's at this scale, then the variant's own keys
        train = layered(TrainConfig, f"variants.{variant}.train on top of {where}", self.train.model_dump(),
                        scale.train.model_dump(exclude_none=True), own.train.model_dump(exclude_none=True))
        # spec: the variant's, then the home study's spec keys at this scale that its family has
        # (a ResNet's width, not its study's linear baseline's)
        spec = layered(type(own), f"{where}.spec applied to variants.{variant}", own.model_dump(),
                       {key: value for key, value in scale.spec.items() if key in family_fields(own.model)})
        check_warmup(train, [scale.train_images, self.data.train_limit], f"variants.{variant}.train on top of {where}")
        return VariantConfig(name=variant, spec=spec, train=train, sizes=scale.sizes(), split_seed=self.data.split_seed,
                             rates=self.rates(variant) if rate is None else [rate], rate=rate,
                             rate_key=self.rate_key(variant),
                             lr_keys=f"{where}.train.lr or variants.{variant}.train.lr")

    def rates(self, variant: str) -> list[float]:
        """The dropout rate(s) a variant's `p` points to, each checked against its dropout sites."""
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

    def _home_scale(self, variant: str) -> tuple[Scale, str]:
        """The home study's setting at this scale and its key (outside studies: none, under `train`)."""
        home = self.home_study(variant)
        return (self.studies[home].scale(self.scale), f"studies.{home}.{self.scale}") if home else (Scale(), "train")

    def sweep_rates(self, variant: str) -> list[float] | None:
        """The rates a variant trains at when its home study sweeps and its rate follows `dropout`."""
        home = self.home_study(variant)
        sweep = self.studies[home].sweep if home else None
        return list(sweep.rates) if sweep is not None and self.variants[variant].p == "dropout" else None

    def rate_key(self, variant: str) -> str:
        """The params key a variant's rates come from: its `p`, or its study's sweep when that sweeps it."""
        return f"studies.{self.home_study(variant)}.sweep" if self.sweep_rates(variant) else self.variants[variant].p

    def train_config(self, variant: str) -> TrainConfig:
        """`resolve(variant).train`."""
        return self.resolve(variant).train

    def spec(self, variant: str) -> VariantSpec:
        """`resolve(variant).spec`: the variant's spec as it trains at this scale."""
        return self.resolve(variant).spec

    def dataset_spec(self) -> DatasetSpec:
        if self.dataset in DATASETS:
            return DATASETS[self.dataset]
        return self.extra_datasets[self.dataset].spec(self.dataset)

    def skipped_at_scale(self, variant: str) -> str | None:
        """Why `variant` does not train at this scale (its home study skips it), or None."""
        scale, _ = self._home_scale(variant)
        return scale.skip_reason if variant in scale.skip else None

    def trained_variants(self) -> list[str]:
        return [name for name in self.variants if self.skipped_at_scale(name) is None]

    def seeds_of(self, variant: str) -> list[int]:
        """The seeds a variant trains under: as many as the most any of its studies asks for (1 outside studies)."""
        return self.seeds[:max([study.seeds for study in self.studies.values() if variant in study.variants],
                               default=1)]

    def variant_runs(self, variant: str) -> list[Run]:
        """Every run of one variant: a seed each, or a seed each at every sweep rate."""
        return [Run(variant=variant, seed=seed, rate_key=self.rate_key(variant), rate=rate)
                for rate in self.sweep_rates(variant) or [None] for seed in self.seeds_of(variant)]

    def first_run(self, variant: str) -> Run:
        """The run every variant has: its first seed, at its fixed rate."""
        return Run(variant=variant, seed=self.seeds[0], rate_key=self.variants[variant].p)

    def runs(self) -> dict[str, Run]:
        """Every run to train, named `<label>-seed<seed>`."""
        return {f"{run.label}-seed{run.seed}": run
                for name in self.trained_variants() for run in self.variant_runs(name)}

    def label_runs(self) -> dict[str, list[Run]]:
        """Every trained label's runs, in seed order."""
        grouped: dict[str, list[Run]] = {}
        for run in self.runs().values():
            grouped.setdefault(run.label, []).append(run)
        return grouped
