"""The push generator: category-controlled prompts, LoRA SFT, batched generation and its guard.

- `prompts`: the prompt template (task + category + caption, in either order) and its tokenisation.
- `sft`: LoRA supervised fine-tuning with per-sample confidence weights (`train_generator`).
- `generate`: `CandidateGenerator`, one batched `generate` call for all categories of a caption.
- `guard`: `check_candidate`, rejects invented entities/numbers and over-long pushes.
- `evaluate`: controllability, style mix, beat-baseline rate and diversity on the simulator.

Submodules are imported on use, so `import pushgen.generator.guard` stays free of torch.

Layer 2 (beside `pushgen.ranker`): may import `pushgen.core`, `pushgen.data` and `pushgen.features`.
"""
