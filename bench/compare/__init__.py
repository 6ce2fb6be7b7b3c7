"""Paired comparisons: base and head trained interleaved on one machine, their step times
tested against each other (`session`: the whole comparison; `sides`: which code each runs;
`interleave`: the processes and the ABBA schedule; `side_process`: one side's process;
`verdict`: the statistics, the rule and the table)."""
