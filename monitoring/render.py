"""Screenshot a monitor report with headless Chromium (Debian's `chromium`), and demo reports.

    python -m monitoring.render runs/monitor/report.html docs/monitor-healthy.png
    python -m monitoring.render --demo docs     # healthy + ranker-fault reports and screenshots

`--demo` builds log-shaped streams (monitoring/logsim.py): a healthy reference, then twelve
windows of 240 requests, healthy throughout or with the last three from a ranker that prefers
sensational pushes, and writes each report and its PNG.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

from pushgen.core.errors import ConfigError

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def find_chromium() -> str:
    """Path of a Chromium binary, or a clear error saying how to install one."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise ConfigError("no chromium on PATH; install Debian's: apt-get install -y chromium")


def screenshot(
    html: str | Path, png: str | Path, width: int = 1280, height: int = 1520, palette: bool = True
) -> Path:
    """Render `html` headless and write a PNG of `width` x `height` pixels (palette: smaller file)."""
    html, png = Path(html).resolve(), Path(png).resolve()
    if not html.exists():
        raise ConfigError(f"no such report: {html}")
    png.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        find_chromium(),
        *FLAGS,
        f"--screenshot={png}",
        f"--window-size={width},{height}",
        html.as_uri(),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if done.returncode != 0 or not png.exists():
        raise ConfigError(f"chromium failed ({done.returncode}): {done.stderr[-400:]}")
    if palette:
        from PIL import Image

        with Image.open(
            png
        ) as img:  # a report has few colours: a 64-colour palette is lossless enough
            small = img.convert("RGB").quantize(colors=64)
        small.save(png, optimize=True)
    return png


def demo_reports(out: Path, windows: int = 12, size: int = 240, faulty: int = 3) -> dict[str, Path]:
    """Healthy and ranker-fault reports over `windows` windows; returns {name: report.html}."""
    import pandas as pd

    from monitoring.config import MonitorConfig
    from monitoring.logsim import StreamConfig, simulate_log, stream
    from monitoring.report import run_monitoring
    from pushgen.data.simulator import SimConfig, simulate

    world = simulate(SimConfig(n_videos=300, seed=123)).world
    ref_log, ref_fb = simulate_log(world, StreamConfig(n_requests=4000, seed=0))
    out_paths = {}
    for name, fault in (("healthy", "healthy"), ("ranker-fault", "ranker_invented")):
        parts = stream(
            world,
            StreamConfig(n_requests=size, seed=500, start="2026-11-02T00:00:00+00:00"),
            windows,
        )
        if fault != "healthy":
            bad = stream(
                world,
                StreamConfig(
                    n_requests=size, fault=fault, seed=900, start="2026-11-02T00:00:00+00:00"
                ),
                windows,
            )
            parts = parts[: windows - faulty] + bad[windows - faulty :]
        log = pd.concat([p[0] for p in parts], ignore_index=True)
        fb = pd.concat([p[1] for p in parts], ignore_index=True)
        summary = run_monitoring(
            log,
            fb,
            ref_log,
            out / f"monitor-{name}",
            MonitorConfig(window_requests=size),
            reference_feedback=ref_fb,
        )
        out_paths[name] = Path(summary["report_html"])
        print(f"{name}: {summary['verdict']} (blamed: {summary['blamed']})")
    return out_paths


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("html", nargs="?", help="report.html to render")
    p.add_argument("png", nargs="?", help="PNG to write")
    p.add_argument("--demo", metavar="DIR", help="build demo reports and write PNGs into DIR")
    p.add_argument("--reports", default="runs/monitor-demo", help="where demo reports go")
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=1520)
    args = p.parse_args(argv)
    if args.demo:
        for name, html in demo_reports(Path(args.reports)).items():
            print(
                screenshot(html, Path(args.demo) / f"monitor-{name}.png", args.width, args.height)
            )
        return 0
    if not (args.html and args.png):
        p.error("give HTML and PNG paths, or --demo DIR")
    print(screenshot(args.html, args.png, args.width, args.height))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
