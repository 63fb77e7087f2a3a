"""KFP component: category-controlled LoRA SFT of the push generator.

Inputs: the labelled, cleaned pushes (video_id, text, category, confidence) and the captions
(video_id, caption). It joins them, fine-tunes LoRA adapters on `task + category + caption ->
push` with the loss on push tokens weighted by confidence, holds out videos for validation, and
writes the generator directory (adapter safetensors, tokenizer, prompt template, categories,
`metrics.json`, `split.json`), the rows it set aside with their reasons, and the loss figures as
Metrics. The work is `pushgen.generator.sft` (plain functions, tested directly).
"""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components import COMPONENT_DEFAULTS
from pushgen.core.settings import component_defaults
from pushgen.generator.config import GeneratorTrainConfig

TRAIN = GeneratorTrainConfig()  # the defaults of the settings after `*` below


@dsl.component(**COMPONENT_DEFAULTS)
@component_defaults(TRAIN, prompt_order=TRAIN.template.order)
def sft(
    labelled: Input[Dataset],
    captions: Input[Dataset],
    generator: Output[Model],
    rejected: Output[Dataset],
    metrics: Output[Metrics],
    categories: list = [],  # noqa: B006 (KFP reads the default; empty = categories in the data)
    carry_from: str = "",
    weighting: str = "data",
    nodes: int = 1,
    gpus_per_node: int = 1,
    trainjob_runtime: str = "torch-distributed",
    trainjob_image: str = "",
    store_uri: str = "",
    *,
    prompt_order: str,
    base_model: str,
    max_steps: int,
    batch_size: int,
    learning_rate: float,
    lora_r: int,
    val_fraction: float,
    max_length: int,
    seed: int,
):
    """Fine-tune the generator; `base_model` is any HF causal LM id/path or "default";
    `weighting` "none" trains every push at weight 1 (the data's confidence otherwise).

    With `carry_from` (a release URI, from the `plan` step) nothing is trained: that release's
    generator and its recorded figures are carried over (a ranker-only retrain).

    The settings after `*` take their defaults from `GeneratorTrainConfig` (one source with the
    CLI and the pipeline).

    Args:
        labelled: labelled, weighted pushes (the clean and label steps).
        captions: each video's caption, as read back through Feast by the materialize step.
        base_model: the causal LM, any Hugging Face id or path; "default" is the packaged
            SmolLM2-135M-Instruct.
        categories: control categories; empty means those found in the data.
        max_steps: optimiser steps.
        batch_size: samples per step.
        learning_rate: the LoRA adapters' learning rate.
        lora_r: LoRA rank (alpha is 2 * r).
        prompt_order: "category_first" or "caption_first" in the prompt.
        val_fraction: share of videos held out for the validation loss.
        max_length: prompt + push tokens; longer rows are set aside, not cut.
        seed: data split, adapter initialisation and data order.
        carry_from: a release URI to carry the generator over from; "" trains.
        weighting: "data" (each push's confidence) or "none" (every push at weight 1).
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

        log_metrics(metrics, carry_over(carry_from, "generator", generator.path))
        write_table(pd.DataFrame({"reject_reason": pd.Series(dtype=str)}), rejected.path)
        generator.metadata.update({"carried_from": carry_from})
        return
    from pushgen.core.errors import ConfigError
    from pushgen.core.run_report import log_metrics
    from pushgen.generator.config import GeneratorTrainConfig
    from pushgen.generator.prompts import PromptTemplate
    from pushgen.generator.sft import train_from_files

    if weighting not in ("data", "none"):
        raise ConfigError(f"weighting must be 'data' or 'none', got {weighting!r}")
    cfg = GeneratorTrainConfig(
        base_model=base_model,
        template=PromptTemplate(order=prompt_order),
        categories=list(categories) or None,
        lora_r=lora_r,
        lora_alpha=2 * lora_r,  # keep the effective LoRA scale alpha / r fixed across ranks
        learning_rate=learning_rate,
        max_steps=max_steps,
        batch_size=batch_size,
        val_fraction=val_fraction,
        max_length=max_length,
        seed=seed,
        weight_column="" if weighting == "none" else "confidence",
    )
    from pushgen.core.trainjob import TrainJobSettings

    settings = TrainJobSettings(
        nodes=nodes, gpus_per_node=gpus_per_node, runtime=trainjob_runtime, image=trainjob_image
    )
    if settings.distributed:  # several GPUs: a TrainJob trains, the result comes via the store
        from components.trainjob import params_of, train_in_trainjob

        figures = train_in_trainjob(
            "generator",
            settings,
            store_uri,
            {"labelled": labelled.path, "captions": captions.path},
            params_of(cfg),
            {"model": generator.path, "rejected": rejected.path},
        )
    else:
        figures = train_from_files(labelled.path, captions.path, generator.path, rejected.path, cfg)
    generator.metadata.update(
        {"framework": "peft-lora", "base_model": base_model, "prompt_order": prompt_order}
    )
    log_metrics(metrics, figures)
