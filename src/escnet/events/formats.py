"""Event files practitioners' tools read: CSV, JSON, Raven Pro selection tables, Audacity labels.

Every writer takes the same :class:`~escnet.events.detect.Detection` list, so a format is one
small function (:data:`WRITERS`). Raven tables and Audacity label tracks are written and read
with ``crowsetta`` (its ``raven`` and ``aud-seq`` formats), so that the files follow the grammar
that library checks:

* **Raven Pro selection table** (``.txt``, tab-separated): the standard columns ``Selection``,
  ``View``, ``Channel``, ``Begin Time (s)``, ``End Time (s)``, ``Low Freq (Hz)``, ``High Freq
  (Hz)``, then ``Begin File``, ``File Offset (s)``, ``Class``, ``Score`` (the event's peak) and
  ``Mean Score``. For several files, one table whose times run on from file to file, as Raven
  shows a list of files opened together; ``File Offset (s)`` is the onset within the file.
* **Audacity label track** (``.txt``): ``onset<TAB>offset<TAB>label`` per event, no header
  (Audacity's standard label format); one file per recording, as a label track belongs to one.

All files are written atomically: a reader never sees half a table.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from escnet.cache import atomic_write_text
from escnet.errors import EscnetError
from escnet.events.detect import Detection, Event

__all__ = [
    "CSV_COLUMNS",
    "FORMATS",
    "RAVEN_COLUMNS",
    "WRITERS",
    "audacity_labels",
    "audacity_text",
    "csv_text",
    "json_text",
    "raven_text",
    "read_audacity",
    "read_raven",
    "write_events",
]

#: Columns of the CSV events.
CSV_COLUMNS = ("file", "onset", "offset", "label", "peak", "mean")
#: Columns of a Raven selection table, in order.
RAVEN_COLUMNS = (
    "Selection",
    "View",
    "Channel",
    "Begin Time (s)",
    "End Time (s)",
    "Low Freq (Hz)",
    "High Freq (Hz)",
    "Begin File",
    "File Offset (s)",
    "Class",
    "Score",
    "Mean Score",
)


def csv_text(detections: Sequence[Detection], **_: object) -> str:
    """Every event of every detection, one CSV row each (:data:`CSV_COLUMNS`)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for d in detections:
        for e in d.events:
            row = e.to_dict()
            writer.writerow([row[c] for c in CSV_COLUMNS])
    return out.getvalue()


def json_text(detections: Sequence[Detection], **_: object) -> str:
    """A JSON list with each detection's summary (:meth:`Detection.to_dict`)."""
    return json.dumps([d.to_dict() for d in detections], indent=2) + "\n"


