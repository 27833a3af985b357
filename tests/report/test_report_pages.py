"""Report files: every figure written and non-empty, footers, self-contained HTML that headless
Chromium renders, Markdown links, the CLI, user errors and determinism."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
from typer.testing import CliRunner

from tal_bench.cli import app
from tal_bench.errors import TalBenchError
from tal_bench.pipelines.report import ReportResult, build_report
from tal_bench.plots.figures import plot_learning_curves
from tal_bench.plots.style import machine_label, save_figure

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EXPECTED_FIGURES = {
    "learning_curves", "fits_etad", "latency_vs_length", "macs_vs_length", "memory_vs_length",
    "sampling_ratios", "egs_ratios",
}  # fmt: skip


def test_every_figure_file_exists_and_is_an_image(report: ReportResult) -> None:
    paths = [Path(p) for p in report.summary["figures"]]
    stems = {p.stem for p in paths}
    assert stems >= EXPECTED_FIGURES
    assert sum(s.startswith("timeline_") for s in stems) == 2  # inference + training profile
    assert {p.suffix for p in paths} == {".png"}
    for path in paths:
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC), path
        img = mpimg.imread(io.BytesIO(data), format="png")
        assert img.shape[0] > 300 and img.shape[1] > 600, path
        assert img[..., :3].std() > 0.01, f"{path} is blank"
    for path in report.summary["tables"]:
        assert Path(path).stat().st_size > 0


def test_every_figure_has_units_and_a_machine_footer(report: ReportResult) -> None:
    for name, plot in report.plots.items():
        texts = " ".join(t.get_text() for t in plot.figure.texts)
        assert "commit 01234567" in texts, name
        assert "CPU: " in texts and "GPU: " in texts and "threads: " in texts, name
        for ax in plot.figure.axes:
            label = ax.get_ylabel()
            assert re.search(r"\((%|s|ms|MiB|GMACs)[),;]", label), (name, label)
        xlabels = [ax.get_xlabel() for ax in plot.figure.axes if ax.get_xlabel()]
        assert xlabels and all(re.search(r"\((%|s|feature steps|fraction)", x) for x in xlabels)
    footer = " ".join(t.get_text() for t in report.plots["latency_vs_length"].figure.texts)
    assert "Intel(R) Xeon(R) Platinum 8480+ (32 logical)" in footer
    assert "NVIDIA H100 80GB HBM3 x1" in footer and "threads: 16" in footer
    ratio_footer = " ".join(t.get_text() for t in report.plots["sampling_ratios"].figure.texts)
    assert "threads: 4" in ratio_footer  # from the grid's invocation log


def test_machine_label_without_meta() -> None:
    assert machine_label({}) == "CPU: unknown CPU | GPU: none | threads: not recorded | " + (
        "commit unknown"
    )
    meta = {"commit": {"id": "abcdef0123456789", "dirty": True}, "machine": {"gpus": None}}
    assert machine_label(meta, threads=2).endswith("threads: 2 | commit abcdef01 (dirty)")


def test_html_is_self_contained(report: ReportResult) -> None:
    text = Path(report.summary["html"]).read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert "<script" not in text and "<link" not in text
    assert not re.search(r"(src|href)=\"(?!data:|#)", text)  # only data URIs and anchors
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert len(images) == len(report.summary["figures"])
    for b64 in images:
        assert base64.b64decode(b64).startswith(PNG_MAGIC)
    # Failed cells are listed with their errors; tables are HTML tables.
    assert "CUDA out of memory. Tried to allocate 2.00 GiB" in text
    assert "cell ran past 3600 s" in text
    assert text.count("<table>") == len(report.summary["tables"])


def test_markdown_links_existing_files(report: ReportResult) -> None:
    md_path = Path(report.summary["markdown"])
    text = md_path.read_text(encoding="utf-8")
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) == len(report.summary["figures"])
    for link in links:
        assert (md_path.parent / link).is_file(), link
    assert "| strategy |" in text.replace("| model | strategy |", "| strategy |")


def _chromium() -> str | None:
    return next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(n)), None)  # fmt: skip


CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.mark.skipif(_chromium() is None, reason="no chromium binary (apt-get install chromium)")
def test_html_opens_in_headless_chromium(report: ReportResult, tmp_path: Path) -> None:
    html = Path(report.summary["html"]).resolve()
    base = [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*base, "--dump-dom", html.as_uri()], capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "<h1>tal-bench report</h1>" in dom.stdout
    assert dom.stdout.count("<img ") == len(report.summary["figures"])
    assert "Failed cells (4)" in dom.stdout
    shot = tmp_path / "page.png"
    res = subprocess.run([*base, f"--screenshot={shot}", "--window-size=1200,2000",
                          html.as_uri()], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    img = mpimg.imread(shot)
    # The first figure is drawn: a good share of the screenshot is not background white.
    assert (img[..., :3] < 0.9).any(axis=-1).mean() > 0.02


def test_svg_report_inlines_svg_with_distinct_ids(runs: dict[str, Path], tmp_path: Path) -> None:
    out = build_report([runs["ratio"], runs["train_profile"]], tmp_path / "rep", ("svg",))
    paths = [Path(p) for p in out.summary["figures"]]
    assert [p.name for p in paths] == [
        "timeline_00_profile-train_timeline.svg", "sampling_ratios.svg"
    ]  # fmt: skip
    for path in paths:
        svg = path.read_text()
        ET.fromstring(svg)  # well-formed
        assert "<dc:date>" not in svg  # no timestamp in the file
    html = Path(out.summary["html"]).read_text()
    assert html.count("<svg") == 2 and "data:image/png" not in html
    # matplotlib reuses glyph/clip ids in every SVG: inlined, they must not collide.
    ids = re.findall(r'\sid="([^"]+)"', html)
    assert len(ids) == len(set(ids))
    refs = set(re.findall(r'(?:href="#|url\(#)([^")]+)', html))
    assert refs and refs <= set(ids)
    assert out.summary["failures"] == 1 and out.summary["runs"] == 2


def test_figures_are_deterministic(report: ReportResult, tmp_path: Path) -> None:
    # The same numbers drawn twice (fresh figures) give byte-identical PNG and SVG files.
    curves = report.plots["learning_curves"].data
    paths = [
        save_figure(plot_learning_curves(curves, "map_avg_pct", "footer").figure,
                    tmp_path / d, "f", ("png", "svg"))
        for d in ("a", "b")
    ]  # fmt: skip
    for a, b in zip(*paths, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.suffix


def test_cli_json_summary(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "cli-report"
    res = CliRunner().invoke(
        app, ["report", str(runs["profile"]), str(runs["train"]), "--out", str(out), "--json"]
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert set(summary) == {"figures", "tables", "html", "markdown", "runs", "failures"}
    assert summary["runs"] == 2 and summary["failures"] == 1  # the OOM at length 16384
    assert {Path(p).stem for p in summary["figures"]} == {
        "latency_vs_length", "macs_vs_length", "memory_vs_length",
        "time_macs_actionformer_cuda", "time_macs_etad_cuda",  # Fig. 4, one per model
        "timeline_00_profile-infer_timeline",
    }  # fmt: skip
    assert Path(summary["html"]).is_file() and Path(summary["markdown"]).is_file()
    # Re-running over the same --out replaces the earlier report.
    again = CliRunner().invoke(app, ["report", str(runs["train"]), "--out", str(out), "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["figures"] == []
    assert not any((out / "figures").iterdir())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/nonexistent/runs"], "does not exist"),
        (["--format", "pdf"], "unknown figure format"),
        (["--metric", "map_pct_at_0.55"], "choose one of map_avg_pct, map_pct_at_0.30"),
    ],
)
def test_cli_user_errors(
    args: list[str], message: str, runs: dict[str, Path], tmp_path: Path
) -> None:
    extra = [] if args[0].startswith("/") else [str(runs["actionformer"])]
    res = CliRunner().invoke(app, ["report", *extra, *args, "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert message in res.output and "Traceback" not in res.output


def test_no_runs_and_foreign_out_dir(tmp_path: Path, runs: dict[str, Path]) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(TalBenchError, match="no run directories"):
        build_report([tmp_path / "empty"], tmp_path / "out")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(TalBenchError, match="holds no earlier report"):
        build_report([runs["train"]], foreign)
    assert (foreign / "notes.txt").read_text() == "mine"


def test_empty_and_running_runs_still_render(tmp_path: Path) -> None:
    from tal_bench.records import create_run

    run = create_run(tmp_path / "runs" / "r", "data-scaling", {"model": "etad"}, {})
    out = build_report([tmp_path / "runs"], tmp_path / "out")  # no rows yet, still "running"
    text = Path(out.summary["html"]).read_text()
    assert out.summary["figures"] == [] and out.summary["failures"] == 0
    assert "has status &#x27;running&#x27;: still running, or killed" in text
    assert np.isclose(out.summary["runs"], 1) and run.path.exists()


def test_cli_default_reads_runs_in_cwd(
    runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(runs["train"], tmp_path / "runs" / "train" / "r1")
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["report", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["runs"] == 1 and summary["html"] == "report/report.html"
    assert (tmp_path / "report" / "tables" / "study_table.csv").is_file()
