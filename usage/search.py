"""The text search of the usage history (`?q=`): records whose user label or phone number
contains the text, case-insensitively (Django's `icontains`, wildcards taken literally).

A name is on few distinct user labels but on thousands of records spread over the whole
table, so summing the matches straight from the records reads most of the table. Instead
the matching labels are resolved first — a company has typically a few hundred distinct
labels, found by a skip scan of the (company, user label) index in about a millisecond —
and the records are selected by `user_label IN (labels)`: the same records, now an
index range that the covering index `usage_company_label` sums without reading the
table. Records found only by their phone number come through a trigram index on the
number without its formatting (PostgreSQL), which returns nothing at all for a name."""

from __future__ import annotations

import re

from django.db import connections
from django.db.models import F, Q, Value
from django.db.models.functions import Replace, StrIndex
from django.db.models.lookups import Contains, GreaterThan, IContains

from usage.models import UsageRecord

# More distinct labels than this in one company: the skip scan would take longer than
# the plain search (about 20 µs a label), and the label list would be a long IN (…).
LABELS_MAX = 2000

# Skip scan: from each label, the next greater one of the company, at most LABELS_MAX + 1
# steps; the matching labels are picked with the very expression Django's `icontains`
# compiles to on PostgreSQL.
_SKIP_SCAN_SQL = """
WITH RECURSIVE labels (label, n) AS (
    (SELECT user_label, 1 FROM usage_usagerecord
     WHERE company_id = %s ORDER BY user_label LIMIT 1)
    UNION ALL
    SELECT (SELECT u.user_label FROM usage_usagerecord u
            WHERE u.company_id = %s AND u.user_label > labels.label
            ORDER BY u.user_label LIMIT 1), labels.n + 1
    FROM labels
    WHERE labels.label IS NOT NULL AND labels.n <= %s
)
SELECT count(*), array_agg(label) FILTER (WHERE UPPER(label::text) LIKE UPPER(%s))
FROM labels WHERE label IS NOT NULL
"""


def user_labels_matching(scope, text: str, *, using: str | None = None) -> list[str] | None:
    """The distinct user labels in the scope's company (on PostgreSQL) or in the scope
    (elsewhere) that contain `text` like `user_label__icontains` does, or None when there
    are too many labels to list (the caller then filters the records directly)."""
    records = UsageRecord.objects.using(using) if using else UsageRecord.objects.all()
    connection = connections[records.db]
    if connection.vendor == "postgresql":
        pattern = f"%{connection.ops.prep_for_like_query(text)}%"
        company_id = scope.company.pk
        with connection.cursor() as cursor:
            cursor.execute(_SKIP_SCAN_SQL, [company_id, company_id, LABELS_MAX, pattern])
            seen, matching = cursor.fetchone()
        return None if seen > LABELS_MAX else sorted(matching or [])
    labels = list(
        scope.restrict(records)
        .filter(user_label__icontains=text)
        .order_by("user_label")
        .values_list("user_label", flat=True)
        .distinct()[: LABELS_MAX + 1]
    )
    return None if len(labels) > LABELS_MAX else labels


# pg_trgm indexes runs of letters and digits; a text without three of them in a row gives
# the trigram index nothing to look up, so its number matches need a scan of every record.
_TRIGRAM = re.compile(r"[^\W_]{3}")


def numbers_indexed_for(text: str) -> bool:
    """Whether the trigram index on phone numbers can find the numbers containing `text`
    (otherwise one plain pass over the records is cheaper than two)."""
    return bool(_TRIGRAM.search(strip_phone_formatting(text)))


# What people put between the digits of a phone number. A number is searched without
# them on both sides, so "+493055550171" finds "+49 30 5555 0171" and the other way round.
PHONE_FORMATTING = (" ", "-", "(", ")", ".", "/")
_NUMBER = re.compile(r"\+?[0-9]{3,}")
# A subscriber's own digits: what tells one number of a company from another.
NUMBER_TAIL = 7


def strip_phone_formatting(text: str) -> str:
    for char in PHONE_FORMATTING:
        text = text.replace(char, "")
    return text


def phone_digits(text: str) -> str | None:
    """`text` without phone formatting when what is left is a number (an optional "+"
    and at least 3 digits), else None."""
    text = strip_phone_formatting(text)
    return text if _NUMBER.fullmatch(text) else None


def unformatted_phone_number():
    """The record's phone number without formatting: the expression the one trigram index
    on numbers, `usage_phone_digits_trgm` (migrations usage 0009 and 0011), is built on."""
    expression = F("phone_number")
    for char in PHONE_FORMATTING:
        expression = Replace(expression, Value(char), Value(""))
    return expression


class _ContainsAnyCase(Contains):
    """`icontains` written as ILIKE on PostgreSQL, so the trigram index on the expression
    itself answers it (`icontains` compiles to UPPER(…) LIKE UPPER(…), which only an index
    on UPPER(…) would). Other databases: Django's `icontains`."""

    def as_sql(self, compiler, connection):
        return IContains(self.lhs, self.rhs).as_sql(compiler, connection)

    def as_postgresql(self, compiler, connection):
        lhs_sql, lhs_params = self.process_lhs(compiler, connection)
        rhs_sql, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs_sql} ILIKE {rhs_sql}", (*lhs_params, *rhs_params)


def number_condition(text: str) -> Q:
    """Records whose phone number contains `text`, formatting ignored when `text` is a
    number.

    Every text is looked up in the one trigram index, on the number without formatting.
    A number contains `text` only if its unformatted form contains `text` unformatted
    (removing characters from both sides keeps a match, and so does folding the case of
    each character): that is the condition the index answers for a text that is not a
    number, which is then tested against the number as written, with the same case
    folding (ILIKE on PostgreSQL)."""
    unformatted = unformatted_phone_number()
    digits = phone_digits(text)
    if digits is None:
        return Q(_ContainsAnyCase(unformatted, strip_phone_formatting(text))) & Q(
            _ContainsAnyCase(F("phone_number"), text)
        )
    if len(digits) <= NUMBER_TAIL:
        return Q(Contains(unformatted, digits))
    # The index is asked for the number's last digits only, and the whole number is then
    # found in the rows it returns (STRPOS: no index looks at it). A company's numbers
    # share their first digits (country and area code), so the trigrams of those are on
    # nearly every record, and the index would read all of them in every monthly
    # partition (docs/scaling.md, "The hot table's indexes and keys").
    return Q(Contains(unformatted, digits[-NUMBER_TAIL:])) & Q(
        GreaterThan(StrIndex(unformatted, Value(digits)), 0)
    )


def search_condition(text: str, labels: list[str] | None) -> Q:
    """Records whose label or number contains `text`; `labels` are the labels that do
    (from `user_labels_matching`), or None to test each record's label."""
    by_label = Q(user_label__icontains=text) if labels is None else Q(user_label__in=labels)
    return by_label | number_condition(text)
