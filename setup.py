"""Installs capuchin's packages, so the runners, the tests and Beam/Dataflow workers import the same code.

Pinned versions live in constraints.txt: `pip install -c constraints.txt -e .[dev]` (see Makefile).
"""

import setuptools

setuptools.setup(
    name="capuchin",
    version="0.1.0",
    description="Finds and counts Capuchinbird calls in forest recordings (TFX + Beam).",
    python_requires=">=3.10,<3.11",
    packages=setuptools.find_packages(include=["model", "components", "components.*", "pipeline", "runners"]),
    install_requires=[
        "tfx==1.16.0",
        "tensorflow-io==0.37.0",
        "dill==0.3.1.1",  # tfx_bsl imports it; Beam 2.74 no longer pulls it in
        "kfp-pipeline-spec==0.2.2",  # enables KubeflowV2DagRunner without the full kfp
        "soundfile",  # bundles libsndfile 1.2.2: wav, flac and mp3
        "soxr",
        "scipy",
        "matplotlib",
        # Beam's DaskRunner (apache-beam[dask]): the jobs on a dask.distributed cluster (docs/scale.md).
        "dask[distributed]==2026.8.0",
        "distributed==2026.8.0",
    ],
    # The review page's template (components/review_page.py reads it beside the module).
    package_data={"components": ["review_page.html"]},
    # dev: playwright drives Debian's chromium in the review page's browser test (.ci/run installs chromium).
    # slurm: dask_jobqueue.SLURMCluster, for the machine that submits the workers (docs/scale.md).
    extras_require={"dev": ["pytest", "playwright"], "slurm": ["dask-jobqueue==0.9.0"]},
)
