"""`pushgen pipeline ...`: compile, run locally, or submit the Kubeflow training pipeline.

    pushgen pipeline compile --out pipeline.yaml [--image IMG] [--s3-secret NAME]
    pushgen pipeline run --local [--root runs/pipeline] [--param n_videos=30 ...]
    pushgen pipeline submit --host https://kfp.example.com [--experiment pushgen] [--dry-run]
    pushgen pipeline schedule --pipeline monitoring|training --cron "0 * * * *" --host URL [--dry-run]
    pushgen pipeline schedules --host URL [--delete ID]
    pushgen pipeline gate --generator DIR --ranker DIR --data DIR --store URI [--require-production]
    pushgen pipeline loop --data runs/demo/world --store runs/demo/pipeline/store   # one loop pass

Parameters are `name=value` pairs checked against the pipeline's own parameter list; values are
parsed as JSON when they can be (`sft_max_steps=8`, `categories=["Humor","Urgency"]`), else kept
as strings (`base_model=HuggingFaceTB/SmolLM2-1.7B-Instruct`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pushgen.core.errors import ConfigError

DEFAULT_EXPERIMENT = "pushgen"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `pipeline compile|run|submit` to the CLI."""
    p = subparsers.add_parser("pipeline", help="compile, run locally or submit the KFP pipeline")
    sub = p.add_subparsers(dest="pipeline_command", metavar="ACTION", required=True)

    c = sub.add_parser("compile", help="compile the training pipeline to KFP IR YAML")
    c.add_argument("--out", default="pipeline.yaml", help="where the YAML goes")
    _cluster_args(c)
    c.set_defaults(func=cmd_compile)

    r = sub.add_parser("run", help="run the whole pipeline on this machine (small defaults)")
    r.add_argument("--local", action="store_true", required=True, help="run here (kfp.local)")
    r.add_argument("--root", default="runs/pipeline", help="pipeline root: outputs and cache")
    r.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="pipeline parameter (repeatable)",
    )
    r.set_defaults(func=cmd_run)

    s = sub.add_parser("submit", help="submit a run to a Kubeflow Pipelines server")
    s.add_argument("--host", required=True, help="KFP API endpoint, e.g. https://kfp.example.com")
    s.add_argument("--experiment", default=DEFAULT_EXPERIMENT, help="experiment name")
    s.add_argument("--run-name", default=None, help="run display name (default: timestamped)")
    s.add_argument("--namespace", default=None, help="Kubeflow profile namespace (multi-user)")
    s.add_argument(
        "--package",
        default=None,
        help="a compiled YAML to submit (default: compile now with the options below)",
    )
    s.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="pipeline parameter (repeatable)",
    )
    s.add_argument("--dry-run", action="store_true", help="print the request, send nothing")
    _cluster_args(s)
    s.set_defaults(func=cmd_submit)
    _schedule_parsers(sub)
    _gate_parser(sub)
    _loop_parser(sub)


def _cluster_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--image",
        default=None,
        help="default project image for every step (a run can still override it)",
    )
    p.add_argument(
        "--s3-secret",
        default="",
        help="Kubernetes Secret holding AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
    )
    p.add_argument("--s3-endpoint", default="", help="S3 endpoint for the storage steps (MinIO)")
    p.add_argument(
        "--gpus", type=int, default=1, help="GPUs per node for each training step (0: CPU)"
    )
    p.add_argument(
        "--nodes",
        type=int,
        default=1,
        help="nodes for each training step; above one process in all a step runs as a TrainJob",
    )
    p.add_argument(
        "--trainjob-runtime",
        default="torch-distributed",
        help="Kubeflow Trainer runtime of the training TrainJobs",
    )
    p.add_argument(
        "--gpu-toleration",
        action="append",
        default=None,
        metavar="KEY[=VALUE]:EFFECT",
        help="GPU steps' toleration (repeatable; default as `pushgen deploy`'s)",
    )
    p.add_argument(
        "--feast-secret",
        default="",
        help="Secret with `connection` (Redis) for the publish-features step",
    )


def parse_params(pairs: list[str]) -> dict:
    """`["a=1", "b=x"]` -> `{"a": 1, "b": "x"}` (JSON values where they parse)."""
    params = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"bad --param {pair!r}: expected NAME=VALUE")
        try:
            params[name.strip()] = json.loads(value)
        except ValueError:
            params[name.strip()] = value
    return params


def _cluster_config(args: argparse.Namespace):
    from pipelines.training import ClusterConfig
    from serving.deploy.config import make_toleration

    if args.gpus < 0:
        raise ConfigError(f"--gpus must be >= 0, got {args.gpus}")
    if args.nodes < 1:
        raise ConfigError(f"--nodes must be at least 1, got {args.nodes}")
    cfg = ClusterConfig(
        sft_nodes=args.nodes,
        sft_gpus_per_node=args.gpus,
        reward_nodes=args.nodes,
        reward_gpus_per_node=args.gpus,
        trainjob_runtime=args.trainjob_runtime,
        s3_secret=args.s3_secret,
        s3_endpoint=args.s3_endpoint,
        feast_secret=args.feast_secret,
    )
    if args.gpu_toleration is not None:
        for text in args.gpu_toleration:
            make_toleration(text)  # a bad one: one line, exit 2, nothing compiled
        cfg.gpu_tolerations = tuple(args.gpu_toleration)
    return cfg


