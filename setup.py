"""Packaging for workers (Dataflow stages the code with ``--setup_file ./setup.py``)."""
import pathlib

import setuptools

REQUIREMENTS = [
    line.strip() for line in (pathlib.Path(__file__).parent / 'requirements.txt').read_text().splitlines()
    if line.strip() and not line.startswith('#')
] if (pathlib.Path(__file__).parent / 'requirements.txt').exists() else []

setuptools.setup(
    name='audioset-beam',
    version='0.1.0',
    description='AudioSet to analysis-ready, hive-partitioned Parquet on Apache Beam',
    packages=setuptools.find_packages(include=['pipelines', 'pipelines.*', 'transforms', 'transforms.*',
                                                            'audioset_beam', 'audioset_beam.*']),
    python_requires='>=3.10',
    install_requires=REQUIREMENTS,
)
