"""docs/recipes.md is copy-paste correct: every code block in it is run.

Each fenced block is preceded by an HTML comment that says what to do:

    <!-- test: file=NAME -->      write the block to NAME (in a scratch
                                  directory shared by the whole page)
    <!-- test: server=PORT -->    run it (a python block as a script, with
                                  file=NAME under that name; a sh block as
                                  its one command) with PORT replaced by a
                                  free port; GET / must answer
                                  "running on tideloop"; then SIGTERM
    <!-- test: run -->            run it; exit status 0; expect="TEXT" must
                                  be in its output; cwd=DIR runs it there
    python>=X.Y                   only on that Python or later

A block without such a comment fails the test (no untested examples).
"""
import os
import re
import shlex
import signal
import sys

import pytest

from integsupport import (
    ROOT, Server, child_env, free_port, http_get, missing, need, run_process,
    temp_dir,
)

pytestmark = [pytest.mark.integration, pytest.mark.watchdog(120)]

DOC = os.path.join(ROOT, "docs", "recipes.md")
_MARK = re.compile(r"^<!-- test: (.*?) -->\s*$")
_FENCE = re.compile(r"^```(\w+)\s*$")

# What a recipe needs, by the program it starts or the modules it imports.
_COMMAND_NEEDS = {"uvicorn": ["uvicorn"], "gunicorn": ["gunicorn", "uvicorn"],
                  "pytest": ["pytest_asyncio"]}
_STDLIB_OR_OURS = {"asyncio", "tideloop", "os", "sys", "pytest"}


class Block:
    def __init__(self, lang, code, opts, line):
        self.lang, self.code, self.opts, self.line = lang, code, opts, line

    @property
    def kind(self):
        for k in ("server", "run"):
            if k in self.opts:
                return k
        return "file"

    def __repr__(self):
        return "docs/recipes.md:%d (%s %s)" % (self.line, self.lang, self.kind)


def _parse_opts(text):
    opts = {}
    for word in shlex.split(text):
        if word.startswith("python>="):
            opts["python"] = tuple(int(x) for x in word[8:].split("."))
        elif "=" in word:
            key, value = word.split("=", 1)
            opts[key] = value
        else:
            opts[word] = True
    return opts


def parse_doc(path=DOC):
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    blocks, pending, i = [], None, 0
    while i < len(lines):
        m = _MARK.match(lines[i])
        fence = _FENCE.match(lines[i])
        if m:
            pending = _parse_opts(m.group(1))
        elif fence:
            j = i + 1
            while lines[j].rstrip() != "```":
                j += 1
            code = "\n".join(lines[i + 1:j]) + "\n"
            blocks.append(Block(fence.group(1), code, pending, i + 1))
            pending, i = None, j
        elif lines[i].strip():
            pending = None  # a comment counts only right before its block
        i += 1
    return blocks


BLOCKS = parse_doc()
RUNNABLE = [b for b in BLOCKS if b.opts is not None and b.kind != "file"]


def test_every_block_is_tested():
    untested = [b for b in BLOCKS if b.opts is None]
    assert not untested, "code blocks without a <!-- test: ... --> comment: %r" % untested
    names = [b.opts["file"] for b in BLOCKS if "file" in b.opts]
    assert len(names) == len(set(names)), names
    kinds = [b.kind for b in RUNNABLE]
    assert kinds.count("server") >= 6 and kinds.count("run") >= 4, BLOCKS


@pytest.fixture(scope="module")
def recipe_dir():
    with temp_dir("tideloop-recipes-") as path:
        for b in BLOCKS:
            if b.opts and "file" in b.opts:
                target = os.path.join(path, b.opts["file"])
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with open(target, "w") as f:
                    f.write(b.code)
        yield path