def _via_crowsetta(write: Callable[[Path], None]) -> str:
    """The text a crowsetta writer writes (it takes only a path ending in ``.txt``)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "table.txt"
        write(path)
        return path.read_text(encoding="utf-8")


def raven_text(detections: Sequence[Detection], *, high_freq: float = 0.0, **_: object) -> str:
    """One Raven selection table for all ``detections``, times running on from file to file.

    Args:
        high_freq: the selections' upper frequency (Hz): the band the model heard, its sample
            rate's Nyquist frequency; 0 leaves the band to Raven's view.
    """
    import pandas as pd
    from crowsetta.formats.bbox import Raven

    rows: list[dict[str, object]] = []
    elapsed = 0.0
    for d in detections:
        for e in d.events:
            rows.append(
                {
                    "Selection": len(rows) + 1,
                    "View": "Spectrogram 1",
                    "Channel": 1,
                    "begin_time_s": round(elapsed + e.onset, 3),
                    "end_time_s": round(elapsed + e.offset, 3),
                    "low_freq_hz": 0.0,
                    "high_freq_hz": float(high_freq),
                    "Begin File": Path(e.file).name,
                    "File Offset (s)": round(e.onset, 3),
                    "annotation": e.label,
                    "Score": round(e.peak, 4),
                    "Mean Score": round(e.mean, 4),
                }
            )
        elapsed += d.duration
    if not rows:  # no events: the header alone (crowsetta's reader refuses such a table)
        return "\t".join(RAVEN_COLUMNS) + "\n"
    internal = dict(zip(RAVEN_COLUMNS, RAVEN_COLUMNS, strict=True))
    internal.update(
        {
            "Begin Time (s)": "begin_time_s",
            "End Time (s)": "end_time_s",
            "Low Freq (Hz)": "low_freq_hz",
            "High Freq (Hz)": "high_freq_hz",
            "Class": "annotation",
        }
    )
    frame = pd.DataFrame(rows)[[internal[c] for c in RAVEN_COLUMNS]]
    table = Raven(df=frame, annot_path=Path("table.txt"), annot_col="Class")
    return _via_crowsetta(table.to_file)


def audacity_text(detections: Sequence[Detection], **_: object) -> str:
    """The Audacity label track of one recording (``detections`` holds one)."""
    if len(detections) != 1:
        raise EscnetError(
            f"an Audacity label track belongs to one recording, got {len(detections)}"
        )
    return audacity_labels(detections[0].events)


def audacity_labels(events: Sequence[Event]) -> str:
    """The Audacity label track of ``events`` (one recording's)."""
    import numpy as np
    from crowsetta.formats.seq import AudSeq

    if not events:
        return ""
    track = AudSeq(
        start_times=np.array([round(e.onset, 3) for e in events]),
        end_times=np.array([round(e.offset, 3) for e in events]),
        labels=np.array([e.label for e in events]),
        annot_path=Path("labels.txt"),
    )
    return _via_crowsetta(track.to_file)


#: Format name -> function from detections to the file's text.
WRITERS: dict[str, Callable[..., str]] = {
    "csv": csv_text,
    "json": json_text,
    "raven": raven_text,
    "audacity": audacity_text,
}
#: The formats, in the order ``--format`` lists them.
FORMATS = tuple(WRITERS)


def write_events(
    detections: Sequence[Detection],
    path: str | os.PathLike[str],
    fmt: str,
    *,
    high_freq: float = 0.0,
) -> Path:
    """Write ``detections`` in format ``fmt`` to the file ``path``, atomically; returns it."""
    if fmt not in WRITERS:
        raise EscnetError(f"format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    target = Path(path)
    atomic_write_text(target, WRITERS[fmt](detections, high_freq=high_freq))
    return target


def read_raven(path: str | os.PathLike[str]) -> list[Event]:
    """The selections of a Raven table as events (times as the table gives them; ``file``
    from ``Begin File`` when the table has it), read with crowsetta."""
    from crowsetta.formats.bbox import Raven

    p = Path(path)
    if len(p.read_text(encoding="utf-8").strip().splitlines()) < 2:
        return []
    table = Raven.from_file(p, annot_col="Class")
    df = table.df
    files = df["Begin File"] if "Begin File" in df else [str(p)] * len(df)
    scores = df["Score"] if "Score" in df else [1.0] * len(df)
    means = df.get("Mean Score", scores)
    return [
        Event(str(f), float(b), float(e), str(label), float(s), float(m))
        for f, b, e, label, s, m in zip(
            files, df.begin_time_s, df.end_time_s, df["annotation"], scores, means, strict=True
        )
    ]


def read_audacity(path: str | os.PathLike[str], file: str = "") -> list[Event]:
    """The labels of an Audacity label track as events (peak and mean 1), read with
    crowsetta; ``file`` names the recording they belong to."""
    from crowsetta.formats.seq import AudSeq

    p = Path(path)
    if not p.read_text(encoding="utf-8").strip():
        return []
    track = AudSeq.from_file(p)
    return [
        Event(file, float(b), float(e), str(label), 1.0, 1.0)
        for b, e, label in zip(track.start_times, track.end_times, track.labels, strict=True)
    ]
