"""What a stock Kubeflow + KServe + Knative install applies to our objects before a pod starts.

Test helper (not a test module), the rules read from the upstream source and kept here with a
copy of their default values, so a test fails where a stock cluster would refuse or misconfigure:

- Knative Serving's admission webhook: the pod spec of a Knative Service is checked against the
  field mask of `config-features` (knative/serving `pkg/apis/serving/fieldmask.go` PodSpecMask,
  ContainerMask, SecurityContextMask, EnvVarSourceMask, VolumeSourceMask;
  `pkg/apis/serving/k8s_validation.go` validatePersistentVolumeClaims, validateVolumeMounts,
  reservedPaths, reservedEnvVars, validPortNames). Defaults: `pkg/apis/config/features.go`
  `defaultFeaturesConfig` and `config/core/configmaps/features.yaml`.
- KServe's InferenceService validation webhook (kserve/kserve
  `pkg/apis/serving/v1beta1/inference_service_validation.go`: IsvcNameFmt, validateBlockedEnvVars
  with `pkg/validation/env_policy.go` DefaultBlockedEnvVars, validateScalingKPACompExtension with
  `pkg/constants/constants.go` AutoscalerAllowedKPAMetricsList) for Serverless predictors;
- KServe's credential builder (kserve/kserve `pkg/credentials/service_account_credentials.go`
  CreateSecretVolumeAndEnvFromServiceAccount and mountSecretCredential,
  `pkg/credentials/s3/s3_secret.go` BuildSecretEnvs, `pkg/credentials/s3/utils.go`
  BuildS3EnvVars, `pkg/credentials/s3/s3_service_account.go`; default key names from
  `config/configmap/inferenceservice.yaml` "credentials.s3"): the env the storage initializer
  gets. The account's own annotations count only with the IRSA annotation; otherwise the S3
  settings come from the annotations (or data) of the Secret the account lists.
- KFP's default pipeline root (kubeflow/pipelines `backend/src/v2/component/launcher.go`
  `defaultPipelineRoot = "minio://mlpipeline/v2/artifacts"`) and the artifact URIs under it
  (`<root>/<pipeline>/<run id>/<task>/<execution id>/<output>`), the `minio://` scheme served by
  `minio-service.kubeflow:9000` (`backend/src/v2/objectstore/object_store.go`).
"""

from __future__ import annotations

import base64
import re
from typing import Any

from kserve.api_client import ApiClient

