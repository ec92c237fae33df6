"""billtalk: a conversational payment assistant for residents of apartment communities.

This package is the composition root: the shared settings object, logging set-up,
database helpers and the one ``billtalk`` command line that mounts every
package's commands.
"""

__version__ = "0.1.0"
