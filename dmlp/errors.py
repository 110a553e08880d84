"""One exception type for problems with the user's input.

Every check that can fail because of what the user gave us (a file, a flag, a config key)
raises :class:`InputError` with a one-line message that names the file or option and what is
wrong.  The command-line entry points turn it into ``error: <message>`` on stderr and exit
code 2 (see :func:`dmlp.cli.run_cli`); library callers get an ordinary ``ValueError`` subclass.
"""
import re

_NO_VALUE = object()


class InputError(ValueError):
    """Bad user input: the message is a single line naming the file/option and the problem.

    Parameters
    ----------
    message : str
        The problem and the way out.  With ``argument`` it follows the argument's name.
    argument : str, optional
        The library argument at fault (``"meta_size"``, ``"device"``); the message then reads
        ``meta_size=5: ...`` (with ``value``) or ``meta_size: ...``.  A command line shows its
        own flag there instead, by :meth:`for_flags`, without touching the message.
    value : object, optional
        The value the argument had.
    """

    def __init__(self, message: str, *, argument: str = None, value=_NO_VALUE):
        self.message, self.argument, self.value = message, argument, value
        if argument is None:
            text = message
        elif value is _NO_VALUE:
            text = f"{argument}: {message}"
        else:
            text = f"{argument}={value!r}: {message}"
        super().__init__(text)

    def for_flags(self, flags: dict) -> "InputError":
        """The same error in a command line's words: ``flags`` maps library names to flags.

        The argument at fault and every option the message suggests (``meta_index``,
        ``auto_meta=True``) are named by their flags instead.

        Returns
        -------
        InputError
            ``--meta-size 5: ... give --meta-index ...`` for ``argument="meta_size"``, ``value=5``,
            a message suggesting ``meta_index`` and ``flags={"meta_size": "--meta-size",
            "meta_index": "--meta-index"}``.
        """
        message = self.message
        for name in sorted(flags, key=len, reverse=True):       # auto_meta=True before auto_meta
            message = re.sub(rf"(?<![\w-]){re.escape(name)}(?![\w=])", flags[name], message)
        flag = flags.get(self.argument) if self.argument else None
        if flag is None:
            return self if message == self.message else type(self)(message, argument=self.argument, value=self.value)
        name = flag if self.value is _NO_VALUE else f"{flag} {self.value}"
        return type(self)(f"{name}: {message}")


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
