"""`create_pipeline`: the TFX pipeline that trains, gates and pushes the call classifier.

ImportExampleGen → StatisticsGen → SchemaGen → ExampleValidator → Transform → Trainer
→ (latest blessed model) → Evaluator → Pusher → ThresholdSelector → CountCalibrator
→ CallCounter (when given recordings)
"""

from typing import Dict, List, Optional, Sequence

import tensorflow_model_analysis as tfma
from tfx import v1 as tfx

from components.call_counter import CallCounter, recordings_fingerprint
from components.count_calibrator import CountCalibrator, backgrounds_fingerprint
from components.dataset import EVAL_SPLIT, TRAIN_SPLIT
from components.threshold import ThresholdSelector
from model import constants, features


def _eval_config(recall_floor: float, precision_floor: float, max_regression: float, pr_points: int):
    """Blesses a model that reaches the recall floor at some threshold where precision holds its floor, and
    no less than the baseline does; recall and precision at 0.5 and a PR curve are recorded beside.

    The gate is at the model's own operating point, not at 0.5: counting uses a threshold chosen after the
    push (ThresholdSelector, CountCalibrator), and a distilled student ranks calls as well as its ensemble
    with its scores sitting higher (BENCHMARKS.md, "The Evaluator's gate").
    """
    gate = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": recall_floor}),
        # Ignored when there is no blessed baseline yet (the first run).
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER,
            absolute={"value": -max_regression - 1e-10},
        ),
    )
    gated = tfma.MetricConfig(
        class_name="RecallAtPrecision",
        config=f'{{"precision": {precision_floor}, "num_thresholds": {pr_points}}}',
        threshold=gate,
    )

    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                signature_name=constants.EXAMPLE_SIGNATURE,
                label_key=features.LABEL_KEY,
                prediction_key=constants.PREDICTION_KEY,
            )
        ],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[
                    tfma.MetricConfig(class_name="ExampleCount"),
                    tfma.MetricConfig(class_name="BinaryAccuracy"),
                    tfma.MetricConfig(class_name="AUCPrecisionRecall", config='{"name": "average_precision"}'),
                    tfma.MetricConfig(class_name="Recall"),
                    tfma.MetricConfig(class_name="Precision"),
                    gated,
                    tfma.MetricConfig(class_name="ConfusionMatrixPlot", config=f'{{"num_thresholds": {pr_points}}}'),
                ]
            )
        ],
    )


