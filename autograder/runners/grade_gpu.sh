#!/usr/bin/env bash
# Grade a class on one GPU machine, trained weights included.
#   autograder/runners/grade_gpu.sh COURSE_DIR [ASSIGNMENT]
# COURSE_DIR is the nbgrader course folder (its submitted/<student>/<assignment>/ holds each notebook and
# its outputs/fcn32s.pt, outputs/fcn8s.pt). Needs FCNKIT_DATA pointing at the full dataset.
# Writes COURSE_DIR/grading-reports/{grades.csv,<student>.json,feedback/<student>.html}.
set -euo pipefail
course=${1:?usage: grade_gpu.sh COURSE_DIR [ASSIGNMENT]}
assignment=${2:-fcn_segmentation}
: "${FCNKIT_DATA:?set FCNKIT_DATA to the CMP Facade folder (python -m dataset_tools fetch --dest DIR)}"
python -m dataset_tools verify "$FCNKIT_DATA"
python -m autograder grade "$course/submitted" \
    --checkpoints "$course/submitted" \
    --device cuda \
    --out "$course/grading-reports"
