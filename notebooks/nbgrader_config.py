# nbgrader course configuration for the FCN assignment (see "For instructors" in the README).
# Layout (nbgrader's): source/ (with solutions), release/ (for students), submitted/, autograded/, feedback/.
c = get_config()  # noqa: F821  (provided by nbgrader)

c.CourseDirectory.course_id = "fcn-segmentation"
c.CourseDirectory.source_directory = "source"
c.CourseDirectory.release_directory = "release"
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
# Submissions bring outputs/ with the test predictions the mIoU items are graded from (a few hundred KB);
# the weights beside them (540 MB each) are over nbgrader's max_file_size (100 MB) and stay behind. Never the data.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "data"]

# nbgrader autograde (when used instead of `python -m autograder grade --gradebook`) runs the notebook's
# checks on a CPU: minutes.
c.Execute.timeout = 1800