def _compile(args: argparse.Namespace, out: str | Path) -> Path:
    from pipelines.training import compile_pipeline

    return compile_pipeline(out, _cluster_config(args), image=args.image)


def cmd_compile(args: argparse.Namespace) -> int:
    path = _compile(args, args.out)
    print(f"compiled the training pipeline to {path}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from pipelines.training import run_local

    artifacts = run_local(parse_params(args.param), args.root)
    width = max((len(k) for k in artifacts), default=0)
    print(f"pipeline finished; {len(artifacts)} artifacts:")
    for name, path in artifacts.items():
        print(f"  {name:<{width}}  {path}")
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    import tempfile

    from pipelines.submit import build_submit_request, submit

    params = parse_params(args.param)
    with tempfile.TemporaryDirectory() as tmp:
        package = args.package or _compile(args, Path(tmp) / "pipeline.yaml")
        request = build_submit_request(package, params, args.experiment, args.run_name)
        if args.dry_run:
            body = request["run"].to_dict()
            print(
                json.dumps(
                    {
                        "host": args.host,
                        "experiment": request["experiment"],
                        "run": {k: body[k] for k in ("display_name", "runtime_config")},
                    },
                    indent=2,
                    default=str,
                )
            )
            return 0
        run = submit(args.host, package, params, request, args.namespace)
    print(f"submitted run {run.run_id} ({request['run_name']}) to {args.host}")
    return 0


# ----------------------------------------------------------------------------- schedules


def _schedule_parsers(sub: argparse._SubParsersAction) -> None:
    """`pipeline schedule` (create a recurring run) and `pipeline schedules` (list, delete)."""
    sc = sub.add_parser("schedule", help="create a recurring run (cron) of a pipeline")
    sc.add_argument("--pipeline", required=True, help="monitoring or training")
    sc.add_argument("--cron", required=True, help='cron, e.g. "0 * * * *" (hourly) or @daily')
    sc.add_argument("--host", required=True, help="KFP API endpoint")
    sc.add_argument("--experiment", default=DEFAULT_EXPERIMENT, help="experiment name")
    sc.add_argument("--name", default=None, help="schedule name (default: pushgen-<pipeline>)")
    sc.add_argument("--namespace", default=None, help="Kubeflow profile namespace (multi-user)")
    _cluster_args(sc)
    sc.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="run parameter"
    )
    sc.add_argument("--dry-run", action="store_true", help="print the request, send nothing")
    sc.set_defaults(func=cmd_schedule)

    ls = sub.add_parser("schedules", help="list the recurring runs on a server, or delete one")
    ls.add_argument("--host", required=True, help="KFP API endpoint")
    ls.add_argument("--namespace", default=None, help="Kubeflow profile namespace (multi-user)")
    ls.add_argument("--delete", default=None, metavar="ID", help="delete this recurring run")
    ls.set_defaults(func=cmd_schedules)


def cmd_schedule(args: argparse.Namespace) -> int:
    from pipelines.schedule import PIPELINES, compiled_request, create_schedule, normalise_cron

    if args.pipeline not in PIPELINES:
        raise ConfigError(f"unknown pipeline {args.pipeline!r}; known: {', '.join(PIPELINES)}")
    normalise_cron(args.cron)  # a bad cron fails before anything is compiled
    name = args.name or f"pushgen-{args.pipeline}"
    params = parse_params(args.param)
    cfg = _cluster_config(args)
    package, request, tmp = compiled_request(
        args.pipeline, args.cron, params, name, args.image, cfg
    )
    with tmp:
        if args.dry_run:
            from kfp_server_api import ApiClient

            # the JSON body the client sends (the experiment id is known only at send time)
            body = ApiClient().sanitize_for_serialization(request)
            print(json.dumps({"host": args.host, "experiment": args.experiment, **body}, indent=2))
            return 0
        made = create_schedule(args.host, package, request, args.experiment, args.namespace)
    print(f"scheduled {made.recurring_run_id} ({name}, cron {request.trigger.cron_schedule.cron})")
    return 0


def cmd_schedules(args: argparse.Namespace) -> int:
    from pipelines.schedule import delete_schedule, list_schedules

    if args.delete is not None:
        delete_schedule(args.host, args.delete, args.namespace)
        print(f"deleted schedule {args.delete}")
        return 0
    rows = list_schedules(args.host, args.namespace)
    if not rows:
        print(f"no schedules on {args.host}")
    for r in rows:
        print(f"{r['id']}  {r['name']:<28} {r['cron']:<18} {r['mode']:<8} {r['created_at']}")
    return 0


