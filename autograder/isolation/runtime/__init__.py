"""What runs inside the grading child: the record codec, the child's main loop and its observation steps. Copied into
the runtime folder the child imports from; the grader imports only the codec."""
