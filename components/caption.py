"""KFP component: caption every video (the text the generator writes pushes from).

`captioner="text"` (default) runs the offline text captioner (title + description + ASR, every
entity kept); any other value is a Hugging Face image-text-to-text model id or path run on the
video frames (GPU when the step has one). Rows failing the `videos` contract or with unreadable
frames go to `rejected` with a reason. The work is `pushgen.data.caption` (tested directly).
"""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from components import COMPONENT_DEFAULTS


@dsl.component(**COMPONENT_DEFAULTS)
def caption(
    videos: Input[Dataset],
    captions: Output[Dataset],
    rejected: Output[Dataset],
    metrics: Output[Metrics],
    captioner: str = "text",
    batch_size: int = 4,
    max_frames: int = 4,
):
    """Write the `captions` table for `videos` with the chosen captioner.

    Args:
        videos: the videos table (video_id, title, description, asr, frames).
        captioner: "text" (title + ASR, no model), or a vision-language model id or path.
        batch_size: videos per model call (VLM captioners).
        max_frames: frames per video the VLM sees.
    """
    from pushgen.core.run_report import log_metrics
    from pushgen.data.caption import VLMCaptionConfig, make_captioner
    from pushgen.data.contracts import read_table, write_table

    table = read_table(videos.path, "videos")
    model = make_captioner(
        captioner, VLMCaptionConfig(batch_size=batch_size, max_frames=max_frames)
    )
    out, bad = model.caption_with_rejects(table)
    write_table(out, captions.path)
    write_table(bad.assign(step="caption"), rejected.path)  # written even when empty: a KFP output
    captions.metadata.update({"rows": len(out), "captioner": model.captioner_id})
    log_metrics(
        metrics,
        {
            "videos_in": len(table),
            "captioned": len(out),
            "rejected": len(bad),
            "mean_caption_chars": float(out["caption"].str.len().mean() or 0.0),
        },
    )