# --- Knative Serving: config-features defaults (pkg/apis/config/features.go defaultFeaturesConfig)
KNATIVE_DEFAULT_FEATURES: dict[str, str] = {
    "multi-container": "enabled",
    "kubernetes.podspec-affinity": "disabled",
    "kubernetes.podspec-topologyspreadconstraints": "disabled",
    "kubernetes.podspec-hostaliases": "disabled",
    "kubernetes.podspec-fieldref": "disabled",
    "kubernetes.podspec-nodeselector": "disabled",
    "kubernetes.podspec-runtimeclassname": "disabled",
    "kubernetes.podspec-securitycontext": "disabled",
    "kubernetes.podspec-shareprocessnamespace": "disabled",
    "kubernetes.podspec-hostipc": "disabled",
    "kubernetes.podspec-hostpid": "disabled",
    "kubernetes.podspec-hostnetwork": "disabled",
    "kubernetes.podspec-priorityclassname": "disabled",
    "kubernetes.podspec-schedulername": "disabled",
    "kubernetes.containerspec-addcapabilities": "disabled",
    "kubernetes.podspec-tolerations": "disabled",
    "kubernetes.podspec-volumes-emptydir": "enabled",
    "kubernetes.podspec-volumes-hostpath": "disabled",
    "kubernetes.podspec-volumes-mount-propagation": "disabled",
    "kubernetes.podspec-volumes-csi": "disabled",
    "kubernetes.podspec-volumes-ephemeral": "disabled",
    "kubernetes.podspec-volumes-image": "disabled",
    "kubernetes.podspec-persistent-volume-claim": "disabled",
    "kubernetes.podspec-persistent-volume-write": "disabled",
    "kubernetes.podspec-init-containers": "disabled",
    "kubernetes.podspec-dnspolicy": "disabled",
    "kubernetes.podspec-dnsconfig": "disabled",
    "secure-pod-defaults": "disabled",
}
# PodSpecMask: always allowed; the rest by the flag named (a flag "disabled" masks the field out)
_POD_ALWAYS = {"serviceAccountName", "containers", "volumes", "imagePullSecrets"}
_POD_ALWAYS |= {"enableServiceLinks", "automountServiceAccountToken"}
_POD_BY_FLAG = {
    "affinity": "kubernetes.podspec-affinity",
    "topologySpreadConstraints": "kubernetes.podspec-topologyspreadconstraints",
    "hostAliases": "kubernetes.podspec-hostaliases",
    "nodeSelector": "kubernetes.podspec-nodeselector",
    "runtimeClassName": "kubernetes.podspec-runtimeclassname",
    "tolerations": "kubernetes.podspec-tolerations",
    "securityContext": "kubernetes.podspec-securitycontext",
    "shareProcessNamespace": "kubernetes.podspec-shareprocessnamespace",
    "priorityClassName": "kubernetes.podspec-priorityclassname",
    "schedulerName": "kubernetes.podspec-schedulername",
    "initContainers": "kubernetes.podspec-init-containers",
    "dnsPolicy": "kubernetes.podspec-dnspolicy",
    "dnsConfig": "kubernetes.podspec-dnsconfig",
    "hostIPC": "kubernetes.podspec-hostipc",
    "hostPID": "kubernetes.podspec-hostpid",
    "hostNetwork": "kubernetes.podspec-hostnetwork",
}
_CONTAINER_ALLOWED = {
    "name", "args", "command", "env", "workingDir", "envFrom", "image", "imagePullPolicy",
    "livenessProbe", "ports", "readinessProbe", "resources", "securityContext", "startupProbe",
    "terminationMessagePath", "terminationMessagePolicy", "volumeMounts",
}  # fmt: skip
_SECURITY_CONTEXT_ALLOWED = {
    "capabilities", "readOnlyRootFilesystem", "runAsUser", "runAsGroup", "runAsNonRoot",
    "allowPrivilegeEscalation", "seccompProfile",
}  # fmt: skip
_VOLUME_ALWAYS = {"secret", "configMap", "projected"}
_VOLUME_BY_FLAG = {
    "emptyDir": "kubernetes.podspec-volumes-emptydir",
    "persistentVolumeClaim": "kubernetes.podspec-persistent-volume-claim",
    "hostPath": "kubernetes.podspec-volumes-hostpath",
    "csi": "kubernetes.podspec-volumes-csi",
    "ephemeral": "kubernetes.podspec-volumes-ephemeral",
    "image": "kubernetes.podspec-volumes-image",
}
_RESERVED_PATHS = {"/", "/dev", "/dev/log"}
_RESERVED_ENV = {"PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION"}
_PORT_NAMES = {"h2c", "http1", ""}
# KServe's PredictorSpec fields that are KServe's own (ComponentExtensionSpec), not the pod's
_KSERVE_COMPONENT_FIELDS = {
    "minReplicas", "maxReplicas", "scaleTarget", "scaleMetric", "containerConcurrency",
    "timeout", "canaryTrafficPercent", "logger", "batcher", "labels", "annotations",
    "deploymentStrategy", "autoScaling",
}  # fmt: skip


def as_dict(obj: Any) -> dict:
    """An SDK object as the API server sees it (camelCase, no nulls)."""
    return obj if isinstance(obj, dict) else ApiClient().sanitize_for_serialization(obj)


def _on(features: dict[str, str], flag: str) -> bool:
    return features.get(flag, "disabled").lower() != "disabled"


