"""One source per training setting: the config dataclasses' defaults and help reach the CLI, the
KFP components and the pipelines unchanged (pushgen/core/settings.py)."""

import argparse
import dataclasses
import inspect
import re
from typing import Literal

import pytest

from components.clean import clean
from components.reward import reward
from components.sft import sft
from components.simulate import simulate_or_ingest
from pipelines.monitoring import monitoring_pipeline
from pipelines.training import training_pipeline
from pushgen.cli.commands import data as data_cli
from pushgen.cli.commands import generator as generator_cli
from pushgen.cli.commands import ranker as ranker_cli
from pushgen.cli.commands import simulate as simulate_cli
from pushgen.cli.main import build_parser, main
from pushgen.core.errors import ConfigError
from pushgen.core.settings import add_options, component_defaults, in_cli_terms, options_from
from pushgen.data.clean import CleanConfig
from pushgen.data.simulator import SimConfig
from pushgen.generator.config import GeneratorTrainConfig
from pushgen.ranker.config import RankerTrainConfig
from pushgen.ranker.recipe import RankerRecipeConfig

RECIPE = RankerRecipeConfig()
GENERATOR = GeneratorTrainConfig()
RANKER_ARGV = ["train-ranker", "--ab-tests", "ab.parquet", "--out", "out"]
GENERATOR_ARGV = ["train-generator", "--sim", "sim", "--out", "out"]
CLEAN_ARGV = ["clean", "--pushes", "pushes.parquet", "--out", "out.parquet"]
SIMULATE_ARGV = ["simulate", "--out", "sim"]

# (config, field, {layer: name there}) for every setting exposed in more than one layer; layers:
# "cli" (the option's dest), "component", "pipeline" (training), "monitoring" (its pipeline)
RANKER_SETTINGS = [
    (
        RECIPE.train,
        "batch_size",
        {
            "cli": "batch_size",
            "component": "batch_size",
            "pipeline": "reward_batch_size",
            "monitoring": "reward_batch_size",
        },
    ),
    (
        RECIPE.train,
        "epochs",
        {
            "cli": "epochs",
            "component": "epochs",
            "pipeline": "reward_epochs",
            "monitoring": "reward_epochs",
        },
    ),
    (RECIPE.train, "use_caption", {"component": "use_caption", "pipeline": "reward_use_caption"}),
    (RECIPE.train, "head", {"cli": "head", "component": "head"}),
    (RECIPE.train, "pool_layers", {"cli": "pool_layers", "component": "pool_layers"}),
    (RECIPE.train, "listwise_loss", {"cli": "listwise_loss", "component": "listwise_loss"}),
    (RECIPE.train, "learning_rate", {"cli": "learning_rate", "component": "learning_rate"}),
    (RECIPE.train, "seed", {"cli": "seed", "component": "seed"}),
    (RECIPE.pairs, "max_p_value", {"cli": "max_p_value", "component": "max_p_value"}),
    (RECIPE.split, "val_fraction", {"cli": "val_fraction", "component": "val_fraction"}),
    (RECIPE, "pointwise", {"cli": "pointwise", "component": "pointwise"}),
]
GENERATOR_SETTINGS = [
    (
        GENERATOR,
        "base_model",
        {
            "cli": "base_model",
            "component": "base_model",
            "pipeline": "base_model",
            "monitoring": "base_model",
        },
    ),
    (
        GENERATOR,
        "max_steps",
        {
            "cli": "max_steps",
            "component": "max_steps",
            "pipeline": "sft_max_steps",
            "monitoring": "sft_max_steps",
        },
    ),
    (
        GENERATOR,
        "batch_size",
        {"cli": "batch_size", "component": "batch_size", "pipeline": "sft_batch_size"},
    ),
    (GENERATOR, "learning_rate", {"cli": "learning_rate", "component": "learning_rate"}),
    (GENERATOR, "lora_r", {"cli": "lora_r", "component": "lora_r"}),
    (GENERATOR, "val_fraction", {"cli": "val_fraction", "component": "val_fraction"}),
    (GENERATOR, "max_length", {"cli": "max_length", "component": "max_length"}),
    (GENERATOR, "seed", {"cli": "seed", "component": "seed"}),
    (GENERATOR.template, "order", {"cli": "order", "component": "prompt_order"}),
]

