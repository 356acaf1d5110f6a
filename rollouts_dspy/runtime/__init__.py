"""The runtime under both engines: admission of paid work (the ledger and its one price estimator), the outage
detector, the evaluator (cache, budget, concurrency), recorded models, the journal checkpoint and the meter.

Imports no front door, no LLM library and no DSPy: the engines sit on it, the front doors sit on the engines.
"""

from .errors import BudgetExhausted, ProviderError, ProviderUnavailableError, counts_as_outage
from .evaluator import Evaluator, gather_all
from .journal import JOURNAL_FILE, Journal, read_journal
from .ledger import Budget, Ledger, room
from .meter import Meter, Spend
from .models import RecordedModel, message_digest
from .outage import DEFAULT_OUTAGE_THRESHOLD, OutageDetector
from .prices import PriceBook
from .run import RunContext, Runtime

__all__ = [
    "DEFAULT_OUTAGE_THRESHOLD",
    "JOURNAL_FILE",
    "Budget",
    "BudgetExhausted",
    "Evaluator",
    "Journal",
    "Ledger",
    "Meter",
    "OutageDetector",
    "PriceBook",
    "ProviderError",
    "ProviderUnavailableError",
    "RecordedModel",
    "RunContext",
    "Runtime",
    "Spend",
    "counts_as_outage",
    "gather_all",
    "message_digest",
    "read_journal",
    "room",
]
