"""The flags and settings the three pipeline runners share (local, Dataflow, Kubeflow), in one place.

`add_pipeline_flags` adds them to a runner's parser, so every runner has every one of them;
`pipeline_settings` turns the parsed flags into `create_pipeline`'s keyword arguments, with the
defaults that depend on the architecture (epochs, ensemble seeds) worked out here, once. Each runner
adds only its own flags (where the data and artifacts live) and its orchestrator.
"""

import argparse
from typing import Dict, List, Optional, Sequence, Tuple

from model import constants, features
from pipeline import configs

EPOCHS_HELP = (f"training epochs (default {constants.EPOCHS[constants.ARCHITECTURE_DEFAULT]} for 'default', "
               f"{constants.EPOCHS[constants.ARCHITECTURE_TUTORIAL]} for 'tutorial')")
ENSEMBLE_SEEDS_HELP = ("'default' architecture only: one network per seed, trained one after the other and averaged "
                       f"(an ensemble); default {' '.join(map(str, constants.ENSEMBLE_SEEDS))}")


def add_hop_seconds_flag(parser: argparse.ArgumentParser) -> None:
    """--hop-seconds, the step between counting windows: the pipeline runners' and count_calls.py's."""
    parser.add_argument("--hop-seconds", type=float, default=features.HOP_SECONDS,
                        help=f"step between the 3 s counting windows (default {features.HOP_SECONDS}; "
                             "3 = the tutorial's)")


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def add_pipeline_flags(parser: argparse.ArgumentParser) -> None:
    """The training pipeline's flags: architecture and training, the Evaluator's gates, counting, caching."""
    parser.add_argument("--architecture", choices=constants.ARCHITECTURES, default=configs.ARCHITECTURE,
                        help="'default' (log-mel CNN scoring every 40 ms of a window, an ensemble) or 'tutorial' "
                             "(the tutorial's network on |STFT|)")
    parser.add_argument("--epochs", type=int, help=EPOCHS_HELP)
    parser.add_argument("--ensemble-seeds", type=int, nargs="+", metavar="SEED", help=ENSEMBLE_SEEDS_HELP)
    parser.add_argument("--student", action=argparse.BooleanOptionalAction, default=configs.STUDENT,
                        help="'default' architecture only: after the ensemble, distil it into one network (a third "
                             "of the scoring cost) and push that instead (default: on, configs.STUDENT; "
                             "--no-student pushes the ensemble)")
    parser.add_argument("--augmentations", nargs="*", choices=constants.AUGMENTATIONS,
                        default=list(configs.AUGMENTATIONS), metavar="NAME",
                        help="'default' architecture only: recording-chain and source variations to train with as "
                             f"well ({', '.join(constants.AUGMENTATIONS)}; model/constants.py; default: "
                             f"{' '.join(configs.AUGMENTATIONS) or 'none'}, configs.AUGMENTATIONS; no name: none)")
    parser.add_argument("--recall-floor", type=float, default=configs.RECALL_FLOOR,
                        help="the Evaluator blesses only a model that reaches this recall at a threshold where "
                             "precision holds its floor")
    parser.add_argument("--precision-floor", type=_fraction, default=configs.PRECISION_FLOOR,
                        help="the precision (0-1) at which the recall floor must be reached")
    parser.add_argument("--max-regression", type=float, default=configs.MAX_REGRESSION,
                        help="how far that recall may drop against the last blessed model")
    parser.add_argument("--recordings", help="recordings to count after a push (folder or glob; '': none)")
    parser.add_argument("--backgrounds", help="call-free recordings of the site (folder or glob; '': none) on which "
                                              "the counting operating point is calibrated")
    add_hop_seconds_flag(parser)
    parser.add_argument("--no-cache", action="store_true", help="re-run every component")


def _trainer_settings(architecture: str, epochs: Optional[int],
                      ensemble_seeds: Optional[Sequence[int]]) -> Tuple[int, List[int]]:
    """(epochs, ensemble seeds) for the Trainer: the given ones, else the architecture's defaults
    (model/constants.py). The tutorial architecture is one network, trained from constants.SEED."""
    if architecture != constants.ARCHITECTURE_DEFAULT:
        ensemble_seeds = [constants.SEED]
    return epochs or constants.EPOCHS[architecture], list(ensemble_seeds or constants.ENSEMBLE_SEEDS)


def pipeline_settings(args: argparse.Namespace) -> Dict:
    """`create_pipeline`'s keyword arguments from the flags of `add_pipeline_flags`, defaults resolved.

    The runner adds where things live: pipeline_root, ingested_dir, serving_model_dir, the metadata
    connection and the Beam args.
    """
    epochs, ensemble_seeds = _trainer_settings(args.architecture, args.epochs, args.ensemble_seeds)
    frame_model = args.architecture == constants.ARCHITECTURE_DEFAULT  # students and augmentations are its alone
    return dict(
        pipeline_name=configs.PIPELINE_NAME,
        preprocessing_fn=configs.PREPROCESSING_FN,
        run_fn=configs.RUN_FN,
        architecture=args.architecture,
        epochs=epochs,
        ensemble_seeds=ensemble_seeds,
        student=args.student and frame_model,
        augmentations=list(args.augmentations) if frame_model else [],
        recall_floor=args.recall_floor,
        precision_floor=args.precision_floor,
        max_regression=args.max_regression,
        pr_curve_thresholds=configs.PR_CURVE_THRESHOLDS,
        recordings=args.recordings,
        backgrounds=args.backgrounds,
        hop_seconds=args.hop_seconds,
        enable_cache=not args.no_cache,
    )