def create_pipeline(
    pipeline_name: str,
    pipeline_root: str,
    ingested_dir: str,
    preprocessing_fn: str,
    run_fn: str,
    serving_model_dir: str,
    architecture: str,
    epochs: int,
    ensemble_seeds: Sequence[int],
    recall_floor: float,
    precision_floor: float,
    max_regression: float,
    pr_curve_thresholds: int,
    hop_seconds: float,
    recordings: Optional[str] = None,
    backgrounds: Optional[str] = None,
    reviewed: Optional[Dict] = None,
    student: bool = False,
    augmentations: Sequence[str] = (),
    metadata_connection_config=None,
    beam_pipeline_args: Optional[List[str]] = None,
    enable_cache: bool = True,
) -> tfx.dsl.Pipeline:
    """Wires the training pipeline.

    Args:
      pipeline_name: name in ML Metadata.
      pipeline_root: where component outputs go.
      ingested_dir: the clip ingestion's output (train/ and eval/ gzipped TFRecords).
      preprocessing_fn: dotted name of the Transform callback.
      run_fn: dotted name of the Trainer callback.
      serving_model_dir: the Pusher's destination (one timestamped folder per pushed model).
      architecture: 'default' or 'tutorial' (model/constants.py); picks the spectrogram too.
      epochs: training epochs.
      ensemble_seeds: one network per seed, averaged ('default'); the tutorial network's one seed.
      recall_floor, precision_floor: the Evaluator blesses only a model whose recall reaches recall_floor
        at a threshold where its precision is at least precision_floor.
      max_regression: how far that recall may fall against the last blessed model.
      pr_curve_thresholds: points of the eval PR curve.
      hop_seconds: step between the counting windows.
      recordings: a folder or glob of recordings to count with the pushed model; None: no counting.
      backgrounds: a folder or glob of call-free recordings of the site, on which the counting operating
        point is calibrated; None: the threshold chosen on eval clips is the operating point.
      reviewed: the review labels the ingestion took ({'file', 'sha256', ...}, ingest.run_ingestion's
        summary), recorded in the Trainer's config so ML Metadata shows which review a model learnt from.
      student: distil the ensemble into one network and export that ('default' only; model/model.py).
      augmentations: recording-chain and source variations to train with as well (constants.AUGMENTATIONS).
      metadata_connection_config: ML Metadata connection (SQLite locally); None lets the runner choose.
      beam_pipeline_args: Beam options for the Beam-based components.
      enable_cache: reuse earlier outputs of components whose inputs did not change.

    The runners build these arguments from their shared flags (runners/pipeline_flags.py), where the
    defaults of epochs and ensemble seeds are worked out.
    """
    # Reads the ingestion's TFRecords; the train/eval split was made by source group at ingestion.
    example_gen = tfx.components.ImportExampleGen(
        input_base=ingested_dir,
        input_config=tfx.proto.Input(
            splits=[
                tfx.proto.Input.Split(name=TRAIN_SPLIT, pattern=f"{TRAIN_SPLIT}/*"),
                tfx.proto.Input.Split(name=EVAL_SPLIT, pattern=f"{EVAL_SPLIT}/*"),
            ]
        ),
    )
    # Per-feature statistics of both splits.
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    # A schema with fixed shapes, so `audio` reaches Transform as dense float32[batch, 48000].
    schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"], infer_feature_shape=True)
    # Flags anomalies (missing features, wrong shapes) against the schema.
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"]
    )
    # Waveforms → spectrograms, in the graph that the exported model will carry. The Trainer augments
    # waveforms and applies this graph itself, so no transformed copy of the data is written.
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        preprocessing_fn=preprocessing_fn,
        materialize=False,
        custom_config={"spectrogram": constants.SPECTROGRAM_OF[architecture]},
    )
    # Trains the CNN on augmented raw audio; TensorBoard logs land in the model run folder.
    trainer = tfx.components.Trainer(
        run_fn=run_fn,
        examples=example_gen.outputs["examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        train_args=tfx.proto.TrainArgs(),  # no step count: run_fn sets its own steps per epoch
        eval_args=tfx.proto.EvalArgs(),
        custom_config={"architecture": architecture, "epochs": epochs, "ensemble_seeds": list(ensemble_seeds),
                       "student": student, "augmentations": list(augmentations),
                       "reviewed": reviewed and {"file": reviewed["file"], "sha256": reviewed["sha256"]}},
    )
    # The last blessed model, the baseline the new one must not be worse than.
    model_resolver = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model_resolver")
    # Scores the eval groups on raw tf.Examples and blesses or not.
    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=model_resolver.outputs["model"],
        example_splits=[EVAL_SPLIT],
        eval_config=_eval_config(recall_floor, precision_floor, max_regression, pr_curve_thresholds),
    )
    # Copies a blessed model to the serving folder; does nothing for an unblessed one.
    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=serving_model_dir)
        ),
    )
    # The counting threshold chosen on eval and the PR curve, also written into the pushed model for the counting job.
    threshold_selector = ThresholdSelector(
        evaluation=evaluator.outputs["evaluation"], pushed_model=pusher.outputs["pushed_model"]
    )
    # The counting operating point, set on eval calls planted into the site's own background; also
    # written into the pushed model.
    count_calibrator = CountCalibrator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        threshold=threshold_selector.outputs["threshold"],
        pushed_model=pusher.outputs["pushed_model"],
        backgrounds=backgrounds or "",
        backgrounds_fingerprint=backgrounds_fingerprint(backgrounds or ""),
        hop_seconds=hop_seconds,
    )
    components = [
        example_gen, statistics_gen, schema_gen, example_validator, transform, trainer,
        model_resolver, evaluator, pusher, threshold_selector, count_calibrator,
    ]
    if recordings:
        # Counts calls with the pushed model; the fingerprint re-runs it when the recordings change.
        components.append(
            CallCounter(
                pushed_model=pusher.outputs["pushed_model"],
                calibration=count_calibrator.outputs["calibration_result"],
                recordings=recordings,
                recordings_fingerprint=recordings_fingerprint(recordings),
                hop_seconds=hop_seconds,
            )
        )
    return tfx.dsl.Pipeline(
        pipeline_name=pipeline_name,
        pipeline_root=pipeline_root,
        components=components,
        enable_cache=enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=beam_pipeline_args or [],
    )
