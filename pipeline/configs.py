"""Pipeline settings: the name, the module callbacks by dotted name, and the Evaluator's gates."""

from model import constants

PIPELINE_NAME = "capuchin"

# Referenced by name, not by file, so any orchestrator that has the package installed can import
# them (Dataflow workers via setup.py, a Vertex image).
PREPROCESSING_FN = "model.preprocessing.preprocessing_fn"
RUN_FN = "model.model.run_fn"

# The architecture the runners train unless told otherwise (--architecture).
ARCHITECTURE = constants.ARCHITECTURE_DEFAULT
# Whether they distil the ensemble into one network and push that (--student / --no-student): it counts as
# well as its ensemble on the k-fold benchmark, with fewer false calls, at a third of the scoring cost
# (BENCHMARKS.md, "One network distilled from three"). --no-student pushes the ensemble itself.
STUDENT = True
# Recording-chain variations they train with unless told otherwise (--augmentations NAME ...; none with
# a bare --augmentations). None: noise inside the call band counted folds 0-1 better, but fold 2 worse, with
# false calls on its plain backgrounds (BENCHMARKS.md, "Tried and not kept").
AUGMENTATIONS = ()

# Evaluator gate (on the eval groups): a model is blessed only when, at some threshold where its precision is
# at least PRECISION_FLOOR, its recall is at least RECALL_FLOOR, and that recall fell by no more than
# MAX_REGRESSION against the last blessed model. At the model's own best threshold rather than at 0.5:
# the counting threshold is chosen after the push, and a student's scores sit higher than its ensemble's.
RECALL_FLOOR = 0.9
PRECISION_FLOOR = 0.9
MAX_REGRESSION = 0.0
# Points of the PR curve TFMA records, from which ThresholdSelector picks the counting threshold.
PR_CURVE_THRESHOLDS = 1_000
