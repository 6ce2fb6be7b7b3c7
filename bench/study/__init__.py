"""Studies: a grid of architectures x seeds x precisions, run as independent training runs.

`plan` says which runs a study has (checked before anything starts), `estimate` how long
they should take on this machine, `worker` trains one run in a process of its own,
`executors` place the runs (`local`: one at a time, each in its own process; `ray`: Ray core
tasks on a local instance or a cluster), and `runner` drives a study to the usual records
layout, with live progress. `python -m bench study` and the main job use it.
"""
