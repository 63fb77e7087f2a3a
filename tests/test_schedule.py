"""Recurring runs: cron checks, the dry-run request, and the real kfp client against a stub API.

No Kubeflow cluster runs here: `KfpStub` is a minimal HTTP server on 127.0.0.1 answering the
KFP v2beta1 routes the client calls (healthz, experiments, recurringruns) and recording the
bodies, so the real `kfp.Client` serialises and sends the request the dry-run prints.
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from kfp_server_api import ApiClient, V2beta1RecurringRun

from pipelines.schedule import build_recurring_run, compile_named, normalise_cron
from pushgen.cli.main import main as cli
from pushgen.core.errors import ConfigError

MONITOR_PARAMS = [
    "--param",
    "serving_log_uri=s3://logs/window",
    "--param",
    "feedback_uri=s3://logs/feedback",
    "--param",
    "reference_uri=s3://logs/reference",
]


@pytest.mark.parametrize(
    ("cron", "six"),
    [
        ("0 * * * *", "0 0 * * * *"),
        ("*/15 2-4 * * MON-FRI", "0 */15 2-4 * * MON-FRI"),
        ("30 0 3 1,15 * ?", "30 0 3 1,15 * ?"),
        ("@daily", "@daily"),
        ("@every 1h30m", "@every 1h30m"),
    ],
)
def test_cron_is_normalised_to_kfp_six_fields(cron, six):
    assert normalise_cron(cron) == six


@pytest.mark.parametrize(
    ("cron", "says"),
    [
        ("0 25 * * *", "hours field"),
        ("* * *", "got 3"),
        ("", "got 0"),
        ("0 * * * * * *", "got 7"),
        ("0 0 * FOO *", "month field"),
        ("*/0 * * * *", "step"),
        ("5-1 * * * *", "backwards"),
        ("? * * * *", "minutes field"),
        ("@sometimes", "got 1"),
    ],
)
def test_bad_cron_is_refused_with_the_field(cron, says):
    with pytest.raises(ConfigError, match=says):
        normalise_cron(cron)


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--pipeline", "monitorin", "--cron", "0 * * * *"], "unknown pipeline 'monitorin'"),
        (["--pipeline", "training", "--cron", "61 * * * *"], "minutes field"),
        (["--pipeline", "monitoring", "--cron", "0 * * * *"], "missing required"),
        (["--pipeline", "training", "--cron", "@daily", "--param", "n_vidoes=3"], "unknown"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(argv, says, capsys):
    code = cli(["pipeline", "schedule", *argv, "--host", "http://kfp.invalid", "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2
    assert says in err and len(err.strip().splitlines()) == 1


def test_dry_run_prints_a_recurring_run_the_api_model_accepts(capsys):
    argv = ["pipeline", "schedule", "--pipeline", "monitoring", "--cron", "0 * * * *"]
    assert cli([*argv, "--host", "http://kfp.invalid", "--dry-run", *MONITOR_PARAMS]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["experiment"] == "pushgen" and printed["host"] == "http://kfp.invalid"
    assert printed["trigger"] == {"cron_schedule": {"cron": "0 0 * * * *"}}
    assert printed["mode"] == "ENABLE" and printed["no_catchup"] is True
    assert printed["runtime_config"]["parameters"]["serving_log_uri"] == "s3://logs/window"
    # the GPU steps' tolerations make a platform spec beside the pipeline spec
    assert printed["pipeline_spec"]["pipeline_spec"]["pipelineInfo"]["name"] == "pushgen-monitoring"
    # the generated API client deserialises it back into its own model
    body = {k: v for k, v in printed.items() if k not in ("host", "experiment")}
    run = ApiClient()._ApiClient__deserialize(body, "V2beta1RecurringRun")
    assert isinstance(run, V2beta1RecurringRun)
    assert run.trigger.cron_schedule.cron == "0 0 * * * *"


class KfpStub(BaseHTTPRequestHandler):
    """The few KFP v2beta1 routes the client uses; records what it was sent."""

    received: list = []
    schedules: dict = {}

    def _reply(self, body: dict, code: int = 200) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802 (http.server's name)
        if self.path.startswith("/apis/v2beta1/healthz"):
            return self._reply({"multi_user": False})
        if self.path.startswith("/apis/v2beta1/experiments"):
            return self._reply({})
        if self.path.startswith("/apis/v2beta1/recurringruns"):
            return self._reply({"recurringRuns": list(self.schedules.values())})
        return self._reply({"error": "no route"}, 404)

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.received.append((self.path, body))
        if self.path == "/apis/v2beta1/experiments":
            return self._reply({**body, "experiment_id": "exp-1"})
        if self.path == "/apis/v2beta1/recurringruns":
            made = {**body, "recurring_run_id": f"rr-{len(self.schedules) + 1}"}
            self.schedules[made["recurring_run_id"]] = made
            return self._reply(made)
        return self._reply({"error": "no route"}, 404)

    def do_DELETE(self):  # noqa: N802
        rid = self.path.rsplit("/", 1)[-1]
        if self.schedules.pop(rid, None) is None:
            return self._reply({"error": f"recurring run {rid} not found", "code": 5}, 404)
        return self._reply({})

    def log_message(self, *args):
        pass


@pytest.fixture()
def kfp_stub():
    KfpStub.received, KfpStub.schedules = [], {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), KfpStub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_schedule_list_delete_through_the_kfp_client(kfp_stub, capsys, tmp_path):
    argv = ["pipeline", "schedule", "--pipeline", "monitoring", "--cron", "0 * * * *"]
    assert cli([*argv, "--host", kfp_stub, "--dry-run", *MONITOR_PARAMS]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert cli([*argv, "--host", kfp_stub, *MONITOR_PARAMS]) == 0
    assert "scheduled rr-1 (pushgen-monitoring, cron 0 0 * * * *)" in capsys.readouterr().out
    path, sent = KfpStub.received[-1]
    assert path == "/apis/v2beta1/recurringruns"
    assert sent.pop("experiment_id") == "exp-1"
    # what was sent is what the dry run printed
    assert sent == {k: v for k, v in dry.items() if k not in ("host", "experiment")}

    assert cli(["pipeline", "schedules", "--host", kfp_stub]) == 0
    listed = capsys.readouterr().out
    assert "rr-1" in listed and "pushgen-monitoring" in listed and "0 0 * * * *" in listed
    assert cli(["pipeline", "schedules", "--host", kfp_stub, "--delete", "rr-1"]) == 0
    assert cli(["pipeline", "schedules", "--host", kfp_stub]) == 0
    assert "no schedules" in capsys.readouterr().out
    code = cli(["pipeline", "schedules", "--host", kfp_stub, "--delete", "rr-9"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot delete schedule rr-9" in err and len(err.splitlines()) == 1


def test_training_request_keeps_its_parameters(tmp_path):
    package = compile_named("training", tmp_path / "t.yaml")
    run = build_recurring_run(package, "0 3 * * SUN", {"n_videos": 50}, "weekly")
    assert run.trigger.cron_schedule.cron == "0 0 3 * * SUN"
    assert run.runtime_config.parameters == {"n_videos": 50}
    assert run.pipeline_spec["pipeline_spec"]["pipelineInfo"]["name"] == "pushgen-training"
    with pytest.raises(ConfigError, match="unknown pipeline"):
        compile_named("nightly", tmp_path / "x.yaml")


def test_unreachable_server_is_one_line(capsys):
    code = cli(["pipeline", "schedules", "--host", "http://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot list schedules" in err and len(err.strip().splitlines()) == 1
