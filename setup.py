"""Builds the optional C hot path (``tracedthreading._speedups``); everything else is in pyproject.toml.

The extension is optional, as wrapt's is: without a compiler (or with a build error) the package installs
and runs on its pure-Python hot path, and ``python -m tracedthreading --version`` says so.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "tracedthreading._speedups",
            sources=["src/tracedthreading/_speedups.c"],
            optional=True,
            extra_compile_args=["-O2"],
        ),
    ],
)
