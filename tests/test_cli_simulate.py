"""``bmslink simulate`` as a user runs it: every scenario, short, with its report on disk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest
from typer.testing import CliRunner

from bmslink.cli.main import app
from bmslink.sim import report as report_module
from bmslink.sim.chain import METRIC_KEYS
from bmslink.sim.scenarios import SCENARIOS

runner = CliRunner()
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SAFETY_KEYS = ("seconds_charging_over_voltage", "seconds_charging_below_0c")


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Any, Any]]:
    """Every scenario for one day at the demo's 10 s CAN round: (report dir, stdout JSON,
    metrics.json). Coarser rounds are not a fair test of the safety metrics: the inverter acts
    on a limit only once per round, and a 60 s round lets a runner cell cross 3.60 V between
    two of them."""
    out: dict[str, tuple[Path, Any, Any]] = {}
    base = tmp_path_factory.mktemp("simulate")
    for name in SCENARIOS:
        target = base / "nested" / name  # the parent does not exist either
        args = ["simulate", "--scenario", name, "--days", "1", "--step", "10"]
        result = runner.invoke(app, [*args, "--report", str(target), "--json"])
        assert result.exit_code == 0, result.output
        assert f"{name}/" in result.stderr  # progress goes to stderr
        document = json.loads((target / "metrics.json").read_text())
        out[name] = (target, json.loads(result.stdout), document)
    return out


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_each_scenario_writes_every_file(reports: dict[str, Any], name: str) -> None:
    target, printed, document = reports[name]
    runs = list(SCENARIOS[name].runs)
    expected = {"metrics.json", "summary.md", *(f"{run}-overview.png" for run in runs)}
    if len(runs) > 1:
        expected.add("soc-comparison.png")
    assert {p.name for p in target.iterdir()} == expected  # and no temporary file left
    for png in expected - {"metrics.json", "summary.md"}:
        data = (target / png).read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000
    assert printed == document
    assert document["scenario"] == name and document["days"] == 1 and document["step_s"] == 10.0
    assert list(document["runs"]) == runs
    for metrics in document["runs"].values():
        assert tuple(metrics) == METRIC_KEYS
        for value in metrics.values():
            assert isinstance(value, int | float) and not isinstance(value, bool)
    summary = (target / "summary.md").read_text()
    assert summary.startswith(f"# bmslink simulate: {name}")
    assert all(key in summary for key in METRIC_KEYS)
    assert "What limited charging most" in summary
    assert all(f"{run}-overview.png" in summary for run in runs)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_with_comms_no_cell_is_charged_over_voltage_or_below_0c(
    reports: dict[str, Any], name: str
) -> None:
    _, _, document = reports[name]
    for run, metrics in document["runs"].items():
        if document["details"][run]["inverter_mode"] == "comms":
            assert all(metrics[key] == 0 for key in SAFETY_KEYS), (run, metrics)
            assert metrics["bms_cutoffs"] == 0 or name == "winter-cold", (run, metrics)


def test_voltage_only_shows_a_larger_soc_error_than_comms(reports: dict[str, Any]) -> None:
    """On LFP's flat plateau a few tens of mV of IR drop or rebound move a voltage-read SoC
    by tens of percent; the BMS's coulomb count sent over CAN does not care."""
    runs = reports["voltage-only-vs-comms"][2]["runs"]
    assert runs["voltage-only"]["soc_error_mean_pct"] > 2 * runs["comms"]["soc_error_mean_pct"]
    assert runs["voltage-only"]["soc_error_max_pct"] > runs["comms"]["soc_error_max_pct"]
    # the same sun and load: the two inverters moved comparable energy
    assert runs["voltage-only"]["energy_in_kwh"] == pytest.approx(
        runs["comms"]["energy_in_kwh"], rel=0.25
    )