def knative_refusals(isvc: Any, changed: dict[str, str] | None = None) -> list[str]:
    """Why Knative's webhook refuses the Knative Service KServe makes of `isvc`'s predictor (empty:
    admitted), under the default config-features updated with `changed`."""
    features = {**KNATIVE_DEFAULT_FEATURES, **(changed or {})}
    predictor = as_dict(isvc)["spec"]["predictor"]
    pod = {k: v for k, v in predictor.items() if k not in _KSERVE_COMPONENT_FIELDS}
    errors: list[str] = []
    for key in pod:
        if key in _POD_ALWAYS:
            if key == "automountServiceAccountToken" and pod[key] is not False:
                errors.append("must not set field(s): automountServiceAccountToken")
            continue
        flag = _POD_BY_FLAG.get(key)
        if flag is None or not _on(features, flag):
            errors.append(f"must not set field(s): {key}" + (f" (needs {flag})" if flag else ""))
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for v in volumes.values():
        for kind in set(v) - {"name"}:
            flag = _VOLUME_BY_FLAG.get(kind)
            if kind not in _VOLUME_ALWAYS and (flag is None or not _on(features, flag)):
                errors.append(f"volumes[{v['name']}]: must not set field(s): {kind} ({flag})")
        pvc = v.get("persistentVolumeClaim")
        if pvc is not None:
            if features.get("kubernetes.podspec-persistent-volume-claim") != "enabled":
                errors.append(f"Persistent volume claim support is disabled ({v['name']})")
            write = features.get("kubernetes.podspec-persistent-volume-write") == "enabled"
            if not pvc.get("readOnly") and not write:
                errors.append(f"Persistent volume write support is disabled ({v['name']})")
    containers = pod.get("containers", [])
    ports = [p for c in containers for p in c.get("ports", [])]
    if len(ports) > 1:
        errors.append("more than one container port is set")
    for c in containers:
        errors += _container_refusals(c, volumes, features)
    return errors


def _container_refusals(c: dict, volumes: dict, features: dict[str, str]) -> list[str]:
    errors = [f"container: must not set field(s): {k}" for k in set(c) - _CONTAINER_ALLOWED]
    if c.get("name") == "queue-proxy":
        errors.append('"queue-proxy" is a reserved container name')
    for env in c.get("env", []):
        if env["name"] in _RESERVED_ENV:
            errors.append(f"env {env['name']} is reserved")
        source = env.get("valueFrom") or {}
        allowed = {"configMapKeyRef", "secretKeyRef"}
        if _on(features, "kubernetes.podspec-fieldref"):
            allowed |= {"fieldRef", "resourceFieldRef"}
        for key in set(source) - allowed:
            errors.append(f"env {env['name']}: must not set field(s): valueFrom.{key}")
    sc = c.get("securityContext") or {}
    errors += [f"securityContext: must not set {k}" for k in set(sc) - _SECURITY_CONTEXT_ALLOWED]
    add = (sc.get("capabilities") or {}).get("add")
    if add and not _on(features, "kubernetes.containerspec-addcapabilities"):
        errors.append("securityContext.capabilities.add is disabled")
    for p in c.get("ports", []):
        if p.get("name", "") not in _PORT_NAMES:
            errors.append(f"port name {p.get('name')!r}: h2c or http1 only")
    for m in c.get("volumeMounts", []):
        vol = volumes.get(m["name"])
        if vol is None:
            errors.append(f"volumeMount {m['name']}: volumeMount has no matching volume")
            continue
        if m["mountPath"].rstrip("/") in _RESERVED_PATHS or m["mountPath"] == "/":
            errors.append(f"mountPath {m['mountPath']!r} is a reserved path")
        writable_kind = {"emptyDir", "persistentVolumeClaim", "ephemeral"} & set(vol)
        if not writable_kind and not m.get("readOnly"):
            errors.append(f"volumeMount {m['name']}: should be readOnly for this type of volume")
        if "mountPropagation" in m and not _on(
            features, "kubernetes.podspec-volumes-mount-propagation"
        ):
            errors.append(f"volumeMount {m['name']}: mount propagation is disabled")
    return errors


