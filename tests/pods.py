"""Start a container the way its pod would: from its manifest, as uid 1000, only volumes writable.

Test helper (not a test module). `start_pod` reads one InferenceService's container (command, args,
env, ports, volume mounts, security context) and runs it in a private mount namespace (util-linux
`unshare`, needs root): the root filesystem read-only, a tmpfs over /root (so the interpreter under
/root/.pyenv stays reachable but nothing else there), tmpfs skeletons under /mnt and /var/lib for
the mount points, and each declared volume bind-mounted from a host directory (read-only where the
manifest says so; /mnt/models always, as KServe mounts it). The process then drops to the
container's runAsUser/runAsGroup with no capabilities (`setpriv`).

Before a pod starts, the stock cluster's admission runs (tests/admission.py): KServe's
InferenceService validation, then Knative's field mask
under the default `config-features` (plus only the flags the deploy's patch names) must accept the
InferenceService, or the pod is refused as Knative's webhook would. The kubelet's part is done
here: `HOSTNAME` is the pod's name, `$(VAR)` in args expands from the container's env, secretKeyRef
reads the namespace's Secrets.

What differs from a cluster, stated where it happens: each pod has its own IP there, so here the
`--host`/`--port` arguments become 127.0.0.1 and a free port; cluster DNS names
(`http://<isvc>.<ns>.svc.cluster.local`) are mapped to the local pods; the image's Python is this
virtualenv with the worktree on PYTHONPATH.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

VENV_BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parent.parent
_DNS = re.compile(r"http://([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local")


def namespaces_available() -> str | None:
    """None when pods can be emulated here, else why not."""
    if os.geteuid() != 0:
        return "needs root for a mount namespace and setpriv"
    for tool in ("unshare", "setpriv", "mount"):
        if shutil.which(tool) is None:
            return f"{tool} not installed"
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True)
    if probe.returncode != 0:
        return f"unshare --mount fails: {probe.stderr.decode().strip()}"
    return None


@dataclass
class Pod:
    """A running container: its process, local URL and log file."""

    name: str
    proc: subprocess.Popen
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def terminate(self) -> None:
        """SIGTERM to the pod's processes (what the kubelet sends first)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()

    def wait_ready(self, timeout_s: float = 240.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pod {self.name} exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/v2/health/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(
            f"pod {self.name} not ready in {timeout_s}s: {self.log.read_text()[-3000:]}"
        )


def _env(container, pod_name: str, secrets: dict[str, dict[str, str]]) -> dict[str, str]:
    env = {"HOSTNAME": pod_name}  # what the container runtime sets: the pod's name
    for var in container.env or []:
        if var.value is not None:
            env[var.name] = var.value
        elif var.value_from and var.value_from.field_ref:
            assert var.value_from.field_ref.field_path == "metadata.name"
            env[var.name] = pod_name
        elif var.value_from and var.value_from.secret_key_ref:
            ref = var.value_from.secret_key_ref  # the kubelet fails a pod whose Secret is absent
            env[var.name] = secrets[ref.name][ref.key]
    return env


def _expand(arg: str, env: dict[str, str]) -> str:
    # kubelet expands $(VAR) in args from the container's env
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), arg)


def _kept_paths() -> list[Path]:
    """The interpreter's install, the virtualenv and the worktree: outermost paths only."""
    paths = {Path(os.path.realpath(sys.executable)).parents[1], Path(sys.prefix).resolve(), REPO}
    return sorted(p for p in paths if not any(q != p and q in p.parents for q in paths))


def start_pod(
    isvc,
    volumes: dict[str, Path],
    port: int,
    routes: dict[str, str],
    stage: Path,
    extra_env: dict[str, str] | None = None,
    secrets: dict[str, dict[str, str]] | None = None,
    knative_flags: dict[str, str] | None = None,
) -> Pod:
    """Run `isvc`'s predictor container; `volumes` maps volume name (and "models") to host dirs.

    `knative_flags`: the config-features changes the cluster has (the deploy's patch); the pod is
    refused, as Knative's webhook refuses the Service, if the default mask plus these rejects it.
    """
    from tests.admission import knative_refusals, kserve_refusals

    refused = kserve_refusals(isvc) + knative_refusals(isvc, knative_flags)
    if refused:
        raise RuntimeError(f"Knative refuses {isvc.metadata.name}: {'; '.join(refused)}")
    container = isvc.spec.predictor.containers[0]
    sec = container.security_context
    name = isvc.metadata.name
    pod_name = f"{name}-predictor-00001-deployment-0"
    env = _env(container, pod_name, secrets or {})

    def local(arg: str) -> str:
        def swap(m: re.Match) -> str:
            return routes[m.group(1)]  # cluster DNS -> the pod's local address

        return _DNS.sub(swap, _expand(arg, env))

    args = [local(a) for a in container.args]
    args[args.index("--host") + 1] = "127.0.0.1"  # pod IP: its own there, loopback here
    args[args.index("--port") + 1] = str(port)
    assert container.ports[0].container_port == int(
        container.args[container.args.index("--port") + 1]
    )

    mounts: list[tuple[str, Path, bool]] = [
        (m.mount_path, volumes[m.name], bool(m.read_only)) for m in container.volume_mounts or []
    ]
    if "STORAGE_URI" in env:  # KServe's storage initializer filled the model volume, mounted ro
        mounts.append(("/mnt/models", volumes["models"], True))
    # The "image's" interpreter, virtualenv and code: set aside before the pod's own mounts cover
    # them (a checkout under /tmp sits below the pod's /tmp emptyDir), put back afterwards.
    keep = _kept_paths()
    aside = {path: stage / "keep" / str(i) for i, path in enumerate(keep)}
    lines = ["set -e"]
    for path, spare in aside.items():
        spare.mkdir(parents=True, exist_ok=True)
        lines.append(f"mount --bind {path} {spare}")
    lines += [
        "mount -t tmpfs -o mode=755 tmpfs /root",
        "mount -t tmpfs -o mode=755 tmpfs /mnt",
        "mount -t tmpfs -o mode=755 tmpfs /var/lib",
    ]
    for target, host, ro in mounts:
        lines.append(f"mkdir -p {target} && mount --bind {host} {target}")
        if ro:
            lines.append(f"mount -o remount,bind,ro {target}")
    for path, spare in aside.items():
        lines.append(f"mkdir -p {path} && mount --bind {spare} {path}")
    lines += ["mount -o remount,bind,ro /", "mount -o remount,bind,ro /dev/shm"]
    run_env = {
        **env,
        "PATH": f"{VENV_BIN}:/usr/bin:/bin",
        "PYTHONPATH": str(REPO),
        "OMP_NUM_THREADS": "1",
        **(extra_env or {}),
    }
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in run_env.items())
    lines.append(
        f"exec setpriv --reuid {sec.run_as_user} --regid {sec.run_as_group} --clear-groups "
        f"--inh-caps=-all --bounding-set=-all --no-new-privs env -i {exports} "
        + " ".join(shlex.quote(x) for x in [*container.command, *args])
    )
    log = stage / f"{name}.log"
    proc = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", "\n".join(lines)],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd="/",
    )
    return Pod(name, proc, port, log)
