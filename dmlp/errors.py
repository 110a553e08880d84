"""One exception type for problems with the user's input.

Every check that can fail because of what the user gave us (a file, a flag, a config key)
raises :class:`InputError` with a one-line message that names the file or option and what is
wrong.  The command-line entry points turn it into ``error: <message>`` on stderr and exit
code 2 (see :func:`dmlp.cli.run_cli`); library callers get an ordinary ``ValueError`` subclass.
"""


class InputError(ValueError):
    """Bad user input: the message is a single line naming the file/option and the problem."""
