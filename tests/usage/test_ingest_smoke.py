from decimal import Decimal

from credits.models import Account, AccountKind
from credits.services import credits_purchase
from tests.factories import event
from usage.services import usage_ingest


def test_overage_beyond_allowance_comes_from_the_office_wallet(company, care):
    # given: austin has 100 included credits and 30 in its wallet, pooling off
    austin = company.offices.get(slug="austin")
    credits_purchase(company=company, amount="30", office=austin, actor=care)
    # when: it sends 120 SMS
    (result,) = usage_ingest(company=company, events=[event("e1", office="austin", quantity="120")])
    # then: 100 from the allowance, 20 from its wallet, nothing uncovered
    record = result.record
    assert (record.allowance_part, record.wallet_part, record.uncovered) == (
        Decimal("100"),
        Decimal("20"),
        Decimal("0"),
    )
    assert Account.objects.get(office=austin, kind=AccountKind.WALLET).balance == Decimal("10")
