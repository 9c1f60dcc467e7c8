"""Beam options in one place: what sends a job to Dataflow, and an offline check of them.

Every runner passes its unknown flags to Beam, so moving a job is a matter of flags:
locally `--direct_running_mode=multi_processing --direct_num_workers=N`; on Dataflow the args below.
"""

import os
from typing import List

from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions, SetupOptions, StandardOptions

# Dataflow workers install the project from this file, so they run the same code as the launcher.
SETUP_FILE = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "setup.py"))
# Cap on workers per Beam step: plenty for hundreds of clips; raise it for thousands of recording hours.
DATAFLOW_MAX_WORKERS = 10


def dataflow_beam_args(project: str, region: str, temp_location: str, max_workers: int = DATAFLOW_MAX_WORKERS) -> List[str]:
    """Beam args that send a job's Beam steps to Dataflow, with this project installed on the workers."""
    return [
        "--runner=DataflowRunner",
        f"--project={project}",
        f"--region={region}",
        f"--temp_location={temp_location}",
        f"--setup_file={SETUP_FILE}",
        f"--max_num_workers={max_workers}",
    ]


def runs_on_dataflow(beam_args: List[str]) -> bool:
    """Whether the Beam args send the job to Dataflow (--runner=DataflowRunner, --runner DataflowRunner, ...)."""
    runner = PipelineOptions(beam_args).view_as(StandardOptions).runner or ""
    return runner.lower() in ("dataflow", "dataflowrunner")


def with_setup_file(beam_args: List[str]) -> List[str]:
    """Adds --setup_file for Dataflow jobs that lack it: without it workers cannot import our packages."""
    if runs_on_dataflow(beam_args) and not PipelineOptions(beam_args).view_as(SetupOptions).setup_file:
        return [*beam_args, f"--setup_file={SETUP_FILE}"]
    return list(beam_args)


def validate_dataflow_args(beam_args: List[str]) -> List[str]:
    """Problems Dataflow would reject the options for (missing project, region, a non-gs:// temp location,
    no setup file), found offline: nothing is submitted and no credentials are needed."""
    from apache_beam.options.pipeline_options_validator import PipelineOptionsValidator
    from apache_beam.runners.dataflow.dataflow_runner import DataflowRunner

    # --dry_run keeps Beam's validator offline (it would otherwise query the buckets' policies).
    options = PipelineOptions([*beam_args, "--dry_run=True"])
    validator = PipelineOptionsValidator(options, DataflowRunner())
    # A bad --temp_location is reported here: past this point Beam would go online to make a default bucket.
    errors = validator.validate_gcs_path(options.view_as(GoogleCloudOptions), "temp_location")
    if not errors:
        errors = list(validator.validate())
    if not options.view_as(SetupOptions).setup_file:
        errors.append("Missing --setup_file: Dataflow workers would not have the capuchin packages.")
    return errors
