"""KFP component: the pairwise reward model (ranker) trained on A/B tests.

Input: an `ab_tests` table (or the Upworthy archive). It splits tests by story, builds pairs
from arms of the same test (label: the arm with the higher CTR; pairs with p > `max_p_value` set
aside), fine-tunes the cross-encoder on both orders of every pair, and writes the model directory
(safetensors, tokenizer, `ranker_config.json`, `split.json`), the pairs and arms set aside with
their reasons, and the validation figures as Metrics. The work is
`pushgen.ranker.recipe.train_from_ab_tests` (plain functions, tested directly).
"""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components import COMPONENT_DEFAULTS
from pushgen.core.settings import component_defaults
from pushgen.ranker.recipe import RankerRecipeConfig

RECIPE = RankerRecipeConfig()  # the defaults of the settings after `*` below


@dsl.component(**COMPONENT_DEFAULTS)
@component_defaults(RECIPE.train, RECIPE.pairs, RECIPE.split, RECIPE)
def reward(
    ab_tests: Input[Dataset],
    ranker: Output[Model],
    rejected: Output[Dataset],
    metrics: Output[Metrics],
    backbone: str = "default",
    head_learning_rate: float = 0.0,
    carry_from: str = "",
    captions: Input[Dataset] = None,
    nodes: int = 1,
    gpus_per_node: int = 1,
    trainjob_runtime: str = "torch-distributed",
    trainjob_image: str = "",
    store_uri: str = "",
    *,
    head: str,
    pool_layers: int,
    listwise_loss: str,
    epochs: float,
    batch_size: int,
    learning_rate: float,
    max_p_value: float,
    val_fraction: float,
    pointwise: bool,
    seed: int,
    use_caption: bool,
):
    """Train the ranker on `ab_tests`; `backbone` is any HF encoder id/path or "default", `head`
    "segment_diff" (score(a) - score(b), pooled over the last `pool_layers` layers) or "cls" (the
    [CLS] classifier) or "listwise" (all arms of a test in one pass, trained with `listwise_loss`
    "pairwise" or "plackett_luce"); `head_learning_rate` 0 means the same rate as the encoder. With
    `carry_from` (a release URI, from the `plan` step) that release's ranker is carried over.
    With `use_caption`, each pair carries its video's caption from `captions` (the materialize
    step's `ab_captions`, read through Feast) as a context segment.

    The settings after `*` take their defaults from `RankerRecipeConfig` (one source with the
    CLI and the pipeline).

    Args:
        ab_tests: A/B arms (test_id, video_id, push_id, text, pv, clicks).
        backbone: the encoder, any Hugging Face id or path; "default" is the packaged
            all-MiniLM-L6-v2.
        head: "segment_diff", "cls" or "listwise".
        pool_layers: segment_diff: mean of the last N layers before pooling.
        listwise_loss: listwise head: "pairwise" or "plackett_luce".
        epochs: passes over the training pairs (or tests).
        batch_size: pairs (or tests) per step.
        learning_rate: the encoder's learning rate.
        head_learning_rate: the fresh head's rate; 0 means the encoder's.
        max_p_value: keep training pairs whose z-test p-value is at most this.
        val_fraction: share of stories held out for validation.
        pointwise: also train the pointwise baseline for comparison.
        seed: split, initialisation and data order.
        carry_from: a release URI to carry the ranker over from; "" trains.
        captions: the videos' captions (the materialize step's `ab_captions`).
        use_caption: train with the caption as each pair's context segment.
        nodes: training nodes; above one process in all (nodes x gpus_per_node) the step runs
            a Kubeflow Trainer TrainJob on `trainjob_runtime` and waits for it.
        gpus_per_node: GPUs (torchrun processes) per node.
        trainjob_runtime: the ClusterTrainingRuntime of the TrainJob (torch-distributed).
        trainjob_image: the TrainJob's image (the pipeline's `image`).
        store_uri: the artifact store the TrainJob's inputs and outputs pass through.
    """
    if carry_from:
        import pandas as pd

        from pushgen.core.run_report import log_metrics
        from pushgen.data.contracts import write_table
        from pushgen.loop.carry import carry_over

        log_metrics(metrics, carry_over(carry_from, "ranker", ranker.path))
        write_table(pd.DataFrame({"reject_reason": pd.Series(dtype=str)}), rejected.path)
        ranker.metadata.update({"carried_from": carry_from})
        return
    from pathlib import Path

    from pushgen.core.errors import ConfigError
    from pushgen.core.run_report import log_metrics
    from pushgen.data.contracts import write_table
    from pushgen.ranker.config import RankerTrainConfig
    from pushgen.ranker.pairs import PairConfig, StorySplitConfig
    from pushgen.ranker.recipe import (
        RankerRecipeConfig,
        headline_figures,
        read_ab_tests,
        set_aside_table,
        train_from_ab_tests,
    )

    if use_caption and captions is None:
        raise ConfigError("use_caption needs the captions input (the materialize step's)")
    cfg = RankerRecipeConfig(
        pairs=PairConfig(max_p_value=max_p_value),
        split=StorySplitConfig(val_fraction=val_fraction, seed=seed),
        train=RankerTrainConfig(
            backbone=None if backbone in ("", "default") else backbone,
            head=head,
            pool_layers=pool_layers,
            listwise_loss=listwise_loss,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            head_learning_rate=head_learning_rate or None,
            use_caption=use_caption,
            seed=seed,
        ),
        pointwise=pointwise,
    )
    from pushgen.core.trainjob import TrainJobSettings

    settings = TrainJobSettings(
        nodes=nodes, gpus_per_node=gpus_per_node, runtime=trainjob_runtime, image=trainjob_image
    )
    if settings.distributed:  # several GPUs: a TrainJob trains, the result comes via the store
        from components.trainjob import params_of, train_in_trainjob

        inputs = {"ab_tests": ab_tests.path}
        if use_caption:
            inputs["captions"] = captions.path
        figures = train_in_trainjob(
            "ranker",
            settings,
            store_uri,
            inputs,
            params_of(cfg),
            {"model": ranker.path, "rejected": rejected.path},
        )
        ranker.metadata.update({"framework": "transformers", "kind": "pairwise-cross-encoder"})
        log_metrics(metrics, figures)
        return
    out = Path(ranker.path)
    source = read_ab_tests(ab_tests.path, captions=captions.path if use_caption else None)
    result = train_from_ab_tests(source, out, cfg)

    # Arms and pairs set aside, in one table, always written so downstream reads never fail.
    write_table(set_aside_table(out), rejected.path)
    ranker.metadata.update({"framework": "transformers", "kind": "pairwise-cross-encoder"})
    log_metrics(metrics, headline_figures(result))
