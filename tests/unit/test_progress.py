import io

from unlearning.progress import progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_off_a_terminal_a_long_loop_writes_five_plain_lines():
    log = io.StringIO()
    for _ in progress(range(600), desc="unlearn (RMU)", unit="step", file=log):
        pass
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert len(lines) == 5
    assert [line.split("|")[0].split()[-1] for line in lines] == ["0%", "25%", "50%", "75%", "100%"]
    assert all(line.startswith("unlearn (RMU):") for line in lines) and "600/600" in lines[-1]


def test_off_a_terminal_early_stops_unknown_lengths_and_postfixes_end_with_a_line():
    log = io.StringIO()
    bar = progress(range(10), desc="stops", file=log)
    for i in bar:
        bar.set_postfix(loss=f"{i:.3f}")
        if i == 2:
            break
    bar.close()
    for _ in progress(iter([1, 2, 3]), desc="unknown length", file=log):
        pass
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert lines[-1].startswith("unknown length: 3it")
    assert any(line.startswith("stops:") and "2/10" in line and "loss=2.000" in line for line in lines)
    assert len(lines) <= 5


def test_on_a_terminal_it_is_tqdm():
    screen = Terminal()
    for _ in progress(range(600), desc="unlearn (RMU)", unit="step", file=screen, mininterval=0):
        pass
    assert screen.getvalue().count("\r") > 5  # a bar redrawn in place