# ----------------------------------------------------------------------------- gate


def _gate_parser(sub: argparse._SubParsersAction) -> None:
    g = sub.add_parser(
        "gate",
        help="the quality gate by hand: a candidate vs a stored version "
        "(exit 0 promoted, 1 rejected, 2 bad input)",
    )
    g.add_argument("--generator", required=True, help="candidate generator dir")
    g.add_argument("--ranker", required=True, help="candidate ranker dir")
    g.add_argument("--data", required=True, help="data dir: pushes, ab_tests, world.json, videos")
    g.add_argument("--captions", default=None, help="captions table (default: text captions)")
    g.add_argument("--store", required=True, help="artifact store (local dir or s3://...)")
    g.add_argument("--production", default="latest", help="version to compare with")
    g.add_argument("--parts", default="both", help="generator, ranker or both")
    g.add_argument("--n-videos", type=int, default=12, help="held-out videos for the generator")
    g.add_argument("--encoder", default=None, help="labeller encoder (default: MiniLM)")
    g.add_argument(
        "--require-production",
        action="store_true",
        help="refuse (exit 2) when the store has no version (the pipeline promotes a first one)",
    )
    g.add_argument("--json", default=None, help="write the decision here")
    g.set_defaults(func=cmd_gate)


def cmd_gate(args: argparse.Namespace) -> int:
    import tempfile

    from pushgen.loop.gate import (
        GateConfig,
        GateInputs,
        decision_markdown,
        parse_parts,
        production_version,
        run_gate,
    )

    data = Path(args.data)
    for name in ("pushes.parquet", "ab_tests.parquet"):
        if not (data / name).is_file():
            raise ConfigError(f"--data {data}: no {name}")
    if args.n_videos < 1:
        raise ConfigError("--n-videos must be at least 1")
    if args.require_production and production_version(args.store, args.production) is None:
        raise ConfigError(
            f"no production version in {args.store} to compare with (in the pipeline the "
            "first version passes; --require-production refuses it)"
        )
    with tempfile.TemporaryDirectory() as tmp:
        captions = args.captions
        if captions is None:
            from pushgen.data.caption import TextCaptioner
            from pushgen.data.contracts import read_table, write_table

            videos = read_table(data / "videos.parquet", "videos")
            captions = str(write_table(TextCaptioner().caption_videos(videos), Path(tmp) / "c.pq"))
        world = data / "world.json"
        if not world.exists():
            world = Path(tmp) / "world.json"
            world.write_text("{}")
        inputs = GateInputs(
            generator_dir=args.generator,
            ranker_dir=args.ranker,
            captions=captions,
            pushes=str(data / "pushes.parquet"),
            ab_tests=str(data / "ab_tests.parquet"),
            world=str(world),
            store_uri=args.store,
            parts=parse_parts(args.parts),
            production=args.production,
        )
        decision = run_gate(inputs, GateConfig(n_videos=args.n_videos, encoder=args.encoder))
    print(decision_markdown(decision))
    if args.json:
        Path(args.json).write_text(json.dumps(decision, indent=2, default=str))
    return 0 if decision["promote"] else 1


# ----------------------------------------------------------------------------- loop


def _loop_parser(sub: argparse._SubParsersAction) -> None:
    lp = sub.add_parser(
        "loop", help="one local pass: drifted window -> alert -> retrain the blamed part -> gate"
    )
    lp.add_argument("--data", required=True, help="past data dir with world.json (simulated)")
    lp.add_argument("--store", required=True, help="artifact store with a production version")
    lp.add_argument("--out", default="runs/loop", help="window tables and pipeline root")
    lp.add_argument("--requests", type=int, default=240, help="requests per window")
    lp.add_argument("--base-model", default="default", help="generator base model")
    lp.add_argument("--backbone", default="default", help="ranker and labeller encoder")
    lp.add_argument("--reward-epochs", type=float, default=1.0, help="ranker retrain epochs")
    lp.set_defaults(func=cmd_loop)


def cmd_loop(args: argparse.Namespace) -> int:
    from pipelines.loop_pass import LoopConfig, run_loop_pass
    from pushgen.loop.gate import decision_markdown

    if args.requests < 30:
        raise ConfigError("--requests must be at least 30 (the monitor needs a window)")
    result = run_loop_pass(
        LoopConfig(
            data=args.data,
            store=args.store,
            out=args.out,
            n_requests=args.requests,
            base_model=args.base_model,
            backbone=args.backbone,
            reward_epochs=args.reward_epochs,
        )
    )
    print(f"alert: {json.dumps(result['alert'])}; blamed: {result['retrain_targets'] or 'none'}")
    if result["new_version"] is None:
        print(f"no retraining run; LATEST is {result['latest']}")
        return 0
    gate = result.get("gate") or {}
    print(f"retraining run: version {result['new_version']} ({gate.get('run_reason', '')})")
    if gate:
        print(decision_markdown(gate))
    print(f"status: {result.get('status')}; LATEST is now {result['latest']}")
    return 0
