"""Build hook: a wheel carries the mmseg configs of ``augment/`` as ``dpsims_aug/_shipped/augment``.

``augment/`` stays a top-level folder of the repository (users of a checkout edit and pass its files by path); a
wheel has no such folder, so the build copies it into the package, where ``dpsims_aug.config_names`` finds the
configs by name (``dpsims-aug seg-train fastscnn_embedded_pool``), as OpenMMLab's ``mim`` ships its configs.
Everything else is declared in setup.cfg.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithConfigs(build_py):
    def run(self):
        super().run()
        source = Path(__file__).resolve().parent / "augment"
        target = Path(self.build_lib) / "dpsims_aug" / "_shipped" / "augment"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildWithConfigs})