_ISVC_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")  # IsvcNameFmt
_BLOCKED_ENV = {"PYTHONPATH"}  # env_policy.go DefaultBlockedEnvVars
_KPA_METRICS = {"concurrency", "rps"}  # AutoscalerAllowedKPAMetricsList


def kserve_refusals(isvc: Any) -> list[str]:
    """Why KServe's validation webhook refuses a Serverless InferenceService (empty: admitted)."""
    obj = as_dict(isvc)
    errors = []
    if not _ISVC_NAME.match(obj["metadata"]["name"]):
        errors.append(f"name {obj['metadata']['name']!r} does not match {_ISVC_NAME.pattern}")
    predictor = obj["spec"]["predictor"]
    for c in predictor.get("containers", []):
        blocked = {e["name"] for e in c.get("env", [])} & _BLOCKED_ENV
        if blocked:
            errors.append(f"container {c['name']}: blocked env {sorted(blocked)}")
    if predictor.get("scaleMetric", "concurrency") not in _KPA_METRICS:
        errors.append(f"[{predictor['scaleMetric']}] is not a supported metric")
    if predictor.get("deploymentStrategy"):
        errors.append("customizing deploymentStrategy is only supported for raw deployment mode")
    return errors


def config_features_patch(objects: dict[str, Any]) -> dict[str, str]:
    """The config-features data a `pushgen deploy` output asks for (its knative patch file)."""
    patch = objects.get("knative/config-features-patch")
    return dict(as_dict(patch).get("data", {})) if patch is not None else {}


# --- KServe: default "credentials.s3" of config/configmap/inferenceservice.yaml
KSERVE_S3_CONFIG: dict[str, str] = {
    "s3AccessKeyIDName": "AWS_ACCESS_KEY_ID",
    "s3SecretAccessKeyName": "AWS_SECRET_ACCESS_KEY",
    "s3Endpoint": "",
    "s3UseHttps": "",
    "s3Region": "",
    "s3VerifySSL": "",
    "s3UseVirtualBucket": "",
    "s3UseAccelerate": "",
    "s3UseAnonymousCredential": "",
    "s3CABundleConfigMap": "",
    "s3CABundle": "",
}
IRSA_ANNOTATION = (
    "eks.amazonaws.com/role-arn"  # service_account_credentials.go AwsIrsaAnnotationKey
)
_GROUP = "serving.kserve.io"
# (annotation, secret data key, config key, env) in BuildS3EnvVars' order
_S3_SETTINGS = (
    (f"{_GROUP}/s3-verifyssl", "S3_VERIFY_SSL", "s3VerifySSL", "S3_VERIFY_SSL"),
    (f"{_GROUP}/s3-useanoncredential", "awsAnonymousCredential", "s3UseAnonymousCredential",
     "awsAnonymousCredential"),
    (f"{_GROUP}/s3-region", "AWS_DEFAULT_REGION", "s3Region", "AWS_DEFAULT_REGION"),
    (f"{_GROUP}/s3-usevirtualbucket", "S3_USER_VIRTUAL_BUCKET", "s3UseVirtualBucket",
     "S3_USER_VIRTUAL_BUCKET"),
    (f"{_GROUP}/s3-useaccelerate", "S3_USE_ACCELERATE", "s3UseAccelerate", "S3_USE_ACCELERATE"),
    (f"{_GROUP}/s3-cabundle", "AWS_CA_BUNDLE", "s3CABundle", "AWS_CA_BUNDLE"),
    (f"{_GROUP}/s3-cabundle-configmap", "AWS_CA_BUNDLE_CONFIGMAP", "s3CABundleConfigMap",
     "AWS_CA_BUNDLE_CONFIGMAP"),
)  # fmt: skip


def _get(annotations: dict, data: dict | None, annotation: str, key: str, default: str) -> str:
    """utils.go getEnvValue: the annotation, else the secret's data, else the config."""
    if annotation in annotations:
        return annotations[annotation]
    if data is not None and key in data:
        return data[key]
    return default


