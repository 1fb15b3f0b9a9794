"""Foundation fix: the Customer Care group (a data migration) survives transactional
tests, which flush every table; the `care` fixture must still hold the pooling permission."""

import pytest

from tests.factories import customer_care_user


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("run", [1, 2])
def test_care_user_can_toggle_pooling_after_a_flush(run):
    # The second run starts after the first one's flush removed the migrated group.
    user = customer_care_user(username=f"care{run}")
    assert user.has_perm("offices.change_pooling")
    assert user.has_perm("credits.view_ledgerentry")
