"""Every file a command's help cites as shipped (under leaderboards/) exists in the repository."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from fsmi_bench.cli import main

REPO = Path(__file__).resolve().parents[2]
WRITTEN_BY_EXAMPLES = {"leaderboards/mine.csv"}  # outputs the examples create, not shipped files


def test_help_texts_cite_files_that_exist():
    cited = set()
    for name in main.commands:
        result = CliRunner().invoke(main, [name, "--help"])
        assert result.exit_code == 0, result.output
        cited |= set(re.findall(r"leaderboards/[\w.-]+\.csv", result.output))
    assert "leaderboards/mini-weightless.csv" in cited
    for path in sorted(cited - WRITTEN_BY_EXAMPLES):
        assert (REPO / path).is_file(), f"a help text cites {path}, which does not exist"
