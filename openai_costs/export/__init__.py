"""Everything this product knows about OpenAI's cost export CSV, behind one import.

Pelanor accepts a month only as the file OpenAI's dashboard exports, unmodified. So the
header is treated as data (order kept, unknown columns carried), every row keeps its exact
source text, and the few facts about the file as a whole (BOM, line terminator, whether
the last line ends with one) travel in a :class:`Layout`. The tap scans and parses with
this package; the target writes and checks the upload file with it, row by row.

By concern: :mod:`.layout` (columns, header checks), :mod:`.calendar` (UTC days, months,
file names), :mod:`.rules` (row rules), :mod:`.reading` (scanning and re-reading files),
:mod:`.writing` (writing a month back, decimal text), :mod:`.digest` (the seal's digest).
"""

from openai_costs.export.calendar import (
    DAY_SECONDS,
    day_of,
    describe_days,
    full_days,
    iso_of,
    missing_days,
    month_days,
    month_of,
    today_utc,
    unix_of,
    upload_filename,
)
from openai_costs.export.digest import RowsDigest, rows_digest_update
from openai_costs.export.errors import ExportError
from openai_costs.export.layout import (
    BOM,
    CURRENT_COLUMNS,
    ISO_COLUMNS,
    MEASURE_COLUMNS,
    REQUIRED_COLUMNS,
    TIME_COLUMNS,
    Layout,
    check_columns,
    render_fields,
)
from openai_costs.export.reading import (
    MAX_LINE_BYTES,
    ROWS_BETWEEN_REPORTS,
    DaySlice,
    ExportScan,
    Row,
    RowParser,
    file_sha256,
    peek_layout,
    read_layout,
    read_rows,
    run_to_end,
    scan_export,
    scan_rows,
)
from openai_costs.export.rules import (
    AMOUNT_LIMIT,
    AMOUNT_LIMIT_TEXT,
    AMOUNT_MAX_LENGTH,
    AMOUNT_TEXT,
    RowChecker,
    amount_too_large,
)
from openai_costs.export.writing import (
    EXACT,
    ExportWriter,
    format_decimal,
    format_limit,
    write_export,
)

__all__ = [
    "AMOUNT_LIMIT",
    "AMOUNT_LIMIT_TEXT",
    "AMOUNT_MAX_LENGTH",
    "AMOUNT_TEXT",
    "BOM",
    "CURRENT_COLUMNS",
    "DAY_SECONDS",
    "EXACT",
    "ISO_COLUMNS",
    "MAX_LINE_BYTES",
    "MEASURE_COLUMNS",
    "REQUIRED_COLUMNS",
    "ROWS_BETWEEN_REPORTS",
    "TIME_COLUMNS",
    "DaySlice",
    "ExportError",
    "ExportScan",
    "ExportWriter",
    "Layout",
    "Row",
    "RowChecker",
    "RowParser",
    "RowsDigest",
    "amount_too_large",
    "check_columns",
    "day_of",
    "describe_days",
    "file_sha256",
    "format_decimal",
    "format_limit",
    "full_days",
    "iso_of",
    "missing_days",
    "month_days",
    "month_of",
    "peek_layout",
    "read_layout",
    "read_rows",
    "render_fields",
    "rows_digest_update",
    "run_to_end",
    "scan_export",
    "scan_rows",
    "today_utc",
    "unix_of",
    "upload_filename",
    "write_export",
]
