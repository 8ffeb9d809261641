"""What the worker pool's fork server imports before it starts workers.

The modules every worker needs (`cytokit.gating`, `cytokit.engine.runner`),
imported with Ctrl-C ignored: the terminal's Ctrl-C reaches the fork server
too, which would otherwise print a traceback from the middle of an import
while the command itself says, in one line, how to resume. The handler is
put back afterwards, so the workers the server starts get the usual one.
"""

from __future__ import annotations

import signal
import threading

if threading.current_thread() is threading.main_thread():
    _before = signal.signal(signal.SIGINT, signal.SIG_IGN)
else:  # pragma: no cover - imported outside a fork server's main thread
    _before = None
try:
    import cytokit.engine.runner
    import cytokit.gating  # noqa: F401
finally:
    if _before is not None:
        signal.signal(signal.SIGINT, _before)
