"""`pushgen ingest|caption|clean|label|features`: the data steps, one subcommand each.

    pushgen ingest --format upworthy upworthy.csv --out runs/uw/data

    pushgen caption --videos runs/sim/videos.parquet --out runs/x/captions.parquet
    pushgen clean --pushes runs/sim/pushes.parquet --videos runs/sim/videos.parquet \\
        --out runs/x/cleaned.parquet [--weighting literal|none]
    pushgen label --pushes runs/x/cleaned.parquet --out runs/x/labelled.parquet
    pushgen features apply --dir runs/x/features --videos V --captions C [--pushes P]
    pushgen features materialize --dir runs/x/features
    pushgen features get --dir runs/x/features v000001

Rows a step cannot use are written next to its output as `<out stem>.rejected.parquet`, with a
`reject_reason`; the step's report is `<out stem>.report.json`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pushgen.core.errors import ConfigError
from pushgen.core.settings import add_options, in_cli_terms, options_from
from pushgen.data.clean import CleanConfig

# CleanConfig fields that are `clean` options (--field-name; the quantiles are one --quantiles)
CLEAN_OPTIONS = ("weighting", "cluster_by", "min_ctr", "max_svr", "min_lvtr", "max_htr", "min_pv")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ingest, caption, clean, label and features subcommands."""
    _register_ingest(sub)
    _register_caption(sub)
    _register_clean(sub)
    _register_label(sub)
    _register_features(sub)


def _side_paths(out: str) -> tuple[Path, Path]:
    out_path = Path(out)
    stem = out_path.name.removesuffix(".parquet")
    return out_path.with_name(f"{stem}.rejected.parquet"), out_path.with_name(f"{stem}.report.json")


def _write_outputs(out: str, table, rejected, report: dict, step: str) -> None:
    from pushgen.data.contracts import write_table

    write_table(table, out)
    rejected_path, report_path = _side_paths(out)
    if len(rejected):
        write_table(rejected.assign(step=step), rejected_path)
    elif rejected_path.exists():
        rejected_path.unlink()  # a stale file from an earlier run would mislead
    report_path.write_text(json.dumps(report, indent=2, default=str))
    print(f"wrote {len(table)} rows to {out}; {len(rejected)} set aside", end="")
    print(f" in {rejected_path}" if len(rejected) else "", end="")
    print(f"; report {report_path}")


# --- ingest ---


def _register_ingest(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ingest",
        help="read a history (contract tables, or an Upworthy-layout A/B file) into the contracts",
        description="Write videos/pushes/ab_tests.parquet (and rejected.parquet, with a reason "
        "per row set aside) from a directory of contract tables or, with --format upworthy, one "
        "parquet/CSV file of A/B arms in the Upworthy Research Archive layout.",
    )
    p.add_argument("path", help="a directory/s3:// prefix of tables, or an Upworthy-layout file")
    p.add_argument("--out", required=True, help="directory to write the contract tables to")
    p.add_argument(
        "--format",
        choices=["tables", "upworthy"],
        default="tables",
        help="tables: videos/pushes/ab_tests files; upworthy: one row per A/B arm",
    )
    p.set_defaults(func=run_ingest)


def run_ingest(args: argparse.Namespace) -> int:
    from pushgen.data.ingest import load_source
    from pushgen.data.upworthy import ingest_upworthy

    if args.format == "upworthy":
        if Path(args.path).is_dir() or Path(args.path).suffix not in (".parquet", ".csv"):
            raise ConfigError(f"--format upworthy needs one .parquet or .csv file, got {args.path}")
        report = ingest_upworthy(args.path, args.out)
    else:
        if not args.path.startswith("s3://") and not Path(args.path).is_dir():
            raise ConfigError(f"--format tables needs a directory or s3:// prefix, got {args.path}")
        report = load_source(args.path, args.out)
    rows = ", ".join(f"{n} {k}" for k, n in report["rows"].items())
    aside = sum(report["rejected"].values())
    print(f"wrote {rows} to {args.out}; {aside} rows set aside in {args.out}/rejected.parquet")
    return 0


# --- caption ---


def _register_caption(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "caption",
        help="write a dense caption per video (text default, or a vision-language model)",
        description="Caption videos from title/description/ASR (default) or with any HF "
        "image-text-to-text model on their frames.",
    )
    p.add_argument("--videos", required=True, help="videos table (parquet/csv/jsonl)")
    p.add_argument("--out", required=True, help="captions parquet to write")
    p.add_argument("--model", default="text", help="'text' (default) or an HF VLM id or path")
    p.add_argument("--batch-size", type=int, default=4, help="videos per VLM generate call")
    p.add_argument("--max-frames", type=int, default=4, help="frames per video for the VLM")
    p.set_defaults(func=run_caption)


def run_caption(args: argparse.Namespace) -> int:
    from pushgen.data.caption import VLMCaptionConfig, make_captioner
    from pushgen.data.contracts import read_table

    videos = read_table(args.videos, "videos")
    captioner = make_captioner(
        args.model, VLMCaptionConfig(batch_size=args.batch_size, max_frames=args.max_frames)
    )
    captions, rejected = captioner.caption_with_rejects(videos)
    report = {
        "videos_in": len(videos),
        "captioned": len(captions),
        "rejected": len(rejected),
        "captioner": captioner.captioner_id,
    }
    _write_outputs(args.out, captions, rejected, report, "caption")
    return 0


# --- clean ---


