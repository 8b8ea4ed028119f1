"""Build script for tideloop's C extension, ``tideloop._core``.

Project metadata lives in pyproject.toml; this file only describes the
extension and the package layout.

Environment variables read at build time:

  TIDELOOP_WERROR=1         add -Werror
  TIDELOOP_DEBUG=1          add -O0 -g
  TIDELOOP_ASAN=1           add -fsanitize=address,undefined
                            -fno-omit-frame-pointer -O1 -g (compile and link)
  TIDELOOP_PORTABLE=1       a portable build: POSIX and libuv only, the
                            libuv backend alone (no epoll, timerfd,
                            eventfd, signalfd, pidfd, accept4, pipe2);
                            automatic where <sys/epoll.h> is missing
  TIDELOOP_LIBUV=PREFIX     the libuv installed under PREFIX, instead of
                            pkg-config: PREFIX/include/uv.h and
                            PREFIX/lib/libuv.* (or lib64/); that library
                            directory also goes into the extension's rpath
  TIDELOOP_LIBUV_CFLAGS     compiler flags for libuv (instead of pkg-config)
  TIDELOOP_LIBUV_LIBS       linker flags for libuv (instead of pkg-config)

libuv is found, in this order, from TIDELOOP_LIBUV_CFLAGS/TIDELOOP_LIBUV_LIBS
(if either is set), from TIDELOOP_LIBUV, or from ``pkg-config libuv``.
Without any of them the build stops with a message that names the package to
install (LIBUV_MISSING below); docs/install.md has the details.

libuv is looked up only when the extension is actually compiled, so
``python setup.py --version``, ``sdist`` and ``egg_info`` work without it.
"""

import hashlib
import os
import shlex
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from glob import glob

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = "tideloop"

BASE_CFLAGS = [
    "-O2",
    "-std=c11",
    "-Wall",
    "-Wextra",
    "-Wno-unused-parameter",
    # CPython's PyMethodDef/PyMemberDef initialisers trigger these two.
    "-Wno-missing-field-initializers",
    "-Wno-cast-function-type",
    # Only PyInit__core is the module's interface (PyMODINIT_FUNC exports
    # it): calls between its files then go straight to the function, not
    # through the PLT, and the compiler may inline a global function
    # within its file (tl_handle_make() into call_soon, for one).
    "-fvisibility=hidden",
]

LIBUV_MISSING = """\
tideloop: cannot find libuv: {detail}.

Install the libuv development package and pkg-config, then build again:
    Debian/Ubuntu:  sudo apt-get install libuv1-dev pkg-config
    Fedora/RHEL:    sudo dnf install libuv-devel pkgconf-pkg-config
    macOS:          brew install libuv pkg-config
(`make deps` does the Debian/Ubuntu step for you.)

Or point the build at libuv yourself, bypassing pkg-config:
    TIDELOOP_LIBUV=/opt/libuv pip install .     (a prefix with include/, lib/)
or
    TIDELOOP_LIBUV_CFLAGS="-I/opt/libuv/include" \\
    TIDELOOP_LIBUV_LIBS="-L/opt/libuv/lib -luv" pip install .
"""


def env_flag(name):
    return os.environ.get(name, "").strip().lower() not in ("", "0", "no",
                                                            "false", "off")


def portable():
    """Whether to build without the Linux-only epoll backend: asked for
    with TIDELOOP_PORTABLE=1, and automatic off Linux (no epoll)."""
    return env_flag("TIDELOOP_PORTABLE") or not sys.platform.startswith(
        "linux")


def mode_flags():
    """Compile and link flags chosen by the TIDELOOP_* switches."""
    cflags = list(BASE_CFLAGS)
    ldflags = []
    if portable():
        cflags.append("-DTIDELOOP_PORTABLE=1")
    if env_flag("TIDELOOP_DEBUG"):
        cflags += ["-O0", "-g"]
    if env_flag("TIDELOOP_ASAN"):
        san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"]
        cflags += san + ["-O1", "-g"]
        ldflags += san
    if env_flag("TIDELOOP_WERROR"):
        cflags.append("-Werror")
    return cflags, ldflags


def build_tag():
    """Name of the build directory for this flag set.

    setuptools skips compiling when the .so in build/ is newer than its
    sources, so builds with different flags (ASAN, debug, -Werror, another
    libuv) must not share a directory: an ASAN build would otherwise reuse a
    plain .so, and a -Werror build would not recompile to check warnings.
    """
    names = []
    for var in ("TIDELOOP_DEBUG", "TIDELOOP_ASAN", "TIDELOOP_WERROR"):
        if env_flag(var):
            names.append(var[len("TIDELOOP_"):].lower())
    if portable():
        names.append("portable")
    cflags, ldflags = mode_flags()
    key = "\0".join(cflags + ldflags + [
        os.environ.get("TIDELOOP_LIBUV", ""),
        os.environ.get("TIDELOOP_LIBUV_CFLAGS", ""),
        os.environ.get("TIDELOOP_LIBUV_LIBS", ""),
    ])
    digest = hashlib.sha1(key.encode()).hexdigest()[:8]
    return "-".join(names or ["release"]) + "-" + digest


