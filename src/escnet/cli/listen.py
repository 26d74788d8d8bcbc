"""``escnet listen``: a microphone or a PCM stream labelled as it sounds, one line per event.

Torch is imported only by the torch backend, as for ``escnet predict``: this module imports the
live package and the model inside :func:`cmd_listen`.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

from escnet.cli._common import bounded, finite_number, seconds, whole_number
from escnet.cli.inference import backend_args, model_args
from escnet.errors import ParameterError
from escnet.inference.limits import MAX_BATCH, MAX_OVERLAP, MAX_WINDOW_SECONDS

#: Columns of the ``--csv`` event table.
CSV_COLUMNS = ("onset", "offset", "label", "score")

LISTEN_EPILOG = """output: one line per sound as it is heard, ONSET_SECONDS  LABEL  SCORE
  (seconds from the start of the input; the score is the highest so far); with --csv, a row
  per sound once it has ended (onset, offset, label, score), appended.

exit status:
  0    the input ended, or Ctrl-C stopped the listening (open events are written first)
  2    a bad argument or model, no microphone, or unreadable input

example:
  ffmpeg -i URL -f s16le -ac 1 -ar 32000 - | escnet listen MODEL --input - --rate 32000"""


class EventTable:
    """The ``--csv`` file: event rows appended (one write and a flush each, so a stopped
    process leaves every finished row), the header written when the file is new or empty.

    Raises:
        ParameterError: the file has other columns (not a table this command wrote).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        header = ",".join(CSV_COLUMNS)
        if self.path.is_file() and self.path.stat().st_size:
            with self.path.open(encoding="utf-8", errors="replace") as f:
                first = f.readline().strip()
            if first != header:
                raise ParameterError(
                    f"--csv {self.path}: its first line is not {header!r} (not an event table "
                    "of escnet listen); pass a new file name"
                )
            self._file: IO[str] = self.path.open("a", encoding="utf-8", newline="")
        else:
            self._file = self.path.open("a", encoding="utf-8", newline="")
            self._file.write(header + "\n")
            self._file.flush()

    def write(self, row: dict[str, object]) -> None:
        line = _csv_line([row[c] for c in CSV_COLUMNS])
        self._file.write(line)
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _csv_line(values: list[object]) -> str:
    import io

    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()


def _input_blocks(
    args: argparse.Namespace, stack: ExitStack
) -> tuple[int, str, Iterator[Any], Any]:
    """(sample rate, what it is, blocks, the microphone or None) of the input the arguments
    name."""
    from escnet.live import Microphone, pcm16_blocks

    if args.input is not None:
        if args.rate is None:
            raise ParameterError(
                "--input needs --rate: raw PCM carries no sample rate (e.g. --rate 32000 for "
                "ffmpeg ... -f s16le -ac 1 -ar 32000 -)"
            )
        if args.input == "-":
            blocks = pcm16_blocks(sys.stdin.buffer, name="--input -")
            return args.rate, "standard input", blocks, None
        stream = stack.enter_context(Path(args.input).open("rb"))  # noqa: SIM115
        blocks = pcm16_blocks(stream, name=f"--input {args.input}")
        return args.rate, str(args.input), blocks, None
    mic = stack.enter_context(Microphone(_device(args.device), args.rate))
    return mic.sample_rate, f"microphone {mic.name!r}", mic.blocks(), mic


