"""Counts Capuchinbird calls in every recording of a folder (recursive) or glob, with a pushed model.

    python runners/count_calls.py --model runs/local/serving_model --recordings DIR_OR_GLOB --output-dir OUT
        [--threshold T | --calibrate] [--hop-seconds H] [--plots] [--verbose]
        [--window-by-window | --spectrograms-by-window] [--float32]  (slower ways, for comparison)
        [Beam args, e.g. --runner DataflowRunner ... or --runner=DaskRunner (pipeline/dask_cluster.py)]

Writes OUT/counts.csv (recording,capuchin_calls,calls_per_hour), detections.csv, selections.txt (Raven), failures.csv
and summary.json. Re-running into the same OUT skips finished recordings; a killed run resumes.

The operating point (threshold and merging rule) is the one the model carries: set by the pipeline's
site calibration, else its eval-clip threshold. --calibrate sets it on these recordings instead, for a
site with no call-free recordings: the calls the model carries are planted into the stretches of the
recordings it scores lowest (components/calibration.py); OUT/calibration.json and calibration.png say
what was chosen and why.
"""

import argparse
import json
import os
import sys

from runners import quiet  # noqa: F401  (must precede TensorFlow)
from components import calibration, counting, files, malloc, scoring
from model import features
from pipeline import beam_options, dask_cluster
from runners import pipeline_flags


def run(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a SavedModel, or the Pusher's serving_model folder")
    parser.add_argument("--recordings", required=True, help="a folder (recursive) or a glob of mp3/wav/flac")
    parser.add_argument("--output-dir", required=True)
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--threshold", type=float,
                        help="call threshold; default: the model's own operating point (site calibration or eval "
                             "clips), else 0.99")
    choice.add_argument("--calibrate", action="store_true",
                        help="choose the operating point on these recordings first (for a site without call-free "
                             "background recordings)")
    pipeline_flags.add_hop_seconds_flag(parser)
    parser.add_argument("--plots", action="store_true", help="a PNG per recording: scores and calls over time")
    parser.add_argument("--window-by-window", action="store_true",
                        help="run the networks on every window, not once over each whole recording "
                             "(slower; how models exported before whole-recording scoring count)")
    parser.add_argument("--spectrograms-by-window", action="store_true",
                        help="compute each window's spectrogram on its own, not the recording's log-mel once "
                             "(slower; how models exported before it count)")
    parser.add_argument("--float32", action="store_true",
                        help="run the networks in float32 even where the CPU computes bfloat16 natively (slower)")
    parser.add_argument("--validate-only", action="store_true",
                        help="check the Beam options (Dataflow: offline, no submission) and stop")
    quiet.add_verbose_flag(parser)
    args, beam_args = parser.parse_known_args(argv)
    beam_args = beam_options.with_setup_file(beam_args)
    if beam_options.runs_on_dataflow(beam_args):
        errors = beam_options.validate_dataflow_args(beam_args)
        if errors:
            sys.exit("Dataflow options are not valid:\n  " + "\n  ".join(errors))
    if args.validate_only:
        print(f"Valid Beam args: {' '.join(beam_args) or '(DirectRunner defaults)'}")
        return {"beam_args": beam_args}
    operating_point = calibrate(args) if args.calibrate else None
    # On Dask: a task per recording (the DaskRunner's Reshuffle does not spread them over the workers).
    with dask_cluster.cluster_for(beam_args, partition_size=1) as beam_args:
        summary = counting.run_counting(
            args.model, args.recordings, args.output_dir, args.threshold, args.hop_seconds, beam_args, args.plots,
            whole_recordings=not args.window_by_window, log_mel_once=not args.spectrograms_by_window,
            bfloat16=not args.float32,
            operating_point=operating_point,
        )
    print(summary_line(summary, args.output_dir))
    return summary


def calibrate(args) -> dict:
    """The operating point chosen on the recordings to be counted; calibration.json and .png in the output dir."""
    model_dir = scoring.resolve_model_dir(args.model)
    threshold = scoring.read_operating_point(model_dir)["threshold"]
    recordings = counting.list_recordings(args.recordings)
    print(f"Calibrating on {min(len(recordings), features.SELF_CALIBRATION_RECORDINGS)} of {len(recordings)} "
          "recordings ...", flush=True)
    try:
        result = calibration.calibrate_on_recordings(model_dir, recordings, args.hop_seconds, threshold, print)
    except ValueError as error:
        sys.exit(f"Cannot calibrate: {error}")
    files.makedirs(args.output_dir)
    with files.open_file(os.path.join(args.output_dir, calibration.CALIBRATION_JSON), "w") as f:
        f.write(json.dumps(result, indent=2))
    calibration.write_plot(result, threshold, os.path.join(args.output_dir, calibration.CALIBRATION_PNG))
    print("Calibrated " + calibration.summary_line(result), flush=True)
    return {**result["operating_point"], "source": "calibrated on the recordings counted",
            "why": calibration.summary_line(result) + f"; background: {result['background_rule']}",
            "calibration": os.path.join(args.output_dir, calibration.CALIBRATION_JSON)}


def summary_line(summary: dict, output_dir: str) -> str:
    failures = summary["failures"]
    rate = f", {summary['realtime_factor']:,.0f}x realtime" if summary["realtime_factor"] else ""
    return (
        f"Counted {summary['calls']} calls in {summary['counted']} recordings ({summary['audio_hours']:.2f} h of audio) "
        f"in {summary['wall_seconds']:.1f} s{rate}; {failures} failure{'s' if failures != 1 else ''}"
        f" → {os.path.join(output_dir, counting.COUNTS_CSV)}"
    )


if __name__ == "__main__":
    # Before the job starts its threads: each recording's buffers reuse the last one's memory, not fresh
    # pages (components/malloc.py). Not on import: a process that trains (the tests) keeps glibc's default.
    malloc.keep_freed_memory()
    quiet.setup_logging()
    run()
