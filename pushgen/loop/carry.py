"""Retrain one part, carry the other over: which parts a run trains, and the copy of the rest.

A monitoring alert names the part to retrain (generator, ranker or both). The training
pipeline's `plan` step turns that into, per part, either "" (train it) or the URI of the
production version to carry it over from; the SFT and reward steps then copy that version's
model (verified by hash) and its recorded metrics instead of training.

    plan = plan_parts("ranker", "s3://models/pushgen")
    # {"generator_from": "s3://models/pushgen/versions/v3", "ranker_from": ""}
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from pushgen.core.errors import ConfigError
from pushgen.core.store import VERSIONS, ArtifactStore
from pushgen.loop.gate import PARTS, parse_parts, production_version


def plan_parts(retrain_part: str, store_uri: str) -> dict[str, str]:
    """{"<part>_from": version URI to carry over, or "" to train} for the generator and ranker."""
    parts = parse_parts(retrain_part)
    plan = {f"{p}_from": "" for p in PARTS}
    carried = [p for p in PARTS if p not in parts]
    if not carried:
        return plan
    prod = production_version(store_uri)
    if prod is None:
        raise ConfigError(
            f"cannot carry over the {' and '.join(carried)}: no production version in "
            f"{store_uri}; retrain both"
        )
    for p in carried:
        plan[f"{p}_from"] = prod["uri"]
    return plan


def split_version_uri(uri: str) -> tuple[str, str]:
    """`<store>/versions/<v>` -> (store URI, version)."""
    root, sep, version = str(uri).rstrip("/").rpartition(f"/{VERSIONS}/")
    if not sep or not version or "/" in version:
        raise ConfigError(f"not a release URI (<store>/versions/<version>): {uri!r}")
    return root, version


def carry_over(version_uri: str, part: str, out_dir: str | Path) -> dict[str, float]:
    """Copy `part` of the release at `version_uri` into `out_dir`; returns its recorded metrics
    (the `<part>.` figures of the release, prefix dropped) plus `carried_over` = 1."""
    if part not in PARTS:
        raise ConfigError(f"unknown part {part!r}; known: {', '.join(PARTS)}")
    root, version = split_version_uri(version_uri)
    store = ArtifactStore.from_uri(root)
    manifest = store.resolve(version)
    out = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="pushgen-carry-") as tmp:
        store.fetch(version, tmp, names=[part])
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(Path(tmp) / part, out)
    figures = {
        k.split(".", 1)[1]: float(v)
        for k, v in manifest.get("metrics", {}).items()
        if k.startswith(f"{part}.") and isinstance(v, int | float)
    }
    return {**figures, "carried_over": 1.0}


def retrain_request(summary: dict) -> dict[str, str]:
    """{"part", "reason"} for the training run a monitoring summary asks for.

    `retrain_targets` (the parts the alert blames) picks the part: one of them, or "both" when
    both (or, defensively, none) are named; the reason names the signals that fired.
    """
    targets = [t for t in summary.get("retrain_targets", []) if t in PARTS]
    part = targets[0] if len(set(targets)) == 1 else "both"
    fired = [s for s in ("style_collapse", "reward_drift", "input_drift") if summary.get(s) is True]
    why = summary.get("reason") or summary.get("retrain_reason") or ""
    reason = f"monitoring alert: {', '.join(fired) or 'retrain'}; retrain {part}"
    if summary.get("blamed"):
        reason += f" (blamed: {summary['blamed']})"
    if why:
        reason += f"; {why}"
    return {"part": part, "reason": reason}
