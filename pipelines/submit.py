"""Submitting a compiled pipeline to Kubeflow Pipelines: the run request built and checked offline
(`build_submit_request`), then sent through `kfp.Client` (`submit`). The CLI's `pipeline submit`
and the schedules (`pipelines.schedule`) both use it."""

from __future__ import annotations

from pathlib import Path

from pushgen.core.errors import ConfigError, PushgenError


def build_submit_request(
    package_path: str | Path, params: dict, experiment: str, run_name: str | None = None
) -> dict:
    """The run a `submit` sends, built offline: checked parameters, spec, names.

    Returns {"experiment", "run_name", "run": kfp_server_api.V2beta1Run}; unknown or missing
    required parameters are a `ConfigError`, before anything is sent.
    """
    import time

    import yaml
    from kfp_server_api import V2beta1Run, V2beta1RuntimeConfig

    path = Path(package_path)
    if not path.is_file():
        raise ConfigError(f"no pipeline package at {path}")
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    spec = docs[0]
    declared = spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise ConfigError(f"unknown pipeline parameter(s) {unknown}; known: {sorted(declared)}")
    missing = sorted(n for n, d in declared.items() if not d.get("isOptional") and n not in params)
    if missing:
        raise ConfigError(f"missing required pipeline parameter(s) {missing}")
    if not experiment.strip():
        raise ConfigError("--experiment must not be empty")
    run_name = run_name or f"{spec['pipelineInfo']['name']}-{time.strftime('%Y%m%d-%H%M%S')}"
    # Platform config (Kubernetes secrets) is the YAML's second document; the API takes both.
    pipeline_spec = {"pipeline_spec": spec, "platform_spec": docs[1]} if len(docs) > 1 else spec
    run = V2beta1Run(
        display_name=run_name,
        pipeline_spec=pipeline_spec,
        runtime_config=V2beta1RuntimeConfig(parameters=params),
    )
    return {"experiment": experiment, "run_name": run_name, "run": run}


def submit(host: str, package: str | Path, params: dict, request: dict, namespace: str | None):
    """Create (or reuse) the experiment and start the run through `kfp.Client`."""
    import kfp
    import urllib3
    from kfp_server_api.exceptions import ApiException

    try:
        client = kfp.Client(host=host, namespace=namespace or "kubeflow")
        experiment = client.create_experiment(request["experiment"], namespace=namespace)
        return client.run_pipeline(
            experiment_id=experiment.experiment_id,
            job_name=request["run_name"],
            pipeline_package_path=str(package),
            params=params,
        )
    except (OSError, urllib3.exceptions.HTTPError, ApiException) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PushgenError(f"cannot submit to Kubeflow Pipelines at {host}: {first}") from exc
