"""`pushgen serve`, `pushgen push` and `pushgen manifests`: the KServe side of pushgen.

pushgen serve --models runs/demo/models --feature-repo runs/demo/feature_repo   # Ctrl-C stops
pushgen push --video-id v00042 [--url http://127.0.0.1:8080]
pushgen manifests [--check]     # the example in serving/manifests/ (`pushgen deploy` for a cluster)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from pushgen.core.models import DTYPES


def register(sub: argparse._SubParsersAction) -> None:
    """Add the serving subcommands."""
    p = sub.add_parser(
        "serve", help="start generator, ranker and transformer as local KServe ModelServers"
    )
    p.add_argument(
        "--models", required=True, help="directory or s3:// URI holding generator/ and ranker/"
    )
    p.add_argument("--feature-repo", default=None, help="Feast repo for video_id lookups")
    p.add_argument("--host", default="127.0.0.1", help="interface all three bind to")
    p.add_argument("--port", type=int, default=8080, help="transformer (user-facing) port")
    p.add_argument("--generator-port", type=int, default=8081)
    p.add_argument("--ranker-port", type=int, default=8082)
    p.add_argument("--log-dir", default="runs/serving", help="serving log and server output")
    p.add_argument(
        "--model-root",
        default=None,
        help="local model paths must lie inside this (default: --models)",
    )
    p.add_argument(
        "--degrade-without-ranker",
        action="store_true",
        help="if the ranker is down, serve the first guarded candidate (flagged) instead of 503",
    )
    p.add_argument("--no-ranker-batching", action="store_true", help="turn dynamic batching off")
    p.add_argument("--max-new-tokens", type=int, default=24, help="generator length budget")
    p.add_argument(
        "--dtype",
        default="auto",
        choices=DTYPES,
        help="auto: bf16 where the hardware has bf16 units (CUDA, CPU AMX), else fp32",
    )
    p.set_defaults(func=_serve)

    p = sub.add_parser("push", help="ask a running pushgen server for a push, as a user would")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--video-id", help="video to write a push for (looked up in Feast)")
    group.add_argument("--caption", help="write a push for this caption instead")
    p.add_argument("--url", default="http://127.0.0.1:8080", help="pushgen transformer base URL")
    p.add_argument("--categories", nargs="+", default=None, help="styles to try (default: all)")
    p.add_argument("--json", action="store_true", help="print the full JSON answer")
    p.set_defaults(func=_push)

    p = sub.add_parser(
        "manifests", help="write (or --check) the KServe manifests in serving/manifests"
    )
    p.add_argument("--out", default=None, help="directory (default: serving/manifests)")
    p.add_argument(
        "--storage-uri",
        default=None,
        help="<store>/versions/<v> the example pins (default: the checked-in example)",
    )
    p.add_argument("--check", action="store_true", help="exit 2 if the checked-in files are stale")
    p.set_defaults(func=_manifests)


def _serve(args: argparse.Namespace) -> int:
    import signal
    import threading

    from serving.stack import LocalStack, StackConfig, StackPorts

    config = StackConfig(
        host=args.host,
        ports=StackPorts(args.port, args.generator_port, args.ranker_port),
        log_dir=Path(args.log_dir),
        model_root=Path(args.model_root) if args.model_root else None,
        degrade_without_ranker=args.degrade_without_ranker,
        ranker_batching=not args.no_ranker_batching,
        max_new_tokens=args.max_new_tokens,
        dtype=args.dtype,
    )
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    print(
        "starting generator, ranker and transformer (model loading takes a while) ...",
        file=sys.stderr,
    )
    with LocalStack(args.models, args.feature_repo, config=config) as stack:
        print(
            f"pushgen is serving at {stack.url}/v1/models/pushgen:predict "
            f"(generator {stack.generator_url}, ranker {stack.ranker_url}); Ctrl-C stops"
        )
        try:
            done.wait()
        except KeyboardInterrupt:
            pass
    return 0


def _push(args: argparse.Namespace) -> int:
    from serving.stack import push_for_video

    fields = {"categories": args.categories} if args.categories else {}
    if args.caption is not None:
        fields["caption"] = args.caption
    answer = (
        push_for_video(args.url, args.video_id, **fields)
        if args.video_id
        else _push_caption(args.url, fields)
    )
    if args.json:
        print(json.dumps(answer, indent=2, ensure_ascii=False))
    elif answer["text"] is None:
        print(f"no push: {answer['reason']}")
    else:
        score = "n/a" if answer["score"] is None else f"{answer['score']:.3f}"
        flag = " (degraded: ranker unavailable)" if answer["degraded"] else ""
        print(f"[{answer['category']}] {answer['text']}  score={score}{flag}")
    return 0


def _push_caption(url: str, fields: dict) -> dict:
    import httpx

    from pushgen.core.errors import PushgenError

    key = os.environ.get("PUSHGEN_API_KEY")  # see serving/README.md, Auth
    try:
        resp = httpx.post(
            f"{url.rstrip('/')}/v1/models/pushgen:predict",
            json={"instances": [fields]},
            timeout=120,
            headers={"Authorization": f"Bearer {key}"} if key else None,
        )
    except httpx.HTTPError as exc:
        raise PushgenError(f"cannot reach the pushgen server at {url}: {exc!r}") from None
    if resp.status_code != 200:
        raise PushgenError(f"the server answered {resp.status_code}: {resp.text[:300]}")
    return resp.json()["predictions"][0]


def _manifests(args: argparse.Namespace) -> int:
    from pushgen.core.errors import PushgenError
    from serving.deploy import MANIFEST_DIR, ManifestConfig, stale_manifests, write_manifests

    out = Path(args.out) if args.out else MANIFEST_DIR
    cfg = ManifestConfig(version_uri=args.storage_uri) if args.storage_uri else ManifestConfig()
    if args.check:
        stale = stale_manifests(out, cfg)
        if stale:
            raise PushgenError(
                f"stale manifests in {out}: {stale}; run `pushgen manifests` to regenerate"
            )
        print(f"manifests in {out} are up to date")
        return 0
    for path in write_manifests(out, cfg):
        print(path)
    return 0