def build_s3_env_vars(annotations: dict, data: dict | None, cfg: dict[str, str]) -> dict:
    """utils.go BuildS3EnvVars: env for the initializer from annotations (+ secret data)."""
    env: dict[str, str] = {}
    endpoint = _get(annotations, data, f"{_GROUP}/s3-endpoint", "S3_ENDPOINT", cfg["s3Endpoint"])
    if endpoint:
        endpoint = endpoint.strip()
        if endpoint.lower().startswith("https://"):
            https, host, url = "1", endpoint[8:], endpoint
        elif endpoint.lower().startswith("http://"):
            https, host, url = "0", endpoint[7:], endpoint
        else:
            https = _get(
                annotations, data, f"{_GROUP}/s3-usehttps", "S3_USE_HTTPS", cfg["s3UseHttps"]
            )
            host, url = endpoint, ("http://" if https == "0" else "https://") + endpoint
        if https:
            env["S3_USE_HTTPS"] = https
        env["S3_ENDPOINT"] = host
        env["AWS_ENDPOINT_URL"] = url
    for annotation, key, config_key, name in _S3_SETTINGS:
        value = _get(annotations, data, annotation, key, cfg[config_key])
        if value:
            env[name] = value
    return env


def secret_data(secret: Any) -> dict[str, str]:
    """A Secret's data as the API server stores it: `stringData` merged into `data`."""
    s = as_dict(secret)
    data = {k: base64.b64decode(v).decode() for k, v in (s.get("data") or {}).items()}
    return {**data, **(s.get("stringData") or {})}


def storage_initializer_env(
    service_account: Any, secrets: dict[str, Any], cfg: dict[str, str] | None = None
) -> dict[str, str]:
    """The env KServe gives the storage-initializer container for pods running as
    `service_account` (CreateSecretVolumeAndEnvFromServiceAccount), secret refs resolved.

    `secrets`: Secret objects by name, as they are in the namespace. A Secret the account lists
    that is absent fails the pod, as KServe's webhook does.
    """
    cfg = {**KSERVE_S3_CONFIG, **(cfg or {})}
    sa = as_dict(service_account)
    env: dict[str, str] = {}
    annotations = sa.get("metadata", {}).get("annotations") or {}
    if IRSA_ANNOTATION in annotations:  # only then are the account's own annotations read
        env.update(build_s3_env_vars(annotations, None, cfg))
    for ref in sa.get("secrets") or []:
        if ref["name"] not in secrets:
            raise LookupError(f"Failed to find secret {ref['name']}")
        secret = as_dict(secrets[ref["name"]])
        data = secret_data(secret)
        if cfg["s3SecretAccessKeyName"] not in data:
            continue  # not an S3 secret (gcs, azure, https, hf, ...): other builders
        env["AWS_ACCESS_KEY_ID"] = data.get(cfg["s3AccessKeyIDName"], "")
        env["AWS_SECRET_ACCESS_KEY"] = data[cfg["s3SecretAccessKeyName"]]
        sec_ann = (secret.get("metadata") or {}).get("annotations") or {}
        env.update(build_s3_env_vars(sec_ann, data, cfg))  # utils.MergeEnvs: the secret wins
    return env


# --- KFP: the default pipeline root and its artifact URIs
KFP_DEFAULT_PIPELINE_ROOT = "minio://mlpipeline/v2/artifacts"
KFP_MINIO_ENDPOINT = "minio-service.kubeflow:9000"


def kfp_artifact_uri(
    pipeline: str, run_id: str, task: str, execution_id: str, output: str,
    root: str = KFP_DEFAULT_PIPELINE_ROOT,
) -> str:  # fmt: skip
    """The URI KFP's launcher gives an output artifact under the pipeline root."""
    return f"{root}/{pipeline}/{run_id}/{task}/{execution_id}/{output}"
