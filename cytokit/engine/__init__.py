"""The resumable parallel runner: one task over many files, every finished file kept.

`cytokit.engine.runner`
    `run_batch`: hashes the files, skips those already done, runs the task
    on the rest (serially, in a process pool or on Dask) and stores each
    result as soon as it finishes.
`cytokit.engine._workers`
    What a worker does with one file, and the schedulers (backends) that run it.
`cytokit.engine.store`
    `RunStore`: the SQLite store of per-file results, keyed by content and task.
`cytokit.engine.codec`
    How a task's payload (tables, arrays, JSON values) is stored as bytes.
`cytokit.engine.hashing`
    Content hashes, stat stamps and row checksums.
`cytokit.engine.runlog`
    ``runlog.jsonl``: one line per command run into a folder (who, when, the
    command, versions, hashes of every input and output).
`cytokit.engine.verify`
    ``cytokit verify``: re-hash a logged run's files and say what changed; run it again.
`cytokit.engine.gate_files`
    The simplest task and its tables: ``cytokit gate``, a strategy applied
    to each file, per-gate counts and statistics.

``cytokit analyze`` runs its per-sample task (`cytokit.analysis.per_sample`)
on this engine and builds the study tables from the store.
"""
