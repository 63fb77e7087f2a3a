"""Kubernetes objects for serving pushgen on a KServe cluster, built from the SDK model classes.

`build_manifests(DeployConfig)` returns, by file stem:
- `serviceaccount`: the ServiceAccount the predictors run as; it names the S3 Secret and carries
  KServe's S3 annotations, so KServe's storage initializer can download the weights;
- `feature-store`: a ConfigMap with the transformer's Feast `feature_store.yaml` (SQLite on the
  `pushgen-features` volume by default; Redis or Postgres by `feast_online_store`);
- `features-pvc`, `serving-log-pvc`: the volumes the materialise step fills and the serving log
  goes to;
- `networkpolicy`: only the transformer, the graph's router and Knative's data path may reach the
  generator and ranker pods;
- `generator`, `ranker`: InferenceServices pinned to one immutable version URI
  (`<store>/versions/<v>/<artifact>`; KServe downloads it to /mnt/models, the server verifies
  every file against the version's manifest); `--model_name` tells KServe (GetModelName) the name
  the server registers, so the graph calls `/v1/models/<that name>:predict`;
- `pushgen`: the transformer (Feast lookup, guard, serving log) calling both;
- `graph`: InferenceGraph `pushgen-graph`, a Sequence generator -> ranker.

Every predictor has readiness and liveness probes, and Knative autoscaling derived from the
server's own bound on concurrent requests (`max_pending`): `containerConcurrency` is that bound
(Knative queues the excess instead of the server answering 503) and `scaleTarget` half of it, so
pods are added well before the bound is reached.

    pushgen deploy --store s3://models/pushgen --version V --image IMG --out DIR   # a rollout
    pushgen manifests [--check]     # serving/manifests/ for the example config; --check: stale?

Modules, each importing only those before it: `config` (DeployConfig, names, URLs), `pods`
(InferenceServices' containers), `objects` (ConfigMap, volumes, NetworkPolicy, ServiceAccount),
`build` (`build_manifests`), `files` (YAML out and back).
"""

from serving.deploy.build import (  # noqa: F401
    build_manifests,
)
from serving.deploy.config import (  # noqa: F401
    EXAMPLE_STORE,
    EXAMPLE_VERSION,
    FEAST_STORES,
    FEATURE_REPO_MOUNT,
    FEATURES_MOUNT,
    GRAPH_LABEL,
    IMAGE_REPO,
    IMAGE_TAG,
    ISVC_LABEL,
    KINDS,
    LOG_MOUNT,
    MANIFEST_DIR,
    MODEL_MOUNT,
    MODEL_NAMES,
    NAMES,
    TMP_MOUNT,
    DeployConfig,
    ManifestConfig,
    check_version_uri,
    concurrency_bounds,
    image_name,
    make_toleration,
    model_name_of,
    predict_url,
    service_url,
)
from serving.deploy.files import (  # noqa: F401
    load_manifest,
    stale_manifests,
    to_yaml,
    write_manifests,
)
from serving.deploy.objects import (  # noqa: F401
    feast_env,
    feature_store_yaml,
    log_ship_env,
    make_network_policy,
    make_pvc,
    make_service_account,
    store_uri,
)
from serving.deploy.pods import (  # noqa: F401
    make_container,
    make_isvc,
    make_probe,
    security_context,
)
