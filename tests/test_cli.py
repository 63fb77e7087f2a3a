"""The `pushgen` CLI as a user meets it: exit codes and one-line messages, in a real subprocess."""

import subprocess
import sys

import pandas as pd

from pushgen.cli.main import main


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pushgen", *args], capture_output=True, text=True, timeout=120
    )


def test_help_lists_subcommands():
    out = _run("--help")
    assert out.returncode == 0
    assert "simulate" in out.stdout


def test_simulate_writes_the_four_files(tmp_path):
    out = _run("simulate", "--out", str(tmp_path), "--videos", "20", "--seed", "1")
    assert out.returncode == 0, out.stderr
    assert {p.name for p in tmp_path.iterdir()} == {
        "videos.parquet",
        "pushes.parquet",
        "ab_tests.parquet",
        "world.json",
    }
    pushes = pd.read_parquet(tmp_path / "pushes.parquet")
    assert {"push_id", "video_id", "text", "pv", "clicks", "ctr", "svr", "lvtr", "htr"} <= set(
        pushes
    )


def test_bad_arguments_exit_2_with_one_line():
    out = _run("simulate", "--out", "x", "--videos", "0")
    assert out.returncode == 2
    assert out.stderr.strip() == "pushgen simulate: error: --videos must be >= 1, got 0"
    assert "Traceback" not in out.stderr
    out = _run("simulate", "--videos", "abc", "--out", "x")
    assert out.returncode == 2 and "invalid int value" in out.stderr
    out = _run("no-such-command")
    assert out.returncode == 2 and "invalid choice" in out.stderr


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage: pushgen" in capsys.readouterr().out
