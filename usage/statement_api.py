"""Statement and what-if endpoints (SPEC §9) for a company API key: its own company only."""

from __future__ import annotations

import datetime as dt

from ninja import Path, Query, Router, Schema
from pydantic import BaseModel, Field

from core.api_schemas import PERIOD_PATTERN, Amount, ErrorOut, Period, money
from offices.selectors import company_scope
from usage.late import LateUsage
from usage.statements import MOVEMENTS, Statement, period_parse, statement_build, statement_scope
from usage.whatif import WhatIf, whatif_replay

# The path's period as the schema states it: a malformed one is a 422 before any lookup.
PERIOD_PATH = Path(..., pattern=PERIOD_PATTERN, description="Billing month, YYYY-MM.")

router = Router(tags=["statements"])
ERRORS = {code: ErrorOut for code in (400, 401, 404, 422)}


class BalanceStatementOut(BaseModel):
    balance: str = Field(description="pool, ai_agent or wallet:<office slug>.")
    label: str
    opening: Amount
    purchases: Amount
    grants: Amount
    auto_recharges: Amount
    transfers_in: Amount
    transfers_out: Amount = Field(description="Negative: credits moved out by pooling.")
    adjustments: Amount
    usage: Amount = Field(description="Negative: usage draws.")
    closing: Amount
    ties_out: bool = Field(description="opening + movements = closing, exactly.")


class OfficeStatementOut(BaseModel):
    office: str
    credit_kind: str
    included: Amount
    allowance_used: Amount
    pool_drawn: Amount
    wallet_drawn: Amount
    ai_drawn: Amount
    uncovered: Amount
    events: int
    cost: Amount
    parts_tie: bool = Field(description="cost = allowance used + drawn + uncovered.")
    records_tie: bool = Field(description="The figures equal the sums of the usage records.")


class StatementCheckOut(BaseModel):
    usage_cost: Amount
    sum_of_parts: Amount
    ties_out: bool


class LateUsageOut(BaseModel):
    events: int = Field(description="Usage events of the period charged after it ended.")
    credits: Amount = Field(description="Their cost (already in the office figures).")
    first_received_at: str | None = Field(description="When the first of them was charged.")
    last_received_at: str | None = Field(description="When the last of them was charged.")
    amended_on: str | None = Field(
        description="The day (company time zone) the period's figures last changed because "
        "of late usage; null when none arrived after the period ended."
    )


def late_usage_out(late: LateUsage) -> dict:
    def utc(moment):
        return moment.astimezone(dt.UTC).isoformat() if moment else None

    return {
        "events": late.events,
        "credits": money(late.cost),
        "first_received_at": utc(late.first_received),
        "last_received_at": utc(late.last_received),
        "amended_on": late.amended_on.isoformat() if late else None,
    }


class StatementOut(Schema):
    company: str
    period: Period
    starts_at: str
    ends_at: str
    complete: bool = Field(description="False for the current period: figures to date.")
    balances: list[BalanceStatementOut]
    offices: list[OfficeStatementOut]
    check: StatementCheckOut
    late_usage: LateUsageOut = Field(
        description="Usage of the period that arrived after it ended (late events, within "
        "the company's late-event window): the statement was amended by it."
    )


class OfficeWhatIfOut(BaseModel):
    office: str
    events: int
    actual_uncovered: Amount
    replayed_uncovered: Amount
    covered_by_pooling: Amount
    idle_in_other_wallets: Amount = Field(
        description="The most credits other offices' wallets held while this one ran over."
    )


class WhatIfOut(Schema):
    company: str
    period: Period
    pooled_throughout: bool
    records_replayed: int
    pool_opening: Amount
    inflows: Amount
    actual_uncovered: Amount
    replayed_uncovered: Amount
    covered_by_pooling: Amount
    wallets_closing: Amount
    replay_matches_actual: bool = Field(
        description="True when the replay equals what happened (always, if pooled throughout)."
    )
    offices: list[OfficeWhatIfOut]