CLEAN = CleanConfig()
CLEAN_SETTINGS = [
    (CLEAN, "weighting", {"cli": "weighting", "component": "weighting"}),
    *[(CLEAN, name, {"cli": name}) for name in data_cli.CLEAN_OPTIONS],
]
# the simulate component's n_videos (200) is the pipeline's small world, not SimConfig's 1000
SIMULATE_SETTINGS = [(SimConfig(), name, {"cli": name}) for name in simulate_cli.OPTIONS]


def _layer_defaults(argv: list[str], component) -> dict:
    """{layer: {name: default}} as each layer ships it (the compiled specs for KFP)."""

    def spec(c) -> dict:
        return {name: i.default for name, i in c.component_spec.inputs.items()}

    return {
        "cli": vars(build_parser().parse_args(argv)),
        "component": spec(component),
        "pipeline": spec(training_pipeline),
        "monitoring": spec(monitoring_pipeline),
    }


@pytest.mark.parametrize(
    "settings, argv, component",
    [
        (RANKER_SETTINGS, RANKER_ARGV, reward),
        (GENERATOR_SETTINGS, GENERATOR_ARGV, sft),
        (CLEAN_SETTINGS, CLEAN_ARGV, clean),
        (SIMULATE_SETTINGS, SIMULATE_ARGV, simulate_or_ingest),
    ],
    ids=["ranker", "generator", "clean", "simulate"],
)
def test_every_layer_has_the_dataclass_default(settings, argv, component):
    layers = _layer_defaults(argv, component)
    for config, field, names in settings:
        expected = getattr(config, field)
        for layer, name in names.items():
            got = layers[layer][name]
            assert got == expected, f"{field}: {layer} {name}={got!r}, dataclass {expected!r}"
            if layer == "cli":  # the option parses to the field's type
                assert type(got) is type(expected), f"{field}: {type(got)}"


@pytest.mark.parametrize(
    "settings, component, prefix",
    [
        (RANKER_SETTINGS, reward, "reward_"),
        (GENERATOR_SETTINGS, sft, "sft_"),
        (CLEAN_SETTINGS, clean, "clean_"),
    ],
    ids=["ranker", "generator", "clean"],
)
def test_every_shared_setting_is_in_the_table(settings, component, prefix):
    """A new setting in a component's keyword-only part or in the pipeline needs a row above."""
    listed = {
        layer: {n[layer] for *_, n in settings if layer in n} for layer in ("component", "pipeline")
    }
    params = inspect.signature(component.python_func).parameters.values()
    kwonly = {p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert kwonly <= listed["component"]
    in_pipeline = {n for n in training_pipeline.component_spec.inputs if n.startswith(prefix)}
    assert in_pipeline <= listed["pipeline"]


@pytest.mark.parametrize(
    "argv, options",
    [
        (
            RANKER_ARGV,
            [
                (RECIPE.train, ranker_cli.TRAIN_OPTIONS),
                (RECIPE.pairs, ranker_cli.PAIR_OPTIONS),
                (RECIPE.split, ["val_fraction"]),
                (RECIPE, ranker_cli.RECIPE_OPTIONS),
            ],
        ),
        (
            GENERATOR_ARGV,
            [(GENERATOR, generator_cli.TRAIN_OPTIONS), (GENERATOR.template, ["order"])],
        ),
        (CLEAN_ARGV, [(CLEAN, data_cli.CLEAN_OPTIONS)]),
        (SIMULATE_ARGV, [(SimConfig(), simulate_cli.OPTIONS)]),
    ],
    ids=["train-ranker", "train-generator", "clean", "simulate"],
)
def test_help_shows_the_dataclass_help_and_default(argv, options, capsys):
    with pytest.raises(SystemExit):
        main([argv[0], "--help"])
    shown = re.sub(r"\s+", "", capsys.readouterr().out)  # argparse wraps lines (and at hyphens)
    for config, names in options:
        fields = {f.name: f for f in dataclasses.fields(config)}
        for name in names:
            assert re.sub(r"\s+", "", fields[name].metadata["help"]) in shown, name
            default = getattr(config, name)
            if not (default is None or default is False):
                assert f"(default:{default})" in shown, name


def test_bad_values_are_reported_under_their_flags(capsys):
    assert main([*RANKER_ARGV, "--batch-size", "0"]) == 2
    assert "--batch-size" in capsys.readouterr().err
    assert main([*RANKER_ARGV, "--lr", "0"]) == 2
    assert "--lr must be positive" in capsys.readouterr().err.replace("and --lr", "--lr")
    assert main([*RANKER_ARGV, "--val-fraction", "1"]) == 2
    assert "--val-fraction must be in (0, 1), got 1.0" in capsys.readouterr().err
    assert main([*GENERATOR_ARGV, "--val-fraction", "1"]) == 2
    assert "--val-fraction must be in [0, 1), got 1.0" in capsys.readouterr().err
    assert main([*CLEAN_ARGV, "--min-ctr", "2"]) == 2
    assert "--min-ctr is a rate and must lie in [0, 1], got 2.0" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="batch_size"):
        RankerTrainConfig(batch_size=0)


