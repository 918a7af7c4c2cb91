"""What graders and students read: the score table, grades.csv, the feedback pages, the class overview, Canvas."""
