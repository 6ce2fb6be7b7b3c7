"""Paired comparisons: base and head trained interleaved on one machine, step times tested.

The modules (`session`: the whole comparison; `sides`: which code each runs;
`interleave`: the processes and the ABBA schedule; `side_process`: one side's process;
`verdict`: the statistics, the rule and the table).
"""
