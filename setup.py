"""Build for AI-OTS: the Cython core, the generated protobuf/gRPC modules and their stubs.

One import namespace, ``aiots``, mapped from the fixed top-level folders:

=================  ===========================================
import name        sources
=================  ===========================================
aiots.core         core/           (Cython extensions + Python)
aiots.services.*   services/
aiots.gateway      gateway/
aiots.v1           protos/aiots/v1 (generated, never edited)
=================  ===========================================

Every build (``pip install -e .``, ``pip install .``, ``pip wheel .``) regenerates the
protobuf modules, the ``.pyi`` stubs and the descriptor set from ``protos/`` so the code can
never drift from the contract. Bad build environments fail early with one clear line.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import ClassVar

MIN_PYTHON = (3, 11)
if sys.version_info < MIN_PYTHON:
    sys.exit(
        f"AI-OTS needs Python {MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer; this is "
        f"{sys.version.split()[0]} ({sys.executable}). Install python3.11+ and re-run `make test`."
    )

from setuptools import Command, Extension, find_packages, setup  # noqa: E402
from setuptools.command.build_ext import build_ext  # noqa: E402
from setuptools.command.build_py import build_py  # noqa: E402

ROOT = Path(__file__).parent.resolve()
PROTO_ROOT = ROOT / "protos"
PROTO_PKG = PROTO_ROOT / "aiots" / "v1"
PROTO_FILES = sorted(PROTO_PKG.glob("*.proto"))
# google.rpc error details go into the descriptor set so Envoy can render rich errors as JSON.
EXTRA_DESCRIPTOR_PROTOS = ("google/rpc/status.proto", "google/rpc/error_details.proto")


def _fail(msg: str) -> None:
    sys.exit(f"\nAI-OTS build error: {msg}\n")


def _site_include_dirs() -> list[str]:
    """Directories holding google/api/*.proto (googleapis-common-protos) and google/protobuf."""
    dirs: list[str] = []
    try:
        import grpc_tools  # type: ignore[import-untyped]

        dirs.append(str(Path(grpc_tools.__file__).parent / "_proto"))
    except ImportError:
        _fail("grpcio-tools is not installed in the build environment (see pyproject.toml).")
    try:
        import google.api.annotations_pb2 as ann

        dirs.append(str(Path(ann.__file__).parent.parent.parent))
    except ImportError:
        _fail("googleapis-common-protos is not installed in the build environment.")
    return dirs


def generate_protos() -> None:
    """Run protoc (grpcio-tools) with the mypy-protobuf plugins into protos/aiots/v1."""
    if not PROTO_FILES:
        _fail(f"no .proto files found under {PROTO_PKG}")
    from grpc_tools import protoc  # type: ignore[import-untyped]

    includes = [f"-I{PROTO_ROOT}", *(f"-I{d}" for d in _site_include_dirs())]
    plugin_args: list[str] = []
    for name in ("protoc-gen-mypy", "protoc-gen-mypy_grpc"):
        exe = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
        if exe is None:
            _fail(f"{name} not found: install mypy-protobuf in the build environment.")
        plugin_args.append(f"--plugin={name}={exe}")
    rel = [str(p.relative_to(PROTO_ROOT)) for p in PROTO_FILES]
    args = [
        "protoc",
        *includes,
        *plugin_args,
        f"--python_out={PROTO_ROOT}",
        f"--grpc_python_out={PROTO_ROOT}",
        f"--mypy_out={PROTO_ROOT}",
        f"--mypy_grpc_out={PROTO_ROOT}",
        *rel,
    ]
    if protoc.main(args) != 0:
        _fail("protoc failed on protos/aiots/v1 (see the messages above).")
    descriptor = PROTO_PKG / "aiots.pb"
    desc_args = [
        "protoc",
        *includes,
        "--include_imports",
        "--include_source_info",
        f"--descriptor_set_out={descriptor}",
        *rel,
        *EXTRA_DESCRIPTOR_PROTOS,
    ]
    if protoc.main(desc_args) != 0:
        _fail("protoc failed to write the descriptor set.")
    init = PROTO_PKG / "__init__.py"
    init.write_text('"""Generated protobuf/gRPC modules for aiots.v1 (never edit; the build regenerates)."""\n')
    (PROTO_PKG / "py.typed").write_text("")


def _has_compiler() -> bool:
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    return shutil.which(cc) is not None or shutil.which("cc") is not None


def _openmp_flags() -> tuple[list[str], list[str]]:
    """Return (compile, link) flags for OpenMP, or empty lists when the compiler lacks it."""
    if os.environ.get("AIOTS_NO_OPENMP"):
        return [], []
    cc = (sysconfig.get_config_var("CC") or "cc").split()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "omp.c"
        src.write_text("#include <omp.h>\nint main(void){return omp_get_max_threads() > 0 ? 0 : 1;}\n")
        try:
            res = subprocess.run(
                [*cc, "-fopenmp", str(src), "-o", str(Path(tmp) / "omp")],
                capture_output=True,
                timeout=60,
            )
        except (OSError, subprocess.TimeoutExpired):
            return [], []
    if res.returncode == 0:
        return ["-fopenmp"], ["-fopenmp"]
    print("AI-OTS build: the C compiler has no OpenMP; building the core serial.", file=sys.stderr)
    return [], []


_MVEC_PROBE = r"""
#include <math.h>
double aiots_vexp(double) __asm__("exp") __attribute__((simd("notinbranch"), const, nothrow));
double aiots_vlog(double) __asm__("log") __attribute__((simd("notinbranch"), const, nothrow));
double aiots_verfc(double) __asm__("erfc") __attribute__((simd("notinbranch"), const, nothrow));
#define BODY _Pragma("omp simd") for (int i = 0; i < n; i++) \
    o[i] = aiots_vexp(x[i]) + aiots_vlog(x[i]) + aiots_verfc(x[i]);
__attribute__((target("avx2,fma"))) void f2(const double* x, double* o, int n) { BODY }
__attribute__((target("avx512f,avx512dq,avx2,fma"))) void f5(const double* x, double* o, int n) { BODY }
void f1(const double* x, double* o, int n) { BODY }
int main(void) { double x[64] = {1.0}, o[64]; f1(x, o, 64); return o[0] > 0.0 ? 0 : 1; }
"""


def _mvec_flags() -> tuple[list[str], list[str]]:
    """(compile, link) flags for the SIMD price + Greeks loop (core/_opt_european.pxi): glibc's
    libmvec vector exp/log/erfc (glibc >= 2.35, x86-64, GCC). Empty when the probe fails: that
    loop then runs with scalar libm calls (same results, no SIMD). AIOTS_NO_MVEC=1 forces that."""
    if os.environ.get("AIOTS_NO_MVEC") or sysconfig.get_platform().split("-")[-1] != "x86_64":
        return [], []
    cc = (sysconfig.get_config_var("CC") or "cc").split()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "mvec.c"
        src.write_text(_MVEC_PROBE)
        try:
            res = subprocess.run(
                [*cc, "-O2", "-fopenmp-simd", str(src), "-o", str(Path(tmp) / "mvec"), "-lmvec", "-lm"],
                capture_output=True,
                timeout=60,
            )
            ok = res.returncode == 0 and subprocess.run([str(Path(tmp) / "mvec")], timeout=10).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            ok = False
    if ok:
        # -fno-trapping-math: selects between divisions may be if-converted (the vector loops have
        # branch-free lanes; FP exceptions are never enabled or read)
        return ["-DAIOTS_HAVE_MVEC", "-fopenmp-simd", "-fno-math-errno", "-fno-trapping-math"], ["-lmvec"]
    print("AI-OTS build: no libmvec (glibc >= 2.35 vector math); the Greeks loop runs scalar.", file=sys.stderr)
    return [], []


class BuildExt(build_ext):
    """Cythonize with the project's directives; clear message when there is no C compiler."""

    def run(self) -> None:
        if not _has_compiler():
            _fail("no C compiler found. On Debian/Ubuntu: `apt-get install build-essential python3-dev`.")
        super().run()


class BuildProtos(Command):
    """``python setup.py build_protos``: regenerate aiots.v1 from protos/."""

    description = "generate protobuf/gRPC modules, .pyi stubs and the descriptor set"
    user_options: ClassVar[list[tuple[str, str | None, str]]] = []

    def initialize_options(self) -> None:
        pass

    def finalize_options(self) -> None:
        pass

    def run(self) -> None:
        generate_protos()


class BuildPy(build_py):
    def run(self) -> None:
        generate_protos()
        super().run()


def _extensions() -> list[Extension]:
    try:
        import numpy as np
        from Cython.Build import cythonize
    except ImportError as exc:
        _fail(f"{exc.name} is needed to build the core; it is listed in pyproject.toml [build-system].")
    omp_c, omp_l = _openmp_flags()
    mvec_c, mvec_l = _mvec_flags()
    exts = [
        Extension(
            f"aiots.core.{pyx.stem}",
            [str(pyx.relative_to(ROOT))],
            include_dirs=[np.get_include(), str(ROOT / "core")],
            extra_compile_args=["-O3", *omp_c, *(mvec_c if pyx.stem == "options" else [])],
            extra_link_args=[*omp_l, *(mvec_l if pyx.stem == "options" else [])],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        )
        for pyx in sorted((ROOT / "core").glob("*.pyx"))
        # AIOTS_ONLY_EXT=indicators,patterns builds a subset (handy while developing one module).
        if not os.environ.get("AIOTS_ONLY_EXT") or pyx.stem in os.environ["AIOTS_ONLY_EXT"].split(",")
    ]
    return cythonize(
        exts,
        compiler_directives={
            "language_level": "3",
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
            "embedsignature": True,
        },
        compile_time_env={"HAVE_OPENMP": bool(omp_c)},
        quiet=True,
    )


# The generated package must exist before setuptools lists packages (editable installs too).
generate_protos()

PACKAGES = (
    ["aiots.core"]
    + [f"aiots.core.{p}" for p in find_packages("core")]
    + ["aiots.services"]
    + [f"aiots.services.{p}" for p in find_packages("services")]
    + ["aiots.gateway"]
    + [f"aiots.gateway.{p}" for p in find_packages("gateway")]
    + ["aiots.v1"]
)
PACKAGE_DIR = {
    "aiots.core": "core",
    "aiots.services": "services",
    "aiots.gateway": "gateway",
    "aiots.v1": "protos/aiots/v1",
}

setup(
    packages=PACKAGES,
    package_dir=PACKAGE_DIR,
    package_data={
        "aiots.core": ["*.pyi", "*.pxd", "py.typed"],
        "aiots.v1": ["*.pyi", "*.pb", "py.typed"],
        "aiots.services": ["py.typed", "storage/migrations/*.sql", "signals/*.yaml"],
        "aiots.gateway": ["py.typed"],
    },
    ext_modules=_extensions(),
    cmdclass={"build_ext": BuildExt, "build_py": BuildPy, "build_protos": BuildProtos},
    zip_safe=False,
)
