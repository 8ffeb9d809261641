"""The version of cytokit, in a module of its own so that any layer can read it.

Stored results name the version that wrote them (task keys, study.json, the
store's schema row); those modules import it from here rather than from the
package's ``__init__``, which sits above them.
"""

__version__ = "0.1.0"
