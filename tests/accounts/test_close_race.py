"""A close racing deposits on PostgreSQL: a closed account never holds money.

Each round opens an empty account, then releases one close and fifteen deposits of 5.00 at the same instant, each
on its own thread and database connection. Whoever wins, the books agree with the outcome: either the close lost
(``account_not_empty``) and the account is active with what was deposited, or the close won and every deposit
that came after it was refused (``account_closed``), so the closed account holds exactly zero.
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal as D

import pytest
from django.db import connections

from accounts import services
from accounts.models import AccountStatus, Balance
from exchange import errors
from ledger.models import JournalEntry
from tests.factories import UserFactory, make_account

pytestmark = pytest.mark.django_db(transaction=True)

ROUNDS = 40
DEPOSITS = 15
# The deposits start this much after the close, round by round: released at the same instant, the first deposit
# usually reaches the database first and the close (rightly) fails; a head start of a few milliseconds lets the
# close win some rounds while later deposits are still in flight, which is the race that stranded money.
HEAD_STARTS = (0.0, 0.001, 0.002, 0.004)


class Crew:
    """``size`` threads kept for every round (one connection each, opened once), released together per round."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.start = threading.Barrier(size + 1)
        self.done = threading.Barrier(size + 1)
        self.work: list = [None] * size
        self.results: list = [None] * size
        self.stop = False
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(size)]
        for thread in self.threads:
            thread.start()

    def _run(self, i: int) -> None:
        try:
            while True:
                self.start.wait(timeout=30)
                if self.stop:
                    return
                try:
                    self.results[i] = self.work[i]()
                except Exception as exc:  # collected and asserted on by the round
                    self.results[i] = exc
                self.done.wait(timeout=30)
        finally:
            connections.close_all()

    def round(self, work: list) -> list:
        self.work, self.results = work, [None] * self.size
        self.start.wait(timeout=30)
        self.done.wait(timeout=60)
        return list(self.results)

    def close(self) -> None:
        self.stop = True
        self.start.wait(timeout=30)
        for thread in self.threads:
            thread.join(timeout=30)


def test_a_closed_account_never_holds_money_when_a_close_races_deposits(postgres):
    operator = UserFactory(username="ops")
    owner = UserFactory(username="carol")
    crew = Crew(DEPOSITS + 1)
    close_won = 0
    try:
        for round_no in range(ROUNDS):
            account = make_account(owner=owner, label=f"round {round_no}")

            def close(account=account):
                return services.account_close(account=account, actor=operator, reason="race")

            head_start = HEAD_STARTS[round_no % len(HEAD_STARTS)]

            def deposit(account=account, delay=head_start):
                time.sleep(delay)
                return services.deposit_create(account=account, asset="USD", amount="5.00", actor=operator)

            results = crew.round([close] + [deposit] * DEPOSITS)

            closed, deposits = results[0], results[1:]
            landed = [r for r in deposits if isinstance(r, JournalEntry)]
            refused = [r for r in deposits if isinstance(r, errors.AccountClosed)]
            assert len(landed) + len(refused) == DEPOSITS, deposits
            account.refresh_from_db()
            usd = Balance.objects.get(account=account, asset_id="USD")
            if isinstance(closed, errors.AccountNotEmpty):
                assert account.status == AccountStatus.ACTIVE
                assert refused == []
            else:
                assert not isinstance(closed, Exception), closed
                close_won += 1
                assert account.status == AccountStatus.CLOSED
                # Deposits that committed before the close would have made it fail; so none did.
                assert landed == [], f"round {round_no}: {len(landed)} deposits landed on the closed account"
            assert usd.available == D("5.00") * len(landed), f"round {round_no}"
    finally:
        crew.close()
    # The race is real only if the close won some rounds.
    assert close_won > 0