def test_estimated_soc_is_as_close_to_the_truth_as_the_bms_soc(reports: dict[str, Any]) -> None:
    """A day of bmslink's own SoC (no basis at first, then full and coulomb counting) stays
    within a few points of the true SoC, as the simulated BMS's own coulomb count does."""
    runs = reports["soc-estimate"][2]["runs"]
    estimated, bms = runs["estimated-soc"], runs["bms-soc"]
    assert estimated["soc_error_max_pct"] is not None
    assert estimated["soc_error_max_pct"] < 5.0
    assert estimated["soc_error_mean_pct"] < 2 * bms["soc_error_mean_pct"] + 1.0
    assert estimated["bms_cutoffs"] == 0


def test_winter_charging_was_held_down_by_the_cold(reports: dict[str, Any]) -> None:
    details = reports["winter-cold"][2]["details"]["comms"]
    limited = details["charge_limited_s"]
    cold = sum(v for k, v in limited.items() if k.endswith((":temperature", ":alarm")))
    assert cold > 3600.0  # hours of sun with the cells too cold to charge


def test_list_names_every_scenario() -> None:
    result = runner.invoke(app, ["simulate", "--list"])
    assert result.exit_code == 0
    assert all(name in result.stdout for name in SCENARIOS)
    listed = json.loads(runner.invoke(app, ["simulate", "--list", "--json"]).stdout)
    assert [s["name"] for s in listed] == list(SCENARIOS)
    assert listed[1]["days"] == SCENARIOS[listed[1]["name"]].days


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scenario", "monsoon"], "unknown scenario 'monsoon'; known: sunny-day"),
        ([], "--scenario is required; known: sunny-day"),
        (["--scenario", "sunny-day"], "--report DIR is required"),
        (["--scenario", "sunny-day", "--days", "0"], "Invalid value for '--days'"),
        (["--scenario", "sunny-day", "--step", "0"], "Invalid value for '--step'"),
    ],
)
def test_bad_invocations_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    report = [] if "--report" in message or not args else ["--report", str(tmp_path / "r")]
    result = runner.invoke(app, ["simulate", *args, *report])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert not (tmp_path / "r").exists()


def test_unknown_scenario_lists_all_known_ones(tmp_path: Path) -> None:
    result = runner.invoke(app, ["simulate", "-s", "nope", "--report", str(tmp_path)])
    assert result.exit_code == 2
    assert all(name in result.stderr for name in SCENARIOS)


def test_report_onto_a_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.write_text("mine")
    result = runner.invoke(app, ["simulate", "-s", "sunny-day", "--report", str(target)])
    assert result.exit_code == 2 and "not a directory" in result.stderr
    assert target.read_text() == "mine"


def test_a_failed_render_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = cast(report_module.ScenarioResult, object())  # only handed to render_report

    def broken(_: object) -> dict[str, bytes]:
        raise RuntimeError("renderer died")

    monkeypatch.setattr(report_module, "render_report", broken)
    with pytest.raises(RuntimeError):
        report_module.write_report(result, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_failed_write_leaves_neither_files_nor_temporaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = cast(report_module.ScenarioResult, object())
    files = {"a.png": PNG_SIGNATURE, "summary.md": b"# x\n", "metrics.json": b"{}"}
    monkeypatch.setattr(report_module, "render_report", lambda _: files)
    real_write = Path.write_bytes
    calls = 0

    def write_then_fail(self: Path, data: bytes) -> int:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise OSError(28, "No space left on device")
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_then_fail)
    with pytest.raises(OSError):
        report_module.write_report(result, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []  # no final file, no temporary one
    monkeypatch.setattr(Path, "write_bytes", real_write)
    written = report_module.write_report(result, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(files)
    assert {p.name: p.read_bytes() for p in written} == files


def test_coarse_rounds_carry_a_note_on_the_safety_metrics(tmp_path: Path) -> None:
    args = ["simulate", "--scenario", "sunny-day", "--days", "1", "--step", "30"]
    result = runner.invoke(app, [*args, "--report", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "note: CAN round every 30 s" in result.stderr and "--step 10 or less" in result.stderr
    assert "**note**: CAN round every 30 s" in (tmp_path / "summary.md").read_text()


def test_the_default_round_carries_no_note(reports: dict[str, Any]) -> None:
    target = reports["sunny-day"][0]
    assert "**note**" not in (target / "summary.md").read_text()
