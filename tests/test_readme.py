"""README.md is copy-paste correct: every fenced code block in it is either
run (and must succeed) or explicitly skipped with a reason.

Each block is preceded by an HTML comment (invisible on GitHub):

    <!-- test: run -->                 run it: a ``python`` block as a
                                       script, a ``sh`` block with bash -e;
                                       exit status 0
    <!-- test: run expect="TEXT" -->   ... and TEXT must be in its output
    <!-- test: skip reason="..." -->   not run (say why: installs system
                                       packages, is CI itself, ...)

A block without such a comment fails the test: no untested examples.
The blocks run with this interpreter (tideloop installed), in a scratch
directory, with ``python`` on PATH meaning this interpreter.
"""
import os
import re
import shlex
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
README = os.path.join(HERE, os.pardir, "README.md")
_MARK = re.compile(r"^<!-- test: (.*?) -->\s*$")
_FENCE = re.compile(r"^```(\w*)\s*$")

pytestmark = pytest.mark.tideloop_only


def parse(text):
    """[(line, lang, code, opts or None)] for every fenced block."""
    blocks = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start = i
        j = i + 1
        while j < len(lines) and lines[j].strip() != "```":
            j += 1
        code = "\n".join(lines[i + 1:j]) + "\n"
        opts = None
        k = start - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        mark = _MARK.match(lines[k]) if k >= 0 else None
        if mark:
            words = shlex.split(mark.group(1))
            opts = {"action": words[0]}
            for w in words[1:]:
                key, _, value = w.partition("=")
                opts[key] = value
        blocks.append((start + 1, m.group(1), code, opts))
        i = j + 1
    return blocks


with open(README, encoding="utf-8") as _f:
    BLOCKS = parse(_f.read())


def test_every_block_is_marked():
    unmarked = [line for line, _, _, opts in BLOCKS
                if opts is None or opts["action"] not in ("run", "skip")]
    assert not unmarked, ("README.md code blocks without a "
                          "<!-- test: run|skip --> comment at lines %s"
                          % unmarked)
    for line, _, _, opts in BLOCKS:
        if opts["action"] == "skip":
            assert opts.get("reason"), "README.md:%d: skip needs a reason" \
                % line


def test_quick_start_is_the_first_block():
    """The brief's contract: the first code block under `## Quick start`
    holds exactly the two commands, run first, test second."""
    text = open(README, encoding="utf-8").read()
    section = text.split("## Quick start", 1)[1]
    first = parse(section)[0]
    assert first[2].split("\n")[:2] == ["make run", "make test"]


RUNNABLE = [(line, lang, code, opts) for line, lang, code, opts in BLOCKS
            if opts and opts["action"] == "run"]


@pytest.mark.watchdog(180)
@pytest.mark.parametrize("block", RUNNABLE,
                         ids=["README.md:%d" % b[0] for b in RUNNABLE])
def test_block_runs(block, tmp_path):
    line, lang, code, opts = block
    env = dict(os.environ)
    # `python` in a sh block is this interpreter.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    wrapper = bindir / "python"
    wrapper.write_text('#!/bin/sh\nexec %s "$@"\n' % shlex.quote(sys.executable))
    wrapper.chmod(0o755)
    env["PATH"] = str(bindir) + os.pathsep + env.get("PATH", "")
    env.pop("PYTHONASYNCIODEBUG", None)
    if lang == "python":
        script = tmp_path / "block.py"
        script.write_text(code)
        cmd = [sys.executable, str(script)]
    elif lang in ("sh", "bash"):
        cmd = ["bash", "-e", "-c", code]
    else:
        pytest.fail("README.md:%d: cannot run a %r block" % (line, lang))
    r = subprocess.run(cmd, cwd=str(tmp_path), env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=150)
    assert r.returncode == 0, "README.md:%d failed:\n%s" % (line, r.stdout)
    if "expect" in opts:
        assert opts["expect"] in r.stdout, (
            "README.md:%d: %r not in output:\n%s"
            % (line, opts["expect"], r.stdout))
