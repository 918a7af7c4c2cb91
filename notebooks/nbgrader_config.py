# nbgrader course configuration for the FCN assignment (see "For instructors" in the README).
# Layout (nbgrader's): source/ (with solutions), release/ (for students), submitted/, autograded/, feedback/.
c = get_config()  # noqa: F821  (provided by nbgrader)

c.CourseDirectory.course_id = "fcn-segmentation"
c.CourseDirectory.source_directory = "source"
c.CourseDirectory.release_directory = "release"
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
# Submissions bring their trained weights in outputs/ (the mIoU tests read them); never a dataset copy.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "data"]

# Checking the saved weights of FCN-8s on the test split takes a while on a CPU.
c.Execute.timeout = 1800