@dataclasses.dataclass
class _Toy:
    rate: float = dataclasses.field(default=0.5, metadata={"help": "how fast, in %"})
    mode: Literal["a", "b"] = dataclasses.field(default="a", metadata={"help": "which"})
    pick: str = dataclasses.field(default="x", metadata={"choices": ("x", "y")})
    limit: int | None = dataclasses.field(default=None, metadata={"help": "cap"})
    loud: bool = dataclasses.field(default=False, metadata={"help": "say more"})
    steps: int = 3

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ConfigError(f"rate must be positive, got {self.rate}")


def test_add_options_reads_type_default_choices_and_help_from_the_fields(capsys):
    parser = argparse.ArgumentParser(prog="toy")
    add_options(
        parser,
        _Toy(steps=4),
        {"rate": "--lr", "mode": None, "pick": None, "limit": None, "loud": None, "steps": None},
    )
    args = parser.parse_args([])
    assert (args.rate, args.mode, args.pick, args.limit, args.loud, args.steps) == (
        0.5,
        "a",
        "x",
        None,
        False,
        4,
    )
    args = parser.parse_args(["--lr", "2", "--mode", "b", "--limit", "7", "--loud"])
    assert (args.rate, args.mode, args.limit, args.loud) == (2.0, "b", 7, True)
    assert _Toy(**options_from(args, ("rate", "mode"))) == _Toy(rate=2.0, mode="b")
    for bad in (["--mode", "c"], ["--pick", "z"], ["--limit", "x"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)
    capsys.readouterr()
    help_text = re.sub(r"\s+", " ", parser.format_help())
    assert "--lr LR how fast, in % (default: 0.5)" in help_text
    assert "--loud say more" in help_text and "--limit LIMIT cap" in help_text
    with pytest.raises(ConfigError) as err:
        _Toy(rate=0)
    assert str(in_cli_terms(err.value, ["rate"], {"rate": "--lr"})) == (
        "--lr must be positive, got 0"
    )


def test_component_defaults_fills_keyword_only_parameters():
    @component_defaults(_Toy(steps=9), other=1)
    def step(a: int, b: int = 2, *, steps: int, rate: float, other: int, mode: str = "own"):
        return a, b, steps, rate, other, mode

    assert step(0) == (0, 2, 9, 0.5, 1, "own")
    assert str(inspect.signature(step)).endswith(
        "steps: int = 9, rate: float = 0.5, other: int = 1, mode: str = 'own')"
    )
    with pytest.raises(TypeError, match="nope"):
        component_defaults(_Toy())(lambda *, nope: nope)
