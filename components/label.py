"""KFP component: give every cleaned push one style category (the generator's control token).

`labeller="embedding"` (default) is the zero-shot MiniLM labeller (`backbone` picks another
sentence encoder); `labeller="llm"` prompts a frozen causal LM (`backbone`: its HF id or path).
`categories` must all be known (or the step fails at start). Metrics: the category distribution
(the paper's Table 2), accuracy against the simulator's `true_category` when present, and pushes
whose video has no caption (SFT cannot use them).
"""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from components import COMPONENT_DEFAULTS


@dsl.component(**COMPONENT_DEFAULTS)
def label(
    pushes: Input[Dataset],
    captions: Input[Dataset],
    labelled: Output[Dataset],
    rejected: Output[Dataset],
    metrics: Output[Metrics],
    categories: list = [],  # noqa: B006 (KFP reads the default; empty = the default list)
    labeller: str = "embedding",
    backbone: str = "default",
):
    """Label `pushes` with one of `categories`.

    Args:
        pushes: the cleaned pushes.
        captions: captions, the context a frozen-LLM labeller reads.
        categories: the style categories; empty means the default list.
        labeller: "embedding" (zero-shot by sentence-embedding similarity) or "llm".
        backbone: the labeller's encoder or LLM, any Hugging Face id or path; "default" is the
            packaged all-MiniLM-L6-v2.
    """
    from pushgen.core.run_report import log_metrics
    from pushgen.data.contracts import read_table, write_table
    from pushgen.data.label import label_metrics, label_report, label_with_rejects, make_labeller

    model = make_labeller(labeller, list(categories) or None, backbone)  # fails fast on bad names
    table = read_table(pushes.path)
    out, bad = label_with_rejects(table, model)
    write_table(out, labelled.path)
    write_table(bad.assign(step="label"), rejected.path)
    report = label_report(out, model.categories)
    caption_ids = set(read_table(captions.path, "captions")["video_id"])
    report["pushes_without_caption"] = int((~out["video_id"].isin(caption_ids)).sum())
    report["rejected"] = len(bad)
    labelled.metadata.update({"rows": len(out), "labeller": labeller, "backbone": backbone})
    log_metrics(metrics, label_metrics(report))
