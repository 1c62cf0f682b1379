"""Only here for cffi: ``cffi_modules`` has no pyproject.toml spelling."""

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPy(build_py):
    # The checkout root is the `varpod` package; this file is not part of it.
    def find_package_modules(self, package, package_dir):
        modules = super().find_package_modules(package, package_dir)
        return [m for m in modules if not (package == "varpod" and m[1] == "setup")]


setup(cffi_modules=["native/_build.py:ffi"], cmdclass={"build_py": BuildPy})
