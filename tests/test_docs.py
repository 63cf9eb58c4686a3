"""Docs stay true: every profile and frame the code knows is documented."""

from pathlib import Path

import pytest

from bmslink.profiles import PROFILES
from bmslink.profiles.base import format_id

ROOT = Path(__file__).resolve().parent.parent
PROTOCOLS = (ROOT / "docs" / "protocols.md").read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_every_profile_has_a_section_and_a_readme_row(name):
    assert f"## `{name}`" in PROTOCOLS
    assert f"| `{name}`" in README


@pytest.mark.parametrize(
    ("name", "frame"),
    sorted(
        {
            (name, format_id(wire_id, spec.extended))
            for name, profile in PROFILES.items()
            for spec in profile.frames
            for wire_id in spec.wire_ids
        }
    ),
)
def test_every_frame_is_in_the_protocol_table(name, frame):
    section = PROTOCOLS.split(f"## `{name}`", 1)[1].split("\n## ", 1)[0]
    assert f"| {frame} |" in section


def test_readme_starts_with_the_two_commands():
    first_lines = README.splitlines()[:6]
    assert any(line.startswith("make demo") for line in first_lines)
    assert any(line.startswith("make test") for line in first_lines)
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert ci.rstrip().endswith("make test")


def test_every_check_rule_and_detect_part_is_documented():
    from bmslink.diagnose.check import RULES
    from bmslink.diagnose.detect import WEIGHTS

    text = (ROOT / "docs" / "diagnostics.md").read_text(encoding="utf-8")
    for code, (severity, _) in RULES.items():
        assert f"| `{code}` | {severity} |" in text, code
    for part, weight in WEIGHTS.items():
        assert f"| `{part}` | {weight:.2f} |" in text, part


def test_every_doctor_code_is_documented_in_the_doctor_section():
    from bmslink.diagnose.doctor import RULES

    text = (ROOT / "docs" / "diagnostics.md").read_text(encoding="utf-8")
    section = text.split("## `bmslink doctor`", 1)[1].split("\n## ", 1)[0]
    for code, (severity, advice) in RULES.items():
        assert f"| `{code}` | {severity} | {advice} |" in section, code
        assert f"- `{code}`" in section, code  # and how it is decided
