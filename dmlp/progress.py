"""Progress bars on stderr: live on a terminal, a plain line now and then in a log file.

tqdm redraws its bar with carriage returns, which a terminal overwrites but a file keeps: a
redirected ``2> log`` of a long run fills with thousands of partial bars.  When stderr is not a
terminal every bar here is written as whole lines instead, at most one per
:data:`LOG_INTERVAL_S` per bar (plus its last state), so a log still shows each long phase
advancing.
"""
from __future__ import annotations

import re
import sys

from tqdm import tqdm as plain_tqdm
from tqdm.auto import tqdm

LOG_INTERVAL_S = 30.0          # seconds between two lines of one bar in a log file
_CONTROL = re.compile(r"\x1b\[[0-9;]*[A-Za-z]|\r")


class _LoggedBar(plain_tqdm):
    """A tqdm bar whose postfix changes wait for the next timed redraw (tqdm's redraw at once)."""

    def set_postfix(self, ordered_dict=None, refresh=True, **kwargs):
        super().set_postfix(ordered_dict, refresh=False, **kwargs)

    def set_postfix_str(self, s="", refresh=True):
        super().set_postfix_str(s, refresh=False)


class _LineWriter:
    """A file-like object for tqdm that turns each redraw into one line (blank redraws dropped)."""

    def __init__(self, stream):
        self.stream, self.last = stream, None

    def write(self, text: str) -> None:
        line = _CONTROL.sub("", text).strip()
        if line and line != self.last:          # close() redraws the last state
            self.stream.write(line + "\n")
            self.last = line

    def flush(self) -> None:
        self.stream.flush()


def progress_bar(iterable=None, *, desc: str, unit: str, total=None, initial: int = 0,
                 enabled: bool = True, leave: bool = False):
    """A tqdm bar on stderr, or a disabled one when ``enabled`` is false.

    Parameters
    ----------
    iterable : iterable, optional
        Wrapped as ``tqdm(iterable)`` does; ``None`` for a bar advanced by ``update()``.
    desc, unit : str
        The bar's label and the unit of one step.
    total, initial : int, optional
        Steps in all and steps already done (a resumed run).
    enabled : bool
        ``False`` gives a bar that draws nothing (``--quiet``, small inputs).
    leave : bool
        Keep the finished bar on a terminal.

    Returns
    -------
    tqdm.tqdm
    """
    stream = sys.stderr
    notebook = "notebook" in tqdm.__module__          # tqdm.auto's widget draws no carriage returns
    if not enabled or notebook or stream is None or getattr(stream, "isatty", lambda: False)():
        return tqdm(iterable, desc=desc, unit=unit, total=total, initial=initial, leave=leave,
                    disable=not enabled)
    return _LoggedBar(iterable, desc=desc, unit=unit, total=total, initial=initial, leave=True,
                file=_LineWriter(stream), mininterval=LOG_INTERVAL_S, maxinterval=LOG_INTERVAL_S * 2,
                dynamic_ncols=False, ncols=100, ascii=True)