def cmd_listen(args: argparse.Namespace) -> int:
    from escnet.inference import load
    from escnet.live import Listener, TrackerConfig

    config = TrackerConfig(
        onset=args.onset,
        # Unless given, the offset follows an onset set below its default.
        offset=min(0.3, args.onset) if args.offset is None else args.offset,
        min_duration=args.min_duration,
        confident=args.confident,
        silence_db=args.silence_db,
    )
    with ExitStack() as stack:
        table = EventTable(args.csv) if args.csv else None
        if table is not None:
            stack.callback(table.close)
        predictor = load(
            args.model,
            backend=args.backend,
            fold=args.fold,
            threads=args.threads,
            window=args.window,
            batch_size=args.batch_size,
        )
        rate, what, blocks, mic = _input_blocks(args, stack)
        listener = Listener(predictor, rate, hop=args.hop, config=config)
        if not args.quiet:
            print(
                f"escnet listen: {predictor.spec.name} from {predictor.spec.path}; "
                f"{listener.window:g}-s windows every {listener.hop:g} s; {what} at {rate} Hz "
                "(Ctrl-C stops)",
                file=sys.stderr,
                flush=True,
            )
        stopped = False
        try:
            for block in blocks:
                _report(listener.feed(block), table)
            _report(listener.end(), table)
        except KeyboardInterrupt:  # the normal end of listening to a microphone
            stopped = True
            _report(listener.close(), table)
        if not args.quiet:
            how = "stopped (Ctrl-C)" if stopped else "end of input"
            print(
                f"escnet listen: {how} after {listener.duration:.2f} s of audio: "
                f"{listener.tracker.reported} event(s), {listener.windows} window(s), "
                f"{listener.scored} scored (the others silent)",
                file=sys.stderr,
            )
        if mic is not None and mic.dropped:
            print(
                f"escnet listen: warning: {mic.dropped} block(s) of audio were dropped: the "
                "model is slower than real time here; pass a larger --hop, or --backend onnx",
                file=sys.stderr,
            )
    return 0


def _report(events: list[Any], table: EventTable | None) -> None:
    for event in events:
        if event.ongoing:
            print(f"{event.onset:8.2f}  {event.label}  {event.score:.3f}", flush=True)
        elif table is not None:
            table.write(event.to_dict())


def _device(text: str | None) -> int | str | None:
    """``--device``: an index, or a part of a device's name."""
    if text is None:
        return None
    return int(text) if text.isdigit() else text


def register(sub: Any) -> None:
    """Add ``escnet listen`` to the ``escnet`` parser."""
    p = sub.add_parser(
        "listen",
        help="label a microphone or a PCM stream as it sounds, one line per event",
        epilog=LISTEN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    model_args(p)
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "--input",
        metavar="FILE|-",
        help="raw 16-bit little-endian mono PCM from FILE or - (standard input), with --rate; "
        "default: the microphone",
    )
    source.add_argument(
        "--device", help="microphone: a device index or part of its name (python -m sounddevice)"
    )
    p.add_argument(
        "--rate",
        type=whole_number(4000, 384_000),
        help="sample rate in Hz: required with --input; the microphone's (default: its own)",
    )
    p.add_argument(
        "--window",
        type=seconds(MAX_WINDOW_SECONDS),
        help="window in seconds (default: the model's clip length)",
    )
    p.add_argument(
        "--hop",
        type=seconds(MAX_WINDOW_SECONDS),
        help="seconds between windows (default: window / 4; at least window / "
        f"{MAX_OVERLAP}): a sound is heard at most a hop after it ends",
    )
    p.add_argument(
        "--onset",
        type=bounded(1.0, "a score"),
        default=0.5,
        help="score that starts an event (0.5)",
    )
    p.add_argument(
        "--offset",
        type=bounded(1.0, "a score"),
        help="score under which an event ends (0.3, or --onset when that is lower; at most "
        "--onset)",
    )
    p.add_argument(
        "--min-duration",
        type=seconds(3600.0, zero=True),
        default=0.0,
        help="seconds a sound must last to be reported (0)",
    )
    p.add_argument(
        "--confident",
        type=bounded(1.0, "a score"),
        default=0.9,
        help="score at which one window is enough to print a sound (0.9); under it, a second "
        "window must hear it too",
    )
    p.add_argument(
        "--silence-db",
        type=finite_number,
        default=-60.0,
        help="windows quieter than this (loudest 50-ms frame, dB full scale) are silence: "
        "not scored, no event (-60)",
    )
    p.add_argument("--csv", metavar="FILE", help="append the events to this CSV table")
    p.add_argument(
        "--batch-size",
        type=whole_number(1, MAX_BATCH),
        help="windows per model call when input comes faster than real time (default: torch "
        "8, onnx 1)",
    )
    backend_args(p)
    p.set_defaults(func=cmd_listen)