def _register_clean(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "clean",
        help="hard-filter, cluster-crop and confidence-weight a push history",
        description="PushGen cleaning: CTR>0.6%% & SVR<40%% & LVTR>50%% & HTR<1%% & PV>800, "
        "per-cluster CTR quantile crop, confidence weight.",
    )
    p.add_argument("--pushes", required=True, help="pushes table")
    p.add_argument("--out", required=True, help="cleaned pushes parquet to write")
    p.add_argument("--videos", help="videos table (topics for clusters, known video ids)")
    p.add_argument("--captions", help="captions table (topic column, or embedding clusters)")
    add_options(p, CleanConfig(), CLEAN_OPTIONS)
    default = CleanConfig()
    p.add_argument(
        "--quantiles",
        type=float,
        nargs=2,
        default=(default.quantile_low, default.quantile_high),
        metavar=("LOW", "HIGH"),
        help="per-cluster CTR quantiles kept",
    )
    p.set_defaults(func=run_clean)


def run_clean(args: argparse.Namespace) -> int:
    from pushgen.data.clean import clean_pushes
    from pushgen.data.contracts import read_table

    try:
        cfg = CleanConfig(
            **options_from(args, CLEAN_OPTIONS),
            quantile_low=args.quantiles[0],
            quantile_high=args.quantiles[1],
        )
    except ConfigError as exc:
        raise in_cli_terms(exc, CLEAN_OPTIONS) from None
    pushes = read_table(args.pushes, "pushes")
    videos = read_table(args.videos, "videos") if args.videos else None
    captions = read_table(args.captions, "captions") if args.captions else None
    result = clean_pushes(pushes, cfg, videos=videos, captions=captions)
    r = result.report
    print(
        f"in {r['rows_in']}: invalid {r['rejected_invalid']}, hard filter {r['removed_hard']}, "
        f"soft filter {r['removed_soft']}, kept {r['rows_out']}"
    )
    _write_outputs(args.out, result.cleaned, result.removed, r, "clean")
    return 0


# --- label ---


def _register_label(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "label",
        help="give each push one style category",
        description="Label pushes with a style category: zero-shot encoder (default) or a frozen LM.",
    )
    p.add_argument("--pushes", required=True, help="pushes table (usually the cleaned one)")
    p.add_argument("--out", required=True, help="labelled parquet to write")
    p.add_argument(
        "--labeller",
        choices=["embedding", "llm"],
        default="embedding",
        help="zero-shot encoder (default) or frozen causal LM",
    )
    p.add_argument(
        "--model", default="default", help="encoder (embedding) or causal LM (llm): HF id or path"
    )
    p.add_argument("--categories", nargs="+", help="category names (default: the built-in 8)")
    p.set_defaults(func=run_label)


def run_label(args: argparse.Namespace) -> int:
    from pushgen.data.contracts import read_table
    from pushgen.data.label import (
        distribution_table,
        label_report,
        label_with_rejects,
        make_labeller,
    )

    labeller = make_labeller(args.labeller, args.categories, args.model)
    labelled, rejected = label_with_rejects(read_table(args.pushes), labeller)
    report = label_report(labelled, labeller.categories)
    print(distribution_table(report))
    _write_outputs(args.out, labelled, rejected, report, "label")
    return 0


# --- features ---


def _register_features(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "features",
        help="Feast feature store of a run: apply, materialize, get",
        description="Write feature data and apply the Feast repo (apply), load the online store "
        "(materialize), or read a video's online features (get).",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = actions.add_parser("apply", help="write feature data into --dir and register the repo")
    a.add_argument("--dir", required=True, help="run feature directory (a Feast repo copy)")
    a.add_argument("--videos", required=True, help="videos table")
    a.add_argument("--captions", required=True, help="captions table")
    a.add_argument("--pushes", help="pushes table (labelled or not) for the history stats")
    a.add_argument("--materialize", action="store_true", help="also load the online store")
    a.set_defaults(func=run_features_apply)
    m = actions.add_parser("materialize", help="load every feature row into the online store")
    m.add_argument("--dir", required=True, help="run feature directory")
    m.set_defaults(func=run_features_materialize)
    g = actions.add_parser("get", help="print the online features of some videos (JSON)")
    g.add_argument("--dir", required=True, help="run feature directory")
    g.add_argument("video_ids", nargs="+", help="video ids")
    g.set_defaults(func=run_features_get)


def run_features_apply(args: argparse.Namespace) -> int:
    from pushgen.data.contracts import read_table
    from pushgen.features.feast_store import apply_repo, materialize, write_feature_data

    written = write_feature_data(
        args.dir,
        read_table(args.videos, "videos"),
        read_table(args.captions, "captions"),
        read_table(args.pushes, "pushes") if args.pushes else None,
    )
    store = apply_repo(args.dir)
    print(f"applied the Feast repo in {args.dir}: {written['counts']}")
    if len(written["rejected"]):
        rejected_path = Path(args.dir) / "rejected.parquet"
        from pushgen.data.contracts import write_table

        write_table(written["rejected"].assign(step="features"), rejected_path)
        print(f"{len(written['rejected'])} rows set aside in {rejected_path}")
    if args.materialize:
        print(f"materialised {materialize(store)}")
    return 0


def run_features_materialize(args: argparse.Namespace) -> int:
    from pushgen.features.feast_store import materialize

    print(f"materialised {materialize(args.dir)} into the online store of {args.dir}")
    return 0


def run_features_get(args: argparse.Namespace) -> int:
    from pushgen.features.feast_store import get_online_video_features

    print(json.dumps(get_online_video_features(args.dir, args.video_ids), indent=2, default=str))
    return 0