def _balance_key(line, slugs) -> str:
    return f"wallet:{slugs.get(line.office_id, '')}" if line.office_id else str(line.kind)


def statement_out(statement: Statement) -> dict:
    slugs = dict(statement.company.offices.values_list("pk", "slug"))
    return {
        "company": statement.company.slug,
        "period": statement.period_text,
        "starts_at": statement.starts_at.isoformat(),
        "ends_at": statement.ends_at.isoformat(),
        "complete": statement.complete,
        "balances": [
            {
                "balance": _balance_key(line, slugs),
                "label": line.label,
                "opening": money(line.opening),
                **{m: money(getattr(line, m)) for m in MOVEMENTS},
                "closing": money(line.closing),
                "ties_out": line.ties_out,
            }
            for line in statement.balances
        ],
        "offices": [
            {
                "office": slugs.get(line.office_id, ""),
                "credit_kind": line.kind,
                "included": money(line.figures.included),
                "allowance_used": money(line.figures.used),
                "pool_drawn": money(line.figures.pool_drawn),
                "wallet_drawn": money(line.figures.wallet_drawn),
                "ai_drawn": money(line.figures.ai_drawn),
                "uncovered": money(line.figures.uncovered),
                "events": line.figures.events,
                "cost": money(line.figures.cost_total),
                "parts_tie": line.parts_tie,
                "records_tie": line.records_tie,
            }
            for line in statement.offices
        ],
        "check": {
            "usage_cost": money(statement.usage_cost),
            "sum_of_parts": money(statement.usage_parts),
            "ties_out": statement.ties_out,
        },
        "late_usage": late_usage_out(statement.late),
    }


def whatif_out(whatif: WhatIf) -> dict:
    slugs = dict(whatif.company.offices.values_list("pk", "slug"))
    return {
        "company": whatif.company.slug,
        "period": whatif.period_text,
        "pooled_throughout": whatif.pooled_throughout,
        "records_replayed": whatif.records,
        "pool_opening": money(whatif.pool_opening),
        "inflows": money(whatif.inflows),
        "actual_uncovered": money(whatif.actual_uncovered),
        "replayed_uncovered": money(whatif.replayed_uncovered),
        "covered_by_pooling": money(whatif.covered_by_pooling),
        "wallets_closing": money(whatif.wallets_closing),
        "replay_matches_actual": whatif.replay_matches_actual,
        "offices": [
            {
                "office": slugs.get(o.office_id, ""),
                "events": o.events,
                "actual_uncovered": money(o.actual_uncovered),
                "replayed_uncovered": money(o.replayed_uncovered),
                "covered_by_pooling": money(o.covered_by_pooling),
                "idle_in_other_wallets": money(o.idle_elsewhere),
            }
            for o in whatif.offices
        ],
    }


class StatementFilter(Schema):
    office: str | None = Field(None, description="One office's statement (its slug).")


@router.get(
    "/statements/{period}",
    response={200: StatementOut, **ERRORS},
    summary="Period statement",
    description=(
        "Per balance: opening, purchases, grants, auto-recharges, pooling transfers, "
        "adjustments, usage draws and closing (they tie out exactly); per office and credit "
        "kind: included, allowance used, drawn, uncovered, events and cost. `period` is "
        "YYYY-MM: malformed → 400; before the company existed or not begun → 404; an "
        "office not of this company → 404."
    ),
)
def statement(request, filters: Query[StatementFilter], period: str = PERIOD_PATH):
    scope = statement_scope(company_scope(request.auth.company), filters.office)
    start = period_parse(period, company=scope.company)
    return statement_out(statement_build(scope, period=start))


@router.get(
    "/what-if/{period}",
    response={200: WhatIfOut, **ERRORS},
    summary="What pooling would have saved",
    description=(
        "The standard usage charged in the period replayed as if pooling had been on "
        "throughout: actual and replayed uncovered overage per office. Read-only."
    ),
)
def what_if(request, period: str = PERIOD_PATH):
    company = request.auth.company
    start = period_parse(period, company=company)
    return whatif_out(whatif_replay(company, period=start))
