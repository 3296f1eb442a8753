"""Package discovery with the folder mapping of DESIGN.md: each top-level folder is a subpackage of `optiplan`,
and every package below it is found, so a new subpackage can never be left out of the wheel. The rest of the
metadata is in pyproject.toml."""

from setuptools import find_packages, setup

FOLDERS = {
    "optiplan": "api",
    "optiplan.planner": "planner",
    "optiplan.profiles": "profiles",
    "optiplan.optimizers": "optimizers",
    "optiplan.kernels": "kernels",
    "optiplan.templates": "templates",
}


def packages() -> list[str]:
    found = []
    for name, folder in FOLDERS.items():
        found += [name, *(f"{name}.{sub}" for sub in find_packages(folder))]
    return found


setup(packages=packages(), package_dir=FOLDERS)
