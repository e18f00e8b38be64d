"""The README's test command and CI stay in step: CI (.ci/run) installs the same system packages as root and
then runs the README command's Python part verbatim, so a package the tests need cannot be missing from one."""
from __future__ import annotations

import re

from .comfy import REPO


def apt_packages(text: str) -> set[str]:
    found = re.findall(r"apt-get install -y --no-install-recommends ([a-z0-9.+ -]+?)(?:&&|\n|$)", text)
    assert found, "no apt-get install line"
    return set(found[-1].split())


def readme_test_command() -> str:
    readme = (REPO / "README.md").read_text()
    commands = [line for line in readme.splitlines() if "python -m pytest" in line and "apt-get" in line]
    assert len(commands) == 1, commands
    return commands[0]


def test_ci_installs_what_the_readme_installs():
    ci = (REPO / ".ci" / "run").read_text()
    assert apt_packages(ci) == apt_packages(readme_test_command()) - {"python3-venv"}


def test_ci_runs_the_readme_test_command():
    ci_lines = (REPO / ".ci" / "run").read_text().strip().splitlines()
    assert ci_lines[-1] in readme_test_command()
    assert {"chromium", "chromium-driver"} <= apt_packages(readme_test_command())  # the browser tests' browser