def _needs(block, recipe_dir):
    mods = []
    if block.lang == "sh":
        argv = shlex.split(block.code.strip())
        mods += _COMMAND_NEEDS.get(argv[0], [])
        scripts = [a for a in argv if a.endswith(".py")]
        codes = []
        for s in scripts:
            with open(os.path.join(recipe_dir, block.opts.get("cwd", ""),
                                   s)) as f:
                codes.append(f.read())
    else:
        codes = [block.code]
    for code in codes:
        for m in re.finditer(r"^(?:from|import) (\w+)", code, re.M):
            if m.group(1) not in _STDLIB_OR_OURS:
                mods.append(m.group(1))
    if block.kind == "server" and block.lang == "sh" and argv[0] == "uvicorn":
        mods.append("uvicorn")
    return mods


def _recipe_env(recipe_dir):
    # XDG_RUNTIME_DIR: where gunicorn 27 puts its control socket (else in
    # ~/.gunicorn).
    env = child_env(XDG_RUNTIME_DIR=recipe_dir)
    env.pop("PYTHONPATH", None)  # as a user would run them
    env.pop("PYTEST_CURRENT_TEST", None)
    env.pop("PYTEST_ADDOPTS", None)
    return env


def _argv(block, recipe_dir, code):
    if block.lang == "python":
        name = block.opts.get("file", "recipe_line%d.py" % block.line)
        with open(os.path.join(recipe_dir, name), "w") as f:
            f.write(code)
        return [sys.executable, name]
    assert block.lang == "sh", block
    commands = [ln for ln in code.splitlines()
                if ln.strip() and not ln.lstrip().startswith("#")]
    assert len(commands) == 1, (block, commands)
    return shlex.split(commands[0])


@pytest.mark.parametrize("block", RUNNABLE,
                         ids=["line%d-%s" % (b.line, b.kind) for b in RUNNABLE])
def test_recipe(block, recipe_dir):
    if "python" in block.opts and sys.version_info < block.opts["python"]:
        pytest.skip("this recipe needs Python %s+" %
                    ".".join(map(str, block.opts["python"])))
    for mod in _needs(block, recipe_dir):
        need(mod)
    cwd = os.path.join(recipe_dir, block.opts.get("cwd", ""))

    if block.kind == "run":
        argv = _argv(block, recipe_dir, block.code)
        try:
            p = run_process(argv, cwd=cwd, env=_recipe_env(recipe_dir))
        except FileNotFoundError as exc:
            missing("the program %r (%s)" % (argv[0], exc))
        out = p.stdout + p.stderr
        assert p.returncode == 0, "%r failed (%s):\n%s" % (block, p.returncode, out)
        expect = block.opts.get("expect")
        if expect:
            assert expect in out, "%r: %r not in its output:\n%s" % (
                block, expect, out)
        return

    port_text = block.opts["server"]
    port = free_port()
    argv = _argv(block, recipe_dir, block.code.replace(port_text, str(port)))
    # The port may be in a script the command runs (written earlier from
    # its own block): use a copy with the free port.
    sources = {b.opts["file"]: b.code for b in BLOCKS
               if b.opts and "file" in b.opts}
    found = port_text in block.code
    for i, arg in enumerate(argv):
        if arg in sources and port_text in sources[arg]:
            found = True
            copy = "port%d_%s" % (port, os.path.basename(arg))
            with open(os.path.join(cwd, copy), "w") as f:
                f.write(sources[arg].replace(port_text, str(port)))
            argv[i] = copy
    assert found, "%r: the port %s is nowhere in it" % (block, port_text)
    with Server(argv, cwd=cwd, env=_recipe_env(recipe_dir),
                name=repr(block)) as server:
        server.wait_port(port, timeout=30)
        status, _, body = http_get("http://127.0.0.1:%d/" % port)
        assert (status, body) == (200, b"running on tideloop\n"), \
            server.describe()
        rc = server.stop(signal.SIGTERM)
        # uvicorn re-raises the signal after its graceful shutdown.
        assert rc in (0, -signal.SIGTERM), server.describe()
        assert "Traceback" not in server.log, server.describe()
