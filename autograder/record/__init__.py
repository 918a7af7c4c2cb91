"""The one record of a class: its gradebook (:mod:`.gradebook`, SQLite) holds every student's identity,
checks, the TA's scores and the integrity flags; every file people read is a view of it. A run's journal
(:mod:`.journal`: which students it has finished, and the lock that keeps two runs apart) and gradebooks
from elsewhere (:mod:`.books`: an earlier version's reports folder read in once, shards joined) sit beside it.
"""
