"""`pushgen demo`: the whole job end to end on embedded defaults, on one machine.

data (simulated world, a few videos held out as "new") -> the training pipeline through the kfp
local runner (caption, clean, label, SFT, ranker, evaluate, register) -> Feast online store ->
the three KServe ModelServers on 127.0.0.1 -> a push for each new video -> simulated feedback
from the world's truth -> drift report -> one pass of the production loop (drifted window, alert,
retraining of the blamed part, gate). Everything lands under `--out`.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the whole job end to end on embedded defaults",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("--out", default="runs/demo", help="output directory (default runs/demo)")
    p.add_argument("--videos", type=int, default=120, help="videos in the simulated world")
    p.add_argument("--new-videos", type=int, default=6, help="videos held out as new (no pushes)")
    p.add_argument("--sft-steps", type=int, default=40, help="LoRA SFT steps for the generator")
    p.add_argument("--reward-epochs", type=float, default=1.0, help="ranker training epochs")
    p.add_argument("--base-model", default="default", help="generator base model (HF id or path)")
    p.add_argument("--backbone", default="default", help="ranker/labeller encoder (HF id or path)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument(
        "--no-loop",
        dest="loop",
        action="store_false",
        help="skip the last stage, one pass of the production loop",
    )
    p.add_argument(
        "--record",
        action="store_true",
        help="write the stage times to docs/results/demo_timing.json (the estimate "
        "the next run announces)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pushgen.cli.demo import DemoConfig, run_demo

    cfg = DemoConfig(
        out=args.out,
        n_videos=args.videos,
        n_new_videos=args.new_videos,
        sft_steps=args.sft_steps,
        reward_epochs=args.reward_epochs,
        base_model=args.base_model,
        backbone=args.backbone,
        seed=args.seed,
        loop=args.loop,
        record=args.record,
    )
    run_demo(cfg)
    return 0
