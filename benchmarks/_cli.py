"""What the benchmark scripts share when run as commands: input they cannot use (an archive that is not there, splits
larger than the data, a folder that is not a bundle) ends in one line naming the file and the reason, as the
`face-report` command does, instead of a traceback."""
import os, sys
from pathlib import Path

from face_report.training import TrainingError


def run_main(main, *args):
    """`main(*args)`'s exit code, or exit 1 with one line on stderr where it raises the package's errors about its input:
    `DataError` and the other `ValueError`s, `TrainingError`, and `OSError`s such as a missing file.
    FACE_REPORT_DEBUG=1 shows the traceback instead."""
    try: return main(*args)
    except (ValueError, TrainingError, OSError) as e:
        if os.environ.get("FACE_REPORT_DEBUG"): raise
        said = f"{e.filename}: {e.strerror}" if isinstance(e, OSError) and e.filename and e.strerror else e
        sys.exit(f"{Path(sys.argv[0]).name}: error: {said}")


def prepare_splits_naming_data(data, **kwargs):
    """`face_report.data.prepare_splits(data, **kwargs)`, its `DataError`s naming the data: a data set too small for the
    splits is the one error whose message does not."""
    from face_report.data import DataError, data_source, prepare_splits
    source = data_source(data)
    try: return prepare_splits(source, **kwargs)
    except DataError as e: raise DataError(e if str(source) in str(e) else f"{source}: {e}") from None
