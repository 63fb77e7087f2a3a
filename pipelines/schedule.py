"""Recurring runs of the pushgen pipelines on a Kubeflow Pipelines server (cron schedules).

    pushgen pipeline schedule --pipeline monitoring --cron "0 * * * *" --host URL --dry-run
    pushgen pipeline schedule --pipeline training --cron "0 3 * * 0" --host URL   # weekly
    pushgen pipeline schedules --host URL [--delete ID]

`build_recurring_run` makes the request offline (checked cron, checked parameters, the compiled
spec), so `--dry-run` prints exactly the body `kfp.Client.create_recurring_run` sends. KFP's
scheduler reads cron with a seconds field first (robfig/cron, 6 fields); a standard 5-field
expression gets `0` seconds put in front. `@hourly`-style descriptors pass through.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from pushgen.core.errors import ConfigError, PushgenError

PIPELINES = ("monitoring", "training")
# (name, low, high, names) per field of a 6-field robfig cron expression
_FIELDS = (
    ("seconds", 0, 59, ()),
    ("minutes", 0, 59, ()),
    ("hours", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, tuple("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split())),
    ("day of week", 0, 6, tuple("SUN MON TUE WED THU FRI SAT".split())),
)
_DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_EVERY = re.compile(r"^@every\s+(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")


def normalise_cron(expr: str) -> str:
    """The 6-field (seconds first) form KFP's scheduler reads; a bad expression is a ConfigError
    that names the field at fault."""
    text = " ".join(str(expr).split())
    if text in _DESCRIPTORS or _EVERY.match(text):
        return text
    fields = text.split(" ") if text else []
    if len(fields) == 5:
        fields = ["0", *fields]
    if len(fields) != 6:
        raise ConfigError(
            f"bad cron {expr!r}: expected 5 fields (min hour day month weekday), "
            f"6 with seconds first, or a descriptor like @hourly; got {len(fields)}"
        )
    for value, (name, low, high, names) in zip(fields, _FIELDS, strict=True):
        for part in value.split(","):
            _check_part(expr, part, name, low, high, names)
    return " ".join(fields)


def _check_part(expr: str, part: str, name: str, low: int, high: int, names: tuple) -> None:
    span, _, step = part.partition("/")
    if step and (not step.isdigit() or int(step) < 1):
        raise ConfigError(f"bad cron {expr!r}: step {step!r} in the {name} field")
    if span in ("*", "?") and (span == "*" or name in ("day of month", "day of week")):
        return
    bounds = span.split("-")
    if len(bounds) > 2 or not all(bounds):
        raise ConfigError(f"bad cron {expr!r}: {part!r} in the {name} field")
    numbers = []
    for b in bounds:
        if b.upper() in names:
            numbers.append(low + names.index(b.upper()))
        elif b.isdigit() and low <= int(b) <= high:
            numbers.append(int(b))
        else:
            raise ConfigError(
                f"bad cron {expr!r}: {b!r} in the {name} field (allowed {low}-{high})"
            )
    if len(numbers) == 2 and numbers[0] > numbers[1]:
        raise ConfigError(f"bad cron {expr!r}: range {span!r} runs backwards ({name})")


def compile_named(pipeline: str, out: str | Path, image: str | None = None, cfg=None) -> Path:
    """Compile the `monitoring` or `training` pipeline to `out` (`cfg`: a `ClusterConfig`)."""
    if pipeline == "training":
        from pipelines.training import compile_pipeline

        return compile_pipeline(out, cfg, image=image)
    if pipeline == "monitoring":
        from pipelines.monitoring import compile_pipeline

        return compile_pipeline(out, cfg, image=image)
    raise ConfigError(f"unknown pipeline {pipeline!r}; known: {', '.join(PIPELINES)}")


def build_recurring_run(
    package_path: str | Path,
    cron: str,
    params: dict,
    name: str,
    description: str = "",
    max_concurrency: int = 1,
):
    """The `V2beta1RecurringRun` a schedule creates, built offline (experiment id set at send)."""
    from kfp_server_api import (
        RecurringRunMode,
        V2beta1CronSchedule,
        V2beta1RecurringRun,
        V2beta1Trigger,
    )

    from pipelines.submit import build_submit_request

    cron6 = normalise_cron(cron)
    if max_concurrency < 1:
        raise ConfigError(f"--max-concurrency must be >= 1, got {max_concurrency}")
    run = build_submit_request(package_path, params, "schedule", run_name=name)["run"]
    return V2beta1RecurringRun(
        display_name=name,
        description=description or None,
        pipeline_spec=run.pipeline_spec,
        runtime_config=run.runtime_config,
        trigger=V2beta1Trigger(cron_schedule=V2beta1CronSchedule(cron=cron6)),
        mode=RecurringRunMode.ENABLE,
        max_concurrency=max_concurrency,
        # a paused schedule starts again from now, not with a backlog of missed windows
        no_catchup=True,
    )


def _client(host: str, namespace: str | None):
    import kfp

    return kfp.Client(host=host, namespace=namespace or "kubeflow")


def _api_errors() -> tuple:
    import urllib3
    from kfp_server_api.exceptions import ApiException

    return (OSError, urllib3.exceptions.HTTPError, ApiException)


def _fail(host: str, what: str, exc: Exception) -> PushgenError:
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return PushgenError(f"cannot {what} on Kubeflow Pipelines at {host}: {first}")


def create_schedule(
    host: str,
    package_path: str | Path,
    request,
    experiment: str,
    namespace: str | None = None,
):
    """Create (or reuse) `experiment` and the recurring run `request` describes; returns it."""
    try:
        client = _client(host, namespace)
        exp = client.create_experiment(experiment, namespace=namespace)
        return client.create_recurring_run(
            experiment_id=exp.experiment_id,
            job_name=request.display_name,
            description=request.description,
            cron_expression=request.trigger.cron_schedule.cron,
            max_concurrency=request.max_concurrency,
            no_catchup=request.no_catchup,
            params=request.runtime_config.parameters,
            pipeline_package_path=str(package_path),
        )
    except _api_errors() as exc:
        raise _fail(host, "create the schedule", exc) from exc


def list_schedules(host: str, namespace: str | None = None) -> list[dict]:
    """Every recurring run the server knows: id, name, cron, mode, created_at."""
    rows, token = [], ""
    try:
        client = _client(host, namespace)
        while True:
            page = client.list_recurring_runs(page_token=token, page_size=100, namespace=namespace)
            for r in page.recurring_runs or []:
                cron = r.trigger.cron_schedule.cron if r.trigger and r.trigger.cron_schedule else ""
                rows.append(
                    {
                        "id": r.recurring_run_id,
                        "name": r.display_name,
                        "cron": cron,
                        "mode": r.mode,
                        "created_at": str(r.created_at or ""),
                    }
                )
            token = page.next_page_token or ""
            if not token:
                return rows
    except _api_errors() as exc:
        raise _fail(host, "list schedules", exc) from exc


def delete_schedule(host: str, recurring_run_id: str, namespace: str | None = None) -> None:
    """Delete one recurring run by id (its past runs stay)."""
    if not recurring_run_id.strip():
        raise ConfigError("--delete needs a recurring run id (see `pushgen pipeline schedules`)")
    try:
        _client(host, namespace).delete_recurring_run(recurring_run_id)
    except _api_errors() as exc:
        raise _fail(host, f"delete schedule {recurring_run_id}", exc) from exc


def compiled_request(
    pipeline: str, cron: str, params: dict, name: str, image: str | None = None, cfg=None
):
    """(package path in a temp dir, request): compile `pipeline` and build its recurring run.

    The caller owns the returned temp dir (third item) and removes it when done.
    """
    tmp = tempfile.TemporaryDirectory()
    try:
        package = compile_named(pipeline, Path(tmp.name) / f"{pipeline}.yaml", image, cfg)
        return package, build_recurring_run(package, cron, params, name), tmp
    except BaseException:
        tmp.cleanup()
        raise
