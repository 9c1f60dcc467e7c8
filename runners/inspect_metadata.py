"""Lists what ML Metadata recorded for a local run: every pipeline run, each component's execution
and artifacts (with URIs), the eval metrics, the blessing, the pushed model and the threshold.

    python runners/inspect_metadata.py --output-dir runs/local [--latest]
"""

import argparse
import os

from runners import quiet  # noqa: F401  (must precede TensorFlow)
from pipeline import metadata


def run(argv=None) -> list:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", default=os.path.join("runs", "local"), help="the local runner's output dir")
    parser.add_argument("--latest", action="store_true", help="only the most recent run")
    quiet.add_verbose_flag(parser)
    args = parser.parse_args(argv)
    store = metadata.open_store(os.path.join(args.output_dir, metadata.METADATA_SQLITE))
    runs = metadata.list_runs(store)
    reports = [metadata.run_report(store, run) for run in (runs[-1:] if args.latest else runs)]
    print(f"{len(runs)} pipeline run(s) in {os.path.join(args.output_dir, metadata.METADATA_SQLITE)}\n")
    print("\n\n".join(metadata.format_run_report(report) for report in reports))
    return reports


if __name__ == "__main__":
    quiet.setup_logging()
    run()
