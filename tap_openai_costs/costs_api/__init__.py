"""OpenAI's organization Costs API: its published facts (``spec``), the ``client``, its
months written as the dashboard's exports (``rendering``), which months a run reads
(``schedule``), export months checked against it (``witness``). The tap imports from here."""

from tap_openai_costs.costs_api.client import (
    OpenAIAPIError,
    OpenAICostsClient,
    check_api_base_url,
)
from tap_openai_costs.costs_api.rendering import (
    API_LAYOUTS,
    FieldNotes,
    fetch_exports,
)
from tap_openai_costs.costs_api.schedule import months_due, previous_month
from tap_openai_costs.costs_api.spec import DEFAULT_BASE_URL
from tap_openai_costs.costs_api.witness import ApiWitness, cannot_check, disagreement

__all__ = [
    "API_LAYOUTS",
    "DEFAULT_BASE_URL",
    "ApiWitness",
    "FieldNotes",
    "OpenAIAPIError",
    "OpenAICostsClient",
    "cannot_check",
    "check_api_base_url",
    "disagreement",
    "fetch_exports",
    "months_due",
    "previous_month",
]
