"""
API-equivalent cost: what a request would have cost at Anthropic's API
prices, from the C{genai-prices} database (maintained upstream, with price
changes dated and long-context tiers), never from a table kept here.

Priced per request, at the request's time, per token kind: Anthropic's
C{input_tokens} count only the uncached input, so the input priced is the
uncached, cache-read and cache-write tokens together, of which the cache
reads and writes are priced at their own rates.  A model the database does
not know is unpriced (C{None}), never C{0}.
"""

from __future__ import annotations

import datetime
from typing import Optional

from genai_prices import Usage, calc_price

#: the plans' monthly prices in US dollars, for "saved"
PLANS = {"pro": 20.0, "max5": 100.0, "max20": 200.0}
#: the CLI's subscriptionType values that name one plan (C{max} is max5 or max20: the
#: planTier of CLI 2.1.332's C{auth status} says which, else C{--plan})
SUBSCRIPTION_PLANS = {"pro": "pro"}
TIER_PLANS = {"pro": "pro", "max_5x": "max5", "max_20x": "max20"}
#: the days in a month, for a plan's price over a shorter period
MONTH_DAYS = 30.0


def plan_for(
    option: Optional[str], subscription: Optional[str], tier: Optional[str] = None
) -> tuple[Optional[str], str]:
    """
    The plan "saved" is reckoned against and where it came from: the CLI's
    login where its C{planTier} or C{subscriptionType} names one plan, else
    C{option}.
    """
    if tier in TIER_PLANS:
        return TIER_PLANS[tier], "login"
    if subscription in SUBSCRIPTION_PLANS:
        return SUBSCRIPTION_PLANS[subscription], "login"
    if option is not None:
        return option, "option"
    return None, "unknown"


def saved(cost: float, plan: Optional[str], days: float) -> Optional[float]:
    """
    What C{cost} of API-equivalent use over C{days} saved against C{plan}'s
    price for those days (negative: the plan cost more), C{None} with no plan.
    """
    if plan is None:
        return None
    return cost - PLANS[plan] * days / MONTH_DAYS


def api_cost(
    model: str, input_tokens: int, output_tokens: int, cache_read: int, cache_write: int, when: float
) -> Optional[float]:
    """
    The API-equivalent cost in dollars of one request to C{model} at
    C{when} (a POSIX time), or C{None} when C{model} is not in the
    database.  A request that used no tokens costs nothing.
    """
    if not (input_tokens or output_tokens or cache_read or cache_write):
        return 0.0
    if not model:
        return None
    usage = Usage(
        input_tokens=input_tokens + cache_read + cache_write,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
    )
    try:
        price = calc_price(
            usage,
            model_ref=model,
            provider_id="anthropic",
            genai_request_timestamp=datetime.datetime.fromtimestamp(when, datetime.timezone.utc),
        )
    except (LookupError, ValueError):
        return None
    return float(price.total_price)
