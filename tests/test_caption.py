"""Captioning: the text captioner keeps every entity, the VLM captioner runs a real (tiny)
image-text-to-text model on frames, bad rows are set aside, the CLI writes the captions table."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pushgen.core.errors import DataContractError
from pushgen.data.caption import (
    TEXT_CAPTIONER_ID,
    TextCaptionConfig,
    TextCaptioner,
    VLMCaptionConfig,
    VLMCaptioner,
    extract_entities,
)


def test_text_caption_keeps_every_entity_of_the_simulated_videos(sim):
    captions = TextCaptioner().caption_videos(sim.videos)
    assert list(captions.columns[:4]) == ["video_id", "caption", "captioner", "created_at"]
    assert len(captions) == len(sim.videos) and (captions["captioner"] == TEXT_CAPTIONER_ID).all()
    truth = sim.world.videos.set_index("video_id")
    for vid, caption in zip(captions["video_id"], captions["caption"], strict=True):
        v = truth.loc[vid]
        assert v["name"] in caption and v["place"] in caption and str(v["number"]) in caption


def test_entities_survive_a_tight_budget_and_repeats_are_dropped():
    captioner = TextCaptioner(TextCaptionConfig(max_chars=40))
    caption = captioner.caption_one(
        "Maria Lopez bakes sourdough in Lisbon",
        "Maria Lopez bakes sourdough in Lisbon. It took 12 hours and 3 ovens at Padaria Sol.",
        "hello from Porto, we used 450 grams of flour",
    )
    assert caption.count("Maria Lopez bakes sourdough in Lisbon") == 1
    for entity in ("Maria Lopez", "Lisbon", "12", "3", "Padaria Sol", "Porto", "450"):
        assert entity in caption
    assert caption.startswith("Maria Lopez bakes sourdough in Lisbon.")
    # deterministic: the same video always gets the same caption
    assert caption == captioner.caption_one(
        "Maria Lopez bakes sourdough in Lisbon",
        "Maria Lopez bakes sourdough in Lisbon. It took 12 hours and 3 ovens at Padaria Sol.",
        "hello from Porto, we used 450 grams of flour",
    )


def test_extract_entities_skips_sentence_openers():
    text = "The Beatles played 3 songs in New York. Watch Maria Lopez win 1,200 dollars! I'm Kofi"
    assert extract_entities(text) == ["Beatles", "3", "New York", "Maria Lopez", "1,200", "Kofi"]


def test_bad_video_rows_are_rejected_with_reasons(sim):
    videos = sim.videos.head(5).copy()
    videos.loc[videos.index[0], "title"] = "  "
    videos.loc[videos.index[1], "description"] = np.nan  # optional text: fine
    videos.loc[videos.index[2], "asr_text"] = None
    videos.loc[videos.index[3], "video_id"] = videos["video_id"].iloc[4]  # duplicate id
    captions, rejected = TextCaptioner().caption_with_rejects(videos)
    assert len(captions) + len(rejected) == 5
    assert sorted(rejected["reject_reason"]) == ["duplicate video_id", "missing title"]
    with pytest.raises(DataContractError, match="missing column"):
        TextCaptioner().caption_videos(videos.drop(columns="asr_text"))
    with pytest.raises(DataContractError, match="no rows"):
        TextCaptioner().caption_videos(videos.iloc[:0])


# --- a tiny LLaVA built from configs: proves the VLM code path, not caption quality ---------------


def build_tiny_llava(out_dir) -> str:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    words = "describe this video densely for a push notification writer who what where numbers"
    vocab = {
        w: i for i, w in enumerate(["<pad>", "<s>", "</s>", "<unk>", "<image>", *words.split()])
    }
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        extra_special_tokens={"image_token": "<image>"},
    )
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16}
    )
    template = (
        "{% for m in messages %}{% for c in m['content'] %}"
        "{% if c['type'] == 'image' %}<image> {% else %}{{ c['text'] }}{% endif %}"
        "{% endfor %}{% endfor %}{% if add_generation_prompt %} </s>{% endif %}"
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=8,
        vision_feature_select_strategy="default",
        chat_template=template,
        num_additional_image_tokens=1,  # the CLS token CLIP prepends (dropped by "default")
    )
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=16,
            patch_size=8,
        ),
        text_config=LlamaConfig(
            vocab_size=len(vocab),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=2,
        ),
        image_token_id=vocab["<image>"],
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    LlavaForConditionalGeneration(config).save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return str(out_dir)


@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory) -> str:
    return build_tiny_llava(tmp_path_factory.mktemp("tiny_llava"))


@pytest.fixture()
def videos_with_frames(sim, tmp_path) -> pd.DataFrame:
    from PIL import Image

    videos = sim.videos.head(4).copy().reset_index(drop=True)
    frames = []
    for i in range(3):
        paths = []
        for k in range(5):  # more frames than max_frames: the captioner samples them evenly
            path = tmp_path / f"f{i}_{k}.png"
            Image.fromarray(np.full((20, 24, 3), 40 * k + i, dtype=np.uint8)).save(path)
            paths.append(str(path))
        frames.append(paths)
    frames.append([])  # no frames: the text caption stands in
    videos["frames"] = frames
    return videos


def test_vlm_captioner_runs_a_tiny_model_on_frames(tiny_vlm, videos_with_frames, tmp_path):
    captioner = VLMCaptioner(
        tiny_vlm, VLMCaptionConfig(batch_size=2, max_frames=2, max_new_tokens=6)
    )
    captions, rejected = captioner.caption_with_rejects(videos_with_frames)
    assert rejected.empty and len(captions) == 4
    assert (captions["captioner"] == tiny_vlm).all()
    for title, caption in zip(videos_with_frames["title"], captions["caption"], strict=True):
        # whatever the random model says, the video's entities are in the caption
        for entity in extract_entities(title):
            assert entity in caption
    frameless = TextCaptioner().caption_one(
        *videos_with_frames.loc[3, ["title", "description", "asr_text"]]
    )
    assert captions["caption"].iloc[3] == frameless
    raw = captioner.generate([r for r in videos_with_frames.head(2).itertuples(index=False)])
    assert len(raw) == 2 and all(isinstance(t, str) for t in raw)

    # an unreadable frame file rejects that video, with the path in the reason
    broken = videos_with_frames.copy()
    bad = tmp_path / "broken.png"
    bad.write_text("not an image")
    broken.at[0, "frames"] = [str(bad)]
    captions, rejected = captioner.caption_with_rejects(broken)
    assert len(captions) == 3 and rejected["reject_reason"].iloc[0].startswith("unreadable frame")


def test_cli_caption(sim_dir, tmp_path, capsys):
    from pushgen.cli.main import main

    out = tmp_path / "captions.parquet"
    assert main(["caption", "--videos", str(sim_dir / "videos.parquet"), "--out", str(out)]) == 0
    captions = pd.read_parquet(out)
    report = json.loads((tmp_path / "captions.report.json").read_text())
    assert (
        len(captions) == report["captioned"] == 120
        and not (tmp_path / "captions.rejected.parquet").exists()
    )

    bad = tmp_path / "videos.csv"
    pd.DataFrame({"video_id": ["v1"], "title": ["x"]}).to_csv(bad, index=False)
    assert main(["caption", "--videos", str(bad), "--out", str(out)]) == 2
    assert "missing column(s)" in capsys.readouterr().err
    assert (
        main(
            [
                "caption",
                "--videos",
                str(sim_dir / "videos.parquet"),
                "--out",
                str(out),
                "--model",
                str(tmp_path / "no-such-model"),
            ]
        )
        == 2
    )
    assert "cannot load image-text-to-text model" in capsys.readouterr().err
