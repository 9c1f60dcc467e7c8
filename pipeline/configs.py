"""Pipeline settings: the name, the module callbacks by dotted name, and the Evaluator's gates."""

from model import constants

PIPELINE_NAME = "capuchin"

# Referenced by name, not by file, so any orchestrator that has the package installed can import
# them (Dataflow workers via setup.py, a Vertex image).
PREPROCESSING_FN = "model.preprocessing.preprocessing_fn"
RUN_FN = "model.model.run_fn"

# The architecture the runners train unless told otherwise (--architecture).
ARCHITECTURE = constants.ARCHITECTURE_DEFAULT
# Whether they distil its ensemble into one network and push that (--student / --no-student). Not yet: it
# counts as well as the ensemble on the k-fold benchmark at a third of the scoring cost, but falls below
# the Evaluator's floors on clips more often, and then nothing is pushed (BENCHMARKS.md).
STUDENT = False

# Evaluator gates (at the Keras default threshold 0.5, on the eval groups). A model is blessed only
# when both floors hold and neither metric fell by more than MAX_REGRESSION against the last
# blessed model.
RECALL_FLOOR = 0.9
PRECISION_FLOOR = 0.9
MAX_REGRESSION = 0.0
# Points of the PR curve TFMA records, from which ThresholdSelector picks the counting threshold.
PR_CURVE_THRESHOLDS = 1_000
