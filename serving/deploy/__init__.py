"""Kubernetes objects for serving pushgen on a KServe cluster, built from the SDK model classes.

`build_manifests(DeployConfig)` returns, by file stem:
- `serviceaccount`: the ServiceAccount the predictors run as; it lists the S3 Secret (or, with
  `--s3-role-arn`, carries the IRSA role and the S3 settings itself);
- `templates/s3-secret`: that Secret's template: KServe's S3 annotations (endpoint, https,
  region), which its credential builder reads from the Secret, and the two keys to fill in; not in
  the folder `kubectl apply -f` reads;
- `feature-store`: a ConfigMap with the transformer's Feast `feature_store.yaml`: Redis online
  store (every replica and the materialise step share it), registry on S3 beside the versions;
- `knative/config-features-patch`: only when a pod spec needs one, the Knative `config-features`
  flags it needs (GPU tolerations, nodeSelector); the README names them;
- `networkpolicy`: only the transformer, the graph's router and Knative's data path may reach the
  generator and ranker pods;
- `generator`, `ranker`: InferenceServices pinned to one immutable version URI
  (`<store>/versions/<v>/<artifact>`; KServe downloads it to /mnt/models, the server verifies
  every file against the version's manifest); `--model_name` tells KServe (GetModelName) the name
  the server registers, so the graph calls `/v1/models/<that name>:predict`;
- `pushgen`: the transformer (Feast lookup, guard, serving log) calling both;
- `graph`: InferenceGraph `pushgen-graph`, a Sequence generator -> ranker.

Every pod spec passes Knative's default field mask otherwise: no fieldRef (the pod name is its
HOSTNAME), no PersistentVolumeClaims (the serving log is an emptyDir whose closed windows ship to
the store; features are in Redis).

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
    HF_CACHE_MOUNT,
    IMAGE_REPO,
    IMAGE_TAG,
    ISVC_LABEL,
    KINDS,
    KNATIVE_FLAGS,
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
    feast_registry,
    feature_store_yaml,
    knative_features_patch,
    knative_flags,
    log_ship_env,
    make_network_policy,
    make_s3_secret,
    make_service_account,
    s3_annotations,
    s3_endpoint_url,
    serving_log_uri,
    store_uri,
)
from serving.deploy.pods import (  # noqa: F401
    make_container,
    make_isvc,
    make_probe,
    security_context,
)
