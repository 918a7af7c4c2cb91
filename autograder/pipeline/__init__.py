"""One grading run, by stage: discovering submissions, extracting their definitions, running them confined, judging."""
