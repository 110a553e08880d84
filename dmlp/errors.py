"""One exception type for problems with the user's input.

Every check that can fail because of what the user gave us (a file, a flag, a config key)
raises :class:`InputError` with a one-line message that names the file or option and what is
wrong.  The command-line entry points turn it into ``error: <message>`` on stderr and exit
code 2 (see :func:`dmlp.cli.run_cli`); library callers get an ordinary ``ValueError`` subclass.
"""


class InputError(ValueError):
    """Bad user input: the message is a single line naming the file/option and the problem."""


class NonFiniteError(InputError):
    """A stage of the method produced NaN or infinite values (the message names the stage).

    A subclass of :class:`InputError` so that the command line reports it the same way (one
    line, exit code 2, nothing written): in practice it comes from features the method cannot
    handle, and no partial or non-finite result is ever written.
    """


def check_finite(values, stage: str):
    """Return ``values`` (an array or tensor) if every entry is finite, else raise.

    Raises
    ------
    NonFiniteError
        Naming ``stage``, e.g. ``"transition EM produced non-finite values at step 3"``.
    """
    import numpy as np
    finite = bool(values.isfinite().all()) if hasattr(values, "isfinite") else bool(np.isfinite(values).all())
    if not finite:
        raise NonFiniteError(f"{stage} produced non-finite values")
    return values
