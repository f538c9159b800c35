"""No code, test, script or Makefile recipe calls a tool that only a developer's machine has.

A new machine (and CI, see ``.ci/run``) has the README's prerequisites and nothing else:
python3.11, Go, openssl, apt-get. Everything else the project runs it installs itself and
calls by path: the pinned uv in ``.tools``, the venv, the cached kubectl and helm.

* Every ``subprocess``/``asyncio`` call whose argv starts with a literal names a tool from
  the allowed set; so does every ``shutil.which("...")`` (plus the Debian prometheus that the
  build installs).
* Every Makefile recipe line starts with a project path, a variable the Makefile defines or
  an allowed command.
* The checkers are trusted because they flag planted calls (the tests at the end).
* ``hack/reduced-path.sh``, which ``.ci/run`` sources, leaves python3.11 and go reachable and
  makes a bare kubectl, helm or uv fail even where the machine has one in ``/usr/bin``.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_TOOLS = frozenset({"go", "openssl", "apt-get", "systemctl", "make", "java", "mvn"})
INSTALLED_BY_BUILD = frozenset({"prometheus", "promtool"})  # Debian's package, by the build
_SPAWNERS = frozenset(
    {"run", "Popen", "check_call", "check_output", "call", "create_subprocess_exec"}
)


def _python_files() -> list[Path]:
    files: list[Path] = []
    for top in ("src", "tests", "dev", "examples"):  # every tree with Python in it
        files.extend(sorted((ROOT / top).rglob("*.py")))
    return files


def bare_tools_in_python(source: str) -> list[str]:
    """The literal tool names that ``source`` spawns or looks up on PATH."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        first = node.args[0]
        if name in _SPAWNERS and isinstance(first, ast.List | ast.Tuple) and first.elts:
            head = first.elts[0]
            if isinstance(head, ast.Constant) and isinstance(head.value, str):
                found.append(head.value)
        elif name in {"create_subprocess_exec", "which"} and isinstance(first, ast.Constant):
            found.append(str(first.value))
    return found


_MAKE_ALLOWED = re.compile(
    r"^(\$\((UV|RUN|CURDIR)\)|hack/|python3\.11 |grep |touch |if |echo |docker )"
)


def bad_make_recipes(makefile: str) -> list[str]:
    """Recipe lines (and continuation lines) that start with a tool not in the allowed set."""
    bad = []
    continued = False
    for line in makefile.splitlines():
        if line.startswith("\t") and not continued:
            command = line.lstrip("\t").lstrip("@-")
            if not _MAKE_ALLOWED.match(command):
                bad.append(command)
        continued = line.startswith("\t") and line.endswith("\\")
    return bad


def test_python_code_spawns_only_system_tools() -> None:
    offenders = {
        f"{path.relative_to(ROOT)}: {tool}"
        for path in _python_files()
        for tool in bare_tools_in_python(path.read_text())
        if tool not in SYSTEM_TOOLS | INSTALLED_BY_BUILD and not tool.startswith("/")
    }
    assert not offenders, sorted(offenders)


def test_makefile_recipes_call_only_project_or_system_tools() -> None:
    assert bad_make_recipes((ROOT / "Makefile").read_text()) == []


@pytest.mark.parametrize(
    ("planted", "tool"),
    [
        # Templates, filled in below, so this file itself names no tool in a call.
        ('subprocess.run(["{}", "get", "pods"])', "kubectl"),
        ("subprocess.Popen(('{}', 'template'))", "helm"),
        ('asyncio.create_subprocess_exec("{}", "sync")', "uv"),
        ('shutil.which("{}")', "kind"),
    ],
)
def test_python_checker_flags_a_planted_bare_tool(planted: str, tool: str) -> None:
    source = f"import subprocess, shutil, asyncio\n{planted.format(tool)}\n"
    assert bare_tools_in_python(source) == [tool]


def test_makefile_checker_flags_a_planted_bare_tool() -> None:
    planted = "x:\n\tuv sync\n\t@kubectl apply -f - \\\n\t\t--server-side\n\t$(RUN) pytest\n"
    assert bad_make_recipes(planted) == ["uv sync", "kubectl apply -f - \\"]


def test_reduced_path_keeps_prerequisites_and_stubs_developer_tools() -> None:
    script = (
        f"source {ROOT / 'hack' / 'reduced-path.sh'}\n"
        "trap 'rm -rf \"$REDUCED_PATH_GUARD\"' EXIT\n"
        "python3.11 -c 'print(1)' && go version >/dev/null && echo prerequisites-ok\n"
        "for t in uv helm kubectl; do $t version >/dev/null; echo $t=$?; done\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    done = subprocess.run(
        ["/bin/bash", "-c", script], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split()
    assert lines[:2] == ["1", "prerequisites-ok"]
    assert lines[2:] == ["uv=127", "helm=127", "kubectl=127"]
    assert "is not a project tool" in done.stderr
