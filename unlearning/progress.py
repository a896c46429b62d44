"""Progress bars that read in a log: tqdm on a terminal, a few plain lines anywhere else.

Under nohup, in CI or in a file, a tqdm bar redrawn in place becomes thousands of carriage-return fragments (one
RMU run wrote 600). Off a terminal, `progress` writes one plain line at the start, at each quarter and at the end,
with tqdm's own counts, rate and times.
"""
import sys

from tqdm import tqdm


class progress(tqdm):  # noqa: N801 - used as tqdm is: progress(iterable, desc=..., unit=...)
    """tqdm; when its stream is not a terminal, a plain line at 0, 25, 50, 75 and 100% instead of a redrawn bar."""

    def __init__(self, *args, **kwargs):
        stream = kwargs.get("file") or sys.stderr
        self._plain = not (hasattr(stream, "isatty") and stream.isatty())
        self._last_quarter = -1
        if self._plain:
            # refresh on every item, so no quarter is skipped; display() decides what is written
            kwargs.update(mininterval=0, miniters=1, leave=False)
        super().__init__(*args, **kwargs)

    def display(self, msg=None, pos=None):
        if not self._plain:
            return super().display(msg, pos)
        if msg == "":  # close() clearing the bar: nothing to clear in a log (False: no carriage return either)
            return False
        # an unknown length gets its start here and its end in close()
        quarter = min(4, 4 * self.n // self.total) if self.total else 0
        if quarter > self._last_quarter:
            self._write_line(quarter)
        return True

    def close(self):
        if self._plain and not self.disable and self._last_quarter < 4:
            self._write_line(4)  # a loop that stopped early, or one of unknown length
        super().close()

    def _write_line(self, quarter: int) -> None:
        self._last_quarter = quarter
        self.fp.write(self.__str__().strip() + "\n")
        self.fp.flush()
