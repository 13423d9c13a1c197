"""Date and time formats of the admin and every other Django-rendered page (``FORMAT_MODULE_PATH``).

One format everywhere, ISO 8601 order in UTC (``TIME_ZONE``): ``2026-11-30 09:00:01``, the same as the
reconciliation log's time column (which adds milliseconds). Django's "en" locale would render
``Nov. 30, 2026, 9 a.m.`` on some pages. The API renders ISO 8601 itself (DRF's ``DATETIME_FORMAT``).
"""

DATE_FORMAT = "Y-m-d"
TIME_FORMAT = "H:i:s"
DATETIME_FORMAT = "Y-m-d H:i:s"
SHORT_DATE_FORMAT = "Y-m-d"
SHORT_DATETIME_FORMAT = "Y-m-d H:i:s"
