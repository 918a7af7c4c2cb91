"""The grader's judgements of what the child observed: a registry of judgements by rubric item, the table of
observations, the run's context."""