def libuv_flags():
    """Return (cflags, libs) for libuv, or exit with install instructions."""
    cflags = os.environ.get("TIDELOOP_LIBUV_CFLAGS")
    libs = os.environ.get("TIDELOOP_LIBUV_LIBS")
    if cflags is not None or libs is not None:
        # An override of only one half means the other half is empty: a
        # libuv in the default include path needs no -I, say.
        return shlex.split(cflags or ""), shlex.split(libs or "-luv")
    prefix = os.environ.get("TIDELOOP_LIBUV")
    if prefix:
        return libuv_prefix_flags(prefix)

    pkg_config = os.environ.get("PKG_CONFIG", "pkg-config")
    if shutil.which(pkg_config) is None:
        sys.exit(LIBUV_MISSING.format(
            detail="pkg-config (%s) is not installed" % pkg_config))
    if subprocess.run([pkg_config, "--exists", "libuv"]).returncode != 0:
        sys.exit(LIBUV_MISSING.format(
            detail="`%s --exists libuv` failed (no libuv.pc)" % pkg_config))

    def query(what):
        return shlex.split(subprocess.run(
            [pkg_config, what, "libuv"], check=True,
            stdout=subprocess.PIPE, universal_newlines=True,
        ).stdout)

    return query("--cflags"), query("--libs")


def libuv_prefix_flags(prefix):
    """(cflags, libs) for a libuv installed under `prefix`
    (TIDELOOP_LIBUV), or exit saying what is missing there."""
    prefix = os.path.abspath(os.path.expanduser(prefix))
    include = os.path.join(prefix, "include")
    if not os.path.isfile(os.path.join(include, "uv.h")):
        sys.exit(LIBUV_MISSING.format(
            detail="TIDELOOP_LIBUV=%s has no include/uv.h" % prefix))
    for libdir in ("lib", "lib64"):
        libdir = os.path.join(prefix, libdir)
        if glob(os.path.join(libdir, "libuv.*")):
            break
    else:
        sys.exit(LIBUV_MISSING.format(
            detail="TIDELOOP_LIBUV=%s has no lib/libuv.* (nor lib64/)"
            % prefix))
    # The rpath lets the extension find a libuv.so outside the loader's
    # search path at import time (a static libuv.a needs none).
    return (["-I" + include],
            ["-L" + libdir, "-Wl,-rpath," + libdir, "-luv"])


def parallel_compile(compile_one_batch):
    """Wrap CCompiler.compile to compile the source files in parallel.

    (build_ext's own `parallel` option only builds several extensions at
    once, and there is one.) Each file still goes through the compiler's own
    method, so flags and object paths are exactly what setuptools would use.
    """
    def compile(sources, *args, **kwargs):
        jobs = min(len(sources), os.cpu_count() or 1)
        if jobs <= 1:
            return compile_one_batch(sources, *args, **kwargs)
        with ThreadPoolExecutor(jobs) as pool:
            batches = pool.map(
                lambda src: compile_one_batch([src], *args, **kwargs),
                sources)
            return [obj for objs in batches for obj in objs]
    return compile


class BuildExt(build_ext):
    """Adds libuv's flags, found only when something is compiled.

    setuptools rebuilds an extension only when one of its files is newer than
    the built module, which misses a deleted or renamed source file and a
    change of flags. So the list of files and flags of the last successful
    build is kept next to the objects, and a difference forces a full
    rebuild.
    """

    def build_extensions(self):
        uv_cflags, uv_libs = libuv_flags()
        for ext in self.extensions:
            ext.extra_compile_args = uv_cflags + ext.extra_compile_args
            ext.extra_link_args = uv_libs + ext.extra_link_args
        stamp = os.path.join(self.build_temp, "tideloop-build-signature")
        signature = repr([
            (e.name, e.sources, e.depends, e.include_dirs,
             e.extra_compile_args, e.extra_link_args, sys.version)
            for e in self.extensions
        ])
        try:
            with open(stamp) as f:
                same = f.read() == signature
        except OSError:
            same = False
        if not same:
            self.force = True
        self.compiler.compile = parallel_compile(self.compiler.compile)
        super().build_extensions()
        os.makedirs(self.build_temp, exist_ok=True)
        with open(stamp, "w") as f:
            f.write(signature)


class BuildPy(build_py):
    """build_py that drops modules deleted from python/ since the last build.

    build/ persists between `pip install .` runs (in-tree builds), and a file
    left in build/lib would otherwise keep being installed.
    """

    def run(self):
        super().run()
        keep = {os.path.abspath(p) for p in self.get_outputs()}
        pkg_dir = os.path.join(self.build_lib, PACKAGE)
        for root, _dirs, files in os.walk(pkg_dir):
            for name in files:
                path = os.path.abspath(os.path.join(root, name))
                if name.endswith((".py", ".pyi", ".typed")) and path not in keep:
                    os.remove(path)


def extension():
    cflags, ldflags = mode_flags()
    return Extension(
        "tideloop._core",
        sources=sorted(glob("ext/*.c")),
        depends=sorted(glob("ext/*.h")),  # a header change rebuilds too
        include_dirs=["ext"],
        extra_compile_args=cflags,
        extra_link_args=ldflags,
    )


os.chdir(HERE)  # the globs and paths below are relative to the repo root

# PEP 561: the py.typed marker and the stubs (tideloop/__init__.pyi, and
# _core.pyi for the C extension) go into the wheel next to the modules.
# (setuptools 69+ would add them anyway; 61-68 would not.)
package_data = {PACKAGE: ["py.typed", "*.pyi"]}

os.makedirs("build", exist_ok=True)  # egg_info's egg_base must exist
setup(
    package_dir={"": "python"},
    packages=[PACKAGE],
    package_data=package_data,
    ext_modules=[extension()],
    cmdclass={"build_ext": BuildExt, "build_py": BuildPy},
    options={
        "build": {"build_base": os.path.join("build", build_tag())},
        # Keep tideloop.egg-info out of python/ (the source tree).
        "egg_info": {"egg_base": "build"},
    },
    zip_safe=False,
)
