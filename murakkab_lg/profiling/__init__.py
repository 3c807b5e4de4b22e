"""`murakkab profile`: measure quality and speed of deployments on this machine, resumably."""

from murakkab_lg.profiling.measure import ProfileError
from murakkab_lg.profiling.report import NullReporter, RichReporter, quality_table, speed_table
from murakkab_lg.profiling.runner import PRODUCED_BY, ProfileOptions, run_profile

__all__ = ("PRODUCED_BY", "NullReporter", "ProfileError", "ProfileOptions", "RichReporter", "quality_table",
           "run_profile", "speed_table")
