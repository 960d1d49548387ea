"""What OpenAI publishes about its organization Costs API, in one place: paths, page
limits, the grouping, the ``object`` names and the fields of a bucket and a result.

From openai/openai-openapi openapi.yaml (components.schemas UsageResponse, UsageTimeBucket
and CostsResult; CostsResult's fields checked at f85dbe2 of 2026-08-21), and from what the
live API really sends (a verbatim 2026 response): the live API's extra fields are listed
here too, as data the tap uses, never as an error for being unknown.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "AMOUNT_FIELDS",
    "BUCKET_FIELDS",
    "BUCKET_ISO",
    "BUCKET_OBJECT",
    "COSTS_GROUP_BY",
    "COSTS_PAGE_LIMIT",
    "COSTS_PATH",
    "DEFAULT_BASE_URL",
    "NAME_FIELDS",
    "PAGE_OBJECT",
    "PROJECTS_PAGE_LIMIT",
    "PROJECTS_PATH",
    "RESULT_FIELDS",
    "RESULT_OBJECT",
    "RESULT_ORGANIZATION",
    "RESULT_TEXT_FIELDS",
]

DEFAULT_BASE_URL: Final = "https://api.openai.com"
COSTS_PATH: Final = "/v1/organization/costs"
PROJECTS_PATH: Final = "/v1/organization/projects"
#: Buckets (days) per page. The API allows 1 to 180, but a page is one JSON document,
#: read whole: one day per page is what keeps a month out of memory (a busy day is tens of
#: MB of JSON; 180 of them are not). A month costs about 31 requests.
COSTS_PAGE_LIMIT: Final = 1
PROJECTS_PAGE_LIMIT: Final = 100
#: The export's grouping: one row per day, line item and project.
COSTS_GROUP_BY: Final = ("line_item", "project_id")

#: The ``object`` values of the published spec (UsageResponse, UsageTimeBucket, CostsResult).
PAGE_OBJECT: Final = "page"
BUCKET_OBJECT: Final = "bucket"
RESULT_OBJECT: Final = "organization.costs.result"

# A CostsResult's fields in the spec: object, amount {value, currency}, line_item,
# project_id, api_key_id, quantity, quantity_unit. The live API also sends
# organization_id, project_name, organization_name, user_id and user_email; user_id,
# user_email and api_source are columns of the dashboard's wider export too. Each becomes
# the export column of the same name.
RESULT_TEXT_FIELDS: Final = (
    "line_item",
    "project_id",
    "api_key_id",
    "quantity_unit",
    "user_id",
    "user_email",
    "api_source",
)
#: Fields a result may carry to fill a column, else from the projects list or settings.
NAME_FIELDS: Final = ("project_name", "organization_name")
RESULT_ORGANIZATION: Final = "organization_id"
RESULT_FIELDS: Final = frozenset(
    {"object", "amount", "quantity", *RESULT_TEXT_FIELDS, *NAME_FIELDS, RESULT_ORGANIZATION}
)
AMOUNT_FIELDS: Final = frozenset({"value", "currency"})
#: A bucket's fields: the spec's, and the ISO times the live API adds.
BUCKET_ISO: Final = {"start_time_iso": "start_time", "end_time_iso": "end_time"}
BUCKET_FIELDS: Final = frozenset(
    {"object", "start_time", "end_time", "results", "result", *BUCKET_ISO}
)
